"""The film's GPU budget (`--budget-gpu-seconds`) and what the film cost.

What a film has spent is read from its records on disk (every take's and clip's `gpu_s`), so a resumed run, a
redo or a second process counts the same seconds, and nothing is lost when the budget stops the re-shoots:
the takes already made stay, and the shot keeps its best one. A re-shoot is allowed while the seconds spent,
plus those of the re-shoots already allowed and not yet recorded (the parallel shot branches), plus the first
takes still to come (they always render) and one more take, each at the film's mean cost per take, stay within
the budget. When a re-shoot is refused, `budget.json` in
the run directory says which shot, after which take, and how much was spent; the report shows it.
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
_reserved: dict[Path, dict[tuple[str, int], float]] = {}  # run → (shot, take) allowed, not yet on disk → s


class BudgetConfig(BaseModel):
    """The budget of one run (named as the run settings)."""

    run_dir: str = Field(description="The run directory whose records are counted.")
    budget_gpu_seconds: float | None = Field(
        default=None, gt=0, description="GPU seconds the film may spend."
    )


def _gpu_seconds(path: Path) -> float:
    try:
        timings = json.loads(path.read_text()).get("timings") or {}
    except (OSError, ValueError):  # a record being replaced right now: the next look counts it
        return 0.0
    value = timings.get("gpu_s", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def spent(root: str | Path) -> tuple[float, list[float]]:
    """(GPU seconds of every take and clip recorded in the run, the GPU seconds of each take)."""
    root = Path(root)
    takes = [_gpu_seconds(p) for p in sorted(root.glob("shots/s*/take-*.json"))]
    clips = [_gpu_seconds(p) for p in sorted(root.glob("clips/s*.json"))]
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


def allow_reshoot(config: BudgetConfig, shot_id: str, take: int) -> bool:
    """Whether take `take` of `shot_id` (a re-shoot) may be made within the budget; a refusal is recorded."""
    if config.budget_gpu_seconds is None:
        return True
    root = Path(config.run_dir).resolve()
    with _lock:
        total, takes = spent(root)
        mine = _reserved.setdefault(root, {})
        for key in [k for k in mine if (root / "shots" / k[0] / f"take-{k[1]}.json").exists()]:
            del mine[key]  # recorded now: counted on disk
        paid = [t for t in takes if t > 0]
        next_take = sum(paid) / len(paid) if paid else 0.0
        # First takes always render: the shots still waiting for theirs will spend that much whatever happens.
        committed = total + sum(mine.values()) + _unshot(root) * next_take
        if committed + next_take <= config.budget_gpu_seconds:
            mine[(shot_id, take)] = next_take
            return True
        _record_stop(root, config.budget_gpu_seconds, committed, next_take, shot_id, take - 1)
        return False


def _record_stop(
    root: Path, budget: float, committed: float, next_take: float, shot_id: str, after: int
) -> None:
    path = root / RECORD
    record = json.loads(path.read_text()) if path.exists() else {"stopped": []}
    record.update(budget_gpu_s=budget, spent_gpu_s=round(committed, 3), next_take_gpu_s=round(next_take, 3))
    if not any(s["shot"] == shot_id and s["after_take"] == after for s in record["stopped"]):
        record["stopped"].append({"shot": shot_id, "after_take": after, "spent_gpu_s": round(committed, 3)})
        print(
            f"budget: {shot_id} not re-shot after take {after}: {committed:.1f} of "
            f"{budget:g} GPU s spent, and a take costs about {next_take:.1f} s; its best take is kept",
            flush=True,
        )
    write_json(path, record)


def budget_note(root: str | Path) -> str | None:
    """One line for the report when the budget stopped re-shoots, else None."""
    path = Path(root) / RECORD
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    shots = ", ".join(f"{s['shot']} (after take {s['after_take']})" for s in record["stopped"])
    return (
        f"the GPU budget of {record['budget_gpu_s']:g} s stopped the re-shoots of {shots}: "
        f"{record['spent_gpu_s']:.1f} s were spent; the best takes are kept. "
        "A redo makes one more take of a shot; a larger --budget-gpu-seconds allows more on the next run."
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
