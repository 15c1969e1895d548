"""Lay the copy onto a catalogue image: the price tag, the promo badge and the claims, drawn as text with Pillow
in the brand's font, colours, corner and size (tools/brand.py), never by the image model.

The price tag and the promo badge stack in the brand's corner; the claims stack in the opposite corner, each
line on a plate. Given the product's mask (`avoid`), a group that would cover the product moves to the next
free corner: copy over the real product would fail the fidelity critic. The texts come back exactly as drawn,
one per line, for the OCR critic to read back (`check_copy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tools.brand import Brand, rgba
from tools.film import CriticResult

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
OPPOSITE = {
    "top-left": "bottom-right",
    "top-right": "bottom-left",
    "bottom-left": "top-right",
    "bottom-right": "top-left",
}


@dataclass
class _Badge:
    text: str
    px: int
    fill: tuple[int, int, int, int]
    ink: tuple[int, int, int, int]
    pill: bool = False


def price_text(price: str | float | int, currency: str = "¥") -> str:
    """ "¥199" from 199 or "199"; a price that already carries a currency ("$129", "129元") is kept as given."""
    text = str(price).strip()
    if not text:
        raise ValueError("the price is empty")
    try:
        value = float(text)
    except ValueError:
        return text
    return f"{currency}{value:g}" if value != int(value) else f"{currency}{int(value)}"


def _fit(font_for, text: str, px: int, max_width: float, floor: int) -> int:
    """The largest size from `px` down to `floor` at which `text` fits `max_width`."""
    while px > floor and font_for(px).getlength(text) > max_width:
        px -= 1
    return px


def _lines(brand: Brand, text: str, px: int, max_width: float, max_lines: int = 3) -> list[str]:
    from tools.fonts import wrap_text

    font = brand.pil_font(px)
    return wrap_text(text, max_width, measure=font.getlength)[:max_lines]


def _badge_size(brand: Brand, b: _Badge) -> tuple[int, int]:
    left, top, right, bottom = brand.pil_font(b.px).getbbox(b.text)
    return round(right - left + 0.7 * b.px), round(bottom - top + 0.5 * b.px)


def _stack(brand, badges, corner, size, margin, gap) -> list[tuple[_Badge, tuple[int, int, int, int]]]:
    """Boxes for badges stacked from `corner` inwards."""
    w, h = size
    top, left = corner.startswith("top"), corner.endswith("left")
    y = margin if top else h - margin
    out = []
    for b in badges:
        bw, bh = _badge_size(brand, b)
        x0 = margin if left else w - margin - bw
        y0 = y if top else y - bh
        out.append((b, (x0, y0, x0 + bw, y0 + bh)))
        y = y0 + bh + gap if top else y0 - gap
    return out


def _overlap(boxes, mask: np.ndarray | None, taken: list) -> float:
    """Share of the boxes' area over the product (or over boxes already placed), 1.0 when off the frame."""
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) or 1
    h, w = mask.shape if mask is not None else (None, None)
    hit = 0.0
    for x0, y0, x1, y1 in boxes:
        if x0 < 0 or y0 < 0 or (w is not None and (x1 > w or y1 > h)):
            return 1.0
        if mask is not None:
            hit += float((mask[y0:y1, x0:x1] > 0).sum())
        for t in taken:
            ix, iy = min(x1, t[2]) - max(x0, t[0]), min(y1, t[3]) - max(y0, t[1])
            hit += max(ix, 0) * max(iy, 0) * 4  # copy over copy is worse than copy over product
    return hit / area


def _place_group(brand, badges, prefer, size, margin, gap, mask, taken):
    """The stack at the first corner (from `prefer`) that covers neither product nor copy; else the least bad."""
    best = None
    for corner in (prefer, *[c for c in CORNERS if c != prefer]):
        stack = _stack(brand, badges, corner, size, margin, gap)
        cost = _overlap([box for _, box in stack], mask, taken)
        if cost == 0:
            return stack
        if best is None or cost < best[0]:
            best = (cost, stack)
    return best[1]


def _draw(image: Image.Image, brand: Brand, stack) -> Image.Image:
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for b, (x0, y0, x1, y1) in stack:
        radius = (y1 - y0) // 2 if b.pill else max(2, (y1 - y0) // 5)
        draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=radius, fill=b.fill)
        font = brand.pil_font(b.px)
        left, top, _, _ = font.getbbox(b.text)
        tx = x0 + round(0.35 * b.px) - left
        ty = y0 + round(0.25 * b.px) - top
        draw.text((tx, ty), b.text, font=font, fill=b.ink)
    out = image.convert("RGBA")
    out.alpha_composite(overlay)
    return out.convert("RGB")


def lay_out(
    image: Image.Image,
    price: str | float | int | None = None,
    promo: str | None = None,
    claims: tuple[str, ...] | list[str] = (),
    brand: Brand | None = None,
    avoid: Image.Image | None = None,
    with_boxes: bool = False,
) -> tuple[Image.Image, list[str]] | tuple[Image.Image, list[str], list[tuple[int, int, int, int]]]:
    """(the image with its price tag, promo badge and claims; the texts as drawn, one per line, for OCR), and
    with `with_boxes` each text's plate (x0, y0, x1, y1) too, for `check_copy` to read just there."""
    brand = brand or Brand()
    w, h = image.size
    unit = min(w, h)
    margin, gap = max(4, round(0.04 * unit)), max(2, round(0.015 * unit))
    px = max(14, round(brand.size * unit))
    tc, bc = brand.text_colours, brand.badge_colours
    tags: list[_Badge] = []
    if price is not None and str(price).strip():
        text = price_text(price, brand.currency)
        size = _fit(brand.pil_font, text, px, 0.45 * w, 12)
        tags.append(_Badge(text, size, rgba(bc.price), rgba(tc.price)))
    if promo and promo.strip():
        text = " ".join(promo.split())
        size = _fit(brand.pil_font, text, max(12, round(0.7 * px)), 0.6 * w, 12)
        tags.append(_Badge(text, size, rgba(bc.promo), rgba(tc.promo), pill=True))
    notes: list[_Badge] = []
    claim_px = max(12, round(0.45 * px))
    for claim in claims:
        for line in _lines(brand, " ".join(str(claim).split()), claim_px, 0.6 * w - claim_px):
            notes.append(_Badge(line, claim_px, rgba(bc.claim), rgba(tc.claim)))
    mask = np.asarray(avoid.convert("L").resize(image.size)) if avoid is not None else None
    placed: list = []
    for group, prefer in ((tags, brand.corner), (notes, OPPOSITE[brand.corner])):
        if group:
            placed += _place_group(
                brand, group, prefer, image.size, margin, gap, mask, [b for _, b in placed]
            )
    texts = [b.text for b, _ in placed]
    out = _draw(image, brand, placed) if placed else image.convert("RGB")
    return (out, texts, [box for _, box in placed]) if with_boxes else (out, texts)


def _tiles(image: Image.Image) -> list[Image.Image]:
    """Four overlapping crops (60% of each side) covering the image, and on a large image the whole of it at
    1024 px: a badge's "$" that the crops cut down to "59" on a 2000 px main image reads whole there."""
    w, h = image.size
    tw, th = round(w * 0.6), round(h * 0.6)
    tiles = [image.crop((x, y, x + tw, y + th)) for x in (0, w - tw) for y in (0, h - th)]
    if max(w, h) > 1400:
        scale = 1024 / max(w, h)
        tiles.append(image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS))
    return tiles


def check_copy(
    image: Image.Image,
    texts: list[str],
    thresholds=None,
    boxes: list[tuple[int, int, int, int]] | None = None,
) -> CriticResult:
    """Read the laid-out copy back and score each text's character error rate; passes only when every text
    reads back within the OCR critic's fail limit.

    With `boxes` (lay_out's plates, one per text) each text is read in its own plate by the recogniser alone:
    the layout knows where it drew, so nothing has to find the text. Only when a plate does not read back is
    the whole image searched, as without boxes (the OCR critic's reader, then crops of it)."""
    from tools.critics.inputs import Thresholds
    from tools.critics.ocr import best_substring_distance, normalise_text, read_line, read_text

    th = thresholds or Thresholds()
    if not texts:
        return CriticResult(name="ocr", ran=False, not_run_reason="no copy laid out")
    if boxes is not None and len(boxes) == len(texts):
        got = [normalise_text(read_line(image.crop(box))) for box in boxes]
        cers = [
            best_substring_distance(normalise_text(t), g)[0] / max(len(normalise_text(t)), 1)
            for t, g in zip(texts, got, strict=True)
        ]
        if max(cers) <= th.ocr_cer_fail:
            return _copy_result(texts, cers, len(boxes), th, read="plates")
    lines = read_text(image)
    haystacks = ["".join(normalise_text(t) for t, _, _ in lines)]

    def cer_of(target: str) -> float:
        return min(best_substring_distance(target, h)[0] for h in haystacks) / max(len(target), 1)

    if any(cer_of(normalise_text(t)) > th.ocr_cer_fail for t in texts):
        # rapidocr's detector works on a downscaled frame and can miss a small badge on a large image that it
        # reads at once in a crop or at a smaller size: read those too.
        haystacks += ["".join(normalise_text(t) for t, _, _ in read_text(tile)) for tile in _tiles(image)]
    return _copy_result(texts, [cer_of(normalise_text(t)) for t in texts], len(lines), th, read="image")


def _copy_result(texts: list[str], cers: list[float], lines: int, th, read: str) -> CriticResult:
    from tools.film import Issue

    issues = [
        Issue(
            category="text",
            reason=f'laid-out text "{t}" reads back with character error rate {c:.2f}',
            critic="ocr",
        )
        for t, c in zip(texts, cers, strict=True)
        if c > th.ocr_cer_review
    ]
    return CriticResult(
        name="ocr",
        ran=True,
        passed=max(cers) <= th.ocr_cer_fail,
        scores={
            "ocr.cer": max(cers),
            "ocr.cer_mean": float(np.mean(cers)),
            "ocr.lines": float(lines),
            "ocr.read_in_plates": 1.0 if read == "plates" else 0.0,
        },
        issues=issues,
    )
