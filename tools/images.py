"""Opening images that come from outside (servers, --reference, `critique`, edit inputs): safely, as what they show.

    img = open_image(path)              # RGB, fully decoded; ImageError (a ValueError) says what is wrong
    img = open_image(answer_bytes)      # the same for bytes, e.g. an image server's answer

- Only regular files are opened: a FIFO or a device is refused from its `stat`, before an `open` that could block.
- The pixel count is checked from the header, before any pixel is decoded, so a small file that declares a huge
  size (a decompression bomb) is refused with the size it declared (`ImageTooLarge`). Pillow's own guard raises
  `DecompressionBombError`, which is neither OSError nor ValueError; it is turned into `ImageTooLarge` too.
- Any mode and bit depth becomes RGB by what it shows (`to_rgb`): 16- and 32-bit greyscale are scaled to 8 bits
  (Pillow's `convert` clips them, which turns a 16-bit image white), alpha is laid over white, palettes are
  expanded, CMYK is converted.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np

MAX_PIXELS = 8192 * 8192  # far above any take or reference this program makes or needs; RGB of it is 200 MB


class ImageError(ValueError):
    """An image that cannot or may not be opened; the message says why in one line."""


class ImageTooLarge(ImageError):
    """An image whose declared size is past the pixel limit (a decompression bomb, or simply too big)."""


def regular_file(path: str | Path) -> Path:
    """`path` if it is a regular file; FileNotFoundError when missing, ImageError for a FIFO, device or folder.

    Checked with `stat` (which never blocks) so that opening a FIFO, which waits for a writer, never happens.
    """
    path = Path(path)
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise ImageError(f"{path} is {kind}, not an image file; give the path of a PNG or JPEG file")
    return path


def open_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS):
    """Open an image file (or bytes) fully decoded as RGB, refusing special files and sizes past `max_pixels`."""
    from PIL import Image

    if isinstance(source, bytes | bytearray):
        where, fp = "the image data", io.BytesIO(source)
    else:
        where, fp = str(source), regular_file(source)
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice it; ours is lower and is checked below instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageTooLarge(_too_large(where, w, h, max_pixels))
                im.load()
                return to_rgb(im)
    except Image.DecompressionBombError as err:
        raise ImageTooLarge(f"{where} declares more pixels than allowed ({err})") from None
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as err:
        if isinstance(err, FileNotFoundError | PermissionError):
            raise
        raise ImageError(
            f"{where} is not an image this program can read ({type(err).__name__}: {err})"
        ) from None


def _too_large(where: str, w: int, h: int, limit: int) -> str:
    return (
        f"{where} declares {w}x{h} pixels ({w * h / 1e6:.0f} million), past the limit of "
        f"{limit / 1e6:.0f} million; scale it down first"
    )


def to_rgb(im):
    """RGB of what the image shows, whatever its mode and bit depth."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im.copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(im, dtype=np.float64)
        if mode == "F" and values.size and np.nanmax(values) <= 1.0:
            scaled = values * 255.0  # a float image in 0..1
        elif mode == "F":
            scaled = values
        else:
            scaled = values / 257.0  # 16-bit range onto 8 bits: 65535 -> 255
        grey = np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")
