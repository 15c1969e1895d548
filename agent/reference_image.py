"""A person's reference image (a product photo, a character): checked, then copied into the run as refs/ref-N.png.

The path is the person's own (typed in the chat, sent by the studio); it is opened only as an image, never
used as a name inside the run directory.
"""

from __future__ import annotations

import io
from pathlib import Path

from agent.operation_args import OperationError
from agent.rundir import write_atomic
from agent.settings import RunSettings

MAX_REFERENCE_PIXELS = 40_000_000  # a 40 MP photo is plenty for conditioning; beyond that it is likely a bomb
MAX_REFERENCE_BYTES = 50 * 2**20
MAX_REFERENCES = 4


def copy_reference(root: Path, raw: str, settings: RunSettings) -> str:
    """Check a user's image path (a file, an image, not too many pixels) and copy it into refs/ as PNG."""
    from PIL import Image, UnidentifiedImageError

    path = Path(raw.strip().strip("'\"")).expanduser()
    if not path.is_file():
        raise OperationError(f"{raw}: no such file")
    if path.stat().st_size > MAX_REFERENCE_BYTES:
        raise OperationError(f"{raw}: larger than {MAX_REFERENCE_BYTES // 2**20} MB")
    if len(settings.reference) >= MAX_REFERENCES:
        raise OperationError("this film already has 4 reference images, the most it can use")
    try:
        with Image.open(path) as im:
            size = im.size
            if size[0] * size[1] <= MAX_REFERENCE_PIXELS:
                im.load()
                image = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise OperationError(f"{raw}: not an image this program can read ({type(err).__name__})") from None
    if size[0] * size[1] > MAX_REFERENCE_PIXELS:
        raise OperationError(
            f"{raw}: {size[0]}×{size[1]} is more than {MAX_REFERENCE_PIXELS / 1e6:g} megapixels"
        )
    n = 1 + len(settings.reference)
    rel = f"refs/ref-{n}.png"
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_atomic(root / rel, buf.getvalue())
    return rel
