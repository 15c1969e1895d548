"""The director's operations on a run directory: what every surface (chat, CLI, web studio, REST API) calls.

Each operation takes the run directory and typed pydantic arguments and returns a `Change`: which operation ran,
the shots it touched and a before/after line per shot. A storyboard change writes `storyboards/v<N>.json` and the
current `storyboard.json` (atomically); `storyboards/history.json` links each version to the one it came from and
keeps the film settings it was made for, so `undo` restores both. Nothing is shot until `approve`. A film that is
shooting, or already shot, refuses storyboard changes with a message that says what can be done instead.

Bad requests (shot 99, a missing image, a film that is shooting) raise `OperationError` with one line a person
can read; the caller shows it and carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from agent import director
from agent.film_changes import film_updates, retime
from agent.operation_args import (
    AddShot,
    Change,
    DeliverArgs,
    MoveShot,
    OperationError,
    PlanArgs,
    RedoArgs,
    ReviseShot,
    SetFilm,
    SetLine,
    ShotRef,
    SwapShots,
)
from agent.revoice import set_voiceover  # noqa: F401 (an operation: chat and the LLM agent call it by name)
from agent.rundir import MARKER, RunDir, RunDirError, read_json, write_json
from agent.settings import RunSettings, SettingsError, resolve_size
from agent.shot_edit import (
    FILM_FIELDS,
    look_for,
    new_shot,
    renumber,
    rewrite_prompt,
    shot_line,
)
from tools.film import Brief, Shot, Storyboard

MAX_SHOTS = 60

Event = Callable[[str, dict], None]


# --- the run directory's storyboard and settings -----------------------------------------------------------


def _status(root: Path) -> str:
    return read_json(root / MARKER).get("status", "unknown")


def _require_editable(root: Path) -> None:
    status = _status(root)
    if status == "running":
        raise OperationError(
            "the film is shooting; the storyboard can change again once it is done (ask 'status')"
        )
    if status == "done":
        raise OperationError(
            "the film is already shot; to change a shot, redo it with a note (e.g. 'redo shot 2 with more rain')"
        )
    if status != "waiting-for-approval":
        raise OperationError(f"the run is {status}; continue it first: python main.py chat --resume {root}")


def load_storyboard(root: Path) -> Storyboard:
    try:
        return Storyboard.model_validate(read_json(root / "storyboard.json"))
    except (OSError, ValueError) as err:
        raise OperationError(f"{root / 'storyboard.json'} cannot be read: {err}") from None


def _history(root: Path) -> list[dict]:
    path = root / "storyboards" / "history.json"
    return read_json(path) if path.exists() else []


def _film_settings(settings: RunSettings) -> dict:
    return {k: v for k, v in settings.model_dump(mode="json").items() if k in FILM_FIELDS}


def _save_settings(root: Path, settings: RunSettings) -> None:
    write_json(root / "settings.json", settings.model_dump(mode="json"))


_PREVIOUS = -1  # _commit's default parent: the version current before this one


def _commit(
    root: Path,
    storyboard: Storyboard,
    op: str,
    settings: RunSettings,
    parent: int | None = _PREVIOUS,
    made_by: str | None = None,
) -> int:
    """Write a new storyboard version and make it current; returns its number.

    `made_by` is the operation whose result the version holds (for an undo: the one it restores)."""
    history = _history(root)
    version = 1 + max((h["version"] for h in history), default=0)
    if parent == _PREVIOUS:
        parent = history[-1]["version"] if history else None
    write_json(root / "storyboards" / f"v{version}.json", storyboard)
    history.append(
        {
            "version": version,
            "parent": parent,
            "op": op,
            "made_by": made_by or op,
            "time": time.time(),
            "film": _film_settings(settings),
        }
    )
    write_json(root / "storyboards" / "history.json", history)
    write_json(root / "storyboard.json", storyboard)
    return version


def _shot_index(storyboard: Storyboard, n: int) -> int:
    count = len(storyboard.shots)
    if not 1 <= n <= count:
        raise OperationError(f"there is no shot {n}: this storyboard has shots 1 to {count}")
    return n - 1


def _product(root: Path) -> str | None:
    from tools.brief import find_product, is_product_brief

    text = Brief.model_validate(read_json(root / "brief.json")).text
    return find_product(text, is_product_brief(text))


def _changed(op: str, before: list[Shot], after: list[Shot], version: int, message: str) -> Change:
    return Change(
        op=op,
        message=message,
        shots=[s.id for s in after],
        before=[shot_line(s) for s in before],
        after=[shot_line(s) for s in after],
        version=version,
        paths={"storyboard": "storyboard.json"},
    )


# --- plan ----------------------------------------------------------------------------------------------------


def plan(root: Path, args: PlanArgs, settings: RunSettings, on_event: Event | None = None) -> Change:
    """Brief → storyboard (version 1); the run then waits for approval. `root` must be new or empty."""
    from tools.plan import read_brief

    brief = read_brief(args.brief, args.source)
    settings = settings.model_copy(update={"run_dir": str(root), "approve": True})
    film = director.start(brief, settings, on_event=on_event)
    storyboard = load_storyboard(film.run_dir)
    version = _commit(root, storyboard, "plan", director.load_settings(root))
    return Change(
        op="plan",
        message=f"{len(storyboard.shots)} shots, {storyboard.duration:.1f} s, "
        f"{storyboard.width}×{storyboard.height}: waiting for your approval",
        shots=[s.id for s in storyboard.shots],
        after=[shot_line(s) for s in storyboard.shots],
        version=version,
        paths={"storyboard": "storyboard.json"},
    )


# --- shots ---------------------------------------------------------------------------------------------------


def revise_shot(root: Path, args: ReviseShot) -> Change:
    """Change fields of shots; a changed description, camera, lighting, mood or kind re-writes the prompt."""
    _require_editable(root)
    storyboard = load_storyboard(root)
    settings = director.load_settings(root)
    product = _product(root)
    shots = list(storyboard.shots)
    indexes = sorted({_shot_index(storyboard, n) for n in args.shots})
    before, after = [], []
    for i in indexes:
        old = shots[i]
        update = {k: v for k, v in args.model_dump(exclude={"shots", "look"}, exclude_none=True).items()}
        if args.look:
            lighting, mood = look_for(args.look)
            update.setdefault("lighting", lighting)
            if mood:
                update.setdefault("mood", mood)
        shot = rewrite_prompt(old, update, storyboard, product)
        if shot == old:
            continue
        shots[i] = shot
        before.append(old)
        after.append(shot)
    if not after:
        return Change(op="revise_shot", message="nothing changed: the shot already reads that way")
    storyboard = storyboard.model_copy(update={"shots": shots})
    version = _commit(root, storyboard, "revise_shot", settings)
    return _changed("revise_shot", before, after, version, f"changed {', '.join(s.id for s in after)}")


def _reorder(root: Path, op: str, storyboard: Storyboard, shots: list[Shot], moved: list[str], message: str):
    """Commit a storyboard whose shots were added, removed or reordered: ids renumbered s01, s02, ..."""
    settings = director.load_settings(root)
    before = {s.id: s for s in storyboard.shots}
    renumbered, was = renumber(shots)
    storyboard = storyboard.model_copy(update={"shots": renumbered})
    version = _commit(root, storyboard, op, settings)
    after = [s for s in renumbered if was.get(s.id) in moved]
    return Change(
        op=op,
        message=message,
        shots=[s.id for s in after],
        before=[shot_line(before[was[s.id]]) for s in after if was[s.id] in before],
        after=[shot_line(s) for s in after],
        version=version,
        paths={"storyboard": "storyboard.json"},
    )


def add_shot(root: Path, args: AddShot) -> Change:
    """A new shot written by the offline planner's rules from its description, at the place asked."""
    _require_editable(root)
    storyboard = load_storyboard(root)
    shots = list(storyboard.shots)
    if len(shots) >= MAX_SHOTS:
        raise OperationError(f"the storyboard already has {MAX_SHOTS} shots, the most a film can have")
    if args.before is not None:
        at = _shot_index(storyboard, args.before)
    elif args.after is not None:
        at = 0 if args.after == 0 else _shot_index(storyboard, args.after) + 1
    else:
        at = len(shots)
    shot = new_shot(args.description, args.kind, args.duration, storyboard, _product(root), at)
    shots.insert(at, shot)
    where = "at the start" if at == 0 else "at the end" if at == len(shots) - 1 else f"as shot {at + 1}"
    change = _reorder(root, "add_shot", storyboard, shots, [shot.id], f"added a shot {where}")
    change.before = []
    return change


def remove_shot(root: Path, args: ShotRef) -> Change:
    _require_editable(root)
    storyboard = load_storyboard(root)
    i = _shot_index(storyboard, args.shot)
    if len(storyboard.shots) == 1:
        raise OperationError("a film needs at least one shot; change this one instead of removing it")
    shots = list(storyboard.shots)
    gone = shots.pop(i)
    change = _reorder(root, "remove_shot", storyboard, shots, [], f"removed shot {args.shot}")
    change.before = [shot_line(gone)]
    return change


def move_shot(root: Path, args: MoveShot) -> Change:
    _require_editable(root)
    storyboard = load_storyboard(root)
    i = _shot_index(storyboard, args.shot)
    to = _shot_index(storyboard, args.to)
    if i == to:
        return Change(op="move_shot", message=f"shot {args.shot} is already there")
    shots = list(storyboard.shots)
    shot = shots.pop(i)
    shots.insert(to, shot)
    return _reorder(root, "move_shot", storyboard, shots, [shot.id], f"moved shot {args.shot} to {args.to}")


def swap_shots(root: Path, args: SwapShots) -> Change:
    _require_editable(root)
    storyboard = load_storyboard(root)
    i, j = _shot_index(storyboard, args.a), _shot_index(storyboard, args.b)
    if i == j:
        return Change(op="swap_shots", message="that is the same shot twice: nothing to swap")
    shots = list(storyboard.shots)
    shots[i], shots[j] = shots[j], shots[i]
    return _reorder(
        root,
        "swap_shots",
        storyboard,
        shots,
        [shots[i].id, shots[j].id],
        f"swapped shots {args.a} and {args.b}",
    )


def set_line(root: Path, args: SetLine) -> Change:
    """A shot's subtitle; or the slogan: the last shot's subtitle and its on-image text."""
    _require_editable(root)
    storyboard = load_storyboard(root)
    text = " ".join(args.text.split())
    if args.shot is None:
        i = len(storyboard.shots) - 1
        update = {"subtitle": text, "expect_text": text or None}
        what = f"slogan set on the last shot: {text!r}"
    else:
        i = _shot_index(storyboard, args.shot)
        update = {"subtitle": text}
        what = f"shot {args.shot}'s line: {text!r}" if text else f"shot {args.shot} has no line now"
    old = storyboard.shots[i]
    shot = rewrite_prompt(old, update, storyboard, _product(root))
    shots = [shot if k == i else s for k, s in enumerate(storyboard.shots)]
    storyboard = storyboard.model_copy(update={"shots": shots})
    version = _commit(root, storyboard, "set_line", director.load_settings(root))
    return _changed("set_line", [old], [shot], version, what)


# --- the whole film ------------------------------------------------------------------------------------------


def set_film(root: Path, args: SetFilm) -> Change:
    """Length, platform(s), style words, language or a reference image for the whole film."""
    _require_editable(root)
    storyboard = load_storyboard(root)
    settings = director.load_settings(root)
    update, board, notes = film_updates(root, args, storyboard, settings)
    settings = settings.model_copy(update=update)
    storyboard = storyboard.model_copy(update=board)
    shots = list(storyboard.shots)
    if args.duration:
        storyboard, shots = retime(root, args.duration, storyboard, settings, board, notes)
    product = _product(root)
    shots = [rewrite_prompt(s, {}, storyboard, product, force=True) for s in shots]
    before = storyboard.shots if args.duration is None else load_storyboard(root).shots
    storyboard = storyboard.model_copy(update={"shots": shots})
    _save_settings(root, settings)
    version = _commit(root, storyboard, "set_film", settings)
    return Change(
        op="set_film",
        message="; ".join(notes) or "nothing to change",
        shots=[s.id for s in shots],
        before=[shot_line(s) for s in before],
        after=[shot_line(s) for s in shots],
        version=version,
        paths={"storyboard": "storyboard.json"},
    )


def undo(root: Path) -> Change:
    """Bring back the version the current one was made from, and the film settings it had."""
    _require_editable(root)
    history = _history(root)
    if not history or history[-1]["parent"] is None:
        raise OperationError("nothing to undo: this is the storyboard as first planned")
    current = history[-1]
    parent = next(h for h in history if h["version"] == current["parent"])
    before = load_storyboard(root)
    storyboard = Storyboard.model_validate(read_json(root / "storyboards" / f"v{parent['version']}.json"))
    settings = director.load_settings(root).model_copy(update=parent["film"])
    _save_settings(root, settings)
    # The restored version's own parent: a second undo goes one step further back.
    undone = current.get("made_by", current["op"])
    version = _commit(
        root, storyboard, "undo", settings, parent=parent["parent"], made_by=parent.get("made_by")
    )
    return Change(
        op="undo",
        message=f"undid {undone} (back to version {parent['version']})",
        shots=[s.id for s in storyboard.shots],
        before=[shot_line(s) for s in before.shots],
        after=[shot_line(s) for s in storyboard.shots],
        version=version,
        paths={"storyboard": "storyboard.json"},
    )


def show(root: Path) -> Change:
    """The storyboard as it stands: one line per shot, and the sheet (storyboard.png) drawn again."""
    from agent.report import write_storyboard_sheet

    storyboard = load_storyboard(root)
    sheet = write_storyboard_sheet(storyboard, root)
    return Change(
        op="show",
        message=f"{storyboard.title}: {len(storyboard.shots)} shots, {storyboard.duration:.1f} s, "
        f"{storyboard.width}×{storyboard.height}",
        shots=[s.id for s in storyboard.shots],
        after=[shot_line(s) for s in storyboard.shots],
        paths={"sheet": RunDir(root).rel(sheet), "storyboard": "storyboard.json"},
    )


# --- shooting ------------------------------------------------------------------------------------------------


def _film_change(op: str, film) -> Change:
    if film.state and film.state.cut:
        flagged = [r.shot_id for r in film.state.results if r.flagged]
        message = f"final cut {film.state.cut.path} ({film.state.cut.duration:.1f} s)"
        if flagged:
            message += f"; flagged for review: {', '.join(flagged)} (see report.html)"
        return Change(
            op=op,
            message=message,
            shots=film.state.cut.shots,
            paths={"film": film.state.cut.path, "report": "report.html"},
        )
    return Change(op=op, message="the film did not finish; ask 'status'")


def approve(root: Path, on_event: Event | None = None, settings: RunSettings | None = None) -> Change:
    """Hand the current storyboard to the graph's approval and shoot it (progress through `on_event`).
    `settings`: the run's own with warm backends attached (a server's); else loaded from the run."""
    status = _status(root)
    if status == "done":
        raise OperationError("the film is already shot; redo a shot with a note, or deliver for a platform")
    if status != "waiting-for-approval":
        raise OperationError(f"the run is {status}: there is no storyboard waiting for approval")
    storyboard = load_storyboard(root)
    try:
        film = director.resume(
            root,
            on_event=on_event,
            approval={"storyboard": storyboard.model_dump(mode="json")},
            settings=settings,
        )
    except ValidationError as err:
        raise OperationError(f"storyboard.json does not validate: {err.errors()[0]['msg']}") from None
    return _film_change("approve", film)


def resume_shoot(root: Path, on_event: Event | None = None, settings: RunSettings | None = None) -> Change:
    """Continue a shoot that was stopped or killed; nothing already on disk is made again."""
    return _film_change("resume", director.resume(root, on_event=on_event, settings=settings))


def status(root: Path) -> Change:
    """Where the film stands: waiting, shooting (takes and clips so far) or done (the film)."""
    state = _status(root)
    run = RunDir(root)
    storyboard = load_storyboard(root)
    n = len(storyboard.shots)
    takes = run.takes()
    clips = {c.shot_id for c in run.clips()}
    if state == "waiting-for-approval":
        message = f"{n} shots waiting for your approval (say 'go' to shoot)"
    elif state == "running":
        message = f"shooting: {len(takes)} takes so far, {len(clips)} of {n} shots done"
    elif state == "done":
        manifest = read_json(root / "manifest.json") if (root / "manifest.json").exists() else {}
        cut = manifest.get("cut") or {}
        message = f"done: {cut.get('path', 'final.mp4')} ({cut.get('duration', storyboard.duration):.1f} s), {len(takes)} takes"
    else:
        message = f"the run is {state}"
    return Change(op="status", message=message, paths={"storyboard": "storyboard.json"})


def redo(
    root: Path, args: RedoArgs, on_event: Event | None = None, settings: RunSettings | None = None
) -> Change:
    """Re-shoot one shot of the finished film with a note, then re-cut."""
    if _status(root) != "done":
        raise OperationError("redo is for a finished film; approve the storyboard first ('go')")
    _shot_index(load_storyboard(root), args.shot)
    try:
        film = director.redo(root, args.shot, args.note, on_event=on_event, settings=settings)
    except RunDirError as err:
        raise OperationError(str(err)) from None
    change = _film_change("redo", film)
    change.message = (
        f"shot {args.shot} re-shot" + (f" ({args.note})" if args.note else "") + "; " + change.message
    )
    return change


def takes(root: Path, args: ShotRef) -> Change:
    """Every take of a shot, its grade and issues, and which one was kept and why."""
    storyboard = load_storyboard(root)
    shot = storyboard.shots[_shot_index(storyboard, args.shot)]
    run = RunDir(root)
    mine = [t for t in run.takes() if t.shot_id == shot.id]
    if not mine:
        raise OperationError(f"shot {args.shot} has no takes yet: approve the storyboard to shoot it ('go')")
    clip = run.load_clip(shot.id)
    kept = clip.take if clip else None
    lines = []
    for t in mine:
        c = t.critique
        verdict = f"grade {c.grade}, {'passed' if c.passed else 'failed'}" if c else "not judged"
        issues = (
            "; ".join(f"{i.category}: {i.reason}" for i in c.issues[:3]) if c and c.issues else "no issues"
        )
        why = f" ({t.repair.reason})" if t.repair else ""
        mark = "  ← kept" if t.n == kept else ""
        lines.append(f"take {t.n}: {verdict}, {issues}{why} [{t.path}]{mark}")
    message = f"shot {args.shot} ({shot.id}): {len(mine)} takes"
    redo = next(
        (r for r in reversed(read_json(root / MARKER).get("redos", [])) if r["shot"] == shot.id), None
    )
    if kept is not None and redo and kept >= redo["first_take"]:
        note = f" ({redo['note']})" if redo.get("note") else ""
        message += (
            f"; take {kept} is kept: made by the redo{note}, the best of its takes by grade, then issues"
        )
    elif kept is not None:
        message += f"; take {kept} is kept: the best grade, then the fewest issues, then the earliest"
    return Change(op="takes", message=message, shots=[shot.id], after=lines)


def deliver(
    root: Path, args: DeliverArgs, on_event: Event | None = None, settings: RunSettings | None = None
) -> Change:
    """The film's cut for a platform: the one already made for it, else a new cut at that platform's aspect
    (the kept takes outpainted to it and animated; agent/director.deliver), listed in manifest.json `cuts`.
    `settings`: the run's own with a server's warm backends attached; by default loaded and built here."""
    from agent.delivery import file_label

    if _status(root) != "done":
        raise OperationError("there is no film yet to deliver: approve the storyboard first ('go')")
    try:
        label, width, height = resolve_size(args.platform, None)
    except SettingsError as err:
        raise OperationError(str(err).replace("--platform ", "platform ")) from None
    settings = settings or director.load_settings(root)
    main = settings.platforms[0] if settings.platforms else settings.platform
    cut = "final.mp4" if label == main else f"final-{file_label(label)}.mp4"
    if (root / cut).exists():
        return Change(op="deliver", message=f"{label}: {cut} (already made)", paths={"film": cut})
    start = time.perf_counter()
    try:
        made = director.deliver(root, label, on_event=on_event, settings=settings)
    except (RunDirError, RuntimeError) as err:
        raise OperationError(f"the {label} cut was not made: {err}") from None
    return Change(
        op="deliver",
        message=f"{label}: {made.path} ({made.duration:.1f} s, {width}×{height}), every kept take framed "
        f"for it, in {time.perf_counter() - start:.0f} s",
        shots=made.shots,
        paths={"film": made.path, "subtitles": made.srt, "report": "report.html"},
    )
