"""Fonts: the Noto Sans CJK font the project ships with, for drawn panels (PIL) and burned subtitles (libass).

The font comes from the `manimgx_fonts_cjk` package (a project dependency), so Chinese text draws as Chinese
glyphs on any machine, whatever fonts the machine has. The file is a variable-weight collection of five faces
(JP, KR, SC, TC, HK, in that order); we use the Simplified Chinese face, which also covers Latin text.

ffmpeg's `subtitles` filter (libass) finds fonts through fontconfig; with only `fontsdir` set it still drew
empty boxes for Chinese. A `fonts.conf` that names the font's folder, passed as `FONTCONFIG_FILE`, makes it
draw real glyphs, so `fontconfig_env` writes one and returns the environment for the ffmpeg process.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

FONT_FILE = "NotoSansCJK-VF.otf.ttc"
SC_INDEX = 2  # face order in the collection: JP, KR, SC, TC, HK
FONT_FAMILY = "Noto Sans CJK SC"  # the family name libass matches in force_style FontName
WEIGHTS = ("Thin", "Light", "DemiLight", "Regular", "Medium", "Bold", "Black")

_local = threading.local()


@cache
def font_path() -> Path:
    """Absolute path of the bundled Noto Sans CJK collection; a clear error if the package is missing."""
    try:
        import manimgx_fonts_cjk
    except ImportError as e:
        raise RuntimeError(
            "the CJK font package is missing: install it with `pip install manimgx-fonts-cjk` "
            "(it is a dependency of this project; `pip install -e .` installs it)"
        ) from e
    path = Path(manimgx_fonts_cjk.__file__).resolve().parent / FONT_FILE
    if not path.is_file():
        raise RuntimeError(f"the CJK font file {path} is missing; reinstall manimgx-fonts-cjk")
    return path


def font_dir() -> Path:
    """The folder holding the font, for fontconfig and libass's `fontsdir`."""
    return font_path().parent


def pil_font(size: int, weight: str = "Regular"):
    """A PIL font of the Simplified Chinese face at `size` pixels and a named weight (Regular, Bold, ...).

    Fonts are cached per thread: a FreeType face must not be used from two threads at once, and shots render
    in parallel.
    """
    from PIL import ImageFont

    if weight not in WEIGHTS:
        raise ValueError(f"unknown font weight {weight!r}; use one of {', '.join(WEIGHTS)}")
    size = max(1, int(size))
    fonts = _local.__dict__.setdefault("fonts", {})
    key = (size, weight)
    if key not in fonts:
        font = ImageFont.truetype(str(font_path()), size, index=SC_INDEX)
        # The variable font's default instance is Thin, too faint for a panel or a subtitle.
        font.set_variation_by_name(weight)
        fonts[key] = font
    return fonts[key]


def fontconfig_env(workdir: str | Path) -> dict[str, str]:
    """Write `fonts.conf` (naming only the bundled font's folder) into `workdir`; return env vars for ffmpeg.

    Merge the result into the ffmpeg process's environment so libass resolves `FONT_FAMILY` to the bundled
    font rather than whatever the machine has (or nothing, which draws boxes). The font cache goes in
    `workdir` too, so nothing outside it is written.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        "<fontconfig>\n"
        f"  <dir>{escape(str(font_dir()))}</dir>\n"
        f"  <cachedir>{escape(str(workdir / 'fontconfig-cache'))}</cachedir>\n"
        "</fontconfig>\n",
        encoding="utf-8",
    )
    return {"FONTCONFIG_FILE": str(conf), "FONTCONFIG_PATH": str(workdir)}


def font_subset(text: str, weight: str = "Regular") -> bytes:
    """The Simplified Chinese face cut down to the characters of `text`, at one weight, as OpenType bytes.

    For a page that must show Chinese in a browser with no CJK font (embedded as a base64 @font-face): the whole
    collection is tens of megabytes, a subset for a report's few hundred characters some tens of kilobytes.
    The variable font is fixed at `weight` (static outlines: no browser has to apply variations).
    """
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.varLib import instancer

    if weight not in WEIGHTS:
        raise ValueError(f"unknown font weight {weight!r}; use one of {', '.join(WEIGHTS)}")
    font = TTFont(str(font_path()), fontNumber=SC_INDEX, lazy=True)
    options = subset.Options()
    options.layout_features = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(set(text) | set(" "))))
    subsetter.subset(font)
    font = instancer.instantiateVariableFont(font, {"wght": _WEIGHT_VALUES[weight]})
    buf = io.BytesIO()
    font.save(buf)
    return buf.getvalue()


_WEIGHT_VALUES = {"Thin": 100, "Light": 300, "DemiLight": 350, "Regular": 400, "Medium": 500, "Bold": 700,
                  "Black": 900}  # fmt: skip


# --- text layout ---------------------------------------------------------------------------------------------
# Chinese has no spaces between words, so a line may break between any two CJK characters; Latin text breaks
# at spaces. (The libass inside imageio-ffmpeg is built without Unicode line breaking, so subtitles must arrive
# already wrapped.)
_CJK = r"\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+|\s+")
_NO_LINE_START = set("，。、；：！？）」』》〉】,.;:!?)]}%”’")  # punctuation that must not begin a line


def is_cjk(text: str) -> bool:
    """True when `text` holds any CJK character."""
    return re.search(rf"[{_CJK}]", text) is not None


def display_units(text: str) -> int:
    """Width of `text` in half-em units: full-width (CJK) characters count 2, others 1."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def wrap_text(text: str, max_width: float, measure=display_units, balance: bool = False) -> list[str]:
    """Break `text` into lines no wider than `max_width` as `measure` counts it (pixels or display units).

    Latin words stay whole unless one alone is too wide; CJK text breaks between characters, never before
    closing punctuation. `balance` evens out the line lengths (a subtitle reads better as two similar lines
    than a full line and a stub): the narrowest width that needs no more lines than a plain wrap is found by
    bisection, so the cost is a few plain wraps, each about linear in the text's length.
    """
    text = " ".join(text.split())
    if not text:
        return []
    widths: dict[str, float] = {}

    def width(tok: str) -> float:  # tokens repeat ("的", "the"): each is measured once
        if tok not in widths:
            widths[tok] = measure(tok)
        return widths[tok]

    tokens = _TOKEN.findall(text)
    lines = _greedy(tokens, max_width, width, measure)
    if not balance or len(lines) < 2:
        return lines
    total = sum(width(t) for t in tokens if not t.isspace())
    lo, hi, best = 0.95 * min(max_width, total / len(lines)), max_width, lines
    for _ in range(BALANCE_STEPS):
        mid = (lo + hi) / 2
        trial = _greedy(tokens, mid, width, measure)
        if len(trial) <= len(lines):
            best, hi = trial, mid
        else:
            lo = mid
    return best


BALANCE_STEPS = 10  # bisection steps: the balanced width to within 0.1% of the line width


def _greedy(tokens: list[str], max_width: float, width, measure) -> list[str]:
    """First-fit line breaking; a line's width is kept as a running sum of its tokens', never re-measured."""
    lines: list[str] = []
    line, used, spaced, space = "", 0.0, False, width(" ")
    for tok in tokens:
        if tok.isspace():
            spaced = bool(line)
            continue
        gap = space if spaced else 0.0
        spaced = False
        w = width(tok)
        if not line or used + gap + w <= max_width or tok in _NO_LINE_START:
            line += (" " if gap else "") + tok
            used += gap + w
        else:
            lines.append(line)
            line, used = tok, w
        if used > max_width and len(line) > 1 and tok not in _NO_LINE_START:
            pieces, line = _split_word(line, max_width, measure)
            lines += pieces
            used = measure(line)
    if line:
        lines.append(line)
    return lines


def _split_word(line: str, max_width: float, measure) -> tuple[list[str], str]:
    """Cut a line too wide to fit (one long word) into full pieces and the remainder that fits.

    Each cut grows a prefix by doubling until it no longer fits, then bisects: the measuring stays near one
    piece's length, so a 10,000-character word costs O(n log n), not O(n²).
    """
    pieces = []
    while len(line) > 1:
        fit, over, n = 1, None, 2  # one character is a piece even when it alone is too wide
        while over is None:
            n = min(n, len(line))
            if measure(line[:n]) > max_width:
                over = n
            elif n == len(line):
                break
            else:
                fit, n = n, 2 * n
        if over is None:
            break
        while over - fit > 1:
            mid = (fit + over) // 2
            if measure(line[:mid]) <= max_width:
                fit = mid
            else:
                over = mid
        pieces.append(line[:fit])
        line = line[fit:]
    return pieces, line
