"""The review queue of the service: what a person should look at, across every run a key owns.

`flagged(store, owner)` is the one way in: it asks each source in `SOURCES` (`(store, owner) -> list[ReviewItem]`)
for its items. Two sources: the kept takes of finished films (grade B or C, or critics that disagree: one passed
the take and another failed it), whose decisions are rows in the queue's SQLite file (`reviews`); and the B and C
images of finished catalogues, read from each catalogue's own records.db, where their decisions are kept too (the
same records `main.py review` reads and writes). Each run's items are cached until its row changes; a decision
on one catalogue image changes only its item in the cache (`decided`), and `catalogue_item` finds one image
without reading the queue.
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


IN_QUEUE = "grade in ('B', 'C') and path != ''"  # a catalogue's images a person should look at


def _image_item(film: Film, row: dict) -> ReviewItem:
    return ReviewItem(
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


def _catalogue_items(film: Film) -> list[ReviewItem]:
    from agent.catalogue_records import Records

    if not (Path(film.run_dir) / "records.db").is_file():
        return []
    with Records(film.run_dir) as records:
        rows = list(records.rows(f"where {IN_QUEUE}"))
    return [_image_item(film, row) for row in rows]


def catalogue_item(film: Film, key: tuple[str, str, str]) -> ReviewItem | None:
    """The image (sku, scene, platform) of a finished catalogue when it is in the review queue, else None: one
    indexed read, where `flagged` reads every record of every run."""
    from agent.catalogue_records import Records

    if film.kind != "catalogue" or film.status != "done" or not (Path(film.run_dir) / "records.db").is_file():
        return None
    with Records(film.run_dir) as records:
        row = next(records.rows(f"where sku = ? and scene = ? and platform = ? and {IN_QUEUE}", key), None)
    return None if row is None else _image_item(film, row)


def decided(before: Film, after: Film, key: tuple[str, str, str], decision: str) -> None:
    """A decision on one image of catalogue `before` (its row now `after`): its cached items stay, with that
    one decision changed, rather than every record being read again on the next look at the queue."""
    with _cache_lock:
        hit = _cache.get(before.id)
        if hit is None or hit[0] != before.updated:
            return  # not cached, or changed since: the next look reads it
        items = [
            i.model_copy(update={"decision": decision}) if (i.sku, i.scene, i.platform) == key else i
            for i in hit[1]
        ]
        _cache[before.id] = (after.updated, items)


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
