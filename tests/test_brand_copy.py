"""The brand file and the copy laid out from it: price tags, promo badges and claims drawn with the project's
font (CJK included), kept off the product, and read back by the OCR critic."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.product_images import bottle_photo
from tools.brand import Brand, load_brand, rgb, rgba
from tools.composite import place
from tools.copy_layout import check_copy, lay_out, price_text
from tools.critics.inputs import CritiqueRequest, Thresholds
from tools.critics.ocr import ocr_critic
from tools.cutout import cut_out
from tools.errors import SettingsError

BRAND = """\
palette: ["#0A3D62", "#F5F6FA", "#E58E26"]
font: Bold
corner: top-left
size: 0.08
currency: "$"
text_colours: {price: "#FFFFFF", promo: "#0A3D62"}
badge_colours: {price: "#0A3D62", promo: "#E58E26", claim: "#F5F6FAE0"}
"""


def _brand(tmp_path, text):
    path = tmp_path / "brand.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_brand(tmp_path):
    brand = load_brand(_brand(tmp_path, BRAND))
    assert brand.palette == ["#0A3D62", "#F5F6FA", "#E58E26"]
    assert brand.corner == "top-left" and brand.size == 0.08 and brand.currency == "$"
    assert brand.text_colours.price == "#FFFFFF" and brand.text_colours.claim == "#1A1A1A"  # default kept
    assert rgba(brand.badge_colours.claim) == (245, 246, 250, 224) and rgb("#0a3d62") == (10, 61, 98)
    assert load_brand(_brand(tmp_path, "")) == Brand()  # an empty file is all defaults


def test_brand_font_file_relative_to_the_brand_file(tmp_path):
    from tools.fonts import font_path

    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "brand.ttc").write_bytes(font_path().read_bytes())
    brand = load_brand(_brand(tmp_path, "font: fonts/brand.ttc\n"))
    assert brand.font == str((tmp_path / "fonts" / "brand.ttc").resolve())
    assert brand.pil_font(20).getlength("199") > 0


@pytest.mark.parametrize(
    "text, message",
    [
        ('palette: ["#E4002B", "#GGG"]', r"field palette\[1\]: '#GGG' is not a hex colour"),
        ("palette: []", "field palette: List should have at least 1 item"),
        ("corner: middle", "field corner: Input should be 'top-left'"),
        ('text_colours: {price: "#fff"}', "field text_colours.price: '#fff' is not a hex colour"),
        ('badge_colours: {sale: "#000000"}', "field badge_colours.sale: unknown field; the fields are price"),
        ("colour: red", "field colour: unknown field; the fields are palette, font, corner"),
        ("size: 2", "field size: Input should be less than or equal to 0.3"),
        ("font: nosuch.ttf", "field font: 'nosuch.ttf' is neither a font file nor a weight"),
        ("palette: [1, 2", "is not valid YAML at line 1"),
        ("- a\n- b", "must be a mapping of fields"),
    ],
)
def test_malformed_brand_file_names_file_and_field(tmp_path, text, message):
    path = _brand(tmp_path, text)
    with pytest.raises(SettingsError, match=message) as err:
        load_brand(path)
    assert str(path) in str(err.value)


def test_missing_brand_file(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_brand(tmp_path / "none.yaml")


def test_price_text():
    assert price_text(199) == "¥199" and price_text("199") == "¥199" and price_text(19.9, "$") == "$19.9"
    assert price_text("$129") == "$129" and price_text(" 129元 ") == "129元"
    with pytest.raises(ValueError, match="empty"):
        price_text(" ")


@pytest.fixture(scope="module")
def scene_with_product():
    scene = Image.new("RGB", (800, 800), (70, 90, 120))
    return place(scene, cut_out(bottle_photo()), 0.6, "bottom")


def test_copy_in_the_brand_corner_with_its_colours(scene_with_product):
    image, mask = scene_with_product
    brand = Brand(corner="top-right")
    out, texts = lay_out(image, price=199, promo="限时特惠", claims=["40 小时续航"], brand=brand, avoid=mask)
    assert texts == ["¥199", "限时特惠", "40 小时续航"]
    changed = np.abs(np.asarray(out, dtype=int) - np.asarray(image, dtype=int)).sum(-1) > 0
    ys, xs = np.nonzero(changed)
    tag = changed[:400, 400:]
    assert tag.sum() > 0.5 * changed.sum()  # the price tag and promo badge are in the top-right quarter
    # the price tag's fill is the brand's badge colour
    a = np.asarray(out)
    assert (np.all(a == rgb(brand.badge_colours.price), axis=-1) & changed).sum() > 2000
    # nothing is drawn over the product
    assert not (changed & (np.asarray(mask) > 0)).any()


def test_copy_moves_off_the_product(scene_with_product):
    image, mask = scene_with_product
    # a product filling the left: the brand's top-left corner would cover it
    big = Image.new("L", image.size, 0)
    big.paste(255, (0, 0, 400, 800))
    out, texts = lay_out(
        image, price="$129", promo="Limited offer", brand=Brand(corner="top-left"), avoid=big
    )
    changed = np.abs(np.asarray(out, dtype=int) - np.asarray(image, dtype=int)).sum(-1) > 0
    assert changed.any() and not changed[:, :400].any()
    plain, _ = lay_out(image, price="$129", promo="Limited offer", brand=Brand(corner="top-left"))
    assert (np.abs(np.asarray(plain, dtype=int) - np.asarray(image, dtype=int)).sum(-1) > 0)[:200, :300].any()


def test_cjk_draws_real_glyphs():
    blank = Image.new("RGB", (400, 300), "white")
    a, _ = lay_out(blank, promo="限时特惠")
    b, _ = lay_out(blank, promo="限时特价")
    # tofu boxes would make the two badges identical
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_ocr_critic_reads_the_copy_back(scene_with_product):
    pytest.importorskip("rapidocr")
    image, mask = scene_with_product
    out, texts = lay_out(
        image,
        price="¥199",
        promo="限时特惠",
        claims=["Free shipping over $50", "降噪 40 小时续航"],
        avoid=mask,
    )
    th = Thresholds()
    for text in texts:
        req = CritiqueRequest(image_path="-", prompt="", width=800, height=800, expect_text=text)
        result = ocr_critic(out, req, th)
        assert result.passed, (text, result.issues)
    assert check_copy(out, texts).passed
    # and the check is not blind: the bare scene does not read back as the copy
    bare = check_copy(image, texts)
    assert not bare.passed and bare.scores["ocr.cer"] > 0.5


def test_small_image_copy_still_reads(tmp_path):
    pytest.importorskip("rapidocr")
    image = Image.new("RGB", (320, 320), (230, 230, 230))
    out, texts = lay_out(image, price="¥59", promo="新品")
    assert check_copy(out, texts).passed


def test_small_badge_on_a_large_frame_reads_back():
    pytest.importorskip("rapidocr")
    image = Image.new("RGB", (1080, 1350), (230, 225, 220))
    out, texts = lay_out(image, price="¥59", promo="新品", claims=["纯棉"])
    result = check_copy(out, texts)
    assert result.passed and result.scores["ocr.cer"] == 0.0, result.issues


def test_a_price_tag_on_a_2000_px_main_image_reads_back_whole():
    """On this 2000 px frame rapidocr misses the badge whole or reads "59" in the 60% crops; at 1024 px it
    reads "$59", so the copy check reads that size too before it calls the copy wrong."""
    from tools.draft_panel import render_panel

    prompt = (
        "Outdoor fashion photograph of Linen Shirt, sand, made of linen, worn on a city street in golden-hour "
        "light, natural pose, background softly blurred, the product in sharp focus"
    )
    scene, _ = render_panel(width=1024, height=1024, seed=448734088, prompt=prompt)
    image, texts = lay_out(scene.resize((2000, 2000), Image.Resampling.LANCZOS), price="$59", brand=Brand())
    result = check_copy(image, texts)
    assert texts == ["$59"] and result.passed and result.scores["ocr.cer"] == 0.0, result.issues


def test_copy_is_read_in_its_plates_and_the_plates_are_not_blind(scene_with_product):
    """With the plates lay_out drew, each text is read there by the recogniser alone; a plate that does not hold
    its text (the bare scene) falls back to searching the whole image, and still fails."""
    pytest.importorskip("rapidocr")
    image, mask = scene_with_product
    out, texts, boxes = lay_out(
        image, price="¥199", promo="限时特惠", claims=["Free shipping over $50"], avoid=mask, with_boxes=True
    )
    assert len(boxes) == len(texts) == 3
    result = check_copy(out, texts, boxes=boxes)
    assert result.passed and result.scores["ocr.read_in_plates"] == 1.0 and result.scores["ocr.cer"] == 0.0
    bare = check_copy(image, texts, boxes=boxes)
    assert not bare.passed and bare.scores["ocr.read_in_plates"] == 0.0 and bare.scores["ocr.cer"] > 0.5
    # a plate that holds other text is caught too: the boxes swapped read the wrong words
    swapped = check_copy(out, texts, boxes=[boxes[1], boxes[0], boxes[2]])
    assert swapped.scores["ocr.read_in_plates"] == 0.0
