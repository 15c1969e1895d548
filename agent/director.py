"""Running a film: open the run directory, run the graph with its SQLite checkpointer, resume, report progress.

`start()` makes a new run directory; `resume()` continues one. Both return a `Film` once the graph is done (or
has stopped for approval). Progress events come from the graph's update stream, not from inside nodes.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from agent import state
from agent.graph import build_graph
from agent.rundir import (
    MARKER,
    RunDir,
    RunDirError,
    StoryboardFileError,
    check_shot_id,
    load_references,
    read_json,
    save_references,
    write_json,
)
from agent.settings import RunSettings
from agent.state import FilmState
from tools import film
from tools.film import Brief, Shot, Storyboard

# The checkpointer restores only the state's own classes: nothing else is ever unpacked from the file.
# Types the checkpointer may rebuild. Runs made before the vocabulary moved to tools/film.py recorded them as
# agent.state.<Name>; agent.state still imports every one of them, so those checkpoints resume.
STATE_TYPES = [("agent.state", name) for name in state.__all__ + film.__all__] + [
    ("tools.film", name) for name in film.__all__
]
STATE_TYPES.append(("tools.repair", "RepairPlan"))  # ShotState.repair_plan


@dataclass
class Film:
    run_dir: Path
    state: FilmState | None
    waiting_for_approval: bool = False


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def prepare_new(out: str | None) -> Path:
    """Choose and check the run directory for a new run; nothing is created yet."""
    path = Path(out) if out else Path("runs") / new_run_id()
    if path.exists():
        if (path / MARKER).exists():
            raise RunDirError(
                f"{path} already holds a run; continue it with --resume {path}, or pick another --out"
            )
        if not path.is_dir():
            raise RunDirError(f"--out {path} exists and is not a folder")
        if any(path.iterdir()):
            raise RunDirError(f"--out {path} is not empty; give a new or empty folder")
    return path


def check_run_dir(path: str | Path, flag: str | None = "--resume") -> Path:
    """A folder that can be continued: it must hold the marker, settings and brief of a run.

    `flag` is how the user named the folder in the message (`--resume DIR`); None for a positional folder.
    """
    p = Path(path)
    named = f"{flag} {p}" if flag else f"run folder {p}"
    if not p.is_dir():
        raise RunDirError(f"{named}: no such folder")
    missing = [n for n in (MARKER, "settings.json", "brief.json") if not (p / n).exists()]
    if missing:
        raise RunDirError(f"{named}: not a run directory (missing {', '.join(missing)})")
    return p


def status(root: Path) -> str:
    """The run's status as its marker says: running, waiting-for-approval, stopped or done."""
    return read_json(root / MARKER).get("status", "running")


def _config(settings: RunSettings, thread: str = "film") -> dict:
    # Each take is 3 steps (render, critique, repair); leave room for the film graph's own steps.
    return {"configurable": {"thread_id": thread}, "recursion_limit": 20 + 4 * settings.max_takes}


def _thread(root: Path) -> str:
    """The run's current graph thread: "film", or "redo-N" after the Nth redo (each redo is its own thread)."""
    return read_json(root / MARKER).get("thread", "film")


@contextmanager
def _checkpointer(root: Path):
    with closing(sqlite3.connect(root / "checkpoints.sqlite", check_same_thread=False)) as conn:
        # WAL with synchronous=NORMAL: a killed process loses nothing committed; commits skip an fsync each.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        yield SqliteSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES))


def _run(graph_input, settings: RunSettings, on_event: Callable[[str, dict], None] | None) -> Film:
    root = settings.path
    with _checkpointer(root) as saver:
        graph = build_graph(saver)
        config = _config(settings, _thread(root))
        for _namespace, update in graph.stream(
            graph_input, config, context=settings, stream_mode="updates", subgraphs=True
        ):
            if on_event:
                for node, value in update.items():
                    on_event(node, value if isinstance(value, dict) else {})
        snapshot = graph.get_state(config)
    waiting = bool(snapshot.interrupts)
    state = FilmState.model_validate(snapshot.values) if snapshot.values else None
    if waiting and state and state.storyboard:
        from agent.report import write_storyboard_sheet

        write_storyboard_sheet(state.storyboard, root)  # a picture of what is to be approved
    _set_status(root, "waiting-for-approval" if waiting else "done")
    return Film(root, state, waiting_for_approval=waiting)


def _set_status(root: Path, status: str) -> None:
    marker = read_json(root / MARKER)
    marker.update(status=status, updated=time.time())
    write_json(root / MARKER, marker)


def start(brief: Brief, settings: RunSettings, on_event=None) -> Film:
    """A new run in settings.run_dir. If planning fails, the folder is removed: nothing pretends to be a result."""
    root = settings.path
    references = load_references(settings.reference)  # before anything is created: a bad file leaves nothing
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / MARKER, {"id": root.name, "status": "running", "created": time.time()})
    write_json(root / "brief.json", brief)
    settings.backends()  # chosen once for the run; the copy below keeps them (private attributes are copied)
    settings = settings.model_copy(update={"reference": save_references(references, root)})
    write_json(root / "settings.json", settings.model_dump(mode="json"))
    try:
        return _run(FilmState(brief=brief), settings, on_event)
    except BaseException:
        has_takes = any(root.glob("shots/*/take-*.png"))
        if has_takes:
            _set_status(root, "stopped")
        elif created:
            shutil.rmtree(root)
        else:
            _remove_contents(root)
        raise


def _remove_contents(root: Path) -> None:
    for child in root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def load_settings(root: Path, **overrides) -> RunSettings:
    """The settings the run started with (secrets come from the environment again), with `run_dir` = root.

    Built through the constructor, not model_validate, so that the key is read from CD_LLM_API_KEY again;
    what was saved wins over the environment, and fields an older run did not save take their defaults.
    """
    saved = read_json(root / "settings.json")
    saved.update(run_dir=str(root), **overrides)
    return RunSettings(**saved)


def resume(
    root: str | Path, on_event=None, approval=None, settings: RunSettings | None = None, **overrides
) -> Film:
    """Continue a run from its last checkpoint; takes and clips already on disk are not made again.

    `approval` answers a run waiting for approval: True, or {"storyboard": {...}} with an edited storyboard
    (check it first with `pending_storyboard`). `settings`: the run's own, already loaded (with its backends).
    """
    root = check_run_dir(root)
    settings = settings or load_settings(root, **overrides)
    brief = Brief.model_validate(read_json(root / "brief.json"))
    with _checkpointer(root) as saver:
        snapshot = build_graph(saver).get_state(_config(settings, _thread(root)))
    if approval is not None:
        graph_input = Command(resume=approval)
    elif snapshot.values and (snapshot.next or snapshot.tasks):
        # Continue where it stopped. `tasks` without `next`: killed after a step's tasks had saved their writes
        # but before the next checkpoint; LangGraph applies those writes and goes on.
        graph_input = None
    elif snapshot.values:
        _set_status(root, "done")
        return Film(root, FilmState.model_validate(snapshot.values))  # already finished
    else:
        graph_input = FilmState(brief=brief)  # killed before the first checkpoint
    _set_status(root, "running")
    return _run(graph_input, settings, on_event)


def pending_storyboard(root: Path) -> dict:
    """The storyboard.json a person may have edited, parsed and validated, or StoryboardFileError saying where.

    Checked before the graph is resumed with it: a bad file is refused and the run keeps waiting for approval.
    """
    from pydantic import ValidationError

    path = root / "storyboard.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoryboardFileError(f"{path}: missing; run the planning again with --resume {root}") from None
    except UnicodeDecodeError as err:
        raise StoryboardFileError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except json.JSONDecodeError as err:
        raise StoryboardFileError(
            f"{path} line {err.lineno} column {err.colno}: {err.msg}; fix the JSON and approve again"
        ) from None
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise StoryboardFileError(
            f"{path}: {where}: {first['msg']} (got {first.get('input')!r}){more}; fix it and approve again"
        ) from None
    ids = [s.id for s in board.shots]
    for i, shot_id in enumerate(ids):
        try:
            check_shot_id(shot_id)
        except ValueError as err:
            raise StoryboardFileError(f"{path}: shots.{i}.id: {err}; keep the ids the planner gave") from None
    if len(set(ids)) != len(ids) or not ids:
        raise StoryboardFileError(
            f"{path}: shots: the shot ids must be unique and there must be at least one"
        )
    return board.model_dump(mode="json")


MAX_NOTE = 1000


@dataclass
class RedoTarget:
    """A checked redo: the run, its marker, the film so far, the shot to re-shoot and the note."""

    root: Path
    marker: dict
    film: FilmState
    shot: Shot
    note: str


def check_redo(root: str | Path, shot_number: int, note: str = "") -> RedoTarget:
    """Everything `redo` checks before any work (no backend is chosen, no model loaded): raises RunDirError."""
    root = check_run_dir(root, flag=None)
    marker = read_json(root / MARKER)
    status = marker.get("status")
    if status == "waiting-for-approval":
        raise RunDirError(
            f"{root} is waiting for its storyboard to be approved: python main.py approve {root}"
        )
    if status != "done":
        raise RunDirError(
            f"{root} has not finished ({status}); continue it first: python main.py run --resume {root}"
        )
    note = " ".join((note or "").split())
    if len(note) > MAX_NOTE:
        raise RunDirError(f"--note is {len(note)} characters; at most {MAX_NOTE}")
    with _checkpointer(root) as saver:
        snapshot = build_graph(saver).get_state({"configurable": {"thread_id": _thread(root)}})
    state = FilmState.model_validate(snapshot.values)
    shots = state.storyboard.shots
    if not 1 <= shot_number <= len(shots):
        raise RunDirError(f"--shot {shot_number}: this run has shots 1 to {len(shots)}")
    return RedoTarget(root, marker, state, shots[shot_number - 1], note)


def redo(
    root: str | Path, shot_number: int, note: str = "", on_event=None, settings: RunSettings | None = None
) -> Film:
    """Re-shoot one shot of a finished run, with an optional director's note, then re-cut.

    The shot's new takes are numbered after its old ones (which stay on disk and in the manifest); the other
    shots are reused as they are. Each redo runs as its own graph thread ("redo-N") in checkpoints.sqlite, so a
    killed redo continues with --resume like any run.
    """
    target = check_redo(root, shot_number, note)
    root, marker, film, shot, note = target.root, target.marker, target.film, target.shot, target.note
    settings = settings or load_settings(root)
    shots = film.storyboard.shots
    how = None
    if note:
        from tools.critique import CritiqueConfig
        from tools.repair import apply_note

        try:
            prompt, how = apply_note(shot, note, settings.config(CritiqueConfig))
        except ValueError as err:
            raise RunDirError(str(err)) from None
        shot = shot.model_copy(update={"prompt": prompt, "description": f"{shot.description} ({note})"})
    storyboard = film.storyboard.model_copy(update={"shots": [shot if s.id == shot.id else s for s in shots]})
    write_json(root / "storyboard.json", storyboard)
    first = 1 + max((t.n for t in RunDir(root).takes() if t.shot_id == shot.id), default=0)
    redos = marker.get("redos", [])
    thread = f"redo-{len(redos) + 1}"
    redos.append(
        {
            "shot": shot.id,
            "note": note,
            "applied": how,
            "thread": thread,
            "first_take": first,
            "time": time.time(),
        }
    )
    marker.update(redos=redos, thread=thread, status="running", updated=time.time())
    write_json(root / MARKER, marker)
    graph_input = FilmState(
        brief=film.brief,
        storyboard=storyboard,
        approved=True,
        redo={shot.id: first},
        results=[r for r in film.results if r.shot_id != shot.id],
    )
    return _run(graph_input, settings, on_event)


def deliver(root: str | Path, platform: str, on_event=None) -> film.Cut:
    """A cut of the finished film for a platform it was not made for: every kept take framed for that aspect
    (resized, or outpainted and critiqued: agent/delivery.make_variant), animated with the shot's own motion and
    seed, then cut into final-<platform>.mp4 + .srt and listed in manifest.json `cuts`. Clips and variants
    already recorded are reused, so a killed delivery made again makes only what is missing."""
    from agent.delivery import file_label, platform_clip
    from agent.report import write_report
    from agent.settings import resolve_size
    from tools.cut import CutConfig, cut_film

    root = check_run_dir(root, flag=None)
    if status(root) != "done":
        raise RunDirError(f"{root} has no finished film to deliver ({status(root)})")
    settings = load_settings(root)
    label, width, height = resolve_size(platform, None)
    with _checkpointer(root) as saver:
        snapshot = build_graph(saver).get_state({"configurable": {"thread_id": _thread(root)}})
    state = FilmState.model_validate(snapshot.values)
    run = RunDir(root)
    by_id = {r.shot_id: r for r in state.results}
    shots = [s for s in state.storyboard.shots if by_id.get(s.id) and by_id[s.id].clip]
    if not shots:
        raise RunDirError(f"{root}: no shot has a clip to deliver")
    clips = []
    for shot in shots:
        clips.append(platform_clip(shot, by_id[shot.id], label, settings, run))
        if on_event:
            on_event("deliver", {"shot_id": shot.id, "platform": label, "clip": clips[-1]})
    config = settings.config(CutConfig).model_copy(
        update={"width": width, "height": height, "platform": label}
    )
    cut = cut_film(shots, clips, root, config, name=f"final-{file_label(label)}")
    manifest = read_json(root / "manifest.json") if (root / "manifest.json").exists() else {}
    cuts = [c for c in manifest.get("cuts", []) if c.get("path") != cut.path]
    run.write_manifest({"cuts": [*cuts, cut.model_dump(mode="json")]})
    write_report(state, run, settings)  # the report lists every cut in the manifest
    if on_event:
        on_event("cut", {"cut": cut})
    return cut
