"""The commands on an existing run directory (approve, redo) and `storyboard`; the run lock they take and
the closing lines every film command prints. `run` itself is in main.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.cli_input import EXIT_FAILED, make_settings, read_brief_arg
from agent.cli_progress import Progress, print_backends, print_reading


def locked(root: Path, args, console):
    """The run's lock for a command (with --wait: wait for the holder, saying who it is)."""
    from agent import director
    from agent.runlock import run_lock

    # Checked before the lock file is made: a folder that is not a run is left as it was.
    director.check_run_dir(root, flag="--resume" if args.command == "run" else None)
    return run_lock(root, wait=args.wait, on_wait=lambda line: console.print(f"[yellow]{line}[/]"))


def shots_in(root: Path) -> int:
    try:
        return len(json.loads((root / "storyboard.json").read_text(encoding="utf-8"))["shots"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0  # the resume itself names what is wrong with the file


def cmd_approve(args, console) -> int:
    from agent import director
    from agent.rundir import RunDirError

    root = director.check_run_dir(args.run_dir, flag=None)
    if director.status(root) == "done":  # nothing to do, so nothing to lock: the folder is left untouched
        console.print(f"{root} is already finished: nothing to approve (see {root / 'report.html'})")
        print(root)
        return 0
    with locked(root, args, console):
        status = director.status(root)
        if status != "waiting-for-approval":
            raise RunDirError(
                f"{root} is not waiting for approval ({status}); continue it with: python main.py run --resume {root}"
            )
        storyboard = director.pending_storyboard(root)  # a bad edit is refused here; the run keeps waiting
        settings = director.load_settings(root)
        print_backends(settings, console)
        progress = Progress(console, len(storyboard["shots"]))
        with progress:
            film = director.resume(
                root, on_event=progress, approval={"storyboard": storyboard}, settings=settings,
                allow_missing=args.allow_missing_shots,
            )  # fmt: skip
    return finish(film, console, args)


def cmd_redo(args, console) -> int:
    from agent import director

    root = Path(args.run_dir)
    with locked(root, args, console):
        target = director.check_redo(root, args.shot, args.note)  # before any backend is chosen
        settings = director.load_settings(target.root)
        print_backends(settings, console)
        progress = Progress(console, 1)
        with progress:
            film = director.redo(
                target.root, args.shot, args.note, on_event=progress, settings=settings,
                allow_missing=args.allow_missing_shots,
            )  # fmt: skip
    return finish(film, console, args)


def finish(film, console, args=None) -> int:
    """The closing lines; exit 1 when the film lacks shots (unless --allow-missing-shots) or a --variants still
    failed. The last line printed on stdout is always the run directory."""
    code = 0
    if film.waiting_for_approval:
        console.print(f"Storyboard ready for review: {film.run_dir / 'storyboard.json'}")
        console.print(f"Edit it if you like, then: python main.py approve {film.run_dir}")
    elif film.state and film.state.cut:
        flagged = [r.shot_id for r in film.state.results if r.flagged and r.shot_id not in film.missing]
        console.print(f"final cut: {film.run_dir / film.state.cut.path}  ({film.state.cut.duration:.1f} s)")
        if flagged:
            console.print(f"[yellow]flagged for review: {', '.join(flagged)} (see report.html)[/]")
    if film.missing:
        shots = "; ".join(f"{sid}: {why}" for sid, why in film.missing.items())
        line = f"the film lacks {len(film.missing)} shot(s): {shots} (see report.html)"
        if args is not None and getattr(args, "allow_missing_shots", False):
            console.print(f"[yellow]{line}; allowed by --allow-missing-shots[/]", markup=True)
        else:
            print(f"error: {line}; --resume {film.run_dir} shoots them again", file=sys.stderr)
            code = EXIT_FAILED
    if film.failed_variants:  # the film is whole, but a still asked for by --variants is not
        shots = "; ".join(f"{sid}: {why}" for sid, why in film.failed_variants.items())
        print(
            f"error: a --variants still failed for {len(film.failed_variants)} shot(s), which are in the cut: "
            f"{shots}; --resume {film.run_dir} makes them again",
            file=sys.stderr,
        )
        code = EXIT_FAILED
    print(film.run_dir)
    return code


def cmd_storyboard(args, console) -> int:
    from agent import director
    from agent.report import write_storyboard_sheet
    from agent.rundir import write_json
    from tools.plan import plan_storyboard, planner_description

    brief = read_brief_arg(None, args.script, "script")
    root = director.prepare_new(args.out)
    print_reading(brief, console)
    settings = make_settings(args, str(root), brief.reading, console)
    console.print(f"[bold]plan[/]  {planner_description(settings)}")
    storyboard = plan_storyboard(brief, settings)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "brief.json", brief)
    write_json(root / "storyboard.json", storyboard)
    sheet = write_storyboard_sheet(storyboard, root)
    console.print(f"{len(storyboard.shots)} shots, {storyboard.duration:.1f} s; sheet: {sheet}")
    print(root)
    return 0
