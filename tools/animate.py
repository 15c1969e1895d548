"""Tool: animate. Turns an accepted still into a clip of the shot's duration.

Backends:
- `motion`: the offline default; a camera move over the still (push-in, pull-out, pan, drift) rendered by ffmpeg.
- `diffusers`: image-to-video (LTX-Video, Wan 2.2 TI2V/I2V) or text-to-video (Wan 2.2 T2V) through diffusers.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AnimateRequest(BaseModel):
    image_path: str = Field(description="Absolute path of the still to animate.")
    output_path: str = Field(description="Absolute path of the MP4 to write.")
    prompt: str = ""
    negative_prompt: str = ""
    duration: float
    fps: int
    width: int
    height: int
    motion: str = "push-in"
    seed: int = 0


class AnimateResult(BaseModel):
    path: str
    backend: str
    model: str
    parameters: dict = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)


class VideoBackend:
    name: str = "base"
    model: str = ""

    def animate(self, req: AnimateRequest) -> AnimateResult:  # pragma: no cover - interface
        raise NotImplementedError


def select_video_backend(settings) -> tuple[VideoBackend, str]:
    """Pick the video backend for a run and say why, in one plain line."""
    raise NotImplementedError
