"""The LLM planner: a storyboard from an OpenAI-compatible chat endpoint with a JSON-schema response format.

The schema (`planner_schema(n)`) holds exactly n shots (minItems = maxItems = n) and the brief's reading as
structured fields. The answer is validated here, and what the program checks (count, language, no repeated shot,
no meta words or stage directions in a subtitle, every dialogue line said or noted) is shown back to the model.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from tools.beats import MIN_SHOT_SECONDS, PlanError, allocate_durations, split_beats, total_seconds
from tools.brief import CJK, LATIN, detect_lang, is_meta_sentence, is_product_brief, read_brief_settings
from tools.film import Brief, BriefReading, Shot, ShotKind, Storyboard
from tools.plan_offline import orientation
from tools.templates import render

log = logging.getLogger(__name__)

Motion = Literal["push-in", "pull-out", "pan-left", "pan-right", "drift", "static"]
MOTIONS: tuple[str, ...] = ("push-in", "pull-out", "pan-left", "pan-right", "drift", "static")
SHOT_KINDS: tuple[str, ...] = ShotKind.__args__  # type: ignore[attr-defined]
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}
# Words about the deliverable that never belong in a subtitle.
META_IN_SUBTITLE = re.compile(
    r"\b\d+\s*-?\s*(?:seconds?|secs?)\b|\b(?:instagram|tiktok|douyin|xiaohongshu|youtube)\b|\d+\s*秒|抖音|小红书|竖屏|横屏",
    re.IGNORECASE,
)


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
    duration: float = Field(description="Seconds on screen.")
    subtitle: str = Field(description="One short subtitle line in the film's language; empty for none.")
    prompt: str = Field(description="Detailed English image prompt for a text-to-image model.")
    negative_prompt: str = Field(description="What the image must not show.")
    expect_text: str | None = Field(description="Exact on-image text the shot must show, or null.")
    speaker: str | None = Field(
        default=None, description="Who says the subtitle when it is dialogue, or null."
    )
    subject_kind: str | None = Field(default=None, description="Kind of subject shown: mug, person, ...")


class PlannedStoryboard(BaseModel):
    """The storyboard as the language model writes it. Validation context: `shots` (count) and `lang`."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="A short title for the film.")
    shots: list[PlannedShot] = Field(description="The shots in film order.")
    reading: PlannedReading | None = Field(default=None, description="What the brief asks for.")
    notes: list[str] = Field(default_factory=list, description="Dialogue lines left out to fit, and why.")

    @model_validator(mode="after")
    def _matches_request(self, info: ValidationInfo) -> PlannedStoryboard:
        context = info.context or {}
        if (n := context.get("shots")) and len(self.shots) != n:
            raise ValueError(f"expected exactly {n} shots, got {len(self.shots)}")
        lang = context.get("lang")
        for i, shot in enumerate(self.shots, start=1):
            if (
                shot.subtitle.strip()
                and lang
                and detect_lang(shot.subtitle) != lang
                and _has_letters(shot.subtitle)
            ):
                raise ValueError(f"shot {i}: subtitle {shot.subtitle!r} is not in {LANGUAGE_NAMES[lang]}")
            if not shot.prompt.strip():
                raise ValueError(f"shot {i}: prompt is empty")
            if META_IN_SUBTITLE.search(shot.subtitle) or any(
                m and m in shot.subtitle for m in context.get("meta", ())
            ):
                raise ValueError(
                    f"shot {i}: subtitle {shot.subtitle!r} speaks about the deliverable; subtitles are copy"
                )
            if any(d and d in shot.subtitle for d in context.get("directions", ())):
                raise ValueError(
                    f"shot {i}: subtitle {shot.subtitle!r} is a stage direction; subtitles are copy"
                )
        for field in ("description", "prompt"):
            values = [getattr(s, field).strip() for s in self.shots]
            if dupes := sorted({v for v in values if values.count(v) > 1}):
                raise ValueError(f"two shots have the same {field}: {dupes[0]!r}; every shot must differ")
        said = " ".join(s.subtitle for s in self.shots) + " " + " ".join(self.notes)
        if missing := [line for line in context.get("dialogue", ()) if line not in said]:
            raise ValueError(
                f"dialogue line {missing[0]!r} is in no subtitle; say every line whole, or name it in notes"
            )
        return self


LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}


def _has_letters(text: str) -> bool:
    return bool(LATIN.search(text) or CJK.search(text))


def planner_schema(n: int | None = None) -> dict:
    """The JSON schema sent as `response_format`, no extra keys; with `n`, `shots` holds exactly n items."""
    schema = PlannedStoryboard.model_json_schema()
    if n:
        schema["properties"]["shots"] |= {"minItems": n, "maxItems": n}
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


def _content_json(content: str) -> str:
    """The JSON inside an answer; servers that ignore `response_format` often wrap it in a ```json fence."""
    if m := re.search(r"```(?:json)?\s*(.*?)```", content, re.DOTALL):
        return m.group(1).strip()
    return content.strip()


def _endpoint_down(settings, why: str) -> PlanError:
    return PlanError(
        f"the planning endpoint at {settings.llm_base_url} did not answer ({why}); "
        "check --llm-base-url or use --planner offline"
    )


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "…"


def plan_llm(brief: Brief, settings, notes: list[str] | None = None) -> Storyboard:
    """Plan through an OpenAI-compatible chat endpoint with a JSON-schema response format.

    The answer is validated with pydantic here rather than by `client.chat.completions.parse`, because a bad answer
    must be shown back to the model with its validation error (parse raises and drops it), and because compatible
    servers that ignore `response_format` may wrap the JSON in a code fence. Transport failures (connection,
    timeout, 5xx, 429) are retried by the client itself `llm_retries` times; invalid answers are retried here
    `llm_retries` times; then PlanError.
    """
    import openai  # heavy enough to keep off the import path of the offline planner

    n = settings.shot_count()
    total = total_seconds(settings.film_seconds(), n)
    lang = settings.lang or brief.lang
    schema = planner_schema(n)
    context = {"shots": n, "lang": lang} | script_context(brief)
    variables = {
        "shots": n,
        "duration": f"{total:g}",
        "width": settings.width,
        "height": settings.height,
        "orientation": orientation(settings.width, settings.height),
        "style": settings.style,
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
    # Local servers (vLLM, SGLang, Ollama, llama.cpp) take any key; the client insists on one being set.
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "EMPTY"
    client = openai.OpenAI(
        base_url=settings.llm_base_url,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_retries,
    )
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "storyboard", "schema": schema, "strict": True},
    }
    error = ""
    for attempt in range(1, settings.llm_retries + 2):
        try:
            completion = client.chat.completions.create(
                model=settings.llm_model,
                messages=messages,
                response_format=response_format,
                seed=settings.seed,
                temperature=0.7,
            )
        except openai.APITimeoutError:
            raise _endpoint_down(
                settings, f"no answer within {settings.llm_timeout:g} s, {settings.llm_retries + 1} tries"
            ) from None
        except openai.APIConnectionError as exc:
            raise _endpoint_down(
                settings, f"connection failed: {_first_line(exc.__cause__ or exc, 160)}"
            ) from None
        except openai.AuthenticationError:
            raise PlanError(
                f"the planning endpoint at {settings.llm_base_url} rejected the API key; set "
                "CD_LLM_API_KEY (or OPENAI_API_KEY) or use --planner offline"
            ) from None
        except openai.NotFoundError as exc:
            raise PlanError(
                f"the planning endpoint at {settings.llm_base_url} has no model {settings.llm_model!r} "
                f"or no chat route ({_first_line(exc.message, 160)}); check --llm-model and "
                "--llm-base-url"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise _endpoint_down(
                    settings,
                    f"HTTP {exc.status_code} after {settings.llm_retries + 1} tries: "
                    f"{_first_line(exc.message, 160)}",
                ) from None
            raise PlanError(
                f"the planning endpoint at {settings.llm_base_url} refused the request "
                f"(HTTP {exc.status_code}: {_first_line(exc.message, 200)})"
            ) from None
        if not completion.choices:
            error = "the answer had no choices"
            continue
        message = completion.choices[0].message
        if getattr(message, "refusal", None):
            raise PlanError(f"the planning model refused the brief: {_first_line(message.refusal)}")
        content = message.content or ""
        try:
            planned = PlannedStoryboard.model_validate_json(_content_json(content), context=context)
        except ValidationError as exc:
            error = _validation_summary(exc)
            log.warning("planner answer %d of %d was invalid: %s", attempt, settings.llm_retries + 1, error)
            messages += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": render("planner_repair.j2", error=error)},
            ]
            continue
        return _storyboard_from(planned, brief, settings, lang, total, notes)
    raise PlanError(
        f"the planning model at {settings.llm_base_url} gave no valid storyboard in "
        f"{settings.llm_retries + 1} tries; last error: {error}. Try another --llm-model, raise "
        "--llm-retries, or use --planner offline"
    )


def _validation_summary(exc: ValidationError, limit: int = 8) -> str:
    """The validation errors in a few lines a model (and a person) can act on."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(x) for x in err["loc"]) or "answer"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def merge_reading(rules: BriefReading, model: PlannedReading | None) -> BriefReading:
    """The rules' reading, completed by the model's where the rules found nothing."""
    if model is None:
        return rules
    update = {k: v for k, v in model.model_dump().items() if v and not getattr(rules, k)}
    return rules.model_copy(update=update)


def _storyboard_from(
    planned, brief: Brief, settings, lang: str, total: float, notes: list[str] | None
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
    board_notes = [" ".join(n.split()) for n in planned.notes if n.strip()]
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
