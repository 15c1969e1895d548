"""Tool: critique. Scores a take (or a clip) and grades it A/B/C; plans the repair of a failing take.

Critics: technical (resolution, aspect, sharpness, exposure, blank) always runs offline; CLIP (open_clip),
a VLM verdict (OpenAI-compatible vision endpoint) and OCR read-back (rapidocr) run when they can. A critic that
cannot run is recorded as not run, never as a pass.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.state import Critique, Shot, Take


class CritiqueRequest(BaseModel):
    image_path: str = Field(description="Absolute path of the image to judge.")
    prompt: str = Field(description="What the image should show.")
    width: int = Field(description="Width that was asked for.")
    height: int = Field(description="Height that was asked for.")
    expect_text: str | None = Field(default=None, description="On-image text that must be readable.")
    reference_images: list[str] = Field(default_factory=list, description="Accepted shots to stay consistent with.")


class RepairPlan(BaseModel):
    """The next attempt for a failing shot: what changes, and why."""

    prompt: str
    negative_prompt: str = ""
    seed: int
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    mask_region: tuple[int, int, int, int] | None = None
    init_take: int | None = Field(default=None, description="Take number to edit instead of rendering afresh.")
    actions: list[str]
    reason: str


def critique_image(req: CritiqueRequest, settings) -> Critique:
    """Run every critic that can run on one still and grade it."""
    raise NotImplementedError


def critique_clip(clip_path: str, still_path: str, settings) -> Critique:
    """Judge a clip: frozen, flickering, or drifting from the still it was animated from."""
    raise NotImplementedError


def plan_repair(shot: Shot, takes: list[Take], settings) -> RepairPlan:
    """Turn the last take's critique into the next attempt; never repeats an earlier attempt exactly."""
    raise NotImplementedError
