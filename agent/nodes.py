"""The graph's nodes: each one a verb, each calling one tool.

Nodes read the run settings from `runtime.context` and keep the state small: takes, clips and the cut are
records whose media live in the run directory. Every node that makes media first looks for its record on disk,
so a resumed run never renders again a take that was already recorded.
"""

from __future__ import annotations

import copy
import sqlite3
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from langgraph.errors import NodeError
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from agent.clips import clip_ahead, settle_ahead, shot_clip, wait_ahead
from agent.delivery import PLATFORM_WORKERS, cut_platforms, file_label, make_variant, platform_clip
from agent.rundir import RunDir, RunDirError, write_atomic, write_json
from agent.settings import RunSettings, SettingsError
from agent.state import FilmState, ShotState, TakeState
from tools.film import Clip, Critique, Issue, ShotResult, Storyboard, Take
from tools.repair import RepairPlan

if TYPE_CHECKING:
    from agent.backends import Backends
    from tools.film import Shot
    from tools.generate_image import ImageBackend, ImageRequest

_GRADE_RANK = {"A": 0, "B": 1, "C": 2}


def backends(settings: RunSettings) -> Backends:
    """The run's backends: the ones the director attached to the settings (loading a model is expensive)."""
    return settings.backends()


# --- film graph ---------------------------------------------------------------------------------------------


def plan(state: FilmState, runtime: Runtime[RunSettings]) -> dict:
    """Brief → storyboard (LLM or offline planner), written to storyboard.json."""
    from langgraph.config import get_stream_writer

    from tools.plan import PlannerConfig, plan_storyboard

    settings = runtime.context
    if state.storyboard is not None:  # a redo starts from the run's storyboard: nothing to plan
        return {}
    # Long LLM planning says what it is doing: each line goes out on the graph's custom stream (a no-op writer
    # when nobody streams it), and the director hands it to the run's progress.
    writer = get_stream_writer()
    storyboard = plan_storyboard(
        state.brief, settings.config(PlannerConfig), on_progress=lambda line: writer({"planner": line})
    )
    write_json(settings.path / "storyboard.json", storyboard)
    return {"storyboard": storyboard}


def approve(state: FilmState, runtime: Runtime[RunSettings]) -> dict:
    """Wait for a person to approve (or edit) the storyboard when the run asks for approval. Once approved, the
    voice-over lines start being spoken in the background while the shots render."""
    if not runtime.context.approve or state.approved:
        _speak_ahead(state.storyboard, runtime.context)
        return {"approved": True}
    answer = interrupt({"storyboard": state.storyboard.model_dump(mode="json")})
    if isinstance(answer, dict) and "storyboard" in answer:
        edited = Storyboard.model_validate(answer["storyboard"])
        write_json(runtime.context.path / "storyboard.json", edited)
        _speak_ahead(edited, runtime.context)
        return {"approved": True, "storyboard": edited}
    if answer is True or answer == "approve":
        _speak_ahead(state.storyboard, runtime.context)
        return {"approved": True}
    raise ValueError(f"approval answer must be True or {{'storyboard': ...}}, got {answer!r}")


def _speak_ahead(storyboard: Storyboard, settings: RunSettings) -> None:
    from tools.cut import CutConfig
    from tools.sound import speak_ahead

    speak_ahead(storyboard.shots, settings.path, settings.config(CutConfig))


def _branch(state: FilmState, settings: RunSettings, index: int, references: list[str]) -> ShotState:
    """The branch input of shot `index`. Every clip but the last runs on under the crossfade into the next, so
    that the cut lasts as long as the storyboard. A re-shot shot numbers its takes after its old ones."""
    shot = state.storyboard.shots[index]
    tail = settings.crossfade if index < len(state.storyboard.shots) - 1 else 0.0
    # A shot whose take was kept before its clip or a variant raised goes on from there, with its takes.
    if (left := state.unfinished.get(shot.id)) is not None:
        return ShotState(
            shot=shot,
            tail=tail,
            references=references,
            first_take=left.takes[0].n,
            takes=left.takes,
            results=[left] if left.clip else [],
        )
    return ShotState(shot=shot, tail=tail, references=references, first_take=state.redo.get(shot.id, 1))


def anchor_index(state: FilmState, settings: RunSettings) -> int | None:
    """0-based index of the anchor shot, or None. An anchor past the storyboard's end is its last shot."""
    if settings.anchor is None:
        return None
    return min(settings.anchor, len(state.storyboard.shots)) - 1


def fan_out(state: FilmState, runtime: Runtime[RunSettings]) -> list[Send] | Literal["cut"]:
    """One branch per shot that has no result yet, in parallel; with --anchor, the anchor shot alone first, and
    the others after it, conditioned on its kept take too. (A redo leaves only the re-shot shot without one.)"""
    settings = runtime.context
    shots = state.storyboard.shots
    done = {r.shot_id: r for r in state.results}
    pending = [i for i, s in enumerate(shots) if s.id not in done]
    refs = list(settings.reference)
    first = anchor_index(state, settings)
    if first is not None:
        if first in pending:
            return [Send("anchor", _branch(state, settings, first, refs))]
        anchor = done[shots[first].id]
        kept = next((t for t in anchor.takes if t.n == anchor.best), None)
        refs += [kept.path] if kept else []
    return [Send("shoot", _branch(state, settings, i, refs)) for i in pending] or "cut"


def cut(state: FilmState, runtime: Runtime[RunSettings]) -> dict:
    """Join: the kept clips in shot order → final.mp4 + final.srt for the first platform, and
    final-<platform>.mp4 + .srt for every other one (its frames outpainted from the kept takes, then animated).
    Every cut is listed in manifest.json under `cuts`."""
    from concurrent.futures import ThreadPoolExecutor

    from agent.settings import resolve_size
    from tools.cut import CutConfig, cut_film

    settings = runtime.context
    run = RunDir(settings.run_dir)
    by_id = {r.shot_id: r for r in state.results}
    shots = [s for s in state.storyboard.shots if by_id.get(s.id) and by_id[s.id].clip]
    failed = {r.shot_id: r.error for r in state.results if r.error}
    if not shots:
        run.write_manifest({"failed_shots": failed})
        raise RuntimeError("no shot produced a clip; see report.html and the takes under shots/")
    first, *others = cut_platforms(settings)
    config = settings.config(CutConfig).model_copy(update={"platform": first})
    film = cut_film(shots, [by_id[s.id].clip for s in shots], run.root, config)
    cuts = [film]
    for platform in others:
        _, width, height = resolve_size(platform, None)
        with ThreadPoolExecutor(max_workers=PLATFORM_WORKERS) as pool:
            clips = list(
                pool.map(lambda s, p=platform: platform_clip(s, by_id[s.id], p, settings, run), shots)
            )
        framed = config.model_copy(update={"width": width, "height": height, "platform": platform})
        cuts.append(cut_film(shots, clips, run.root, framed, name=f"final-{file_label(platform)}"))
    run.write_manifest(
        {
            "cut": film.model_dump(mode="json"),
            "cuts": [c.model_dump(mode="json") for c in cuts],
            "failed_shots": failed,
        }
    )
    return {"cut": film}


def report(state: FilmState, runtime: Runtime[RunSettings]) -> dict:
    """contact_sheet.png and report.html: what a person looks at first."""
    from agent.report import write_report

    path = write_report(state, RunDir(runtime.context.run_dir), runtime.context)
    return {"report": path}


# --- the take loop: render → critique → repair → render … (capped), run by the shot branch and the harness -----


def _critique_config(settings: RunSettings):
    from tools.critique import CritiqueConfig

    return settings.config(CritiqueConfig)


def render(state: TakeState, runtime: Runtime[RunSettings]) -> dict:
    """Render the next take of the shot (the first, or the one the repair plan asks for)."""
    from tools.repair import take_seed

    settings = runtime.context
    run = RunDir(settings.run_dir)
    shot, plan = state.shot, state.repair_plan
    n = state.first_take + len(state.takes)
    if state.record and (recorded := run.load_take(shot.id, n)) is not None:
        return {"takes": [recorded], "repair_plan": None}

    rel = state.image_paths[len(state.takes)] if state.image_paths else run.rel(run.take_image(shot.id, n))
    image = run.abs(rel)
    image.parent.mkdir(parents=True, exist_ok=True)
    edited = next((t for t in state.takes if plan and t.n == plan.init_take), None)
    init_image = run.abs(edited.path).as_posix() if edited else None
    # A repair that edits this shot's own take needs no references; a fresh render is conditioned on them.
    references = [] if init_image else list(state.references)
    seed = take_seed(_critique_config(settings), shot, n) if state.first_seed is None else state.first_seed
    take = make_take(
        shot,
        n,
        plan,
        seed,
        settings,
        backends(settings)["image"],
        output_path=image.as_posix(),
        rel_path=rel,
        init_image=init_image,
        references=references,
        reference_images=[run.abs(r).as_posix() for r in references],
    )
    if state.record:
        run.save_take(take)
    return {"takes": [take], "repair_plan": None}


def critique(state: TakeState, runtime: Runtime[RunSettings]) -> dict:
    """Score the newest take; the verdict (and what it cost) is recorded on the take."""
    settings = runtime.context
    run = RunDir(settings.run_dir)
    take = state.takes[-1]
    if take.critique is not None:
        return {}
    if state.record and (recorded := run.load_take(take.shot_id, take.n)) and recorded.critique is not None:
        return {"takes": [recorded]}  # judged before a kill that came ahead of this step's checkpoint
    if (
        state.record
        and take.error is None
        and len(state.takes) == 1 == (state.max_takes or settings.max_takes)
    ):
        clip_ahead(state.shot, take, settings, run)  # kept whatever the verdict: animated while it is judged
    start = time.perf_counter()
    try:
        verdict = judge_take(
            take,
            run.abs(take.path).as_posix(),
            state.judge_prompt or state.shot.prompt,
            settings,
            expect_text=state.shot.expect_text,
            reference_images=[run.abs(r).as_posix() for r in state.references],
        )
    except BaseException:
        settle_ahead(run, take.shot_id, take.n)  # no clip is still being written once the shot has failed
        raise
    timings = {**take.timings, "critique_s": round(time.perf_counter() - start, 3)}
    take = take.model_copy(update={"critique": verdict, "timings": timings})
    if state.record:
        run.save_take(take)
    return {"takes": [take]}


def after_critique(state: TakeState, runtime: Runtime[RunSettings]) -> Literal["keep", "repair"]:
    """Keep the take if it passed; re-shoot while takes remain (the loop's cap); else keep the best."""
    last = state.takes[-1]
    if last.critique and last.critique.passed:
        return "keep"
    if len(state.takes) >= (state.max_takes or runtime.context.max_takes):
        return "keep"
    if state.record and not _within_budget(state, runtime.context):
        return "keep"
    return "repair"


def _within_budget(state: TakeState, settings: RunSettings) -> bool:
    from tools.budget import BudgetConfig, allow_reshoot

    return allow_reshoot(settings.config(BudgetConfig), state.shot.id, state.first_take + len(state.takes))


def repair(state: TakeState, runtime: Runtime[RunSettings]) -> dict:
    """Turn the failing take's critique into the next attempt."""
    from tools.repair import plan_repair

    return {"repair_plan": plan_repair(state.shot, state.takes, _critique_config(runtime.context))}


def best_take(takes: list[Take]) -> Take | None:
    """The take to keep: best grade, then fewest issues, then the earliest."""
    usable = [t for t in takes if t.error is None and t.critique is not None]
    if not usable:
        return None
    return min(usable, key=lambda t: (_GRADE_RANK[t.critique.grade], len(t.critique.issues), t.n))


def make_take(
    shot: Shot,
    n: int,
    plan: RepairPlan | None,
    seed: int,
    settings: RunSettings,
    backend: ImageBackend,
    output_path: str,
    rel_path: str,
    init_image: str | None = None,
    references: Sequence[str] = (),
    reference_images: Sequence[str] = (),
) -> Take:
    """Render take `n` of `shot` to `output_path` and return its record (`path` is `rel_path`).

    Without a repair plan the take is the shot's prompt and negative prompt with `seed`; with one, the plan's.
    `references` are recorded as given (run-relative in a run); `reference_images` (absolute) are sent. A backend
    error does not raise: it is recorded as `take.error`, and the caller's loop may re-shoot.
    """
    from tools.generate_image import BackendError

    req = _take_request(shot, n, plan, seed, settings, output_path, init_image, reference_images)
    take = _take_record(shot, n, plan, req, backend, rel_path, references)
    start = time.perf_counter()
    try:
        result = backend.generate(req)
    except BackendError as err:  # the service failed this take: record it and let the loop re-shoot
        take.error = str(err)
        take.timings = {"wall_s": round(time.perf_counter() - start, 3)}
    else:
        take.backend, take.model = result.backend, result.model
        take.parameters = {**take.parameters, **result.parameters}
        take.timings = {"wall_s": round(time.perf_counter() - start, 3), **result.timings}
    return take


def _take_request(
    shot: Shot,
    n: int,
    plan: RepairPlan | None,
    seed: int,
    settings: RunSettings,
    output_path: str,
    init_image: str | None,
    reference_images: Sequence[str],
) -> ImageRequest:
    """The ImageRequest of take `n`: the shot's prompt with `seed`, or what the repair plan asks for instead."""
    from tools.generate_image import ImageRequest

    return ImageRequest(
        prompt=plan.prompt if plan else shot.prompt,
        negative_prompt=plan.negative_prompt if plan else shot.negative_prompt,
        width=settings.width,
        height=settings.height,
        seed=plan.seed if plan else seed,
        num_inference_steps=(plan.num_inference_steps if plan else None) or settings.num_inference_steps,
        guidance_scale=plan.guidance_scale if plan else None,
        output_path=output_path,
        shot=shot,
        take=n,
        init_image=init_image,
        mask_region=plan.mask_region if plan else None,
        reference_images=list(reference_images),
    )


def _take_record(
    shot: Shot,
    n: int,
    plan: RepairPlan | None,
    req: ImageRequest,
    backend: ImageBackend,
    rel_path: str,
    references: Sequence[str],
) -> Take:
    """The take's record before it is rendered: what was asked, of which backend, after which take."""
    return Take(
        shot_id=shot.id,
        n=n,
        path=rel_path,
        backend=backend.name,
        model=backend.model,
        seed=req.seed,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        parent=n - 1 if plan else None,
        repair=None if plan is None else {"actions": plan.actions, "reason": plan.reason},
        # What was asked; the repair planner compares attempts on these so that none is repeated exactly.
        parameters={
            "num_inference_steps": req.num_inference_steps,
            "guidance_scale": req.guidance_scale,
            "mask_region": req.mask_region,
            "init_take": plan.init_take if plan else None,
            "references": list(references),
        },
    )


def judge_take(
    take: Take,
    image_path: str,
    prompt: str,
    settings: RunSettings,
    expect_text: str | None = None,
    reference_images: Sequence[str] = (),
) -> Critique:
    """The verdict on a take: grade C with a "backend" issue when it has no image, else the critics' critique."""
    from tools.critique import CritiqueRequest, critique_image

    if take.error:
        return Critique(
            passed=False,
            grade="C",
            issues=[Issue(category="backend", reason=take.error, critic="backend")],
        )
    return critique_image(
        CritiqueRequest(
            image_path=image_path,
            prompt=prompt,
            width=settings.width,
            height=settings.height,
            expect_text=expect_text,
            reference_images=list(reference_images),
        ),
        _critique_config(settings),
    )


def animate(state: ShotState, runtime: Runtime[RunSettings]) -> dict:
    """Animate the kept take into a clip of the shot's duration, and check the clip."""
    settings = runtime.context
    run = RunDir(settings.run_dir)
    shot = state.shot
    kept = best_take(state.takes)
    if kept is None:
        return {"results": [ShotResult(shot_id=shot.id, takes=state.takes, best=None, flagged=True)]}

    wait_ahead(run, shot.id, kept.n, state.tail)  # a clip made while the take was critiqued
    clip = run.load_clip(shot.id)
    if clip is None or clip.take != kept.n:
        clip = shot_clip(shot, state.tail, kept, settings, run)
    flagged = _flagged(kept, clip)
    return {
        "results": [ShotResult(shot_id=shot.id, takes=state.takes, best=kept.n, flagged=flagged, clip=clip)]
    }


def _flagged(kept: Take, clip: Clip) -> bool:
    """A person should look at the shot: its kept take did not pass with an A, or its clip failed its check."""
    return (
        not kept.critique.passed or kept.critique.grade != "A" or not (clip.critique and clip.critique.passed)
    )


def adapt(state: ShotState, runtime: Runtime[RunSettings]) -> dict:
    """Deliver the kept take for every --variants platform (outpainted to its aspect ratio), each critiqued.

    The branch's last step: the shot is made, so an error.log a failure of it left earlier is removed (what it
    said stays in run.json's `retries`), and a failure handed over by a retry is cleared from its result."""
    settings = runtime.context
    result = next((r for r in state.results if r.shot_id == state.shot.id), None)
    if result is None or result.best is None:
        return {}
    run = RunDir(settings.run_dir)
    kept = next(t for t in result.takes if t.n == result.best)
    variants = []
    for platform in settings.variants:
        variant = run.load_variant(state.shot.id, platform, kept.n)
        if variant is None:
            try:
                variant = make_variant(state.shot, kept, platform, settings, run)
            except Exception as err:
                err.add_note(f"{VARIANT_NOTE}{platform}")  # for shot_failed's line: which variant raised
                raise
        variants.append(variant)
    (run.shot_dir(state.shot.id) / ERROR_LOG).unlink(missing_ok=True)
    made = {"variants": variants, "error": None, "flagged": _flagged(kept, result.clip)}
    return {"results": [result.model_copy(update=made)]}


# --- a shot branch that raised ---------------------------------------------------------------------------

ERROR_LOG = "error.log"  # shots/<id>/error.log: the traceback of the shot branch's last failure
VARIANT_NOTE = "variant: "  # the note adapt adds to an exception: which platform's variant raised


def entry(state: ShotState) -> Literal["render", "animate", "adapt"]:
    """Where a shot branch starts: the take loop; or, when a retry handed it the takes of a shot that failed
    after its take was kept (FilmState.unfinished), the clip, or the variants when the clip was made."""
    if any(r.shot_id == state.shot.id and r.clip is not None for r in state.results):
        return "adapt"
    return "animate" if best_take(state.takes) is not None else "render"


def resumes_at(result: ShotResult) -> Literal["animate", "adapt"] | None:
    """For a shot that failed after its take was kept: the step a retry starts it at (animate: its clip raised;
    adapt: a variant raised). None when it must be shot again (no take kept, or the take loop raised). Read
    back from the result's error, which `shot_failed` writes as `<node> raised …`."""
    if result.error is None or result.best is None:
        return None
    node = result.error.split(" raised ", 1)[0]
    if node == "adapt" and result.clip is not None:
        return "adapt"
    return "animate" if node == "animate" else None


# Failures of the run, not of one shot: the input's fault (a damaged record, a bad setting: exit 2), the disk, the
# checkpoint database. They stop the run with a line that says what to fix. Anything else a branch raises (a bug,
# a backend's RuntimeError) fails only its shot.
RUN_ERRORS = (RunDirError, SettingsError, OSError, sqlite3.Error)


def shot_failed(state: TakeState, runtime: Runtime[RunSettings], error: NodeError) -> dict:
    """The shot branch's error handler (LangGraph calls it in place of a node of the branch that raised).

    The shot's result records the exception (type, message, the node) and its traceback goes to
    shots/<id>/error.log; the branch ends there and the other shots go on. The film then lacks this shot: the run
    exits non-zero saying so, and `--resume` shoots it again. `state` is what the node that raised was given: the
    take loop's TakeState, or the ShotState of animate and adapt.
    """
    err = error.error
    if isinstance(err, RUN_ERRORS):
        # A copy: LangGraph counts the failed node's own exception object as handled once it called this handler.
        raise copy.copy(err) from err
    run = RunDir(runtime.context.run_dir)
    log = run.shot_dir(state.shot.id) / ERROR_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(log, "".join(traceback.format_exception(err)))
    said = " ".join(str(err).split())
    said = said[:120] + "…" if len(said) > 120 else said
    why = f"{error.node} raised {type(err).__name__}" + (f": {said}" if said else "")
    notes = [
        n.removeprefix(VARIANT_NOTE) for n in getattr(err, "__notes__", ()) if n.startswith(VARIANT_NOTE)
    ]
    why += f" (the {notes[-1]} variant)" if notes else ""
    # adapt raising leaves animate's result, clip and all: the shot is in the cut, flagged with why.
    results = state.results if isinstance(state, ShotState) else []
    made = next((r for r in results if r.shot_id == state.shot.id), None)
    kept = best_take(state.takes)
    result = made or ShotResult(
        shot_id=state.shot.id, takes=state.takes, best=kept.n if kept else None, flagged=True
    )
    failed = {"flagged": True, "error": f"{why}; traceback in {run.rel(log)}"}
    return {"results": [result.model_copy(update=failed)]}
