"""The REST API (/v1): films as jobs on the durable queue, their chat, shots, files, and OpenAI-style images.

Every route depends on `auth.caller` (one dependency on the router): a key, or 401; its rate limit, or 429.
Handlers translate a request into the director's operations (agent/operations.py, agent/chat.py) or a queued
job (agent/service.py) and back; a film another key made answers 404, the same as a film that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from agent import director, operations
from agent.api_models import (
    MAX_BRIEF,
    FilmCreated,
    FilmRequest,
    FilmSummary,
    FilmView,
    ImageDatum,
    ImageGenerationRequest,
    ImagesResponse,
    MessageReply,
    MessageRequest,
    ModelCard,
    ModelList,
    RedoRequest,
    ReviewItem,
    ReviewRequest,
    ShotChanged,
    ShotPatch,
    TakesView,
    TakeView,
)
from agent.auth import caller, too_many
from agent.chat import Chat
from agent.jobs import Busy, Film
from agent.operation_args import OperationError, ShotRef
from agent.rundir import MARKER, RunDir, RunDirError, read_json
from agent.service import FilmService
from agent.settings import SettingsError
from agent.uploads import UploadError, decode_image, save_png
from tools.plan import BriefError

router = APIRouter(prefix="/v1", dependencies=[Depends(caller)])
_EDITS: dict[str, threading.Lock] = {}
_EDITS_LOCK = threading.Lock()
TERMINAL = ("done", "failed")


def service(request: Request) -> FilmService:
    return request.app.state.service


def _edit_lock(film_id: str) -> threading.Lock:
    """One change at a time per film: two requests never interleave on one storyboard."""
    with _EDITS_LOCK:
        return _EDITS.setdefault(film_id, threading.Lock())


def owned(film_id: str, request: Request, owner: str = Depends(caller)) -> Film:
    film = service(request).store.film(film_id, owner)
    if film is None:
        raise HTTPException(404, f"no film {film_id!r} for this key")
    return film


def _root(film: Film) -> Path:
    return Path(film.run_dir)


def _storyboard(root: Path) -> dict | None:
    try:
        return read_json(root / "storyboard.json")
    except (OSError, ValueError):
        return None


def _files(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and not p.name.startswith("checkpoints.sqlite"):
            out.append(p.relative_to(root).as_posix())
    return out


def _cuts(root: Path) -> dict[str, str]:
    try:
        settings = read_json(root / "settings.json")
    except (OSError, ValueError):
        return {}
    platforms = settings.get("platforms") or [settings.get("platform", "film")]
    cuts = {platforms[0]: "final.mp4"} if (root / "final.mp4").exists() else {}
    for p in platforms[1:]:
        if (root / f"final-{p}.mp4").exists():
            cuts[p] = f"final-{p}.mp4"
    return cuts


def _view(film: Film) -> FilmView:
    root = _root(film)
    return FilmView(
        id=film.id,
        status=film.status,
        progress=round(film.progress, 3),
        brief=film.brief,
        storyboard=_storyboard(root),
        files=_files(root),
        film="final.mp4" if film.status == "done" and (root / "final.mp4").exists() else None,
        cuts=_cuts(root),
        error=film.error,
        created=film.created,
        updated=film.updated,
    )


def _waiting(film: Film, svc: FilmService) -> None:
    """Storyboard changes and approval need a film that waits for approval, with no work queued."""
    if svc.busy(film.id):
        raise HTTPException(
            409, "the film has work queued or running; wait until it is done (GET its status)"
        )
    marker = _root(film) / MARKER
    if not marker.exists() or director.status(_root(film)) != "waiting-for-approval":
        raise HTTPException(409, f"the film is {film.status}: there is no storyboard waiting for approval")


# --- films ------------------------------------------------------------------------------------------------------


@router.post("/films", status_code=202, response_model=FilmCreated)
def create_film(body: FilmRequest, request: Request, owner: str = Depends(caller)) -> FilmCreated:
    """Queue a film: brief → storyboard → (approval, with `approve`) → takes → clips → cut."""
    from tools.plan import read_brief

    svc = service(request)
    if len(body.brief) > MAX_BRIEF:
        raise HTTPException(413, f"the brief is {len(body.brief):,} characters; at most {MAX_BRIEF:,}")
    cap = request.app.state.max_queued
    if svc.store.active_jobs(owner) >= cap:
        raise too_many(30, f"this key already has {cap} films queued or running")
    try:
        brief = read_brief(body.brief, "api")
        options = {**body.options.model_dump(exclude_none=True), "approve": body.approve}
        refs = [decode_image(b64, f"references[{i}]") for i, b64 in enumerate(body.references)]
        # The settings are built now so that a bad option is this request's 422, not a failed job later.
        svc.settings_for(svc.runs / "check", brief.reading, options)
    except UploadError as err:
        raise HTTPException(413 if err.too_large else 422, str(err)) from None
    except (BriefError, SettingsError) as err:
        raise HTTPException(422, str(err)) from None
    film = svc.create(owner, body.brief, options, refs=refs, save=save_png)
    return FilmCreated(id=film.id, status=film.status)


@router.get("/films", response_model=list[FilmSummary])
def list_films(request: Request, owner: str = Depends(caller)) -> list[FilmSummary]:
    return [
        FilmSummary(
            id=f.id, status=f.status, progress=round(f.progress, 3), brief=f.brief[:200], created=f.created
        )
        for f in service(request).store.films(owner)
    ]


@router.get("/films/{film_id}", response_model=FilmView)
def get_film(film: Film = Depends(owned)) -> FilmView:
    return _view(film)


@router.get("/films/{film_id}/events", response_class=EventSourceResponse)
async def film_events(request: Request, film: Film = Depends(owned), after: int = -1):
    """Server-sent events of the film's progress (`progress` events, JSON), until it is done or failed."""
    svc = service(request)
    seq = after
    yield ServerSentEvent(event="status", data={"status": film.status, "progress": round(film.progress, 3)})
    while True:
        for event in svc.events_after(film.id, seq):
            seq = event["seq"]
            yield ServerSentEvent(event="progress", id=str(seq), data=event)
        now = svc.store.film(film.id)
        if now.status in TERMINAL and not svc.busy(film.id):
            for event in svc.events_after(film.id, seq):
                seq = event["seq"]
                yield ServerSentEvent(event="progress", id=str(seq), data=event)
            yield ServerSentEvent(
                event="end", data={"status": now.status, "progress": round(now.progress, 3)}
            )
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.1)


class _QueuedChat(Chat):
    """The chat with its shoots (approve, redo) handed to the server's queue instead of a thread."""

    svc: FilmService
    film_id: str

    def _start_job(self, op: str, typed) -> str:
        try:
            _submit(
                self.svc, self.film_id, self.root, op, typed.note if typed else "", typed.shot if typed else 0
            )
        except HTTPException as err:
            return f"Not done: {err.detail}"
        self._log("action", op=op, args=typed.model_dump() if typed else {}, queued=True)
        return "Shooting now; ask 'status' any time, or watch the progress."


def _submit(svc: FilmService, film_id: str, root: Path, op: str, note: str = "", shot: int = 0) -> None:
    try:
        if op == "approve":
            if director.status(root) != "waiting-for-approval":
                raise HTTPException(409, "there is no storyboard waiting for approval")
            director.pending_storyboard(root)  # a bad storyboard is refused now, and the film keeps waiting
            svc.submit(film_id, "approve", {})
        else:
            director.check_redo(root, shot, note)
            redos = len(read_json(root / MARKER).get("redos", []))
            svc.submit(film_id, "redo", {"shot": shot, "note": note, "redos_before": redos})
    except Busy:
        raise HTTPException(409, "the film has work queued or running; wait until it is done") from None
    except RunDirError as err:
        raise HTTPException(409, str(err)) from None


@router.post("/films/{film_id}/messages", response_model=MessageReply)
def post_message(body: MessageRequest, request: Request, film: Film = Depends(owned)) -> MessageReply:
    """A message to the director's chat over this film (the chat's operations); its reply."""
    svc = service(request)
    root = _root(film)
    if not (root / "storyboard.json").exists():
        raise HTTPException(409, f"the film is {film.status}: the chat opens once the storyboard is planned")
    with _edit_lock(film.id):
        chat = _QueuedChat.resume(root, background=True)
        chat.svc, chat.film_id = svc, film.id
        if svc.busy(film.id):
            parsed = chat.interpreter.interpret(body.text, chat._context())
            if parsed.op not in ("status", "show", "takes"):
                reply = "The film is shooting; I can tell you its status meanwhile. Changes can wait until it is done."
                return MessageReply(reply=reply, status=svc.store.film(film.id).status)
        reply = chat.handle(body.text)
        chat.wait()
    return MessageReply(reply=reply, status=svc.store.film(film.id).status)


@router.post("/films/{film_id}/approve", status_code=202, response_model=FilmCreated)
def approve_film(request: Request, film: Film = Depends(owned)) -> FilmCreated:
    """Shoot the storyboard as it stands (edit it first with PATCH .../shots/{n} or a message)."""
    svc = service(request)
    with _edit_lock(film.id):
        _waiting(film, svc)
        try:
            _submit(svc, film.id, _root(film), "approve")
        except RunDirError as err:
            raise HTTPException(409, str(err)) from None
    return FilmCreated(id=film.id, status=svc.store.film(film.id).status)


@router.patch("/films/{film_id}/shots/{n}", response_model=ShotChanged)
def patch_shot(n: int, body: ShotPatch, request: Request, film: Film = Depends(owned)) -> ShotChanged:
    """Change fields of shot n (1-based) of a storyboard waiting for approval."""
    svc = service(request)
    root = _root(film)
    with _edit_lock(film.id):
        _waiting(film, svc)
        try:
            change = operations.revise_shot(root, body.revise(n))
        except OperationError as err:
            raise HTTPException(400, str(err)) from None
    return ShotChanged(change=change, storyboard=_storyboard(root) or {})


@router.post("/films/{film_id}/shots/{n}/redo", status_code=202, response_model=FilmCreated)
def redo_shot(n: int, body: RedoRequest, request: Request, film: Film = Depends(owned)) -> FilmCreated:
    """Re-shoot shot n of the finished film with a note, then re-cut."""
    svc = service(request)
    with _edit_lock(film.id):
        _submit(svc, film.id, _root(film), "redo", body.note, n)
    return FilmCreated(id=film.id, status=svc.store.film(film.id).status)


@router.get("/films/{film_id}/shots/{n}/takes", response_model=TakesView)
def shot_takes(n: int, film: Film = Depends(owned)) -> TakesView:
    """Every take of shot n with its grade and issues, and which one was kept and why."""
    root = _root(film)
    try:
        change = operations.takes(root, ShotRef(shot=n))
    except OperationError as err:
        raise HTTPException(404, str(err)) from None
    run = RunDir(root)
    shot_id = change.shots[0]
    clip = run.load_clip(shot_id)
    takes = [
        TakeView(
            n=t.n,
            path=t.path,
            grade=t.critique.grade if t.critique else None,
            passed=t.critique.passed if t.critique else None,
            issues=[f"{i.category}: {i.reason}" for i in (t.critique.issues if t.critique else [])],
            repair=t.repair.reason if t.repair else None,
            kept=bool(clip and clip.take == t.n),
        )
        for t in run.takes()
        if t.shot_id == shot_id
    ]
    return TakesView(shot=n, shot_id=shot_id, message=change.message, takes=takes)


def safe_path(root: Path, rel: str) -> Path:
    """`rel` as a file inside `root`, or 404: no absolute path, no `..`, no symlink anywhere on the way."""
    pure = PurePosixPath(rel)
    if not rel or "\\" in rel or "\x00" in rel or pure.is_absolute() or ".." in pure.parts:
        raise HTTPException(404, "no such file in this run")
    path = root
    for part in pure.parts:
        path = path / part
        if path.is_symlink():
            raise HTTPException(404, "no such file in this run")
    resolved, base = path.resolve(), root.resolve()
    if (
        not resolved.is_relative_to(base)
        or not resolved.is_file()
        or resolved.name.startswith("checkpoints.sqlite")
    ):
        raise HTTPException(404, "no such file in this run")
    return resolved


@router.get("/films/{film_id}/files/{path:path}")
def get_file(path: str, film: Film = Depends(owned)) -> FileResponse:
    """Download an artefact of this film (a path from its `files`)."""
    return FileResponse(safe_path(_root(film), path))


# --- the review queue ------------------------------------------------------------------------------------------


@router.get("/review", response_model=list[ReviewItem])
def review_queue(request: Request, owner: str = Depends(caller)) -> list[ReviewItem]:
    """Every kept take of this key's finished films that a person should look at (grade B or C)."""
    svc = service(request)
    items = []
    for film in svc.store.films(owner):
        root = _root(film)
        board = _storyboard(root)
        if film.status != "done" or not board:
            continue
        decisions = svc.store.reviews(film.id)
        run = RunDir(root)
        by_id = {(t.shot_id, t.n): t for t in run.takes()}
        for i, shot in enumerate(board.get("shots", []), start=1):
            clip = run.load_clip(shot["id"])
            take = by_id.get((shot["id"], clip.take)) if clip else None
            if take is None or take.critique is None or take.critique.grade == "A":
                continue
            items.append(
                ReviewItem(
                    film_id=film.id,
                    shot=i,
                    shot_id=shot["id"],
                    take=take.n,
                    path=take.path,
                    grade=take.critique.grade,
                    issues=[f"{x.category}: {x.reason}" for x in take.critique.issues[:4]],
                    decision=decisions.get((shot["id"], take.n)),
                )
            )
    return items


@router.post("/review/{film_id}/shots/{n}", response_model=ReviewItem)
def review_take(n: int, body: ReviewRequest, request: Request, film: Film = Depends(owned)) -> ReviewItem:
    """A person's decision on a flagged take: approve, reject, or redo with a note (queued)."""
    svc = service(request)
    item = next((i for i in review_queue(request, film.owner) if i.film_id == film.id and i.shot == n), None)
    if item is None:
        raise HTTPException(404, f"shot {n} of this film is not in the review queue")
    if body.action == "redo":
        with _edit_lock(film.id):
            _submit(svc, film.id, _root(film), "redo", body.note, n)
    svc.store.review(film.id, item.shot_id, item.take, body.action, body.note)
    return item.model_copy(update={"decision": body.action})


# --- OpenAI-compatible images ----------------------------------------------------------------------------------


def _size(size: str) -> tuple[int, int]:
    w, sep, h = size.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise HTTPException(400, f"size {size!r} is not WIDTHxHEIGHT, e.g. 1024x1024")
    w_, h_ = int(w), int(h)
    if not (64 <= w_ <= 2048 and 64 <= h_ <= 2048):
        raise HTTPException(413, f"size {size}: each side must be between 64 and 2048")
    return w_, h_


@router.get("/models", response_model=ModelList)
def list_models(request: Request) -> ModelList:
    backend = service(request).image_backends().image
    return ModelList(data=[ModelCard(id=backend.model), ModelCard(id="creative-director")])


@router.post("/images/generations", response_model=ImagesResponse)
def generate_images(body: ImageGenerationRequest, request: Request) -> ImagesResponse:
    """OpenAI's images.generate, rendered by the director's image backend and judged by its critique."""
    import uuid

    from tools.critique import CritiqueConfig, CritiqueRequest, critique_image
    from tools.generate_image import BackendError, ImageRequest

    svc = service(request)
    backends = svc.image_backends()
    if body.model not in (None, backends.image.model, "creative-director"):
        raise HTTPException(404, f"model {body.model!r} is not served here; GET /v1/models lists the models")
    if body.response_format != "b64_json":
        raise HTTPException(400, "response_format 'url' is not supported here; ask for b64_json")
    width, height = _size(body.size)
    out = svc.state_dir / "images"
    out.mkdir(parents=True, exist_ok=True)
    data = []
    config = CritiqueConfig()
    for i in range(body.n):
        path = out / f"{uuid.uuid4().hex}.png"
        seed = (body.seed if body.seed is not None else int(time.time() * 1000) % 2**31) + i
        try:
            backends.image.generate(
                ImageRequest(prompt=body.prompt, width=width, height=height, seed=seed, output_path=str(path))
            )
            crit = critique_image(
                CritiqueRequest(image_path=str(path), prompt=body.prompt, width=width, height=height), config
            )
            data.append(
                ImageDatum(
                    b64_json=base64.b64encode(path.read_bytes()).decode("ascii"),
                    revised_prompt=body.prompt,
                    critique={
                        "grade": crit.grade,
                        "passed": crit.passed,
                        "issues": [f"{x.category}: {x.reason}" for x in crit.issues],
                    },
                )
            )
        except BackendError as err:
            raise HTTPException(502, f"the image backend failed: {err}") from None
        finally:
            path.unlink(missing_ok=True)
    return ImagesResponse(created=int(time.time()), data=data)
