"""What every critic is given: the take to judge (`CritiqueRequest`), the limits (`Thresholds`) and the
critique's own settings (`CritiqueConfig`, built by the agent with `settings.config(CritiqueConfig)`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.llm_fields import ChatFields


class CritiqueConfig(ChatFields):
    """The run settings the critics and the repair step read; field names are `RunSettings`'s. The chat model
    (`ChatFields`: `planner`, `llm_*`) writes repair rewrites; the vision model judges takes."""

    clip_model: str | None = Field(
        default=None, description="open_clip model name or local folder for CLIP; none/off turns it off."
    )
    vlm_base_url: str | None = Field(default=None, description="OpenAI-compatible vision endpoint.")
    vlm_model: str | None = Field(default=None, description="Vision model name.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Overrides of `Thresholds` by name."
    )
    seed: int = Field(default=0, description="Run seed; each take's seed derives from it.")
    num_inference_steps: int | None = Field(
        default=None, description="The run's steps; where a repair that adds steps starts."
    )


class CritiqueRequest(BaseModel):
    image_path: str = Field(description="Absolute path of the image to judge.")
    prompt: str = Field(description="What the image should show.")
    width: int = Field(description="Width that was asked for.")
    height: int = Field(description="Height that was asked for.")
    expect_text: str | None = Field(default=None, description="On-image text that must be readable.")
    reference_images: list[str] = Field(
        default_factory=list, description="Accepted shots to stay consistent with."
    )
    exact_size: bool = Field(
        default=True,
        description="False when no size was asked (CLI without --size): only the minimum side is checked.",
    )


class Thresholds(BaseModel):
    """Every limit the critics use. Override any of them per run with `RunSettings.thresholds` (name -> value).

    Luminance values are in 0..1. "fail" limits make a take C (re-shoot); "review" limits make it B.
    """

    min_side: int = Field(
        default=256,
        description="Smallest acceptable image side in pixels; a smaller size that was asked for is accepted.",
    )
    size_tolerance: float = Field(
        default=0.02,
        description="How far (fraction) each side may fall short of the asked size before failing.",
    )
    aspect_tolerance: float = Field(
        default=0.03,
        description="Largest relative difference between the image's and the asked aspect ratio.",
    )
    sharpness_fail: float = Field(
        default=0.12,
        description="Contrast-normalised edge strength (strongest 0.5% of Laplacian responses at a 512 px working "
        "size, divided by the luminance range) below which the take is blurred.",
    )
    sharpness_review: float = Field(
        default=0.2, description="Edge strength below which a take is flagged as soft."
    )
    blank_std: float = Field(
        default=0.01,
        description="Luminance standard deviation below which the frame is blank or near-uniform.",
    )
    dark_mean: float = Field(
        default=0.25, description="Mean luminance below which a frame may be under-exposed."
    )
    dark_tail_max: float = Field(
        default=0.35,
        description="Brightest 0.1% luminance below which a dark frame has no highlights at all (under-exposed).",
    )
    bright_mean: float = Field(
        default=0.5, description="Mean luminance above which a frame may be over-exposed."
    )
    bright_tail_min: float = Field(
        default=0.45,
        description="Darkest 0.1% luminance above which a bright frame has no shadows at all (over-exposed).",
    )
    washed_mean: float = Field(
        default=0.93,
        description="Mean luminance above which a nearly all-white frame is checked for lifted blacks.",
    )
    washed_dark_tail: float = Field(
        default=0.15,
        description="Darkest 0.1% luminance above which a nearly all-white frame is washed out (over-exposed); a "
        "white storyboard panel keeps its black lines.",
    )
    blown_fail: float = Field(
        default=0.1,
        description="Share of the picture outside a flat white background that is clipped next to a soft edge "
        "(a texture or gradient burnt to white) above which the take is over-exposed.",
    )
    white_background_share: float = Field(
        default=0.25,
        description="Share of the frame a flat, border-connected white background must cover for the frame to "
        "count as a product on white: its exposure is then judged only by what is blown out (blown_fail), not by "
        "the mean.",
    )
    ocr_cer_fail: float = Field(
        default=0.2, description="Character error rate of the requested text above which the take fails."
    )
    ocr_cer_review: float = Field(
        default=0.0, description="Character error rate above which the take is flagged."
    )
    clip_alignment_fail: float = Field(
        default=0.18,
        description="CLIP image-prompt cosine similarity below which the take fails (ViT-B-32 scale).",
    )
    clip_alignment_review: float = Field(
        default=0.22, description="CLIP alignment below which a take is flagged."
    )
    clip_consistency_fail: float = Field(
        default=0.45,
        description="Mean CLIP image-image similarity to the reference shots below which it fails.",
    )
    clip_consistency_review: float = Field(
        default=0.6, description="Consistency below which a take is flagged."
    )
    frozen_motion: float = Field(
        default=0.004,
        description="Mean absolute luminance difference (first to last frame and the largest frame to frame) "
        "below which a clip counts as frozen.",
    )
    flicker_jump: float = Field(
        default=0.02,
        description="Largest brightness spike (a frame brighter or darker than both neighbours, by the smaller of "
        "the two differences in mean luminance) above which a clip flickers.",
    )
    drift_fail: float = Field(
        default=0.12,
        description="Mean absolute difference (at 64 px) between first frame and still above which "
        "the clip has drifted from the still it was animated from.",
    )


def thresholds_for(config: CritiqueConfig) -> Thresholds:
    """The run's thresholds: defaults overridden by `config.thresholds`; an unknown name is an error."""
    overrides = dict(config.thresholds)
    valid = set(Thresholds.model_fields)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"unknown critique threshold(s) {', '.join(unknown)}; valid names: {', '.join(sorted(valid))}"
        )
    return Thresholds(**overrides)
