"""What the LLM planner asks for and gets back: the pydantic models of a storyboard as a model writes it, and the
JSON schemas sent as `response_format` (strict-mode compatible: every property required, optional ones nullable;
counts carried as minItems = maxItems so a grammar-enforcing server keeps them).

    planner_schema(n)   the whole storyboard, exactly n shots
    shots_schema(k)     k shots written again or in a batch
    outline_schema(n)   the outline of short calls: a title and n one-line beats
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.film import Shot, ShotKind, ShotSeconds
from tools.llm import strict_schema

Motion = Literal["push-in", "pull-out", "pan-left", "pan-right", "drift", "static"]
MOTIONS: tuple[str, ...] = ("push-in", "pull-out", "pan-left", "pan-right", "drift", "static")
SHOT_KINDS: tuple[str, ...] = ShotKind.__args__  # type: ignore[attr-defined]
TOKENS_PER_SHOT = 320  # a shot's JSON is ~150-250 tokens; the rest is room, not a target
# Sent as maxLength / maxItems, so a grammar-enforcing server cannot loop inside one field (a 0.5B model wrote
# "Noise cancellation." into `slogans` until the token limit). Answers are not rejected for length.
MAX_CHARS = {"title": 80, "description": 200, "camera": 90, "lighting": 90, "mood": 60, "subtitle": 120,
             "prompt": 400, "negative_prompt": 160, "expect_text": 80, "speaker": 40, "subject_kind": 30,
             "aspect": 8, "product": 80, "setting": 80, "price": 24, "cta": 60, "beats": 120, "notes": 160,
             "slogans": 80, "claims": 80, "platforms": 16}  # fmt: skip
MAX_ITEMS = {"notes": 3, "slogans": 3, "claims": 3, "platforms": 4}


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
    setting: str | None = Field(default=None, description="Where a film about one thing is set, or null.")
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


def bounded(schema: dict) -> dict:
    """`schema` with every array bounded (`MAX_ITEMS`) and every string field bounded (`MAX_CHARS`), nullable
    ones too, in place."""

    def limit(node: dict, name: str) -> None:
        for branch in node.get("anyOf", [node]):
            if branch.get("type") == "string" and name in MAX_CHARS:
                branch["maxLength"] = MAX_CHARS[name]
            elif branch.get("type") == "array":
                if name in MAX_ITEMS:
                    branch.setdefault("maxItems", MAX_ITEMS[name])
                limit(branch.get("items", {}), name)

    for obj in [schema, *schema.get("$defs", {}).values()]:
        for name, prop in obj.get("properties", {}).items():
            limit(prop, name)
    return schema


def planner_schema(n: int | None = None, *, reading: bool = True) -> dict:
    """The JSON schema sent as `response_format` (strict: every property required, none extra, every array and
    string bounded); with `n`, `shots` holds exactly n items. `reading=False` leaves the brief's reading out
    (the director reads the brief itself, tools/brief.py): the shorter request after a cut-off answer."""
    schema = bounded(strict_schema(PlannedStoryboard.model_json_schema()))
    if n:
        schema["properties"]["shots"] |= {"minItems": n, "maxItems": n}
    if not reading:
        del schema["properties"]["reading"], schema["$defs"]["PlannedReading"]
        schema["required"].remove("reading")
    return schema


def shots_schema(k: int) -> dict:
    schema = bounded(strict_schema(PlannedShots.model_json_schema()))
    schema["properties"]["shots"] |= {"minItems": k, "maxItems": k}
    return schema


def picked(shots: list, batch: list[int], n: int) -> list | None:
    """The shots asked for: the answer in order, or picked by position from a whole storyboard."""
    if len(shots) == len(batch):
        return shots
    if len(shots) == n:
        return [shots[i] for i in batch]
    return None


def numbers(batch: list[int]) -> str:
    return ", ".join(str(i + 1) for i in batch)


def offline_shot(shot: Shot, like: PlannedShot | None = None) -> PlannedShot:
    """An offline planner's shot as the model would have written it (with `like`'s duration when given)."""
    values = {name: getattr(shot, name) for name in PlannedShot.model_fields if hasattr(shot, name)}
    return PlannedShot.model_validate(values | ({"duration": like.duration} if like else {}))


class PlannedOutline(BaseModel):
    """The first of the short calls: the film's title and one line per shot. Other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(description="A short title for the film.")
    beats: list[str] = Field(description="One line per shot, in film order: what the shot shows.")


def outline_schema(n: int) -> dict:
    schema = bounded(strict_schema(PlannedOutline.model_json_schema()))
    schema["properties"]["beats"] |= {"minItems": n, "maxItems": n}
    return schema
