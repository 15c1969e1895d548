"""Writing files so that a kill at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it, which would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_file(folder: Path, prefix: str, suffix: str) -> str:
    """A new empty file in `folder` (for a tool such as ffmpeg to write, then rename), with a new file's mode."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    mkstemp makes the file 0600; it gets the mode any other new file would have (0666 less the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_png(path: Path, image) -> None:
    """Write a PIL image as PNG, atomically; compression level 3 trades a little size for speed."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=3)
    write_atomic(path, buf.getvalue())


def write_json(path: Path, obj: BaseModel | dict | list) -> None:
    if isinstance(obj, BaseModel):
        text = obj.model_dump_json(indent=2)
    else:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    write_atomic(path, text + "\n")


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
