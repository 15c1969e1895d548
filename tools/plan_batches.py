"""Planning in short calls, for small local models on slow servers (issue 18): an outline (a title and one line per
shot), then the shots a few at a time, each batch with its own count in the schema, validated by meaning and asked
again alone. Every answer is short, so a slow server answers each within its deadline, and a bad batch costs only
itself.

    planned = plan_in_batches(chat, job)     # a PlannedStoryboard; LLMError when the endpoint cannot do it

The director's rules mend each answer first (tools/plan_review.py): an outline beat about the film, the copy or
repeated takes the offline planner's beat for its place; a shot's description that repeats another takes its outline
beat; a wrong subtitle takes the offline planner's copy. A batch still wrong after its tries keeps its usable
shots (a prompt-only fault rebuilt from the shot's fields, other wrong shots from the offline planner, with a note);
a batch with no usable answer comes from the offline planner; an outline with none is the offline planner's beats.
A timed-out call ends the planning: a server that cannot answer a short call in time will not answer the next one.
Every batch failing is an error, not an offline storyboard. Batches and the outline are asked again only in the
first half of `llm_timeout` (`Job.retry_until`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.brief import is_meta_sentence
from tools.film import Brief, Storyboard
from tools.llm import Chat, LLMError
from tools.plan_fields import from_what_it_wrote
from tools.plan_review import (
    LATIN_OR_CJK_WORD,
    PlanContext,
    mend,
    review,
    weak_description,
)
from tools.plan_schema import (
    TOKENS_PER_SHOT,
    PlannedOutline,
    PlannedShots,
    PlannedStoryboard,
    numbers,
    offline_shot,
    outline_schema,
    shots_schema,
)
from tools.templates import render

TOKENS_PER_BEAT = 40  # one line of at most 15 words, with its JSON


@dataclass
class Job:
    """One storyboard to plan in short calls: the brief, what answers are held to, and where notes go."""

    brief: Brief
    ctx: PlanContext
    variables: dict  # the planner prompts' variables (tools/plan_llm.py)
    offline: Callable[[], Storyboard]
    batch: int
    max_tokens: int | None
    seed: int | None
    progress: Callable[[str], None]
    notes: list[str] = field(default_factory=list)
    retry_until: float | None = None  # monotonic: a batch begun after it gets one answer, not retries

    def answers(self) -> int | None:
        return 1 if self.retry_until is not None and time.monotonic() > self.retry_until else None


def plan_in_batches(chat: Chat, job: Job) -> PlannedStoryboard:
    """The storyboard as an outline and then batches of `job.batch` shots; LLMError names the failing call."""
    n = job.ctx.shots
    outline = _outline(chat, job)
    # Shots whose description repeats another's or shows nothing take their own outline beat (tools/plan_review).
    job.ctx = dataclasses.replace(job.ctx, outline=list(outline.beats), subtitles_by_rule=True)
    system = render("planner_batch.j2", **job.variables, beats=outline.beats, brief=job.brief.text)
    shots: list = []
    failed: list[LLMError] = []
    batches = [list(range(s, min(n, s + job.batch))) for s in range(0, n, job.batch)]
    for done, batch in enumerate(batches, start=1):
        job.progress(f"planner: shots {numbers(batch)} of {n} (batch {done} of {len(batches)})")
        try:
            shots = _batch(chat, job, system, shots, batch)
        except LLMError as exc:
            if exc.kind == "timeout":
                raise
            failed.append(exc)
            board = job.offline()
            shots += [offline_shot(board.shots[min(i, len(board.shots) - 1)]) for i in batch]
            job.notes.append(
                f"shot(s) {numbers(batch)} from the offline planner: the planning model gave none usable "
                f"({exc.detail[:160]})"
            )
    if len(failed) == len(batches):
        raise failed[-1]
    planned = PlannedStoryboard(title=outline.title, shots=shots, reading=None, notes=[])
    said = " ".join(s.subtitle for s in shots)
    for line in (d for d in job.ctx.dialogue if d not in said):
        job.notes.append(f"dialogue line not said by the planning model: {line!r}")
    return planned


def _outline(chat: Chat, job: Job) -> PlannedOutline:
    n = job.ctx.shots

    def problems(value: PlannedOutline) -> list[str]:
        # Beats the rules can replace (`_mend_beats`) are not asked again: only a short count is.
        return [f"expected exactly {n} beats, got {len(value.beats)}"] * (len(value.beats) < n)

    messages = [
        {"role": "system", "content": render("planner_outline.j2", **job.variables)},
        {"role": "user", "content": render("planner_user.j2", brief=job.brief.text,
                                           language=job.variables["brief_language"])},
    ]  # fmt: skip
    job.progress(f"planner: outline of {n} shots")
    try:
        answer = chat.structured(
            messages,
            PlannedOutline,
            name="outline",
            validate=problems,
            schema=outline_schema(n),
            max_tokens=job.max_tokens or 60 + TOKENS_PER_BEAT * n,
            seed=job.seed,
            on_progress=job.progress,
            answers=job.answers(),
        )
    except LLMError as exc:
        if exc.kind == "timeout":
            raise
        board = job.offline()
        job.notes.append(
            f"the outline is the offline planner's: the planning model gave none ({exc.detail[:160]})"
        )
        return PlannedOutline(title=board.title, beats=[s.description for s in board.shots])
    beats = _mend_beats([b.strip() for b in answer.value.beats[:n]], job)
    return answer.value.model_copy(update={"beats": beats})


def _mend_beats(beats: list[str], job: Job) -> list[str]:
    """A beat that speaks about the film, says almost nothing, is the brief's copy or repeats another takes the
    offline planner's beat for its place, with a note (counted as a rule repair, not an offline shot)."""
    board = job.offline()
    copy = {_key(c) for c in job.ctx.copy}
    out: list[str] = []
    for i, beat in enumerate(beats):
        why = None
        if len(LATIN_OR_CJK_WORD.findall(beat)) < 3:
            why = "says almost nothing"
        elif is_meta_sentence(beat) or any(
            is_meta_sentence(s) for s in re.split(r"(?<=[.!?。！？])\s+", beat)
        ):
            why = "speaks about the film, not what it shows"
        elif _key(beat) in copy:
            why = "is the brief's copy, not a picture"
        elif _key(beat) in {_key(b) for b in out}:
            why = "repeats an earlier beat"
        elif weak := weak_description(beat, job.ctx):
            why = weak  # labelled copy, the planner's own instructions echoed
        if why:
            beat = board.shots[min(i, len(board.shots) - 1)].description
            job.notes.append(f"outline beat {i + 1} {why}; took the offline planner's beat ({beat[:60]!r})")
        out.append(beat)
    return out


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _batch(chat: Chat, job: Job, system: str, shots: list, batch: list[int]) -> list:
    """`shots` with the batch's shots added, mended by rules; LLMError when the model gives none usable."""
    k = len(batch)
    ctx = job.ctx

    def upto(value: PlannedShots) -> tuple[PlannedStoryboard, PlanContext]:
        # A small model asked for two shots often writes the whole storyboard: take the two by position.
        got = value.shots
        mine = [got[i] for i in batch] if len(got) == ctx.shots and len(got) != k else got[:k]
        board = PlannedStoryboard(title="", shots=[*shots, *mine], reading=None, notes=[])
        # Held to what a part of the film can be: its own count; dialogue is checked once, at the end.
        return board, dataclasses.replace(ctx, shots=len(board.shots), dialogue=[])

    def problems(value: PlannedShots) -> list[str]:
        if len(value.shots) < k:
            return [f"expected exactly {k} shot(s) (shots {numbers(batch)}), got {len(value.shots)}"]
        board, part = upto(value)
        found = review(mend(board, part, job.offline)[0], part).shots
        return [p for i in batch for p in found.get(i, [])]

    said = " ".join(s.subtitle for s in shots)
    ask = render(
        "planner_batch_user.j2",
        written=[f"{i + 1}. ({s.kind}) {s.description}" for i, s in enumerate(shots)],
        unsaid=[d for d in ctx.dialogue if d not in said],
        numbers=numbers(batch),
        shots=ctx.shots,
        count=k,
        last=batch[-1] == ctx.shots - 1,
    )
    try:
        value = chat.structured(
            [{"role": "system", "content": system}, {"role": "user", "content": ask}],
            PlannedShots,
            name="shots",
            validate=problems,
            schema=shots_schema(k),
            max_tokens=job.max_tokens or 100 + TOKENS_PER_SHOT * k,
            seed=job.seed,
            on_progress=job.progress,
            answers=job.answers(),
        ).value
        last = None
    except LLMError as exc:
        # Still wrong after its tries: what the model wrote is kept where it is usable (below).
        if exc.kind == "timeout" or not isinstance(exc.value, PlannedShots) or len(exc.value.shots) < k:
            raise
        value, last = exc.value, exc
    board, part = upto(value)
    mended, notes = mend(board, part, job.offline)
    job.notes.extend(notes)
    if last is not None:
        mended = _keep_what_is_usable(mended, part, batch, job, last)
    return list(mended.shots)


def _keep_what_is_usable(board: PlannedStoryboard, part: PlanContext, batch: list[int], job: Job, exc):
    """A batch the model could not fix: each wrong shot mended field by field from what the model wrote
    (tools/plan_fields.py); only a shot with a fault no rule mends is the offline planner's, with a note."""
    found = review(board, part).shots
    wrong = [i for i in batch if i in found]
    return from_what_it_wrote(board, wrong, found, part, job.offline, job.notes, exc.detail[:120])
