"""Put the real product into a picture: over a generated scene, on pure white for a marketplace main image, or
as the kept part of an inpainting request whose model paints only the background.

The product's pixels are never generated: every path ends with the cut-out's own pixels composited on top
(`place`), and `place` returns the product's mask in the result's coordinates for the fidelity critic.

Placement: `fill` is the share of the frame's limiting side the product's box takes (0.85 on a 1:1 frame with a
tall product: 85% of the height); `anchor` splits the free space (center, bottom, top, left, right,
bottom-left, bottom-right). The contact shadow is a soft dark ellipse where the product meets the ground,
as wide as its base, multiplied into the scene under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tools.cutout import Cutout
from tools.generate_image import ImageRequest

Anchor = Literal["center", "bottom", "top", "left", "right", "bottom-left", "bottom-right"]
ANCHORS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "bottom": (0.5, 0.88),
    "top": (0.5, 0.12),
    "left": (0.12, 0.5),
    "right": (0.88, 0.5),
    "bottom-left": (0.12, 0.88),
    "bottom-right": (0.88, 0.88),
}
WHITE = (255, 255, 255)


def placement(
    product: tuple[int, int], size: tuple[int, int], fill: float, anchor: str = "center"
) -> tuple[int, int, int, int]:
    """The product's box (x0, y0, x1, y1) in a frame of `size`: scaled to `fill` of the limiting side, anchored."""
    if not 0.05 <= fill <= 1.0:
        raise ValueError(f"fill {fill} is not a share of the frame between 0.05 and 1")
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; use one of {', '.join(ANCHORS)}")
    (pw, ph), (fw, fh) = product, size
    scale = fill * min(fw / pw, fh / ph)
    w, h = max(1, round(pw * scale)), max(1, round(ph * scale))
    ax, ay = ANCHORS[anchor]
    x0, y0 = round(ax * (fw - w)), round(ay * (fh - h))
    return x0, y0, x0 + w, y0 + h


def scaled_product(cutout: Cutout, w: int, h: int) -> Image.Image:
    """The cut-out resized in premultiplied alpha, so the edge does not pick up the colour under transparency."""
    if cutout.rgba.size == (w, h):
        return cutout.rgba
    return cutout.rgba.convert("RGBa").resize((w, h), Image.Resampling.LANCZOS).convert("RGBA")


def contact_shadow(size: tuple[int, int], alpha: Image.Image, box: tuple[int, int, int, int], strength=0.5):
    """How much to darken each pixel of the frame (float array, 0..1): a soft ellipse under the product's base."""
    x0, y0, x1, y1 = box
    a = np.asarray(alpha) > 127
    rows = np.nonzero(a.any(axis=1))[0]
    if rows.size == 0:
        return np.zeros((size[1], size[0]), np.float32)
    # The base: the product's columns in its lowest 6% of rows (a bottle's foot, not its shoulders).
    base_rows = a[max(rows[-1] - max(2, int(0.06 * a.shape[0])), 0) : rows[-1] + 1]
    cols = np.nonzero(base_rows.any(axis=0))[0]
    left, right = x0 + cols[0], x0 + cols[-1] + 1
    width = right - left
    cx, cy = (left + right) / 2, y0 + rows[-1] + 1
    height = max(3.0, 0.12 * width)
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    draw.ellipse(
        (cx - 0.58 * width, cy - 0.5 * height, cx + 0.58 * width, cy + 0.5 * height),
        fill=round(255 * strength),
    )
    # a tighter, darker core right under the base: where the product touches the ground
    core = 0.25 * height
    draw.ellipse((left, cy - core, right, cy + core), fill=round(255 * min(1.0, strength * 1.5)))
    # a float radius, not numpy's: Pillow 13 compares the radius with a tuple
    layer = layer.filter(ImageFilter.GaussianBlur(float(max(1.5, 0.25 * height))))
    return np.asarray(layer, dtype=np.float32) / 255.0


def place(
    scene: Image.Image, cutout: Cutout, fill: float, anchor: str = "center", shadow: bool = True
) -> tuple[Image.Image, Image.Image]:
    """(result RGB, product mask "L" in the result's coordinates): the cut-out scaled, anchored, shadowed, on top.

    A cut-out that kept its photo's own shadow (`cutout.shadow`) brings that shadow; no contact shadow is added.
    """
    x0, y0, x1, y1 = placement(cutout.rgba.size, scene.size, fill, anchor)
    product = scaled_product(cutout, x1 - x0, y1 - y0)
    base = scene.convert("RGB")
    if shadow and not cutout.shadow:
        dark = contact_shadow(scene.size, product.getchannel("A"), (x0, y0, x1, y1))
        pixels = np.asarray(base, dtype=np.float32) * (1.0 - dark[..., None])
        base = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    result = base.convert("RGBA")
    result.alpha_composite(product, dest=(x0, y0))
    mask = Image.new("L", scene.size, 0)
    mask.paste(product.getchannel("A"), (x0, y0))
    return result.convert("RGB"), mask


def white_product_shot(
    cutout: Cutout, size: tuple[int, int], fill: float = 0.85, shadow: bool = False
) -> tuple[Image.Image, Image.Image]:
    """A marketplace main image: the product centred, filling `fill` of the frame, on pure (255, 255, 255).

    No shadow by default: Amazon-style rules ask for a pure white background, and a shadow's grey is not.
    """
    return place(Image.new("RGB", size, WHITE), cutout, fill, "center", shadow=shadow)


def background_request(
    cutout: Cutout,
    size: tuple[int, int],
    prompt: str,
    *,
    output_path: str | Path,
    seed: int = 0,
    fill: float = 0.6,
    anchor: str = "bottom",
    negative_prompt: str = "",
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
) -> ImageRequest:
    """An inpainting request that paints only the background around the placed product.

    Writes `<output>.canvas.png` (the product placed on a neutral grey frame) and `<output>.mask.png` (white =
    paint: everything but the product's opaque core; the soft rim is painted too so the model blends into it),
    next to `output_path`. After the backend has rendered it, put the original pixels back with
    `place(rendered, cutout, fill, anchor)` (same fill and anchor): the model's version of the product is
    always covered by the photo's own.
    """
    from tools.files import write_png

    out = Path(output_path)
    canvas, mask = place(Image.new("RGB", size, (128, 128, 128)), cutout, fill, anchor, shadow=False)
    keep = mask.point(lambda v: 255 if v == 255 else 0).filter(ImageFilter.MinFilter(3))
    paint = keep.point(lambda v: 255 - v)
    paths = {}
    for name, image in (("canvas", canvas), ("mask", paint)):
        path = out.with_name(f"{out.stem}.{name}.png")
        write_png(path, image)
        paths[name] = str(path.resolve())
    return ImageRequest(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=size[0],
        height=size[1],
        seed=seed,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        output_path=str(out.resolve()),
        init_image=paths["canvas"],
        mask_image=paths["mask"],
        strength=1.0,
    )
