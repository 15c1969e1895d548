"""The REST API (/v1): films as jobs on the durable queue, their chat, shots, files, and OpenAI-style images.

Every route depends on `auth.caller` (one dependency on the router): a key, or 401; its rate limit, or 429.
Handlers translate a request into the director's operations (agent/operations.py, agent/chat.py) or a queued
job (agent/service.py, run by agent/worker.py in another process) and back; a film another key made answers
404, the same as a film that does not exist. Nothing here renders: shoots and images are jobs for the workers,
so a status call is a few SQLite reads and a cached file list.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from agent import director, downloads, operations, run_view
from agent import review_queue as review
from agent.api_models import (
    MAX_BRIEF,
    ChatEntry,
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


async def owned(film_id: str, request: Request, owner: str = Depends(caller)) -> Film:
    # On the event loop: one indexed read on this thread's own connection, which waits for no writer.
    film = service(request).store.film(film_id, owner)
    if film is None or film.kind != "film":
        raise HTTPException(404, f"no film {film_id!r} for this key")
    return film


def _root(film: Film) -> Path:
    return Path(film.run_dir)


_storyboard = run_view.storyboard


def _refresh(svc: FilmService, film: Film) -> None:
    """After an edit made here: the film's view (agent/run_view.py) taken again, and `updated` moved."""
    svc.store.update_film(film.id, view=run_view.take_json(_root(film)))


def _view(film: Film, view: dict) -> FilmView:
    storyboard, files, cuts = view["storyboard"], view["files"], view["cuts"]
    return FilmView(
        id=film.id,
        status=film.status,
        progress=round(film.progress, 3),
        brief=film.brief,
        storyboard=storyboard,
        files=files,
        film="final.mp4" if film.status == "done" and "final.mp4" in files else None,
        cuts=cuts,
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
    svc = service(request)
    return [
        FilmSummary(
            id=f.id,
            status=f.status,
            progress=round(f.progress, 3),
            brief=f.brief[:200],
            created=f.created,
            updated=f.updated,
            error=f.error,
            chat=(_root(f) / "chat.jsonl").exists(),
            resumable=f.status == "failed" and not svc.busy(f.id),
        )
        for f in svc.store.films(owner)
    ]


@router.get("/films/{film_id}", response_model=FilmView)
async def get_film(film: Film = Depends(owned)) -> FilmView:
    """The film's status, progress, storyboard and files: one SQLite read, answered on the event loop."""
    if film.view is not None:
        return _view(film, json.loads(film.view))
    # Not yet seen by a worker (queued), or made by a server from before views were kept.
    return _view(film, await asyncio.to_thread(run_view.take, _root(film)))


@router.get("/films/{film_id}/events", response_class=EventSourceResponse)
async def film_events(request: Request, film: Film = Depends(owned), after: int = -1):
    """Server-sent events of the film's progress (`progress` events, JSON), until it is done or failed.
    The workers write the events into the queue's SQLite file; `after` (an event's id) resumes a stream."""
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
        await asyncio.sleep(0.25)


class _QueuedChat(Chat):
    """The chat with its shoots (approve, redo) handed to the server's queue instead of a thread."""

    svc: FilmService
    film_id: str

    def _start_job(self, op: str, typed) -> str:
        try:
            _submit(self.svc, self.film_id, self.root, op, typed.model_dump() if typed else {})
        except HTTPException as err:
            return f"Not done: {err.detail}"
        self._log("action", op=op, args=typed.model_dump() if typed else {}, queued=True)
        return "Shooting now; ask 'status' any time, or watch the progress."


def _submit(svc: FilmService, film_id: str, root: Path, op: str, args: dict | None = None) -> None:
    """Queue approve, redo or deliver for the film after the checks that can be made now (409 otherwise)."""
    args = args or {}
    try:
        if op == "approve":
            if director.status(root) != "waiting-for-approval":
                raise HTTPException(409, "there is no storyboard waiting for approval")
            director.pending_storyboard(root)  # a bad storyboard is refused now, and the film keeps waiting
            svc.submit(film_id, "approve", {})
        elif op == "deliver":
            if director.status(root) != "done":
                raise HTTPException(409, "there is no film yet to deliver: approve the storyboard first")
            svc.submit(film_id, "deliver", {"platform": args["platform"]})
        else:
            shot, note = args.get("shot", 0), args.get("note", "")
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
        _refresh(svc, film)  # the storyboard may have changed
    return MessageReply(reply=reply, status=svc.store.film(film.id).status)


@router.get("/films/{film_id}/messages", response_model=list[ChatEntry])
def list_messages(film: Film = Depends(owned)) -> list[ChatEntry]:
    """The film's chat so far (chat.jsonl): what the person said and what the director answered."""
    path = _root(film) / "chat.jsonl"
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut off by a kill: the others still read
            if isinstance(entry, dict) and entry.get("role") in ("user", "director") and entry.get("text"):
                out.append(ChatEntry(role=entry["role"], text=str(entry["text"]), time=entry.get("time")))
    return out


@router.post("/films/{film_id}/approve", status_code=202, response_model=FilmCreated)
def approve_film(request: Request, film: Film = Depends(owned)) -> FilmCreated:
    """Shoot the storyboard as it stands (edit it first with PATCH .../shots/{n} or a message)."""
    svc = service(request)
    with _edit_lock(film.id):
        _waiting(film, svc)
        _submit(svc, film.id, _root(film), "approve")
    return FilmCreated(id=film.id, status=svc.store.film(film.id).status)


def cancel_work(svc: FilmService, film: Film, noun: str = "film") -> FilmCreated:
    """Stop the queued or running job of a film or catalogue (`noun` names it in the message): the worker stops
    at the run's next step, and what was made stays."""
    if svc.cancel(film.id) is None:
        raise HTTPException(409, f"the {noun} is {film.status}: it has no work queued or running to cancel")
    return FilmCreated(id=film.id, status=svc.store.film(film.id).status)


def resume_work(svc: FilmService, film: Film, noun: str = "film") -> FilmCreated:
    """Queue a `resume` job for a failed or cancelled film or catalogue: it continues from its folder, and
    nothing recorded there is made again."""
    if film.status not in ("failed", "cancelled"):
        raise HTTPException(409, f"the {noun} is {film.status}: only a failed or cancelled {noun} is resumed")
    try:
        svc.submit(film.id, "resume", {})
    except Busy:
        raise HTTPException(409, f"the {noun} has work queued or running; wait until it is done") from None
    return FilmCreated(id=film.id, status=svc.store.film(film.id).status)


@router.post("/films/{film_id}/cancel", response_model=FilmCreated)
def cancel_film(request: Request, film: Film = Depends(owned)) -> FilmCreated:
    """Stop the film's queued or running job; the film keeps what it made and `resume` continues it."""
    return cancel_work(service(request), film)


@router.post("/films/{film_id}/resume", status_code=202, response_model=FilmCreated)
def resume_film(request: Request, film: Film = Depends(owned)) -> FilmCreated:
    """Continue a film that failed or was cancelled, from its run directory: nothing made is made again."""
    return resume_work(service(request), film)


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
        _refresh(svc, film)
    return ShotChanged(change=change, storyboard=_storyboard(root) or {})


@router.post("/films/{film_id}/shots/{n}/redo", status_code=202, response_model=FilmCreated)
def redo_shot(n: int, body: RedoRequest, request: Request, film: Film = Depends(owned)) -> FilmCreated:
    """Re-shoot shot n of the finished film with a note, then re-cut."""
    svc = service(request)
    with _edit_lock(film.id):
        _submit(svc, film.id, _root(film), "redo", {"shot": n, "note": body.note})
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


@router.get("/films/{film_id}/files/{path:path}")
def get_file(path: str, film: Film = Depends(owned)) -> FileResponse:
    """Download an artefact of this film (a path from its `files`)."""
    try:
        return FileResponse(downloads.safe_path(_root(film), path))
    except downloads.NotInRun:
        raise HTTPException(404, "no such file in this run") from None


@router.get("/films/{film_id}/zip", response_class=StreamingResponse)
def get_zip(film: Film = Depends(owned)) -> StreamingResponse:
    """The film's whole run directory as one zip (every file of its `files`), streamed as it is written."""
    root = _root(film)
    if not root.is_dir():
        raise HTTPException(404, "the film has no run folder yet")
    name = f"film-{film.id}"
    return StreamingResponse(
        downloads.zip_stream(root, name),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


# --- the review queue ------------------------------------------------------------------------------------------


@router.get("/review", response_model=list[ReviewItem])
def review_queue(request: Request, owner: str = Depends(caller)) -> list[ReviewItem]:
    """Everything of this key's runs that a person should look at: kept takes graded B or C, or whose critics
    disagree, across every finished film (agent/review_queue.py)."""
    return review.flagged(service(request).store, owner)


@router.post("/review/{film_id}/shots/{n}", response_model=ReviewItem)
def review_take(n: int, body: ReviewRequest, request: Request, film: Film = Depends(owned)) -> ReviewItem:
    """A person's decision on a flagged take: approve, reject, or redo with a note (queued)."""
    svc = service(request)
    item = next(
        (
            i
            for i in review.flagged(svc.store, film.owner)
            if i.kind == "take" and i.film_id == film.id and i.shot == n
        ),
        None,
    )
    if item is None:
        raise HTTPException(404, f"shot {n} of this film is not in the review queue")
    if body.action == "redo":
        with _edit_lock(film.id):
            _submit(svc, film.id, _root(film), "redo", {"shot": n, "note": body.note})
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
    """The image model the workers serve (published by them when they start), and the director itself."""
    names = service(request).models()
    if not names:
        raise HTTPException(
            503, "no worker has started yet; try again in a moment", headers={"Retry-After": "5"}
        )
    return ModelList(data=[ModelCard(id=m) for m in [*names, "creative-director"]])


IMAGE_TIMEOUT = 600.0


@router.post("/images/generations", response_model=ImagesResponse)
async def generate_images(body: ImageGenerationRequest, request: Request) -> ImagesResponse:
    """OpenAI's images.generate, rendered by the director's image backend and judged by its critique (a job for
    the workers, ahead of the films in the queue: the models are theirs)."""
    svc = service(request)
    if not svc.workers:
        raise HTTPException(503, "this server runs no workers (--workers 0): nothing can render")
    names = await asyncio.to_thread(svc.models)
    if body.model not in (None, "creative-director", *names):
        raise HTTPException(404, f"model {body.model!r} is not served here; GET /v1/models lists the models")
    if body.response_format != "b64_json":
        raise HTTPException(400, "response_format 'url' is not supported here; ask for b64_json")
    width, height = _size(body.size)
    seed = body.seed if body.seed is not None else int(time.time() * 1000) % 2**31
    # A write may wait for a worker's transaction: off the event loop, which other requests are using.
    job = await asyncio.to_thread(
        svc.submit_image, {"prompt": body.prompt, "width": width, "height": height, "seed": seed, "n": body.n}
    )
    end = time.monotonic() + IMAGE_TIMEOUT
    while (job := svc.store.job(job.id)).state in ("queued", "running"):
        if time.monotonic() > end or await request.is_disconnected():
            await asyncio.to_thread(svc.store.finish, job.id, "the caller stopped waiting", state="cancelled")
            raise HTTPException(504, f"the image was not made within {IMAGE_TIMEOUT:.0f} s")
        await asyncio.sleep(0.05)
    if job.state != "done":
        raise HTTPException(502, job.error or "the image job failed")
    data = []
    for image in job.result["images"]:
        path = svc.state_dir / "images" / image.pop("path")
        data.append(
            ImageDatum(
                b64_json=base64.b64encode(path.read_bytes()).decode("ascii"),
                revised_prompt=body.prompt,
                critique=image,
            )
        )
        path.unlink(missing_ok=True)
    return ImagesResponse(created=int(time.time()), data=data)
