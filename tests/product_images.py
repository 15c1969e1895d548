"""Made-up product photos for the catalogue's imaging tests: drawn at 4x and downsampled, so edges are
anti-aliased like a real photo's, on a plain white (or other) background."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def bottle_photo(
    width: int = 640, height: int = 480, background=(255, 255, 255), shadow: bool = False
) -> Image.Image:
    """A red bottle with a dark cap and a WHITE label (with dark text lines) inside it, on `background`; with
    `shadow`, standing in the soft neutral shadow a white sweep shows under and beside a product."""
    s = 4
    big = Image.new("RGB", (width * s, height * s), background)
    if shadow:
        dark = Image.new("L", big.size, 0)
        ImageDraw.Draw(dark).ellipse(
            (int(width * 0.31) * s, int(height * 0.83) * s, int(width * 0.81) * s, int(height * 0.93) * s),
            fill=110,
        )
        dark = np.asarray(dark.filter(ImageFilter.GaussianBlur(12 * s)), dtype=np.float32)[..., None] / 255
        big = Image.fromarray(np.rint(np.asarray(big, dtype=np.float32) * (1 - dark)).astype(np.uint8))
    d = ImageDraw.Draw(big)
    x0, x1 = int(width * 0.34) * s, int(width * 0.66) * s
    d.rounded_rectangle(
        (x0, int(height * 0.17) * s, x1, int(height * 0.88) * s), radius=30 * s, fill=(200, 30, 40)
    )
    d.rectangle(
        (x0 + 40 * s, int(height * 0.42) * s, x1 - 40 * s, int(height * 0.62) * s), fill=(255, 255, 255)
    )
    for i in range(3):
        y = int(height * (0.46 + 0.05 * i)) * s
        d.rectangle((x0 + 55 * s, y, x1 - 55 * s, y + 3 * s), fill=(20, 20, 20))
    cx = (x0 + x1) // 2
    d.ellipse((cx - 30 * s, int(height * 0.08) * s, cx + 30 * s, int(height * 0.19) * s), fill=(40, 40, 40))
    return big.resize((width, height), Image.Resampling.LANCZOS)


def textured_photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A product with fine texture (a knitted bag: noise and stripes) on white, for detail-loss tests."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 255, np.uint8)
    y0, y1, x0, x1 = int(height * 0.2), int(height * 0.85), int(width * 0.3), int(width * 0.7)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    base = 120 + 50 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 18, xx.shape)
    patch = np.stack([base + 40, base, base - 30], axis=-1)
    img[y0:y1, x0:x1] = np.clip(patch, 0, 255).astype(np.uint8)
    return Image.fromarray(img).filter(ImageFilter.GaussianBlur(0.6))


def busy_photo(width: int = 640, height: int = 480, seed: int = 1) -> Image.Image:
    """A product photographed on a cluttered table: no plain background anywhere on the border."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
    img = Image.fromarray(noise).resize((width, height), Image.Resampling.BICUBIC)
    ImageDraw.Draw(img).ellipse((250, 150, 390, 330), fill=(30, 30, 200))
    return img
