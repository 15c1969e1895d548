"""The server's durable job queue: films and their jobs in one SQLite file, so a restart or kill -9 loses nothing.

A film is a row (`films`) owned by one API key (its hash); its work is a sequence of jobs (`jobs`): `start`
(plan, and shoot unless it waits for approval), `approve` (shoot an approved storyboard), `redo` (re-shoot one
shot), `deliver` (a cut for another platform), `resume` (continue a stopped or failed film). A film has at most
one job queued or running at a time, so two workers never touch one run directory. `image` jobs (the OpenAI
images route) belong to no film and are claimed before film jobs: a person waits on them.

The web process and the worker processes (agent/worker.py) share this file: workers claim jobs, record their
progress as `events` rows and publish themselves in `workers`; the web process only reads those and queues.
Claiming is one UPDATE inside an immediate transaction: a job is handed to exactly one worker, whose name is
kept on it. A job left `running` by a worker that died is queued again (`recover`, `requeue_worker`), and it
continues from the run directory and its checkpointer (nothing recorded is made again).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

JobKind = Literal["start", "approve", "redo", "deliver", "resume", "image", "catalogue", "review"]
FilmKind = Literal["film", "catalogue"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
# `cancelled`: a catalogue stopped on request (a cancelled film says `failed`, with why, as the studio shows it).
FilmStatus = Literal[
    "queued", "planning", "waiting_approval", "shooting", "cutting", "done", "failed", "cancelled"
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS films (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    brief TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS films_owner ON films(owner, created);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    film_id TEXT NOT NULL REFERENCES films(id),
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    film_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_film ON events(film_id, seq);
CREATE TABLE IF NOT EXISTS workers (
    name TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    seen REAL NOT NULL,
    loads INTEGER NOT NULL DEFAULT 0,
    models TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS reviews (
    film_id TEXT NOT NULL REFERENCES films(id),
    shot_id TEXT NOT NULL,
    take INTEGER NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    time REAL NOT NULL,
    PRIMARY KEY (film_id, shot_id, take)
);
"""


class Film(BaseModel):
    id: str
    kind: FilmKind = "film"
    owner: str
    run_dir: str
    brief: str
    options: dict = Field(default_factory=dict)
    status: FilmStatus
    progress: float = 0.0
    error: str | None = None
    created: float
    updated: float
    view: str | None = Field(default=None, description="agent/run_view.py's JSON, as of the last change.")


class Job(BaseModel):
    id: int
    film_id: str
    kind: JobKind
    args: dict = Field(default_factory=dict)
    state: JobState
    attempts: int = 0
    error: str | None = None
    worker: str | None = None
    cancel: bool = False
    result: dict | None = None


class WorkerInfo(BaseModel):
    name: str
    pid: int
    started: float
    seen: float
    loads: int = Field(
        description="Backends this worker built: one per model settings when its models stay warm."
    )
    models: list[str]


# Columns added after the first release: an older jobs.sqlite gets them when it opens.
MIGRATIONS = {
    "films": [("kind", "TEXT NOT NULL DEFAULT 'film'"), ("view", "TEXT")],
    "jobs": [("worker", "TEXT"), ("cancel", "INTEGER NOT NULL DEFAULT 0"), ("result", "TEXT")],
}
MAX_EVENTS = 2000  # per film: a long shoot's stream keeps its last events


class Busy(Exception):
    """The film already has a job queued or running."""


class JobStore:
    """Films and jobs in `path` (SQLite, WAL). Safe to share between threads: writes go through one connection
    behind a lock; reads through a connection of the reading thread's own, never behind that lock.

    Why two kinds: a write may wait (busy_timeout) for another process's transaction, and a status call must
    never wait behind it. In WAL mode a reader sees the last commit and waits for no writer, so a read on the
    web server's event loop costs one indexed lookup and nothing else."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        # Several processes write here (the web process queues, workers claim and report): a writer waits for
        # another's transaction rather than failing at once.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives a killed process (only a power cut may lose the last).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            for table, columns in MIGRATIONS.items():
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    @property
    def _read(self) -> sqlite3.Connection:
        """This thread's read connection (autocommit: each statement reads the latest committed state)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=5)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        return db

    @contextmanager
    def _tx(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- films ------------------------------------------------------------------------------------------------
    def create_film(
        self, film_id: str, owner: str, run_dir: str, brief: str, options: dict, kind: FilmKind = "film"
    ) -> Film:
        """The film and its first job (`start`; a catalogue's: `catalogue`), in one transaction: a film is never
        left without its work. A catalogue is a row here too, so it has an owner, a status and a queue."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO films (id, kind, owner, run_dir, brief, options, status, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                (film_id, kind, owner, run_dir, brief, json.dumps(options), now, now),
            )
            db.execute(
                "INSERT INTO jobs (film_id, kind, args, state, created) VALUES (?, ?, '{}', 'queued', ?)",
                (film_id, "start" if kind == "film" else "catalogue", now),
            )
        return self.film(film_id)

    def film(self, film_id: str, owner: str | None = None) -> Film | None:
        """The film, or None when there is none or `owner` does not own it (the same answer: no leak)."""
        row = self._read.execute("SELECT * FROM films WHERE id = ?", (film_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return _film(row)

    def films(self, owner: str | None = None, limit: int = 200, kind: FilmKind = "film") -> list[Film]:
        if owner is None:
            rows = self._read.execute(
                "SELECT * FROM films WHERE kind = ? ORDER BY created DESC LIMIT ?", (kind, limit)
            ).fetchall()
        else:
            rows = self._read.execute(
                "SELECT * FROM films WHERE owner = ? AND kind = ? ORDER BY created DESC LIMIT ?",
                (owner, kind, limit),
            ).fetchall()
        return [_film(r) for r in rows]

    def update_film(self, film_id: str, **fields) -> None:
        """Set status, progress, error or view; with no fields only `updated` moves (caches key on it)."""
        allowed = {"status", "progress", "error", "view"}
        if set(fields) - allowed:
            raise ValueError(f"update_film takes {sorted(allowed)}, got {sorted(fields)}")
        sets = "".join(f"{k} = ?, " for k in fields)
        with self._lock:
            self._db.execute(
                f"UPDATE films SET {sets}updated = ? WHERE id = ?",  # noqa: S608 - names checked above
                (*fields.values(), time.time(), film_id),
            )

    def busy(self, film_id: str) -> bool:
        """True while the film has a job queued or running."""
        row = self._read.execute(
            "SELECT 1 FROM jobs WHERE film_id = ? AND state IN ('queued', 'running') LIMIT 1", (film_id,)
        ).fetchone()
        return row is not None

    def active_jobs(self, owner: str) -> int:
        """Jobs of this owner queued or running: the per-key cap counts these."""
        (n,) = self._read.execute(
            "SELECT COUNT(*) FROM jobs JOIN films ON films.id = jobs.film_id "
            "WHERE films.owner = ? AND jobs.state IN ('queued', 'running')",
            (owner,),
        ).fetchone()
        return n

    # --- jobs -------------------------------------------------------------------------------------------------
    def enqueue(self, film_id: str, kind: JobKind, args: dict, status: FilmStatus = "queued") -> Job:
        """A new job for the film; raises Busy when it already has one queued or running."""
        now = time.time()
        with self._tx() as db:
            busy = db.execute(
                "SELECT 1 FROM jobs WHERE film_id = ? AND state IN ('queued', 'running')", (film_id,)
            ).fetchone()
            if busy:
                raise Busy(film_id)
            cur = db.execute(
                "INSERT INTO jobs (film_id, kind, args, state, created) VALUES (?, ?, ?, 'queued', ?)",
                (film_id, kind, json.dumps(args), now),
            )
            db.execute(
                "UPDATE films SET status = ?, error = NULL, updated = ? WHERE id = ?", (status, now, film_id)
            )
            job_id = cur.lastrowid
        return self.job(job_id)

    def job(self, job_id: int) -> Job:
        row = self._read.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row)

    def jobs(self, film_id: str) -> list[Job]:
        rows = self._read.execute("SELECT * FROM jobs WHERE film_id = ? ORDER BY id", (film_id,)).fetchall()
        return [_job(r) for r in rows]

    def enqueue_image(self, args: dict) -> Job:
        """A job of the images route: no film, no busy check (many may wait at once)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO jobs (film_id, kind, args, state, created) VALUES (?, 'image', ?, 'queued', ?)",
                ("", json.dumps(args), time.time()),
            )
            job_id = cur.lastrowid
        return self.job(job_id)

    def claim(self, worker: str = "") -> Job | None:
        """The next queued job (image jobs first, then the oldest), now running and handed to `worker` alone;
        None when the queue is empty."""
        # An idle worker asks often: a read first, the write lock only when there is work.
        if self._read.execute("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1").fetchone() is None:
            return None
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY kind != 'image', id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1, worker = ? WHERE id = ?",
                (now, worker, row["id"]),
            )
        return self.job(row["id"])

    def finish(
        self, job_id: int, error: str | None = None, result: dict | None = None, state: JobState | None = None
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, error = ?, result = ?, finished = ? WHERE id = ?",
                (
                    state or ("failed" if error else "done"),
                    error,
                    None if result is None else json.dumps(result),
                    time.time(),
                    job_id,
                ),
            )

    def cancel(self, film_id: str) -> Job | None:
        """Cancel the film's job: a queued one at once; a running one is asked to stop (its worker sees the
        flag at the run's next step). Returns the job, or None when there is none."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id, state FROM jobs WHERE film_id = ? AND state IN ('queued', 'running')", (film_id,)
            ).fetchone()
            if row is None:
                return None
            if row["state"] == "queued":
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel = 1, finished = ? WHERE id = ?",
                    (time.time(), row["id"]),
                )
            else:
                db.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", (row["id"],))
        return self.job(row["id"])

    def cancelled(self, job_id: int) -> bool:
        row = self._read.execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def end_cancelled(self, worker: str | None = None) -> list[str]:
        """Running jobs asked to stop whose worker is gone (`worker`'s, or every one at start-up): cancelled, not
        queued again. Returns their films' ids (the caller sets those films' rows)."""
        where = "state = 'running' AND cancel = 1" + ("" if worker is None else " AND worker = ?")
        args = () if worker is None else (worker,)
        with self._tx() as db:
            films = [r[0] for r in db.execute(f"SELECT film_id FROM jobs WHERE {where}", args)]  # noqa: S608
            db.execute(
                f"UPDATE jobs SET state = 'cancelled', finished = ? WHERE {where}", (time.time(), *args)
            )
        return films

    def recover(self) -> int:
        """Queue again every job a crash left running (no worker is alive yet); returns how many."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = 'queued', worker = NULL WHERE state = 'running'")
        return cur.rowcount

    def requeue_worker(self, worker: str) -> int:
        """Queue again the jobs a dead worker was running; a cancelled one ends cancelled instead."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ? WHERE state = 'running' AND worker = ? AND cancel = 1",
                (time.time(), worker),
            )
            cur = self._db.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL WHERE state = 'running' AND worker = ?",
                (worker,),
            )
        return cur.rowcount

    # --- progress events and workers --------------------------------------------------------------------------
    def film_event(self, film_id: str, node: str, message: str, extra: dict | None = None) -> int:
        """Append one progress event stamped with the time and the film's current status and progress."""
        film = self.film(film_id)
        return self.add_event(
            film_id,
            {
                "time": round(time.time(), 3),
                "node": node,
                "message": message,
                "status": film.status if film else None,
                "progress": round(film.progress, 3) if film else 0,
                **(extra or {}),
            },
        )

    def add_event(self, film_id: str, event: dict) -> int:
        """Append one progress event (its `seq` is set here); the film keeps its last MAX_EVENTS."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO events (film_id, data) VALUES (?, ?)", (film_id, json.dumps(event, default=str))
            )
            seq = cur.lastrowid
            if seq % 100 == 0:
                self._db.execute(
                    "DELETE FROM events WHERE film_id = ? AND seq <= "
                    "(SELECT seq FROM events WHERE film_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (film_id, film_id, MAX_EVENTS),
                )
        return seq

    def events_after(self, film_id: str, seq: int, limit: int = 500) -> list[dict]:
        rows = self._read.execute(
            "SELECT seq, data FROM events WHERE film_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (film_id, seq, limit),
        ).fetchall()
        return [{**json.loads(r[1]), "seq": r[0]} for r in rows]

    def worker_seen(self, name: str, pid: int, loads: int, models: list[str]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO workers (name, pid, started, seen, loads, models) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET pid = excluded.pid, seen = excluded.seen, "
                "loads = excluded.loads, models = excluded.models, "
                "started = CASE WHEN workers.pid = excluded.pid THEN workers.started ELSE excluded.started END",
                (name, pid, now, now, loads, json.dumps(models)),
            )

    def workers(self) -> list[WorkerInfo]:
        rows = self._read.execute("SELECT * FROM workers ORDER BY name").fetchall()
        return [WorkerInfo(**{**dict(r), "models": json.loads(r["models"])}) for r in rows]

    # --- a person's review of flagged takes -------------------------------------------------------------------
    def review(self, film_id: str, shot_id: str, take: int, action: str, note: str = "") -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO reviews (film_id, shot_id, take, action, note, time) VALUES (?, ?, ?, ?, ?, ?)",
                (film_id, shot_id, take, action, note, time.time()),
            )

    def reviews(self, film_id: str) -> dict[tuple[str, int], str]:
        rows = self._read.execute(
            "SELECT shot_id, take, action FROM reviews WHERE film_id = ?", (film_id,)
        ).fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def counts(self) -> dict[str, int]:
        rows = self._read.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}


def _film(row: sqlite3.Row) -> Film:
    return Film(**{**dict(row), "options": json.loads(row["options"])})


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    return Job(
        **{
            **d,
            "args": json.loads(d["args"]),
            "cancel": bool(d.get("cancel")),
            "result": json.loads(d["result"]) if d.get("result") else None,
        }
    )
