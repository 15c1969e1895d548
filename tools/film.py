"""The film's vocabulary: pydantic models for everything the tools make, the graph carries and the run
directory records. Both agent/ and tools/ use them; of the project this module imports only tools/text_safety.py.

Media travel as paths relative to the run directory, never as images or tensors. Every model here is plain
data (JSON-serialisable) so that the SQLite checkpointer and `manifest.json` can hold it as it is.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from tools.text_safety import clean_model_text

__all__ = [
    "AudioMix",
    "Brief",
    "BriefReading",
    "Clip",
    "CriticResult",
    "Critique",
    "Cut",
    "Grade",
    "Issue",
    "IssueCategory",
    "Repair",
    "Shot",
    "ShotKind",
    "ShotResult",
    "Storyboard",
    "Take",
    "Variant",
    "VoiceLine",
]  # fmt: skip

ShotKind = Literal[
    "establishing", "wide", "medium", "close-up", "insert", "hero", "detail", "over-the-shoulder"
]
Grade = Literal["A", "B", "C"]
IssueCategory = Literal[
    "subject",  # subject missing or wrong
    "count",
    "composition",
    "text",  # requested on-image text missing or wrong
    "artifacts",  # anatomy and artifacts
    "style",  # style consistency with the other shots
    "product",  # product fidelity
    "resolution",
    "aspect",
    "sharpness",
    "exposure",
    "blank",
    "motion",  # clip frozen, flickering or drifting
    "backend",  # the backend failed or refused to produce the take
]


class BriefReading(BaseModel):
    """What the brief's own words ask for: length, platforms, format, subject and the copy it gives."""

    duration: float | None = Field(default=None, description="Film length in seconds the brief names.")
    platforms: list[str] = Field(default_factory=list, description="Platform presets named, in order.")
    aspect: str | None = Field(default=None, description="Aspect ratio the brief names, e.g. 9:16.")
    lang: Literal["en", "zh"] | None = Field(default=None, description="Language of the brief.")
    product: str | None = Field(default=None, description="The product or subject and its name.")
    subject_kind: str | None = Field(default=None, description="Kind of subject: headphones, mug, person...")
    setting: str | None = Field(
        default=None, description="Where a film about one thing is set, e.g. 'rainy street'."
    )
    slogans: list[str] = Field(default_factory=list, description="Quoted slogans and taglines, verbatim.")
    price: str | None = Field(default=None, description="The price as written, e.g. ¥899 or $49.")
    cta: str | None = Field(default=None, description="The call to action, e.g. 'Order now'.")
    claims: list[str] = Field(default_factory=list, description="Product claims, e.g. '40-hour battery'.")


class Brief(BaseModel):
    """What the person asked for, as given."""

    text: str = Field(description="The brief or script text.")
    lang: Literal["en", "zh"] = Field(description="Language of the brief; subtitles default to it.")
    source: str = Field(
        default="argument", description="Where the brief came from: argument, stdin or a file name."
    )
    reading: BriefReading | None = Field(default=None, description="What the brief asks for; None: not read.")


MAX_SHOT_SECONDS = 600.0  # the longest film the settings allow


def shot_seconds(value: float) -> float:
    """A shot's length as it enters (a model's answer, an edited storyboard): finite, above 0, at most the
    longest film. Infinity or 1e308 from a model is refused with this message, which the model is shown."""
    if not math.isfinite(value) or value <= 0 or value > MAX_SHOT_SECONDS:
        raise ValueError(
            f"a shot's duration must be a number of seconds above 0 and at most {MAX_SHOT_SECONDS:g}, "
            f"not {value!r}"
        )
    return value


# The type of every shot length a model writes (Shot.duration, the LLM planner's PlannedShot.duration).
ShotSeconds = Annotated[float, AfterValidator(shot_seconds)]
# Lengths a shot's text is clamped to where it enters (a model's answer, an edited storyboard.json): far above
# what a good shot needs, low enough that wrapping, prompts and subtitle files stay cheap.
SHOT_TEXT_LIMITS = {
    "description": 1200,
    "camera": 300,
    "lighting": 300,
    "mood": 200,
    "subtitle": 400,
    "prompt": 2000,
    "negative_prompt": 1000,
    "expect_text": 200,
    "motion": 40,
    "subject_kind": 80,
    "scene": 300,
    "speaker": 80,
}


class Shot(BaseModel):
    """One shot of the storyboard. `id` is always assigned by the program (s01, s02, ...).

    Its text is cleaned where it is built (tools/text_safety.py: no NUL or control characters, each field at most
    `SHOT_TEXT_LIMITS` long; a clamp is logged), and its duration is a finite number of seconds, so nothing a
    model wrote can break ffmpeg, libass or the line wrapping later.
    """

    id: str = Field(description="Program-assigned id, e.g. s01; used in file names.")
    index: int = Field(description="1-based position in the film.")
    kind: ShotKind = Field(description="Shot size or role from the shot grammar.")
    description: str = Field(description="What the shot shows, in one or two sentences.")
    camera: str = Field(description="Framing, lens and movement, e.g. 'close-up, 85mm, slow push-in'.")
    lighting: str = Field(description="Lighting, e.g. 'soft window light, warm key'.")
    mood: str = Field(description="Mood in a few words, e.g. 'calm, premium'.")
    duration: float = Field(gt=0, description="Seconds on screen.")
    subtitle: str = Field(
        default="", description="One short subtitle line in the film's language; empty for none."
    )
    prompt: str = Field(description="Detailed English image prompt for a text-to-image model.")
    negative_prompt: str = Field(default="", description="What the image must not show.")
    expect_text: str | None = Field(
        default=None, description="Exact on-image text the shot must show, or null."
    )
    motion: str = Field(default="push-in", description="Camera motion used to animate the still.")
    subject_kind: str | None = Field(default=None, description="Kind of subject shown: mug, person, ...")
    scene: str = Field(default="", description="The scene heading the shot belongs to, '' when none.")
    speaker: str | None = Field(
        default=None, description="Who says the subtitle when it is dialogue, or null."
    )
    voiceover: str = Field(
        default="", description="The line the voice-over speaks during the shot, '' for none."
    )

    @field_validator(*SHOT_TEXT_LIMITS)
    @classmethod
    def _clean_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        limit = SHOT_TEXT_LIMITS[info.field_name]
        cleaned = clean_model_text(value, limit)
        if len(value) > limit:
            logging.getLogger(__name__).warning(
                "shot %s cut from %d to %d characters", info.field_name, len(value), len(cleaned)
            )
        if not cleaned and cls.model_fields[info.field_name].default is None:
            return None
        return cleaned

    @field_validator("duration")
    @classmethod
    def _finite_duration(cls, value: float) -> float:
        return shot_seconds(value)


class Storyboard(BaseModel):
    """The plan: the list of shots plus the settings they were planned for."""

    title: str
    lang: Literal["en", "zh"]
    style: str = ""
    width: int
    height: int
    planner: str = Field(description="Which planner wrote it: offline or llm:<model>.")
    shots: list[Shot]
    notes: list[str] = Field(
        default_factory=list,
        description="What a person should know: dialogue lines dropped to fit, conflicts.",
    )

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.shots)


class Issue(BaseModel):
    """One thing a critic found wrong with a take or clip."""

    category: IssueCategory
    reason: str
    critic: str
    region: tuple[int, int, int, int] | None = Field(
        default=None, description="Pixel box (x0, y0, x1, y1) of the broken region, when the critic knows it."
    )


class CriticResult(BaseModel):
    """What one critic said. A critic that could not run says so; it never counts as a pass."""

    name: str
    ran: bool
    passed: bool | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    issues: list[Issue] = Field(default_factory=list)
    not_run_reason: str | None = None
    calls: int = Field(
        default=0, ge=0, description="Remote model calls this critic made (the budget counts them)."
    )


class Critique(BaseModel):
    """The verdict on one take or clip, from the critics that ran."""

    passed: bool
    grade: Grade
    scores: dict[str, float] = Field(default_factory=dict)
    issues: list[Issue] = Field(default_factory=list)
    critics: list[CriticResult] = Field(default_factory=list)

    @property
    def critics_run(self) -> list[str]:
        return [c.name for c in self.critics if c.ran]

    @property
    def critics_not_run(self) -> list[str]:
        return [c.name for c in self.critics if not c.ran]


class Repair(BaseModel):
    """How a take differs from its parent and why."""

    actions: list[str] = Field(description="e.g. new-seed, rewrite-prompt, more-steps, inpaint-region.")
    reason: str


class Provenance(BaseModel):
    """What made an output and what it cost: shared by every backend result and every record of the run (Take,
    Clip, Variant; tools' ImageResult and AnimateResult). The fields come first in each record's JSON."""

    backend: str
    model: str
    parameters: dict = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)


class Take(Provenance):
    """One rendered still of a shot, with its provenance and critique."""

    shot_id: str
    n: int = Field(description="1-based take number within the shot.")
    path: str = Field(description="Image path relative to the run directory.")
    seed: int
    prompt: str
    negative_prompt: str = ""
    parent: int | None = Field(default=None, description="Take number this one repairs.")
    repair: Repair | None = None
    critique: Critique | None = None
    error: str | None = Field(default=None, description="Backend error; the take then has no image.")


class Clip(Provenance):
    """One animated shot."""

    shot_id: str
    take: int = Field(description="The take the clip was animated from.")
    path: str
    motion: str
    duration: float
    fps: int
    width: int
    height: int
    critique: Critique | None = None


class Variant(Provenance):
    """The kept still delivered for another platform: outpainted to its aspect ratio (or resized when it matches)."""

    shot_id: str
    platform: str = Field(description="Platform preset or ratio, as given to --variants.")
    take: int = Field(description="The kept take it was made from.")
    path: str
    width: int
    height: int
    mode: str = Field(description="outpaint (new borders painted), or resize (same aspect ratio).")
    seed: int
    critique: Critique | None = None
    error: str | None = None


class ShotResult(BaseModel):
    """What one shot's branch hands back to the film: its takes, the kept take and its clip."""

    shot_id: str
    takes: list[Take]
    best: int | None = Field(description="Number of the kept take; None if no take produced an image.")
    flagged: bool = Field(description="True when the kept take did not pass (cap reached) or needs review.")
    clip: Clip | None = None
    variants: list[Variant] = Field(default_factory=list, description="The kept still for other platforms.")
    error: str | None = Field(
        default=None, description="Why the branch failed: the exception it raised (type: message, and where)."
    )


class VoiceLine(BaseModel):
    """One spoken line: what was said, by which engine and voice, and how long it lasts."""

    shot_id: str
    text: str
    engine: str = Field(description="piper, espeak-ng or openai.")
    model: str = Field(description="The voice model (file or endpoint model name).")
    voice: str
    lang: str
    path: str = Field(description="WAV path relative to the run directory (under audio/).")
    duration: float = Field(description="Seconds of audio in the file.")
    onset: float = Field(description="Seconds of leading silence before the speech starts.")
    speech: float = Field(
        description="Seconds from the onset to the end of the speech (trailing silence off)."
    )
    start: float | None = Field(default=None, description="Where the line starts in the cut, seconds.")


class BeatMove(BaseModel):
    """One shot boundary under --cut-to-beat: where it was, the beat it moved to (None: it stayed) and why not."""

    between: str = Field(description="The two shots the boundary joins, 's01|s02'.")
    before: float = Field(description="Seconds into the cut before the move (the middle of the crossfade).")
    after: float | None = Field(description="The beat it moved to, seconds; None when it stayed.")
    why: str = Field(default="", description="Why it stayed, '' when it moved.")


class AudioMix(BaseModel):
    """The cut's sound track and what it measured."""

    path: str = Field(description="AAC file under audio/, relative to the run directory.")
    voice: list[VoiceLine] = Field(default_factory=list)
    music: str | None = Field(default=None, description="The music file used, as given.")
    music_volume: float | None = None
    target_lufs: float
    integrated_lufs: float = Field(description="Measured with ebur128 on the encoded file.")
    true_peak_dbtp: float = Field(description="Measured with ebur128 on the encoded file.")
    notes: list[str] = Field(default_factory=list, description="What a person should know.")
    unfit: list[str] = Field(default_factory=list, description="Shots whose voice line did not fit the film.")
    tempo_bpm: float | None = Field(default=None, description="The music's tempo, with --cut-to-beat.")
    beat_moves: list[BeatMove] = Field(default_factory=list, description="Every boundary (--cut-to-beat).")


class Cut(BaseModel):
    """The assembled film."""

    path: str
    srt: str
    duration: float
    width: int
    height: int
    fps: int
    lang: str
    shots: list[str]
    platform: str = Field(default="", description="The platform this cut is framed for (tiktok, 1:1, ...).")
    audio: AudioMix | None = Field(default=None, description="The sound track; None: the cut is silent.")
