"""The catalogue run: product rows → units → engine → records → exports → QC report (and product clips).

    summary = run_catalogue(settings, CatalogueOptions(catalogue="products.csv", out="out/"), on_progress=print)

Rows are streamed twice: once to count the units (and report every bad row by its line), once to feed the
engine, lazily. A unit is one render: a product, a scene, and the platforms that share its aspect and background
rule; each platform's image is resized from it. A unit whose records and images exist is skipped, so a killed
run given again finishes the rest and makes nothing twice. Grade routing is in the records: A is output, B and
C (after repairs up to the cap) go to review.jsonl; qc_report.html shows every C with its reasons.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from agent.catalogue_engine import Engine, LocalEngine
from agent.catalogue_records import Records
from agent.catalogue_unit import Unit, UnitContext, UnitRecord
from agent.rundir import is_temp_file
from agent.runlock import run_lock
from agent.settings import RunSettings
from tools.critics.inputs import CritiqueConfig
from tools.errors import SettingsError
from tools.files import write_json
from tools.platforms import Platform, aspect_key, load_platforms
from tools.products import Product, RowError, read_products, sku_slug
from tools.scene_templates import main_first, scenes_for

__all__ = ["CatalogueOptions", "CatalogueSummary", "run_catalogue"]

DEFAULT_PLATFORMS = ["taobao", "jd", "amazon", "instagram"]


class CatalogueOptions(BaseModel):
    """What `main.py catalogue` was asked for (the model settings are the RunSettings beside it)."""

    catalogue: str = Field(description="CSV, XLSX or JSONL with sku, name, category (and optional columns).")
    out: str = Field(description="The catalogue folder.")
    images: str | None = Field(default=None, description="Folder the rows' `image` paths are relative to.")
    scenes: list[str] = Field(
        default_factory=list, description="Scenes for every row; empty: the category's."
    )
    platforms: list[str] = Field(default_factory=lambda: list(DEFAULT_PLATFORMS))
    brand: str | None = Field(default=None, description="brand.yaml: palette, font, copy colours and corner.")
    templates: str | None = Field(default=None, description="A folder of <category>/<scene>.j2 of one's own.")
    workers: int | None = Field(default=None, ge=1, le=256)  # None: 1 here, one per GPU on a Ray cluster
    ray: str | None = Field(default=None, description="auto, local or a Ray address: run the units on Ray.")
    video: bool = Field(default=False, description="One short clip per SKU from its best image.")
    cap: int = Field(default=3, ge=1, le=10, description="Most takes per render (the first and its repairs).")
    render_side: int = Field(
        default=1024, ge=64, le=4096, description="Long side of a render before resizing."
    )
    shadow: bool = Field(
        default=True,
        description="False: main images on white with no shadow (--no-shadow; also brand.yaml `shadow: none` "
        "and a platform preset's `shadow: false`).",
    )


class CatalogueSummary(BaseModel):
    out: str
    rows: int = 0
    bad_rows: list[str] = Field(default_factory=list)
    units: int = 0
    units_skipped: int = 0
    images: int = 0
    grades: dict[str, int] = Field(default_factory=dict)
    clips: int = 0
    seconds: float = 0.0
    report: str = ""


def _render_size(platforms: list[Platform], side: int) -> tuple[int, int]:
    big = max(platforms, key=lambda p: p.width * p.height)
    scale = min(1.0, side / max(big.width, big.height))
    return max(16, round(big.width * scale / 16) * 16), max(16, round(big.height * scale / 16) * 16)


def _seed(run_seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_seed}:{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


class _Plan:
    """Turns rows into units: the scenes and platforms of each, grouped into shared renders."""

    def __init__(self, options: CatalogueOptions, settings: RunSettings):
        self.options, self.settings = options, settings
        self.platforms = load_platforms(options.platforms)
        self.shadow = options.shadow
        if options.brand:
            from tools.brand import load_brand

            self.shadow = self.shadow and load_brand(options.brand).shadow != "none"

    def units(self, product: Product) -> list[Unit]:
        o = self.options
        # A category's own scenes start with the one its main image is made in; a user's list is kept in order.
        scenes = product.scenes or o.scenes or main_first(scenes_for(product.category, o.templates))
        platforms = load_platforms(product.platforms) if product.platforms else self.platforms
        slug = sku_slug(product.sku)
        out = []
        for i, scene in enumerate(dict.fromkeys(scenes)):
            groups: dict[str, list[Platform]] = {}
            for p in platforms:
                white = i == 0 and p.background == "white"
                ratio = aspect_key(p).split("-")[0]
                # A main with no shadow cannot share its render with one that has a shadow.
                bare = "-noshadow" if white and not (self.shadow and p.shadow) else ""
                groups.setdefault(f"{ratio}-{'white' if white else 'any'}{bare}", []).append(p)
            for group, members in groups.items():
                key = f"{slug}/{scene}/{group}"
                w, h = _render_size(members, o.render_side)
                out.append(
                    Unit(
                        key=key,
                        sku=product.sku,
                        slug=slug,
                        product=product,
                        scene=scene,
                        platforms=[p.name for p in members],
                        width=w,
                        height=h,
                        seed=_seed(self.settings.seed, key),
                        white="-white" in group,
                        main=i == 0,
                        shadow=not group.endswith("-noshadow"),
                    )
                )
        return out

    def rows(self) -> Iterator[Product | RowError]:
        for item in read_products(self.options.catalogue):
            if isinstance(item, Product):
                try:
                    if item.platforms:
                        load_platforms(item.platforms)
                except SettingsError as e:
                    item = RowError(line=item.line, sku=item.sku, message=str(e))
            yield item


class _Progress:
    """Live lines: units done of all, per grade, images/s and time left (from this run's own pace)."""

    def __init__(self, total: int, skipped: int, say: Callable[[str], None] | None):
        self.total, self.done, self.made_units = total, skipped, 0
        self.images, self.grades = 0, {"A": 0, "B": 0, "C": 0}
        self.say, self.t0, self.last = say, time.perf_counter(), 0.0

    def unit(self, records: list[UnitRecord]) -> None:
        self.done += 1
        self.made_units += 1
        self.images += len(records)
        for r in records:
            self.grades[r.grade] += 1
        now = time.perf_counter()
        if self.say and (now - self.last >= 1.0 or self.done == self.total):
            self.last = now
            self.say(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.t0, 1e-6)
        left = (self.total - self.done) * elapsed / max(self.made_units, 1)
        g = self.grades
        return (
            f"units {self.done}/{self.total} · A {g['A']} B {g['B']} C {g['C']} · "
            f"{self.images / elapsed:.2f} images/s · {int(left // 60)}:{int(left % 60):02d} left"
        )


def _engine(options: CatalogueOptions, settings: RunSettings, work: bool = True) -> Engine:
    """The engine that makes the units. On this machine its image model starts loading now when there is work
    (the weights copied to the GPU while the libraries import, tools/weight_stage.py), as a film's does."""
    if options.ray is None:
        backends = settings.backends()
        if work and hasattr(backends.image, "preload"):
            backends.image.preload()
        return LocalEngine(workers=options.workers, backends=backends)
    try:
        from agent.catalogue_ray import RayEngine
    except ImportError as e:
        raise SettingsError(f"--ray needs Ray installed (pip install -e '.[ray]'): {e}") from None
    return RayEngine(address=options.ray, workers=options.workers)


def _check(options: CatalogueOptions) -> None:
    """What is wrong with the options themselves, before any row is read or anything is made."""
    if options.images and not Path(options.images).is_dir():
        raise SettingsError(f"--images {options.images} is not a folder")
    if options.brand:
        from tools.brand import load_brand

        load_brand(options.brand)
    load_platforms(options.platforms)
    if options.templates:
        scenes_for("default", options.templates)


def run_catalogue(
    settings: RunSettings,
    options: CatalogueOptions,
    on_progress: Callable[[str], None] | None = None,
    wait: bool = False,
) -> CatalogueSummary:
    """Make every (sku, scene, platform) image not yet made; write the exports, the report and the manifest.

    One process at a time works on a catalogue folder: another one's run raises RunLockedError naming it, or
    with `wait` is waited for (said through `on_progress`).
    """
    t0 = time.perf_counter()
    _check(options)
    plan = _Plan(options, settings)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out, wait=wait, on_wait=on_progress):
        _clean_temp_files(out)
        summary = _run(settings, options, plan, out, on_progress)
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary


def _clean_temp_files(out: Path) -> None:
    """Remove what a killed run's writes left beside its images and exports (".studio.png.XXXX.tmp"); the
    lock is held, so no other run or redo of this folder is writing."""
    for p in out.rglob(".*"):
        if is_temp_file(p):
            p.unlink(missing_ok=True)


def _run(
    settings: RunSettings,
    options: CatalogueOptions,
    plan: _Plan,
    out: Path,
    on_progress: Callable[[str], None] | None,
) -> CatalogueSummary:
    summary = CatalogueSummary(out=str(out))
    ctx = UnitContext(
        settings=settings.model_dump(),
        critique=settings.config(CritiqueConfig),
        out_dir=str(out.resolve()),
        images_dir=options.images or str(Path(options.catalogue).resolve().parent),
        brand_path=options.brand,
        templates_dir=options.templates,
        cap=options.cap,
    )
    with Records(out) as records:
        write_json(out / "manifest.json", _manifest(options, settings, records))
        records.set_meta("context", ctx.model_dump_json())
        done = records.done_keys()
        _count(plan, records, done, summary, on_progress)
        progress = _Progress(summary.units, summary.units_skipped, on_progress)
        engine = _engine(options, settings, work=summary.units > summary.units_skipped)
        _make(engine, plan, ctx, records, done, progress)
        records.export()
        if options.video:
            summary.clips = _clips(settings, records, out)
        from agent.catalogue_report import write_report

        summary.report = str(write_report(records, out))
        write_json(out / "manifest.json", _manifest(options, settings, records))
        summary.grades = records.grade_counts()
        summary.images = sum(summary.grades.values())
    return summary


def _count(
    plan: _Plan,
    records: Records,
    done: set[tuple[str, str, str]],
    summary: CatalogueSummary,
    on_progress: Callable[[str], None] | None,
) -> None:
    """The first pass over the rows: every bad row said, every product recorded, the units counted."""
    out = Path(summary.out)
    records.db.execute("begin")  # the products table in one transaction, not one per row
    for item in plan.rows():
        if isinstance(item, RowError):
            summary.bad_rows.append(str(item))
            if on_progress:
                on_progress(str(item))
            continue
        summary.rows += 1
        records.add_product(item.sku, sku_slug(item.sku), item.line)
        for unit in plan.units(item):
            summary.units += 1
            summary.units_skipped += _is_done(unit, done, out)
    records.db.execute("commit")
    if summary.rows == 0:
        raise SettingsError(
            f"catalogue {plan.options.catalogue}: no usable rows ({len(summary.bad_rows)} bad)"
        )


def _make(
    engine: Engine,
    plan: _Plan,
    ctx: UnitContext,
    records: Records,
    done: set[tuple[str, str, str]],
    progress: _Progress,
) -> None:
    """The second pass: the units not yet made, fed lazily to the engine; their records written as they come."""
    out = Path(ctx.out_dir)
    waiting: dict[str, tuple[Unit, list[UnitRecord]]] = {}

    def todo() -> Iterator[Unit]:
        for item in plan.rows():
            if isinstance(item, Product):
                for unit in plan.units(item):
                    if not _is_done(unit, done, out):
                        waiting[unit.key] = (unit, [])
                        yield unit

    def on_record(record: UnitRecord) -> None:
        # All records of a unit go in together, so a kill never leaves half a unit recorded.
        unit, got = waiting[record.unit]
        got.append(record)
        if len(got) == len(unit.platforms):
            del waiting[record.unit]
            records.add(got, unit)
            progress.unit(got)

    engine.run(todo(), ctx, on_record)


def _is_done(unit: Unit, done: set[tuple[str, str, str]], out: Path) -> bool:
    return all(
        (unit.sku, unit.scene, p) in done and (out / p / unit.slug / f"{unit.scene}.png").is_file()
        for p in unit.platforms
    )


def _manifest(options: CatalogueOptions, settings: RunSettings, records: Records) -> dict:
    backends = settings.backends()
    return {
        "kind": "catalogue",
        "options": options.model_dump(),
        "image_backend": backends.image_why,
        "model": f"{backends.image.name}:{backends.image.model}",
        "seed": settings.seed,
        "slugs": dict(records.slugs()),
        "grades": records.grade_counts(),
    }


def _clips(settings: RunSettings, records: Records, out: Path) -> int:
    """One short clip per SKU from its best image (the run's video backend), skipped where it exists."""
    from tools.animate import AnimateRequest

    video = settings.backends().video
    made = 0
    for row in records.best_per_sku():
        target = out / "video" / f"{row['slug']}.mp4"
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        from tools.images import open_image

        w, h = open_image(out / row["path"]).size
        scale = min(1.0, 1080 / max(w, h))
        video.animate(
            AnimateRequest(
                image_path=str((out / row["path"]).resolve()),
                output_path=str(target.resolve()),
                prompt=row["prompt"],
                duration=4.0,
                fps=24,
                width=round(w * scale / 2) * 2,
                height=round(h * scale / 2) * 2,
                motion="push-in",
                seed=row["seed"],
            )
        )
        made += 1
    return made
