"""The technical critic: resolution and aspect against what was asked, sharpness, exposure, blank frames.

Always runs, offline; judged at fixed working sizes so a verdict does not depend on the image's size.

White is judged by what is clipped, not by the mean: a clipped region with a crisp edge (a product's white
background, a white panel, a white label) or a smooth one (a shadow fading into white) is flat by design; a
clipped region whose edge is near-white texture is detail the exposure burnt away. A frame whose flat white
background reaches the border and covers a good part of it is a product on white: its mean and its missing
shadows are the point of the picture, so only what is burnt away counts against its exposure.
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


CLIPPED = 253 / 255
SOFT_EDGE = 0.85  # luminance 3-4 px outside a clipped region that says the clip cut through detail
TEXTURE_STD = 0.01  # local (5x5) high-pass luminance there that says texture, not a smooth shadow or sky


def white_background(gray: np.ndarray) -> np.ndarray:
    """The clipped (>= 253/255) pixels connected to the frame's border, as a bool mask."""
    import cv2

    clipped = (gray >= CLIPPED).astype(np.uint8)
    count, labels = cv2.connectedComponents(clipped, connectivity=4)
    if count <= 1:
        return np.zeros(gray.shape, bool)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge != 0])


def blown_out(gray: np.ndarray) -> np.ndarray:
    """Clipped pixels near a soft, textured edge: where the clip cut through detail (the detail is lost).

    The edge is read 3-4 px outside the clipped area (past an anti-aliased or feathered rim): a drawn flat white
    (a product's background, a panel, a label) meets something distinctly darker there, and a shadow or a sky
    fading into white is smooth there; a burnt-out texture is still near-white and still textured. Clipped
    pixels within 2% of the frame of such a soft edge are blown out; the middle of a large flat white is not.
    """
    import cv2

    clipped = (gray >= CLIPPED).astype(np.uint8)
    if not clipped.any():
        return clipped.astype(bool)
    ring = cv2.dilate(clipped, np.ones((9, 9), np.uint8)).astype(bool)
    ring &= ~cv2.dilate(clipped, np.ones((5, 5), np.uint8)).astype(bool)
    g = gray.astype(np.float32)
    fine = g - cv2.GaussianBlur(g, (0, 0), 1.5)  # detail finer than a shadow's or a sky's smooth fade
    # a box blur of squares can round a hair below 0 on flat areas; clamp it before the root
    texture = np.sqrt(np.maximum(cv2.blur(fine * fine, (5, 5)), 0.0)) >= TEXTURE_STD
    soft = ring & (gray >= SOFT_EDGE) & texture
    if not soft.any():
        return np.zeros(gray.shape, bool)
    distance = cv2.distanceTransform((~soft).astype(np.uint8), cv2.DIST_L2, 3)
    return clipped.astype(bool) & (distance <= max(4.0, 0.02 * max(gray.shape)))


def technical_critic(img, req: CritiqueRequest, th: Thresholds) -> CriticResult:
    """Resolution, aspect, blank frames, exposure and sharpness of one still."""
    scores, on_white = _measure(img, req, th)
    issues = _size_issues(img.size, req, th, scores["tech.aspect_error"])
    review: list[Issue] = []
    std = scores["tech.luma_std"]
    if std < th.blank_std:
        issues.append(_issue("blank", f"the frame is blank or near-uniform (luminance spread {std:.4f})"))
    else:
        issues += _exposure_issues(scores, th, on_white)
        sharp = scores["tech.sharpness"]
        if sharp < th.sharpness_fail:
            issues.append(
                _issue("sharpness", f"blurred: edge strength {sharp:.3f} below {th.sharpness_fail}")
            )
        elif sharp < th.sharpness_review:
            review.append(_issue("sharpness", f"soft: edge strength {sharp:.3f}"))
    return CriticResult(name="technical", ran=True, passed=not issues, scores=scores, issues=issues + review)


def _issue(category: str, reason: str) -> Issue:
    return Issue(category=category, reason=reason, critic="technical")


def _measure(img, req: CritiqueRequest, th: Thresholds) -> tuple[dict[str, float], bool]:
    """The still's technical scores, and whether it is a product on a white background."""
    w, h = img.size
    aspect_error = abs(math.log((w / h) / (req.width / req.height)))
    # Judge sharpness at one working scale (long side 512) so it does not depend on the size; never upscale,
    # which would blur a small image.
    gray = luma(img, min(512, max(img.size)))
    # Tails at a finer scale: a storyboard's thin black lines are few pixels, and downscaling greys them out.
    fine = luma(img, 1024) if max(img.size) > 1024 else luma(img)
    dark_tail, bright_tail = (float(v) for v in np.percentile(fine, [0.1, 99.9]))
    blown = blown_out(gray)
    background = white_background(gray) & ~blown
    white_share = float(background.mean())
    # Blown-out detail as a share of what is not flat white background, so a small product on a large white
    # frame is judged on itself.
    content = max(int((~background).sum()), 1)
    border = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    on_white = white_share >= th.white_background_share and border.mean() >= 0.6 and white_share < 0.999
    scores = {
        "tech.width": float(w),
        "tech.height": float(h),
        "tech.aspect_error": aspect_error,
        "tech.sharpness": sharpness(gray),
        "tech.exposure_mean": float(gray.mean()),
        "tech.exposure_dark_tail": dark_tail,
        "tech.exposure_bright_tail": bright_tail,
        "tech.clipped_dark": float((gray <= 2 / 255).mean()),
        "tech.clipped_bright": float((gray >= 253 / 255).mean()),
        "tech.luma_std": float(gray.std()),
        "tech.white_background": white_share,
        "tech.blown": float(blown.sum()) / content,
    }
    return scores, on_white


def _size_issues(
    size: tuple[int, int], req: CritiqueRequest, th: Thresholds, aspect_error: float
) -> list[Issue]:
    w, h = size
    issues = []
    # A person who asks for 320x180 gets judged against 320x180; the floor guards images of unknown intent.
    min_side = min(th.min_side, req.width, req.height) if req.exact_size else th.min_side
    if min(w, h) < min_side:
        issues.append(_issue("resolution", f"{w}x{h} is below the minimum side of {min_side} px"))
    elif req.exact_size and (
        w < req.width * (1 - th.size_tolerance) or h < req.height * (1 - th.size_tolerance)
    ):
        issues.append(_issue("resolution", f"{w}x{h} is smaller than the asked {req.width}x{req.height}"))
    if req.exact_size and aspect_error > th.aspect_tolerance:
        asked_ar = req.width / req.height
        issues.append(_issue(
            "aspect",
            f"aspect {w / h:.3f} ({w}x{h}) differs from the asked {asked_ar:.3f} ({req.width}x{req.height})",
        ))  # fmt: skip
    return issues


def _exposure_issues(scores: dict[str, float], th: Thresholds, on_white: bool) -> list[Issue]:
    """Exposure needs both a shifted mean and a missing tail: a night scene keeps its highlights, a white
    storyboard panel keeps its dark lines; a badly exposed frame has lost one end of the histogram."""
    mean, blown_share = scores["tech.exposure_mean"], scores["tech.blown"]
    dark_tail, bright_tail = scores["tech.exposure_dark_tail"], scores["tech.exposure_bright_tail"]
    if mean < th.dark_mean and bright_tail < th.dark_tail_max:
        return [
            _issue(
                "exposure",
                f"under-exposed: mean luminance {mean:.2f}, brightest pixels only {bright_tail:.2f}",
            )
        ]
    if blown_share > th.blown_fail:
        return [_issue(
            "exposure",
            f"over-exposed: {blown_share:.0%} of the picture (outside a flat white background) is clipped "
            "to white where there was detail",
        )]  # fmt: skip
    if not on_white and (
        (mean > th.bright_mean and dark_tail > th.bright_tail_min)
        or (mean > th.washed_mean and dark_tail > th.washed_dark_tail)
    ):
        # On a white background the mean and the missing shadows are the point of the picture (a pale
        # product has no dark tones either): there, over-exposure is what is clipped, checked above.
        return [
            _issue(
                "exposure", f"over-exposed: mean luminance {mean:.2f}, darkest pixels already {dark_tail:.2f}"
            )
        ]
    return []
