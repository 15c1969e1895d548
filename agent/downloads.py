"""What a caller may download from a run directory: one file by its relative path, or the whole run as a zip.

Only regular files under the run directory are served: no absolute path, no `..`, no symlink anywhere on the
way (a link that points out of the run is never followed), and never the checkpointer's database, which holds
the graph's internal state, not an artefact. The zip is written as it is sent (no temporary file, no whole
archive in memory): a film's run directory can be hundreds of megabytes.
"""

from __future__ import annotations

import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

HIDDEN = ("checkpoints.sqlite", "run.lock")  # the first with its -wal / -shm companions
STORED = {".mp4", ".png", ".jpg", ".jpeg", ".webp", ".wav", ".mp3", ".m4a", ".zip"}  # already compressed
CHUNK = 1 << 20

_files_cache: dict[str, tuple[float, float, list[str]]] = {}
_files_lock = threading.Lock()


class NotInRun(LookupError):
    """The path names no downloadable file of this run."""


def _hidden(name: str) -> bool:
    # Names starting with a dot are the atomic writers' temporary files (tools/files.py) and lock files.
    return name.startswith(HIDDEN) or name.startswith(".")


def walk(root: Path) -> Iterator[Path]:
    """Every downloadable file under `root`, sorted; symlinked files and folders are skipped, not followed."""
    if not root.is_dir() or root.is_symlink():
        return
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink() and not d.startswith("."))
        for name in sorted(files):
            path = base / name
            if not _hidden(name) and not path.is_symlink() and path.is_file():
                yield path


def run_files(root: Path, key: float, fresh_for: float | None = 1.0) -> list[str]:
    """The run's files as relative POSIX paths, cached: kept while `key` (the film row's `updated`) is the
    same and the list is younger than `fresh_for` seconds (None: as long as the key holds, for a film that
    nothing is writing)."""
    now = time.monotonic()
    with _files_lock:
        hit = _files_cache.get(str(root))
    if hit and hit[0] == key and (fresh_for is None or now - hit[1] < fresh_for):
        return hit[2]
    files = [p.relative_to(root).as_posix() for p in walk(root)]
    with _files_lock:
        _files_cache[str(root)] = (key, now, files)
    return files


def safe_path(root: Path, rel: str) -> Path:
    """`rel` as a file inside `root`, or NotInRun: no absolute path, no `..`, no symlink on the way."""
    pure = PurePosixPath(rel)
    if not rel or "\\" in rel or "\x00" in rel or pure.is_absolute() or ".." in pure.parts:
        raise NotInRun(rel)
    path = root
    for part in pure.parts:
        path = path / part
        if path.is_symlink():
            raise NotInRun(rel)
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base) or not resolved.is_file() or _hidden(resolved.name):
        raise NotInRun(rel)
    return resolved


class _Sink:
    """A write-only stream that hands on what zipfile writes; zipfile sees it cannot seek and writes data
    descriptors instead of going back to patch headers."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def zip_stream(root: Path, folder: str) -> Iterator[bytes]:
    """The run's downloadable files as a zip, in chunks, each under `folder/` in the archive."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for path in walk(root):
            rel = path.relative_to(root).as_posix()
            method = zipfile.ZIP_STORED if path.suffix.lower() in STORED else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo.from_file(path, f"{folder}/{rel}")
            info.compress_type = method
            try:
                src = path.open("rb")
            except OSError:  # removed since the walk (a redo's old clip): the rest of the run still goes out
                continue
            with src, archive.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    if sink.parts:
                        yield sink.take()
            if sink.parts:
                yield sink.take()
    if sink.parts:
        yield sink.take()  # the central directory, written when the archive closes
