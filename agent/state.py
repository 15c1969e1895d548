"""The graph's state: the film graph's and one shot branch's, with their reducers.

The domain models they carry (Brief, Shot, Take, ...) are the film's vocabulary in `tools/film.py`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from tools.film import Brief, Cut, Shot, ShotResult, Storyboard, Take
from tools.repair import RepairPlan

__all__ = [
    "FilmState",
    "ShotOutput",
    "ShotState",
    "TakeState",
    "merge_results",
    "merge_takes",
]


def merge_results(left: list[ShotResult], right: list[ShotResult]) -> list[ShotResult]:
    """Reducer for parallel shot branches: one result per shot, the newer replacing the older."""
    by_id = {r.shot_id: r for r in left}
    for r in right:
        by_id[r.shot_id] = r
    return sorted(by_id.values(), key=lambda r: r.shot_id)


def merge_takes(left: list[Take], right: list[Take]) -> list[Take]:
    """Reducer for a shot's takes: a take with the same number replaces the older record (e.g. once critiqued)."""
    by_n = {t.n: t for t in left}
    for t in right:
        by_n[t.n] = t
    return [by_n[n] for n in sorted(by_n)]


class FilmState(BaseModel):
    """The top-level graph state."""

    brief: Brief
    storyboard: Storyboard | None = None
    approved: bool = False
    results: Annotated[list[ShotResult], merge_results] = Field(default_factory=list)
    redo: dict[str, int] = Field(
        default_factory=dict,
        description="Shots being re-shot (`redo`): shot id -> number of their first new take.",
    )
    unfinished: dict[str, ShotResult] = Field(
        default_factory=dict,
        description="Shots whose branch failed after its take was kept (a retry): shot id -> that result; their "
        "branch starts again at the clip, or at the variants when the clip was made, not at a new take.",
    )
    cut: Cut | None = None
    report: str | None = None


class TakeState(BaseModel):
    """The take loop's state (render → critique → repair → render …): one shot's takes, until one passes or the
    cap is reached. The shot branch runs the loop on its own state; the evaluation harness runs it alone."""

    shot: Shot
    references: list[str] = Field(
        default_factory=list,
        description="Run-relative images the takes are conditioned on (user refs, anchor).",
    )
    first_take: int = Field(
        default=1, description="Number of the loop's first take (after a redo: the next free)."
    )
    takes: Annotated[list[Take], merge_takes] = Field(default_factory=list)
    repair_plan: RepairPlan | None = Field(default=None, description="The next attempt.")
    max_takes: int | None = Field(
        default=None, ge=1, le=10, description="Cap on this loop's takes; None: the run's max_takes."
    )
    judge_prompt: str | None = Field(
        default=None,
        description="What the takes are judged against; None: the shot's prompt. (The harness judges a "
        "rewritten prompt against the original, so that a rewrite is not judged by its own words.)",
    )
    first_seed: int | None = Field(
        default=None, description="Seed of the first take; None: derived from the run seed."
    )
    image_paths: list[str] = Field(
        default_factory=list,
        description="Run-relative image path of each take, in order; empty: shots/<shot-id>/take-<n>.png.",
    )
    record: bool = Field(
        default=True,
        description="Keep each take's record beside its image (take-<n>.json), so that a resumed run never "
        "renders a recorded take again. False: the caller keeps its own records (the harness).",
    )


class ShotState(TakeState):
    """The state of one shot's branch: the take loop, then animate → adapt."""

    tail: float = Field(
        default=0.0, description="Seconds the clip runs on under the crossfade into the next shot."
    )
    results: Annotated[list[ShotResult], merge_results] = Field(default_factory=list)


class ShotOutput(BaseModel):
    """What the shot branch returns to the film graph."""

    results: Annotated[list[ShotResult], merge_results] = Field(default_factory=list)
