"""The graph's state: the film graph's and one shot branch's, with their reducers.

The domain models they carry (Brief, Shot, Take, ...) are the film's vocabulary in `tools/film.py`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from tools.film import Brief, Cut, Shot, ShotResult, Storyboard, Take

__all__ = ["FilmState", "ShotOutput", "ShotState", "merge_results", "merge_takes"]


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
    cut: Cut | None = None
    report: str | None = None


class ShotState(BaseModel):
    """The state of one shot's branch (render → critique → repair loop → animate)."""

    shot: Shot
    tail: float = Field(
        default=0.0, description="Seconds the clip runs on under the crossfade into the next shot."
    )
    references: list[str] = Field(
        default_factory=list,
        description="Run-relative images the takes are conditioned on (user refs, anchor).",
    )
    first_take: int = Field(
        default=1, description="Number of the branch's first take (after a redo: the next free)."
    )
    takes: Annotated[list[Take], merge_takes] = Field(default_factory=list)
    repair_plan: dict | None = Field(
        default=None, description="The next attempt (tools.critique.RepairPlan)."
    )
    results: Annotated[list[ShotResult], merge_results] = Field(default_factory=list)


class ShotOutput(BaseModel):
    """What the shot branch returns to the film graph."""

    results: Annotated[list[ShotResult], merge_results] = Field(default_factory=list)
