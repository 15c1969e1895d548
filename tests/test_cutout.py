"""The product cut-out: border-connected background fill with a soft matte, the plain-background check, and a
transformers segmentation model folder (a tiny random SegFormer built from a config)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.product_images import bottle_photo, busy_photo
from tools.cutout import cut_out
from tools.errors import SettingsError


def test_white_background_is_removed_and_white_label_inside_is_kept():
    photo = bottle_photo()
    c = cut_out(photo)
    assert c.plain_background, c.reason
    assert c.background == (255, 255, 255)
    x0, y0, x1, y1 = c.box
    # the bottle spans 34%..66% of the width (cap to body bottom in height)
    assert abs(x0 - 0.34 * 640) <= 3 and abs(x1 - 0.66 * 640) <= 3
    assert abs(y0 - 0.08 * 480) <= 3 and abs(y1 - 0.88 * 480) <= 3
    alpha = np.asarray(c.mask)
    assert c.rgba.size == c.mask.size == (x1 - x0, y1 - y0)
    # the white label is inside the product: kept fully opaque with its own white pixels
    lx, ly = 320 - x0, int(480 * 0.44) - y0
    assert alpha[ly, lx] == 255
    assert np.asarray(c.rgba)[ly, lx, :3].min() == 255
    # the white corners of the crop (beside the rounded body) are background
    assert alpha[-1, 0] == 0 and alpha[-1, -1] == 0
    # the body stays opaque and red
    assert alpha[int(480 * 0.75) - y0, 30] == 255
    assert tuple(np.asarray(c.rgba)[int(480 * 0.75) - y0, 30, :3]) == (200, 30, 40)


def test_matte_edge_is_soft_and_has_no_white_fringe():
    c = cut_out(bottle_photo())
    alpha = np.asarray(c.mask)
    row = alpha[int(480 * 0.6) - c.box[1]]
    partial = (row > 0) & (row < 255)
    assert 1 <= partial[:20].sum() <= 6  # a feathered edge, a few pixels wide, not a hard step
    rgb = np.asarray(c.rgba)[..., :3].astype(int)
    edge = (alpha > 0) & (alpha < 200)
    # decontaminated: the edge pixels carry the product's colours, not the white background's
    assert rgb[edge].min(axis=1).mean() < 120


def test_other_plain_background_colour_is_found():
    c = cut_out(bottle_photo(background=(200, 210, 225)))
    assert c.plain_background
    assert max(abs(a - b) for a, b in zip(c.background, (200, 210, 225))) <= 2
    assert abs(c.box[0] - 0.34 * 640) <= 3


def test_busy_photo_is_not_a_plain_background():
    c = cut_out(busy_photo())
    assert not c.plain_background
    assert "not a plain background" in c.reason and "reference" in c.reason
    assert c.box == (0, 0, 640, 480) and c.rgba.size == (640, 480)


def test_blank_photo_has_no_product():
    c = cut_out(Image.new("RGB", (200, 200), "white"))
    assert not c.plain_background and "no product" in c.reason


def test_photo_paths_and_errors(tmp_path):
    path = tmp_path / "p.png"
    bottle_photo().save(path)
    assert cut_out(path).plain_background
    with pytest.raises(FileNotFoundError):
        cut_out(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        cut_out(bad)
    with pytest.raises(ValueError, match="at least 16 px"):
        cut_out(Image.new("RGB", (8, 8), "white"))


@pytest.fixture(scope="module")
def tiny_segformer(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        num_attention_heads=[1, 1],
        patch_sizes=[7, 3],
        strides=[4, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=2,
        id2label={0: "background", 1: "product"},
        label2id={"background": 0, "product": 1},
    )
    folder = tmp_path_factory.mktemp("seg")
    transformers.SegformerForSemanticSegmentation(cfg).save_pretrained(folder)
    transformers.SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def test_segmentation_model_folder_makes_the_mask(tiny_segformer):
    from transformers import pipeline

    photo = bottle_photo()
    segments = pipeline("image-segmentation", model=str(tiny_segformer), device="cpu")(photo)
    product = [s for s in segments if s["label"] == "product"]
    c = cut_out(photo, seg_model_dir=tiny_segformer)
    assert "segmentation model" in c.reason
    if not product or np.asarray(product[0]["mask"]).mean() / 255 > 0.97:
        assert not c.plain_background
        return
    expected = np.asarray(product[0]["mask"]) > 127
    ys, xs = np.nonzero(expected)
    assert c.plain_background
    want = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert max(abs(a - b) for a, b in zip(c.box, want)) <= 2  # the feather may reach a pixel or two further
    got = np.zeros(expected.shape, bool)
    x0, y0, x1, y1 = c.box
    got[y0:y1, x0:x1] = np.asarray(c.mask) > 127
    # the model's product segment is the cut-out's mask, up to the feathered rim
    assert (got == expected).mean() > 0.98


def test_segmentation_model_folder_errors(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        cut_out(bottle_photo(), seg_model_dir=tmp_path / "nowhere")
    with pytest.raises(SettingsError, match="no config.json"):
        cut_out(bottle_photo(), seg_model_dir=tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "no-such-model"}')
    with pytest.raises(SettingsError, match="cannot load segmentation model folder"):
        cut_out(bottle_photo(), seg_model_dir=tmp_path)


def test_jpeg_photo_with_a_vignetted_background(tmp_path):
    photo = np.asarray(bottle_photo(), dtype=np.float32)
    yy, xx = np.mgrid[0:480, 0:640]
    fall = 1 - 0.06 * (((xx - 320) / 320) ** 2 + ((yy - 240) / 240) ** 2)  # corners about 12% darker
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(photo * fall[..., None], 0, 255).astype(np.uint8)).save(path, quality=80)
    c = cut_out(path)
    assert c.plain_background, c.reason
    assert abs(c.box[0] - 0.34 * 640) <= 4 and abs(c.box[2] - 0.66 * 640) <= 4
    alpha = np.asarray(c.mask)
    assert alpha[int(480 * 0.44) - c.box[1], 320 - c.box[0]] == 255  # the white label survives JPEG noise


def test_dust_on_the_background_is_not_product():
    photo = bottle_photo()
    photo.paste((120, 120, 120), (40, 40, 43, 43))  # a speck of dust far from the product
    photo.paste((90, 90, 90), (600, 450, 602, 452))
    c = cut_out(photo)
    assert abs(c.box[0] - 0.34 * 640) <= 3 and abs(c.box[3] - 0.88 * 480) <= 3
