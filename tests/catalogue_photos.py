"""Made-up product photos for the catalogue tests: simple shaded objects on pure white, one on a busy table,
one corrupt file. Drawn here so a test can also change a product's pixels and see the fidelity check fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 400


def _canvas():
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    return img, ImageDraw.Draw(img)


def headphones() -> Image.Image:
    img, d = _canvas()
    d.arc((90, 60, 310, 280), 180, 360, fill=(30, 30, 34), width=26)
    for x in (70, 262):
        d.rounded_rectangle((x, 160, x + 68, 270), radius=24, fill=(40, 40, 46))
        d.rounded_rectangle((x + 12, 176, x + 56, 254), radius=16, fill=(90, 90, 100))
    return img


def speaker() -> Image.Image:
    img, d = _canvas()
    d.rounded_rectangle(
        (110, 70, 290, 330), radius=40, fill=(235, 235, 238), outline=(150, 150, 160), width=4
    )
    d.ellipse((150, 150, 250, 250), fill=(70, 70, 80))
    d.ellipse((180, 180, 220, 220), fill=(140, 140, 150))
    return img


def scarf() -> Image.Image:
    img, d = _canvas()
    d.polygon([(80, 90), (320, 110), (290, 300), (110, 320)], fill=(190, 30, 45))
    for i in range(6):
        d.line((95 + i * 38, 100, 120 + i * 32, 315), fill=(230, 190, 60), width=5)
    return img


def mug() -> Image.Image:
    img, d = _canvas()
    d.ellipse((255, 150, 335, 260), outline=(60, 110, 170), width=18)
    d.rounded_rectangle((100, 110, 280, 320), radius=22, fill=(60, 110, 170))
    d.ellipse((100, 95, 280, 130), fill=(40, 80, 130))
    return img


def serum() -> Image.Image:
    img, d = _canvas()
    d.rectangle((175, 60, 225, 120), fill=(20, 20, 20))
    d.rounded_rectangle((140, 115, 260, 330), radius=26, fill=(190, 120, 40))
    d.rectangle((160, 190, 240, 260), fill=(250, 240, 220))
    return img


def car() -> Image.Image:
    img, d = _canvas()
    d.rounded_rectangle((70, 170, 330, 260), radius=20, fill=(200, 150, 90))
    d.rounded_rectangle((130, 120, 270, 185), radius=18, fill=(180, 130, 75))
    for x in (110, 250):
        d.ellipse((x, 235, x + 60, 295), fill=(60, 40, 25))
    return img


def watch_on_table() -> Image.Image:
    """A product photographed on a busy wooden table: not a plain background."""
    rng = np.random.default_rng(7)
    wood = np.zeros((SIZE, SIZE, 3), np.uint8)
    stripes = (np.sin(np.arange(SIZE) / 7.0)[None, :] * 40 + 120).astype(np.uint8)
    wood[..., 0], wood[..., 1], wood[..., 2] = stripes + 40, stripes, stripes // 2
    wood = np.clip(wood + rng.integers(-30, 30, wood.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(wood).filter(ImageFilter.GaussianBlur(1))
    d = ImageDraw.Draw(img)
    d.rectangle((170, 40, 230, 360), fill=(40, 40, 40))
    d.ellipse((130, 130, 270, 270), fill=(200, 200, 205), outline=(90, 90, 90), width=8)
    return img


PHOTOS = {
    "headphones.png": headphones,
    "speaker.png": speaker,
    "scarf.png": scarf,
    "mug.png": mug,
    "serum.png": serum,
    "car.png": car,
    "watch_on_table.png": watch_on_table,
}


def write_photos(folder: Path) -> Path:
    """Every photo the test catalogue names, plus a corrupt one; shoe_missing.png is left out on purpose."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, draw in PHOTOS.items():
        draw().save(folder / name)
    (folder / "vase_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder
