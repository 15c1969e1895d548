"""The product composited into scenes: placement and fill, the contact shadow, the pure-white main image, and
the inpainting request that paints only the background (through the tiny Z-Image model and a fake image
server), with the photo's own pixels put back on top."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.product_images import bottle_photo
from tools.composite import background_request, place, placement, white_product_shot
from tools.cutout import cut_out


@pytest.fixture(scope="module")
def cutout():
    return cut_out(bottle_photo())


def _scene(size=(800, 600)):
    """A made-up generated scene: a vertical gradient with a floor."""
    w, h = size
    ramp = np.linspace(60, 200, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(ramp * np.array([0.6, 0.8, 1.0], np.float32), (h, w, 3))
    return Image.fromarray(img.astype(np.uint8))


def _scaled_product(cutout, box):
    x0, y0, x1, y1 = box
    return np.asarray(
        cutout.rgba.convert("RGBa").resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS).convert("RGBA")
    )


def test_placement_fill_and_anchors():
    assert placement((200, 400), (800, 600), 0.5, "center") == (325, 150, 475, 450)
    x0, y0, x1, y1 = placement((200, 400), (800, 600), 0.8, "bottom")
    assert y1 - y0 == 480 and y0 == round(0.88 * 120)
    assert placement((400, 100), (800, 600), 1.0)[0::2] == (0, 800)  # wide product: width binds
    with pytest.raises(ValueError, match="unknown anchor"):
        placement((10, 10), (100, 100), 0.5, "middle")
    with pytest.raises(ValueError, match="fill"):
        placement((10, 10), (100, 100), 1.5)


def test_place_keeps_the_product_pixels_and_returns_its_mask(cutout):
    scene = _scene()
    result, mask = place(scene, cutout, fill=0.7, anchor="bottom")
    assert result.size == mask.size == scene.size and result.mode == "RGB" and mask.mode == "L"
    box = placement(cutout.rgba.size, scene.size, 0.7, "bottom")
    x0, y0, x1, y1 = box
    product = _scaled_product(cutout, box)
    out = np.asarray(result)[y0:y1, x0:x1].astype(int)
    opaque = product[..., 3] == 255
    assert opaque.mean() > 0.7
    assert np.abs(out[opaque] - product[..., :3][opaque]).max() == 0  # never altered
    m = np.asarray(mask)
    assert (m[y0:y1, x0:x1] == product[..., 3]).all() and m.sum() == product[..., 3].astype(int).sum()
    assert y1 - y0 == round(0.7 * 600)


def test_contact_shadow_sits_under_the_base(cutout):
    scene = _scene()
    with_shadow, mask = place(scene, cutout, fill=0.6, anchor="bottom")
    plain, _ = place(scene, cutout, fill=0.6, anchor="bottom", shadow=False)
    x0, y0, x1, y1 = placement(cutout.rgba.size, scene.size, 0.6, "bottom")
    diff = np.asarray(plain, dtype=int).sum(-1) - np.asarray(with_shadow, dtype=int).sum(-1)
    diff[np.asarray(mask) > 0] = 0
    assert (diff >= 0).all()  # a shadow only darkens
    ys, xs = np.nonzero(diff > 30)
    assert ys.size > 100
    assert ys.min() >= y1 - 0.1 * (y1 - y0)  # under the base, not beside the shoulders
    assert abs(xs.mean() - (x0 + x1) / 2) < 5
    assert ys.max() < y1 + 0.25 * (x1 - x0)  # soft and flat: a contact shadow, not a cast one
    assert diff[: y0 + (y1 - y0) // 2].max() == 0
    # the soft edge: the darkening fades out rather than stepping
    column = diff[y1 : y1 + 40, (x0 + x1) // 2]
    assert column[0] > column[-1] and 0 < np.count_nonzero((column > 0) & (column < column.max()))


def test_white_product_shot_is_pure_white_and_filled(cutout):
    image, mask = white_product_shot(cutout, (1000, 1000), fill=0.85)
    rgb, m = np.asarray(image), np.asarray(mask)
    assert (rgb[m == 0] == 255).all()  # every background pixel is exactly (255, 255, 255)
    assert (rgb[:5] == 255).all() and (rgb[:, -5:] == 255).all()
    ys, xs = np.nonzero(m > 0)
    assert ys.max() - ys.min() + 1 == 850  # the product's box fills 85% of the frame's height
    assert abs((xs.min() + xs.max()) / 2 - 500) <= 2
    assert (rgb[m == 255] < 255).any()  # the product itself is there, red


def test_background_request_masks_the_product(cutout, tmp_path):
    req = background_request(
        cutout, (320, 256), "the bottle on a marble kitchen counter", output_path=tmp_path / "s.png", seed=7
    )
    assert req.width == 320 and req.height == 256 and req.seed == 7 and req.strength == 1.0
    assert req.init_image.endswith("s.canvas.png") and req.mask_image.endswith("s.mask.png")
    paint = np.asarray(Image.open(req.mask_image))
    _, kept = place(Image.new("RGB", (320, 256)), cutout, 0.6, "bottom", shadow=False)
    kept = np.asarray(kept)
    assert (paint[kept == 0] == 255).all()  # the whole background is painted
    assert (paint[kept == 255] == 0).mean() > 0.9  # the product's opaque core is kept
    assert paint.shape == (256, 320)


def test_background_request_on_the_tiny_z_image_inpaints_and_the_product_comes_back(cutout, tmp_path):
    import tiny_pipelines

    from tools.generate_image import DiffusersImageBackend
    from tools.models import ModelManager

    folder = tiny_pipelines.build("z-image", tmp_path / "z-image-turbo")
    backend = DiffusersImageBackend(folder, ModelManager(device="cpu"), num_inference_steps=2)
    req = background_request(cutout, (96, 64), "a bottle on a beach", output_path=tmp_path / "b.png", seed=1)
    res = backend.generate(req)
    assert res.parameters["mode"] == "inpaint" and res.parameters["pipeline"] == "ZImageInpaintPipeline"
    assert res.parameters["mask_image"] == req.mask_image
    rendered = Image.open(res.path).convert("RGB")
    assert rendered.size == (96, 64)
    final, mask = place(rendered, cutout, 0.6, "bottom")
    box = placement(cutout.rgba.size, (96, 64), 0.6, "bottom")
    product = _scaled_product(cutout, box)
    x0, y0, x1, y1 = box
    opaque = product[..., 3] == 255
    assert (np.asarray(final)[y0:y1, x0:x1][opaque] == product[..., :3][opaque]).all()
    # the random model really painted the background (not the grey canvas left as it was)
    assert np.abs(np.asarray(rendered, dtype=int) - 128)[np.asarray(mask) == 0].mean() > 5


def test_remote_edit_sends_the_product_mask(cutout, tmp_path):
    import base64

    from fakes import FakeOpenAI

    from tools.generate_image import RemoteImageBackend, _alpha_mask

    req = background_request(cutout, (64, 48), "a bottle", output_path=tmp_path / "r.png")
    alpha = np.asarray(Image.open(io.BytesIO(_alpha_mask(req.init_image, None, req.mask_image))))[..., 3]
    paint = np.asarray(Image.open(req.mask_image)) > 127
    assert ((alpha == 0) == paint).all()  # transparent (may change) exactly where the background is
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buf, format="PNG")
    with FakeOpenAI() as server:
        server.script(
            "/v1/images/edits",
            [{"created": 0, "data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()}]}],
        )
        res = RemoteImageBackend(server.base_url, model="m", timeout=5).generate(req)
        body = server.requests["/v1/images/edits"][0]["_raw"]
    assert res.parameters["endpoint"] == "edits"
    assert 'name="mask"' in body and 'name="image"' in body
