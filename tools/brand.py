"""The brand file (`brand.yaml`): palette, font, the colours of price tags, promo badges and claims, the
corner they go in and their size. Read once per catalogue run; every malformed field is a SettingsError that
names the file and the field.

    palette: ["#E4002B", "#FFFFFF", "#1A1A1A"]   # the brand-colour critic measures images against these
    font: Bold                                   # a weight of the bundled Noto Sans CJK, or a font file path
    corner: top-right                            # top-left | top-right | bottom-left | bottom-right
    size: 0.07                                   # price text height, as a share of the image's short side
    currency: "¥"                                # put before a price given as a bare number
    shadow: none                                 # main images on white with no shadow (default: contact)
    text_colours: {price: "#FFFFFF", promo: "#1A1A1A", claim: "#1A1A1A"}
    badge_colours: {price: "#E4002B", promo: "#FFD400", claim: "#FFFFFFCC"}   # #RRGGBBAA: a see-through plate

Every field has a default, so a file may give only its palette.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tools.errors import SettingsError

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


def _hex(value: str) -> str:
    if not isinstance(value, str) or not _HEX.match(value.strip()):
        raise ValueError(f"{value!r} is not a hex colour like #1A2B3C (or #1A2B3CFF with alpha)")
    return value.strip().upper()


def rgb(colour: str) -> tuple[int, int, int]:
    """(r, g, b) of a #RRGGBB or #RRGGBBAA colour."""
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def rgba(colour: str) -> tuple[int, int, int, int]:
    """(r, g, b, a) of a #RRGGBB (opaque) or #RRGGBBAA colour."""
    return (*rgb(colour), int(colour[7:9], 16) if len(colour) == 9 else 255)


HexColour = Annotated[str, BeforeValidator(_hex)]


class TextColours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price: HexColour = "#FFFFFF"
    promo: HexColour = "#1A1A1A"
    claim: HexColour = "#1A1A1A"


class BadgeColours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price: HexColour = "#E4002B"
    promo: HexColour = "#FFD400"
    claim: HexColour = "#FFFFFFCC"


class Brand(BaseModel):
    """How the copy looks on a brand's images, and the palette its images should keep to."""

    model_config = ConfigDict(extra="forbid")

    palette: list[HexColour] = Field(
        default_factory=lambda: ["#E4002B", "#FFFFFF", "#1A1A1A"],
        min_length=1,
        description="The brand's colours as hex; the brand-colour critic measures images against them.",
    )
    font: str = Field(
        default="Bold", description="A weight of the bundled Noto Sans CJK, or a font file path."
    )
    corner: Corner = Field(default="top-right", description="Where the price tag and the promo badge go.")
    size: float = Field(default=0.07, ge=0.02, le=0.3, description="Price text height / image's short side.")
    currency: str = Field(default="¥", max_length=4, description="Put before a price given as a bare number.")
    shadow: Literal["contact", "none"] = Field(
        default="contact", description="none: main images on white with no shadow at all."
    )
    text_colours: TextColours = Field(
        default_factory=TextColours,
        description="Text colour of the price tag, the promo badge and the claims.",
    )
    badge_colours: BadgeColours = Field(
        default_factory=BadgeColours,
        description="Fill of the price tag, the promo badge and the plate behind the claims.",
    )

    def pil_font(self, size: int):
        """The brand's font at `size` px: a bundled weight, else the font file (it must cover the copy's script)."""
        from PIL import ImageFont

        from tools.fonts import WEIGHTS, pil_font

        if self.font in WEIGHTS:
            return pil_font(size, self.font)
        return ImageFont.truetype(self.font, size)


def _where(loc: tuple) -> str:
    """A pydantic error location as the YAML reader sees it: badge_colours.price, palette[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_brand(path: str | Path) -> Brand:
    """Read and check a brand file; a relative font path is taken from the file's folder."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"brand file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"brand file {path} cannot be read: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SettingsError(f"brand file {path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"brand file {path} must be a mapping of fields (palette, font, ...), not a list or text"
        )
    try:
        brand = Brand.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = _where(err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = Brand.model_fields if len(err["loc"]) == 1 else TextColours.model_fields
            message = f"unknown field; the fields are {', '.join(known)}"
        raise SettingsError(f"brand file {path}: field {field}: {message}") from None
    if brand.font not in _weights():
        font = Path(brand.font).expanduser()
        font = font if font.is_absolute() else path.parent / font
        if not font.is_file():
            raise SettingsError(
                f"brand file {path}: field font: {brand.font!r} is neither a font file nor a weight "
                f"of the bundled font ({', '.join(_weights())})"
            )
        brand = brand.model_copy(update={"font": str(font.resolve())})
    return brand


def _weights() -> tuple[str, ...]:
    from tools.fonts import WEIGHTS

    return WEIGHTS


def colour_name(colour: str) -> str:
    """The nearest plain colour word for a #RRGGBB colour (tools/draft_white.COLOUR_WORDS' names)."""
    from tools.draft_white import COLOUR_WORDS

    c = rgb(colour)
    # A saturated colour is named by a hue (a dark navy is blue, not black); a grey one by a neutral.
    chromatic = max(c) - min(c) > 40
    names = [n for n, (_, v) in COLOUR_WORDS.items() if (max(v) - min(v) > 40) == chromatic]
    return min(names, key=lambda n: sum((x - y) ** 2 for x, y in zip(c, COLOUR_WORDS[n][1], strict=True)))


def palette_phrase(palette: list[str]) -> str:
    """The palette as a prompt says it: "brand colours #E4002B red, #FFFFFF white" (the draft reads the hex)."""
    return "brand colours " + ", ".join(f"{c[:7]} {colour_name(c)}" for c in palette)
