"""A person's reference image (a product photo, a character): checked, then copied into the run as refs/ref-N.png.

The path is the person's own (typed in the chat, sent by the studio); it is opened only as an image, through
tools/images.py's safe opener (regular files only, so a FIFO never blocks; the pixel count checked from the
header before decoding, so a bomb is refused; any mode and bit depth judged on what it shows), and never used
as a name inside the run directory.
"""

from __future__ import annotations

import io
from pathlib import Path

from agent.operation_args import OperationError
from agent.rundir import MAX_REFERENCE_BYTES, MAX_REFERENCES, write_atomic
from agent.settings import RunSettings

MAX_REFERENCE_PIXELS = 40_000_000  # a 40 MP photo is plenty for conditioning; beyond that it is likely a bomb


def copy_reference(root: Path, raw: str, settings: RunSettings) -> str:
    """Check a user's image path (a file, an image, not too many pixels) and copy it into refs/ as PNG."""
    from tools.images import ImageError, ImageTooLarge, open_image, regular_file

    path = Path(raw.strip().strip("'\"")).expanduser()
    if len(settings.reference) >= MAX_REFERENCES:
        raise OperationError(f"this film already has {MAX_REFERENCES} reference images, the most it can use")
    try:
        if regular_file(path).stat().st_size > MAX_REFERENCE_BYTES:
            raise OperationError(f"{raw}: larger than {MAX_REFERENCE_BYTES // 2**20} MB")
        image = open_image(path, max_pixels=MAX_REFERENCE_PIXELS)
    except FileNotFoundError:
        raise OperationError(f"{raw}: no such file") from None
    except ImageTooLarge as err:
        raise OperationError(
            f"{err} (a reference may have {MAX_REFERENCE_PIXELS / 1e6:g} megapixels)"
        ) from None
    except ImageError as err:
        raise OperationError(str(err)) from None
    except OSError as err:
        raise OperationError(f"{raw}: cannot be read ({err.strerror or err})") from None
    n = 1 + len(settings.reference)
    rel = f"refs/ref-{n}.png"
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_atomic(root / rel, buf.getvalue())
    return rel
