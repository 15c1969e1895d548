"""Directing a run: open the run directory, start it, resume it, shoot again what failed, redo a shot, deliver.

`start()` makes a new run directory; `resume()` continues one. Both return a `Film` once the graph is done (or
has stopped for approval). The graph itself runs in agent/run_graph.py, with its SQLite checkpointer; progress
events come from the graph's update stream, not from inside nodes.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from langgraph.types import Command

from agent.graph import build_graph
from agent.run_graph import STATE_TYPES, Film, checkpointer, thread
from agent.run_graph import run_graph as _run
from agent.run_status import RunFailed, failed_variants, missing_shots, read_marker, set_status, status
from agent.rundir import (
    MARKER,
    RecordError,
    RunDir,
    RunDirError,
    StoryboardFileError,
    check_shot_id,
    clean_temp_files,
    load_references,
    only_startup_files,
    read_json,
    save_references,
    write_json,
)
from agent.runlock import LOCK_FILE, run_lock
from agent.settings import RunSettings, SettingsError
from agent.state import FilmState
from tools import film
from tools.film import Brief, Shot, Storyboard
from tools.plan import BriefError, PlanError

# A new run starts loading its image model (a diffusers backend) on a thread before it plans. In a fresh process
# the library imports and the load start before the planning and the graph, and the first render call takes one
# image, not a batch of four (ModelManager.preload): on one H200 the first image came 3-7 s earlier (ninth
# session, docs/PERFORMANCE.md). Benchmarks set it to False to measure without it.
PRELOAD = True

__all__ = [
    "STATE_TYPES",
    "Film",
    "RedoTarget",
    "RunFailed",
    "check_redo",
    "check_run_dir",
    "check_settings",
    "load_settings",
    "new_run_id",
    "pending_storyboard",
    "prepare_new",
    "redo",
    "resume",
    "start",
    "status",
]

# Errors that are the input's fault (exit 2): the one line names what to fix, not the run folder.
INPUT_ERRORS = (RunDirError, SettingsError, BriefError, PlanError)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def prepare_new(out: str | None) -> Path:
    """Choose and check the run directory for a new run; nothing is created yet.

    A folder that holds only what a start-up killed before its marker wrote (settings, brief, references) is
    taken as empty: that run never began.
    """
    path = Path(out) if out else Path("runs") / new_run_id()
    if path.exists():
        if (path / MARKER).exists():
            raise RunDirError(
                f"{path} already holds a run; continue it with --resume {path}, or pick another --out"
            )
        if not path.is_dir():
            raise RunDirError(f"--out {path} exists and is not a folder")
        if not only_startup_files(path):
            raise RunDirError(f"--out {path} is not empty; give a new or empty folder")
    return path


def check_run_dir(path: str | Path, flag: str | None = "--resume") -> Path:
    """A folder that can be continued: it must hold the settings and brief of a run (and, once start-up has
    finished, its marker; a start-up killed before the marker is continued too).

    `flag` is how the user named the folder in the message (`--resume DIR`); None for a positional folder.
    """
    p = Path(path)
    named = f"{flag} {p}" if flag else f"run folder {p}"
    if not p.is_dir():
        raise RunDirError(f"{named}: no such folder")
    missing = [n for n in (MARKER, "settings.json", "brief.json") if not (p / n).exists()]
    if missing == [MARKER] and only_startup_files(p):
        return p  # start-up was killed after the brief and settings were saved: resume writes the marker
    if missing and (p / "settings.json").exists() and only_startup_files(p):
        raise RunDirError(
            f"{named}: its start-up was stopped before the run began; start it again with --out {p}"
        )
    if missing:
        raise RunDirError(f"{named}: not a run directory (missing {', '.join(missing)})")
    return p


def _snapshot(root: Path):
    """The graph's state on the run's current thread: its values, the nodes next and any interrupt."""
    with checkpointer(root) as saver:
        return build_graph(saver).get_state({"configurable": {"thread_id": thread(root)}})


def _has_work(root: Path) -> bool:
    """A storyboard, a take, a clip or a record exists: the folder is a run's memory and is never deleted."""
    return (
        (root / "storyboard.json").exists()
        or any(root.glob("shots/*/*"))
        or any(root.glob("clips/*"))
        or (root / "manifest.json").exists()
    )


def start(brief: Brief, settings: RunSettings, on_event=None, allow_missing: bool = False) -> Film:
    """A new run in settings.run_dir.

    The folder stays once start-up has written it, whatever happens after (the error's line and the status say
    why, and `--resume` continues), with one exception: the input's own fault (a brief the planner refuses, a
    planner endpoint that is not there: exit 2) before a storyboard exists. That line names no folder, so the
    folder is removed, as start-up made it, and the same `--out` works again once the input is fixed."""
    root = settings.path
    check_settings(settings)
    references = load_references(settings.reference)  # before anything is created: a bad file leaves nothing
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create the run folder {root}: {err.strerror}") from None
    with run_lock(root):
        try:
            _remove_contents(root, keep={LOCK_FILE})  # at most what a killed start-up left
            backends = settings.backends()  # chosen once for the run; the copy below keeps them
            if PRELOAD and hasattr(backends.image, "preload"):
                backends.image.preload()  # a new run renders first: its image model loads while it plans
            settings = settings.model_copy(update={"reference": save_references(references, root)})
            write_json(root / "brief.json", brief)
            write_json(root / "settings.json", settings.model_dump(mode="json"))
            # The marker last: a folder with it has everything a resume needs.
            write_json(root / MARKER, {"id": root.name, "status": "running", "created": time.time()})
        except OSError as err:
            _discard(root, created)
            raise RunDirError(f"cannot write in the run folder {root}: {err.strerror}") from None
        except INPUT_ERRORS:  # the backends refused the settings: nothing was written
            _discard(root, created)
            raise
        try:
            return _run(FilmState(brief=brief), settings, on_event, allow_missing)
        except INPUT_ERRORS:
            if not _has_work(root):
                _discard(root, created)
            raise


def _discard(root: Path, created: bool) -> None:
    if created:
        shutil.rmtree(root, ignore_errors=True)
    else:
        with suppress(OSError):
            _remove_contents(root)


def _remove_contents(root: Path, keep: set[str] = frozenset()) -> None:
    for child in root.iterdir():
        if child.name in keep:
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def check_settings(settings: RunSettings) -> None:
    """Everything about the settings that can be checked before any work; raises SettingsError."""
    from tools.critique import CritiqueConfig, thresholds_for

    try:
        thresholds_for(settings.config(CritiqueConfig))
    except ValueError as err:
        raise SettingsError(f"--threshold: {err}") from None


def load_settings(root: Path, **overrides) -> RunSettings:
    """The settings the run started with (secrets come from the environment again), with `run_dir` = root.

    Built through the constructor, not model_validate, so that the key is read from CD_LLM_API_KEY again;
    what was saved wins over the environment, and fields an older run did not save take their defaults.
    `overrides` (flags given again on a resume) win over what was saved; SettingsError names a bad one.
    """
    from pydantic import ValidationError

    path = root / "settings.json"
    try:
        saved = read_json(path)
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: a damaged record ({err}); restore it or start the film again") from None
    try:
        RunSettings(**{**saved, "run_dir": str(root)})
    except ValidationError as err:
        first = err.errors()[0]
        raise RecordError(
            f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}; fix it and --resume again"
        ) from None
    saved.update(run_dir=str(root), **overrides)
    try:
        return RunSettings(**saved)
    except ValidationError as err:
        first = err.errors()[0]
        name = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "a setting"
        raise SettingsError(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None


def resume(
    root: str | Path,
    on_event=None,
    approval=None,
    settings: RunSettings | None = None,
    allow_missing: bool = False,
    wait: bool = False,
    **overrides,
) -> Film:
    """Continue a run from its last checkpoint; takes and clips already on disk are not made again.

    `approval` answers a run waiting for approval: True, or {"storyboard": {...}} with an edited storyboard
    (check it first with `pending_storyboard`). `settings`: the run's own, already loaded (with its backends);
    `overrides`: settings given again (saved into settings.json for the resumes after this one).
    A run that failed or lacks shots, or whose storyboard.json was edited, is shot again on a new thread: the
    shots that have a clip (and did not change) are kept, the others get new takes numbered after their old ones.
    """
    with run_lock(Path(root), wait=wait):
        root = check_run_dir(root)
        clean_temp_files(root)
        settings = settings or load_settings(root, **overrides)
        check_settings(settings)
        if overrides:
            write_json(root / "settings.json", settings.model_dump(mode="json"))
        brief = _brief(root)
        RunDir(root).check_records()
        if not (root / MARKER).exists():  # start-up was killed before its marker
            write_json(root / MARKER, {"id": root.name, "status": "stopped", "created": time.time()})
        snapshot = _snapshot(root)
        # Killed right after the graph's first checkpoint: it holds only the reducers' defaults ({"results": []}),
        # no brief yet. That is a run with no state: it starts from its input again.
        values = snapshot.values
        state = FilmState.model_validate(values) if values and "brief" in values else None
        board = _edited_storyboard(root, state)
        pending = set(snapshot.next)
        if approval is not None:
            graph_input = Command(resume=approval)
        elif state and state.approved and (board or _needs_retry(state, pending, allow_missing)):
            graph_input = _retry(root, state, board or state.storyboard)
        elif state and (snapshot.next or snapshot.tasks):
            # Continue where it stopped. `tasks` without `next`: killed after a step's tasks had saved their writes
            # but before the next checkpoint; LangGraph applies those writes and goes on.
            graph_input = None
        elif state:
            missing = missing_shots(state)
            set_status(root, "done", missing=missing)
            return Film(root, state, missing=missing)  # already finished
        else:
            graph_input = _first_input(root, brief, settings)  # killed before the first checkpoint
        set_status(root, "running")
        return _run(graph_input, settings, on_event, allow_missing)


def _brief(root: Path) -> Brief:
    from pydantic import ValidationError

    path = root / "brief.json"
    try:
        return Brief.model_validate(read_json(path))
    except (OSError, ValueError, ValidationError) as err:
        why = str(err).splitlines()[0][:160]
        raise RecordError(f"{path}: a damaged record ({why}); restore it or start the film again") from None


def _first_input(root: Path, brief: Brief, settings: RunSettings) -> FilmState:
    """No checkpoint: plan again, unless storyboard.json is there (checkpoints lost): then shoot it, reusing
    every take already recorded (approved only if the run does not ask for approval)."""
    if not (root / "storyboard.json").exists():
        return FilmState(brief=brief)
    board = Storyboard.model_validate(pending_storyboard(root))
    takes = RunDir(root).takes()
    failed = {  # shots whose every recorded take failed are shot again, after those takes
        s.id: 1 + max(t.n for t in mine)
        for s in board.shots
        if (mine := [t for t in takes if t.shot_id == s.id]) and all(t.error for t in mine)
    }
    return FilmState(brief=brief, storyboard=board, approved=not settings.approve, redo=failed)


def _edited_storyboard(root: Path, state: FilmState | None) -> Storyboard | None:
    """storyboard.json when a person changed it after it was approved (validated: a bad edit is refused)."""
    if state is None or state.storyboard is None or not (root / "storyboard.json").exists():
        return None
    board = Storyboard.model_validate(pending_storyboard(root))
    if not state.approved or board.model_dump() == state.storyboard.model_dump():
        return None
    return board


def _needs_retry(state: FilmState, pending: set[str], allow_missing: bool) -> bool:
    """Every shot has run (only the cut, or nothing, is left) and some have no clip, or a --variants still that
    raised: make those again. A film already cut whose missing shots were allowed is finished."""
    if pending - {"cut", "report"}:
        return False
    missing = missing_shots(state)
    return (bool(missing) and not (allow_missing and state.cut is not None)) or bool(failed_variants(state))


def _retry(root: Path, state: FilmState, board: Storyboard) -> FilmState:
    """A new thread that shoots again every shot without a clip or changed since: the others are kept. A shot
    that failed after its take was kept (its clip or a variant raised) goes on from that step with its takes."""
    from agent.nodes import resumes_at

    before = {s.id: s for s in state.storyboard.shots}
    unchanged = [
        r
        for r in state.results
        if before.get(r.shot_id) == next((s for s in board.shots if s.id == r.shot_id), None)
    ]
    unfinished = {r.shot_id: r for r in unchanged if resumes_at(r)}
    kept = [r for r in unchanged if r.clip is not None and r.shot_id not in unfinished]
    kept_ids = {r.shot_id for r in kept} | set(unfinished)
    takes = RunDir(root).takes()
    again = {
        s.id: 1 + max((t.n for t in takes if t.shot_id == s.id), default=0)
        for s in board.shots
        if s.id not in kept_ids
    }
    marker = read_marker(root)
    retries = marker.get("retries", [])
    thread = f"retry-{len(retries) + 1}"
    # What failed, kept here: a shot's error.log is removed once the shot is made.
    failed = {r.shot_id: r.error for r in state.results if r.error}
    retries.append(
        {"thread": thread, "shots": sorted([*again, *unfinished]), "failed": failed, "time": time.time()}
    )
    marker.update(retries=retries, thread=thread)
    write_json(root / MARKER, marker)
    write_json(root / "storyboard.json", board)
    return FilmState(
        brief=state.brief, storyboard=board, approved=True, redo=again, results=kept, unfinished=unfinished
    )


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
    marker = read_marker(root)
    status = marker.get("status")
    if status == "waiting-for-approval":
        raise RunDirError(
            f"{root} is waiting for its storyboard to be approved: python main.py approve {root}"
        )
    if status not in ("done", "incomplete"):
        raise RunDirError(
            f"{root} has not finished ({status}); continue it first: python main.py run --resume {root}"
        )
    note = " ".join((note or "").split())
    if len(note) > MAX_NOTE:
        raise RunDirError(f"--note is {len(note)} characters; at most {MAX_NOTE}")
    state = FilmState.model_validate(_snapshot(root).values)
    shots = state.storyboard.shots
    if not 1 <= shot_number <= len(shots):
        raise RunDirError(f"--shot {shot_number}: this run has shots 1 to {len(shots)}")
    return RedoTarget(root, marker, state, shots[shot_number - 1], note)


def redo(
    root: str | Path,
    shot_number: int,
    note: str = "",
    on_event=None,
    settings: RunSettings | None = None,
    allow_missing: bool = False,
    wait: bool = False,
) -> Film:
    """Re-shoot one shot of a finished run, with an optional director's note, then re-cut.

    The shot's new takes are numbered after its old ones (which stay on disk and in the manifest); the other
    shots are reused as they are. Each redo runs as its own graph thread ("redo-N") in checkpoints.sqlite, so a
    killed redo continues with --resume like any run.
    """
    with run_lock(Path(root), wait=wait):
        clean_temp_files(Path(root))
        return _redo(root, shot_number, note, on_event, settings, allow_missing)


def _redo(root, shot_number, note, on_event, settings, allow_missing) -> Film:
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
    return _run(graph_input, settings, on_event, allow_missing)


def deliver(root: str | Path, platform: str, on_event=None, settings: RunSettings | None = None) -> film.Cut:
    """A cut of the finished film for a platform it was not made for: every kept take framed for that aspect
    (resized, or outpainted and critiqued: agent/delivery.make_variant), animated with the shot's own motion and
    seed, then cut into final-<platform>.mp4 + .srt and listed in manifest.json `cuts`. Clips and variants
    already recorded are reused, so a killed delivery made again makes only what is missing. `settings`: the
    run's own (load_settings) with warm backends attached, as a server's worker passes them."""
    root = check_run_dir(root, flag=None)
    with run_lock(root):
        return _deliver(root, platform, on_event, settings)


def _deliver(root: Path, platform: str, on_event, settings: RunSettings | None) -> film.Cut:
    from agent.delivery import file_label, platform_clip
    from agent.report import write_report
    from agent.settings import resolve_size
    from tools.cut import CutConfig, cut_film

    if status(root) != "done":
        raise RunDirError(f"{root} has no finished film to deliver ({status(root)})")
    settings = settings or load_settings(root)
    label, width, height = resolve_size(platform, None)
    state = FilmState.model_validate(_snapshot(root).values)
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
