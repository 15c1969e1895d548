"""The REST API's request and response bodies (pydantic): what /openapi.json documents."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.jobs import FilmStatus
from agent.operation_args import Change, ReviseShot
from tools.film import ShotKind

MAX_BRIEF = 20_000  # characters, as the chat reads at most
MAX_REFERENCES = 4


class FilmOptions(BaseModel):
    """The film's own options (those of `main.py run`); the models and endpoints are the server's."""

    model_config = ConfigDict(extra="forbid")

    shots: int | None = Field(default=None, ge=1, le=60)
    duration: float | None = Field(default=None, gt=0, le=600)
    platform: str | None = Field(default=None, max_length=200, description="tiktok, instagram, 9:16, a,b …")
    size: str | None = Field(default=None, max_length=20, description="WxH, overriding the platform's.")
    lang: Literal["en", "zh"] | None = None
    style: str | None = Field(default=None, max_length=200)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    max_takes: int | None = Field(default=None, ge=1, le=10)
    thresholds: dict[str, float] | None = None
    variants: list[str] | None = Field(default=None, max_length=8)
    anchor: int | None = Field(default=None, ge=1)


class FilmRequest(BaseModel):
    brief: str = Field(description="The brief or script, at most 20,000 characters.")
    options: FilmOptions = Field(default_factory=FilmOptions)
    approve: bool = Field(default=False, description="Stop after planning until POST .../approve.")
    references: list[str] = Field(
        default_factory=list,
        max_length=MAX_REFERENCES,
        description="Reference images (base64 PNG/JPEG/WebP) every shot is conditioned on; re-encoded here.",
    )


class FilmCreated(BaseModel):
    id: str
    status: FilmStatus


class FilmView(BaseModel):
    id: str
    status: FilmStatus
    progress: float = Field(description="0 to 1.")
    brief: str
    storyboard: dict | None = None
    files: list[str] = Field(default_factory=list, description="Paths relative to the run directory.")
    film: str | None = Field(default=None, description="The final cut's path, once done.")
    cuts: dict[str, str] = Field(default_factory=dict, description="Platform → its cut's path.")
    error: str | None = None
    created: float
    updated: float


class FilmSummary(BaseModel):
    id: str
    status: FilmStatus
    progress: float
    brief: str
    created: float
    updated: float = 0.0
    error: str | None = None
    chat: bool = Field(default=False, description="The film has a chat (GET .../messages).")
    resumable: bool = Field(
        default=False,
        description="Failed or cancelled: POST .../resume continues it from its run folder.",
    )


class ChatEntry(BaseModel):
    role: Literal["user", "director"]
    text: str
    time: float | None = None


class MessageRequest(BaseModel):
    text: str = Field(max_length=MAX_BRIEF)


class MessageReply(BaseModel):
    reply: str
    status: FilmStatus


class ShotPatch(BaseModel):
    """Fields of one shot to change (any subset); a changed description, camera or look re-writes its prompt."""

    model_config = ConfigDict(extra="forbid")

    kind: ShotKind | None = None
    description: str | None = Field(default=None, max_length=600)
    look: str | None = Field(default=None, max_length=200)
    lighting: str | None = Field(default=None, max_length=200)
    mood: str | None = Field(default=None, max_length=200)
    camera: str | None = Field(default=None, max_length=200)
    motion: Literal["push-in", "pull-out", "pan-left", "pan-right", "drift", "static"] | None = None
    subtitle: str | None = Field(default=None, max_length=200)
    duration: float | None = Field(default=None, gt=0, le=60)
    prompt: str | None = Field(default=None, max_length=2000)

    def revise(self, n: int) -> ReviseShot:
        return ReviseShot(shots=[n], **self.model_dump(exclude_none=True))


class ShotChanged(BaseModel):
    change: Change
    storyboard: dict


class RedoRequest(BaseModel):
    note: str = Field(default="", max_length=1000)


class TakeView(BaseModel):
    n: int
    path: str
    grade: str | None
    passed: bool | None
    issues: list[str]
    repair: str | None
    kept: bool


class TakesView(BaseModel):
    shot: int
    shot_id: str
    message: str
    takes: list[TakeView]


class ReviewItem(BaseModel):
    """One thing flagged for a person: a film's kept take (`take`: shot, shot_id, take) or a catalogue's image
    (`image`: sku, scene, platform; `film_id` is then the catalogue's id)."""

    kind: Literal["take", "image"] = "take"
    film_id: str
    shot: int | None = None
    shot_id: str | None = None
    take: int | None = None
    sku: str | None = None
    scene: str | None = None
    platform: str | None = None
    path: str = Field(description="The image, relative to its run (or catalogue) folder.")
    url: str = Field(default="", description="Where this key downloads the image.")
    grade: str | None
    issues: list[str] = Field(description="Why it is flagged: the critique's reasons.")
    decision: str | None


class ReviewRequest(BaseModel):
    action: Literal["approve", "reject", "redo"]
    note: str = Field(default="", max_length=1000)


class ImageReviewRequest(ReviewRequest):
    """A decision on one catalogue image, named as `main.py review` names it."""

    sku: str = Field(max_length=200)
    scene: str = Field(max_length=200)
    platform: str = Field(max_length=200)


MAX_PRODUCTS = 5000
MAX_PHOTOS = 200


class CatalogueRequest(BaseModel):
    """A product catalogue: rows as `main.py catalogue` reads them from JSONL, and optional product photos."""

    model_config = ConfigDict(extra="forbid")

    products: list[dict] = Field(
        min_length=1,
        max_length=MAX_PRODUCTS,
        description="Rows with sku, name, category (and color, material, price, promo, claims, image, scenes, "
        "platforms); `image` names one of `photos`.",
    )
    photos: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_PHOTOS,
        description="Product photos by file name (letters, digits, . _ -), base64; re-encoded here.",
    )
    platforms: list[str] | None = Field(
        default=None, max_length=20, description="Default: taobao,jd,amazon,instagram."
    )
    scenes: list[str] = Field(
        default_factory=list, max_length=20, description="Empty: the category's scenes."
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    max_takes: int | None = Field(default=None, ge=1, le=10)
    render_side: int = Field(default=1024, ge=64, le=2048)
    shadow: bool = Field(
        default=True,
        description="False: main images on white with no shadow at all, as `main.py catalogue --no-shadow`.",
    )


class CatalogueView(BaseModel):
    id: str
    status: FilmStatus
    progress: float
    products: int
    platforms: list[str]
    grades: dict[str, int] = Field(default_factory=dict, description="Images made so far, by grade.")
    files: list[str] = Field(default_factory=list, description="Paths relative to the catalogue folder.")
    error: str | None = None
    created: float
    updated: float


class ImageGenerationRequest(BaseModel):
    """OpenAI's images.generate body; fields the director does not use (quality, style, user) are accepted."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=4000)
    model: str | None = None
    n: int = Field(default=1, ge=1, le=4)
    size: str = Field(default="1024x1024", max_length=20)
    response_format: Literal["b64_json", "url"] = "b64_json"
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class ImageDatum(BaseModel):
    b64_json: str
    revised_prompt: str | None = None
    critique: dict = Field(default_factory=dict, description="The director's critique of this image.")


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageDatum]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "creative-director"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
