"""The server's side of the director: the durable queue, and the worker processes that run its jobs.

`FilmService` lives in the web process. It queues jobs (agent/jobs.py), reads each film's progress back from
the queue's SQLite file, and supervises the workers (agent/worker.py): `processes` worker processes share the
`workers` job slots. The web process loads no model and runs no shoot, so its GIL stays free for requests.

A worker process that dies (kill -9, out of memory) is started again and its jobs are queued again; they
continue from their run directories. With `processes=0` the workers are threads of the web process (the
behaviour before worker processes existed): for tests that patch the director, and for debugging.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import uuid
from pathlib import Path

from agent.jobs import Busy, Film, Job, JobKind, JobStore
from agent.settings import RunSettings

log = logging.getLogger("creative_director.service")


class FilmService:
    """The queue of films and the workers that make them; models stay loaded in the workers between films."""

    def __init__(self, state_dir: Path, base: dict | None = None, workers: int = 1, processes: int = 1):
        self.state_dir = Path(state_dir)
        self.runs = self.state_dir / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.state_dir / "jobs.sqlite")
        self.base = dict(base or {})  # the server's model and endpoint flags: every film renders with them
        self.workers = workers
        self.processes = min(processes, workers)
        self._ctx = multiprocessing.get_context(
            "spawn"
        )  # a fork of a threaded server could inherit held locks
        self._stop = threading.Event()  # this process's threads; worker processes are stopped with SIGTERM
        self._procs: dict[str, multiprocessing.process.BaseProcess] = {}
        self._threads: list[threading.Thread] = []
        self.restarts = 0  # worker processes started again after they died

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._end_cancelled()
        recovered = self.store.recover()
        if recovered:
            log.warning(
                "queued again %d job(s) a stop cut off; they continue from their run folders", recovered
            )
        if not self.workers:
            return
        if not self.processes:
            from agent.worker import Worker

            worker = Worker(self.state_dir, self.base, "inproc", self.workers)
            t = threading.Thread(target=worker.run, args=(self._stop,), name="worker", daemon=True)
            t.start()
            self._threads.append(t)
            return
        ready = threading.Event()
        # The processes are started (and started again) by one long-lived thread: PR_SET_PDEATHSIG fires when
        # the thread that started a child ends, so it must be a thread that lives as long as the server.
        t = threading.Thread(target=self._supervise, args=(ready,), name="worker-supervisor", daemon=True)
        t.start()
        ready.wait(60)
        self._threads.append(t)

    def _slots(self) -> dict[str, int]:
        """Worker process name → its job threads: the `workers` slots spread over the processes."""
        n, p = self.workers, self.processes
        return {f"worker-{i}": n // p + (1 if i < n % p else 0) for i in range(p)}

    def _spawn(self, name: str, threads: int) -> None:
        from agent import worker

        proc = self._ctx.Process(
            target=worker.main,
            args=(str(self.state_dir), self.base, name, threads, os.getpid()),
            name=name,
            daemon=True,
        )
        proc.start()
        self._procs[name] = proc

    def _supervise(self, ready: threading.Event) -> None:
        slots = self._slots()
        for name, threads in slots.items():
            self._spawn(name, threads)
        ready.set()
        while not self._stop.is_set():
            for name, proc in list(self._procs.items()):
                if not proc.is_alive() and not self._stop.is_set():
                    self._end_cancelled(name)
                    again = self.store.requeue_worker(name)
                    log.warning(
                        "%s (pid %s) died with exit code %s; %d job(s) queued again, starting it again",
                        name,
                        proc.pid,
                        proc.exitcode,
                        again,
                    )
                    self.restarts += 1
                    self._spawn(name, slots[name])
            self._stop.wait(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs and wait for the running ones (a job cut off here is queued again on restart)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()
        end = time.monotonic() + timeout
        for name, proc in self._procs.items():
            proc.join(max(0.1, end - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            self._end_cancelled(name)
            self.store.requeue_worker(name)
        self._procs.clear()

    def worker_pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items() if proc.is_alive()}

    @property
    def loads(self) -> int:
        """Backends the workers built (one per model settings per worker process when models stay warm)."""
        return sum(w.loads for w in self.store.workers())

    def models(self, wait: float = 30.0) -> list[str]:
        """The model ids the workers serve (published by them when they start); [] when none started."""
        end = time.monotonic() + (wait if self.workers else 0)
        while True:
            names = [m for w in self.store.workers() for m in w.models]
            if names or time.monotonic() >= end:
                return list(dict.fromkeys(names))
            time.sleep(0.1)

    # --- settings -------------------------------------------------------------------------------------------
    def settings_for(self, root: Path, reading, options: dict) -> RunSettings:
        """A new film's settings, checked in the web process so that a bad option is the request's 422."""
        from agent.worker import film_settings

        return film_settings(self.base, root, reading, options)

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
        return film

    def create_catalogue(
        self, owner: str, rows: list[dict], photos: dict, catalogue: dict, settings: dict, save, check
    ) -> Film:
        """A new catalogue and its job. Its rows become products.jsonl (what `main.py catalogue` reads) beside
        its photos (`save(img, path)`); `check(products_file)` may refuse them, and then nothing is kept."""
        import json
        import shutil

        from tools.files import write_atomic

        cid = uuid.uuid4().hex[:12]
        upload = self.state_dir / "uploads" / cid
        for name, img in photos.items():
            save(img, upload / "photos" / name)
        upload.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_atomic(upload / "products.jsonl", lines.encode("utf-8"))
        try:
            check(upload / "products.jsonl")
        except BaseException:
            shutil.rmtree(upload, ignore_errors=True)
            raise
        options = {"catalogue": catalogue, **settings, "upload": str(upload)}
        brief = f"catalogue: {len(rows)} products for {', '.join(catalogue['platforms'])}"
        return self.store.create_film(cid, owner, str(self.runs / cid), brief, options, kind="catalogue")

    def submit(self, film_id: str, kind: JobKind, args: dict) -> Job:
        """Queue a job for a film; raises Busy when it already has work queued or running."""
        job = self.store.enqueue(film_id, kind, args)
        self.event(film_id, "queued", f"{kind} queued")
        return job

    def submit_image(self, args: dict) -> Job:
        job = self.store.enqueue_image(args)
        return job

    def cancel(self, film_id: str) -> Job | None:
        job = self.store.cancel(film_id)
        if job and job.state == "cancelled":  # it never started: the film stops where it was
            from agent.worker import cancelled_row

            self.store.update_film(film_id, **cancelled_row(self.store.film(film_id)))
            self.event(film_id, "cancelled", "cancelled before it started")
        return job

    def _end_cancelled(self, worker: str | None = None) -> None:
        """A cancel the worker never reached (it died, or the server stopped): the job ends cancelled and the
        film's row says so, as if the worker had stopped it."""
        from agent.worker import cancelled_row

        for film_id in self.store.end_cancelled(worker):
            if (film := self.store.film(film_id)) is not None:
                self.store.update_film(film_id, **cancelled_row(film))
                self.event(film_id, "cancelled", "cancelled (its worker had stopped)")

    def busy(self, film_id: str) -> bool:
        return self.store.busy(film_id)

    # --- progress -------------------------------------------------------------------------------------------
    def event(self, film_id: str, node: str, message: str) -> None:
        self.store.film_event(film_id, node, message)

    def events_after(self, film_id: str, seq: int) -> list[dict]:
        return self.store.events_after(film_id, seq)


__all__ = ["Busy", "FilmService"]
