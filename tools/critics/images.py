"""Image helpers the critics share: open an image fully as RGB, its luminance at a working size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.images import open_image


def load_rgb(path: str | Path):
    """Open an image fully (so a truncated file fails here, not later) as RGB of what it shows.

    Through tools/images.py: regular files only, a pixel limit, any mode and bit depth; its ImageError is a
    ValueError, so a critic's `except (OSError, ValueError)` records it as an unreadable take.
    """
    return open_image(path)


def luma(img, long_side: int | None = None) -> np.ndarray:
    """Luminance in 0..1 (BT.601), optionally resized so the long side is `long_side` (a size-free scale)."""
    from PIL import Image

    if long_side and max(img.size) != long_side:
        scale = long_side / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
