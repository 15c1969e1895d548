"""The catalogue with the offline draft backend: marketplace mains without a photo drawn on exact white and
graded by their merits (the white check as strict as ever), and a placed product shown once in its draft scene."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from catalogue_photos import headphones
from PIL import Image

from agent.catalogue import CatalogueOptions, run_catalogue
from agent.catalogue_takes import Subject, render_take
from agent.catalogue_unit import Unit, UnitContext
from agent.settings import RunSettings
from tools.critics.inputs import CritiqueConfig
from tools.draft_panel import render_panel
from tools.draft_white import asks_white, product_colour
from tools.generate_image import DraftBackend
from tools.products import Product, sku_slug


def _records(out: Path) -> dict[tuple[str, str, str], dict]:
    db = sqlite3.connect(out / "records.db")
    db.row_factory = sqlite3.Row
    rows = {(r["sku"], r["scene"], r["platform"]): dict(r) for r in db.execute("select * from records")}
    db.close()
    return rows


def _catalogue(tmp_path: Path, rows: str, **options) -> tuple[Path, dict]:
    (tmp_path / "p.csv").write_text("sku,name,category,color\n" + rows, encoding="utf-8")
    out = tmp_path / "out"
    settings = RunSettings(run_dir=str(out), image_backend="draft", video_backend="motion")
    run_catalogue(settings, CatalogueOptions(catalogue=str(tmp_path / "p.csv"), out=str(out), **options))
    return out, _records(out)


def test_a_photo_less_amazon_main_in_draft_mode_is_on_exact_white_and_graded_by_its_merits(tmp_path):
    out, rows = _catalogue(
        tmp_path,
        "M-1,Ceramic Mug,home,red\nW-1,Smart Watch,electronics,black\n",
        scenes=["studio"],
        platforms=["amazon"],
        render_side=384,
        cap=1,
    )
    for sku, kind in (("M-1", "mug"), ("W-1", "watch")):
        r = rows[sku, "studio", "amazon"]
        assert r["grade"] in ("A", "B"), (sku, r["grade"], r["issues"])
        scores, issues = json.loads(r["scores"]), json.loads(r["issues"])
        assert scores["amazon.white_border"] == 1.0 and scores["amazon.fill"] >= 0.85
        assert (r["grade"] == "B") == bool(issues)  # a B says why; an A has nothing against it
        assert r["model"] == "draft:draft-panel-v1" and r["takes"] == 1
        img = np.asarray(Image.open(out / r["path"]).convert("RGB"))
        assert img.shape[:2] == (2000, 2000)
        white = (img == 255).all(axis=2)
        # Exact white everywhere but the subject and its shadow: the frame's border, and the whole top band
        # above the subject's box.
        ys, xs = np.nonzero(~white)
        assert white[:20].all() and white[-20:].all() and white[:, :20].all() and white[:, -20:].all()
        assert white[: ys.min()].all() and white[:, : xs.min()].all() and white[:, xs.max() + 1 :].all()
        # The subject is there and in the product's colour (a red mug is red, a black watch dark).
        body = img[~white].reshape(-1, 3).astype(int)
        assert len(body) > 0.15 * white.size
        red = (body[:, 0] > 150) & (body[:, 1] < 80) & (body[:, 2] < 80)
        dark = body.sum(axis=1) < 180
        assert (red if kind == "mug" else dark).mean() > 0.3, sku
        # A soft contact shadow under it: grey pixels below the body's lowest row of colour.
        assert (
            (img[ys.max() - 5 : ys.max() + 1] < 255).all(axis=2) & ~white[ys.max() - 5 : ys.max() + 1]
        ).any()


def test_a_main_that_is_not_on_white_still_fails_the_white_check(tmp_path):
    # A user's white.j2 that asks for a scene: the draft draws the scene, and the platform check says so.
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "white.j2").write_text(
        "Lifestyle photograph of {{ product.name }} on a kitchen table by a window, morning light",
        encoding="utf-8",
    )
    out, rows = _catalogue(
        tmp_path,
        "M-1,Ceramic Mug,home,red\n",
        scenes=["studio"],
        platforms=["amazon"],
        render_side=256,
        cap=1,
        templates=str(templates),
    )
    r = rows["M-1", "studio", "amazon"]
    assert r["grade"] == "C" and r["takes"] == 1
    assert any("background is not pure white" in i for i in json.loads(r["issues"]))
    assert json.loads(r["scores"])["amazon.white_border"] < 0.98


def test_the_white_request_is_read_from_the_prompt_and_not_from_a_white_wall():
    assert asks_white("Product photograph of a mug, isolated on a pure white background (255,255,255)")
    assert asks_white("蓝牙音箱，白底图，正面")
    assert not asks_white("She walks past a white background wall in the rain")
    assert not asks_white("Studio product photograph of a lamp, on a seamless neutral backdrop")
    # The colour is the product's, never the background's: a black speaker on white is black.
    assert product_colour("Product photograph of 蓝牙音箱, 黑色, isolated on a pure white background") == (
        38,
        38,
        42,
    )
    assert product_colour("Product photograph of a lamp, isolated on a pure white background") is None


def test_a_placed_product_is_the_only_product_in_its_draft_scene(tmp_path):
    """The draft scene behind a placed photo is the place alone: the same panel with the subject's silhouette
    drawn differs from it where the silhouette would be, outside the product's mask, and nowhere else."""
    (tmp_path / "images").mkdir()
    headphones().save(tmp_path / "images" / "headphones.png")
    product = Product(sku="EL-1", name="Wireless Headphones", category="electronics", color="black",
                      image="headphones.png", line=2)  # fmt: skip
    slug = sku_slug("EL-1")
    w, h = 288, 360
    unit = Unit(key=f"{slug}/lifestyle/4x5-any", sku="EL-1", slug=slug, product=product, scene="lifestyle",
                platforms=["instagram"], width=w, height=h, seed=0)  # fmt: skip
    ctx = UnitContext(settings={}, critique=CritiqueConfig(), out_dir=str(tmp_path / "out"),
                      images_dir=str(tmp_path / "images"))  # fmt: skip
    subject = Subject.load(unit, ctx)
    assert subject.cutout is not None
    backends = type("Backends", (), {"image": DraftBackend()})()
    path = tmp_path / "take-1.png"
    take = render_take(unit, subject, backends, path, 1, subject.prompt, subject.negative, unit.seed, None)
    assert take.parameters["drawn"] == "none" and take.parameters["composite"] == "cutout-placed"
    final = np.asarray(Image.open(path).convert("RGB")).astype(int)
    mask = np.asarray(Image.open(path.with_suffix(".product.png"))) > 0
    scene = np.asarray(Image.open(path.with_suffix(".scene.png")).convert("RGB")).astype(int)

    # The same panel (shot, seed, size) with the subject's silhouette drawn, as the scene was drawn before.
    shot = subject.shot(unit).model_copy(update={"kind": "establishing", "prompt": subject.prompt})
    drawn, params = render_panel(width=w, height=h, seed=unit.seed, prompt=subject.prompt, shot=shot)
    with_silhouette = np.asarray(drawn).astype(int)
    x0, y0, x1, y1 = params["subject_box"]
    where = np.zeros(mask.shape, bool)
    where[y0:y1, x0:x1] = True
    beside = where & ~mask
    assert (
        beside.sum() > 0.01 * w * h
    )  # here a silhouette would stand beside the product, not hidden behind it
    diff = np.abs(scene - with_silhouette).sum(axis=2)
    # No second product: where the silhouette would be, the scene has none of it ...
    assert (diff[beside] > 30).mean() > 0.3
    # ... and it is the same place everywhere else (the silhouette's own shadow just under its box aside).
    far = ~where
    far[y1 - h // 30 : y1 + h // 25, max(0, x0 - w // 8) : x1 + w // 8] = False
    assert (diff[far] == 0).mean() > 0.99
    # The final picture is that scene wherever the product and its contact shadow are not.
    rows = np.arange(h)[:, None]
    above_shadow = beside & (rows < np.nonzero(mask.any(axis=1))[0].max() - h // 10)
    assert (np.abs(final - scene).sum(axis=2)[above_shadow] == 0).mean() > 0.95


def test_a_categorys_main_image_is_made_in_its_product_alone_scene():
    """Amazon's white main of a headphone is studio.png, not flat_lay.png; a user's own order is kept."""
    from agent.catalogue import _Plan

    settings = RunSettings(run_dir="unused", image_backend="draft")
    plan = _Plan(CatalogueOptions(catalogue="p.csv", out="o", platforms=["amazon", "taobao"]), settings)
    cases = {"electronics": "studio", "home": "product_only", "beauty": "minimal", "toys": "studio"}
    for category, main in cases.items():
        units = plan.units(Product(sku="S", name="Thing", category=category, line=2))
        assert units[0].scene == main and units[0].main and units[0].white, category
        white = [u for u in units if u.white]
        assert [u.scene for u in white] == [main] and white[0].platforms == ["amazon"], category
    mine = Product(sku="S", name="Thing", category="electronics", scenes=["lifestyle", "studio"], line=2)
    assert [u.scene for u in plan.units(mine) if u.white] == ["lifestyle"]
