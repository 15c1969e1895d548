"""The Ray engine: catalogue units on a Ray cluster, one actor per GPU (or N CPU actors), one writer.

    RayEngine(address="local", workers=2).run(units, ctx, on_record)

Each actor (`UnitWorker`) builds its `Backends` once, so the model loads once and stays warm, and takes units
in batches. Inside an actor a batch's units run on threads that share the one Backends, so the render queue
(tools/render_queue.py) puts same-size renders of several units into one pipeline call; with a render queue
each unit's render and its CPU work run on separate threads (agent/catalogue_engine.py `Stages`), and a GPU
actor takes three batches at once (`max_concurrency`; two on CPU actors), so the next batch renders while the
last one is critiqued and written.

Backpressure: the driver keeps at most `batches_in_flight` batches per actor and draws the next units from
the lazy iterable only when a batch comes back, so a 200,000-row catalogue is never queued whole. Records come
back to the driver, which alone calls `on_record` (the records database has one writer); a batch is delivered
whole or not at all, so every unit's records arrive exactly once. An actor that dies (its process killed, its
node lost) has its in-flight batches sent again to the others, and a new actor takes its place, up to
`max_restarts`; a unit that was in flight in `max_unit_tries` deaths is named and the run stops. A unit's own
exception stops the run too, as under LocalEngine (the code is wrong; a rerun resumes).

Addresses: "local" starts a cluster in this process (this machine's CPUs and GPUs); "auto" joins the cluster
that `ray start` runs here (or RAY_ADDRESS); "HOST:PORT" or "ray://HOST:PORT" joins that one, after a quick
TCP check, because `ray.init` on an unreachable address retries for minutes before it gives up.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tools.errors import SettingsError

if TYPE_CHECKING:
    from agent.backends import Backends
    from agent.catalogue_unit import Unit, UnitContext, UnitRecord

__all__ = ["RayEngine", "UnitWorker", "connect", "require_ray"]

BuildFn = Callable[["UnitContext"], "Backends"]
UnitFn = Callable[["Unit", "UnitContext", "Backends"], "list[UnitRecord]"]


def require_ray():
    """The ray module, or a SettingsError that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise SettingsError(
            "--ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install ray)"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def connect(address: str, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Join or start the cluster `address` names; True when this call started Ray (and should stop it).

    A cluster this process already joined is reused (a test's, a notebook's).
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if address == "local":
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **quiet)
        return True
    if address != "auto":
        where = _host_port(address)
        if where is None:
            raise SettingsError(f"--ray {address}: give auto, local, HOST:PORT or ray://HOST:PORT")
        try:
            socket.create_connection(where, timeout=3).close()
        except OSError as e:
            raise SettingsError(
                f"--ray {address}: no Ray cluster answers there ({e}); start one with `ray start --head` "
                "or use --ray local"
            ) from None
    try:
        ray.init(address=address, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
    except ConnectionError as e:
        raise SettingsError(
            f"--ray {address}: could not join a Ray cluster ({e}); start one with `ray start --head` "
            "or use --ray local"
        ) from None
    return True


class UnitWorker:
    """A Ray actor's body: the Backends built once, a batch's units run on threads that share them."""

    def __init__(
        self,
        ctx: UnitContext,
        unit_fn: UnitFn | None = None,
        build: BuildFn | None = None,
        threads: int = 8,
        cpu_threads: int | None = None,
    ):
        from agent.catalogue_engine import RENDER_WORKERS, Stages, render_batch_of
        from agent.catalogue_unit import backends_for, make_unit

        self.ctx = ctx
        self.unit_fn = unit_fn or make_unit
        t = time.perf_counter()
        self.backends = (build or backends_for)(ctx)
        self.build_s = time.perf_counter() - t
        # With a render queue a unit's render and its CPU work run on separate threads (agent/catalogue_engine.py
        # Stages), so the renders of the next batch queue up while this batch is critiqued and written. Fewer
        # CPU threads than units in flight: the critiques go first come, first served, so the oldest batch is
        # done and sent back (and the next one sent) instead of every batch finishing late together.
        self.stages = Stages() if unit_fn is None and render_batch_of(self.backends) else None
        cpu = (cpu_threads or RENDER_WORKERS) if self.stages else threads
        self.pool = ThreadPoolExecutor(max_workers=cpu, thread_name_prefix="unit")
        self.render_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unit-render")

    def hello(self) -> dict[str, Any]:
        """Where this actor runs: the driver waits on it before sending work (the model is loaded then)."""
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id()[:8],
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "build_s": round(self.build_s, 2),
        }

    def run_batch(self, units: list[Unit]) -> list[list[UnitRecord]]:
        """Every unit of the batch at once, so their renders meet in the render queue; records in order."""
        if self.stages is not None:
            from agent.catalogue_engine import RENDER_SWITCH_S, render_switch_interval

            with render_switch_interval(RENDER_SWITCH_S):  # the render thread gets the GIL back quickly
                chained = [
                    self.stages.chain(self.render_pool, self.pool, u, self.ctx, self.backends) for u in units
                ]
                return [finished.result() for _, finished in chained]
        futures = [self.pool.submit(self.unit_fn, u, self.ctx, self.backends) for u in units]
        return [f.result() for f in futures]


@dataclass
class _Actor:
    handle: Any
    name: str
    in_flight: dict[Any, list[Unit]] = field(default_factory=dict)  # batch ref -> its units
    isolating: bool = False  # running a dead worker's unit alone


class RayEngine:
    """The `Engine` of agent/catalogue_engine.py on Ray.

    `workers`: actors to start; None: one per GPU of the cluster, or one per CPU but one where it has none.
    `batch`: units per batch (default the run's --render-batch); `batches_in_flight`: per actor (default 3 on
    GPU actors, 2 on CPU ones), so at most `workers × batches_in_flight × batch` units are out at once. `unit_fn` and `build` replace make_unit and
    the Backends builder (benchmarks and tests; both must pickle). `on_event` gets the engine's own lines
    (workers up, a worker lost, units sent again); the driver's progress comes from `on_record`.
    """

    def __init__(
        self,
        address: str = "auto",
        workers: int | None = None,
        *,
        batch: int | None = None,
        batches_in_flight: int | None = None,
        max_restarts: int = 3,
        max_unit_tries: int = 3,
        unit_fn: UnitFn | None = None,
        build: BuildFn | None = None,
        num_cpus: int | None = None,
        on_event: Callable[[str], None] | None = None,
    ):
        if workers is not None and workers < 1:
            raise SettingsError(f"--workers must be at least 1, not {workers}")
        if batch is not None and batch < 1:
            raise SettingsError(f"batch must be at least 1, not {batch}")
        require_ray()
        if batches_in_flight is not None and batches_in_flight < 1:
            raise SettingsError(f"batches_in_flight must be at least 1, not {batches_in_flight}")
        self.address, self.workers, self.batch = address, workers, batch
        self.asked_in_flight, self.max_restarts, self.max_unit_tries = (
            batches_in_flight,
            max_restarts,
            max_unit_tries,
        )
        self.batches_in_flight = batches_in_flight or 2
        self.unit_fn, self.build, self.num_cpus = unit_fn, build, num_cpus
        self.say = on_event or (lambda line: None)
        self.peak_in_flight = 0  # units out at once, measured: the backpressure test and the benchmark
        self.restarts = 0
        self.resent = 0
        self.actors_started: list[dict[str, Any]] = []

    # ---- the plan -------------------------------------------------------------------------------------------

    def _shape(self, ray) -> tuple[int, float]:
        """How many actors, and the GPUs each one asks for; more than the cluster holds is an error."""
        have = ray.cluster_resources()
        gpus, cpus = int(have.get("GPU", 0)), int(have.get("CPU", 1))
        if gpus:
            if self.workers and self.workers > gpus:
                raise SettingsError(
                    f"--workers {self.workers}: the Ray cluster has {gpus} GPU(s), one per worker"
                )
            return (self.workers or gpus), 1.0
        if self.workers and self.workers > cpus:
            raise SettingsError(
                f"--workers {self.workers}: the Ray cluster has {cpus} CPU(s), one per worker"
            )
        return (self.workers or max(1, cpus - 1)), 0.0

    def _start(self, ctx: UnitContext, batch: int) -> _Actor:
        self._made += 1
        handle = self._remote.remote(
            ctx,
            self.unit_fn,
            self.build,
            batch * self.batches_in_flight,
            batch * max(1, self.batches_in_flight - 1),
        )
        return _Actor(handle, f"worker {self._made}")

    # ---- the run --------------------------------------------------------------------------------------------

    def run(self, units: Iterable[Unit], ctx: UnitContext, on_record: Callable[[UnitRecord], None]) -> None:
        ray = require_ray()
        cpus = self.num_cpus
        if self.address == "local" and cpus is None and self.workers:
            cpus = max(self.workers + 1, os.cpu_count() or 1)
        started = connect(self.address, num_cpus=cpus)
        actors: list[_Actor] = []
        try:
            count, gpus = self._shape(ray)
            # A GPU actor holds a third batch: one renders, the next waits in its render queue, and the last
            # is critiqued and written, so the GPU never waits for a batch to come back and a new one to come.
            # CPU actors render on the cores the critique needs, where a third batch only takes memory.
            self.batches_in_flight = self.asked_in_flight or (3 if gpus else 2)
            self._remote = ray.remote(
                num_gpus=gpus, num_cpus=0 if gpus else 1, max_concurrency=self.batches_in_flight
            )(UnitWorker)
            self._made = 0
            batch = self.batch or int(ctx.settings.get("render_batch") or 4)
            actors += [self._start(ctx, batch) for _ in range(count)]
            self._greet(ray, actors)
            self._feed(ray, iter(units), ctx, on_record, actors, batch)
        finally:
            for actor in actors:
                ray.kill(actor.handle, no_restart=True)
            if started:
                ray.shutdown()

    def _feed(
        self, ray, source: Iterator[Unit], ctx: UnitContext, on_record, actors: list[_Actor], batch: int
    ):
        again: deque[Unit] = deque()  # units of a dead actor's batches: sent before new ones
        tries: dict[str, int] = {}
        exhausted = False
        while True:
            for actor in actors:
                while len(actor.in_flight) < self.batches_in_flight and not actor.isolating:
                    # A dead worker's units go out one at a time, each alone on an idle actor, so a unit that
                    # kills its worker is found and the others of its batch are not blamed with it.
                    units = []
                    if again:
                        if actor.in_flight:
                            break
                        units, actor.isolating = [again.popleft()], True
                    elif not exhausted:
                        units = list(itertools.islice(source, batch))
                        exhausted = len(units) < batch
                    if not units:
                        break
                    actor.in_flight[actor.handle.run_batch.remote(units)] = units
            out = sum(len(u) for a in actors for u in a.in_flight.values())
            self.peak_in_flight = max(self.peak_in_flight, out)
            refs = {ref: a for a in actors for ref in a.in_flight}
            if not refs:
                return
            ready, _ = ray.wait(list(refs), num_returns=1)
            ref = ready[0]
            actor = refs[ref]
            units = actor.in_flight.pop(ref)
            actor.isolating = False
            try:
                results = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._lost(ray, actor, actors, units, again, tries, ctx, batch, e)
                continue
            except ray.exceptions.RayTaskError as e:
                raise e.as_instanceof_cause() from None  # the unit's own error, as LocalEngine raises it
            for records in results:
                for record in records:
                    on_record(record)

    def _greet(self, ray, actors: list[_Actor]) -> None:
        t = time.perf_counter()
        try:
            hellos = ray.get([a.handle.hello.remote() for a in actors])
        except ray.exceptions.RayActorError as e:
            cause = str(e).strip().splitlines()[-1]  # the builder's own error, after Ray's traceback
            raise RuntimeError(
                f"a Ray worker could not start: building its backends failed: {cause}"
            ) from None
        self.actors_started += hellos
        where = ", ".join(
            f"pid {h['pid']}" + (f" GPU {','.join(h['gpus'])}" if h["gpus"] else "") for h in hellos
        )
        self.say(f"ray: {len(actors)} worker(s) up in {time.perf_counter() - t:.1f} s ({where})")

    def _lost(self, ray, actor, actors, units, again, tries, ctx, batch, err) -> None:
        """A dead actor: its batches go back to the front of the line, and a new actor takes its place."""
        lost = [units] + list(actor.in_flight.values())
        actor.in_flight.clear()
        resend = [u for us in lost for u in us]
        for u in resend:
            tries[u.key] = tries.get(u.key, 0) + 1
            if tries[u.key] >= self.max_unit_tries:
                raise RuntimeError(
                    f"unit {u.key} was on {tries[u.key]} workers that died; it may be what kills them "
                    f"(last: {type(err).__name__})"
                )
        again.extendleft(reversed(resend))
        self.resent += len(resend)
        actors.remove(actor)
        ray.kill(actor.handle, no_restart=True)
        if self.restarts < self.max_restarts:
            self.restarts += 1
            actors.append(self._start(ctx, batch))  # its calls wait in Ray until its model is built
        self.say(
            f"ray: {actor.name} died ({type(err).__name__}); {len(resend)} unit(s) sent again; "
            f"{len(actors)} worker(s) left, {self.restarts} restarted"
        )
        if not actors:
            raise RuntimeError(f"every Ray worker died ({self.restarts} restarted); the last: {err}")
