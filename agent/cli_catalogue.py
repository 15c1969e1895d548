"""`catalogue` (product rows to graded images for every SKU, scene and platform) and `review` (work through
its review.jsonl)."""

from __future__ import annotations

import sys
from pathlib import Path

from agent.cli_input import UsageError, make_settings


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
        shadow=not args.no_shadow,
    )
    backends = settings.backends()
    console.print(f"[bold]render[/]   {backends.image_why}")
    if backends.image.name == "draft":
        console.print("[yellow]Draft mode: images are storyboard panels (or composites of your photos).[/]")
    summary = run_catalogue(
        settings, options, on_progress=lambda line: print(line, file=sys.stderr, flush=True), wait=args.wait
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
