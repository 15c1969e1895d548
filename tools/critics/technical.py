"""The technical critic: resolution and aspect against what was asked, sharpness, exposure, blank frames.

Always runs, offline; judged at fixed working sizes so a verdict does not depend on the image's size.
"""

from __future__ import annotations

import math

import numpy as np

from tools.critics.images import luma
from tools.critics.inputs import CritiqueRequest, Thresholds
from tools.film import CriticResult, Issue


def sharpness(gray: np.ndarray) -> float:
    """Edge strength: the strongest 0.5% of |Laplacian| responses divided by the luminance range.

    A high percentile rather than the Laplacian's variance, because a storyboard panel is mostly flat colour and
    a variance would call it blurred; dividing by the range keeps a dark but sharp frame sharp.
    """
    lap = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4.0 * gray[1:-1, 1:-1]
    strength = float(np.percentile(np.abs(lap), 99.5))
    lo, hi = np.percentile(gray, [1, 99])
    return strength / max(float(hi - lo), 0.05)


def technical_critic(img, req: CritiqueRequest, th: Thresholds) -> CriticResult:
    """Resolution, aspect, blank frames, exposure and sharpness of one still."""
    w, h = img.size
    issues: list[Issue] = []
    review: list[Issue] = []
    asked_ar = req.width / req.height
    aspect_error = abs(math.log((w / h) / asked_ar))
    # Judge sharpness at one working scale (long side 512) so it does not depend on the size; never upscale,
    # which would blur a small image.
    gray = luma(img, min(512, max(img.size)))
    mean = float(gray.mean())
    std = float(gray.std())
    # Tails at a finer scale: a storyboard's thin black lines are few pixels, and downscaling greys them out.
    fine = luma(img, 1024) if max(img.size) > 1024 else luma(img)
    dark_tail, bright_tail = (float(v) for v in np.percentile(fine, [0.1, 99.9]))
    sharp = sharpness(gray)
    scores = {
        "tech.width": float(w),
        "tech.height": float(h),
        "tech.aspect_error": aspect_error,
        "tech.sharpness": sharp,
        "tech.exposure_mean": mean,
        "tech.exposure_dark_tail": dark_tail,
        "tech.exposure_bright_tail": bright_tail,
        "tech.clipped_dark": float((gray <= 2 / 255).mean()),
        "tech.clipped_bright": float((gray >= 253 / 255).mean()),
        "tech.luma_std": std,
    }

    def fail(category, reason):
        issues.append(Issue(category=category, reason=reason, critic="technical"))

    # A person who asks for 320x180 gets judged against 320x180; the floor guards images of unknown intent.
    min_side = min(th.min_side, req.width, req.height) if req.exact_size else th.min_side
    if min(w, h) < min_side:
        fail("resolution", f"{w}x{h} is below the minimum side of {min_side} px")
    elif req.exact_size and (
        w < req.width * (1 - th.size_tolerance) or h < req.height * (1 - th.size_tolerance)
    ):
        fail("resolution", f"{w}x{h} is smaller than the asked {req.width}x{req.height}")
    if req.exact_size and aspect_error > th.aspect_tolerance:
        fail(
            "aspect",
            f"aspect {w / h:.3f} ({w}x{h}) differs from the asked {asked_ar:.3f} ({req.width}x{req.height})",
        )
    if std < th.blank_std:
        fail("blank", f"the frame is blank or near-uniform (luminance spread {std:.4f})")
    else:
        # Exposure needs both a shifted mean and a missing tail: a night scene keeps its highlights, a white
        # storyboard panel keeps its dark lines; a badly exposed frame has lost one end of the histogram.
        if mean < th.dark_mean and bright_tail < th.dark_tail_max:
            fail(
                "exposure",
                f"under-exposed: mean luminance {mean:.2f}, brightest pixels only {bright_tail:.2f}",
            )
        elif (mean > th.bright_mean and dark_tail > th.bright_tail_min) or (
            mean > th.washed_mean and dark_tail > th.washed_dark_tail
        ):
            fail(
                "exposure", f"over-exposed: mean luminance {mean:.2f}, darkest pixels already {dark_tail:.2f}"
            )
        if sharp < th.sharpness_fail:
            fail("sharpness", f"blurred: edge strength {sharp:.3f} below {th.sharpness_fail}")
        elif sharp < th.sharpness_review:
            review.append(
                Issue(category="sharpness", reason=f"soft: edge strength {sharp:.3f}", critic="technical")
            )
    return CriticResult(name="technical", ran=True, passed=not issues, scores=scores, issues=issues + review)
