"""The one retry loop of the graph's clips and variants, with its cap explicit."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(tries: int, attempt: Callable[[int, T | None], T], accepted: Callable[[T], bool]) -> T:
    """The retry loop of clips and variants: attempt 1 … `tries`, each given the attempt before it, until one is
    accepted. Returns the accepted attempt, or the last one when none is."""
    made: T | None = None
    for k in range(1, tries + 1):
        made = attempt(k, made)
        if accepted(made):
            break
    return made
