"""The worker: a process apart from the web server that runs the queue's jobs with warm models.

    python -c "from agent.worker import main; ..."   # started by agent/service.py, one per --worker-processes

Jobs run here, not in the web process, so a shoot's CPU work never holds the web process's GIL: a status call
answers in milliseconds while films render. A worker process runs `threads` jobs at once and keeps one
`Backends` per model-settings key (the second film loads no model); every model call of every job, in every
worker process, holds the GPU lock (a thread lock plus an flock on `gpu.lock` in the state folder), so
concurrent jobs never thrash the device. Progress goes into the queue's SQLite file (`events`, the film's row);
the web process streams it from there. A job translates into the director's own operations
(agent/operations.py, agent/director.py); no pipeline logic lives here. Every job is idempotent against its run
directory: run again after a crash, it continues what the checkpointer recorded instead of starting over.

A worker dies with the web process that started it (PR_SET_PDEATHSIG on Linux, and a parent check elsewhere):
after a kill -9 of the server no orphan goes on writing a run that the restarted server queues again.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

from agent import director, operations, run_view
from agent.backends import Backends, model_key
from agent.jobs import Film, FilmStatus, Job, JobStore
from agent.rundir import MARKER, RunDirError, read_json
from agent.settings import RunSettings

log = logging.getLogger("creative_director.worker")

MARKER_STATUS: dict[str, FilmStatus] = {
    "waiting-for-approval": "waiting_approval",
    "done": "done",
    "running": "shooting",
    "stopped": "shooting",
}
CANCELLED = "cancelled on request; POST /v1/{route}/{id}/resume continues it (nothing made is made again)"


def cancelled_row(film: Film) -> dict:
    """The film's row once its job is cancelled: a catalogue's status is `cancelled`; a film's is `failed`, the
    status the studio offers resume on, with why in `error`. Either is resumed with POST .../resume."""
    if film.kind == "catalogue":
        return {"status": "cancelled", "error": CANCELLED.format(route="catalogues", id=film.id)}
    return {"status": "failed", "error": CANCELLED.format(route="films", id=film.id)}


# No cross-process Event wakes a worker: a multiprocessing Condition can block its setter for good once a waiter
# was killed, and killed workers are what this design must survive. Polling a queue this small costs nothing.
IDLE = 0.2
WORKER_NICE = 19


class Cancelled(KeyboardInterrupt):
    """Raised from the run's progress callback when its job was cancelled. A KeyboardInterrupt on purpose: the
    director treats it as a person stopping the run (marker `stopped`, resumable), not as a failure."""


class GpuLock:
    """One model call at a time on the device, across the threads of this process and every worker process."""

    def __init__(self, path: Path):
        self._thread = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self):
        self._thread.acquire()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()


class Worker:
    """Runs jobs from the queue in `state_dir` on `threads` threads, with warm backends and the GPU lock."""

    def __init__(self, state_dir: Path, base: dict | None = None, name: str = "worker-0", threads: int = 1):
        self.state_dir = Path(state_dir)
        self.store = JobStore(self.state_dir / "jobs.sqlite")
        self.base = dict(base or {})
        self.name, self.threads = name, threads
        self.gpu = GpuLock(self.state_dir / "gpu.lock")
        self._backends: dict[str, Backends] = {}
        self._backends_lock = threading.Lock()
        self.loads = 0  # Backends built: a warm worker builds one per model-settings key

    # --- lifecycle ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set, with the offline voice kept warm across films (closed when this ends)."""
        from tools.voice_pool import warm_voices

        with warm_voices():
            self._work(stop)

    def _work(self, stop: threading.Event) -> None:
        """An idle thread looks for a job every IDLE seconds (one indexed read)."""
        try:
            models = [self.image_backends().image.model]
        except Exception:  # noqa: BLE001 - a film's job reports the same error with its cause
            log.exception("the server's image backend could not be chosen")
            models = []
        self.store.worker_seen(self.name, os.getpid(), self.loads, models)
        threads = [
            threading.Thread(target=self._loop, args=(stop,), name=f"{self.name}-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for t in threads:
            t.start()
        while not stop.is_set():
            stop.wait(2.0)
            self.store.worker_seen(self.name, os.getpid(), self.loads, models)
        for t in threads:
            t.join(30)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            job = self.store.claim(self.name)
            if job is None:
                stop.wait(IDLE)
                continue
            self.run_job(job)

    # --- settings and warm backends -------------------------------------------------------------------------
    def warm(self, settings: RunSettings) -> RunSettings:
        """`settings` with this worker's Backends for its model settings attached (built on first use)."""
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
        """Every model call of these backends holds the GPU lock; the nodes' isinstance checks still hold.

        A backend with a model manager gets the lock inside the manager, around each pipeline call after the
        render queue has formed its batch: holding it around `generate` would let one shot at a time reach the
        queue, and nothing would be batched."""
        for backend, method in ((backends.image, "generate"), (backends.video, "animate")):
            if (manager := getattr(backend, "manager", None)) is not None and hasattr(manager, "device_lock"):
                manager.device_lock = self.gpu
                continue
            call = getattr(backend, method)

            @functools.wraps(call)
            def locked(req, _call=call):
                with self.gpu:
                    return _call(req)

            setattr(backend, method, locked)

    def settings_for(self, root: Path, reading, options: dict) -> RunSettings:
        return film_settings(self.base, root, reading, options)

    # --- progress -------------------------------------------------------------------------------------------
    def event(self, film_id: str, node: str, message: str, **fields) -> None:
        """Record one event; `status`/`progress` in fields also update the film's row, and a film's view
        (agent/run_view.py) is taken again: this worker wrote the files, so status calls never walk them."""
        row = {k: fields[k] for k in ("status", "progress") if k in fields}
        film = self.store.film(film_id)
        if film is not None and film.kind == "film":
            row["view"] = run_view.take_json(Path(film.run_dir))
        self.store.update_film(film_id, **row)
        self.store.film_event(film_id, node, message, {k: v for k, v in fields.items() if k not in row})

    def _on_event(self, job: Job, shots: int = 0):
        counts = {"shots": shots, "takes": 0, "clips": 0}
        film_id = job.film_id

        def on_event(node: str, update: dict) -> None:
            if self.store.cancelled(job.id):
                raise Cancelled(film_id)
            if node == "plan" and update.get("storyboard"):
                counts["shots"] = len(update["storyboard"].shots)
                self.event(
                    film_id, node, f"storyboard: {counts['shots']} shots", status="planning", progress=0.1
                )
            elif node == "render":
                # The director hands the take branches' updates on without their takes: count them here; each
                # take's grade is read from its record (GET .../shots/{n}/takes).
                counts["takes"] += 1
                self.event(
                    film_id,
                    node,
                    f"take {counts['takes']} rendered",
                    status="shooting",
                    takes=counts["takes"],
                )
            elif node == "animate":
                for r in update.get("results") or []:
                    counts["clips"] += 1
                    n = counts["shots"]
                    done = counts["clips"] / max(n, counts["clips"], 1)
                    status = "cutting" if n and counts["clips"] >= n else "shooting"
                    self.event(
                        film_id,
                        node,
                        f"{r.shot_id}: clip made from take {r.best}",
                        status=status,
                        progress=0.1 + 0.8 * done,
                        shot=r.shot_id,
                    )
            elif node == "deliver":
                self.event(film_id, node, f"{update.get('shot_id')}: framed for {update.get('platform')}")
            elif node == "cut":
                self.event(film_id, node, "cut: done", status="cutting", progress=0.95)
            elif node == "report":
                self.event(film_id, node, "report: done", progress=0.99)

        return on_event

    # --- jobs -------------------------------------------------------------------------------------------------
    def run_job(self, job: Job) -> None:
        if job.kind == "image":
            return self._image(job)
        film = self.store.film(job.film_id)
        root = Path(film.run_dir)
        self.event(
            film.id, "job", f"{job.kind} started", status="planning" if job.kind == "start" else "shooting"
        )
        result = None
        try:
            if film.kind == "catalogue":
                result = self._catalogue(job, film, root)
            elif job.kind in ("start", "resume"):
                self._start(job, film, root)
            elif job.kind == "approve":
                self._approve(job, root)
            elif job.kind == "deliver":
                result = self._deliver(job, root)
            else:
                self._redo(job, root)
        except Cancelled:
            row = cancelled_row(film)
            self.store.finish(job.id, row["error"], state="cancelled")
            self.store.update_film(film.id, **row)
            self.event(film.id, "cancelled", "cancelled", status=row["status"])
            return
        # A job's failure (bad model output, a full disk, out of memory) is the job's, not the server's: the
        # cause is recorded on the job and the film, and the other jobs go on.
        except Exception as err:  # noqa: BLE001
            reason = f"{type(err).__name__}: {err}"[:2000]
            log.exception("film %s: %s job failed", film.id, job.kind)
            self.store.finish(job.id, reason)
            self.store.update_film(film.id, status="failed", error=reason)
            self.event(film.id, "failed", reason, status="failed")
            return
        if film.kind == "catalogue":
            status: FilmStatus = "done"
        else:
            status = (
                MARKER_STATUS.get(director.status(root), "failed") if (root / MARKER).exists() else "failed"
            )
        done = status == "done"
        self.store.finish(job.id, result=result)
        progress = 1.0 if done else self.store.film(film.id).progress
        # A resumed film or catalogue that is done no longer carries the error of the run that stopped.
        self.store.update_film(film.id, status=status, progress=progress, **({"error": None} if done else {}))
        self.event(film.id, status, "the film is done" if done else f"the film is {status}", status=status)

    def _start(self, job: Job, film: Film, root: Path) -> None:
        """Plan and shoot a new film, or continue one a crash, a cancel or a failure stopped."""
        from tools.plan import read_brief

        on_event = self._on_event(job)
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

    def _approve(self, job: Job, root: Path) -> None:
        state = director.status(root)
        settings = self.warm(director.load_settings(root))
        shots = len(read_json(root / "storyboard.json").get("shots", []))
        on_event = self._on_event(job, shots)
        if state == "waiting-for-approval":
            operations.approve(root, on_event=on_event, settings=settings)
        elif state != "done":  # approved before a crash: the checkpointer holds the approval
            operations.resume_shoot(root, on_event=on_event, settings=settings)

    def _redo(self, job: Job, root: Path) -> None:
        from agent.operation_args import RedoArgs

        marker = read_json(root / MARKER)
        settings = self.warm(director.load_settings(root))
        on_event = self._on_event(job, 1)
        if len(marker.get("redos", [])) > job.args["redos_before"]:  # this redo began before a crash
            if marker.get("status") != "done":
                operations.resume_shoot(root, on_event=on_event, settings=settings)
            return
        args = RedoArgs(shot=job.args["shot"], note=job.args.get("note", ""))
        operations.redo(root, args, on_event=on_event, settings=settings)

    def _deliver(self, job: Job, root: Path) -> dict:
        from agent.operation_args import DeliverArgs

        # The worker's warm backends: a chat's "deliver for tiktok" outpaints and animates with the models the
        # film was shot with, already loaded, instead of building a second set.
        settings = self.warm(director.load_settings(root))
        change = operations.deliver(
            root, DeliverArgs(platform=job.args["platform"]), on_event=self._on_event(job), settings=settings
        )
        return {"message": change.message, "paths": change.paths}

    def _catalogue(self, job: Job, film: Film, root: Path) -> dict:
        """A catalogue (`catalogue` job; `resume` continues it: units already recorded are not made again), or
        a reviewer's redo of one of its images (`review` job), with this worker's warm backends."""
        from agent import review
        from agent.catalogue import CatalogueOptions, run_catalogue
        from agent.catalogue_records import Records

        settings = self.warm(catalogue_settings(self.base, root, film.options))
        if job.kind == "review":
            a = job.args
            with Records(root) as records:
                key = (a["sku"], a["scene"], a["platform"])
                row = next(records.rows("where sku = ? and scene = ? and platform = ?", key), None)
                if row is None:
                    raise RunDirError(f"catalogue {film.id} has no image {'/'.join(key)}")
                said: list[str] = []
                review.decide(records, row, "redo", a["note"], said.append, settings.backends())
                review.publish(records, root)
            self.event(film.id, "review", "; ".join(said) or "redone")
            return {"message": "; ".join(said)}
        on_event = self._on_event(job)  # for its cancel check
        units = re.compile(r"units (\d+)/(\d+)")

        def on_progress(line: str) -> None:
            on_event("catalogue", {})
            m = units.match(line)
            fields = {"progress": 0.05 + 0.9 * int(m[1]) / max(int(m[2]), 1)} if m else {}
            self.event(film.id, "catalogue", line, status="shooting", **fields)

        upload = Path(film.options["upload"])
        options = CatalogueOptions(
            **film.options["catalogue"],
            catalogue=str(upload / "products.jsonl"),
            out=str(root),
            images=str(upload / "photos") if (upload / "photos").is_dir() else None,
        )
        summary = run_catalogue(settings, options, on_progress=on_progress)
        return {"grades": summary.grades, "images": summary.images, "bad_rows": summary.bad_rows[:50]}

    def _image(self, job: Job) -> None:
        """One request of the OpenAI images route: render and judge; the web process reads the files back."""
        from tools.critique import CritiqueConfig, CritiqueRequest, critique_image
        from tools.generate_image import BackendError, ImageRequest

        a = job.args
        out = self.state_dir / "images"
        out.mkdir(parents=True, exist_ok=True)
        backends = self.image_backends()
        images = []
        try:
            for i in range(a["n"]):
                path = out / f"job-{job.id}-{i}.png"
                backends.image.generate(
                    ImageRequest(
                        prompt=a["prompt"],
                        width=a["width"],
                        height=a["height"],
                        seed=a["seed"] + i,
                        output_path=str(path),
                    )
                )
                crit = critique_image(
                    CritiqueRequest(
                        image_path=str(path), prompt=a["prompt"], width=a["width"], height=a["height"]
                    ),
                    CritiqueConfig(),
                )
                images.append(
                    {
                        "path": path.name,
                        "grade": crit.grade,
                        "passed": crit.passed,
                        "issues": [f"{x.category}: {x.reason}" for x in crit.issues],
                    }
                )
        except BackendError as err:
            self.store.finish(job.id, f"the image backend failed: {err}")
            return
        except Exception as err:  # noqa: BLE001 - the request's failure, not the worker's
            log.exception("image job %s failed", job.id)
            self.store.finish(job.id, f"{type(err).__name__}: {err}"[:2000])
            return
        self.store.finish(job.id, result={"images": images})


def film_settings(base: dict, root: Path, reading, options: dict) -> RunSettings:
    """A new film's settings: its options (film flags) over the server's model flags; raises SettingsError."""
    from types import SimpleNamespace

    from agent.flags import settings_from_args

    film = {k: v for k, v in options.items() if k not in ("approve", "reference")}
    args = SimpleNamespace(**base, **film)
    settings, _ = settings_from_args(
        args,
        str(root),
        reading,
        approve=bool(options.get("approve")),
        reference=list(options.get("reference") or []),
    )
    return settings


def catalogue_settings(base: dict, root: Path, options: dict) -> RunSettings:
    """A catalogue's settings: the server's model flags with its own seed and takes; raises SettingsError."""
    own = {k: options[k] for k in ("seed", "max_takes", "thresholds") if options.get(k) is not None}
    return RunSettings(run_dir=str(root), **{**base, **own})


def _clear(root: Path) -> None:
    for child in root.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _die_with_parent(parent: int) -> None:
    """Exit when the web process that started us dies, however it dies (kill -9 included)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us when the parent goes
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # where prctl does not exist, and for a parent that died before the prctl
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def lower_priority() -> str:
    """Put this process, and every child it starts (ffmpeg, the voice), below the web process in CPU priority:
    nice 19 and, where Linux allows it, SCHED_IDLE. The web process then takes a core the moment a request
    comes in, however many encoders are running, and a status call never waits behind a shoot's CPU work (the
    GPU does not care). Both are inherited through fork and exec. Returns what was set, for the log."""
    os.nice(WORKER_NICE - os.nice(0))
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a kernel that refuses it: nice alone still helps
        return f"nice {os.nice(0)}"
    return f"nice {os.nice(0)}, SCHED_IDLE"


def main(state_dir: str, base: dict, name: str, threads: int, parent: int) -> None:
    """The worker process's entry point (multiprocessing, spawn). SIGTERM stops it after its running jobs."""
    _die_with_parent(parent)
    lower_priority()
    stop = threading.Event()
    # Ctrl-C in a terminal reaches the whole process group: the web process stops us with SIGTERM instead, so
    # the jobs are not cut off twice.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"
    )
    Worker(Path(state_dir), base, name, threads).run(stop)
