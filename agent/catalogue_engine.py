"""Where catalogue units run: the `Engine` protocol, and `LocalEngine`, a bounded pool of threads on this machine.

    LocalEngine(workers=4).run(units, ctx, on_record)

An engine takes a lazy iterable of units and calls `on_record` for every record they return, in the calling
(driver) thread only, so the records database has one writer. Backpressure: at most `2 × workers` units are in
flight; the next unit is drawn from the iterable only when one finishes, so a 200,000-row catalogue is never
held in memory. All threads share one `Backends`, so the render queue (tools/render_queue.py) can batch
same-size renders of several units into one pipeline call. agent/catalogue_ray.py is the other engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Protocol

from agent.catalogue_unit import Unit, UnitContext, UnitRecord, backends_for, make_unit

if TYPE_CHECKING:
    from agent.backends import Backends

__all__ = ["Engine", "LocalEngine", "UnitFn"]

UnitFn = Callable[[Unit, UnitContext, "Backends"], list[UnitRecord]]


class Engine(Protocol):
    """Runs units and hands every record back to the driver."""

    def run(
        self, units: Iterable[Unit], ctx: UnitContext, on_record: Callable[[UnitRecord], None]
    ) -> None: ...


class LocalEngine:
    """`workers` threads on this machine sharing one Backends; at most `2 × workers` units in flight."""

    def __init__(self, workers: int = 1, backends: Backends | None = None, unit_fn: UnitFn = make_unit):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.backends = backends
        self.unit_fn = unit_fn
        self.max_in_flight = 2 * workers
        self.peak_in_flight = 0  # measured, for the backpressure test and the benchmark

    def run(self, units: Iterable[Unit], ctx: UnitContext, on_record: Callable[[UnitRecord], None]) -> None:
        backends = self.backends or backends_for(ctx)
        pending: set[Future] = set()
        source = iter(units)
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
