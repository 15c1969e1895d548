"""The LLM planner: a storyboard from an OpenAI-compatible chat endpoint, through tools/llm.py's `Chat`.

    board = plan_llm(brief, config, notes, on_progress=print)      # PlanError when no usable storyboard came

The schema sent (`planner_schema(n)`) is strict-mode compatible (every property required, optional ones nullable)
and holds exactly n shots (minItems = maxItems = n), so a grammar-enforcing server keeps the count. The answer is
parsed and validated by the same pydantic models whatever structured mode the endpoint took, then judged by meaning
(tools/plan_review.py): what rules can mend is mended; a few bad shots are asked again one at a time (in a follow-up
turn of the same conversation, while the planning is within one `llm_timeout`); a storyboard mostly wrong is asked
again whole. A storyboard whose shots repeat one description gets its beats in one short call. A shot the model
still cannot fix is mended field by field from what it wrote (tools/plan_fields.py); only a fault no rule mends
makes it the offline planner's, with a note. Every array and string of the schema is bounded
(tools/plan_schema.py), and an answer cut off at the token limit is asked again without the brief's reading,
which the director reads itself (tools/brief.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable

from tools.beats import MIN_SHOT_SECONDS, PlanError, allocate_durations, split_beats, total_seconds
from tools.brief import is_meta_sentence, is_product_brief, read_brief_settings
from tools.film import Brief, BriefReading, Shot, Storyboard
from tools.llm import Chat, LLMError, endpoint_from
from tools.llm_answers import one_line
from tools.plan_batches import TOKENS_PER_BEAT, Job, plan_in_batches
from tools.plan_fields import from_what_it_wrote
from tools.plan_offline import orientation, plan_offline
from tools.plan_review import (
    LANGUAGE_NAMES,
    PlanContext,
    mend,
    replace_shots,
    review,
    wants_beats,
)
from tools.plan_schema import (
    MOTIONS,
    SHOT_KINDS,
    TOKENS_PER_SHOT,
    PlannedOutline,
    PlannedReading,
    PlannedShots,
    PlannedStoryboard,
    numbers,
    outline_schema,
    picked,
    planner_schema,
    shots_schema,
)
from tools.templates import render

BATCH = 1  # shots asked again in one follow-up: one at a time, so a small model writes each in its place

log = logging.getLogger(__name__)


def script_context(brief: Brief) -> dict:
    """What the program checks in an answer: the brief's dialogue lines, its stage directions and meta sentences."""
    beats = split_beats(brief.text)
    dialogue = [words for b in beats if b.role == "dialogue" for _, words in b.lines]
    directions = [
        b.text for b in beats if b.role == "action" and b.scene and not b.lines and len(b.text) > 12
    ]
    headings = sorted({b.heading for b in beats if b.heading})
    meta = [
        line.strip()
        for line in re.split(r"(?<=[.!?。！？])\s*|\n", brief.text)
        if line.strip() and is_meta_sentence(line)
    ]
    reading = brief.reading or read_brief_settings(brief.text)
    copy = [*reading.slogans, *reading.claims, *([reading.cta] if reading.cta else [])]
    return {
        "dialogue": dialogue,
        "directions": directions + headings,
        "meta": meta,
        "copy": copy,
        "has_dialogue": bool(dialogue),
    }


def plan_llm(
    brief: Brief,
    config,
    notes: list[str] | None = None,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> Storyboard:
    """Plan through the chat endpoint `config` names (a PlannerConfig); PlanError names what went wrong.

    `config.llm_plan` chooses how: `whole` asks for the whole storyboard in one call, its answer mended by rules
    and, where a few shots are still wrong, a follow-up asks for those shots alone (at most `BATCH` a call);
    `batches` plans in short calls (tools/plan_batches.py: an outline, then `llm_batch` shots a call); `auto`
    asks whole first, within half of `llm_timeout`, and plans in short calls when that answer times out, runs
    out of that time or stays cut off at the token limit.
    `on_progress` gets one line per request.
    """
    n = config.shot_count()
    total = total_seconds(config.film_seconds(), n)
    lang = config.lang or brief.lang
    ctx = PlanContext(
        shots=n,
        lang=lang,
        brief=brief.text,
        style=config.style,
        orientation=orientation(config.width, config.height),
        **script_context(brief),
    )
    offline_board: list[Storyboard] = []

    def offline() -> Storyboard:
        if not offline_board:
            offline_board.append(plan_offline(brief, config.model_copy(update={"shots": n})))
        return offline_board[0]

    progress = on_progress or log.info
    board_notes: list[str] = []
    variables = _variables(brief, config, n, total, lang)
    # Asking again (a batch, a shot) is for the first half of one request's time; after it, first answers only,
    # so a storyboard is planned in about one --llm-timeout however the model answers.
    retry_until = time.monotonic() + config.llm_timeout / 2
    with Chat(endpoint_from(config, "llm")) as chat:
        planned = _plan_whole_first(chat, brief, config, ctx, variables, offline, board_notes, progress)
        if planned is None:
            job = Job(brief, ctx, variables, offline, getattr(config, "llm_batch", 3), config.llm_max_tokens,
                      config.seed, progress, board_notes, retry_until)  # fmt: skip
            try:
                planned = plan_in_batches(chat, job)
            except LLMError as exc:
                raise _plan_error(exc, config) from None
    for line in board_notes:
        log.info("planner: %s", line)
    return _storyboard_from(planned, brief, config, lang, total, notes, board_notes)


def _plan_whole_first(chat: Chat, brief: Brief, config, ctx, variables, offline, notes, progress):
    """The whole storyboard (`whole`, `auto`), or None where short calls should plan it instead (`batches`;
    `auto` when the whole answer timed out, ran out of time or stayed cut off)."""
    mode = getattr(config, "llm_plan", "whole")
    if mode == "batches":
        return None
    # auto gives the whole storyboard half of one request's time, tries included: a server that needs more
    # is better asked in short calls, each with the whole timeout.
    until = time.monotonic() + config.llm_timeout / 2 if mode == "auto" else None
    try:
        return _plan_whole(chat, brief, config, ctx, variables, offline, notes, progress, until)
    except LLMError as exc:
        if mode == "whole" or not _too_long(exc):
            raise _plan_error(exc, config) from None
        why = f"the whole storyboard in one answer failed ({one_line(exc.detail, 140)})"
        progress(f"planner: {why}; planning in short calls")
        notes.append(f"planned in short calls: {why}")
        return None


def _too_long(exc: LLMError) -> bool:
    """The whole storyboard was too much for the endpoint in one answer: it timed out, ran out of time, or was cut
    off at the token limit. An answer that is merely wrong is not helped by asking in pieces."""
    cut = any(p.startswith("cut off at the token limit") for p in exc.stats.problems)
    return exc.kind in ("timeout", "budget") or (exc.kind == "invalid" and cut)


def _variables(brief: Brief, config, n: int, total: float, lang: str) -> dict:
    """What the planner prompts (prompts/planner_*.j2) are rendered with."""
    return {
        "shots": n,
        "duration": f"{total:g}",
        "width": config.width,
        "height": config.height,
        "orientation": orientation(config.width, config.height),
        "style": config.style,
        "product": is_product_brief(brief.text),
        "kinds": ", ".join(SHOT_KINDS),
        "motions": ", ".join(MOTIONS),
        "min_duration": MIN_SHOT_SECONDS,
        "language": LANGUAGE_NAMES[lang],
        "brief_language": LANGUAGE_NAMES[brief.lang],
    }


def _plan_whole(
    chat: Chat, brief: Brief, config, ctx: PlanContext, variables: dict, offline, notes, progress, until
):
    """The whole storyboard in one answer, mended by rules, its few bad shots asked again one at a time."""
    began = time.monotonic()
    n = ctx.shots
    schema = planner_schema(n)
    system = render("planner_system.j2", **variables, schema=json.dumps(schema, ensure_ascii=False))
    messages: list[dict] = [
        {"role": "system", "content": system},
        {"role": "user", "content": render("planner_user.j2", brief=brief.text,
                                           language=variables["brief_language"])},
    ]  # fmt: skip

    def whole_problems(value: PlannedStoryboard) -> list[str]:
        mended, _ = mend(value, ctx, offline)
        found = review(mended, ctx)
        if not found.needs_whole(n):
            return []
        # Asked again whole: say everything, the raw count included even where rules could have fixed it.
        count = [f"expected exactly {n} shots, got {len(value.shots)}"] * (len(value.shots) != n)
        return list(dict.fromkeys(count + found.problems()))

    try:
        value = _whole_answer(chat, messages, config, n, whole_problems, until, progress)
    except LLMError as exc:
        # The last storyboard the model wrote, still wrong by meaning or out of time to ask again whole: what
        # the rules and single shots can make of it beats starting again.
        if not isinstance(exc.value, PlannedStoryboard) or not ctx.close(len(exc.value.shots)):
            raise
        value = exc.value
        notes.append(
            f"the planning model's last storyboard, mended shot by shot ({one_line(exc.detail, 140)})"
        )
        progress("planner: mending the last storyboard shot by shot")
    # Shots asked again must fit, with the whole answer, in most of one request's time.
    deadline = began + 0.8 * config.llm_timeout
    ctx = dataclasses.replace(ctx, fill_repeats=True)
    if wants_beats(value, ctx):
        # One short call for the beats the model left out (the same description on many shots), rather than
        # one re-ask a shot that repeats itself; the shots keep everything else the model wrote.
        beats = _ask_for_beats(chat, brief, ctx, variables, value, config, notes, progress, deadline)
        ctx = dataclasses.replace(ctx, outline=beats)
    planned, mended_notes = mend(value, ctx, offline)
    notes += mended_notes
    planned = _ask_for_shots(chat, messages, planned, ctx, config, offline, notes, progress, deadline)
    said = " ".join(s.subtitle for s in planned.shots) + " " + " ".join(planned.notes)
    notes += [f"dialogue line not said by the planning model: {d!r}" for d in ctx.dialogue if d not in said]
    return planned


def _ask_for_beats(
    chat: Chat, brief: Brief, ctx: PlanContext, variables: dict, value, config, notes, progress, until: float
) -> list[str]:
    """The film's beats, one English line a shot, in one short call with the brief's own moments as a hint; []
    when the endpoint gives none in time (the offline planner's beats then stand in, with a note each)."""
    n = ctx.shots
    actions = [b for b in split_beats(brief.text) if b.role == "action" and not is_meta_sentence(b.text)]
    hints = [f"{b.heading}: {b.text}" if b.heading else b.text for b in actions]
    used = list(dict.fromkeys(s.description.strip() for s in value.shots if s.description.strip()))
    messages = [
        {"role": "system", "content": render("planner_beats.j2", **variables, hints=hints, used=used[:3])},
        {"role": "user", "content": render("planner_user.j2", brief=brief.text,
                                           language=variables["brief_language"])},
    ]  # fmt: skip
    if until - time.monotonic() < min(8.0, 0.1 * config.llm_timeout):
        notes.append("no time left to ask for the beats; the offline planner's beats stand in")
        return []
    progress(f"planner: the shots share their descriptions; asking for the film's {n} beats")
    try:
        answer = chat.structured(
            messages,
            PlannedOutline,
            name="beats",
            schema=outline_schema(n),
            max_tokens=config.llm_max_tokens or 60 + TOKENS_PER_BEAT * n,
            seed=config.seed,
            on_progress=progress,
            answers=1,
            until=until,
        )
    except LLMError as exc:
        why = one_line(exc.detail, 120)
        notes.append(f"the planning model gave no beats ({why}); the offline planner's beats stand in")
        return []
    return [b.strip() for b in answer.value.beats[:n]]


def _whole_answer(chat: Chat, messages, config, n: int, whole_problems, until, progress) -> PlannedStoryboard:
    schema = planner_schema(n)
    answer = chat.structured(
        messages,
        PlannedStoryboard,
        name="storyboard",
        validate=whole_problems,
        schema=schema,
        schema_in_prompt=True,
        max_tokens=config.llm_max_tokens or 400 + TOKENS_PER_SHOT * n,
        temperature=0.7 if config.llm_temperature is None else None,
        seed=config.seed,
        repair=lambda problems: render("planner_repair.j2", error="; ".join(problems)),
        on_progress=progress,
        until=until,
        # Cut off at the token limit: the brief's reading is the director's own (tools/brief.py), so the
        # shorter request leaves it out.
        shorter=planner_schema(n, reading=False),
    )
    return answer.value


def _ask_for_shots(chat: Chat, messages, planned, ctx: PlanContext, config, offline, notes, progress, until):
    """The shots still wrong after the rules, asked again alone; what the model cannot fix comes from the
    offline planner."""
    tried: set[int] = set()
    # Judged again after every answer: a shot fixed in its place can fix its twin (two shots alike) too.
    while True:
        bad = review(planned, ctx).shots
        if not (indices := [i for i in sorted(bad) if i not in tried]):
            return planned
        batch = indices[:BATCH]
        tried.update(batch)
        problems = [p for i in batch for p in bad[i]]

        def batch_problems(value: PlannedShots, batch=batch, planned=planned) -> list[str]:
            chosen = picked(value.shots, batch, ctx.shots)
            if chosen is None:
                return [
                    f"expected exactly {len(batch)} shots (shots {numbers(batch)}), got {len(value.shots)}"
                ]
            mended, _ = mend(replace_shots(planned, batch, chosen), ctx, offline)
            found = review(mended, ctx).shots
            return [p for i in batch for p in found.get(i, [])]

        ask = render(
            "planner_shots.j2",
            numbers=numbers(batch),
            count=len(batch),
            problems=problems,
            storyboard=planned.model_dump_json(exclude={"reading"}),
            # Its beat said outright and the other shots' descriptions named, so the model does not repeat them.
            beats=[f"shot {i + 1} shows: {ctx.outline[i]}" for i in batch if i < len(ctx.outline)],
            used=list(dict.fromkeys(s.description for j, s in enumerate(planned.shots) if j not in batch)),
        )
        progress(f"planner: asking again for shot(s) {numbers(batch)} alone: {problems[0]}")
        try:
            if until - time.monotonic() < 2.0:
                raise LLMError("no time left to ask again", kind="budget", detail="no time left to ask again")
            answer = chat.structured(
                [*messages, {"role": "user", "content": ask}],
                PlannedShots,
                name="shots",
                validate=batch_problems,
                schema=shots_schema(len(batch)),
                max_tokens=config.llm_max_tokens or 200 + TOKENS_PER_SHOT * len(batch),
                seed=config.seed,
                on_progress=progress,
                until=until,
            )
            chosen = picked(answer.value.shots, batch, ctx.shots)
            planned, more = mend(replace_shots(planned, batch, chosen), ctx, offline)
            notes += more
        except LLMError as exc:
            why = f"{problems[0]}; {exc.detail[:160]}"
            planned = from_what_it_wrote(planned, batch, bad, ctx, offline, notes, why)


def _plan_error(exc: LLMError, config) -> PlanError:
    """The chat module's error in the planner's words; advice names only flags that exist."""
    url, stats = config.llm_base_url, exc.stats
    down = f"the planning endpoint at {url} did not answer"
    if exc.kind in ("timeout", "budget"):
        within = f"{config.llm_timeout:g} s" if exc.kind == "timeout" else "its total time"
        return PlanError(
            f"{down} (no answer within {within}, request {stats.calls}); raise --llm-timeout or "
            "--llm-retries, lower --llm-max-tokens, or use --planner offline"
        )
    if exc.kind in ("connect", "status"):
        last = stats.problems[-1] if stats.problems else exc.detail
        return PlanError(
            f"{down} ({last}, {stats.calls} tries); check --llm-base-url or use --planner offline"
        )
    if exc.kind == "refused" and exc.status is None:
        said = exc.detail.removeprefix("answered with a refusal: ")
        return PlanError(f"the planning model at {url} refused the brief: {said}")
    if exc.kind == "invalid":
        return PlanError(
            f"the planning model at {url} gave no valid storyboard in {stats.calls} tries; last error: "
            f"{stats.problems[-1] if stats.problems else exc.detail}. Try another --llm-model, raise "
            "--llm-retries or --llm-max-tokens, or use --planner offline"
        )
    return PlanError(f"{exc}; or use --planner offline")


def merge_reading(rules: BriefReading, model: PlannedReading | None) -> BriefReading:
    """The rules' reading, completed by the model's where the rules found nothing."""
    if model is None:
        return rules
    update = {k: v for k, v in model.model_dump().items() if v and not getattr(rules, k)}
    return rules.model_copy(update=update)


def _storyboard_from(
    planned, brief: Brief, settings, lang: str, total: float, notes: list[str] | None, mended: list[str]
) -> Storyboard:
    """Program ids and positions, durations rescaled to the film's length, the reading merged, nothing else changed."""
    reading = merge_reading(brief.reading or read_brief_settings(brief.text), planned.reading)
    asked = [max(0.1, float(s.duration)) for s in planned.shots]
    durations = allocate_durations(asked, total)
    if abs(sum(asked) - total) > 0.25 * total:
        mended = [*mended, f"shot durations added up to {sum(asked):g} s for a {total:g} s film; rescaled"]
    beats = split_beats(brief.text)
    scenes = [b.heading for b in beats if b.heading]
    shots = [
        Shot(
            id=f"s{i:02d}",
            index=i,
            kind=s.kind,
            description=s.description.strip(),
            camera=s.camera.strip(),
            lighting=s.lighting.strip(),
            mood=s.mood.strip(),
            duration=d,
            subtitle=s.subtitle.strip(),
            prompt=s.prompt.strip(),
            negative_prompt=s.negative_prompt.strip(),
            expect_text=(s.expect_text or "").strip() or None,
            motion=s.motion,
            speaker=(s.speaker or "").strip() or None,
            subject_kind=s.subject_kind or reading.subject_kind,
            # Scenes in film order spread over the shots: the model is not asked to repeat headings.
            scene=scenes[(i - 1) * len(scenes) // len(planned.shots)] if scenes else "",
        )
        for i, (s, d) in enumerate(zip(planned.shots, durations, strict=True), start=1)
    ]
    # The model's notes are for dialogue left out; without dialogue they are its chatter, not the director's.
    said = (
        [" ".join(n.split()) for n in planned.notes[:3] if n.strip()] if any(b.lines for b in beats) else []
    )
    board_notes = said + mended
    if planned.reading and planned.reading.duration and reading.duration:
        if abs(planned.reading.duration - reading.duration) > 0.5:
            board_notes.append(
                f"the planning model read {planned.reading.duration:g} s, the rules {reading.duration:g} s; "
                f"the film is {total:g} s"
            )
    if notes is not None:
        notes.extend(board_notes)
    title = " ".join(planned.title.split())[:80] or "Untitled"
    return Storyboard(
        title=title,
        lang=lang,
        style=settings.style,
        width=settings.width,
        height=settings.height,
        planner=f"llm:{settings.llm_model}",
        shots=shots,
        notes=board_notes,
    )
