"""One process at a time on a run directory: an OS-level lock on `run.lock` that a kill releases.

`fcntl.flock` belongs to the open file, so the kernel drops it when the holder dies however it dies (kill -9
included); nothing stale is ever left to clean. The file holds who took it (pid, command, time) so that a
second process can say who is working on the run. Within one process the lock is re-entrant: the command line
takes it before its checks and the director takes it again around the graph, on the same open file.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from agent.rundir import RunDirError

LOCK_FILE = "run.lock"

_held: dict[Path, tuple[int, int]] = {}  # resolved run dir -> (fd, depth)
_guard = threading.Lock()


class RunLockedError(RunDirError):
    """Another process is working on the run directory."""


def holder(root: Path) -> str:
    """Who holds the lock, as the lock file says: "pid 123 (python main.py run --resume x) since 12:03:04"."""
    try:
        info = json.loads((root / LOCK_FILE).read_text(encoding="utf-8"))
        since = time.strftime("%H:%M:%S", time.localtime(info["time"]))
        return f"pid {info['pid']} ({info['command']}) since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def is_locked(root: Path) -> bool:
    """Whether some process (this one included) holds the run's lock now."""
    path = Path(root).resolve()
    if path in _held:
        return True
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def run_lock(root: Path, wait: bool = False, on_wait=None):
    """Hold the run's lock for the block; raise RunLockedError naming the holder, or with `wait` block until free.

    `on_wait(line)` is told once who is being waited for.
    """
    path = Path(root).resolve()
    with _guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            _release(path)
        return
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise RunDirError(f"{root}: cannot create {LOCK_FILE} ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        who = holder(path)
        if not wait:
            os.close(fd)
            raise RunLockedError(
                f"{root} is being worked on by {who}; wait for it to finish, or pass --wait"
            ) from None
        if on_wait:
            on_wait(f"waiting for {who} to finish with {root}")
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    command = " ".join(["python", *sys.argv])[:300]
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "time": time.time()}).encode(), 0)
    with _guard:
        _held[path] = (fd, 1)
    try:
        yield
    finally:
        _release(path)


def _release(path: Path) -> None:
    with _guard:
        fd, depth = _held[path]
        if depth > 1:
            _held[path] = (fd, depth - 1)
            return
        del _held[path]
    os.close(fd)  # closing the file drops the flock
