"""How well the planner obeys the brief, on the brief set in tests/data/briefs/briefs.jsonl.

    python -m evals.bench_briefs            # the offline planner, one row per kind and language

For each brief: the film's length within 10% of what it names, the platforms read in order, no meta words and no
stage directions in any subtitle, no two shots with the same description or prompt, every dialogue line said (or
named in the storyboard's notes), every piece of copy in a subtitle, and what each beat asks to see in a shot's
description. The figures are the share of briefs that pass each check.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from tools.brief import read_brief
from tools.film import Storyboard
from tools.plan import PlannerConfig, plan_storyboard

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "briefs" / "briefs.jsonl"
CHECKS = ("length", "platforms", "no_meta", "no_directions", "no_repeats", "dialogue", "copy", "coverage")
# Words about the deliverable that never belong in a subtitle.
META = re.compile(
    r"\b\d+\s*-?\s*(?:seconds?|secs?)\b|\b(?:instagram|tiktok|douyin|xiaohongshu|youtube|reels)\b|\d+\s*秒|抖音|小红书|竖屏|"
    r"\b(?:clip|film|spot|video|ad|teaser) for\b|短片|视频",
    re.IGNORECASE,
)


def load_cases(path: Path = CASES) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def config_for(case: dict, **kw) -> PlannerConfig:
    """The config the run settings would resolve from the brief's reading (the length it names, else 20 s)."""
    reading = read_brief(case["text"]).reading
    return PlannerConfig(duration=reading.duration, **kw)


def check(board: Storyboard, case: dict) -> dict[str, bool]:
    """Each check of the module docstring, True when the storyboard passes it."""
    reading = read_brief(case["text"]).reading
    subtitles = [s.subtitle for s in board.shots]
    said = " ".join(subtitles) + " " + " ".join(board.notes)
    descriptions = " ".join(s.description for s in board.shots).lower()
    want = case["duration"] or 20.0
    return {
        "length": abs(board.duration - want) <= 0.1 * want,
        "platforms": reading.platforms == case["platforms"]
        and (not case["aspect"] or reading.aspect == case["aspect"]),
        "no_meta": not any(META.search(t) for t in subtitles)
        and not any(m in s.subtitle or m in s.description for m in case["meta"] for s in board.shots),
        "no_directions": not any(d in t for d in case["directions"] for t in subtitles),
        "no_repeats": len({s.description for s in board.shots}) == len(board.shots)
        and len({s.prompt for s in board.shots}) == len(board.shots),
        "dialogue": all(line in said for line in case["dialogue"]),
        "copy": all(c in " ".join(subtitles) for c in case["copy"]),
        "coverage": all(w.lower() in descriptions for w in case["must_see"]),
    }


def main() -> int:
    rows: dict[tuple[str, str], list[dict[str, bool]]] = defaultdict(list)
    failures = []
    for case in load_cases():
        board = plan_storyboard(read_brief(case["text"]), config_for(case))
        result = check(board, case)
        rows[(case["kind"], case["lang"])].append(result)
        failures += [f"{case['id']}: {name}" for name, ok in result.items() if not ok]
    head = f"{'kind':<11} {'lang':<4} {'n':>3} " + " ".join(f"{c:>13}" for c in CHECKS)
    print(head)
    for (kind, lang), results in sorted(rows.items()):
        cells = " ".join(f"{sum(r[c] for r in results) / len(results):>13.0%}" for c in CHECKS)
        print(f"{kind:<11} {lang:<4} {len(results):>3} {cells}")
    every = [r for results in rows.values() for r in results]
    cells = " ".join(f"{sum(r[c] for r in every) / len(every):>13.0%}" for c in CHECKS)
    print(f"{'all':<11} {'':<4} {len(every):>3} {cells}")
    for line in failures:
        print("failed:", line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
