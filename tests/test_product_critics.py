"""The catalogue's critics: fidelity (the product's pixels kept), brand colour (ΔE against the palette) and the
technical critic on white backgrounds (a product on pure white passes; a blown-out subject fails)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageFilter

from evals.calibrate_critic import photo_scene, storyboard_panel
from tests.product_images import bottle_photo, textured_photo
from tools.composite import place, white_product_shot
from tools.critics.brand_colour import brand_colour, dominant_colours
from tools.critics.fidelity import fidelity
from tools.critics.inputs import CritiqueRequest, Thresholds
from tools.critics.technical import technical_critic
from tools.cutout import cut_out


@pytest.fixture(scope="module")
def bottle():
    return cut_out(bottle_photo())


@pytest.fixture(scope="module")
def bag():
    return cut_out(textured_photo())


def _scene(seed=0, size=(800, 600)):
    return photo_scene(random.Random(seed), size)


def _gain(img: Image.Image, g: float, offset: float = 0.0) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) * g + offset, 0, 255).astype(np.uint8))


# --- fidelity ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill, anchor", [(0.3, "center"), (0.6, "bottom"), (0.95, "left")])
def test_fidelity_passes_an_untouched_composite(bottle, bag, fill, anchor):
    for cutout in (bottle, bag):
        result, mask = place(_scene(), cutout, fill, anchor)
        r = fidelity(result, cutout, mask)
        assert r.passed and not r.issues, r.issues
        assert r.scores["fidelity.ssim"] > 0.999 and r.scores["fidelity.delta_e"] < 0.01


def test_fidelity_passes_the_white_main_and_a_saved_file(bottle, tmp_path):
    image, mask = white_product_shot(bottle, (1000, 1000))
    path = tmp_path / "main.png"
    image.save(path)
    assert fidelity(str(path), bottle, mask).passed


def _edit_product(result, mask, how):
    x0, y0, x1, y1 = mask.getbbox()
    crop = result.crop((x0, y0, x1, y1))
    out = result.copy()
    if how == "blur":
        out.paste(crop.filter(ImageFilter.GaussianBlur(1.0)), (x0, y0))
    elif how == "shift":
        out.paste(crop, (x0 + 2, y0))
    elif how == "recolour":
        a = np.asarray(result).copy()
        inside = np.asarray(mask) == 255
        a[inside] = a[inside][:, [1, 0, 2]]
        out = Image.fromarray(a)
    elif how == "tint":
        a = np.asarray(result).astype(int)
        inside = np.asarray(mask) == 255
        a[inside] = np.clip(a[inside] + [12, 0, -8], 0, 255)
        out = Image.fromarray(a.astype(np.uint8))
    elif how == "label":  # a small part redrawn: the label's text lines painted out
        a = np.asarray(result).copy()
        ys, xs = np.nonzero(np.asarray(mask) == 255)
        cy, cx = int(y0 + 0.52 * (y1 - y0)), (x0 + x1) // 2
        a[cy - 20 : cy + 20, cx - 30 : cx + 30] = 255
        out = Image.fromarray(a)
    return out


@pytest.mark.parametrize("how", ["blur", "shift", "recolour", "tint", "label"])
def test_fidelity_fails_a_changed_product(bottle, bag, how):
    for cutout in (bottle, bag):
        if how == "label" and cutout is bag:
            continue
        result, mask = place(_scene(), cutout, 0.6, "bottom")
        r = fidelity(_edit_product(result, mask, how), cutout, mask)
        assert r.passed is False, (how, r.scores)
        assert r.issues and all(i.category == "product" and i.critic == "fidelity" for i in r.issues)


def test_fidelity_fails_copy_over_the_product_and_an_empty_mask(bottle):
    result, mask = place(_scene(), bottle, 0.6, "bottom")
    covered = np.asarray(mask).copy()
    x0, y0, x1, y1 = mask.getbbox()
    covered[y0 : (y0 + y1) // 2, x0:x1] = 0  # a badge laid over the top half: the mask no longer covers it
    r = fidelity(result, bottle, Image.fromarray(covered))
    assert r.passed is False
    empty = fidelity(result, bottle, Image.new("L", result.size, 0))
    assert empty.passed is False and "not in the result" in empty.issues[0].reason
    with pytest.raises(ValueError, match="mask"):
        fidelity(result, bottle, Image.new("L", (10, 10), 0))


def test_fidelity_after_the_generative_path_keeps_the_photo(bottle, tmp_path):
    """A 'generated' background that also repainted the product: re-compositing puts the photo back."""
    from tools.composite import background_request

    req = background_request(bottle, (640, 480), "on a kitchen counter", output_path=tmp_path / "g.png")
    canvas = Image.open(req.init_image).convert("RGB")
    generated = _gain(canvas.filter(ImageFilter.GaussianBlur(3)), 0.8, 30)  # what a model might return
    assert fidelity(generated, bottle, place(generated, bottle, 0.6, "bottom")[1]).passed is False
    final, mask = place(generated, bottle, 0.6, "bottom")
    assert fidelity(final, bottle, mask).passed


# --- brand colour -----------------------------------------------------------------------------------------------

RED_WHITE = ["#E4002B", "#FFFFFF", "#1A1A1A"]
GREENS = ["#0B6E4F", "#08A045", "#6BBF59"]


def _flat(colours_shares, size=(400, 300)):
    """Vertical bands of colour with the given shares."""
    w, h = size
    img = Image.new("RGB", size)
    x = 0
    for colour, share in colours_shares:
        band = round(share * w)
        img.paste(colour, (x, 0, min(w, x + band), h))
        x += band
    return img


def test_dominant_colours_finds_the_bands():
    img = _flat([((228, 0, 43), 0.6), ((255, 255, 255), 0.4)])
    found = dominant_colours(img, k=2)
    assert [round(s, 1) for _, s in found] == [0.6, 0.4]
    assert max(abs(a - b) for a, b in zip(found[0][0], (228, 0, 43))) <= 3


def test_on_brand_image_passes():
    img = _flat([((228, 0, 43), 0.5), ((250, 250, 250), 0.4), ((30, 30, 30), 0.1)])
    r = brand_colour(img, RED_WHITE)
    assert r.passed and not r.issues
    assert r.scores["brand.on_brand_share"] > 0.95 and r.scores["brand.delta_e"] < 5


def test_off_brand_image_fails_against_another_palette():
    img = _flat([((228, 0, 43), 0.5), ((250, 250, 250), 0.5)])
    r = brand_colour(img, GREENS)
    assert r.passed is False
    assert "off-brand" in r.issues[0].reason and "#E" in r.issues[0].reason  # names the off-palette red


def test_partly_off_brand_image_is_flagged_for_review():
    img = _flat([((228, 0, 43), 0.25), ((40, 90, 200), 0.75)])  # mostly blue, a brand red accent
    r = brand_colour(img, RED_WHITE)
    assert r.passed is True and r.issues  # B: a person looks
    assert 0.2 < r.scores["brand.on_brand_share"] < 0.3


def test_brand_colour_leaves_the_product_out(bottle):
    # a brand-white scene; the product (red) is the photo's own colour and does not count
    scene = Image.new("RGB", (800, 600), (245, 245, 245))
    result, mask = place(scene, bottle, 0.8, "center", shadow=False)
    assert brand_colour(result, ["#F5F5F5", "#0A3D62"], exclude=mask).scores["brand.on_brand_share"] > 0.95
    assert brand_colour(result, ["#F5F5F5", "#0A3D62"]).scores["brand.on_brand_share"] < 0.8


def test_brand_colour_is_deterministic_and_checks_its_palette():
    img = _scene(3)
    a, b = brand_colour(img, RED_WHITE), brand_colour(img, RED_WHITE)
    assert a.scores == b.scores
    with pytest.raises(ValueError, match="palette is empty"):
        brand_colour(img, [])


# --- technical critic on white backgrounds ----------------------------------------------------------------------


def _technical(img):
    req = CritiqueRequest(image_path="-", prompt="a product", width=img.width, height=img.height)
    return technical_critic(img, req, Thresholds())


@pytest.mark.parametrize("fill", [0.4, 0.85])
@pytest.mark.parametrize("shadow", [False, True])
def test_product_on_pure_white_passes(bottle, bag, fill, shadow):
    for cutout in (bottle, bag):
        image, _ = white_product_shot(cutout, (1000, 1000), fill=fill, shadow=shadow)
        assert (np.asarray(image) == 255).all(axis=-1).mean() > 0.3  # most of the frame is at 255
        r = _technical(image)
        assert r.passed, r.issues
        assert not [i for i in r.issues if i.category == "exposure"]
        assert r.scores["tech.white_background"] > 0.25 and r.scores["tech.blown"] < 0.05


def test_light_product_on_white_passes(bottle):
    photo = np.asarray(bottle_photo()).copy()
    body = (photo == (200, 30, 40)).all(axis=-1)
    photo[body] = (228, 226, 222)  # a pale grey bottle, white label, on white
    cutout = cut_out(Image.fromarray(photo))
    r = _technical(white_product_shot(cutout, (1000, 1000))[0])
    assert r.passed, r.issues
    # the old rule judged the whole frame's mean, which a product on white always fails
    assert r.scores["tech.exposure_mean"] > Thresholds().washed_mean


def test_blown_out_product_shot_fails(bag):
    image, _ = white_product_shot(bag, (1000, 1000))
    blown = _gain(image, 2.0)
    r = _technical(blown)
    assert r.passed is False
    assert [i.category for i in r.issues if i.category == "exposure"] == ["exposure"]
    assert r.scores["tech.blown"] > 0.15
    # the same picture before the exposure went wrong passes
    assert _technical(image).passed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blown_out_scene_whose_subject_lost_detail_fails(bag, seed):
    scene, _ = place(_scene(seed), bag, 0.5, "bottom")
    assert _technical(scene).passed
    blown = _gain(scene, 2.5)
    r = _technical(blown)
    assert r.passed is False and "exposure" in {i.category for i in r.issues}, r.scores
    # the mean alone would not have caught it: below the washed-out limit, and its darkest pixels are dark
    assert r.scores["tech.exposure_mean"] < Thresholds().washed_mean
    assert r.scores["tech.exposure_dark_tail"] < Thresholds().bright_tail_min


def test_white_storyboard_panels_are_not_blown():
    for k in range(6):
        r = _technical(storyboard_panel(random.Random(k), (960, 540)))
        assert r.scores["tech.blown"] < 0.02, k
