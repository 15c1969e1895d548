"""What a status call shows of a film's run directory (storyboard, files, cuts), taken by whoever changed it.

The worker takes it after each progress event and at the end of each job, and the web process after each edit
it makes; it is kept on the film's row (agent/jobs.py `view`), so `GET /v1/films/{id}` is one indexed SQLite
read with no file opened and no folder walked, however busy the machine is. The files are those of the last
event: a file written since shows up with the next one.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent import downloads
from agent.rundir import read_json


def storyboard(root: Path) -> dict | None:
    try:
        return read_json(root / "storyboard.json")
    except (OSError, ValueError):
        return None


def cuts(root: Path) -> dict[str, str]:
    """Platform → its cut's path, for the cuts made so far (the first platform's is final.mp4)."""
    try:
        settings = read_json(root / "settings.json")
    except (OSError, ValueError):
        return {}
    platforms = settings.get("platforms") or [settings.get("platform", "film")]
    out = {platforms[0]: "final.mp4"} if (root / "final.mp4").exists() else {}
    for p in platforms[1:]:
        if (root / f"final-{p}.mp4").exists():
            out[p] = f"final-{p}.mp4"
    return out


def take(root: Path) -> dict:
    """The run's storyboard, files and cuts now."""
    files = [p.relative_to(root).as_posix() for p in downloads.walk(root)]
    return {"storyboard": storyboard(root), "files": files, "cuts": cuts(root)}


def take_json(root: Path) -> str:
    return json.dumps(take(Path(root)), ensure_ascii=False, separators=(",", ":"))
