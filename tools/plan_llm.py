"""The LLM planner: a storyboard from an OpenAI-compatible chat endpoint, through tools/llm.py's `Chat`.

    board = plan_llm(brief, config, notes, on_progress=print)      # PlanError when no usable storyboard came

The schema sent (`planner_schema(n)`) is strict-mode compatible (every property required, optional ones nullable)
and holds exactly n shots (minItems = maxItems = n), so a grammar-enforcing server keeps the count. The answer is
parsed and validated by the same pydantic models whatever structured mode the endpoint took, then judged by meaning
(tools/plan_review.py): what rules can mend is mended; a few bad shots are asked again alone (in a follow-up turn
of the same conversation); a storyboard mostly wrong is asked again whole. Shots the model still cannot write come
from the offline planner, with a note.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.beats import MIN_SHOT_SECONDS, PlanError, allocate_durations, split_beats, total_seconds
from tools.brief import is_meta_sentence, is_product_brief, read_brief_settings
from tools.film import Brief, BriefReading, Shot, ShotKind, ShotSeconds, Storyboard
from tools.llm import Chat, LLMError, endpoint_from, strict_schema
from tools.plan_offline import orientation, plan_offline
from tools.plan_review import LANGUAGE_NAMES, PlanContext, mend, replace_shots, review
from tools.templates import render

log = logging.getLogger(__name__)

Motion = Literal["push-in", "pull-out", "pan-left", "pan-right", "drift", "static"]
MOTIONS: tuple[str, ...] = ("push-in", "pull-out", "pan-left", "pan-right", "drift", "static")
SHOT_KINDS: tuple[str, ...] = ShotKind.__args__  # type: ignore[attr-defined]
TOKENS_PER_SHOT = 320  # a shot's JSON is ~150-250 tokens; the rest is room, not a target
BATCH = 4  # shots asked again in one follow-up, at most


class PlannedReading(BaseModel):
    """What the model read in the brief; the same fields as BriefReading."""

    model_config = ConfigDict(extra="forbid")

    duration: float | None = Field(
        default=None, description="Film length in seconds the brief names, or null."
    )
    platforms: list[str] = Field(default_factory=list, description="Platforms named, in order.")
    aspect: str | None = Field(default=None, description="Aspect ratio named (16:9, 9:16, 1:1), or null.")
    product: str | None = Field(default=None, description="The product or subject and its name, or null.")
    subject_kind: str | None = Field(default=None, description="headphones, bottle, shoe, mug, person, ...")
    slogans: list[str] = Field(default_factory=list, description="Quoted slogans, verbatim.")
    price: str | None = Field(default=None, description="The price as written, or null.")
    cta: str | None = Field(default=None, description="The call to action, or null.")
    claims: list[str] = Field(default_factory=list, description="Product claims, e.g. '40-hour battery'.")


class PlannedShot(BaseModel):
    """One shot as the language model writes it. Ids and positions are the program's, so the model gives none."""

    model_config = ConfigDict(extra="forbid")

    kind: ShotKind = Field(description="Shot size or role from the shot grammar.")
    description: str = Field(description="What the shot shows, in one or two sentences.")
    camera: str = Field(description="Framing, lens and movement, e.g. 'close-up, 85mm, slow push-in'.")
    lighting: str = Field(description="Lighting, e.g. 'soft window light, warm key'.")
    mood: str = Field(description="Mood in a few words.")
    motion: Motion = Field(description="Camera motion used to animate the still.")
    duration: ShotSeconds = Field(description="Seconds on screen.")
    subtitle: str = Field(description="One short subtitle line in the film's language; empty for none.")
    prompt: str = Field(description="Detailed English image prompt for a text-to-image model.")
    negative_prompt: str = Field(description="What the image must not show.")
    expect_text: str | None = Field(description="Exact on-image text the shot must show, or null.")
    speaker: str | None = Field(
        default=None, description="Who says the subtitle when it is dialogue, or null."
    )
    subject_kind: str | None = Field(default=None, description="Kind of subject shown: mug, person, ...")


class PlannedStoryboard(BaseModel):
    """The storyboard as the language model writes it; its meaning is judged by tools/plan_review.py."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="A short title for the film.")
    shots: list[PlannedShot] = Field(description="The shots in film order.")
    reading: PlannedReading | None = Field(default=None, description="What the brief asks for.")
    notes: list[str] = Field(default_factory=list, description="Dialogue lines left out to fit, and why.")


class PlannedShots(BaseModel):
    """Some shots written again. Other keys are ignored: a small model asked for two shots often answers with the
    whole storyboard, and the shots asked for are then taken from it by position."""

    model_config = ConfigDict(extra="ignore")

    shots: list[PlannedShot] = Field(description="Only the shots asked for, in the order asked.")


def planner_schema(n: int | None = None) -> dict:
    """The JSON schema sent as `response_format` (strict: every property required, none extra); with `n`,
    `shots` holds exactly n items."""
    schema = strict_schema(PlannedStoryboard.model_json_schema())
    if n:
        schema["properties"]["shots"] |= {"minItems": n, "maxItems": n}
    return schema


def shots_schema(k: int) -> dict:
    schema = strict_schema(PlannedShots.model_json_schema())
    schema["properties"]["shots"] |= {"minItems": k, "maxItems": k}
    return schema


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
    return {"dialogue": dialogue, "directions": directions + headings, "meta": meta}


def plan_llm(
    brief: Brief,
    config,
    notes: list[str] | None = None,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> Storyboard:
    """Plan through the chat endpoint `config` names (a PlannerConfig); PlanError names what went wrong.

    One call asks for the whole storyboard; its answer is mended by rules and, where a few shots are still wrong,
    a follow-up asks for those shots alone (at most `BATCH` a call). `on_progress` gets one line per request.
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
    schema = planner_schema(n)
    variables = {
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
        "schema": json.dumps(schema, ensure_ascii=False),
    }
    messages: list[dict] = [
        {"role": "system", "content": render("planner_system.j2", **variables)},
        {
            "role": "user",
            "content": render("planner_user.j2", brief=brief.text, language=LANGUAGE_NAMES[brief.lang]),
        },
    ]
    offline_board: list[Storyboard] = []

    def offline() -> Storyboard:
        if not offline_board:
            offline_board.append(plan_offline(brief, config.model_copy(update={"shots": n})))
        return offline_board[0]

    def whole_problems(value: PlannedStoryboard) -> list[str]:
        mended, _ = mend(value, ctx, offline)
        found = review(mended, ctx)
        if not found.needs_whole(n):
            return []
        # Asked again whole: say everything, the raw count included even where rules could have fixed it.
        count = [f"expected exactly {n} shots, got {len(value.shots)}"] * (len(value.shots) != n)
        return list(dict.fromkeys(count + found.problems()))

    progress = on_progress or log.info
    board_notes: list[str] = []
    with Chat(endpoint_from(config, "llm")) as chat:
        try:
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
            )
        except LLMError as exc:
            raise _plan_error(exc, config) from None
        planned, mended_notes = mend(answer.value, ctx, offline)
        board_notes += mended_notes
        planned = _ask_for_shots(chat, messages, planned, ctx, config, offline, board_notes, progress)
    for line in board_notes:
        log.info("planner: %s", line)
    return _storyboard_from(planned, brief, config, lang, total, notes, board_notes)


def _ask_for_shots(chat: Chat, messages, planned, ctx: PlanContext, config, offline, notes, progress):
    """The shots still wrong after the rules, asked again alone; what the model cannot fix comes from the
    offline planner."""
    bad = review(planned, ctx).shots
    indices = sorted(bad)
    for start in range(0, len(indices), BATCH):
        batch = indices[start : start + BATCH]
        problems = [p for i in batch for p in bad[i]]

        def batch_problems(value: PlannedShots, batch=batch, planned=planned) -> list[str]:
            picked = _picked(value.shots, batch, ctx.shots)
            if picked is None:
                return [
                    f"expected exactly {len(batch)} shots (shots {_numbers(batch)}), got {len(value.shots)}"
                ]
            mended, _ = mend(replace_shots(planned, batch, picked), ctx, offline)
            found = review(mended, ctx).shots
            return [p for i in batch for p in found.get(i, [])]

        ask = render(
            "planner_shots.j2",
            numbers=_numbers(batch),
            count=len(batch),
            problems=problems,
            storyboard=planned.model_dump_json(exclude={"reading"}),
        )
        progress(f"planner: asking again for shot(s) {_numbers(batch)} alone: {problems[0]}")
        try:
            answer = chat.structured(
                [*messages, {"role": "user", "content": ask}],
                PlannedShots,
                name="shots",
                validate=batch_problems,
                schema=shots_schema(len(batch)),
                max_tokens=config.llm_max_tokens or 200 + TOKENS_PER_SHOT * len(batch),
                seed=config.seed,
                on_progress=progress,
            )
            picked = _picked(answer.value.shots, batch, ctx.shots)
            planned, more = mend(replace_shots(planned, batch, picked), ctx, offline)
            notes += more
        except LLMError as exc:
            board = offline()
            picked = [
                _offline_shot(board.shots[min(i, len(board.shots) - 1)], planned.shots[i]) for i in batch
            ]
            planned = replace_shots(planned, batch, picked)
            notes.append(
                f"shot(s) {_numbers(batch)} from the offline planner: the planning model could not fix "
                f"them ({problems[0]}; {exc.detail[:160]})"
            )
    return planned


def _picked(shots: list, batch: list[int], n: int) -> list | None:
    """The shots asked for: the answer in order, or picked by position from a whole storyboard."""
    if len(shots) == len(batch):
        return shots
    if len(shots) == n:
        return [shots[i] for i in batch]
    return None


def _numbers(batch: list[int]) -> str:
    return ", ".join(str(i + 1) for i in batch)


def _offline_shot(shot: Shot, like: PlannedShot) -> PlannedShot:
    values = {name: getattr(shot, name) for name in PlannedShot.model_fields if hasattr(shot, name)}
    return PlannedShot.model_validate(values | {"duration": like.duration})


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
    durations = allocate_durations([max(0.1, float(s.duration)) for s in planned.shots], total)
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
    board_notes = [" ".join(n.split()) for n in planned.notes if n.strip()] + mended
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
