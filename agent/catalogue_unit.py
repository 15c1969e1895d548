"""One unit of catalogue work: a product, a scene, and the platforms that can share one render.

    records = make_unit(unit, ctx, backends)     # one UnitRecord per platform image written

`make_unit` is THE per-unit work, the same under `--workers N` (agent/catalogue_engine.py) and under Ray
(agent/catalogue_ray.py): render the take (or composite the real product around its cut-out), critique it,
repair a C up to the cap and keep the best take, then write `DIR/<platform>/<slug>/<scene>.png` for every
platform of the unit (resized from the one render, the copy laid out where the platform allows it). It is pure
given its inputs and idempotent: a rerun of a unit writes the same files again, atomically. It never writes the
records: the driver does, with what it returns.

`make_unit` is `finish_unit(start_unit(...))`: `start_unit` is the render stage (the subject and the first take)
and `finish_unit` the CPU stage (critique, repairs, the platform images), which the engines run on separate
threads when a render queue batches the renders (agent/catalogue_engine.py `Stages`).

Unit, UnitContext and UnitRecord are pydantic models that pickle, so a Ray actor can take them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tools.critics.inputs import CritiqueConfig
from tools.film import Critique, Grade, Repair, Take
from tools.products import Product

if TYPE_CHECKING:
    from agent.backends import Backends

__all__ = [
    "StartedUnit",
    "Unit",
    "UnitContext",
    "UnitRecord",
    "backends_for",
    "finish_unit",
    "make_unit",
    "start_unit",
]

GRADE_RANK: dict[str, int] = {"A": 0, "B": 1, "C": 2}


class Unit(BaseModel):
    """One render and the platform images made from it."""

    key: str = Field(description="<slug>/<scene>/<render group>: unique in a catalogue run.")
    sku: str
    slug: str = Field(description="Folder name made from the SKU (tools.products.sku_slug).")
    product: Product
    scene: str
    platforms: list[str] = Field(description="Platforms sharing this render (same aspect and background).")
    width: int = Field(description="Render size; each platform's image is resized from it.")
    height: int
    seed: int
    white: bool = Field(default=False, description="A pure-white main image (Amazon, JD ...).")
    main: bool = Field(
        default=False, description="The product's main image: the platforms' main rules apply."
    )
    note: str = Field(default="", description="A reviewer's redo note, added to the prompt.")
    shadow: bool = Field(default=True, description="False: a main on white with no shadow at all.")


class UnitContext(BaseModel):
    """What every unit of a run shares: settings, folders, brand, limits."""

    settings: dict[str, Any] = Field(
        description="RunSettings fields, to build the Backends in another process."
    )
    critique: CritiqueConfig
    out_dir: str
    images_dir: str | None = None
    brand_path: str | None = None
    templates_dir: str | None = None
    cap: int = Field(default=3, ge=1, le=10, description="Most takes per unit (the first and its repairs).")


class UnitRecord(BaseModel):
    """One platform image: what was made, how it was judged, and how many takes it took."""

    unit: str
    sku: str
    slug: str
    scene: str
    platform: str
    path: str = Field(description="Relative to the catalogue folder: <platform>/<slug>/<scene>.png.")
    grade: Grade
    scores: dict[str, float] = Field(default_factory=dict)
    issues: list[str] = Field(default_factory=list)
    prompt: str
    seed: int
    model: str
    takes: int
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="What the unit fell back on, and why.")
    wall_s: float = 0.0
    gpu_s: float = 0.0


def backends_for(ctx: UnitContext) -> Backends:
    """The Backends a worker (thread or Ray actor) builds once from the run's settings."""
    from agent.settings import RunSettings

    return RunSettings.model_validate(ctx.settings).backends()


@dataclass
class StartedUnit:
    """A unit after its render stage: the subject loaded and the first take rendered, not yet critiqued."""

    unit: Unit
    subject: Any
    work: Path
    first: Take
    t0: float = field(default_factory=time.perf_counter)


def start_unit(unit: Unit, ctx: UnitContext, backends: Backends) -> StartedUnit:
    """The render stage: the subject (prompt, cut-out, brand) and the first take, rendered and written."""
    from agent.catalogue_takes import Subject, render_take

    t0 = time.perf_counter()
    subject = Subject.load(unit, ctx)
    work = Path(ctx.out_dir) / ".work" / unit.slug / f"{unit.scene}-{unit.key.rsplit('/', 1)[-1]}"
    work.mkdir(parents=True, exist_ok=True)
    shot = subject.shot(unit)
    first = render_take(
        unit, subject, backends, work / "take-1.png", 1, shot.prompt, shot.negative_prompt, unit.seed, None
    )
    return StartedUnit(unit, subject, work, first, t0)


def finish_unit(started: StartedUnit, ctx: UnitContext, backends: Backends) -> list[UnitRecord]:
    """The CPU stage: the first take critiqued, a C repaired up to the cap (those renders wait here), the best
    take kept and one image per platform written."""
    from agent.catalogue_takes import finish_platform
    from tools.platforms import load_platforms

    unit, subject = started.unit, started.subject
    takes = _takes(unit, ctx, backends, subject, started.work, started.first)
    best = min(takes, key=lambda t: (GRADE_RANK[t.critique.grade], len(t.critique.issues), t.n))
    attempts = [_attempt(t) for t in takes]
    gpu_s = round(sum(t.timings.get("gpu_s", 0.0) for t in takes), 3)
    records = []
    for platform in load_platforms(unit.platforms):
        critique, rel = finish_platform(best, unit, subject, platform, ctx)
        records.append(
            UnitRecord(
                unit=unit.key,
                sku=unit.sku,
                slug=unit.slug,
                scene=unit.scene,
                platform=platform.name,
                path=rel,
                grade=critique.grade,
                scores=critique.scores,
                issues=_issue_lines(critique),
                prompt=best.prompt,
                seed=best.seed,
                model=f"{best.backend}:{best.model}",
                takes=len(takes),
                attempts=attempts,
                notes=subject.notes,
                wall_s=round(time.perf_counter() - started.t0, 3),
                gpu_s=gpu_s,
            )
        )
    return records


def make_unit(unit: Unit, ctx: UnitContext, backends: Backends) -> list[UnitRecord]:
    """Make one unit: takes until one is not C (at most `ctx.cap`), the best kept, one image per platform."""
    return finish_unit(start_unit(unit, ctx, backends), ctx, backends)


def _takes(unit: Unit, ctx: UnitContext, backends: Backends, subject, work: Path, first: Take) -> list[Take]:
    """The first take and the repairs of each C after it, at most `ctx.cap` in all, each critiqued."""
    from agent.catalogue_takes import critique_take, render_take
    from tools.repair import plan_repair

    shot = subject.shot(unit)
    takes: list[Take] = []
    for n in range(1, ctx.cap + 1):
        if n == 1:
            take = first
        else:
            plan = plan_repair(shot, takes, ctx.critique)
            path = work / f"take-{n}.png"
            steps = plan.num_inference_steps
            take = render_take(
                unit, subject, backends, path, n, plan.prompt, plan.negative_prompt, plan.seed, steps
            )
            take.parent = n - 1
            take.repair = Repair(actions=plan.actions, reason=plan.reason)
        take.critique = critique_take(take, unit, subject, ctx)
        takes.append(take)
        if take.critique.grade != "C":
            break
    return takes


def _issue_lines(critique: Critique) -> list[str]:
    """A critique's issues as the records and the report list them: "category: reason"."""
    return [f"{i.category}: {i.reason}" for i in critique.issues]


def _attempt(take: Take) -> dict[str, Any]:
    """One take as the record lists it: its grade, seed, prompt, the repair that made it and its issues."""
    return {
        "n": take.n,
        "grade": take.critique.grade,
        "seed": take.seed,
        "prompt": take.prompt,
        "actions": take.repair.actions if take.repair else [],
        "reason": take.repair.reason if take.repair else "",
        "issues": _issue_lines(take.critique),
    }
