"""Tool: generate image. Renders one take of a shot as a still.

Backends (chosen by `RunSettings.image_backend`, never by the graph):
- `draft`: the offline default; draws a legible storyboard panel (no weights, no network).
- `diffusers`: text-to-image through a diffusers pipeline loaded by id or local folder (see tools/models.py).
- `remote`: an OpenAI-compatible `/v1/images/generations` server (SGLang Diffusion, vLLM-Omni, OpenAI).

Input is an `ImageRequest`, output an `ImageResult`. A backend that fails for reasons of content or service
(refusal, timeout, bad answer) raises `BackendError`; the graph records it on the take and re-shoots.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.state import Shot


class BackendError(RuntimeError):
    """The backend could not produce this take (server error, refusal, timeout, out of memory after retry)."""


class ImageRequest(BaseModel):
    """One still to render. Argument names follow diffusers."""

    prompt: str
    negative_prompt: str = ""
    width: int
    height: int
    seed: int
    num_inference_steps: int | None = Field(default=None, description="None: the model's default.")
    guidance_scale: float | None = Field(default=None, description="None: the model's default.")
    output_path: str = Field(description="Absolute path of the PNG to write.")
    shot: Shot | None = Field(default=None, description="The shot, for backends that draw from its fields.")
    take: int = 1
    init_image: str | None = Field(default=None, description="Image to edit (img2img / inpaint), absolute path.")
    mask_region: tuple[int, int, int, int] | None = Field(default=None, description="Box to inpaint.")
    reference_images: list[str] = Field(default_factory=list, description="Reference images for consistency.")
    strength: float | None = None


class ImageResult(BaseModel):
    path: str
    backend: str
    model: str
    seed: int
    parameters: dict = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)


class ImageBackend:
    """Base of image backends: `name` and `model` go into the manifest; `generate` renders one request."""

    name: str = "base"
    model: str = ""

    def generate(self, req: ImageRequest) -> ImageResult:  # pragma: no cover - interface
        raise NotImplementedError


def select_image_backend(settings) -> tuple[ImageBackend, str]:
    """Pick the image backend for a run and say why, in one plain line."""
    raise NotImplementedError
