"""The subject of a draft panel as a sprite: a vector silhouette of its kind, or the reference photo cut out.

A storyboard artist draws the product or the person the shot is about, not a generic blob: headphones are a
headband and two ear cups, a bottle a body, neck and cap. `subject_kind` names the kind from the shot's
`subject_kind` or, failing that, from its words (English and Chinese); `draw_subject` draws it as an RGBA
sprite (flat fill, ink outline, one highlight colour) that the panel places at the shot's framing. With a
reference photo, `reference_sprite` gives the photo itself, its plain background made transparent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tools.subject_words import SUBJECT_WORDS, subject_hits

RGB = tuple[int, int, int]

KINDS = (*SUBJECT_WORDS, "product")
_ALIASES = {"headphone": "headphones", "earbuds": "headphones", "car": "vehicle", "dog": "animal",
            "cat": "animal", "ship": "boat", "people": "person", "figure": "person", "cup": "mug",
            "shoes": "shoe", "sneaker": "shoe", "smartphone": "phone", "box": "product", "package": "product"}  # fmt: skip


_HEADING = re.compile(r"\b(?:INT|EXT)\.[^\n.]*|(?:内景|外景)[^。，,\n]*")
_CLOSE = ("close-up", "detail", "insert", "hero")
_PLACES = ("person", "building", "vehicle")  # kinds a close shot of a product is rarely about


def subject_kind(given: str | None, words: str, shot_kind: str = "medium") -> str:
    """The silhouette to draw: `given` (the shot's `subject_kind`) when it names one, else from `words`.

    From words: the kind named first (a scene heading's "SUBWAY CAR" is a place, not the subject, and is left
    out); in a close shot a product named anywhere wins over a person, a building or a vehicle, since a
    close-up of "her hands on the bottle" is about the bottle. Nothing named: a generic product box.
    """
    if given:
        key = _ALIASES.get(given.strip().lower(), given.strip().lower())
        if key in KINDS:
            return key
        words = f"{given} {words}"
    text = _HEADING.sub(" ", words).lower()
    hits = subject_hits(text)
    if not hits:
        return "product"
    order = sorted(hits, key=lambda k: hits[k])
    if shot_kind in _CLOSE:
        order = [k for k in order if k not in _PLACES] + [k for k in order if k in _PLACES]
    return order[0]


# --- the drawings ---------------------------------------------------------------------------------------------
# Each drawing works in a box of `ASPECT[kind]` × 1 (width × height), scaled to pixels by `P`; `fill` is the
# body, `light` the highlight a key light catches, `ink` the outline an artist's pen gives every shape.


class P:
    """Maps unit coordinates (u across, v down) of the sprite to pixels."""

    def __init__(self, w: int, h: int):
        self.w, self.h = w, h

    def __call__(self, *uv: float) -> list[float]:
        return [c * (self.w if i % 2 == 0 else self.h) for i, c in enumerate(uv)]

    def px(self, v: float) -> int:
        return max(1, round(v * self.h))


Draw = Callable[[ImageDraw.ImageDraw, P, RGB, RGB, RGB, int], None]


def _headphones(d, p, fill, light, ink, lw):
    d.arc(p(0.13, 0.03, 0.87, 0.95), 180, 360, fill=ink, width=p.px(0.11))
    d.arc(p(0.14, 0.04, 0.86, 0.94), 182, 358, fill=fill, width=p.px(0.08))
    d.arc(p(0.19, 0.1, 0.81, 0.9), 200, 340, fill=light, width=p.px(0.02))  # padding on the band
    for x0 in (0.03, 0.69):
        d.rectangle(p(x0 + 0.09, 0.4, x0 + 0.19, 0.56), fill=fill, outline=ink, width=lw)  # yoke
        d.rounded_rectangle(p(x0, 0.5, x0 + 0.28, 0.98), radius=p.px(0.1), fill=fill, outline=ink, width=lw)
        d.ellipse(p(x0 + 0.05, 0.56, x0 + 0.23, 0.92), outline=light, width=max(1, lw))
    d.line(p(0.1, 0.6, 0.1, 0.88), fill=light, width=p.px(0.02))


def _bottle(d, p, fill, light, ink, lw):
    d.rounded_rectangle(p(0.04, 0.3, 0.96, 1.0), radius=p.px(0.06), fill=fill, outline=ink, width=lw)
    d.chord(p(0.04, 0.2, 0.96, 0.42), 180, 360, fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.05, 0.31, 0.95, 0.34), fill=fill)
    d.rectangle(p(0.3, 0.1, 0.7, 0.26), fill=fill, outline=ink, width=lw)
    d.rounded_rectangle(p(0.24, 0.0, 0.76, 0.12), radius=p.px(0.02), fill=light, outline=ink, width=lw)
    d.rectangle(p(0.04, 0.52, 0.96, 0.74), fill=light, outline=ink, width=lw)  # label
    d.line(p(0.2, 0.36, 0.2, 0.95), fill=light, width=p.px(0.03))


def _mug(d, p, fill, light, ink, lw):
    d.ellipse(p(0.52, 0.36, 0.98, 0.84), outline=ink, width=p.px(0.13))
    d.ellipse(p(0.54, 0.38, 0.96, 0.82), outline=fill, width=p.px(0.09))
    d.rounded_rectangle(p(0.02, 0.26, 0.74, 1.0), radius=p.px(0.08), fill=fill, outline=ink, width=lw)
    d.ellipse(p(0.02, 0.2, 0.74, 0.32), fill=light, outline=ink, width=lw)
    d.line(p(0.14, 0.38, 0.14, 0.9), fill=light, width=p.px(0.04))
    for x in (0.26, 0.42):  # steam
        d.arc(p(x - 0.05, 0.0, x + 0.05, 0.1), 90, 270, fill=light, width=lw)
        d.arc(p(x - 0.05, 0.09, x + 0.05, 0.19), 270, 90, fill=light, width=lw)


def _shoe(d, p, fill, light, ink, lw):
    upper = [(0.04, 0.2), (0.3, 0.12), (0.4, 0.34), (0.66, 0.46), (0.9, 0.58), (0.99, 0.74), (0.99, 0.84),
             (0.02, 0.84)]  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in upper], fill=fill, outline=ink, width=lw)
    d.rounded_rectangle(p(0.0, 0.8, 1.0, 1.0), radius=p.px(0.08), fill=light, outline=ink, width=lw)
    for i in range(4):  # laces
        u = 0.36 + i * 0.07
        d.line(p(u, 0.3 + i * 0.05, u + 0.06, 0.42 + i * 0.05), fill=light, width=lw)
    d.line(p(0.06, 0.62, 0.6, 0.66), fill=light, width=lw)


def _phone(d, p, fill, light, ink, lw):
    d.rounded_rectangle(p(0.0, 0.0, 1.0, 1.0), radius=p.px(0.07), fill=fill, outline=ink, width=lw)
    d.rounded_rectangle(p(0.07, 0.04, 0.93, 0.96), radius=p.px(0.05), fill=light)
    d.rounded_rectangle(p(0.38, 0.055, 0.62, 0.085), radius=p.px(0.015), fill=fill)
    for i in range(3):  # a few app tiles catch the screen's light
        d.rounded_rectangle(p(0.16 + i * 0.25, 0.62, 0.34 + i * 0.25, 0.71), radius=p.px(0.02), fill=fill)


def _watch(d, p, fill, light, ink, lw):
    d.rounded_rectangle(p(0.22, 0.0, 0.78, 0.32), radius=p.px(0.03), fill=fill, outline=ink, width=lw)
    d.rounded_rectangle(p(0.22, 0.68, 0.78, 1.0), radius=p.px(0.03), fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.95, 0.46, 1.0, 0.54), fill=fill, outline=ink, width=lw)  # crown
    d.ellipse(p(0.0, 0.225, 0.96, 0.775), fill=fill, outline=ink, width=lw)
    d.ellipse(p(0.1, 0.28, 0.86, 0.72), fill=light, outline=ink, width=lw)
    d.line(p(0.48, 0.5, 0.48, 0.34), fill=ink, width=lw * 2)
    d.line(p(0.48, 0.5, 0.7, 0.56), fill=ink, width=lw)


def _bag(d, p, fill, light, ink, lw):
    d.arc(p(0.25, 0.0, 0.75, 0.6), 180, 360, fill=ink, width=p.px(0.07))
    d.arc(p(0.26, 0.01, 0.74, 0.59), 182, 358, fill=fill, width=p.px(0.04))
    d.polygon([tuple(p(u, v)) for u, v in ((0.08, 0.3), (0.92, 0.3), (1.0, 1.0), (0.0, 1.0))],
              fill=fill, outline=ink, width=lw)  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in ((0.08, 0.3), (0.92, 0.3), (0.86, 0.55), (0.14, 0.55))],
              fill=light, outline=ink, width=lw)  # fmt: skip
    d.rectangle(p(0.44, 0.5, 0.56, 0.62), fill=fill, outline=ink, width=lw)


def _person(d, p, fill, light, ink, lw):
    d.ellipse(p(0.33, 0.0, 0.67, 0.15), fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.44, 0.13, 0.56, 0.19), fill=fill)
    torso = ((0.12, 0.22), (0.3, 0.17), (0.7, 0.17), (0.88, 0.22), (0.92, 0.5), (0.8, 0.5), (0.76, 0.3),
             (0.72, 0.56), (0.28, 0.56), (0.24, 0.3), (0.2, 0.5), (0.08, 0.5))  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in torso], fill=fill, outline=ink, width=lw)
    d.polygon([tuple(p(u, v)) for u, v in ((0.28, 0.55), (0.72, 0.55), (0.7, 1.0), (0.54, 1.0), (0.5, 0.66),
                                           (0.46, 1.0), (0.3, 1.0))], fill=fill, outline=ink, width=lw)  # fmt: skip
    d.arc(p(0.33, 0.0, 0.67, 0.15), 200, 290, fill=light, width=lw)


def _bust(d, p, fill, light, ink, lw):
    """Head and shoulders, for a person in close-up."""
    d.chord(p(0.0, 0.62, 1.0, 1.5), 180, 360, fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.4, 0.5, 0.6, 0.7), fill=fill, outline=ink, width=lw)
    d.ellipse(p(0.27, 0.0, 0.73, 0.62), fill=fill, outline=ink, width=lw)
    d.arc(p(0.27, 0.0, 0.73, 0.62), 190, 260, fill=light, width=lw * 2)
    d.line(p(0.3, 0.9, 0.12, 1.0), fill=light, width=lw)


def _animal(d, p, fill, light, ink, lw):
    for u in (0.22, 0.32, 0.62, 0.72):  # legs
        d.rounded_rectangle(p(u, 0.55, u + 0.07, 1.0), radius=p.px(0.02), fill=fill, outline=ink, width=lw)
    d.line(p(0.12, 0.42, 0.02, 0.2), fill=ink, width=p.px(0.06))  # tail
    d.ellipse(p(0.1, 0.3, 0.82, 0.7), fill=fill, outline=ink, width=lw)
    d.ellipse(p(0.66, 0.06, 0.94, 0.42), fill=fill, outline=ink, width=lw)
    d.ellipse(p(0.86, 0.22, 1.0, 0.36), fill=fill, outline=ink, width=lw)  # snout
    d.polygon([tuple(p(u, v)) for u, v in ((0.68, 0.14), (0.72, 0.0), (0.78, 0.1))], fill=fill, outline=ink,
              width=lw)  # fmt: skip
    d.ellipse(p(0.82, 0.16, 0.85, 0.2), fill=ink)


def _vehicle(d, p, fill, light, ink, lw):
    d.polygon([tuple(p(u, v)) for u, v in ((0.22, 0.42), (0.34, 0.08), (0.7, 0.08), (0.84, 0.42))],
              fill=fill, outline=ink, width=lw)  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in ((0.28, 0.4), (0.37, 0.15), (0.51, 0.15), (0.51, 0.4))], fill=light)
    d.polygon([tuple(p(u, v)) for u, v in ((0.55, 0.4), (0.55, 0.15), (0.67, 0.15), (0.77, 0.4))], fill=light)
    d.rounded_rectangle(p(0.0, 0.38, 1.0, 0.82), radius=p.px(0.12), fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.93, 0.5, 0.99, 0.58), fill=light)  # headlight
    for u in (0.2, 0.78):
        d.ellipse(p(u - 0.09, 0.6, u + 0.09, 1.0), fill=ink)
        d.ellipse(p(u - 0.04, 0.7, u + 0.04, 0.9), fill=light)


def _boat(d, p, fill, light, ink, lw):
    """A folded paper boat, the shape every boat is drawn as in a draft: a hull wider at the top, its two
    folded flaps and the peaked sail in the middle."""
    hull = ((0.0, 0.55), (1.0, 0.55), (0.8, 1.0), (0.2, 1.0))
    d.polygon([tuple(p(u, v)) for u, v in hull], fill=fill, outline=ink, width=lw)
    d.polygon([tuple(p(u, v)) for u, v in ((0.22, 0.55), (0.5, 0.0), (0.78, 0.55))], fill=light, outline=ink,
              width=lw)  # fmt: skip
    d.line(p(0.5, 0.0, 0.5, 0.55), fill=ink, width=lw)  # the centre fold
    d.polygon([tuple(p(u, v)) for u, v in ((0.0, 0.55), (0.22, 0.55), (0.3, 0.78))], fill=light, outline=ink,
              width=lw)  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in ((1.0, 0.55), (0.78, 0.55), (0.7, 0.78))], fill=light, outline=ink,
              width=lw)  # fmt: skip


def _building(d, p, fill, light, ink, lw):
    """A tower with setbacks and a spire, windows lit in a grid."""
    d.rectangle(p(0.48, 0.0, 0.52, 0.12), fill=ink)
    d.rectangle(p(0.32, 0.1, 0.68, 0.3), fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.18, 0.28, 0.82, 0.52), fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.0, 0.5, 1.0, 1.0), fill=fill, outline=ink, width=lw)
    for x0, x1, y0, y1 in ((0.36, 0.64, 0.14, 0.28), (0.22, 0.78, 0.32, 0.5), (0.06, 0.94, 0.54, 0.96)):
        cols, rows = max(1, round((x1 - x0) / 0.14)), max(1, round((y1 - y0) / 0.07))
        for r in range(rows):
            for c in range(cols):
                u, v = x0 + c * (x1 - x0) / cols, y0 + r * (y1 - y0) / rows
                lit = (r * 3 + c) % 4
                d.rectangle(p(u + 0.02, v + 0.01, u + (x1 - x0) / cols - 0.02, v + (y1 - y0) / rows - 0.015),
                            fill=light if lit else ink)  # fmt: skip


def _food(d, p, fill, light, ink, lw):
    d.ellipse(p(0.14, 0.22, 0.86, 0.56), fill=light, outline=ink, width=lw)  # the food piled in the bowl
    for u, v in ((0.3, 0.3), (0.5, 0.26), (0.66, 0.34), (0.42, 0.4)):
        d.ellipse(p(u, v, u + 0.07, v + 0.07), fill=fill)
    d.chord(p(0.04, 0.0, 0.96, 1.0), 0, 180, fill=fill, outline=ink, width=lw)
    d.line(p(0.1, 0.62, 0.9, 0.62), fill=light, width=lw)
    d.line(p(0.62, 0.05, 0.98, 0.4), fill=ink, width=p.px(0.03))  # chopsticks
    d.line(p(0.68, 0.02, 1.0, 0.36), fill=ink, width=p.px(0.03))


def _cosmetics(d, p, fill, light, ink, lw):
    d.rounded_rectangle(p(0.02, 0.55, 0.58, 1.0), radius=p.px(0.05), fill=fill, outline=ink, width=lw)  # jar
    d.rounded_rectangle(p(0.0, 0.45, 0.6, 0.6), radius=p.px(0.03), fill=light, outline=ink, width=lw)
    d.rectangle(p(0.68, 0.4, 0.94, 1.0), fill=fill, outline=ink, width=lw)  # lipstick
    d.rectangle(p(0.71, 0.22, 0.91, 0.42), fill=light, outline=ink, width=lw)
    d.polygon([tuple(p(u, v)) for u, v in ((0.71, 0.22), (0.91, 0.22), (0.91, 0.04))], fill=fill, outline=ink,
              width=lw)  # fmt: skip


def _laptop(d, p, fill, light, ink, lw):
    d.rounded_rectangle(p(0.12, 0.0, 0.88, 0.78), radius=p.px(0.03), fill=fill, outline=ink, width=lw)
    d.rectangle(p(0.16, 0.05, 0.84, 0.72), fill=light)
    d.polygon([tuple(p(u, v)) for u, v in ((0.08, 0.8), (0.92, 0.8), (1.0, 1.0), (0.0, 1.0))], fill=fill,
              outline=ink, width=lw)  # fmt: skip


def _product(d, p, fill, light, ink, lw):
    """A packshot box in three-quarter view: front, side and top faces."""
    d.polygon([tuple(p(u, v)) for u, v in ((0.0, 0.2), (0.64, 0.2), (0.64, 1.0), (0.0, 1.0))], fill=fill,
              outline=ink, width=lw)  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in ((0.64, 0.2), (1.0, 0.06), (1.0, 0.86), (0.64, 1.0))],
              fill=tuple(max(0, c - 30) for c in fill), outline=ink, width=lw)  # fmt: skip
    d.polygon([tuple(p(u, v)) for u, v in ((0.0, 0.2), (0.36, 0.06), (1.0, 0.06), (0.64, 0.2))], fill=light,
              outline=ink, width=lw)  # fmt: skip
    d.rectangle(p(0.1, 0.5, 0.54, 0.64), fill=light)


DRAWINGS: dict[str, tuple[float, Draw]] = {  # kind -> (width / height, drawing)
    "headphones": (1.0, _headphones),
    "bottle": (0.36, _bottle),
    "mug": (1.1, _mug),
    "shoe": (2.2, _shoe),
    "phone": (0.5, _phone),
    "watch": (0.55, _watch),
    "bag": (1.0, _bag),
    "person": (0.42, _person),
    "bust": (1.1, _bust),
    "animal": (1.4, _animal),
    "vehicle": (2.4, _vehicle),
    "boat": (1.6, _boat),
    "building": (0.7, _building),
    "food": (1.6, _food),
    "cosmetics": (0.95, _cosmetics),
    "laptop": (1.5, _laptop),
    "product": (0.8, _product),
}


def draw_subject(kind: str, height: int, fill: RGB, light: RGB, ink: RGB) -> Image.Image:
    """The subject `kind` as an RGBA sprite `height` pixels tall, transparent around the drawing.

    Drawn at twice the size and reduced, so edges are anti-aliased like a pen line rather than stair-stepped.
    """
    if kind not in DRAWINGS:
        raise ValueError(f"no silhouette for subject kind {kind!r}; use one of {', '.join(DRAWINGS)}")
    aspect, drawing = DRAWINGS[kind]
    scale = 2 if height < 480 else 1
    h = max(8, height) * scale
    w = max(8, round(h * aspect))
    sprite = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(sprite)
    drawing(d, P(w - 1, h - 1), fill, light, ink, max(1, round(h / 110)))
    return sprite.reduce(scale) if scale > 1 else sprite


# --- the reference photo ---------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _cutout(path: str, mtime: float) -> Image.Image:
    """The reference as RGBA (long side at most 768 px): its plain background made transparent with a soft
    mask, cropped to the subject.

    The background colour is the median of the border pixels; it counts as plain when most of the border is
    close to it. Background is what is close to that colour and connected to the border (grown from the
    border by repeated dilation at a small working size), so a white label inside the product stays. A busy
    photo keeps its pixels and gets a feathered edge instead, as a photo pinned on a board.
    """
    with Image.open(path) as im:
        im.load()
        photo = im.convert("RGBA")
    photo.thumbnail((768, 768), Image.Resampling.LANCZOS)
    if np.asarray(photo.getchannel("A")).min() < 250:  # it has its own transparency: trust it
        return photo.crop(photo.getchannel("A").getbbox() or (0, 0, *photo.size))
    rgb = np.asarray(photo.convert("RGB"), np.float32)
    ring = max(2, min(photo.size) // 40)
    border = np.concatenate([rgb[:ring].reshape(-1, 3), rgb[-ring:].reshape(-1, 3),
                             rgb[:, :ring].reshape(-1, 3), rgb[:, -ring:].reshape(-1, 3)])  # fmt: skip
    bg = np.median(border, axis=0)
    if (np.sqrt(((border - bg) ** 2).sum(-1)) < 30).mean() < 0.85:
        return _feathered(photo)
    dist = np.sqrt(((rgb - bg) ** 2).sum(-1))
    small = Image.fromarray(np.clip(dist, 0, 255).astype(np.uint8))
    small.thumbnail((160, 160), Image.Resampling.BOX)
    near = np.asarray(small) < 48
    reached = np.zeros_like(near)
    reached[0], reached[-1], reached[:, 0], reached[:, -1] = near[0], near[-1], near[:, 0], near[:, -1]
    for _ in range(near.size):
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= near
        if np.array_equal(grown, reached):
            break
        reached = grown
    region = Image.fromarray(reached.astype(np.uint8) * 255).resize(photo.size, Image.Resampling.BILINEAR)
    # Soft edge: inside the background region, alpha ramps with the distance from the background colour.
    soft = np.clip((dist - 12) / 36, 0, 1)
    alpha = np.where(np.asarray(region) > 127, soft, 1.0)
    mask = Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    if float(np.asarray(mask).mean()) < 255 * 0.03:  # nothing but background: the photo is the subject
        return _feathered(photo)
    photo.putalpha(mask)
    return photo.crop(mask.point(lambda v: 255 if v > 24 else 0).getbbox())


def _feathered(photo: Image.Image) -> Image.Image:
    alpha = Image.new("L", photo.size, 0)
    m = max(2, min(photo.size) // 14)
    ImageDraw.Draw(alpha).rectangle([m, m, photo.width - m, photo.height - m], fill=255)
    photo.putalpha(alpha.filter(ImageFilter.GaussianBlur(m / 2)))
    return photo


def reference_sprite(path: str) -> Image.Image:
    """The reference photo, cut out from a plain background (see `_cutout`); cached per file and mtime."""
    p = Path(path)
    return _cutout(str(p.resolve()), p.stat().st_mtime)
