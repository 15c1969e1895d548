"""The review queue of the service: what a person should look at, across every run a key owns.

`flagged(store, owner)` is the one way in: it asks each source in `SOURCES` (`(store, owner) -> list[ReviewItem]`)
for its items. Two sources: the kept takes of finished films (grade B or C, or critics that disagree: one passed
the take and another failed it), whose decisions are rows in the queue's SQLite file (`reviews`); and the B and C
images of finished catalogues, read from each catalogue's own records.db, where their decisions are kept too (the
same records `main.py review` reads and writes). Each run's items are cached until its row changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

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
                url=f"/v1/films/{film.id}/files/{quote(take.path)}",
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
        items = _cached(film, _film_items)
        if not items:
            continue
        decisions = store.reviews(film.id)
        out += [i.model_copy(update={"decision": decisions.get((i.shot_id, i.take))}) for i in items]
    return out


def _catalogue_items(film: Film) -> list[ReviewItem]:
    from agent.catalogue_records import Records

    if not (Path(film.run_dir) / "records.db").is_file():
        return []
    with Records(film.run_dir) as records:
        rows = list(records.rows("where grade in ('B', 'C') and path != ''"))
    return [
        ReviewItem(
            kind="image",
            film_id=film.id,
            sku=row["sku"],
            scene=row["scene"],
            platform=row["platform"],
            path=row["path"],
            url=f"/v1/catalogues/{film.id}/files/{quote(row['path'])}",
            grade=row["grade"],
            issues=row["issues"][:4],
            # `new` is undecided; a redo's new image is `new` again (Records.add), so it comes back undecided.
            decision=None if row["status"] == "new" else row["status"],
        )
        for row in rows
    ]


def _cached(film: Film, make: Callable[[Film], list[ReviewItem]]) -> list[ReviewItem]:
    with _cache_lock:
        hit = _cache.get(film.id)
    if hit is None or hit[0] != film.updated:
        hit = (film.updated, make(film))
        with _cache_lock:
            _cache[film.id] = hit
    return hit[1]


def catalogue_images(store: JobStore, owner: str) -> list[ReviewItem]:
    """B and C images of the owner's finished catalogues, decided or not, with their decisions."""
    return [
        item
        for film in store.films(owner, kind="catalogue")
        if film.status == "done"
        for item in _cached(film, _catalogue_items)
    ]


SOURCES: list[Callable[[JobStore, str], list[ReviewItem]]] = [film_takes, catalogue_images]


def flagged(store: JobStore, owner: str) -> list[ReviewItem]:
    """Every item flagged for a person, from every source, newest films first."""
    return [item for source in SOURCES for item in source(store, owner)]
