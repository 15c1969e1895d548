"""Run settings: one typed object, passed to the graph as its context.

Every field has a description; its `CD_<FIELD>` environment variable is its fallback (pydantic-settings), and
the command line's flags are generated from the fields and their `Flag` (agent/flags.py): flag name, help,
choices and type all come from here. The object is saved as `settings.json` in the run directory (without secrets) so that
`--resume` continues with exactly the settings the run started with.

Precedence: a flag the user gave, then what the brief itself asks for (`brief_settings`), then `CD_*`, then the
default.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.errors import SettingsError
from tools.llm import Endpoint

if TYPE_CHECKING:
    from agent.backends import Backends

C = TypeVar("C", bound=BaseModel)

__all__ = ["PLATFORMS", "RATIO_SIZES", "Flag", "RunSettings", "SettingsError", "resolve_size", "split_commas"]

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


def split_commas(value: Any) -> Any:
    """`a,b` (a flag or a CD_ variable) as a list; lists pass through."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


@dataclass(frozen=True)
class Flag:
    """How a field appears on the command line. Fields without one are not flags.

    group: which commands take it ("film": run and storyboard; "run": run only; "models": run, storyboard,
    critique). name: the flag when it is not `--<field-name>`. append: repeatable. split: a comma list.
    """

    group: Literal["film", "run", "models"]
    name: str | None = None
    help: str | None = None
    metavar: str | None = None
    append: bool = False
    split: bool = False
    nargs: str | None = None
    const: Any = None
    negatable: bool = False  # a bool flag that also has --no-<name>


class RunSettings(BaseSettings):
    """Everything a run needs to know beyond the brief. Passed as the graph's context."""

    model_config = SettingsConfigDict(
        env_prefix="CD_", extra="ignore", populate_by_name=True, validate_default=True
    )

    run_dir: str = Field(description="The run directory; every artefact is written under it.")
    shots: Annotated[int | None, Flag("film")] = Field(
        default=None, ge=1, le=60, description="Number of shots (default: one per ~2.5 s of the film)."
    )
    duration: Annotated[float | None, Flag("film")] = Field(
        default=None,
        gt=0,
        le=600,
        description="Film length in seconds (default: the brief's, else 2.5 s per shot with --shots, else 20).",
    )
    platform: Annotated[
        str,
        Flag(
            "film",
            help="instagram, tiktok, douyin, youtube, xiaohongshu, or a ratio like 9:16; a comma list "
            "(tiktok,instagram) makes one cut per platform, the first is final.mp4 (default: the brief's)",
        ),
    ] = Field(default="youtube", description="Platform preset or aspect ratio the film is made for.")
    platforms: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Every platform a cut is delivered for, in order; the first is final.mp4 (and `platform`), "
        "each other gets final-<platform>.mp4. Empty: just `platform`.",
    )
    width: int = Field(default=1280, description="Frame width in pixels.")
    height: int = Field(default=720, description="Frame height in pixels.")
    fps: int = Field(default=24, description="Frames per second of clips and the cut.")
    lang: Annotated[Literal["en", "zh"] | None, Flag("film")] = Field(
        default=None, description="Subtitle language (default: the brief's)."
    )
    style: Annotated[str, Flag("film")] = Field(
        default="", description="Visual style words added to every image prompt."
    )
    seed: Annotated[int, Flag("film")] = Field(
        default=0, description="Base seed; each shot and take derives its own from it."
    )
    max_takes: Annotated[int, Flag("run")] = Field(
        default=3, ge=1, le=10, description="Cap on takes per shot (the repair loop's cap)."
    )
    budget_gpu_seconds: Annotated[float | None, Flag("run", metavar="SECONDS")] = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="GPU seconds the film may spend: no re-shoot starts once it would pass them (the best takes "
        "are kept, and the report says so).",
    )  # fmt: skip
    budget_remote_calls: Annotated[int | None, Flag("run", metavar="N")] = Field(
        default=None, ge=1,
        description="Remote calls the film's takes may make (image-server requests, retries included, and vision "
        "critic calls): no re-shoot starts once it would pass them (the best takes are kept, and the report says so).",
    )  # fmt: skip
    crossfade: float = Field(default=0.4, ge=0, le=2, description="Crossfade between clips, seconds.")
    thresholds: Annotated[
        dict[str, float], Flag("run", name="--threshold", metavar="NAME=VALUE", append=True)
    ] = Field(default_factory=dict, description="A critique threshold override (repeatable).")
    approve: Annotated[bool, Flag("run", help="stop after planning until `approve DIR`")] = Field(
        default=False, description="Stop after planning until the storyboard is approved."
    )
    reference: Annotated[
        list[str],
        NoDecode,
        Flag(
            "run",
            metavar="IMG",
            append=True,
            help="image every shot is conditioned on: a product photo, a character (repeatable, 4 at most)",
        ),
    ] = Field(
        default_factory=list,
        description="Reference images every shot is conditioned on (copied into the run as refs/ref-N.png).",
    )
    variants: Annotated[
        list[str],
        NoDecode,
        Flag(
            "run",
            metavar="PLATFORMS",
            split=True,
            help="also deliver every kept still for these platforms, outpainted: tiktok,instagram,4:5",
        ),
    ] = Field(
        default_factory=list,
        description="Other platforms (presets or ratios) each kept still is also delivered for, by outpainting.",
    )
    anchor: Annotated[
        int | None,
        Flag(
            "run",
            metavar="N",
            nargs="?",
            const=1,
            help="shoot shot N (default 1) first; its kept take conditions the other shots",
        ),
    ] = Field(
        default=None,
        ge=1,
        description="Shoot this shot (1-based) first; its kept take conditions all the others.",
    )

    voice: Annotated[bool, Flag("run", negatable=True)] = Field(
        default=True,
        description="Speak the storyboard's voice-over lines (offline voice unless --tts-base-url).",
    )
    tts_base_url: Annotated[str | None, Flag("run", metavar="URL")] = Field(
        default=None, description="OpenAI-compatible /v1/audio/speech endpoint for the voice."
    )
    tts_model: Annotated[str, Flag("run", metavar="NAME")] = Field(
        default="tts-1", description="Speech model at --tts-base-url."
    )
    tts_voice: Annotated[str, Flag("run", metavar="NAME")] = Field(
        default="alloy", description="Voice at --tts-base-url."
    )
    tts_api_key: str | None = Field(default=None, description="Key for the speech endpoint (CD_TTS_API_KEY).")
    music: Annotated[str | None, Flag("run", metavar="FILE")] = Field(
        default=None, description="Music bed: any audio ffmpeg reads, looped or trimmed to the film, ducked."
    )
    music_volume: Annotated[float, Flag("run", metavar="DB")] = Field(
        default=-12.0, ge=-60, le=12, description="Music gain before ducking, dB."
    )
    loudness: Annotated[float | None, Flag("run", metavar="LUFS")] = Field(
        default=None,
        ge=-40,
        le=-5,
        description="Integrated loudness of the cut (default: the platform's, -14).",
    )
    cut_to_beat: Annotated[bool, Flag("run")] = Field(
        default=False, description="Move shot boundaries to the music's nearest beats (needs --music)."
    )

    planner: Annotated[Literal["offline", "llm", "auto"], Flag("models")] = Field(
        default="offline",
        description="offline: deterministic rules; llm: the chat endpoint (fail if down); auto: llm, else offline.",
    )
    llm_base_url: Annotated[str | None, Flag("models")] = Field(
        default=None, description="OpenAI-compatible chat endpoint, e.g. http://localhost:8000/v1."
    )
    llm_model: Annotated[str | None, Flag("models")] = Field(
        default=None, description="Chat model name (key from CD_LLM_API_KEY or OPENAI_API_KEY)."
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("llm_api_key", "CD_LLM_API_KEY", "OPENAI_API_KEY"),
        exclude=True,
        description="API key (CD_LLM_API_KEY or OPENAI_API_KEY); never written to disk, never a flag.",
    )
    llm_timeout: Annotated[float, Flag("models")] = Field(
        default=60.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds one LLM request may take, body included.",
    )
    llm_retries: Annotated[int, Flag("models")] = Field(
        default=2, ge=0, le=10, description="Retries of a failed or invalid LLM answer."
    )
    llm_max_tokens: Annotated[int | None, Flag("models")] = Field(
        default=None, gt=0, description="Cap on the tokens of one LLM answer (default: sized per call)."
    )
    llm_temperature: Annotated[float | None, Flag("models")] = Field(
        default=None, ge=0, le=2, description="LLM sampling temperature (default: the server's)."
    )
    llm_plan: Annotated[Literal["auto", "whole", "batches"], Flag("models")] = Field(
        default="auto",
        description="How the LLM plans: whole (one call), batches (an outline, then a few shots a call, for "
        "small local models), auto (whole, then batches if it times out or is cut off at the token limit).",
    )
    llm_batch: Annotated[int, Flag("models")] = Field(
        default=3, ge=1, le=8, description="Shots asked in one call when the LLM plans in batches."
    )

    image_backend: Annotated[Literal["auto", "draft", "diffusers", "remote"], Flag("models")] = Field(
        default="auto", description="Which image backend renders takes."
    )
    image_model: Annotated[str | None, Flag("models")] = Field(
        default=None, description="Diffusers model id or local folder (e.g. Tongyi-MAI/Z-Image-Turbo)."
    )
    image_server: Annotated[str | None, Flag("models")] = Field(
        default=None, description="OpenAI-compatible image server base URL (SGLang Diffusion, vLLM-Omni)."
    )
    image_server_model: Annotated[str | None, Flag("models")] = Field(
        default=None, description="Model name to ask the image server for."
    )
    image_server_timeout: Annotated[float, Flag("models")] = Field(
        default=120.0, gt=0, allow_inf_nan=False, description="Seconds before one image request times out."
    )
    image_server_retries: Annotated[int, Flag("models")] = Field(
        default=2, ge=0, le=10, description="Retries of a failed image request."
    )
    video_backend: Annotated[Literal["auto", "motion", "diffusers"], Flag("models")] = Field(
        default="auto", description="Which video backend makes clips."
    )
    video_model: Annotated[str | None, Flag("models")] = Field(
        default=None, description="Diffusers video model id or local folder (LTX-Video, Wan 2.2)."
    )
    lora: Annotated[list[str], NoDecode, Flag("models", append=True)] = Field(
        default_factory=list, description="LoRA style lock PATH[:weight] (repeatable)."
    )
    gpu_memory: Annotated[float | None, Flag("models")] = Field(
        default=None, gt=0, allow_inf_nan=False, description="GiB of GPU memory models may keep resident."
    )
    compile: Annotated[bool, Flag("models")] = Field(
        default=False, description="torch.compile the image model's repeated blocks."
    )
    quantize: Annotated[Literal["none", "fp8"], Flag("models")] = Field(
        default="none",
        description="fp8: FP8 linear layers in the image model's denoiser (torchao; GPUs with FP8 tensor cores "
        "such as H100); with --compile, the fastest setting.",
    )
    cuda_graphs: Annotated[bool, Flag("models")] = Field(
        default=False,
        description="Replay the image denoiser's forward from CUDA graphs, one per shape of its inputs (a CUDA "
        "GPU; with --compile --quantize fp8 on an H200 it saved 8 ms of a 0.63 s image at batch 1).",
    )
    compile_cache: Annotated[str | None, Flag("models")] = Field(
        default=None,
        description="Folder that keeps --compile's kernels between runs (Inductor's caches), so the compile is "
        "paid once per machine.",
    )
    compile_aot: Annotated[bool, Flag("models")] = Field(
        default=False,
        description="Run the image denoiser's repeated blocks from AOTInductor packages (Z-Image, bf16): the "
        "first process compiles them into --compile-cache (or ~/.cache/creative-director/compile), later ones "
        "only load them. On an H200 about 1.0 s per image against 1.43 s, but loading took 14-18 s, so a cold film is "
        "slower than without it today (docs/PERFORMANCE.md).",
    )
    render_batch: Annotated[int, Flag("models")] = Field(
        default=4, ge=1, description="Most same-size text-to-image takes rendered in one pipeline call."
    )
    attention: Annotated[
        Literal["auto", "native", "_native_cudnn", "_native_flash", "_native_efficient", "fp8"],
        Flag("models"),
    ] = Field(
        default="auto",
        description="Attention backend of the image model's denoiser (diffusers'): auto leaves the library's "
        "choice; _native_cudnn, _native_flash (needs --render-batch 1), _native_efficient need a CUDA GPU; fp8 is "
        "cuDNN's FP8 attention for Z-Image (H100/H200-class GPU, cudnn-frontend).",
    )
    num_inference_steps: Annotated[int | None, Flag("models", name="--steps")] = Field(
        default=None, ge=1, description="Override the model's default steps."
    )

    vlm_base_url: Annotated[str | None, Flag("models")] = Field(
        default=None, description="OpenAI-compatible vision endpoint for the critic."
    )
    vlm_model: Annotated[str | None, Flag("models")] = Field(default=None, description="Vision model name.")
    clip_model: Annotated[str | None, Flag("models")] = Field(
        default=None, description="open_clip model (name or local folder) for CLIP critique."
    )

    _backends: Backends | None = PrivateAttr(default=None)

    @field_validator("thresholds")
    @classmethod
    def _thresholds_finite(cls, value: dict[str, float]) -> dict[str, float]:
        """NaN or infinity would make every comparison with it false; the names are checked by the critics'
        own table at start (director.check_settings)."""
        bad = [f"{k}={v}" for k, v in value.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: a threshold must be a finite number")
        return value

    @field_validator("platforms", "reference", "variants", "lora", mode="before")
    @classmethod
    def _comma_lists(cls, value):
        return split_commas(value)

    @model_validator(mode="before")
    @classmethod
    def _size_from_platform(cls, data):
        """A platform given without a pixel size (CD_PLATFORM, a saved run) gets the preset's size; platforms given
        without a platform make the first of them the film's own."""
        if isinstance(data, dict) and data.get("platforms") and not data.get("platform"):
            data["platform"] = split_commas(data["platforms"])[0]
        if isinstance(data, dict) and "width" not in data and "height" not in data:
            first = split_commas(data.get("platforms") or []) or (
                [data["platform"]] if "platform" in data else []
            )
            if first:
                try:
                    _, data["width"], data["height"] = resolve_size(first[0], None)
                except SettingsError:
                    pass  # the field validators below name the bad platform
        return data

    @model_validator(mode="after")
    def _platforms_are_platforms(self):
        try:
            self.platform = resolve_size(self.platform, None)[0]
            self.platforms = list(dict.fromkeys(resolve_size(p, None)[0] for p in self.platforms))
        except SettingsError as err:
            raise ValueError(str(err).removeprefix("unknown ")) from None
        if self.platforms and self.platforms[0] != self.platform:
            self.platforms = [self.platform, *(p for p in self.platforms if p != self.platform)]
        return self

    @model_validator(mode="after")
    def _variants_are_platforms(self):
        try:
            self.variants = list(dict.fromkeys(resolve_size(v, None)[0] for v in self.variants))
        except SettingsError as err:
            raise ValueError(f"--variants: {str(err).replace('--platform ', '')}") from None
        return self

    @model_validator(mode="after")
    def _compile_aot_alone(self):
        from tools.speed import aot_clash

        args = (self.compile, self.quantize, self.cuda_graphs, self.attention, bool(self.lora))
        if self.compile_aot and (problem := aot_clash(*args)):
            raise ValueError(problem)
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

    def endpoint(self, which: Literal["llm", "vlm"]) -> Endpoint:
        """The chat ("llm") or vision ("vlm") endpoint of this run; raises SettingsError naming a missing flag.

        The VLM shares the LLM's key, timeout and retries (one person, one set of servers).
        """
        base_url, model = getattr(self, f"{which}_base_url"), getattr(self, f"{which}_model")
        missing = [f"--{which}-base-url" * (not base_url), f"--{which}-model" * (not model)]
        if any(missing):
            raise SettingsError(
                f"the {which.upper()} endpoint needs {' and '.join(m for m in missing if m)} "
                f"(or CD_{which.upper()}_BASE_URL / CD_{which.upper()}_MODEL)"
            )
        return Endpoint(
            base_url=base_url,
            model=model,
            api_key=self.llm_api_key,
            timeout=self.llm_timeout,
            retries=self.llm_retries,
            max_tokens=self.llm_max_tokens,
            temperature=self.llm_temperature,
        )

    def backends(self) -> Backends:
        """The run's image and video backends and their ModelManager: the ones attached, else built now.

        The director attaches them before the graph runs, so every node and the start-up lines share one set.
        A copy whose model settings differ (model_copy keeps private attributes) gets its own.
        """
        from agent.backends import Backends

        with _BACKENDS_LOCK:
            if self._backends is None or not self._backends.fits(self):
                self._backends = Backends.for_settings(self)
            return self._backends

    def attach(self, backends: Backends) -> RunSettings:
        """Use `backends` (kept warm by a server, say) for this run; they must fit its model settings."""
        if not backends.fits(self):
            raise ValueError("these backends were built for other model settings")
        self._backends = backends
        return self

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


# Guards building a run's backends when parallel shot branches ask at once; it caches nothing.
_BACKENDS_LOCK = threading.Lock()
