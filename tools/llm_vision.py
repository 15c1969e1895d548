"""Vision messages for an OpenAI-compatible endpoint: images as PNG data URLs inside a user message."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any


def image_part(image: Any, *, long_side: int = 1024) -> dict:
    """One `image_url` content part holding the image as a PNG data URL (a PIL image, a path or PNG/JPEG bytes)."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            img = opened.convert("RGB")
    elif isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as opened:
            img = opened.convert("RGB")
    else:
        img = image.convert("RGB")
    if max(img.size) > long_side:
        img = img.copy()
        img.thumbnail((long_side, long_side), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def vision_message(text: str, *images: Any) -> dict:
    """A user message with text and images, as vision endpoints take it."""
    return {"role": "user", "content": [{"type": "text", "text": text}, *(image_part(i) for i in images)]}
