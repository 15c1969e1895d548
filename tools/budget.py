"""The film's budgets (`--budget-gpu-seconds`, `--budget-remote-calls`) and what the film cost.

What a film has spent is read from its records on disk (every take's and clip's `gpu_s`, and the remote calls
each take made: the image server's requests, retries included, and the vision critic's chat calls), so a resumed
run, a redo or a second process counts the same, and nothing is lost when a budget stops the re-shoots: the takes
already made stay, and the shot keeps its best one. A re-shoot is allowed while what was spent, plus what the
re-shoots already allowed and not yet recorded will spend (the parallel shot branches), plus the first takes still
to come (they always render) and one more take, each at the film's mean cost per take, stay within every budget
given. When a re-shoot is refused, `budget.json` in the run directory says which shot, after which take, which
budget and how much was spent; the report shows it.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from pydantic import BaseModel, Field

from tools.files import write_json

RECORD = "budget.json"
_lock = threading.Lock()
# run → (shot, take) allowed and not yet on disk → its expected (GPU seconds, remote calls)
_reserved: dict[Path, dict[tuple[str, int], tuple[float, float]]] = {}


class BudgetConfig(BaseModel):
    """The budgets of one run (named as the run settings)."""

    run_dir: str = Field(description="The run directory whose records are counted.")
    budget_gpu_seconds: float | None = Field(
        default=None, gt=0, description="GPU seconds the film may spend."
    )
    budget_remote_calls: int | None = Field(
        default=None, ge=1, description="Remote image-server and model calls the film's takes may make."
    )


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # a record being replaced right now: the next look counts it
        return {}


def _number(value) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _gpu_seconds(record: dict) -> float:
    return _number((record.get("timings") or {}).get("gpu_s", 0.0))


def _remote_calls(record: dict) -> float:
    """The image server's requests (in the take's timings) and every critic's model calls (in its critique)."""
    calls = _number((record.get("timings") or {}).get("remote_calls", 0))
    critics = (record.get("critique") or {}).get("critics") or []
    return calls + sum(_number(c.get("calls", 0)) for c in critics if isinstance(c, dict))


def spent(root: str | Path) -> tuple[float, list[float]]:
    """(GPU seconds of every take and clip recorded in the run, the GPU seconds of each take)."""
    root = Path(root)
    takes = [_gpu_seconds(_read(p)) for p in sorted(root.glob("shots/s*/take-*.json"))]
    clips = [_gpu_seconds(_read(p)) for p in sorted(root.glob("clips/s*.json"))]
    return sum(takes) + sum(clips), takes


def calls_spent(root: str | Path) -> tuple[float, list[float]]:
    """(remote calls of every take and clip recorded in the run, the remote calls of each take)."""
    root = Path(root)
    takes = [_remote_calls(_read(p)) for p in sorted(root.glob("shots/s*/take-*.json"))]
    clips = [_remote_calls(_read(p)) for p in sorted(root.glob("clips/s*.json"))]
    return sum(takes) + sum(clips), takes


def _unshot(root: Path) -> int:
    """Shots of the storyboard with no take recorded yet (their first takes are rendering or queued)."""
    try:
        shots = json.loads((root / "storyboard.json").read_text())["shots"]
    except (OSError, ValueError, KeyError):
        return 0
    ids = [str(s.get("id")) for s in shots]
    # Ids are program-made (s01 ...); anything else is not looked up as a path.
    return sum(
        1 for i in ids if re.fullmatch(r"s\d{1,4}", i) and not any((root / "shots" / i).glob("take-*.json"))
    )


def _mean(values: list[float]) -> float:
    paid = [v for v in values if v > 0]
    return sum(paid) / len(paid) if paid else 0.0


def allow_reshoot(config: BudgetConfig, shot_id: str, take: int) -> bool:
    """Whether take `take` of `shot_id` (a re-shoot) may be made within the budgets; a refusal is recorded."""
    if config.budget_gpu_seconds is None and config.budget_remote_calls is None:
        return True
    root = Path(config.run_dir).resolve()
    with _lock:
        mine = _reserved.setdefault(root, {})
        for key in [k for k in mine if (root / "shots" / k[0] / f"take-{k[1]}.json").exists()]:
            del mine[key]  # recorded now: counted on disk
        unshot = _unshot(root)
        checks = []  # (which, limit, committed, next take) for each budget given
        for i, (which, limit, count) in enumerate(
            [("gpu", config.budget_gpu_seconds, spent), ("calls", config.budget_remote_calls, calls_spent)]
        ):
            if limit is None:
                continue
            total, takes = count(root)
            next_take = _mean(takes)
            # First takes always render: the shots still waiting for theirs will spend that much whatever happens.
            committed = total + sum(r[i] for r in mine.values()) + unshot * next_take
            checks.append((which, float(limit), committed, next_take))
        over = next((c for c in checks if c[2] + c[3] > c[1]), None)
        if over is None:
            costs = {which: next_take for which, _, _, next_take in checks}
            mine[(shot_id, take)] = (costs.get("gpu", 0.0), costs.get("calls", 0.0))
            return True
        _record_stop(root, *over, shot_id, take - 1)
        return False


# which budget → (its unit in messages, how the report names it)
_UNITS = {
    "gpu": ("GPU s", "GPU budget of {:g} s"),
    "calls": ("remote calls", "remote-call budget of {:g} calls"),
}
_KEYS = {"gpu": ("budget_gpu_s", "spent_gpu_s", "next_take_gpu_s"),
         "calls": ("budget_remote_calls", "spent_remote_calls", "next_take_remote_calls")}  # fmt: skip


def _record_stop(
    root: Path, which: str, budget: float, committed: float, next_take: float, shot_id: str, after: int
) -> None:
    path = root / RECORD
    record = json.loads(path.read_text()) if path.exists() else {"stopped": []}
    limit_key, spent_key, next_key = _KEYS[which]
    record.update({limit_key: budget, spent_key: round(committed, 3), next_key: round(next_take, 3)})
    if not any(s["shot"] == shot_id and s["after_take"] == after for s in record["stopped"]):
        record["stopped"].append(
            {"shot": shot_id, "after_take": after, "budget": which, "spent": round(committed, 3)}
        )
        unit = _UNITS[which][0]
        print(
            f"budget: {shot_id} not re-shot after take {after}: {committed:.1f} of {budget:g} {unit} spent, "
            f"and a take costs about {next_take:.1f}; its best take is kept",
            flush=True,
        )
    write_json(path, record)


def budget_note(root: str | Path) -> str | None:
    """One line for the report when a budget stopped re-shoots, else None."""
    path = Path(root) / RECORD
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    parts = []
    for which, (_, name) in _UNITS.items():
        stopped = [s for s in record["stopped"] if s.get("budget", "gpu") == which]
        if not stopped:
            continue
        limit_key, spent_key, _ = _KEYS[which]
        shots = ", ".join(f"{s['shot']} (after take {s['after_take']})" for s in stopped)
        parts.append(
            f"the {name.format(record[limit_key])} stopped the re-shoots of {shots}: "
            f"{record[spent_key]:.1f}{' s' if which == 'gpu' else ' calls'} were spent"
        )
    return (
        "; ".join(parts) + "; the best takes are kept. A redo makes one more take of a shot; a larger budget "
        "allows more on the next run."
    )


def cost_line(timings: list[dict], kept: int | None = None) -> str | None:
    """What takes and clips cost, in one line: GPU seconds (and per kept shot), queue wait, wall; None when
    none of them recorded a cost (a run from before costs were recorded)."""
    from tools.render_queue import COST_KEYS, sum_costs

    if not any(k in t for t in timings for k in COST_KEYS):
        return None
    total = sum_costs(timings)
    per_kept = f" ({total['gpu_s'] / kept:.2f} s per kept shot)" if kept else ""
    return (
        f"GPU {total['gpu_s']:.2f} s{per_kept} · queue wait {total['queue_wait_s']:.2f} s · "
        f"wall {total['wall_s']:.2f} s"
    )
