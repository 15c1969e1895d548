"""Where catalogue units run: the `Engine` protocol, and `LocalEngine`, bounded pools of threads on this machine.

    LocalEngine(workers=4).run(units, ctx, on_record)

An engine takes a lazy iterable of units and calls `on_record` for every record they return, in the calling
(driver) thread only, so the records database has one writer. All threads share one `Backends`, so the render
queue (tools/render_queue.py) can batch same-size renders of several units into one pipeline call.

With a render queue (a diffusers backend) a unit runs in two stages (`Stages`): the render stage
(`start_unit`: the subject and the first take, `render_ahead` threads, default twice the render batch) and the
CPU stage (`finish_unit`: critique, repairs, the platform images, `workers` threads). A unit goes to the CPU
stage when its render is back, and the next unit is drawn into the render stage at once, so the next batch forms
while the last one's units are critiqued and written: the GPU does not wait on CPU work. The queue between the
stages is bounded (`render_ahead + workers` units rendered and not yet finished), so a CPU stage that falls
behind stops the drawing instead of filling memory. Without a render queue (the draft backend renders on the
CPU) a unit is one task, `make_unit`, at most `2 × workers` in flight. Either way the next unit is drawn from the
iterable only when there is room, so a 200,000-row catalogue is never held in memory, and the records are the
ones `make_unit` gives: the stages are its two halves. agent/catalogue_ray.py is the other engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.catalogue_unit import (
    Unit,
    UnitContext,
    UnitRecord,
    backends_for,
    finish_unit,
    make_unit,
    start_unit,
)
from tools.render_queue import RENDER_SWITCH_S, render_switch_interval

if TYPE_CHECKING:
    from agent.backends import Backends

__all__ = [
    "RENDER_SWITCH_S",
    "Engine",
    "LocalEngine",
    "Stages",
    "UnitFn",
    "render_batch_of",
    "render_switch_interval",
]

# With a render queue on a GPU, one thread launches every kernel of a batch while the CPU threads critique and
# write; the queue shortens the interpreter's switch interval while it renders (tools/render_queue.py
# RENDER_SWITCH_S), and a catalogue run keeps it short for the whole run, its CPU stage included. On one H200
# (FP8 Z-Image-Turbo, 768x1024, batch 4, 160 units) the GPU was busy 66% of the run at 8 threads and 5 ms, 80%
# at 0.5 ms, 82% with 4 threads (docs/PERFORMANCE.md, eighth session).
RENDER_WORKERS = 4  # CPU-stage threads when the run renders through a render queue and --workers is not given

UnitFn = Callable[[Unit, UnitContext, "Backends"], list[UnitRecord]]


@dataclass(frozen=True)
class Stages:
    """A unit's two halves: `start` (the render stage) and `finish` (the CPU stage, on what `start` returned)."""

    start: Callable[[Unit, UnitContext, Any], Any] = start_unit
    finish: Callable[[Any, UnitContext, Any], list[UnitRecord]] = finish_unit

    def chain(
        self, render: ThreadPoolExecutor, cpu: ThreadPoolExecutor, unit: Unit, ctx: UnitContext, backends
    ) -> tuple[Future, Future]:
        """Submit the unit's render stage; its CPU stage is queued on `cpu` when the render is back.

        Returns (rendered, finished) futures; an error in either stage ends in `finished`.
        """
        finished: Future = Future()

        def then(rendered: Future) -> None:
            if rendered.cancelled() or rendered.exception() is not None:
                _copy_outcome(rendered, finished)
                return
            try:
                inner = cpu.submit(self.finish, rendered.result(), ctx, backends)
            except RuntimeError:  # the pool shut down: the run is already ending with an error
                finished.cancel()
                return
            inner.add_done_callback(lambda f: _copy_outcome(f, finished))

        rendered = render.submit(self.start, unit, ctx, backends)
        rendered.add_done_callback(then)
        return rendered, finished


def _copy_outcome(source: Future, target: Future) -> None:
    try:
        if source.cancelled():
            target.cancel()
        elif (err := source.exception()) is not None:
            target.set_exception(err)
        else:
            target.set_result(source.result())
    except InvalidStateError:  # cancelled by the driver as the run ended
        pass


def render_batch_of(backends) -> int | None:
    """The render queue's batch size, or None where the backends have no render queue (draft, a server)."""
    manager = getattr(backends, "manager", None)
    return getattr(manager, "render_batch", None) if manager is not None else None


class Engine(Protocol):
    """Runs units and hands every record back to the driver."""

    def run(
        self, units: Iterable[Unit], ctx: UnitContext, on_record: Callable[[UnitRecord], None]
    ) -> None: ...


class LocalEngine:
    """`workers` CPU threads on this machine sharing one Backends, and a render stage ahead of them.

    `unit_fn` replaces the whole unit (one stage, at most `2 × workers` in flight); `stages` replaces its two
    halves. `render_ahead`: units in the render stage at once (default twice the render batch; 0: one stage).
    """

    def __init__(
        self,
        workers: int | None = 1,
        backends: Backends | None = None,
        unit_fn: UnitFn | None = None,
        *,
        stages: Stages | None = None,
        render_ahead: int | None = None,
        switch_interval_s: float | None = RENDER_SWITCH_S,
    ):
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if render_ahead is not None and render_ahead < 0:
            raise ValueError(f"render_ahead must be 0 or more, not {render_ahead}")
        if switch_interval_s is not None and switch_interval_s <= 0:
            raise ValueError(f"switch_interval_s must be above 0, not {switch_interval_s}")
        self.workers = workers  # None: RENDER_WORKERS with a render queue, else 1 (set when the run starts)
        self.backends = backends
        self.unit_fn = unit_fn or make_unit
        self.stages = stages if unit_fn is None else None
        self.render_ahead = render_ahead
        self.switch_interval_s = switch_interval_s  # None: leave the interpreter's as it is
        self.peak_in_flight = 0  # measured, for the backpressure test and the benchmark

    @property
    def max_in_flight(self) -> int:
        return 2 * (self.workers or 1)

    def run(self, units: Iterable[Unit], ctx: UnitContext, on_record: Callable[[UnitRecord], None]) -> None:
        backends = self.backends or backends_for(ctx)
        queued = render_batch_of(backends) is not None
        if self.workers is None:
            self.workers = RENDER_WORKERS if queued else 1
        ahead = self._ahead(backends)
        if ahead:
            interval = self.switch_interval_s if queued else None
            with render_switch_interval(interval):
                self._run_staged(iter(units), ctx, on_record, backends, ahead)
        else:
            self._run_whole(iter(units), ctx, on_record, backends)

    def _ahead(self, backends) -> int:
        if self.unit_fn is not make_unit and self.stages is None:
            return 0  # a unit function of one's own has no stages to split
        if self.render_ahead is not None:
            return self.render_ahead
        batch = render_batch_of(backends)
        return 2 * batch if batch else (2 * self.workers if self.stages else 0)

    def _run_whole(self, source, ctx, on_record, backends) -> None:
        pending: set[Future] = set()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="catalogue") as pool:
            try:
                while True:
                    for unit in itertools.islice(source, self.max_in_flight - len(pending)):
                        pending.add(pool.submit(self.unit_fn, unit, ctx, backends))
                    self.peak_in_flight = max(self.peak_in_flight, len(pending))
                    if not pending:
                        return
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        for record in future.result():  # a unit's own bug stops the run; resume redoes it
                            on_record(record)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    def _run_staged(self, source, ctx, on_record, backends, ahead: int) -> None:
        stages = self.stages or Stages()
        rendering: set[Future] = set()
        finishing: set[Future] = set()
        bound = ahead + self.workers  # rendered, not yet finished: the queue between the stages
        render = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="catalogue-render")
        cpu = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="catalogue-cpu")
        try:
            while True:
                room = min(ahead - len(rendering), bound + ahead - len(finishing))
                for unit in itertools.islice(source, max(0, room)):
                    rendered, finished = stages.chain(render, cpu, unit, ctx, backends)
                    rendering.add(rendered)
                    finishing.add(finished)
                self.peak_in_flight = max(self.peak_in_flight, len(finishing))
                if not finishing:
                    return
                done, _ = wait(rendering | finishing, return_when=FIRST_COMPLETED)
                rendering -= done
                for future in done & finishing:
                    finishing.discard(future)
                    for record in future.result():  # a unit's own bug stops the run; resume redoes it
                        on_record(record)
        finally:
            for future in rendering | finishing:
                future.cancel()
            render.shutdown(wait=True, cancel_futures=True)
            cpu.shutdown(wait=True, cancel_futures=True)
