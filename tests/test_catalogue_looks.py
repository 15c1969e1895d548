"""Catalogue draft scenes in the row's colour and the brand's palette, the studio look as a seamless sweep, and
main images on white with no shadow (brand.yaml `shadow: none`, `--no-shadow`, a preset's `shadow: false`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from product_images import bottle_photo

from agent.catalogue import CatalogueOptions, _Plan, run_catalogue
from agent.settings import RunSettings
from main import build_parser
from tools.brand import load_brand, palette_phrase
from tools.composite import white_product_shot
from tools.critics.brand_colour import brand_colour
from tools.cutout import cut_out
from tools.draft_panel import render_panel
from tools.draft_white import COLOUR_WORDS, render_white
from tools.products import Product
from tools.scene_look import scene_look
from tools.scene_templates import scene_prompt

PALETTE = ["#1F3A5F", "#F2A541", "#FFFFFF"]  # tests/data/catalogue/brand.yaml's
RED = np.array(COLOUR_WORDS["red"][1])


def _records(out: Path) -> list[dict]:
    db = sqlite3.connect(out / "records.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("select * from records order by sku, scene, platform")]
    db.close()
    return rows


def _run(tmp_path: Path, rows: str, brand: str | None = None, **options) -> list[dict]:
    (tmp_path / "p.csv").write_text("sku,name,category,color,image\n" + rows, encoding="utf-8")
    if brand is not None:
        (tmp_path / "brand.yaml").write_text(brand, encoding="utf-8")
    out = tmp_path / "out"
    settings = RunSettings(run_dir=str(out), image_backend="draft", video_backend="motion")
    run_catalogue(
        settings,
        CatalogueOptions(
            catalogue=str(tmp_path / "p.csv"),
            out=str(out),
            images=str(tmp_path),
            brand=str(tmp_path / "brand.yaml") if brand is not None else None,
            **options,
        ),
    )
    return _records(out)


def _box_colour(img: Image.Image, box) -> np.ndarray:
    """The median colour of the middle of the drawn subject's box: its body."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    core = np.asarray(img.convert("RGB"))[
        y0 + h * 2 // 5 : y1 - h * 2 // 5, x0 + w * 2 // 5 : x1 - w * 2 // 5
    ]
    return np.median(core.reshape(-1, 3), axis=0)


# --- the row's colour and the brand palette ----------------------------------------------------------------------


def test_a_red_row_in_a_brand_palette_is_a_red_product_in_a_scene_of_the_brand_colours():
    mug = Product(sku="HO-9", name="Ceramic Mug", category="home", color="red", line=2)
    for scene in ("product_only", "kitchen", "living_room"):
        prompt = f"{scene_prompt(mug, scene)}, {palette_phrase(PALETTE)} for the set and the props"
        img, drawn = render_panel(width=384, height=384, seed=7, prompt=prompt)
        assert np.abs(_box_colour(img, drawn["subject_box"]) - RED).max() <= 24, scene  # the product is red
        check = brand_colour(img, PALETTE)
        # on brand: not flagged (at least 40% of the picture within ΔE2000 15 of a palette colour, the red
        # product, 30-40% of the frame, being none of them)
        assert check.passed and not check.issues and check.scores["brand.on_brand_share"] >= 0.45, scene
        # Without the brand the same scene keeps its own look, nearer the palette only by chance.
        plain, _ = render_panel(width=384, height=384, seed=7, prompt=scene_prompt(mug, scene))
        share = brand_colour(plain, PALETTE).scores["brand.on_brand_share"]
        assert share < check.scores["brand.on_brand_share"], scene


def test_the_catalogue_names_the_palette_in_its_scene_prompts_and_its_draft_scenes_pass_the_brand_check(
    tmp_path,
):
    rows = _run(tmp_path, "HO-9,Ceramic Mug,home,red,\nEL-9,蓝牙音箱,electronics,白色,\n",
                brand=f"palette: {json.dumps(PALETTE)}\n", platforms=["instagram"])  # fmt: skip
    assert len(rows) == 6
    for r in rows:
        assert (
            "brand colours #1F3A5F blue, #F2A541 yellow, #FFFFFF white for the set and the props"
            in r["prompt"]
        )
        scores = json.loads(r["scores"])
        assert scores["brand.on_brand_share"] >= 0.4 and not any(
            "off-brand" in i for i in json.loads(r["issues"])
        )


def test_a_main_on_white_keeps_pure_white_whatever_the_palette(tmp_path):
    rows = _run(tmp_path, "HO-9,Ceramic Mug,home,red,\n", brand=f"palette: {json.dumps(PALETTE)}\n",
                platforms=["amazon"], scenes=["product_only"])  # fmt: skip
    (main,) = rows
    assert "brand colours" not in main["prompt"]
    with Image.open(tmp_path / "out" / main["path"]) as im:
        a = np.asarray(im.convert("RGB"))
    assert (a[:10] == 255).all()


# --- the studio look -------------------------------------------------------------------------------------------


def test_the_studio_scene_is_a_seamless_sweep_not_a_room_with_a_window():
    phones = Product(sku="EL-9", name="Wireless Headphones", category="electronics", color="black", line=2)
    prompt = scene_prompt(phones, "studio")
    assert scene_look("", prompt, "hero").place == "sweep"
    assert (
        scene_look("INT. RECORDING STUDIO - NIGHT", "a singer at the microphone", "medium").place
        == "interior"
    )
    img, drawn = render_panel(width=512, height=512, seed=3, prompt=prompt)
    assert drawn["look"].startswith("sweep")
    a = np.asarray(img.convert("L"), dtype=np.float32)
    x0, y0, x1, y1 = drawn["subject_box"]
    wall = a[: int(512 * 0.6)].copy()
    wall[:, max(0, x0 - 8) : x1 + 8] = np.nan  # the product itself has edges; the wall around it has none
    # A room's window frame and mullions are hard edges across the wall; a sweep is a smooth gradient.
    steps = np.abs(np.diff(wall, axis=1))
    assert np.nanmax(steps) < 6 and np.nanmax(np.abs(np.diff(wall, axis=0))) < 6
    # The key light falls off across the frame: one side of the wall brighter than the other.
    assert abs(np.nanmean(wall[:, :60]) - np.nanmean(wall[:, -60:])) > 3
    # The product stands on the floor with a shadow under it: darker than the floor beside it.
    floor_y = y1 + 2
    under = a[floor_y : floor_y + 4, (x0 + x1) // 2 - 10 : (x0 + x1) // 2 + 10].mean()
    beside = a[floor_y : floor_y + 4, 5:25].mean()
    assert under < beside - 10
    # Not the room the old studio look drew: no window (a block of sky colour framed in the wall).
    room, room_drawn = render_panel(width=512, height=512, seed=3, prompt=prompt.replace("seamless", "plain")
                                    .replace("backdrop", "wall"))  # fmt: skip
    assert not room_drawn["look"].startswith("sweep")


# --- mains with no shadow --------------------------------------------------------------------------------------


def test_a_cutout_without_its_shadow_is_the_product_alone_on_pure_white():
    cut = cut_out(bottle_photo(shadow=True))
    assert cut.shadow
    bare = cut.without_shadow()
    assert not bare.shadow and bare.box[3] - bare.box[1] < cut.box[3] - cut.box[1]
    img, mask = white_product_shot(bare, (800, 800), 0.8)
    a, m = np.asarray(img), np.asarray(mask)
    assert (a[m == 0] == 255).all()  # every pixel that is not the product is exact white: no shadow
    with_shadow, m2 = white_product_shot(cut, (800, 800), 0.8)
    assert (np.asarray(with_shadow)[np.asarray(m2) == 0] < 250).any() or (np.asarray(m2) < 255).any()
    # the product's own pixels are the photo's: its label and body survive the cut
    assert np.asarray(bare.rgba)[..., 3].max() == 255


def test_a_draft_main_asked_for_no_shadow_has_none():
    prompt = "Product photograph of Ceramic Mug, red, isolated on a pure white background (255,255,255)"
    shaded, drawn = render_white(width=400, height=400, prompt=prompt)
    bare, _ = render_white(width=400, height=400, prompt=prompt + ", no props, no text, no shadow")
    x0, y0, x1, y1 = drawn["subject_box"]
    below = (slice(y1, 400), slice(0, 400))
    assert (np.asarray(shaded)[below] < 250).any()  # the contact shadow under the product
    assert (np.asarray(bare)[below] == 255).all()


def test_no_shadow_from_the_flag_the_brand_file_or_the_preset(tmp_path):
    args = build_parser().parse_args(["catalogue", "p.csv", "--out", "o", "--no-shadow"])
    assert args.no_shadow
    (tmp_path / "brand.yaml").write_text("shadow: none\n", encoding="utf-8")
    assert load_brand(tmp_path / "brand.yaml").shadow == "none"
    settings = RunSettings(run_dir=str(tmp_path), image_backend="draft")
    mug = Product(sku="HO-9", name="Ceramic Mug", category="home", color="red", line=2)

    def mains(**options) -> dict[str, bool]:
        plan = _Plan(
            CatalogueOptions(catalogue="p.csv", out="o", scenes=["product_only"], **options), settings
        )
        return {p: u.shadow for u in plan.units(mug) for p in u.platforms}

    assert mains(platforms=["amazon", "jd"]) == {"amazon": True, "jd": True}
    assert mains(platforms=["amazon", "jd"], shadow=False) == {"amazon": False, "jd": False}
    assert mains(platforms=["amazon"], brand=str(tmp_path / "brand.yaml")) == {"amazon": False}
    # taobao_white asks for no shadow: it does not share its render with JD's main, which may have one
    plan = _Plan(CatalogueOptions(catalogue="p.csv", out="o", scenes=["product_only"],
                                  platforms=["jd", "taobao_white"]), settings)  # fmt: skip
    units = plan.units(mug)
    assert sorted((u.platforms, u.shadow) for u in units) == [(["jd"], True), (["taobao_white"], False)]
    assert "no shadow" in scene_prompt(mug, "product_only", white=True, shadow=False)


def test_a_photo_main_with_no_shadow_is_made_on_pure_white_end_to_end(tmp_path):
    bottle_photo(shadow=True).save(tmp_path / "bottle.png")
    rows = _run(tmp_path, "BE-9,Face Serum,beauty,red,bottle.png\n", platforms=["amazon"], scenes=["minimal"],
                shadow=False)  # fmt: skip
    (main,) = rows
    with Image.open(tmp_path / "out" / main["path"]) as im:
        a = np.asarray(im.convert("RGB"))
    # the photo's shadow lay under and beside the bottle: the rows under the product are exact white now
    ys = np.nonzero((a < 250).any(axis=(1, 2)))[0]
    below = a[ys.max() + 1 :]
    assert below.size and (below == 255).all()
    assert main["grade"] in ("A", "B") and json.loads(main["scores"])["fidelity.ssim"] > 0.95


@pytest.mark.parametrize("text", ["shadow: no\n", "shadow: soft\n"])
def test_a_bad_shadow_in_the_brand_file_names_the_field(tmp_path, text):
    from tools.errors import SettingsError

    (tmp_path / "brand.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match="shadow"):
        load_brand(tmp_path / "brand.yaml")
