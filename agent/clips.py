"""A shot's clip: animate the kept take, check the clip, make it once more if it fails, record it.

Two head starts keep the film's tail short (issue 14): a clip's cut segments start encoding as soon as its file
is written, while its check runs (`make_clip` with `ahead`); and a take that is certain to be kept (the loop's
only take: --max-takes 1) is animated while it is still being critiqued (`clip_ahead`, from the critique node),
the animate node then waiting for that clip (`wait_ahead`) instead of making it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

from agent.delivery import pre_cut
from agent.retry import retry
from agent.rundir import RunDir, read_json
from agent.settings import RunSettings
from tools.film import Clip, Shot, Storyboard, Take

CLIP_TAKES = 2  # a failing clip (frozen, flickering, drifting) is made once more with another seed and motion
_OTHER_MOTION = {"push-in": "drift", "drift": "push-in", "pull-out": "drift", "static": "push-in"}


def make_clip(
    shot: Shot, tail: float, kept: Take, settings: RunSettings, run: RunDir, attempt: int, before: Clip | None,
    ahead: list[threading.Thread] | None = None, complete: set[int] | None = None,
) -> Clip:  # fmt: skip
    """Animate `kept` and check the clip; a second attempt changes the motion and the seed of the one before.

    `ahead`: once the clip's file is written, its cut segments start encoding on a thread (appended here)
    while the check runs; a clip that fails its check and is made again leaves them unused (their keys hold
    the file's modification time), and the one made again starts its own. `complete` gets the attempt's
    number once its head start has found every shot's clip (nothing is left for a later one to make)."""
    from agent import nodes  # its `backends` is where a benchmark swaps them (evals/bench_graph.py)
    from tools.animate import AnimateRequest
    from tools.critique import CritiqueConfig, critique_clip

    backend = nodes.backends(settings)["video"]
    motion, seed, reason = shot.motion, kept.seed, None
    if before is not None:
        motion, seed = _OTHER_MOTION.get(before.motion, "push-in"), before.parameters["seed"] + 1
        reason = "; ".join(i.reason for i in before.critique.issues) or "clip failed its check"
    req = AnimateRequest(
        image_path=run.abs(kept.path).as_posix(),
        output_path=run.clip_path(shot.id).as_posix(),
        prompt=kept.prompt,
        negative_prompt=kept.negative_prompt,
        duration=shot.duration + tail,
        fps=settings.fps,
        width=settings.width,
        height=settings.height,
        motion=motion,
        seed=seed,
    )
    start = time.perf_counter()
    result = backend.animate(req)
    clip = Clip(
        shot_id=shot.id,
        take=kept.n,
        path=run.rel(run.clip_path(shot.id)),
        backend=result.backend,
        model=result.model,
        motion=motion,
        duration=result.parameters.get("duration", req.duration),
        fps=settings.fps,
        width=settings.width,
        height=settings.height,
        parameters={**result.parameters, "seed": seed, "attempt": attempt, "remade_because": reason},
        timings={"wall_s": round(time.perf_counter() - start, 3), **result.timings},
    )
    if ahead is not None:

        def head_start() -> None:
            if pre_cut(settings, run, clip) and complete is not None:
                complete.add(attempt)

        ahead.append(threading.Thread(target=head_start, name=f"pre-cut-{shot.id}"))
        ahead[-1].start()
    clip.critique = critique_clip(
        run.abs(clip.path).as_posix(), run.abs(kept.path).as_posix(), settings.config(CritiqueConfig), motion
    )
    return clip


def shot_clip(shot: Shot, tail: float, kept: Take, settings: RunSettings, run: RunDir) -> Clip:
    """The kept take's clip, checked (made again once if it fails), recorded, its cut segments prepared."""
    ahead: list[threading.Thread] = []
    complete: set[int] = set()
    try:
        clip = retry(
            CLIP_TAKES,
            lambda k, before: make_clip(shot, tail, kept, settings, run, k, before, ahead, complete),
            lambda c: c.critique.passed,
        )
        run.save_clip(clip)
    finally:
        for thread in ahead:
            thread.join()
    if clip.parameters["attempt"] not in complete:
        # What the head start could not make: segments with a clip another branch recorded meanwhile.
        pre_cut(settings, run)
    return clip


# Clips being made ahead of their animate node: (run folder, shot id, take) → (the tail used, the future).
_AHEAD: dict[tuple[Path, str, int], tuple[float, Future]] = {}
_AHEAD_LOCK = threading.Lock()


def clip_ahead(shot: Shot, take: Take, settings: RunSettings, run: RunDir) -> None:
    """Start making `take`'s clip on a thread now, while it is critiqued: called for a take that will be kept
    whatever its verdict (the loop's only take). The tail follows the storyboard's order as the branch's does
    (agent/nodes.py _branch); `wait_ahead` checks it against the branch's own."""
    if (recorded := run.load_clip(shot.id)) is not None and recorded.take == take.n:
        return  # made before a kill that came ahead of the critique's checkpoint
    shots = Storyboard.model_validate(read_json(run.root / "storyboard.json")).shots
    index = next((i for i, s in enumerate(shots) if s.id == shot.id), None)
    if index is None:
        return
    tail = settings.crossfade if index < len(shots) - 1 else 0.0
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(shot_clip(shot, tail, take, settings, run))
        except BaseException as err:  # noqa: BLE001 - the animate node makes it again and reports the error
            future.set_exception(err)

    with _AHEAD_LOCK:
        _AHEAD[(run.root.resolve(), shot.id, take.n)] = (tail, future)
    threading.Thread(target=work, name=f"clip-ahead-{shot.id}", daemon=True).start()


def wait_ahead(run: RunDir, shot_id: str, n: int, tail: float) -> None:
    """Wait for a clip `clip_ahead` is making of take `n`, if any. One that failed, or was made with another
    tail than the branch's, leaves no record behind, so the animate node makes the clip itself."""
    with _AHEAD_LOCK:
        made = _AHEAD.pop((run.root.resolve(), shot_id, n), None)
    if made is None:
        return
    used, future = made
    try:
        future.result()
    except Exception:  # noqa: BLE001 - made again by the caller, which raises and records the error
        return
    if abs(used - tail) > 1e-9:
        run.clip_record(shot_id).unlink(missing_ok=True)


def settle_ahead(run: RunDir, shot_id: str, n: int) -> None:
    """Let a clip being made ahead of take `n` finish (its record stands: a clip of that take), for a critique
    that raised: the shot's failure is then handled with no clip or manifest still being written."""
    with _AHEAD_LOCK:
        made = _AHEAD.pop((run.root.resolve(), shot_id, n), None)
    if made is not None:
        try:
            made[1].result()
        except Exception:  # noqa: BLE001, S110 - made again, and its error reported, if the shot is resumed
            pass
