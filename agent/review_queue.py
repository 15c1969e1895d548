"""The review queue of the service: what a person should look at, across every run a key owns.

`flagged(store, owner)` is the one way in: it asks each source in `SOURCES` for its items. Today the only
source is the kept takes of finished films (grade B or C, or critics that disagree: one passed the take and
another failed it); a product catalogue adds its images by appending a source with the same signature
(`(store, owner) -> list[ReviewItem]`, `kind="image"`). A person's decisions are rows in the queue's SQLite file
(`reviews`), so they survive a restart. Each film's items are cached until the film's row changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from agent.api_models import ReviewItem
from agent.jobs import Film, JobStore
from agent.rundir import RunDir, read_json

_cache: dict[str, tuple[float, list[ReviewItem]]] = {}
_cache_lock = threading.Lock()


def _disagree(critique) -> bool:
    verdicts = {c.passed for c in critique.critics if c.ran and c.passed is not None}
    return verdicts == {True, False}


def _film_items(film: Film) -> list[ReviewItem]:
    root = Path(film.run_dir)
    try:
        board = read_json(root / "storyboard.json")
    except (OSError, ValueError):
        return []
    run = RunDir(root)
    by_id = {(t.shot_id, t.n): t for t in run.takes()}
    items = []
    for i, shot in enumerate(board.get("shots", []), start=1):
        clip = run.load_clip(shot["id"])
        take = by_id.get((shot["id"], clip.take)) if clip else None
        if take is None or take.critique is None:
            continue
        if take.critique.grade == "A" and not _disagree(take.critique):
            continue
        items.append(
            ReviewItem(
                kind="take",
                film_id=film.id,
                shot=i,
                shot_id=shot["id"],
                take=take.n,
                path=take.path,
                grade=take.critique.grade,
                issues=[f"{x.category}: {x.reason}" for x in take.critique.issues[:4]],
                decision=None,
            )
        )
    return items


def film_takes(store: JobStore, owner: str) -> list[ReviewItem]:
    """Kept takes of the owner's finished films that a person should look at, with their decisions."""
    out = []
    for film in store.films(owner):
        if film.status != "done":
            continue
        with _cache_lock:
            hit = _cache.get(film.id)
        if hit is None or hit[0] != film.updated:
            hit = (film.updated, _film_items(film))
            with _cache_lock:
                _cache[film.id] = hit
        if not hit[1]:
            continue
        decisions = store.reviews(film.id)
        out += [i.model_copy(update={"decision": decisions.get((i.shot_id, i.take))}) for i in hit[1]]
    return out


SOURCES: list[Callable[[JobStore, str], list[ReviewItem]]] = [film_takes]


def flagged(store: JobStore, owner: str) -> list[ReviewItem]:
    """Every item flagged for a person, from every source, newest films first."""
    return [item for source in SOURCES for item in source(store, owner)]
