"""The command line's words: every subcommand and its flags (the settings flags derived from RunSettings by
agent/flags.py). `main.build_parser` adds `eval`, whose flags live with the harness in evals/."""

from __future__ import annotations

import argparse

from agent.flags import add_settings_arguments, flag_fields


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and endpoints (default: offline drafts, no GPU or key needed)")
    add_settings_arguments(g, flag_fields("models"))


def _add_film_flags(p: argparse.ArgumentParser) -> None:
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


def add_commands(sub) -> None:
    """Every subcommand but `eval`, in the order `--help` lists them."""
    run = sub.add_parser("run", help="brief → storyboard → takes → clips → subtitled cut")
    run.add_argument("brief", nargs="?", help="the brief, in a sentence (or use --brief FILE)")
    run.add_argument("--brief", dest="brief_file", help="read the brief from a file ('-' for stdin)")
    _add_film_flags(run)
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


def _add_catalogue_parsers(sub) -> None:
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
        help="units critiqued and written at once (default 4 when the model renders on a GPU, else 1; "
        "with --ray, one worker per GPU of the cluster)",
    )
    cat.add_argument("--ray", metavar="auto|local|ADDRESS", help="run the units on a Ray cluster")
    cat.add_argument("--video", action="store_true", help="also one short clip per SKU from its best image")
    cat.add_argument("--render-side", type=int, default=1024, help="long side of a render (default 1024)")
    cat.add_argument("--no-shadow", action="store_true", help="main images on white with no shadow at all")
    cat.add_argument(
        "--wait",
        action="store_true",
        help="if another process is working on the folder, wait for it to finish",
    )
    add_settings_arguments(cat, ["seed", "max_takes", "thresholds"])
    _add_backend_flags(cat)

    review = sub.add_parser("review", help="work through a catalogue's review.jsonl: approve, reject, redo")
    review.add_argument("dir", help="the catalogue folder")
    review.add_argument(
        "--decisions", help="read the decisions from this file instead of asking ('-': stdin)"
    )
