"""Images a client sends (reference photos): checked to be real images of a sane size, then re-encoded as PNG.

Nothing of the client's bytes is kept: the decoded pixels are written anew, so a file that only claims to be an
image, or carries a payload after its image data, never reaches the run directory.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_UPLOAD = 8 * 1024 * 1024  # bytes of one decoded image
MAX_SIDE = 4096
MAX_PIXELS = 4096 * 4096
FORMATS = {"PNG", "JPEG", "WEBP"}


class UploadError(ValueError):
    """An upload that is not an acceptable image; `too_large` says it is a size problem (413)."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


def decode_image(b64: str, what: str) -> Image.Image:
    """A base64 PNG, JPEG or WebP (a data: URL prefix allowed) as a loaded RGB(A) image; raises UploadError."""
    if b64.startswith("data:"):
        b64 = b64.partition(",")[2]
    if len(b64) > MAX_UPLOAD * 4 // 3 + 4:
        raise UploadError(f"{what} is larger than {MAX_UPLOAD // 2**20} MiB", too_large=True)
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{what} is not base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            fmt, (w, h) = probe.format, probe.size
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise UploadError(f"{what} is not a readable PNG, JPEG or WebP image") from None
    if fmt not in FORMATS:
        raise UploadError(f"{what} is {fmt}; send PNG, JPEG or WebP")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise UploadError(f"{what} is {w}x{h}; each side may be at most {MAX_SIDE}", too_large=True)
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            return img.convert("RGBA" if "A" in img.getbands() else "RGB")
    except (OSError, SyntaxError, Image.DecompressionBombError):
        raise UploadError(f"{what} is a damaged image") from None


def save_png(img: Image.Image, path: Path) -> Path:
    from tools.files import write_atomic

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
    return path
