"""summary.json and report.html of an eval run: the numbers, the plots and the pictures side by side.

`summary.json` holds, per strategy, every numeric metric found in the rows' `scores` (mean, bootstrap ci95, std,
n), the same per category and per challenge, and the cost per accepted image; and paired comparisons of every
strategy against the first (the baseline) on the (prompt_id, seed) pairs both have. A metric's direction
(`higher_is_better`) decides what counts as a win; metrics with no better direction (e.g. image width) get
no win rate.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import jinja2

from agent.rundir import write_atomic, write_json
from evals.stats import describe, paired_comparison

_LOWER_IS_BETTER = re.compile(r"(seconds$|^takes$|cer$|aspect_error$|clipped_\w+$|issues$)")
# Descriptive numbers of the critics (size, exposure level, spread, lines read): recorded and summarised, but
# neither more nor less is better.
_NEUTRAL = re.compile(r"^(tech\.(width|height|exposure_\w+|luma_std)|ocr\.lines)$")
# Shown first in the report's tables and plots, when present.
HEADLINE = [
    "passed",
    "grade_points",
    "clip.alignment",
    "vlm.pass",
    "ocr.accuracy",
    "tech.sharpness",
    "takes",
    "seconds",
]
GRID_LIMIT = 60
CONVENTIONS = {
    "std": "sample standard deviation (ddof=1); null for n < 2",
    "ci95": "percentile bootstrap of the mean, 10,000 resamples, seed 0",
    "mean_diff": "strategy minus baseline, per (prompt_id, seed) pair",
    "win_rate": "share of pairs where the strategy is better in the metric's direction; a tie counts 1/2",
    "scoring": "every image is scored against the original prompt, not the strategy's rewrite",
    "passed": "1 when the kept take's critique passed (grade A or B), else 0; an image that failed to render is 0",
}


def higher_is_better(metric: str) -> bool | None:
    """True/False for metrics with a better direction, None for descriptive ones."""
    if _NEUTRAL.match(metric):
        return None
    return not _LOWER_IS_BETTER.search(metric)


def _metrics(rows: list[dict]) -> dict[str, dict]:
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, value in row["scores"].items():
            values[name].append(float(value))
    return {name: describe(v) for name, v in sorted(values.items())}


def _groups(rows: list[dict], field: str) -> dict[str, dict]:
    by: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by[row[field]].append(row)
    return {k: {"n": len(v), "metrics": _metrics(v)} for k, v in sorted(by.items())}


def _cost(rows: list[dict]) -> dict:
    accepted = sum(1 for r in rows if r["passed"])
    cost = {
        "accepted": accepted,
        "acceptance_rate": accepted / len(rows) if rows else None,
        "takes_per_accepted": None,
        "seconds_per_accepted": None,
    }
    if accepted:
        cost["takes_per_accepted"] = sum(r["scores"]["takes"] for r in rows) / accepted
        cost["seconds_per_accepted"] = sum(r["scores"]["seconds"] for r in rows) / accepted
        if any("gpu_seconds" in r["scores"] for r in rows):
            cost["gpu_seconds_per_accepted"] = (
                sum(r["scores"].get("gpu_seconds", 0.0) for r in rows) / accepted
            )
    return cost


def summarise(rows: list[dict], strategies: list[str]) -> dict:
    """The summary of the rows: per strategy, per category and challenge, cost, and comparisons to the first."""
    by_strategy = {s: [r for r in rows if r["strategy"] == s] for s in strategies}
    out: dict = {"baseline": strategies[0], "conventions": CONVENTIONS, "strategies": {}, "comparisons": {}}
    for name, srows in by_strategy.items():
        out["strategies"][name] = {
            "n": len(srows),
            "errors": sum(1 for r in srows if r.get("error")),
            "metrics": _metrics(srows),
            "by_category": _groups(srows, "category"),
            "by_challenge": _groups(srows, "challenge"),
            "cost": _cost(srows),
        }
    base = {(r["prompt_id"], r["seed"]): r for r in by_strategy[strategies[0]]}
    for name in strategies[1:]:
        comparisons: dict[str, dict] = {}
        pairs = [
            (r, base[(r["prompt_id"], r["seed"])])
            for r in by_strategy[name]
            if (r["prompt_id"], r["seed"]) in base
        ]
        metrics = sorted({m for r, b in pairs for m in r["scores"] if m in b["scores"]})
        for metric in metrics:
            a = [r["scores"][metric] for r, b in pairs if metric in r["scores"] and metric in b["scores"]]
            b = [b["scores"][metric] for r, b in pairs if metric in r["scores"] and metric in b["scores"]]
            direction = higher_is_better(metric)
            c = paired_comparison(a, b, higher_is_better=direction is not False)
            if direction is None:
                c["win_rate"] = None
            c["higher_is_better"] = direction
            comparisons[metric] = c
        out["comparisons"][name] = comparisons
    return out


def write_summary(rows: list[dict], strategies: list[str], out: Path, run: dict) -> dict:
    """Compute the summary and write it as summary.json (with the run's description under "run")."""
    summary = {"run": run, **summarise(rows, strategies)}
    write_json(out / "summary.json", summary)
    return summary


# --- plots --------------------------------------------------------------------------------------------------


def _plot_metrics(summary: dict, strategies: list[str], metrics: list[str], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(metrics), 3.2), layout="constrained")
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        means, lows, highs, labels = [], [], [], []
        for s in strategies:
            d = summary["strategies"][s]["metrics"].get(metric)
            if d is None:
                continue
            lo, hi = d["ci95"]
            means.append(d["mean"])
            lows.append(d["mean"] - lo)
            highs.append(hi - d["mean"])
            labels.append(s)
        ax.bar(labels, means, yerr=[lows, highs], capsize=4, color="#4c72b0")
        ax.set_title(metric, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle("mean by strategy (error bars: bootstrap 95% CI)", fontsize=10)
    write_atomic(path, _png(fig))


def _plot_groups(summary: dict, strategies: list[str], metric: str, field: str, path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    groups = sorted({g for s in strategies for g in summary["strategies"][s][field]})
    fig = Figure(
        figsize=(max(6.0, 0.9 * len(groups) * max(1, len(strategies)) / 2 + 2), 4), layout="constrained"
    )
    ax = fig.subplots()
    width = 0.8 / len(strategies)
    x = np.arange(len(groups))
    for k, s in enumerate(strategies):
        means, err_lo, err_hi = [], [], []
        for g in groups:
            d = summary["strategies"][s][field].get(g, {}).get("metrics", {}).get(metric)
            m = d["mean"] if d else np.nan
            means.append(m)
            err_lo.append(m - d["ci95"][0] if d else 0)
            err_hi.append(d["ci95"][1] - m if d else 0)
        ax.bar(
            x + (k - (len(strategies) - 1) / 2) * width,
            means,
            width,
            yerr=[err_lo, err_hi],
            capsize=2,
            label=s,
        )
    ax.set_xticks(x, groups, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {field.removeprefix('by_')} (95% CI)", fontsize=10)
    ax.legend(fontsize=8)
    write_atomic(path, _png(fig))


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


# --- report.html --------------------------------------------------------------------------------------------


def write_report(rows: list[dict], summary: dict, strategies: list[str], out: Path) -> str:
    """Write report.html and its plot PNGs beside it; return the report's path."""
    present = {m for s in strategies for m in summary["strategies"][s]["metrics"]}
    headline = [m for m in HEADLINE if m in present]
    others = sorted(present - set(headline))
    plots = []
    if headline:
        _plot_metrics(summary, strategies, headline, out / "plot-metrics.png")
        plots.append(("Metrics by strategy", "plot-metrics.png"))
    group_metric = next((m for m in ("clip.alignment", "vlm.pass", "passed") if m in present), None)
    if group_metric:
        for field in ("by_category", "by_challenge"):
            name = f"plot-{field.replace('_', '-')}.png"
            _plot_groups(summary, strategies, group_metric, field, out / name)
            plots.append((f"{group_metric} {field.replace('_', ' ')}", name))

    by_pair: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        by_pair[(row["prompt_id"], row["seed"])][row["strategy"]] = row
    grid = [
        {"prompt_id": pid, "seed": seed, "prompt": cells[next(iter(cells))]["prompt"], "cells": cells}
        for (pid, seed), cells in list(by_pair.items())[:GRID_LIMIT]
    ]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,  # prompts and ids are user text
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = _num
    html = env.get_template("report.html.j2").render(
        summary=summary,
        strategies=strategies,
        headline=headline,
        others=others,
        plots=plots,
        grid=grid,
        grid_total=len(by_pair),
        verdict=verdict,
    )
    path = out / "report.html"
    write_atomic(path, html)
    return str(path)


def verdict(comparison: dict) -> str:
    """'better' / 'worse' when the whole ci95 of the difference lies on one side of zero, else ''."""
    direction, ci = comparison["higher_is_better"], comparison["ci95"]
    if direction is None or ci is None:
        return ""
    lo, hi = (ci[0], ci[1]) if direction else (-ci[1], -ci[0])
    return "better" if lo > 0 else "worse" if hi < 0 else ""


def _num(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
