"""What the user typed, checked: the brief or script from an argument, a file or stdin; the settings from the
flags; the flags a resume may give again. Bad input raises UsageError: one line on stderr, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that are the user's input, not the program's: one line on stderr and exit code 2."""
    from agent.rundir import RunDirError
    from agent.settings import SettingsError
    from tools.plan import BriefError, PlanError

    return (UsageError, BriefError, SettingsError, RunDirError, PlanError)


def read_brief_arg(value: str | None, file: str | None, what: str):
    """The Brief read from the argument, a file or stdin."""
    from tools import plan

    raw, source = read_text_arg(value, file, what)
    return plan.read_brief(raw, source)


def read_text_arg(value: str | None, file: str | None, what: str):
    """The brief from the argument, a file or stdin, as raw bytes for validation."""
    if value and file:
        raise UsageError(f"give the {what} either as an argument or with --brief, not both")
    if file == "-":
        return _read_limited(sys.stdin.buffer, what, "stdin"), "stdin"
    if file:
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"{what} file {file!r} does not exist or is not a file")
        try:
            with path.open("rb") as f:
                return _read_limited(f, what, f"file {file!r}"), path.name
        except OSError as err:
            raise UsageError(f"cannot read {what} file {file!r}: {err.strerror}") from None
    if value is None:
        raise UsageError(f"no {what} given: pass it in quotes, or --brief FILE, or --brief - for stdin")
    return value, "argument"


def _read_limited(stream, what: str, where: str) -> bytes:
    """At most the bytes the longest allowed brief can take (4 per character in UTF-8), and not one more:
    an endless stream (/dev/zero) is refused at once with bounded memory."""
    from tools.brief import MAX_BRIEF_CHARS

    limit = 4 * MAX_BRIEF_CHARS
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UsageError(
            f"the {what} from {where} is longer than {limit:,} bytes; the limit is {MAX_BRIEF_CHARS:,} characters"
        )
    return data


# Flags a resume may give again: how the work is done. What the film is (its shots, length, frame, brief,
# references) is in its storyboard; change that by editing storyboard.json.
RESUME_FLAGS = ("max_takes", "thresholds")


def resume_overrides(args) -> dict:
    """The settings flags given with --resume, as overrides of the run's own; UsageError for a film flag."""
    from agent.flags import _flag_name, flag_fields

    allowed = set(flag_fields("models")) | set(RESUME_FLAGS)
    given = {n: v for n in flag_fields("film", "run", "models") if (v := getattr(args, n, None)) is not None}
    if args.size is not None:
        given["size"] = args.size
    if args.out is not None:
        raise UsageError("--resume continues the run in its own folder; do not pass --out")
    refused = [n for n in given if n not in allowed and not (n == "approve" and given[n] is False)]
    if refused:
        names = ", ".join("--size" if n == "size" else _flag_name(n) for n in refused)
        raise UsageError(
            f"{names} cannot change on --resume (the film is planned); edit storyboard.json, or start a new run"
        )
    if "thresholds" in given:
        given["thresholds"] = dict(given["thresholds"])
    return {n: v for n, v in given.items() if n in allowed}


def make_settings(args, run_dir: str, reading=None, console=None, **fixed):
    """RunSettings from the flags (and the brief's own reading where a flag is absent); a conflict said in one line."""
    from agent.flags import settings_from_args

    settings, conflict = settings_from_args(args, run_dir, reading, **fixed)
    if conflict and console is not None:
        console.print(f"[yellow]{conflict}[/]")
    return settings
