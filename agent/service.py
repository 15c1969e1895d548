"""The long-lived director behind the server: workers that run the queue's jobs with warm models.

`FilmService` owns the job store (agent/jobs.py), one `Backends` per model-settings key (so the second film
loads no model), a lock that serialises GPU work across concurrent jobs, and the live progress of every film.
A job translates into the director's own calls (agent/director.py start/resume/redo); no pipeline logic lives
here. Every job is idempotent against its run directory: run again after a crash, it continues what the
checkpointer recorded instead of starting over.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from agent import director
from agent.backends import Backends, model_key
from agent.jobs import Busy, Film, FilmStatus, Job, JobKind, JobStore
from agent.rundir import MARKER, RunDirError, read_json
from agent.settings import RunSettings

log = logging.getLogger("creative_director.service")

MARKER_STATUS: dict[str, FilmStatus] = {
    "waiting-for-approval": "waiting_approval",
    "done": "done",
    "running": "shooting",
    "stopped": "shooting",
}
MAX_EVENTS = 2000  # per film, in memory: a long shoot's stream keeps its last events


class Progress:
    """A film's live progress from the graph's update stream: status, fraction done and an event log."""

    def __init__(self, shots: int = 0):
        self.shots, self.takes, self.clips = shots, 0, 0
        self.events: list[dict] = []
        self.first_seq = 0  # seq of events[0]; older ones were dropped


class FilmService:
    """Runs films from the durable queue with `workers` threads; models stay loaded between films."""

    def __init__(self, state_dir: Path, base: dict | None = None, workers: int = 1):
        self.state_dir = Path(state_dir)
        self.runs = self.state_dir / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.state_dir / "jobs.sqlite")
        self.base = dict(base or {})  # the server's model and endpoint flags: every film renders with them
        self.workers = workers
        self.gpu = threading.Lock()  # one model call at a time on the device: concurrent jobs never thrash it
        self._backends: dict[str, Backends] = {}
        self._backends_lock = threading.Lock()
        self._progress: dict[str, Progress] = {}
        self._progress_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.loads = 0  # Backends built: a warm server builds one per model-settings key

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        recovered = self.store.recover()
        if recovered:
            log.warning(
                "queued again %d job(s) a stop cut off; they continue from their run folders", recovered
            )
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"film-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and wait for the running ones (a job cut off here is queued again on restart)."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    # --- settings and warm backends -------------------------------------------------------------------------
    def settings_for(self, root: Path, reading, options: dict) -> RunSettings:
        """A new film's settings: its options (film flags) over the server's model flags; raises SettingsError."""
        from agent.flags import settings_from_args

        film = {k: v for k, v in options.items() if k not in ("approve", "reference")}
        args = SimpleNamespace(**self.base, **film)
        settings, _ = settings_from_args(
            args,
            str(root),
            reading,
            approve=bool(options.get("approve")),
            reference=list(options.get("reference") or []),
        )
        return settings

    def warm(self, settings: RunSettings) -> RunSettings:
        """`settings` with the server's Backends for its model settings attached (built on first use)."""
        key = model_key(settings)
        with self._backends_lock:
            backends = self._backends.get(key)
            if backends is None:
                backends = Backends.for_settings(settings)
                self._serialise(backends)
                self._backends[key] = backends
                self.loads += 1
        return settings.attach(backends)

    def image_backends(self) -> Backends:
        """The backends of the server's own model settings (for /v1/images/generations)."""
        return self.warm(RunSettings(run_dir=str(self.state_dir / "images"), **self.base)).backends()

    def _serialise(self, backends: Backends) -> None:
        """Every model call of these backends holds the GPU lock; the nodes' isinstance checks still hold."""
        for backend, method in ((backends.image, "generate"), (backends.video, "animate")):
            call = getattr(backend, method)

            @functools.wraps(call)
            def locked(req, _call=call):
                with self.gpu:
                    return _call(req)

            setattr(backend, method, locked)

    # --- films ------------------------------------------------------------------------------------------------
    def create(self, owner: str, brief: str, options: dict, refs=(), save=None) -> Film:
        """A new film and its start job. `refs`: checked reference images, written with `save(img, path)`."""
        film_id = uuid.uuid4().hex[:12]
        if refs:
            folder = self.state_dir / "uploads" / film_id
            options = {
                **options,
                "reference": [str(save(img, folder / f"ref-{i + 1}.png")) for i, img in enumerate(refs)],
            }
        film = self.store.create_film(film_id, owner, str(self.runs / film_id), brief, options)
        self._wake.set()
        return film

    def submit(self, film_id: str, kind: JobKind, args: dict) -> Job:
        """Queue approve or redo for a film; raises Busy when it already has work queued or running."""
        job = self.store.enqueue(film_id, kind, args)
        self.event(film_id, "queued", f"{kind} queued", status="queued")
        self._wake.set()
        return job

    def busy(self, film_id: str) -> bool:
        return any(j.state in ("queued", "running") for j in self.store.jobs(film_id))

    # --- progress -------------------------------------------------------------------------------------------
    def progress(self, film_id: str) -> Progress:
        with self._progress_lock:
            return self._progress.setdefault(film_id, Progress())

    def event(self, film_id: str, node: str, message: str, **fields) -> None:
        """Record one event; `status`/`progress` in fields also update the film's row."""
        p = self.progress(film_id)
        row = {k: fields[k] for k in ("status", "progress") if k in fields}
        if row:
            self.store.update_film(film_id, **row)
        film = self.store.film(film_id)
        with self._progress_lock:
            p.events.append(
                {
                    "seq": p.first_seq + len(p.events),
                    "time": round(time.time(), 3),
                    "node": node,
                    "message": message,
                    "status": film.status if film else None,
                    "progress": round(film.progress, 3) if film else 0,
                    **{k: v for k, v in fields.items() if k not in row},
                }
            )
            if len(p.events) > MAX_EVENTS:
                drop = len(p.events) - MAX_EVENTS
                del p.events[:drop]
                p.first_seq += drop

    def events_after(self, film_id: str, seq: int) -> list[dict]:
        p = self.progress(film_id)
        with self._progress_lock:
            return [e for e in p.events if e["seq"] > seq]

    def _on_event(self, film_id: str):
        p = self.progress(film_id)

        def on_event(node: str, update: dict) -> None:
            if node == "plan" and update.get("storyboard"):
                p.shots = len(update["storyboard"].shots)
                self.event(film_id, node, f"storyboard: {p.shots} shots", status="planning", progress=0.1)
            elif node == "render":
                # The director hands the take branches' updates on without their takes: count them here; each
                # take's grade is read from its record (GET .../shots/{n}/takes).
                p.takes += 1
                self.event(film_id, node, f"take {p.takes} rendered", status="shooting", takes=p.takes)
            elif node == "animate":
                for r in update.get("results") or []:
                    p.clips += 1
                    done = p.clips / max(p.shots, p.clips, 1)
                    status = "cutting" if p.shots and p.clips >= p.shots else "shooting"
                    self.event(
                        film_id,
                        node,
                        f"{r.shot_id}: clip made from take {r.best}",
                        status=status,
                        progress=0.1 + 0.8 * done,
                        shot=r.shot_id,
                    )
            elif node == "cut":
                self.event(film_id, node, "cut: done", status="cutting", progress=0.95)
            elif node == "report":
                self.event(film_id, node, "report: done", progress=0.99)

        return on_event

    # --- workers ----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._run_job(job)

    def _run_job(self, job: Job) -> None:
        film = self.store.film(job.film_id)
        root = Path(film.run_dir)
        self.progress(film.id).clips = 0
        self.event(
            film.id, "job", f"{job.kind} started", status="planning" if job.kind == "start" else "shooting"
        )
        try:
            if job.kind == "start":
                self._start(film, root)
            elif job.kind == "approve":
                self._approve(film, root)
            else:
                self._redo(film, root, job.args)
        # A job's failure (bad model output, a full disk, out of memory) is the job's, not the server's: the
        # cause is recorded on the job and the film, and the other jobs go on.
        except Exception as err:  # noqa: BLE001
            reason = f"{type(err).__name__}: {err}"[:2000]
            log.exception("film %s: %s job failed", film.id, job.kind)
            self.store.finish(job.id, reason)
            self.store.update_film(film.id, status="failed", error=reason)
            self.event(film.id, "failed", reason, status="failed")
            return
        status = MARKER_STATUS.get(director.status(root), "failed") if (root / MARKER).exists() else "failed"
        done = status == "done"
        self.store.finish(job.id)
        self.store.update_film(
            film.id, status=status, progress=1.0 if done else self.store.film(film.id).progress
        )
        self.event(film.id, status, "the film is done" if done else f"the film is {status}", status=status)

    def _start(self, film: Film, root: Path) -> None:
        from tools.plan import read_brief

        on_event = self._on_event(film.id)
        if (root / MARKER).exists():
            try:
                director.check_run_dir(root)
            except RunDirError:
                _clear(root)  # cut off before its settings were written: nothing in it is worth keeping
            else:
                if director.status(root) in ("waiting-for-approval", "done"):
                    return
                director.resume(root, on_event=on_event, settings=self.warm(director.load_settings(root)))
                return
        elif root.exists():
            _clear(root)
        brief = read_brief(film.brief, "api")
        settings = self.warm(self.settings_for(root, brief.reading, film.options))
        director.start(brief, settings, on_event=on_event)

    def _approve(self, film: Film, root: Path) -> None:
        state = director.status(root)
        settings = self.warm(director.load_settings(root))
        on_event = self._on_event(film.id)
        if state == "waiting-for-approval":
            storyboard = director.pending_storyboard(root)
            self.progress(film.id).shots = len(storyboard["shots"])
            director.resume(root, on_event=on_event, approval={"storyboard": storyboard}, settings=settings)
        elif state != "done":  # approved before a crash: the checkpointer holds the approval
            director.resume(root, on_event=on_event, settings=settings)

    def _redo(self, film: Film, root: Path, args: dict) -> None:
        marker = read_json(root / MARKER)
        settings = self.warm(director.load_settings(root))
        on_event = self._on_event(film.id)
        self.progress(film.id).shots = 1
        if len(marker.get("redos", [])) > args["redos_before"]:  # this redo began before a crash
            if marker.get("status") != "done":
                director.resume(root, on_event=on_event, settings=settings)
            return
        director.redo(root, args["shot"], args.get("note", ""), on_event=on_event, settings=settings)


def _clear(root: Path) -> None:
    for child in root.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


__all__ = ["Busy", "FilmService", "Progress"]
