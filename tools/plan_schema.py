"""What the LLM planner asks for and gets back: the pydantic models of a storyboard as a model writes it, and the
JSON schemas sent as `response_format` (strict-mode compatible: every property required, optional ones nullable;
counts carried as minItems = maxItems so a grammar-enforcing server keeps them).

    planner_schema(n)   the whole storyboard, exactly n shots
    shots_schema(k)     k shots written again or in a batch
    outline_schema(n)   the outline of short calls: a title and n one-line beats
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from tools.film import BriefReading, Shot, ShotKind, ShotSeconds
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


def _fields(model: type[BaseModel], names: tuple[str, ...], required: tuple[str, ...] = (), **types) -> dict:
    """`model`'s fields `names`, in that order, as create_model arguments: each with its description and
    default (none for those `required`), and its type unless `types` gives another. The film model's own
    constraints and validators stay with it; what a model writes is checked by the types given here."""
    fields = {}
    for name in names:
        field = model.model_fields[name]
        if name in required:
            kept = {}
        elif field.default_factory is not None:
            kept = {"default_factory": field.default_factory}
        else:
            kept = {"default": field.default}
        fields[name] = (types.get(name, field.annotation), Field(description=field.description, **kept))
    return fields


PlannedReading = create_model(
    "PlannedReading",
    __config__=ConfigDict(extra="forbid"),
    __doc__="What the model read in the brief: BriefReading's fields but the language (the rules detect it).",
    **_fields(BriefReading, tuple(n for n in BriefReading.model_fields if n != "lang")),
)
# Shot's fields a model writes, in the order it writes them (ids, positions, scene and voice-over are ours).
_WRITTEN = ("kind", "description", "camera", "lighting", "mood", "motion", "duration", "subtitle", "prompt",
            "negative_prompt", "expect_text", "speaker", "subject_kind")  # fmt: skip
PlannedShot = create_model(
    "PlannedShot",
    __config__=ConfigDict(extra="forbid"),
    __doc__="One shot as the language model writes it; a reply without a required field is asked again.",
    **_fields(Shot, _WRITTEN, required=_WRITTEN[:-2], motion=Motion, duration=ShotSeconds),
)


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
