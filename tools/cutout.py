"""Cut a product out of its plain (white) photo background, so a scene can be made around the real pixels.

Offline (the default): the background is what is near the border's colour AND connected to the border, so a
white label or a white part inside the product is kept (a flood fill, not a colour key). The edge is a soft
matte: inside a thin band around the boundary the alpha follows the colour distance to the background, and the
edge colours are decontaminated (the background's share taken out), so the product composites without a white
fringe. A background-coloured hole enclosed by the product (a mug's handle) stays opaque: what the fill cannot
reach counts as product.

A photo whose border is not one plain colour (a lifestyle shot, a cluttered table) is reported as
`plain_background=False` with the reason; the caller then uses the photo as a reference image instead.

With `seg_model_dir`, a transformers image-segmentation model from a local folder makes the mask instead (the
same soft edge and decontamination are applied to it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from tools.errors import SettingsError

TOLERANCE = 12.0  # ΔE76 from the background colour still counted as background (JPEG noise, paper grain)
SOFT = 30.0  # ΔE76 at which an edge pixel is fully product; between the two the alpha ramps
BORDER_PLAIN = 0.9  # share of the border that must be the background colour for a "plain" background
BACKGROUND_LABELS = {"background", "bg", "wall", "floor", "ceiling", "sky", "table"}


@dataclass
class Cutout:
    """The product cut from a photo.

    `rgba` is the product cropped to `box` (its bounding box in the photo, x0, y0, x1, y1) with the soft matte
    as its alpha; `mask` is that alpha ("L", the same size as `rgba`). When `plain_background` is False the
    photo is not on a plain background: `rgba` is the whole photo, opaque, and `reason` says why.
    """

    rgba: Image.Image
    mask: Image.Image
    box: tuple[int, int, int, int]
    plain_background: bool
    reason: str
    background: tuple[int, int, int] = (255, 255, 255)
    shadow: bool = False  # the photo's own shadow is in `rgba` (black at partial opacity), under the product
    shadow_mask: Image.Image | None = None  # where that shadow is ("L", 255), the size of `rgba`

    def without_shadow(self) -> Cutout:
        """The product alone: its photo's shadow taken out and the box shrunk to the product (a main image that
        must be cut out on pure white, with no shadow)."""
        if not self.shadow or self.shadow_mask is None:
            return self
        alpha = np.asarray(self.mask).copy()
        alpha[np.asarray(self.shadow_mask) > 0] = 0
        ys, xs = np.nonzero(alpha)
        crop = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        a8 = Image.fromarray(alpha).crop(crop)
        rgba = self.rgba.crop(crop)
        rgba.putalpha(a8)
        x0, y0 = self.box[:2]
        box = (x0 + crop[0], y0 + crop[1], x0 + crop[2], y0 + crop[3])
        return replace(self, rgba=rgba, mask=a8, box=box, shadow=False, shadow_mask=None)


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of an sRGB uint8 array (…, 3), as float32."""
    from skimage.color import rgb2lab

    return rgb2lab(rgb.astype(np.float32) / 255.0).astype(np.float32)


def _border(a: np.ndarray, width: int) -> np.ndarray:
    """The pixels of a ring `width` wide around the image, flattened to (N, channels)."""
    return np.concatenate(
        [a[:width].reshape(-1, a.shape[-1]), a[-width:].reshape(-1, a.shape[-1])]
        + [a[:, :width].reshape(-1, a.shape[-1]), a[:, -width:].reshape(-1, a.shape[-1])]
    )


def _not_plain(photo: Image.Image, reason: str, background=(255, 255, 255)) -> Cutout:
    rgba = photo.convert("RGBA")
    return Cutout(
        rgba=rgba,
        mask=Image.new("L", photo.size, 255),
        box=(0, 0, photo.width, photo.height),
        plain_background=False,
        reason=reason,
        background=background,
    )


def _border_connected(near: np.ndarray) -> np.ndarray:
    """The pixels of `near` (bool) that connect to the image border through `near` pixels."""
    import cv2

    count, labels = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros_like(near)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge != 0]
    return np.isin(labels, edge)


def _photo_shadow(photo_lab: np.ndarray, bg_lab: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """The photo's own soft shadow on the background, as a bool mask inside `hard` (empty when there is none).

    A shadow is the background's colour darkened: neutral against it (chroma within 4), smooth (no texture),
    at most 45 L darker, fading out into the background (a fifth of it within 20 L of the background's
    lightness), and it touches both the background and what stays product. A grey product is crisp-edged and
    usually textured, so it does not fade out like this.
    """
    import cv2

    lum = photo_lab[..., 0]
    chroma = np.hypot(photo_lab[..., 1] - bg_lab[1], photo_lab[..., 2] - bg_lab[2])
    fine = lum - cv2.GaussianBlur(lum, (0, 0), 1.5)
    smooth = np.sqrt(cv2.blur(fine * fine, (5, 5))) < 1.0
    cand = hard & (chroma <= 4.0) & (lum >= bg_lab[0] - 45) & smooth
    count, labels = cv2.connectedComponents(cand.astype(np.uint8), connectivity=8)
    shadow = np.zeros(hard.shape, bool)
    if count <= 1:
        return shadow
    near_bg = cv2.dilate((~hard).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    for label in range(1, count):
        part = labels == label
        if part.sum() < 0.002 * part.size or not (part & near_bg).any():
            continue
        if (lum[part] >= bg_lab[0] - 20).mean() < 0.2:
            continue
        rest = hard & ~part
        touching = cv2.dilate(part.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & rest
        if rest.sum() >= part.sum() and touching.any():
            shadow |= part
    if shadow.any():
        # next to the product's edge the texture test sees the edge: take the neutral pixels there (3 px)
        near = cv2.dilate(shadow.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        shadow |= hard & near & (chroma <= 4.0) & (lum >= bg_lab[0] - 45)
        # its faint outer fade is within the background's tolerance: take that in too, or the shadow ends in a
        # visible step where the fill stopped
        faint = ~hard & (chroma <= 4.0) & (lum < bg_lab[0] - 1.5)
        count, labels = cv2.connectedComponents((shadow | faint).astype(np.uint8), connectivity=8)
        shadow = np.isin(labels, np.unique(labels[shadow]))
    return shadow


def _without_specks(hard: np.ndarray) -> np.ndarray:
    """The product mask without specks (dust on the sweep, JPEG blotches): parts under 1% of the largest part.

    A product of separate pieces (a pair of earbuds) keeps every piece of a similar size.
    """
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(hard.astype(np.uint8), connectivity=8)
    if count <= 2:
        return hard
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = areas >= 0.01 * areas.max()
    return keep[labels]


def _soft_edge(hard: np.ndarray, distance: np.ndarray | None, band: int) -> tuple[np.ndarray, np.ndarray]:
    """(feathered alpha, the unfeathered colour alpha the edge colours are solved with), in 0..1 from a hard product mask: the outer pixel row by colour, then feathered by `band` px.

    The outermost product pixels are a mix of product and background (anti-aliasing, lens blur): their alpha is
    their colour distance to the background over that of the product just inside them. The interior (the mask
    eroded by one pixel) stays fully opaque, whatever its colour, so white parts inside the product are kept.
    """
    import cv2

    three = np.ones((3, 3), np.uint8)
    h8 = hard.astype(np.uint8)
    core = cv2.erode(h8, three).astype(bool)
    alpha = hard.astype(np.float32)
    if distance is not None:
        outer = hard & ~core
        inner = cv2.dilate(np.where(core, distance, 0).astype(np.float32), np.ones((5, 5), np.uint8))
        alpha[outer] = np.clip(distance[outer] / np.maximum(inner[outer], SOFT), 0.25, 1.0)
    feathered = cv2.GaussianBlur(alpha, (0, 0), max(0.6, band / 2))
    return np.clip(np.maximum(feathered, core), 0.0, 1.0), alpha


def _edge_colours(rgb: np.ndarray, alpha: np.ndarray, hard: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Colours under the matte: product pixels with the background's share taken out (I = aF + (1-a)B), and the
    feathered pixels outside the product given their nearest product pixel's colour, so no white fringe shows.

    `alpha` is the unfeathered colour alpha: solving with the feathered one would overshoot (darken) the rim.
    """
    import cv2

    a = alpha[..., None]
    fg = background + (rgb.astype(np.float32) - background) / np.maximum(a, 1 / 255)
    out = np.where(a > 0.98, rgb.astype(np.float32), fg)
    outside = ~hard
    if outside.any() and hard.any():
        _, labels = cv2.distanceTransformWithLabels(
            outside.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        ys, xs = np.nonzero(~outside)
        # labels number the zero (product) pixels in scan order, from 1
        nearest = labels[outside] - 1
        out[outside] = rgb[ys[nearest], xs[nearest]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _recolour_rim(colours: np.ndarray, hard: np.ndarray, shadow: np.ndarray) -> None:
    """Product rim pixels against the shadow mix the product with the shadow's grey, not with the white the
    decontamination assumes: give them their nearest inner pixel's colour (in place), or a grey line shows."""
    import cv2

    three = np.ones((3, 3), np.uint8)
    core = cv2.erode(hard.astype(np.uint8), three).astype(bool)
    rim = hard & ~core & cv2.dilate(shadow.astype(np.uint8), three).astype(bool)
    if not rim.any() or not core.any():
        return
    _, labels = cv2.distanceTransformWithLabels(
        (~core).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(core)
    nearest = labels[rim] - 1
    colours[rim] = colours[ys[nearest], xs[nearest]]


def _finish(
    photo: Image.Image,
    alphas: tuple[np.ndarray, np.ndarray],
    hard: np.ndarray,
    shadow: np.ndarray,
    background: np.ndarray,
    reason: str,
) -> Cutout:
    alpha, colour_alpha = alphas
    rgb = np.asarray(photo)
    if shadow.any():
        # I = B(1 - s): the shadow becomes black at opacity s, so over a scene it darkens the scene as it
        # darkened the white sweep, instead of pasting a grey patch.
        ratio = rgb[shadow].astype(np.float32).mean(axis=1) / max(float(background.mean()), 1.0)
        alpha = alpha.copy()
        alpha[shadow] = np.clip(1.0 - ratio, 0.0, 1.0)
    ys, xs = np.nonzero(alpha > 1 / 255)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    x0, y0, x1, y1 = box
    colours = _edge_colours(rgb[y0:y1, x0:x1], colour_alpha[y0:y1, x0:x1], hard[y0:y1, x0:x1], background)
    colours[shadow[y0:y1, x0:x1]] = 0
    if shadow.any():
        _recolour_rim(colours, hard[y0:y1, x0:x1], shadow[y0:y1, x0:x1])
    a8 = np.clip(np.rint(alpha[y0:y1, x0:x1] * 255), 0, 255).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([colours, a8]))
    bg = tuple(int(v) for v in background)
    where = Image.fromarray((shadow[y0:y1, x0:x1] * 255).astype(np.uint8)) if shadow.any() else None
    return Cutout(rgba, Image.fromarray(a8), box, True, reason, bg, bool(shadow.any()), where)  # type: ignore[arg-type]


def _open(photo: str | Path | Image.Image) -> Image.Image:
    from tools.images import open_image

    return photo.convert("RGB") if isinstance(photo, Image.Image) else open_image(photo)


def cut_out(photo: str | Path | Image.Image, seg_model_dir: str | Path | None = None) -> Cutout:
    """Cut the product out of a photo on a plain background (offline fill, or a segmentation model folder).

    A missing or corrupt photo raises (tools/images.py's errors name the file); a photo that is not on a plain
    background comes back with `plain_background=False` and the reason.
    """
    photo = _open(photo)
    if min(photo.size) < 16:
        raise ValueError(
            f"the product photo is {photo.width}x{photo.height}; each side must be at least 16 px"
        )
    rgb = np.asarray(photo)
    ring = max(2, min(photo.size) // 100)
    photo_lab = lab(rgb)
    border_lab = _border(photo_lab, ring)
    bg_lab = np.median(border_lab, axis=0)
    bg_rgb = np.median(_border(rgb, ring), axis=0).astype(np.float32)
    plain = float((np.linalg.norm(border_lab - bg_lab, axis=1) <= TOLERANCE).mean())
    if plain < BORDER_PLAIN:
        return _not_plain(
            photo,
            f"not a plain background: only {plain:.0%} of the photo's border is one colour "
            f"(needs {BORDER_PLAIN:.0%}); use it as a reference image instead",
        )
    band = max(1, min(photo.size) // 256)
    if seg_model_dir is not None:
        hard = segment(photo, seg_model_dir)
        distance, shadow = None, np.zeros(hard.shape, bool)
        how = f"segmentation model {Path(seg_model_dir).name}"
    else:
        distance = np.linalg.norm(photo_lab - bg_lab, axis=-1)
        hard = ~_border_connected(distance <= TOLERANCE)
        shadow = _photo_shadow(photo_lab, bg_lab, hard)
        hard = _without_specks(hard & ~shadow)
        how = "border-connected background fill" + (
            ", the photo's shadow kept as a shadow" if shadow.any() else ""
        )
    share = float(hard.mean())
    if share < 0.002:
        return _not_plain(
            photo, "no product found: the photo is all background", tuple(int(v) for v in bg_rgb)
        )
    if share > 0.97:
        return _not_plain(
            photo, f"not a plain background: the product covers {share:.0%} of the photo", (255, 255, 255)
        )
    alpha = _soft_edge(hard, distance, band)
    return _finish(
        photo, alpha, hard, shadow, bg_rgb, f"cut out by {how}; background {tuple(int(v) for v in bg_rgb)}"
    )


_models: dict[str, object] = {}
_models_lock = threading.Lock()


def _segmenter(folder: str | Path):
    """The transformers image-segmentation pipeline of a local folder, loaded once per process."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise SettingsError(f"segmentation model folder {path} does not exist; give a local model folder")
    if not (path / "config.json").is_file():
        raise SettingsError(
            f"segmentation model folder {path} has no config.json; save a transformers model there "
            "(model.save_pretrained and its image processor)"
        )
    key = str(path.resolve())
    with _models_lock:
        if key not in _models:
            try:
                from transformers import pipeline
            except ImportError as e:
                raise SettingsError(
                    "a segmentation model needs transformers: pip install 'creative-director[models]'"
                ) from e
            try:
                _models[key] = pipeline("image-segmentation", model=key, device="cpu")
            except (OSError, ValueError, KeyError) as e:
                raise SettingsError(f"cannot load segmentation model folder {path}: {e}") from e
        return _models[key]


def segment(photo: Image.Image, folder: str | Path) -> np.ndarray:
    """The product mask (bool) from a segmentation model: the union of its non-background segments."""
    segments = _segmenter(folder)(photo)
    keep = [s for s in segments if str(s.get("label", "")).strip().lower() not in BACKGROUND_LABELS]
    mask = np.zeros((photo.height, photo.width), dtype=bool)
    for s in keep:
        m = s["mask"].convert("L")
        if m.size != photo.size:
            m = m.resize(photo.size, Image.Resampling.NEAREST)
        mask |= np.asarray(m) > 127
    return mask
