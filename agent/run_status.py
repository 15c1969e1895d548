"""The run's status in its marker (run.json), and what a failed run records: why, which shots are missing.

Statuses: running, waiting-for-approval, stopped (killed or interrupted), failed (the work failed; `--resume`
tries again), incomplete (cut without some shots, or a --variants still raised; `--resume` makes them again),
done.
"""

from __future__ import annotations

import json
import sqlite3
import time
import traceback
from contextlib import suppress
from pathlib import Path

from agent.rundir import MARKER, RecordError, RunDir, RunDirError, read_json, write_atomic, write_json
from agent.runlock import is_locked
from agent.settings import RunSettings, SettingsError
from agent.state import FilmState
from tools.plan import BriefError, PlanError

__all__ = [
    "RunFailed",
    "damaged_checkpoints",
    "failed_variants",
    "failure",
    "missing_shots",
    "read_marker",
    "set_status",
    "status",
]


class RunFailed(RuntimeError):
    """The work failed (every shot failed, the disk filled up, a tool broke): one line, exit 1. The run's status
    is "failed" and its folder keeps everything made so far; `--resume` tries again."""


def read_marker(root: Path) -> dict:
    path = root / MARKER
    if not path.exists():
        return {"id": root.name, "status": "stopped"}
    try:
        marker = read_json(path)
        if not isinstance(marker, dict):
            raise ValueError("not a JSON object")
        return marker
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: a damaged record ({err}); restore it or start the film again") from None


def status(root: Path) -> str:
    """The run's status: running, waiting-for-approval, stopped, failed, incomplete or done.

    A marker that says "running" while no process holds the run's lock belongs to a process that was killed:
    the run is "stopped".
    """
    said = read_marker(root).get("status", "running")
    if said == "running" and not is_locked(root):
        return "stopped"
    return said


def damaged_checkpoints(path: Path, err: Exception) -> RecordError:
    return RecordError(
        f"{path}: not a readable checkpoint database ({err}); move it aside and --resume continues from "
        "storyboard.json and the recorded takes"
    )


def missing_shots(state: FilmState | None) -> dict[str, str]:
    """Shots of the storyboard without a clip, with why (the last take's error or critique), in shot order."""
    if state is None or state.storyboard is None:
        return {}
    by_id = {r.shot_id: r for r in state.results}
    out = {}
    for shot in state.storyboard.shots:
        result = by_id.get(shot.id)
        if result is not None and result.clip is not None:
            continue
        last = result.takes[-1] if result and result.takes else None
        if result is not None and result.error:
            why = result.error
        elif last is None:
            why = "no take was made"
        elif last.error:
            why = last.error
        elif result.best is not None:
            why = "its clip was not made"
        else:
            why = "no take was usable"
        out[shot.id] = " ".join(why.split())[:200]
    return out


def failed_variants(state: FilmState | None) -> dict[str, str]:
    """Shots in the cut whose --variants stills raised (the shot's clip was made), with why, in shot order."""
    if state is None or state.storyboard is None:
        return {}
    by_id = {r.shot_id: r for r in state.results}
    return {
        s.id: " ".join(r.error.split())[:300]
        for s in state.storyboard.shots
        if (r := by_id.get(s.id)) is not None and r.clip is not None and r.error
    }


def failure(root: Path, settings: RunSettings, graph, config, err: Exception) -> Exception:
    """Record why the run stopped (status "failed", error.log, the report of what was made) and return the
    one-line error to raise: RecordError for a damaged file (exit 2), RunFailed for failed work (exit 1)."""
    log = "".join(traceback.format_exception(err))
    with suppress(OSError):
        write_atomic(root / "error.log", log)  # the whole traceback, for whoever debugs it
    try:
        values = graph.get_state(config).values
        state = FilmState.model_validate(values) if values else None
    except Exception:  # the checkpoints themselves may be what broke; the message below says what did
        state = None
    missing = missing_shots(state)
    if isinstance(err, sqlite3.DatabaseError):
        line: Exception = damaged_checkpoints(root / "checkpoints.sqlite", err)
    elif isinstance(err, (RunDirError, SettingsError, PlanError, BriefError)):
        line = err  # the input's fault: said as it is (exit 2)
    elif isinstance(err, OSError):
        where = f" writing {err.filename}" if err.filename else ""
        line = RunFailed(f"{err.strerror or err}{where}; free the space or fix it, then --resume {root}")
    elif state and state.approved and missing and len(missing) == len(state.storyboard.shots):
        shots = "; ".join(f"{sid}: {why}" for sid, why in missing.items())
        line = RunFailed(
            f"every shot failed ({shots}); see {root / 'report.html'}, fix the cause, then --resume {root}"
        )
    else:
        line = RunFailed(
            f"{type(err).__name__}: {err}; details in {root / 'error.log'}; fix the cause, then --resume {root}"
        )
    if state and state.storyboard and state.approved:
        with suppress(Exception):  # the report is a courtesy here; the failure itself is already in hand
            from agent.report import write_report

            write_report(state, RunDir(root), settings)
    set_status(root, "failed", error=str(line), missing=missing)
    return line


def set_status(root: Path, status: str, **fields) -> None:
    marker = read_marker(root)
    marker.pop("error", None)
    marker.pop("missing", None)
    marker.pop("failed_variants", None)
    marker.update(status=status, updated=time.time(), **{k: v for k, v in fields.items() if v})
    try:
        write_json(root / MARKER, marker)
    except OSError:
        # A full disk has no room for the temporary file of an atomic write; the marker's own blocks are
        # rewritten in place so that the status still says what happened.
        with suppress(OSError), open(root / MARKER, "r+b") as f:
            f.write(json.dumps(marker).encode())
            f.truncate()
