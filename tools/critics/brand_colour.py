"""The brand-colour critic: do the image's dominant colours keep to the brand's palette?

The image (without the product, when its mask is given: the product's own colours are the photo's, not the
art director's) is reduced to its dominant colours by k-means in CIE Lab (OpenCV, seeded, so a verdict repeats),
and each colour is matched to the nearest palette colour by CIEDE2000 ΔE (scikit-image). The on-brand share is
the share of pixels whose dominant colour lies within `near` ΔE of a palette colour. Below `review_share` the
image is flagged as off-brand (B, a person looks); below `fail_share` it fails (C, re-made).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from tools.film import CriticResult, Issue


class BrandColourLimits(BaseModel):
    near: float = Field(
        default=15.0, description="CIEDE2000 ΔE within which a colour counts as a brand colour."
    )
    review_share: float = Field(
        default=0.4, description="On-brand share of the image below which it is flagged."
    )
    fail_share: float = Field(default=0.1, description="On-brand share below which the image fails.")
    clusters: int = Field(default=6, ge=1, le=16, description="Dominant colours looked for (k of k-means).")


def _hex_lab(palette: list[str]) -> np.ndarray:
    from skimage.color import rgb2lab

    from tools.brand import rgb

    if not palette:
        raise ValueError("the brand palette is empty; give at least one #RRGGBB colour")
    return rgb2lab(np.array([[rgb(c) for c in palette]], dtype=np.float64) / 255.0)[0]


def dominant_colours(
    image: Image.Image, exclude: Image.Image | None = None, k: int = 6
) -> list[tuple[tuple[int, int, int], float]]:
    """[(rgb, share)] of the image's dominant colours, largest first, by k-means in Lab at a 128 px scale."""
    import cv2
    from skimage.color import lab2rgb, rgb2lab

    scale = 128 / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = np.asarray(image.convert("RGB").resize(size, Image.Resampling.BOX))
    keep = np.ones(small.shape[:2], bool)
    if exclude is not None:
        keep = np.asarray(exclude.convert("L").resize(size, Image.Resampling.BOX)) < 128
    lab = rgb2lab(small / 255.0)[keep].astype(np.float32)
    if lab.shape[0] == 0:
        return []
    k = min(k, lab.shape[0])
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
    _, labels, centres = cv2.kmeans(lab, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=k) / labels.size
    rgbs = np.clip(np.rint(lab2rgb(centres[None].astype(np.float64))[0] * 255), 0, 255).astype(int)
    order = np.argsort(-shares)
    return [(tuple(int(v) for v in rgbs[i]), float(shares[i])) for i in order if shares[i] > 0]


def brand_colour(
    image: Image.Image,
    palette: list[str],
    exclude: Image.Image | None = None,
    limits: BrandColourLimits | None = None,
) -> CriticResult:
    """Dominant colours against the palette (CIEDE2000 ΔE in Lab); flags or fails an off-brand image."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    lim = limits or BrandColourLimits()
    brand = _hex_lab(palette)
    colours = dominant_colours(image, exclude, lim.clusters)
    if not colours:
        return CriticResult(name="brand_colour", ran=False, not_run_reason="no pixels outside the product")
    lab = rgb2lab(np.array([[c for c, _ in colours]], dtype=np.float64) / 255.0)[0]
    delta = deltaE_ciede2000(lab[:, None, :], brand[None, :, :])  # (colours, palette)
    nearest = delta.min(axis=1)
    shares = np.array([s for _, s in colours])
    on_brand = float(shares[nearest <= lim.near].sum())
    weighted = float((nearest * shares).sum())
    scores = {
        "brand.on_brand_share": on_brand,
        "brand.delta_e": weighted,
        "brand.colours": float(len(colours)),
    }
    off = [
        f"#{r:02X}{g:02X}{b:02X} ({share:.0%}, ΔE {d:.0f})"
        for ((r, g, b), share), d in zip(colours, nearest)
        if d > lim.near and share >= 0.05
    ]
    issues = []
    passed = on_brand >= lim.fail_share
    if on_brand < lim.review_share:
        reason = (
            f"off-brand colours: only {on_brand:.0%} of the image is within ΔE2000 {lim.near:g} of the palette; "
            f"dominant off-palette colours {', '.join(off[:4])}"
        )
        issues.append(Issue(category="style", reason=reason, critic="brand_colour"))
    return CriticResult(name="brand_colour", ran=True, passed=passed, scores=scores, issues=issues)
