"""creative-director: the command line.

    python main.py run "a 20-second launch film for wireless headphones"   # brief → final cut
    python main.py redo runs/<id> --shot 3 --note "make it rain"            # re-shoot one shot, re-cut
    python main.py storyboard script.md --out DIR                           # script → storyboard sheet
    python main.py critique take.png --prompt "..." --json                  # judge existing images
    python main.py eval --prompts parti --strategies raw,template --seeds 2 --out DIR
    python main.py catalogue products.csv --out DIR --platforms taobao,amazon      # SKU × scene × platform
    python main.py review DIR                                                      # work through review.jsonl

Bad input gets one clear line on stderr and exit code 2. The last line `run` prints is the run directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli_input import EXIT_FAILED, EXIT_USAGE, UsageError, make_settings, user_errors

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "UsageError", "build_parser", "main", "make_settings"]


def build_parser() -> argparse.ArgumentParser:
    from agent.cli_parser import add_commands
    from evals.harness import add_eval_arguments

    parser = argparse.ArgumentParser(prog="creative-director", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    add_eval_arguments(sub.add_parser("eval", help="compare prompt strategies on a prompt set"))
    return parser


def cmd_run(args, console) -> int:
    """brief → storyboard → takes → clips → cut, through agent/director.py; or --resume a stopped run."""
    from agent import director
    from agent.cli_film import finish, locked, shots_in
    from agent.cli_input import read_brief_arg, resume_overrides
    from agent.cli_progress import Progress, print_backends, print_reading

    if args.resume:
        if args.brief or args.brief_file:
            raise UsageError("--resume continues a run with its own brief; do not pass a brief too")
        overrides = resume_overrides(args)
        root = Path(args.resume)
        with locked(root, args, console):
            root = director.check_run_dir(root)
            settings = director.load_settings(root, **overrides)
            director.check_settings(settings)
            print_backends(settings, console)
            progress = Progress(console, shots_in(root))
            with progress:
                film = director.resume(
                    root, on_event=progress, settings=settings, allow_missing=args.allow_missing_shots,
                    **overrides,
                )  # fmt: skip
        return finish(film, console, args)
    brief = read_brief_arg(args.brief, args.brief_file, "brief")
    root = director.prepare_new(args.out)
    print_reading(brief, console)
    settings = make_settings(args, str(root), brief.reading, console)
    director.check_settings(settings)
    print_backends(settings, console)
    progress = Progress(console, settings.shot_count())
    with progress:
        film = director.start(brief, settings, on_event=progress, allow_missing=args.allow_missing_shots)
    return finish(film, console, args)


def _commands() -> dict:
    """Each subcommand's function; all but `run` live in agent/cli_*.py."""
    from agent.cli_catalogue import cmd_catalogue, cmd_review
    from agent.cli_chat import cmd_chat
    from agent.cli_critique import cmd_critique
    from agent.cli_film import cmd_approve, cmd_redo, cmd_storyboard
    from agent.cli_serve import cmd_serve

    return {
        "run": cmd_run,
        "approve": cmd_approve,
        "redo": cmd_redo,
        "storyboard": cmd_storyboard,
        "critique": cmd_critique,
        "chat": cmd_chat,
        "serve": cmd_serve,
        "catalogue": cmd_catalogue,
        "review": cmd_review,
    }


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    args = build_parser().parse_args(argv)
    from agent.run_status import RunFailed

    commands, errors = _commands(), user_errors()
    try:
        if args.command == "eval":
            from evals.harness import run_eval

            return run_eval(args)
        return commands[args.command](args, console)
    except errors as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)  # one plain line: no wrapping, easy to grep
        return EXIT_USAGE
    except RunFailed as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # the disk, not the input: a full disk or a folder that went away
        where = f": {err.filename}" if err.filename else ""
        print(f"error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.print("[yellow]stopped; continue with --resume DIR (nothing finished is lost)[/]")
        return 130


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(main())
