"""The last word on a shot the planning model could not fix after it was asked again: mended field by field from
what the model wrote, so the picture stays the model's wherever one field is wrong (issue 18).

    planned = from_what_it_wrote(planned, indices, problems, ctx, offline, notes, why)

A wrong subtitle takes the offline planner's copy for its place; a repeated description the shot's outline beat
(else the offline planner's beat); a wrong prompt one built from the shot's description (or English outline
beat), camera, lighting and mood. Only a shot with a fault no rule mends is wholly the offline planner's. Every
change leaves a note that names where the words came from (tools/plan_review.py `rebuilt_by_rule` counts them).
"""

from __future__ import annotations

from tools.plan_review import (
    PlanContext,
    beats_for,
    prompt_and_source,
    same_key,
    with_offline_subtitle,
)
from tools.plan_schema import offline_shot


def from_what_it_wrote(
    planned, indices: list[int], bad: dict, ctx: PlanContext, offline, notes: list[str], why: str
):
    """The shots `indices` the model could not fix (`bad`: their problems as `review` words them), mended field
    by field from what it wrote: a wrong subtitle takes the offline planner's copy, a wrong prompt one built from
    the shot's fields, a description that repeats an earlier shot's the shot's beat (the first use keeps it);
    only a shot with another fault is wholly the offline planner's."""
    board = offline()
    shots = list(planned.shots)
    for i in indices:
        theirs = board.shots[min(i, len(board.shots) - 1)]
        fields = {field_of(p) for p in bad[i]}
        if None in fields:
            shots[i] = offline_shot(theirs, shots[i])
            notes.append(
                f"shot(s) {i + 1} from the offline planner: the planning model could not fix them ({why})"
            )
            continue
        described = shots[i].description
        if "description" in fields:
            shots[i] = _with_own_beat(i, shots, ctx, offline, notes)
        if "subtitle" in fields:
            shots[i] = with_offline_subtitle(shots[i], theirs)
            notes.append(
                f"shot(s) {i + 1} from the offline planner: subtitle only, the rest is the model's ({why})"
            )
        if "prompt" in fields or shots[i].description != described:
            prompt, source = prompt_and_source(i, shots[i], ctx, offline)
            shots[i] = shots[i].model_copy(update={"prompt": prompt})
            said = next((p for p in bad[i] if field_of(p) == "prompt"), "")
            if said.split(": ", 1)[-1].startswith("prompt "):
                notes.append(f"{said}; rebuilt from {source}")
            else:
                notes.append(
                    f"shot {i + 1}: the prompt was asked again and stayed wrong; rebuilt from {source}"
                )
    return planned.model_copy(update={"shots": shots})


def field_of(problem: str) -> str | None:
    """Which field of a shot a problem (as `review` words it) is about; None for one the rules cannot mend."""
    said = problem.split(": ", 1)[-1]
    if said.startswith("subtitle "):
        return "subtitle"
    if said.startswith(("prompt ", "has the same prompt")):
        return "prompt"
    if said.startswith("has the same description"):
        return "description"
    return None


def _with_own_beat(i: int, shots: list, ctx: PlanContext, offline, notes: list[str]):
    """Shot i with a description no other shot has: its outline beat, else the offline planner's beat; the
    first shot of a set alike keeps its own (the later ones are mended in their turn)."""
    used = {same_key(s.description) for j, s in enumerate(shots) if j != i}
    if same_key(shots[i].description) not in {same_key(s.description) for s in shots[:i]}:
        return shots[i]
    for source, beat in beats_for(i, ctx, offline):
        if beat and same_key(beat) not in used:
            notes.append(
                f"shot {i + 1}: the description repeated another shot's; took {source} ({beat[:60]!r})"
            )
            return shots[i].model_copy(update={"description": beat})
    return shots[i]
