"""Run settings: one typed object, passed to the graph as its context.

Every field has a description and, where it makes sense, an environment fallback (CD_<FIELD>). The object is
saved as `settings.json` in the run directory (without secrets) so that `--resume` continues with exactly the
settings the run started with.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, model_validator

from tools.errors import SettingsError

C = TypeVar("C", bound=BaseModel)

__all__ = ["PLATFORMS", "RATIO_SIZES", "RunSettings", "SettingsError", "resolve_size"]

# Named platform presets: aspect ratio and the default pixel size for it.
PLATFORMS: dict[str, tuple[str, int, int]] = {
    "instagram": ("1:1", 1080, 1080),
    "tiktok": ("9:16", 720, 1280),
    "douyin": ("9:16", 720, 1280),
    "reels": ("9:16", 720, 1280),
    "shorts": ("9:16", 720, 1280),
    "youtube": ("16:9", 1280, 720),
    "xiaohongshu": ("3:4", 960, 1280),
}
# Default pixel sizes for plain ratios (the long side 1280, both sides multiples of 16).
RATIO_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "9:16": (720, 1280),
    "16:9": (1280, 720),
    "4:5": (1024, 1280),
    "3:4": (960, 1280),
    "4:3": (1280, 960),
    "21:9": (1344, 576),
}
MAX_SIDE = 4096
MIN_SIDE = 64


def resolve_size(platform: str | None, size: str | None) -> tuple[str, int, int]:
    """Return (platform label, width, height) from `--platform` and `--size`.

    `platform` is a preset name or a ratio W:H; `size` is WxH and overrides the pixel size.
    """
    label = (platform or "youtube").strip().lower()
    if label in PLATFORMS:
        _, w, h = PLATFORMS[label]
    elif label in RATIO_SIZES:
        w, h = RATIO_SIZES[label]
    elif m := re.fullmatch(r"(\d{1,3}):(\d{1,3})", label):
        a, b = int(m[1]), int(m[2])
        if a == 0 or b == 0 or max(a, b) / min(a, b) > 4:
            raise SettingsError(
                f"--platform {platform!r} is not a usable aspect ratio: both sides must be positive and the ratio "
                "at most 4:1. Try 16:9, 9:16, 1:1, 4:5 or 3:4."
            )
        long = 1280
        if a >= b:
            w, h = long, round(long * b / a / 16) * 16
        else:
            w, h = round(long * a / b / 16) * 16, long
    else:
        names = ", ".join(sorted(PLATFORMS) + sorted(RATIO_SIZES))
        raise SettingsError(f"unknown --platform {platform!r}. Use one of: {names}, or a ratio such as 5:4.")
    if size:
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", size)
        if not m:
            raise SettingsError(f"--size {size!r} is not WIDTHxHEIGHT, e.g. 1280x720.")
        w, h = int(m[1]), int(m[2])
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise SettingsError(
            f"size {w}x{h} is out of range: each side must be between {MIN_SIDE} and {MAX_SIDE}."
        )
    # Video encoders (yuv420p) need even sides.
    w, h = w - w % 2, h - h % 2
    return label, w, h


def _env(name: str, default=None):
    return os.environ.get(f"CD_{name.upper()}", default)


class RunSettings(BaseModel):
    """Everything a run needs to know beyond the brief. Passed as the graph's context."""

    run_dir: str = Field(description="The run directory; every artefact is written under it.")
    platform: str = Field(
        default="youtube", description="Platform preset or aspect ratio the film is made for."
    )
    platforms: list[str] = Field(
        default_factory=list,
        description="Every platform a cut is delivered for, in order; the first is final.mp4 (and `platform`), "
        "each other gets final-<platform>.mp4. Empty: just `platform`.",
    )
    width: int = Field(default=1280, description="Frame width in pixels.")
    height: int = Field(default=720, description="Frame height in pixels.")
    fps: int = Field(default=24, description="Frames per second of clips and the cut.")
    shots: int | None = Field(
        default=None, ge=1, le=60, description="Number of shots; derived from duration if None."
    )
    duration: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="Film length in seconds; None: 2.5 s per shot with --shots, else 20.",
    )
    lang: Literal["en", "zh"] | None = Field(
        default=None, description="Subtitle language; the brief's if None."
    )
    style: str = Field(default="", description="Visual style words added to every image prompt.")
    seed: int = Field(default=0, description="Base seed; each shot and take derives its own from it.")
    max_takes: int = Field(
        default=3, ge=1, le=10, description="Cap on takes per shot (the repair loop's cap)."
    )
    crossfade: float = Field(default=0.4, ge=0, le=2, description="Crossfade between clips, seconds.")

    planner: Literal["offline", "llm", "auto"] = Field(
        default_factory=lambda: _env("planner", "offline"),
        description="offline: deterministic rules; llm: the chat endpoint (fail if down); auto: llm, else offline.",
    )
    llm_base_url: str | None = Field(
        default_factory=lambda: _env("llm_base_url"), description="OpenAI-compatible base URL for planning."
    )
    llm_model: str | None = Field(default_factory=lambda: _env("llm_model"), description="Chat model name.")
    llm_api_key: SecretStr | None = Field(
        default_factory=lambda: (lambda k: SecretStr(k) if k else None)(
            _env("llm_api_key") or os.environ.get("OPENAI_API_KEY")
        ),
        exclude=True,
        description="API key (CD_LLM_API_KEY or OPENAI_API_KEY); never written to disk.",
    )
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds before one LLM request times out.")
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed or invalid LLM answer.")

    image_backend: Literal["auto", "draft", "diffusers", "remote"] = Field(
        default_factory=lambda: _env("image_backend", "auto"),
        description="Which image backend renders takes.",
    )
    image_model: str | None = Field(
        default_factory=lambda: _env("image_model"), description="Diffusers model id or local folder."
    )
    image_server: str | None = Field(
        default_factory=lambda: _env("image_server"), description="OpenAI-compatible image server base URL."
    )
    image_server_model: str | None = Field(
        default=None, description="Model name to ask the image server for."
    )
    image_server_timeout: float = Field(
        default=120.0, gt=0, description="Seconds before an image request times out."
    )
    image_server_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a failed image request."
    )
    video_backend: Literal["auto", "motion", "diffusers"] = Field(
        default_factory=lambda: _env("video_backend", "auto"), description="Which video backend makes clips."
    )
    video_model: str | None = Field(
        default_factory=lambda: _env("video_model"), description="Diffusers video model id or local folder."
    )
    lora: list[str] = Field(default_factory=list, description="LoRA weights PATH[:weight] for style lock.")
    gpu_memory: float | None = Field(
        default=None, description="GPU memory budget in GiB for resident models."
    )
    compile: bool = Field(default=False, description="torch.compile repeated blocks of the image model.")
    quantize: Literal["none", "fp8"] = Field(
        default="none",
        description="fp8: FP8 linear layers in the image model's denoiser (torchao, FP8 GPUs).",
    )
    num_inference_steps: int | None = Field(default=None, description="Override the model's default steps.")

    vlm_base_url: str | None = Field(
        default_factory=lambda: _env("vlm_base_url"),
        description="OpenAI-compatible vision endpoint for critique.",
    )
    vlm_model: str | None = Field(default_factory=lambda: _env("vlm_model"), description="Vision model name.")
    clip_model: str | None = Field(
        default_factory=lambda: _env("clip_model"),
        description="open_clip model name or local folder for CLIP.",
    )
    thresholds: dict[str, float] = Field(default_factory=dict, description="Critique threshold overrides.")
    approve: bool = Field(default=False, description="Stop after planning until the storyboard is approved.")
    reference: list[str] = Field(
        default_factory=list,
        description="Reference images every shot is conditioned on (copied into the run as refs/ref-N.png).",
    )
    variants: list[str] = Field(
        default_factory=list,
        description="Other platforms (presets or ratios) each kept still is also delivered for, by outpainting.",
    )
    anchor: int | None = Field(
        default=None,
        ge=1,
        description="Shoot this shot (1-based) first; its kept take conditions all the others.",
    )

    @model_validator(mode="after")
    def _variants_are_platforms(self):
        try:
            self.variants = list(dict.fromkeys(resolve_size(v, None)[0] for v in self.variants))
        except SettingsError as err:
            raise ValueError(f"--variants: {str(err).replace('--platform ', '')}") from None
        return self

    @model_validator(mode="after")
    def _anchor_within_shots(self):
        if self.anchor is not None and self.shots is not None and self.anchor > self.shots:
            raise ValueError(f"--anchor {self.anchor} is past the last of {self.shots} shots")
        return self

    def config(self, cls: type[C]) -> C:
        """The small typed config a tool takes (its fields are named as the settings' fields)."""
        return cls.model_validate(
            {name: getattr(self, name) for name in cls.model_fields if name in type(self).model_fields}
        )

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    def shot_count(self) -> int:
        """Shots to plan: --shots if given, else one per ~2.5 s of the film."""
        if self.shots:
            return self.shots
        return max(1, min(60, round(self.film_seconds() / 2.5)))

    def film_seconds(self) -> float:
        """The film's length: --duration if given, else 2.5 s per shot when --shots is given, else 20 s."""
        if self.duration:
            return self.duration
        return 2.5 * self.shots if self.shots else 20.0
