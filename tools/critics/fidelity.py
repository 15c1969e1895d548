"""The fidelity critic: is the product in the result still the photographed product, pixel for pixel?

The cut-out is scaled to the product's box in the result (the box of `mask_in_result`, exactly as
tools/composite.py placed it) and compared inside its opaque core (the soft rim legitimately blends with the
scene, so it is left out):
- structure by SSIM (scikit-image, Gaussian-weighted 11x11 windows, on luminance): a blur, a shift, a redrawn
  logo or a generated product lowers it. Besides the mean, the share of the core whose local SSIM falls below
  0.9 catches a change to a small part (a label) that the mean would average away;
- detail by edge energy (mean |Laplacian|) against the photo's: a blur keeps a flat product's SSIM high but
  takes its edges;
- colour by CIEDE2000 ΔE in Lab (scikit-image): a recolour keeps the structure but moves ΔE.
A composite that kept the photo's pixels scores SSIM 1 and ΔE 0.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from tools.cutout import Cutout
from tools.film import CriticResult, Issue


class FidelityLimits(BaseModel):
    """The fidelity critic's limits: an untouched composite scores SSIM 1, ΔE 0 and detail 1."""

    ssim_fail: float = Field(
        default=0.95, description="Mean SSIM in the product's core below which it changed."
    )
    ssim_review: float = Field(default=0.99, description="Mean SSIM below which the product is flagged.")
    changed_fail: float = Field(
        default=0.01, description="Share of the core with local SSIM < 0.9 above which part of it changed."
    )
    detail_fail: float = Field(
        default=0.8,
        description="Share of the photo's edge energy (mean |Laplacian|) below which it was blurred.",
    )
    delta_e_fail: float = Field(default=3.0, description="Mean CIEDE2000 ΔE above which it was recoloured.")
    delta_e_review: float = Field(default=1.5, description="Mean ΔE above which the colour is flagged.")
    coverage_fail: float = Field(
        default=0.9,
        description="Share of the product's core the mask must still cover (not covered by copy).",
    )


def _core(alpha: np.ndarray) -> np.ndarray:
    """Fully opaque pixels at least two pixels inside the product's edge."""
    import cv2

    return cv2.erode((alpha == 255).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def _detail(gray: np.ndarray, core: np.ndarray) -> float:
    """Edge energy: mean |Laplacian| inside the core (a blur lowers it, whatever the product's colours)."""
    import cv2

    return float(np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F))[core].mean())


def _reference(cutout: Cutout, size: tuple[int, int]) -> np.ndarray:
    from tools.composite import scaled_product

    return np.asarray(scaled_product(cutout, *size))


def fidelity(
    result: Image.Image | str,
    cutout: Cutout,
    mask_in_result: Image.Image,
    limits: FidelityLimits | None = None,
) -> CriticResult:
    """Compare the product's pixels in `result` with the cut-out, inside the product's mask."""
    from tools.critics.images import load_rgb

    image = load_rgb(result) if isinstance(result, str) else result.convert("RGB")
    mask = np.asarray(mask_in_result.convert("L"))
    if mask.shape != (image.height, image.width):
        raise ValueError(
            f"the product mask is {mask.shape[1]}x{mask.shape[0]}, the result {image.width}x{image.height}"
        )
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        reason = "the product mask is empty: the product is not in the result"
        issue = Issue(category="product", reason=reason, critic="fidelity")
        return CriticResult(name="fidelity", ran=True, passed=False, issues=[issue])
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    x0, y0, x1, y1 = box
    ref = _reference(cutout, (x1 - x0, y1 - y0))
    core = _core(ref[..., 3])
    if core.sum() < 16:
        return CriticResult(name="fidelity", ran=False, not_run_reason="the product is too small to compare")
    scores = _compare(ref, np.asarray(image)[y0:y1, x0:x1], core)
    scores["fidelity.coverage"] = float((mask[y0:y1, x0:x1] == 255)[core].mean())
    fails, flags = _judge(scores, limits or FidelityLimits())
    issues = [Issue(category="product", reason=r, critic="fidelity", region=box) for r in fails + flags]
    return CriticResult(name="fidelity", ran=True, passed=not fails, scores=scores, issues=issues)


def _gray(a: np.ndarray) -> np.ndarray:
    return a[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _compare(ref: np.ndarray, got: np.ndarray, core: np.ndarray) -> dict[str, float]:
    """SSIM (mean and share of the core changed), edge energy and ΔE of `got` against the photo, in the core."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    # Outside the core both sides get the photo's values, so a window at the core's edge compares core only.
    g_ref = _gray(ref)
    g_got = np.where(core, _gray(got), g_ref)
    _, ssim_map = structural_similarity(
        g_ref,
        g_got,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    delta = deltaE_ciede2000(rgb2lab(ref[..., :3][core] / 255.0), rgb2lab(got[core] / 255.0))
    return {
        "fidelity.ssim": float(ssim_map[core].mean()),
        "fidelity.changed": float((ssim_map[core] < 0.9).mean()),
        "fidelity.delta_e": float(delta.mean()),
        "fidelity.delta_e_p95": float(np.percentile(delta, 95)),
        "fidelity.detail": _detail(g_got, core) / max(_detail(g_ref, core), 1e-6),
    }


def _judge(scores: dict[str, float], lim: FidelityLimits) -> tuple[list[str], list[str]]:
    """(what fails the take, what only flags it for review), from the scores and the limits."""
    coverage, ssim, changed = scores["fidelity.coverage"], scores["fidelity.ssim"], scores["fidelity.changed"]
    detail, de_mean = scores["fidelity.detail"], scores["fidelity.delta_e"]
    fails, flags = [], []
    if coverage < lim.coverage_fail:
        fails.append(f"only {coverage:.0%} of the product is in the mask (covered by something)")
    if ssim < lim.ssim_fail:
        fails.append(f"the product changed: SSIM {ssim:.3f} inside its mask (limit {lim.ssim_fail})")
    elif changed > lim.changed_fail:
        fails.append(
            f"part of the product changed: {changed:.1%} of it differs from the photo (local SSIM < 0.9)"
        )
    elif detail < lim.detail_fail:
        fails.append(f"the product lost detail (blurred): {detail:.0%} of the photo's edge energy is left")
    elif ssim < lim.ssim_review:
        flags.append(f"the product differs slightly from the photo: SSIM {ssim:.3f}")
    if de_mean > lim.delta_e_fail:
        fails.append(
            f"the product was recoloured: mean ΔE2000 {de_mean:.1f} from the photo (limit {lim.delta_e_fail})"
        )
    elif de_mean > lim.delta_e_review:
        flags.append(f"the product's colour drifted: mean ΔE2000 {de_mean:.1f}")
    return fails, flags
