"""Catalogue benchmark, offline: a synthetic catalogue of N units through the real `catalogue` path.

Writes a catalogue of products (five categories, English and Chinese names, prices and promos, half of them
with a white-background product photo), then runs `agent.catalogue.run_catalogue` on it as `main.py
catalogue` does, with the draft backend: units, make_unit (render or composite around the cut-out,
critique, grade, repair up to the cap), records, exports and the QC report. Prints images/s, the time to the
first image, and the projection for 3,600 units.

    python evals/bench_catalogue.py --units 200 --workers 2              # LocalEngine, two threads
    python evals/bench_catalogue.py --units 200 --workers 2 --ray local  # RayEngine, two CPU actors

One unit is one render of one product and scene; with one platform (the default here, taobao) it is one
image. The projection is the time to the first image plus 3,600 × the steady time per unit after it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, evals/ comes first on the path and its tokenizers.py would hide the `tokenizers` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]

CATEGORIES = [
    ("electronics", "Wireless Earbuds", "无线耳机", "black", "$129", ""),
    ("fashion", "Linen Shirt", "真丝围巾", "sand", "¥299", "新品"),
    ("home", "Ceramic Mug", "陶瓷杯", "white", "¥39", "限时特惠"),
    ("beauty", "Face Serum", "精华液", "amber", "$48", ""),
    ("toys", "Wooden Train", "木制火车", "red", "", ""),
]


def product_photo(path: Path, colour: tuple[int, int, int], seed: int) -> None:
    """A product on a pure-white background: a rounded body and a darker band, like a packshot."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (512, 512), (255, 255, 255))
    d = ImageDraw.Draw(img)
    w = 180 + seed % 5 * 20
    d.rounded_rectangle((256 - w // 2, 110, 256 + w // 2, 420), radius=40, fill=colour)
    d.rectangle((256 - w // 2, 230, 256 + w // 2, 270), fill=tuple(c // 2 for c in colour))
    img.save(path)


def write_catalogue(folder: Path, units: int, photos: bool = True) -> Path:
    """products.csv (and photos/) holding exactly `units` units of one platform: three scenes a product."""
    from tools.scene_templates import scenes_for

    photo_dir = folder / "photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    path = folder / "products.csv"
    colours = [(30, 30, 30), (200, 170, 120), (230, 230, 235), (190, 120, 40), (190, 30, 30)]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["sku", "name", "category", "color", "price", "promo", "image", "scenes"])
        left, i = units, 0
        while left > 0:
            cat, en, zh, colour, price, promo = CATEGORIES[i % len(CATEGORIES)]
            scenes = scenes_for(cat)[: min(3, left)]
            image = ""
            if photos and i % 2 == 0:
                image = f"p{i}.png"
                product_photo(photo_dir / image, colours[i % len(colours)], i)
            name = f"{zh} {i}" if i % 2 else f"{en} {i}"
            out.writerow([f"BENCH-{i:05d}", name, cat, colour, price, promo, image, "|".join(scenes)])
            left -= len(scenes)
            i += 1
    return path


class Clock:
    """The progress lines as they come, with the time each came (the driver's view of the run)."""

    def __init__(self, echo: bool):
        self.t0 = time.perf_counter()
        self.lines: list[tuple[float, str]] = []
        self.echo = echo

    def __call__(self, line: str) -> None:
        self.lines.append((time.perf_counter() - self.t0, line))
        if self.echo:
            print(f"  [{self.lines[-1][0]:7.1f} s] {line}", flush=True)


def image_times(out: Path, t0_epoch: float) -> list[float]:
    """Seconds from the start to each platform image's file (DIR/<platform>/<slug>/<scene>.png)."""
    return sorted(
        p.stat().st_mtime - t0_epoch for p in out.glob("*/*/*.png") if not p.parts[-3].startswith(".")
    )


def summarise(name: str, units: int, seconds: float, times: list[float], summary) -> dict:
    first = times[0] if times else float("nan")
    steady = (times[-1] - first) / max(len(times) - 1, 1)
    per_unit = (times[-1] - first) / max(units - 1, 1) if times else float("nan")
    return {
        "run": name,
        "units": units,
        "images": len(times),
        "grades": summary.grades,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(times) / seconds, 3),
        "steady_images_per_s": round(1 / steady, 3) if steady > 0 else None,
        "first_image_s": round(first, 2),
        "projected_3600_units_s": round(first + 3600 * per_unit, 1),
    }


def run(args, engine=None, build_settings=None) -> dict:
    """One catalogue run on a fresh synthetic catalogue; `engine` replaces the one the options would pick."""
    from agent import catalogue
    from agent.catalogue import CatalogueOptions, run_catalogue
    from agent.settings import RunSettings

    with tempfile.TemporaryDirectory(prefix="bench-cat-") as tmp:
        folder = Path(tmp)
        products = write_catalogue(folder, args.units, photos=not args.no_photos)
        out = folder / "out"
        fields = dict(
            run_dir=str(out), image_backend="draft", clip_model="none", render_batch=args.render_batch
        )
        fields.update(build_settings or {})
        settings = RunSettings(**fields)
        options = CatalogueOptions(
            catalogue=str(products),
            out=str(out),
            images=str(folder / "photos"),
            platforms=args.platforms.split(","),
            workers=args.workers,
            ray=args.ray,
            cap=args.cap,
            render_side=args.render_side,
        )
        if engine is not None:
            # run_catalogue picks its engine from the options; a benchmark brings one built around its own
            # backends (the GPU script's random full-size pipeline), so it stands in for that choice.
            catalogue._engine = lambda *a, **k: engine
        clock = Clock(args.verbose)
        t0_epoch = time.time()
        summary = run_catalogue(settings, options, on_progress=clock)
        seconds = time.perf_counter() - clock.t0
        times = image_times(out, t0_epoch)
        name = f"ray {args.ray}, {args.workers} worker(s)" if args.ray else f"local, {args.workers} worker(s)"
        row = summarise(name, summary.units, seconds, times, summary)
        row["report"] = summary.report and "qc_report.html"
        return row


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray", default=None, help="local, auto or ADDRESS: RayEngine instead of LocalEngine")
    ap.add_argument("--platforms", default="taobao", help="one platform: one image per unit")
    ap.add_argument("--cap", type=int, default=3, help="most takes per unit (first and repairs)")
    ap.add_argument("--render-side", type=int, default=1024)
    ap.add_argument("--render-batch", type=int, default=4)
    ap.add_argument("--no-photos", action="store_true", help="every product generated, none composited")
    ap.add_argument("--verbose", action="store_true", help="echo the progress lines")
    ap.add_argument("--out", default=None, help="write the result row as JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load = os.getloadavg()
    row = run(args)
    row["machine"] = f"{os.cpu_count()} CPUs, load {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=1))
    print(json.dumps(row))
    print(
        f"\n{row['run']}: {row['units']} units, {row['images']} images in {row['seconds']} s · "
        f"{row['images_per_s']} images/s · first image {row['first_image_s']} s · "
        f"3,600 units ≈ {row['projected_3600_units_s'] / 60:.0f} min ({row['machine']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
