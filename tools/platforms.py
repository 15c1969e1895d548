"""Marketplace presets for the catalogue: each platform's image size and rules, from prompts/platforms/*.yaml.

    load_platforms(["taobao", "amazon"])  ->  [Platform(name="taobao", width=800, ...), Platform("amazon", ...)]

A preset file names its sources and says which figures could not be confirmed. `aspect_key` groups the
platforms that can share one render (same aspect ratio, same background rule): the catalogue renders once per
group and resizes for each platform in it.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from tools.errors import SettingsError

PRESETS_DIR = Path(__file__).resolve().parents[1] / "prompts" / "platforms"

__all__ = ["Platform", "aspect_key", "known_platforms", "load_platforms"]


class Platform(BaseModel):
    """One marketplace's image: its size and what its main image must be."""

    name: str
    label: str = ""
    aliases: list[str] = Field(default_factory=list)
    width: int = Field(gt=0, le=10000)
    height: int = Field(gt=0, le=10000)
    background: Literal["white", "any"] = Field(description="white: pure (255,255,255) around the product.")
    min_fill: float = Field(ge=0, le=1, description="Least share of the frame's long side the product spans.")
    text_on_main: bool = Field(description="Whether price tags, badges and claims may be drawn on the image.")
    shadow: bool = Field(
        default=True, description="Whether a main on white may show the product's soft contact shadow."
    )
    rules: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="Where the figures come from.")
    unconfirmed: list[str] = Field(default_factory=list, description="Which figures no source confirmed.")


def aspect_key(platform: Platform) -> str:
    """The render a platform can share: its reduced aspect ratio and background rule, e.g. "1x1-white"."""
    # 1242x1660 is 3:4 to the eye (and to a resize); an exact gcd would call it 621:830 and render it alone.
    ratio = Fraction(platform.width, platform.height).limit_denominator(16)
    return f"{ratio.numerator}x{ratio.denominator}-{platform.background}"


@cache
def _presets() -> dict[str, Platform]:
    found: dict[str, Platform] = {}
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        try:
            platform = Platform.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as e:
            raise SettingsError(f"platform preset {path} is malformed: {' '.join(str(e).split())}") from None
        for name in (platform.name, *platform.aliases):
            found[name] = platform
    return found


def known_platforms() -> list[str]:
    """The preset names (aliases left out), sorted."""
    return sorted({p.name for p in _presets().values()})


def load_platforms(names: list[str]) -> list[Platform]:
    """The presets for `names` (names or aliases, any case), in order, each once.

    An unknown name raises SettingsError naming the known ones.
    """
    presets = _presets()
    out: list[Platform] = []
    for raw in names:
        name = raw.strip().casefold().replace("-", "_").replace("/", "_")
        if name not in presets:
            raise SettingsError(f"unknown platform {raw!r}; known platforms: {', '.join(known_platforms())}")
        if presets[name] not in out:
            out.append(presets[name])
    return out
