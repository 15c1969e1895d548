"""The render queue: one worker thread per model that feeds the GPU from the parallel shot branches.

Eight shot branches that each call the pipeline contend for one GPU, and each take's wall time then includes
the renders of the others. Here a branch submits a request and waits on its future; the model's worker takes
the oldest request and every later one that can share its pipeline call (same model, task, size, steps and
guidance: all call arguments equal but the prompt, the negative prompt and the seed), up to `max_batch`, and
runs them as one call with a list of prompts and a list of per-request generators. diffusers draws each
request's starting noise from its own generator, so a batched take is the take its seed gives alone (within
the rounding of batched matmuls). While the worker renders, the branches critique, encode and write on their
own threads.

Each result carries its `RenderCost`: the wait from submission to the start of its call, and its share of
the call's GPU and wall time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Hashable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Arguments that differ per request inside one batched call; every other argument must be equal.
PER_REQUEST = ("prompt", "negative_prompt")


@dataclass(frozen=True)
class RenderCost:
    """What one request cost on the device, kept apart from the time it waited for it.

    `queue_wait_s`: from the request to the start of its pipeline call (other shots' renders ahead of it).
    `gpu_s`: CUDA-event time of the call (0.0 on a CPU), and `run_s` its host wall time; in a batch of `batch`
    requests each one is charged an equal share, so summing over the takes gives the device time spent.
    """

    queue_wait_s: float
    gpu_s: float
    run_s: float
    batch: int = 1

    def timings(self) -> dict[str, float]:
        return {
            "queue_wait_s": round(self.queue_wait_s, 4),
            "gpu_s": round(self.gpu_s, 4),
            "run_s": round(self.run_s, 4),
            "batch": float(self.batch),
        }


COST_KEYS = ("wall_s", "queue_wait_s", "gpu_s", "run_s")


def sum_costs(timings: list[dict[str, float]]) -> dict[str, float]:
    """Totals of the cost fields over takes or clips (a field a record lacks counts as 0)."""
    return {k: round(sum(t.get(k, 0.0) for t in timings), 4) for k in COST_KEYS}


@dataclass
class RenderRequest:
    """One still to render: the pipeline's keyword arguments, and the seed of its own generator."""

    source: str
    task: str
    prompt: str
    seed: int
    kwargs: dict[str, Any]
    negative_prompt: str | None = None
    submitted: float = field(default_factory=time.perf_counter)
    future: Future = field(default_factory=Future)

    def key(self) -> Hashable | None:
        """Requests with equal keys can share one call; None: this one runs alone (an image argument)."""
        items = []
        for name, value in sorted(self.kwargs.items()):
            if not isinstance(value, str | int | float | bool | type(None)):
                return None
            items.append((name, value))
        return (self.source, self.task, self.negative_prompt is not None, tuple(items))


@dataclass(frozen=True)
class Rendered:
    """A request's image (PIL) and what it cost."""

    image: Any
    cost: RenderCost


@dataclass(frozen=True)
class BatchRecord:
    """One pipeline call the worker made: when it started and ended (perf_counter) and how many it served."""

    source: str
    started: float
    ended: float
    size: int


# The interpreter's thread switch interval while the queue renders (Python's default is 5 ms). One thread
# launches every kernel of a batch, each launch needs the GIL, and the shot branches, clip encoders and critics
# do Python work meanwhile: with 5 ms the launches wait and the GPU idles. On one H200 a catalogue's GPU went
# from 66% to 80% busy at 0.5 ms (docs/PERFORMANCE.md, eighth session).
RENDER_SWITCH_S = 0.0005


class RenderQueue:
    """Batches text-to-image requests per model; `submit` returns a future of `Rendered`.

    `gather_s`: how long the worker waits after the oldest request for others to join its batch. Shot branches
    fanned out together submit within milliseconds, so a short window fills the batch at the cost of at most
    that delay on a lone request.
    """

    def __init__(
        self,
        manager,
        max_batch: int = 4,
        gather_s: float = 0.05,
        switch_interval_s: float | None = RENDER_SWITCH_S,
    ):
        if max_batch < 1:
            raise ValueError(f"render batch must be at least 1, got {max_batch}")
        self.manager = manager
        self.max_batch = max_batch
        self.gather_s = gather_s
        # The interpreter's switch interval during each call (render_switch_interval); None: left as it is.
        self.switch_interval_s = switch_interval_s
        self.batches: list[BatchRecord] = []  # every call, in order: the benchmark's timeline
        # The most requests in the queue's very first call (None: max_batch). A fresh process sets 1 so its
        # first image is out after one render, not after a batch of four, while the rest still batch.
        self.first_batch: int | None = None
        self._taken = 0  # calls formed so far
        self._pending: dict[str, list[RenderRequest]] = {}
        self._ready = threading.Condition()
        self._workers: dict[str, threading.Thread] = {}
        self._closed = False

    def submit(
        self,
        source: str,
        prompt: str,
        seed: int,
        task: str = "t2i",
        negative_prompt: str | None = None,
        **kwargs,
    ) -> Future:
        """Queue one request for `source`'s `task` pipeline; the future holds a `Rendered`."""
        req = RenderRequest(source, task, prompt, seed, kwargs, negative_prompt)
        with self._ready:
            if self._closed:
                raise RuntimeError("the render queue is closed")
            self._pending.setdefault(source, []).append(req)
            if source not in self._workers:
                worker = threading.Thread(
                    target=self._work, args=(source,), name=f"render {source}", daemon=True
                )
                self._workers[source] = worker
                worker.start()
            self._ready.notify_all()
        return req.future

    def render(self, source: str, prompt: str, seed: int, **kwargs) -> Rendered:
        """Submit and wait: what a shot branch calls."""
        return self.submit(source, prompt, seed, **kwargs).result()

    def close(self) -> None:
        """Stop the workers once the requests already queued are done."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for worker in list(self._workers.values()):
            worker.join()

    # ---- the worker ----------------------------------------------------------------------------------------

    def _take_batch(self, source: str) -> list[RenderRequest] | None:
        """Wait for requests; return the oldest and those that can join it (None once closed and empty)."""
        with self._ready:
            pending = self._pending[source]
            while not pending:
                if self._closed:
                    return None
                self._ready.wait()
            first = pending[0]
            key = first.key()
            most = self.first_batch if self.first_batch and not self._taken else self.max_batch
            self._taken += 1
            if key is not None and most > 1:
                deadline = first.submitted + self.gather_s
                while (
                    sum(r.key() == key for r in pending) < most
                    and (left := deadline - time.perf_counter()) > 0
                    and not self._closed
                ):
                    self._ready.wait(left)
            batch = [first]
            if key is not None:
                batch += [r for r in pending[1:] if r.key() == key][: most - 1]
            for r in batch:
                pending.remove(r)
            return batch

    def _work(self, source: str) -> None:
        while (batch := self._take_batch(source)) is not None:
            try:
                with render_switch_interval(self.switch_interval_s):
                    results = self._run(batch)
            except BaseException as err:  # every waiting branch gets the cause, not a hang
                for r in batch:
                    r.future.set_exception(err)
            else:
                for r, result in zip(batch, results, strict=True):
                    r.future.set_result(result)

    def _run(self, batch: list[RenderRequest]) -> list[Rendered]:
        first = batch[0]
        kwargs = dict(first.kwargs)
        many = len(batch) > 1
        kwargs["prompt"] = [r.prompt for r in batch] if many else first.prompt
        if first.negative_prompt is not None:
            kwargs["negative_prompt"] = [r.negative_prompt for r in batch] if many else first.negative_prompt
        generators = [self.manager.generator(r.seed) for r in batch]
        kwargs["generator"] = generators if many else generators[0]
        started = time.perf_counter()
        out, cost = self.manager.call(first.source, first.task, kwargs, asked=started, share=len(batch))
        ended = time.perf_counter()
        began = started + cost.queue_wait_s  # the lock may have been held by an edit, a clip or a load
        self.batches.append(BatchRecord(first.source, began, ended, len(batch)))
        images = list(out.images)
        if len(images) != len(batch):
            raise RuntimeError(f"{first.source} returned {len(images)} images for {len(batch)} prompts")
        return [
            Rendered(image, RenderCost(began - r.submitted, cost.gpu_s, cost.run_s, len(batch)))
            for r, image in zip(batch, images, strict=True)
        ]


_switch_lock = threading.Lock()
# The intervals asked for by the runs under way (the interpreter has the least), and the one from before them.
_switch_users: list[float] = []
_switch_before: list[float] = []


@contextmanager
def render_switch_interval(seconds: float | None):
    """The interpreter's thread switch interval at most `seconds` while the block runs (None: unchanged).

    Runs may overlap (a server runs several catalogues in threads): the shortest interval asked for holds until
    the last of them ends, and then the interval from before the first comes back.
    """
    if seconds is None:
        yield
        return
    with _switch_lock:
        if not _switch_users:
            _switch_before[:] = [sys.getswitchinterval()]
        _switch_users.append(seconds)
        sys.setswitchinterval(min(_switch_users + _switch_before))
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users.remove(seconds)
            sys.setswitchinterval(min(_switch_users + _switch_before))  # none left: the one from before
