"""The draft of a product photographer's studio: a seamless sweep, a soft key light, props and floor shadows.

A catalogue "studio" scene (tools/scene_look.py names it `sweep`) is a backdrop that curves into the floor with
no visible corner, lit by one large soft key from one side, with a couple of simple props (a block, a ball) in
the scene's accent colour standing on the floor beside where the product goes. The product itself, its contact
shadow and any text are added by the caller (tools/draft_panel.py's place_subject, or the real photo's cut-out
through tools/composite.py). Light and shade stay within a few percent of the scene's colours, so a brand
palette given as those colours is what the brand-colour critic measures.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tools.scene_look import Look, mix

RGB = tuple[int, int, int]
COVE = 0.1  # the height of the curve from wall to floor, as a share of the frame
KEY = 0.1  # how much brighter the key side is than the far side (a soft key: a gentle fall-off)


def _profile(h: int, floor: int) -> np.ndarray:
    """Per row: 0 on the wall, 1 on the floor, a smoothstep through the cove between them."""
    y = np.arange(h, dtype=np.float32)
    t = np.clip((y - (floor - COVE * h / 2)) / (COVE * h), 0, 1)
    return t * t * (3 - 2 * t)


def draw_sweep(
    img: Image.Image, d: ImageDraw.ImageDraw, w: int, h: int, floor: int, rng: random.Random, c, look: Look
) -> None:
    """The sweep in place of `img`'s pixels: wall colour c[1] (c[0] at the top), floor c[2], props c[4]."""
    top, wall, ground, _, accent = c
    t = _profile(h, floor)[:, None, None]
    up = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    wall_rows = np.asarray(top, np.float32) * (1 - up) + np.asarray(wall, np.float32) * up
    lit_floor = np.asarray(mix(ground, (255, 255, 255), 0.04), np.float32)
    rows = wall_rows * (1 - t) + lit_floor * t
    # The key light: one large soft source on one side, falling off across the frame and toward the camera.
    side = rng.choice((0.2, 0.8))
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    near = 1 - np.abs(xx - side)
    light = 1 + KEY * (near - 0.5) - 0.04 * np.clip(up - 0.85, 0, 1) / 0.15
    pixels = np.clip(rows * light, 0, 255).astype(np.uint8)
    img.paste(Image.fromarray(np.ascontiguousarray(np.broadcast_to(pixels, (h, w, 3)))), (0, 0))
    _props(img, w, h, rng, wall, accent, side)


def _props(img: Image.Image, w: int, h: int, rng: random.Random, wall: RGB, accent: RGB, side: float) -> None:
    """A block on one side and a ball on the other, each on the floor with its soft shadow away from the key."""
    base = h * rng.uniform(0.86, 0.9)
    shade = mix(accent, (0, 0, 0), 0.18)
    if max(accent) - min(accent) < 30 and abs(sum(accent) - sum(wall)) < 90:
        shade = mix(wall, (0, 0, 0), 0.35)  # an accent too close to the wall would not read as a prop
    block_w, block_h = w * 0.12, h * rng.uniform(0.14, 0.2)
    ball = min(w, h) * 0.09
    bx = w * (0.04 if side < 0.5 else 0.84)
    px = w * 0.96 - ball * 2 if side < 0.5 else w * 0.06
    away = 1 if side < 0.5 else -1
    shadow = Image.new("L", img.size, 0)
    s = ImageDraw.Draw(shadow)
    for x0, width in ((bx, block_w), (px, ball * 2)):
        s.ellipse([x0 + away * width * 0.15, base - h * 0.015, x0 + width * (1.1 + away * 0.15),
                   base + h * 0.02], fill=90)  # fmt: skip
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1, h // 90)))
    img.paste((0, 0, 0), (0, 0), shadow)
    d = ImageDraw.Draw(img)
    # Crisp edges, as a prop in focus has: a picture of soft gradients alone reads as out of focus.
    ink, line = mix(shade, (0, 0, 0), 0.6), max(1, h // 160)
    d.rectangle([bx, base - block_h, bx + block_w, base], fill=shade, outline=ink, width=line)
    d.rectangle([bx + line, base - block_h + line, bx + block_w - line, base - block_h * 0.92],
                fill=mix(shade, (255, 255, 255), 0.2))  # fmt: skip
    d.ellipse([px, base - ball * 2, px + ball * 2, base], fill=shade, outline=ink, width=line)
    d.ellipse([px + ball * 0.4, base - ball * 1.7, px + ball * 0.9, base - ball * 1.2],
              fill=mix(shade, (255, 255, 255), 0.25))  # fmt: skip
