"""The REST API's catalogues (/v1/catalogues): product rows → graded images per SKU × scene × platform, as a job.

A catalogue is a row of the queue like a film (agent/jobs.py, kind `catalogue`), owned by the key that sent it:
another key's catalogue answers 404. The worker runs `agent.catalogue.run_catalogue` with its warm backends into
the catalogue's folder; its B and C images then wait in the studio's review queue (agent/review_queue.py), and
a decision on one (`POST /v1/review/{id}/images`) is the same `agent.review.decide` that `main.py review` makes.
`POST .../cancel` and `.../resume` are the films' own (agent/api.cancel_work, resume_work): a catalogue stops
between units and resumes without making a recorded unit again.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from contextlib import suppress
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse

from agent import downloads
from agent import review_queue as review
from agent.api import cancel_work, resume_work
from agent.api_models import CatalogueRequest, CatalogueView, FilmCreated, ImageReviewRequest, ReviewItem
from agent.auth import caller, too_many
from agent.jobs import Busy, Film
from agent.service import FilmService
from agent.uploads import UploadError, decode_image, save_png
from tools.errors import SettingsError

log = logging.getLogger("creative_director.api")
router = APIRouter(prefix="/v1", dependencies=[Depends(caller)], tags=["catalogues"])
PHOTO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
DECISIONS = {"approve": "approved", "reject": "rejected"}  # the words records.db keeps (agent/review.py)


def _service(request: Request) -> FilmService:
    return request.app.state.service


def owned_catalogue(catalogue_id: str, request: Request, owner: str = Depends(caller)) -> Film:
    film = _service(request).store.film(catalogue_id, owner)
    if film is None or film.kind != "catalogue":
        raise HTTPException(404, f"no catalogue {catalogue_id!r} for this key")
    return film


def _rows(body: CatalogueRequest) -> tuple[list[dict], dict[str, object]]:
    """The rows with each `image` pointing at its re-encoded photo, and the decoded photos; 422/413 otherwise."""
    photos = {}
    for name, b64 in body.photos.items():
        if not PHOTO_NAME.fullmatch(name) or ".." in name:
            raise HTTPException(422, f"photos: {name!r} is not a plain file name (letters, digits, . _ -)")
        try:
            photos[Path(name).stem + ".png"] = decode_image(b64, f"photos[{name!r}]")
        except UploadError as err:
            raise HTTPException(413 if err.too_large else 422, str(err)) from None
    names = {name: Path(name).stem + ".png" for name in body.photos}
    if len(set(names.values())) < len(names):
        raise HTTPException(422, "photos: two names differ only in their extension; name each photo once")
    rows = []
    for i, row in enumerate(body.products):
        image = row.get("image")
        if image is not None and image not in names:
            raise HTTPException(422, f"products[{i}].image {image!r} names none of the photos sent")
        rows.append({**row, "image": names[image]} if image is not None else row)
    return rows, photos


@router.post("/catalogues", status_code=202, response_model=FilmCreated)
def create_catalogue(body: CatalogueRequest, request: Request, owner: str = Depends(caller)) -> FilmCreated:
    """Queue a catalogue: every product × scene × platform image, graded; B and C go to the review queue."""
    from agent.catalogue import DEFAULT_PLATFORMS
    from tools.platforms import load_platforms
    from tools.products import SCENE_NAME, Product, read_products

    svc = _service(request)
    cap = request.app.state.max_queued
    if svc.store.active_jobs(owner) >= cap:
        raise too_many(30, f"this key already has {cap} jobs queued or running")
    platforms = body.platforms or DEFAULT_PLATFORMS
    # Scenes name the image files (<platform>/<slug>/<scene>.png): names only, never a path.
    bad = [scene for scene in body.scenes if not SCENE_NAME.match(scene)]
    if bad:
        raise HTTPException(422, f"scene {bad[0]!r} is not a name (lower-case letters, digits, _ or -)")
    try:
        load_platforms(platforms)
    except SettingsError as err:
        raise HTTPException(422, str(err)) from None
    rows, photos = _rows(body)

    def check(products_file: Path) -> None:
        try:
            products = list(read_products(products_file))
        except SettingsError as err:
            raise HTTPException(422, str(err).replace(str(products_file), "products")) from None
        if not any(isinstance(p, Product) for p in products):
            raise HTTPException(422, "no usable product rows: " + "; ".join(map(str, products[:3])))

    film = svc.create_catalogue(
        owner,
        rows,
        photos,
        {
            "platforms": platforms,
            "scenes": body.scenes,
            "render_side": body.render_side,
            "shadow": body.shadow,
        },
        {"seed": body.seed, "max_takes": body.max_takes},
        save=save_png,
        check=check,
    )
    return FilmCreated(id=film.id, status=film.status)


def _grades(root: Path) -> dict[str, int]:
    """Images recorded so far by grade, read without taking any lock from the worker writing them."""
    path = root / "records.db"
    if not path.is_file():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return dict(db.execute("select grade, count(*) from records group by grade").fetchall())
    except sqlite3.OperationalError:  # created but its tables not yet written
        return {}
    finally:
        db.close()


def _view(film: Film) -> CatalogueView:
    root = Path(film.run_dir)
    quiet = film.status in ("done", "failed", "cancelled")
    products = (Path(film.options["upload"]) / "products.jsonl").read_bytes().count(b"\n")
    return CatalogueView(
        id=film.id,
        status=film.status,
        progress=round(film.progress, 3),
        products=products,
        platforms=film.options["catalogue"]["platforms"],
        grades=_grades(root),
        files=downloads.run_files(root, film.updated, None if quiet else 1.0),
        error=film.error,
        created=film.created,
        updated=film.updated,
    )


@router.get("/catalogues", response_model=list[CatalogueView])
def list_catalogues(request: Request, owner: str = Depends(caller)) -> list[CatalogueView]:
    return [_view(f) for f in _service(request).store.films(owner, kind="catalogue")]


@router.get("/catalogues/{catalogue_id}", response_model=CatalogueView)
def get_catalogue(film: Film = Depends(owned_catalogue)) -> CatalogueView:
    return _view(film)


@router.post("/catalogues/{catalogue_id}/cancel", response_model=FilmCreated)
def cancel_catalogue(request: Request, film: Film = Depends(owned_catalogue)) -> FilmCreated:
    """Stop the catalogue between units: the units already recorded stay, and the status becomes `cancelled`
    (at once when its job had not started, else when the worker reaches the next unit)."""
    return cancel_work(_service(request), film, "catalogue")


@router.post("/catalogues/{catalogue_id}/resume", status_code=202, response_model=FilmCreated)
def resume_catalogue(request: Request, film: Film = Depends(owned_catalogue)) -> FilmCreated:
    """Continue a cancelled or failed catalogue: units are idempotent, so those recorded are not made again."""
    return resume_work(_service(request), film, "catalogue")


@router.get("/catalogues/{catalogue_id}/files/{path:path}")
def get_catalogue_file(path: str, film: Film = Depends(owned_catalogue)) -> FileResponse:
    """An image or export of this catalogue (a path from its `files`)."""
    try:
        found = downloads.safe_path(Path(film.run_dir), path)
        if path == "qc_report.html" and film.status == "done":
            from agent.review import refresh_report

            refresh_report(Path(film.run_dir))  # decisions since it was written leave it stale
        return FileResponse(found)
    except downloads.NotInRun:
        raise HTTPException(404, "no such file in this catalogue") from None


@router.post("/review/{catalogue_id}/images", response_model=ReviewItem)
def review_image(
    body: ImageReviewRequest, request: Request, film: Film = Depends(owned_catalogue)
) -> ReviewItem:
    """A person's decision on a flagged catalogue image: approve or reject (recorded in the catalogue's
    records.db, as `main.py review` records it), or redo with a note (a job for a worker's warm models)."""
    from agent import review as decisions
    from agent.catalogue_records import Records

    svc = _service(request)
    key = (body.sku, body.scene, body.platform)
    item = review.catalogue_item(film, key)
    if item is None:
        raise HTTPException(404, f"{'/'.join(key)} of this catalogue is not in the review queue")
    if svc.busy(film.id):
        raise HTTPException(409, "the catalogue has work queued or running; decide when it is done")
    if body.action == "redo":
        if not body.note.strip():
            raise HTTPException(422, "a redo needs a note saying what to change")
        try:
            svc.submit(film.id, "review", {"sku": body.sku, "scene": body.scene, "platform": body.platform,
                                           "note": body.note})  # fmt: skip
        except Busy:
            raise HTTPException(409, "the catalogue has work queued or running") from None
        return item.model_copy(update={"decision": "redo"})
    root = Path(film.run_dir)
    with Records(root) as records:
        row = next(records.rows("where sku = ? and scene = ? and platform = ?", key))
        decisions.decide(records, row, DECISIONS[body.action], body.note, lambda _: None, None)
        decisions.publish_decision(records, root, row)  # its lines of the exports; the QC page goes stale
    svc.store.update_film(film.id)  # the queue's cache of this catalogue keys on `updated`
    review.decided(film, svc.store.film(film.id), key, DECISIONS[body.action])
    _report_later(root)
    return item.model_copy(update={"decision": DECISIONS[body.action]})


REPORT_DELAY = 5.0  # seconds of no decisions on a catalogue before its qc_report.html is written again
_reports: dict[Path, threading.Timer] = {}
_reports_lock = threading.Lock()


def _report_later(root: Path) -> None:
    """Write the catalogue's qc_report.html again once decisions pause (a reviewer makes them seconds apart),
    on a thread of its own at nice 19, so that no decision waits on its contact sheets. Reading the page
    through the API before then writes it first (agent/review.refresh_report)."""
    with _reports_lock:
        if (old := _reports.pop(root, None)) is not None:
            old.cancel()
        timer = _reports[root] = threading.Timer(REPORT_DELAY, _refresh_report, (root,))
        timer.daemon = True
        timer.start()


def _refresh_report(root: Path) -> None:
    from agent.review import refresh_report

    with _reports_lock:
        _reports.pop(root, None)
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only (Linux)
    try:
        refresh_report(root)
    except (OSError, sqlite3.Error) as err:  # the page is written when it is next read
        log.warning("qc_report.html of %s not written again: %s", root, err)


__all__ = ["router"]
