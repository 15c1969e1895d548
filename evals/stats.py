"""Statistics for the evaluation harness: means, spreads, bootstrap intervals, paired comparisons, win rates.

Everything is plain numpy and deterministic: the bootstrap draws from a seeded generator, so the same results
always give the same `summary.json`. Conventions, stated once:

- `std` is the sample standard deviation (ddof=1); it is undefined (None) for fewer than two values.
- `ci95` is a percentile bootstrap interval of the mean (resampling the values with replacement); with one value
  it is that value on both sides, with none it is None.
- Paired differences are `strategy - baseline` per (prompt, seed) pair, whatever the metric's direction.
- The win rate counts, over pairs, a win as 1 and a tie as 1/2 (losses 0), with "better" taking the metric's
  direction into account (fewer seconds is a win). 0.5 means no difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# Resamples drawn per block: bounds memory to about 8 MB per 1,000 values however large the prompt set is.
_BLOCK = 1_000


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean; None for no values."""
    return float(np.mean(values)) if len(values) else None


def std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof=1); None for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def bootstrap_ci(
    values: Sequence[float],
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values`.

    Draws `resamples` samples of len(values) with replacement from a generator seeded with `seed`, takes each
    sample's mean, and returns the (1-level)/2 and (1+level)/2 percentiles of those means.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _BLOCK):
        stop = min(start + _BLOCK, resamples)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def describe(values: Sequence[float], seed: int = BOOTSTRAP_SEED) -> dict:
    """The summary of one metric: mean, ci95, std and n (the shape `summary.json` uses)."""
    ci = bootstrap_ci(values, seed=seed)
    return {"mean": mean(values), "ci95": list(ci) if ci else None, "std": std(values), "n": len(values)}


def win_rate(
    strategy: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True
) -> float | None:
    """Share of pairs where `strategy` beats `baseline`: a win counts 1, a tie 1/2, a loss 0."""
    a, b = np.asarray(strategy, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"win_rate needs paired values; got {a.size} and {b.size}")
    if a.size == 0:
        return None
    better = a > b if higher_is_better else a < b
    ties = a == b
    return float((better.sum() + 0.5 * ties.sum()) / a.size)


def paired_comparison(
    strategy: Sequence[float],
    baseline: Sequence[float],
    higher_is_better: bool = True,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """Compare two strategies on the same (prompt, seed) pairs: mean difference, its ci95, and the win rate.

    The differences are `strategy - baseline`; the interval is the bootstrap interval of their mean, so a
    ci95 that excludes 0 says the difference is unlikely to be resampling noise.
    """
    a, b = np.asarray(strategy, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_comparison needs paired values; got {a.size} and {b.size}")
    diffs = a - b
    ci = bootstrap_ci(diffs, seed=seed)
    return {
        "mean_diff": mean(diffs),
        "ci95": list(ci) if ci else None,
        "win_rate": win_rate(a, b, higher_is_better),
        "n_pairs": int(a.size),
    }
