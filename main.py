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
import json
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    from agent.flags import add_settings_arguments, flag_fields

    g = p.add_argument_group("models and endpoints (default: offline drafts, no GPU or key needed)")
    add_settings_arguments(g, flag_fields("models"))


def _add_film_flags(p: argparse.ArgumentParser) -> None:
    from agent.flags import add_settings_arguments, flag_fields

    p.add_argument("--out", help="run directory, used exactly as given (default: runs/<run-id>)")
    add_settings_arguments(p, flag_fields("film"))
    p.add_argument("--size", help="pixel size WxH, overriding the platform's")


def _add_work_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait", action="store_true", help="if another process is working on the run, wait for it to finish"
    )
    p.add_argument(
        "--allow-missing-shots",
        action="store_true",
        help="a film cut without some shots (none of their takes worked) exits 0 instead of 1",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creative-director", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="brief → storyboard → takes → clips → subtitled cut")
    run.add_argument("brief", nargs="?", help="the brief, in a sentence (or use --brief FILE)")
    run.add_argument("--brief", dest="brief_file", help="read the brief from a file ('-' for stdin)")
    _add_film_flags(run)
    from agent.flags import add_settings_arguments, flag_fields

    add_settings_arguments(run, flag_fields("run"))
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="continue a stopped or failed run; nothing recorded is made again (model, endpoint and "
        "--threshold/--max-takes flags given again replace the run's)",
    )
    _add_work_flags(run)
    _add_backend_flags(run)

    approve = sub.add_parser("approve", help="approve (or edit storyboard.json, then approve) a waiting run")
    approve.add_argument("run_dir")
    _add_work_flags(approve)

    redo = sub.add_parser("redo", help="re-shoot one shot of a finished run (with a note), then re-cut")
    redo.add_argument("run_dir")
    redo.add_argument("--shot", type=int, required=True, metavar="N", help="the shot to re-shoot, 1-based")
    redo.add_argument(
        "--note",
        default="",
        help="what to change: the run's chat model (--planner llm/auto) "
        "rewrites the shot's prompt with it; offline it is added to the prompt",
    )
    _add_work_flags(redo)

    board = sub.add_parser("storyboard", help="a script or brief → storyboard.json + storyboard sheet")
    board.add_argument("script", help="script or brief file ('-' for stdin)")
    _add_film_flags(board)
    _add_backend_flags(board)

    crit = sub.add_parser("critique", help="judge existing images against a prompt")
    crit.add_argument("images", nargs="+")
    crit.add_argument("--prompt", required=True)
    crit.add_argument("--expect-text", help="on-image text that must be readable")
    crit.add_argument("--size", help="the size that was asked for, WxH (default: each image's own)")
    add_settings_arguments(crit, ["thresholds"])
    crit.add_argument("--json", action="store_true", help="print a JSON list")
    _add_backend_flags(crit)

    chat = sub.add_parser("chat", help="a conversation: brief → storyboard → changes → approve → film → redo")
    chat.add_argument("--resume", metavar="DIR", help="continue an earlier chat in its run directory")
    chat.add_argument("--max-takes", type=int, help="cap on takes per shot (default 3)")
    _add_film_flags(chat)
    _add_backend_flags(chat)

    _add_serve_parser(sub)
    _add_catalogue_parsers(sub)
    from evals.harness import add_eval_arguments

    add_eval_arguments(sub.add_parser("eval", help="compare prompt strategies on a prompt set"))
    return parser


# --- helpers ------------------------------------------------------------------------------------------------


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


def print_reading(brief, console) -> None:
    from agent.flags import describe_reading

    line = describe_reading(brief.reading)
    if line:
        console.print(f"[bold]brief[/]    read from the brief: {line}")


def print_backends(settings, console) -> None:
    from agent.nodes import backends
    from tools.plan import planner_description

    chosen = backends(settings)
    console.print(f"[bold]plan[/]     {planner_description(settings)}")
    console.print(f"[bold]render[/]   {chosen['image_why']}")
    console.print(f"[bold]animate[/]  {chosen['video_why']}")
    if settings.reference or settings.anchor:
        from tools.generate_image import reference_mode

        console.print(f"[bold]refs[/]     {reference_mode(chosen['image'])}")
    if chosen["image"].name == "draft":
        console.print("[yellow]Draft mode: shots are storyboard panels, not final images.[/]")
    from rich.markup import escape

    from tools.voice import VoiceConfig, voice_description

    voice = escape(voice_description(settings.lang or "en", settings.config(VoiceConfig)))
    console.print(f"[bold]voice[/]    {'[yellow]' if 'SCRATCH' in voice else ''}{voice}", highlight=False)
    if settings.music:
        from tools.mix import check_music

        _, why = check_music(settings.music)
        console.print(f"[bold]music[/]    {escape(why or settings.music)}", highlight=False)


class Progress:
    """Shows takes and clips as the graph's update stream reports them: a live bar on a terminal, else one plain
    line per event (a log file or a pipe gets every step as it happens, not one bar at the end)."""

    def __init__(self, console, shots: int):
        self.console, self.total, self.takes, self.clips = console, shots, 0, 0
        self.bar = None
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=False,
            )  # fmt: skip
            self.shots = self.bar.add_task("shots", total=shots or None)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()

    def _say(self, line: str) -> None:
        if self.bar is None:
            self.console.print(line, markup=False, highlight=False)

    def __call__(self, node: str, update: dict) -> None:
        if node == "progress" and update.get("planner"):
            self.console.print(f"plan: {update['planner']}", markup=False, highlight=False)
        elif node == "plan" and update.get("storyboard"):
            self.total = len(update["storyboard"].shots)
            if self.bar:
                self.bar.update(self.shots, total=self.total)
            self._say(f"plan: {self.total} shots")
        elif node == "render":
            self.takes += 1
            if self.bar:
                self.bar.update(self.shots, description=f"shots ({self.takes} takes)")
            self._say(f"render: take {self.takes}")  # the shot branch's updates do not name the shot
        elif node == "animate":
            self.clips += 1
            if self.bar:
                self.bar.advance(self.shots)
            for result in update.get("results", []):
                self._say(f"animate: {result.shot_id} ({self.clips}/{self.total or '?'} shots)")
        elif node in ("cut", "report"):
            self.console.print(f"{node}: done")


# --- commands -----------------------------------------------------------------------------------------------


def cmd_run(args, console) -> int:
    from agent import director
    from tools.plan import read_brief

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
            progress = Progress(console, _shots_in(root))
            with progress:
                film = director.resume(
                    root, on_event=progress, settings=settings, allow_missing=args.allow_missing_shots,
                    **overrides,
                )  # fmt: skip
        return _finish(film, console, args)
    raw, source = read_text_arg(args.brief, args.brief_file, "brief")
    brief = read_brief(raw, source)
    root = director.prepare_new(args.out)
    print_reading(brief, console)
    settings = make_settings(args, str(root), brief.reading, console)
    director.check_settings(settings)
    print_backends(settings, console)
    progress = Progress(console, settings.shot_count())
    with progress:
        film = director.start(brief, settings, on_event=progress, allow_missing=args.allow_missing_shots)
    return _finish(film, console, args)


def locked(root: Path, args, console):
    """The run's lock for a command (with --wait: wait for the holder, saying who it is)."""
    from agent import director
    from agent.runlock import run_lock

    # Checked before the lock file is made: a folder that is not a run is left as it was.
    director.check_run_dir(root, flag="--resume" if args.command == "run" else None)
    return run_lock(root, wait=args.wait, on_wait=lambda line: console.print(f"[yellow]{line}[/]"))


def _shots_in(root: Path) -> int:
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
    return _finish(film, console, args)


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
    return _finish(film, console, args)


def _finish(film, console, args=None) -> int:
    """The closing lines; exit 1 when the film lacks shots (unless --allow-missing-shots). The last line printed
    on stdout is always the run directory."""
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
    print(film.run_dir)
    return code


def cmd_storyboard(args, console) -> int:
    from agent import director
    from agent.report import write_storyboard_sheet
    from agent.rundir import write_json
    from tools.plan import plan_storyboard, planner_description, read_brief

    raw, source = read_text_arg(None, args.script, "script")
    brief = read_brief(raw, source)
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


def cmd_critique(args, console) -> int:
    from agent.settings import resolve_size
    from tools.critique import CritiqueConfig, critique_files

    width = height = None
    if args.size:
        _, width, height = resolve_size(None, args.size)
    settings = make_settings(args, ".")
    results = critique_files(
        args.images, args.prompt, args.expect_text, width, height, settings.config(CritiqueConfig)
    )
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if "error" in r:
                console.print(f"[red]{r['path']}: {r['error']}[/]")
                continue
            verdict = "pass" if r["pass"] else "FAIL"
            console.print(f"{r['path']}: {verdict} grade {r['grade']}")
            for issue in r["issues"]:
                console.print(f"   - {issue['category']}: {issue['reason']}")
    return 1 if any("error" in r for r in results) else 0


def cmd_chat(args, console) -> int:
    """Interactive on a terminal; otherwise one message per line from stdin, each reply printed (scriptable)."""
    from agent import director
    from agent.chat import Chat

    tty = sys.stdin.isatty()
    say = console.print if tty else (lambda line: print(line, flush=True))
    if args.resume:
        chat = Chat.resume(Path(args.resume), say=say, background=tty)
        say(f"continuing the chat in {chat.root} ({len(chat.history)} entries)")
        if done := chat.continue_stopped():
            say(done)
    else:
        root = director.prepare_new(args.out)
        chat = Chat(root, make_settings(args, str(root)), say=say, background=tty)
        say(f"chat in {root}: first, the brief (or the path of a brief or script file)")
    if tty:
        from rich.prompt import Prompt

        while True:
            try:
                message = Prompt.ask("[bold]you[/]", console=console)
            except EOFError:
                break
            if message.strip().lower() in ("quit", "exit", "bye", "再见"):
                break
            console.print(chat.handle(message))
    else:
        for raw in sys.stdin.buffer:
            print(chat.handle(raw.decode("utf-8", errors="replace").rstrip("\r\n")), flush=True)
    chat.wait()
    print(chat.root)
    return 0


def _add_serve_parser(sub) -> None:
    serve = sub.add_parser(
        "serve", help="the web studio and REST API, with a durable job queue and warm models"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--api-keys", metavar="FILE", help="accepted API keys, one per line (also CD_API_KEYS)"
    )
    serve.add_argument("--workers", type=int, default=2, help="films made at once (default 2)")
    serve.add_argument("--worker-processes", type=int, default=1, metavar="P",
                       help="processes the --workers share, each with its own warm models (default 1)")  # fmt: skip
    serve.add_argument("--no-auth", action="store_true", help="no keys: only on a loopback --host")
    serve.add_argument(
        "--state", default="serve-state", help="folder of the queue and the films (default serve-state)"
    )
    serve.add_argument(
        "--rate-limit", type=int, default=600, help="requests per minute per key (default 600)"
    )
    serve.add_argument(
        "--max-queued", type=int, default=25, help="films per key queued or running (default 25)"
    )
    _add_backend_flags(serve)


def cmd_serve(args, console) -> int:
    import uvicorn

    from agent.auth import check_auth_choice, read_keys
    from agent.flags import flag_fields
    from agent.server import ServerConfig, create_app

    keys = read_keys(args.api_keys)
    check_auth_choice(args.host, keys, args.no_auth)
    if not 1 <= args.workers <= 64:
        raise UsageError(f"--workers {args.workers}: give 1 to 64")
    base = {n: v for n in flag_fields("models") if (v := getattr(args, n, None)) is not None}
    config = ServerConfig(
        state_dir=args.state, base=base, workers=args.workers, keys=keys, no_auth=args.no_auth,
        worker_processes=max(1, min(args.worker_processes, args.workers)),
        rate_limit=args.rate_limit, max_queued=args.max_queued,
    )  # fmt: skip
    console.print(f"studio and API on http://{args.host}:{args.port}/ (docs at /docs); state in {args.state}")
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0


# --- catalogue ----------------------------------------------------------------------------------------------


def _add_catalogue_parsers(sub) -> None:
    from agent.flags import add_settings_arguments

    cat = sub.add_parser("catalogue", help="product rows → images for every SKU × scene × platform, graded")
    cat.add_argument(
        "catalogue", help="CSV, XLSX or JSONL with columns sku, name, category (and optional ones)"
    )
    cat.add_argument(
        "--out", required=True, help="the catalogue folder (give it again to finish a stopped run)"
    )
    cat.add_argument("--images", help="folder the rows' image paths are relative to (default: the file's)")
    cat.add_argument(
        "--scenes", help="scenes for every row, e.g. studio,lifestyle,detail (default: by category)"
    )
    cat.add_argument(
        "--platforms",
        dest="catalogue_platforms",
        help="marketplaces, e.g. taobao,jd,amazon,instagram (the default)",
    )
    cat.add_argument("--brand", help="brand.yaml: palette, font, copy colours, corner")
    cat.add_argument("--templates", help="your own folder of <category>/<scene>.j2 scene templates")
    cat.add_argument(
        "--workers",
        type=int,
        help="units made at once (default 1; with --ray, one worker per GPU of the cluster)",
    )
    cat.add_argument("--ray", metavar="auto|local|ADDRESS", help="run the units on a Ray cluster")
    cat.add_argument("--video", action="store_true", help="also one short clip per SKU from its best image")
    cat.add_argument("--render-side", type=int, default=1024, help="long side of a render (default 1024)")
    add_settings_arguments(cat, ["seed", "max_takes", "thresholds"])
    _add_backend_flags(cat)

    review = sub.add_parser("review", help="work through a catalogue's review.jsonl: approve, reject, redo")
    review.add_argument("dir", help="the catalogue folder")
    review.add_argument(
        "--decisions", help="read the decisions from this file instead of asking ('-': stdin)"
    )


def cmd_catalogue(args, console) -> int:
    from agent.catalogue import DEFAULT_PLATFORMS, CatalogueOptions, run_catalogue
    from agent.settings import split_commas

    settings = make_settings(args, str(Path(args.out)))
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    options = CatalogueOptions(
        catalogue=args.catalogue,
        out=args.out,
        images=args.images,
        scenes=split_commas(args.scenes) if args.scenes else [],
        platforms=split_commas(args.catalogue_platforms) if args.catalogue_platforms else DEFAULT_PLATFORMS,
        brand=args.brand,
        templates=args.templates,
        workers=args.workers,
        ray=args.ray,
        video=args.video,
        cap=settings.max_takes,
        render_side=args.render_side,
    )
    backends = settings.backends()
    console.print(f"[bold]render[/]   {backends.image_why}")
    if backends.image.name == "draft":
        console.print("[yellow]Draft mode: images are storyboard panels (or composites of your photos).[/]")
    summary = run_catalogue(
        settings, options, on_progress=lambda line: print(line, file=sys.stderr, flush=True)
    )
    g = summary.grades
    console.print(
        f"{summary.images} images of {summary.rows} products ({len(summary.bad_rows)} bad rows skipped, "
        f"{summary.units_skipped} of {summary.units} renders already made) · A {g.get('A', 0)} "
        f"B {g.get('B', 0)} C {g.get('C', 0)} · {summary.seconds:.1f} s"
    )
    print(summary.out)
    return 0


def cmd_review(args, console) -> int:
    from agent.review import review

    stream = sys.stdin
    if args.decisions and args.decisions != "-":
        stream = open(args.decisions, encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        counts = review(Path(args.dir), stream, say=lambda line: print(line, flush=True))
    finally:
        if stream is not sys.stdin:
            stream.close()
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    args = build_parser().parse_args(argv)
    from agent.run_status import RunFailed
    from agent.rundir import RunDirError
    from agent.settings import SettingsError
    from tools.plan import BriefError, PlanError

    commands = {
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
    try:
        if args.command == "eval":
            from evals.harness import run_eval

            return run_eval(args)
        return commands[args.command](args, console)
    except (UsageError, BriefError, SettingsError, RunDirError, PlanError) as err:
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
