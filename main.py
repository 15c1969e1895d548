"""creative-director: the command line.

    python main.py run "a 20-second launch film for wireless headphones"   # brief → final cut
    python main.py redo runs/<id> --shot 3 --note "make it rain"            # re-shoot one shot, re-cut
    python main.py storyboard script.md --out DIR                           # script → storyboard sheet
    python main.py critique take.png --prompt "..." --json                  # judge existing images
    python main.py eval --prompts parti --strategies raw,template --seeds 2 --out DIR

Bad input gets one clear line on stderr and exit code 2. The last line `run` prints is the run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and endpoints (default: offline drafts, no GPU or key needed)")
    g.add_argument(
        "--planner", choices=["offline", "llm", "auto"], help="offline rules, an LLM, or LLM if up"
    )
    g.add_argument("--llm-base-url", help="OpenAI-compatible chat endpoint, e.g. http://localhost:8000/v1")
    g.add_argument("--llm-model", help="chat model name (key from CD_LLM_API_KEY or OPENAI_API_KEY)")
    g.add_argument("--image-backend", choices=["auto", "draft", "diffusers", "remote"])
    g.add_argument("--image-model", help="diffusers model id or local folder (e.g. Tongyi-MAI/Z-Image-Turbo)")
    g.add_argument(
        "--image-server", help="OpenAI-compatible image server base URL (SGLang Diffusion, vLLM-Omni)"
    )
    g.add_argument("--image-server-model", help="model name to ask the image server for")
    g.add_argument(
        "--image-server-timeout", type=float, help="seconds before one image request times out (120)"
    )
    g.add_argument("--image-server-retries", type=int, help="retries of a failed image request (2)")
    g.add_argument("--video-backend", choices=["auto", "motion", "diffusers"])
    g.add_argument("--video-model", help="diffusers video model id or local folder (LTX-Video, Wan 2.2)")
    g.add_argument("--lora", action="append", default=None, help="LoRA style lock PATH[:weight] (repeatable)")
    g.add_argument("--gpu-memory", type=float, help="GiB of GPU memory models may keep resident")
    g.add_argument("--compile", action="store_true", default=None, help="compile the image model's blocks")
    g.add_argument(
        "--quantize",
        choices=["none", "fp8"],
        help="fp8: FP8 linear layers in the image model "
        "(torchao; GPUs with FP8 tensor cores such as H100); with --compile, the fastest setting",
    )
    g.add_argument("--steps", type=int, dest="num_inference_steps", help="override the model's default steps")
    g.add_argument("--vlm-base-url", help="OpenAI-compatible vision endpoint for the critic")
    g.add_argument("--vlm-model", help="vision model name")
    g.add_argument("--clip-model", help="open_clip model (name or local folder) for CLIP critique")


def _add_film_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="run directory, used exactly as given (default: runs/<run-id>)")
    p.add_argument("--shots", type=int, help="number of shots (default: one per ~2.5 s)")
    p.add_argument("--duration", type=float, help="film length in seconds (default 20)")
    p.add_argument("--platform", help="instagram, tiktok, douyin, youtube, xiaohongshu, or a ratio like 9:16")
    p.add_argument("--size", help="pixel size WxH, overriding the platform's")
    p.add_argument("--lang", choices=["en", "zh"], help="subtitle language (default: the brief's)")
    p.add_argument("--style", help="visual style words added to every shot")
    p.add_argument("--seed", type=int, help="base seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creative-director", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="brief → storyboard → takes → clips → subtitled cut")
    run.add_argument("brief", nargs="?", help="the brief, in a sentence (or use --brief FILE)")
    run.add_argument("--brief", dest="brief_file", help="read the brief from a file ('-' for stdin)")
    _add_film_flags(run)
    run.add_argument("--max-takes", type=int, help="cap on takes per shot (default 3)")
    run.add_argument(
        "--threshold", action="append", default=[], metavar="NAME=VALUE", help="critique threshold"
    )
    run.add_argument("--approve", action="store_true", help="stop after planning until `approve DIR`")
    run.add_argument(
        "--reference",
        action="append",
        default=None,
        metavar="IMG",
        help="image every shot is conditioned on: a product photo, a character (repeatable, 4 at most)",
    )
    run.add_argument(
        "--variants",
        metavar="PLATFORMS",
        type=lambda v: [x for x in v.split(",") if x.strip()],
        help="also deliver every kept still for these platforms, outpainted: tiktok,instagram,4:5",
    )
    run.add_argument(
        "--anchor",
        type=int,
        nargs="?",
        const=1,
        metavar="N",
        help="shoot shot N (default 1) first; its kept take conditions the other shots",
    )
    run.add_argument("--resume", metavar="DIR", help="continue a stopped run; nothing recorded is made again")
    _add_backend_flags(run)

    approve = sub.add_parser("approve", help="approve (or edit storyboard.json, then approve) a waiting run")
    approve.add_argument("run_dir")

    redo = sub.add_parser("redo", help="re-shoot one shot of a finished run (with a note), then re-cut")
    redo.add_argument("run_dir")
    redo.add_argument("--shot", type=int, required=True, metavar="N", help="the shot to re-shoot, 1-based")
    redo.add_argument(
        "--note",
        default="",
        help="what to change: the run's chat model (--planner llm/auto) "
        "rewrites the shot's prompt with it; offline it is added to the prompt",
    )

    board = sub.add_parser("storyboard", help="a script or brief → storyboard.json + storyboard sheet")
    board.add_argument("script", help="script or brief file ('-' for stdin)")
    _add_film_flags(board)
    _add_backend_flags(board)

    crit = sub.add_parser("critique", help="judge existing images against a prompt")
    crit.add_argument("images", nargs="+")
    crit.add_argument("--prompt", required=True)
    crit.add_argument("--expect-text", help="on-image text that must be readable")
    crit.add_argument("--size", help="the size that was asked for, WxH (default: each image's own)")
    crit.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE")
    crit.add_argument("--json", action="store_true", help="print a JSON list")
    _add_backend_flags(crit)

    chat = sub.add_parser("chat", help="a conversation: brief → storyboard → changes → approve → film → redo")
    chat.add_argument("--resume", metavar="DIR", help="continue an earlier chat in its run directory")
    chat.add_argument("--max-takes", type=int, help="cap on takes per shot (default 3)")
    _add_film_flags(chat)
    _add_backend_flags(chat)

    from evals.harness import add_eval_arguments

    add_eval_arguments(sub.add_parser("eval", help="compare prompt strategies on a prompt set"))
    return parser


# --- helpers ------------------------------------------------------------------------------------------------


def read_text_arg(value: str | None, file: str | None, what: str):
    """The brief from the argument, a file or stdin, as raw bytes for validation."""
    if value and file:
        raise UsageError(f"give the {what} either as an argument or with --brief, not both")
    if file == "-":
        return sys.stdin.buffer.read(), "stdin"
    if file:
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"{what} file {file!r} does not exist or is not a file")
        try:
            return path.read_bytes(), path.name
        except OSError as err:
            raise UsageError(f"cannot read {what} file {file!r}: {err.strerror}") from None
    if value is None:
        raise UsageError(f"no {what} given: pass it in quotes, or --brief FILE, or --brief - for stdin")
    return value, "argument"


def parse_thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--threshold {item!r} is not NAME=NUMBER")
    return out


def make_settings(args, run_dir: str, **extra):
    from pydantic import ValidationError

    from agent.settings import RunSettings, resolve_size

    platform, width, height = resolve_size(getattr(args, "platform", None), getattr(args, "size", None))
    fields = dict(run_dir=run_dir, platform=platform, width=width, height=height, **extra)
    for name in [
        "shots", "duration", "lang", "style", "seed", "reference", "anchor", "variants", "max_takes", "planner",
        "llm_base_url", "llm_model",
        "image_backend", "image_model", "image_server", "image_server_model", "image_server_timeout",
        "image_server_retries", "video_backend", "video_model", "lora",
        "gpu_memory", "compile", "quantize", "num_inference_steps", "vlm_base_url", "vlm_model", "clip_model",
    ]:  # fmt: skip
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "threshold", None):
        fields["thresholds"] = parse_thresholds(args.threshold)
    try:
        return RunSettings(**fields)
    except ValidationError as err:
        problems = "; ".join(
            (f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in err.errors()
        )
        raise UsageError(problems) from None


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


class Progress:
    """Shows takes and clips as the graph's update stream reports them."""

    def __init__(self, console, shots: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )  # fmt: skip
        self.shots = self.bar.add_task("shots", total=shots or None)
        self.takes = 0

    def __call__(self, node: str, update: dict) -> None:
        if node == "plan" and update.get("storyboard"):
            self.bar.update(self.shots, total=len(update["storyboard"].shots))
        elif node == "render":
            self.takes += 1
            self.bar.update(self.shots, description=f"shots ({self.takes} takes)")
        elif node == "animate":
            self.bar.advance(self.shots)
        elif node in ("cut", "report"):
            self.bar.console.print(f"{node}: done")


# --- commands -----------------------------------------------------------------------------------------------


def cmd_run(args, console) -> int:
    from agent import director
    from tools.plan import read_brief

    if args.resume:
        if args.brief or args.brief_file:
            raise UsageError("--resume continues a run with its own brief; do not pass a brief too")
        root = director.check_run_dir(args.resume)
        settings = director.load_settings(root)
        print_backends(settings, console)
        board = root / "storyboard.json"
        progress = Progress(console, len(json.loads(board.read_text())["shots"]) if board.exists() else 0)
        with progress.bar:
            film = director.resume(root, on_event=progress)
        return _finish(film, console)
    raw, source = read_text_arg(args.brief, args.brief_file, "brief")
    brief = read_brief(raw, source)
    root = director.prepare_new(args.out)
    settings = make_settings(args, str(root), approve=args.approve)
    print_backends(settings, console)
    progress = Progress(console, settings.shot_count())
    with progress.bar:
        film = director.start(brief, settings, on_event=progress)
    return _finish(film, console)


def cmd_approve(args, console) -> int:
    from agent import director

    root = director.check_run_dir(args.run_dir)
    storyboard = director.pending_storyboard(root)
    progress = Progress(console, len(storyboard.get("shots", [])))
    with progress.bar:
        film = director.resume(root, on_event=progress, approval={"storyboard": storyboard})
    return _finish(film, console)


def cmd_redo(args, console) -> int:
    from agent import director

    root = director.check_run_dir(args.run_dir)
    settings = director.load_settings(root)
    print_backends(settings, console)
    progress = Progress(console, 1)
    with progress.bar:
        film = director.redo(root, args.shot, args.note, on_event=progress)
    return _finish(film, console)


def _finish(film, console) -> int:
    if film.waiting_for_approval:
        console.print(f"Storyboard ready for review: {film.run_dir / 'storyboard.json'}")
        console.print(f"Edit it if you like, then: python main.py approve {film.run_dir}")
    elif film.state and film.state.cut:
        flagged = [r.shot_id for r in film.state.results if r.flagged]
        console.print(f"final cut: {film.run_dir / film.state.cut.path}  ({film.state.cut.duration:.1f} s)")
        if flagged:
            console.print(f"[yellow]flagged for review: {', '.join(flagged)} (see report.html)[/]")
    print(film.run_dir)
    return 0


def cmd_storyboard(args, console) -> int:
    from agent import director
    from agent.report import write_storyboard_sheet
    from agent.rundir import write_json
    from tools.plan import plan_storyboard, planner_description, read_brief

    raw, source = read_text_arg(None, args.script, "script")
    brief = read_brief(raw, source)
    root = director.prepare_new(args.out)
    settings = make_settings(args, str(root))
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
    from tools.critique import critique_files

    width = height = None
    if args.size:
        _, width, height = resolve_size(None, args.size)
    settings = make_settings(args, ".")
    results = critique_files(args.images, args.prompt, args.expect_text, width, height, settings)
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


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    args = build_parser().parse_args(argv)
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
    }
    try:
        if args.command == "eval":
            from evals.harness import run_eval

            return run_eval(args)
        return commands[args.command](args, console)
    except (UsageError, BriefError, SettingsError, RunDirError, PlanError) as err:
        print(f"error: {err}", file=sys.stderr)  # one plain line: no wrapping, easy to grep
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("[yellow]stopped; continue with --resume DIR (nothing finished is lost)[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
