"""The clip critics (offline): `motion` (frozen or flickering frames) and `drift` (the clip's first frame against
the still it was animated from)."""

from __future__ import annotations

import logging

import numpy as np

from tools.critics.images import load_rgb
from tools.critics.inputs import Thresholds
from tools.film import CriticResult, Issue


def _clip_frames(path: str, size: int = 96):
    """Yield the clip's frames as small luminance arrays (area-averaged: codec noise and sub-pixel motion fade).

    ffmpeg scales each frame down before it leaves the decoder, so a 1024² clip sends ~28 KB a frame through
    the pipe instead of 3 MB; the per-frame mean difference from box-averaging the full frames in Python is
    about 0.003 (tests/test_motion_clip_check.py). RGB → L stays PIL's, full range, as the drift critic's still:
    ffmpeg's gray would be limited range and shift every drift score.
    """
    import imageio_ffmpeg
    from PIL import Image

    _quiet_size_warning()
    scale = f"scale={size}:{size}:force_original_aspect_ratio=decrease:flags=area"
    reader = imageio_ffmpeg.read_frames(path, output_params=["-vf", scale])
    meta = next(reader)
    w, h = meta["size"]  # the scaled size: what each raw frame holds
    for raw in reader:
        frame = Image.frombuffer("RGB", (w, h), raw, "raw", "RGB", 0, 1)
        yield np.asarray(frame.convert("L"), dtype=np.float32) / 255.0


class _SizeWarning(logging.Filter):
    """imageio_ffmpeg warns that the frames read differ in size from the source: here they are meant to."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()


def _quiet_size_warning() -> None:
    log = logging.getLogger("imageio_ffmpeg")
    if not any(isinstance(f, _SizeWarning) for f in log.filters):
        log.addFilter(_SizeWarning())


def _failed(category: str, reason: str) -> CriticResult:
    issue = Issue(category=category, reason=reason, critic="motion")
    return CriticResult(name="motion", ran=True, passed=False, issues=[issue])


def motion_critic(frames: list[np.ndarray], th: Thresholds, motion: str | None) -> CriticResult:
    """Frozen or flickering. A `static` clip is meant to stand still: frozen is recorded, not failed."""
    stack = np.stack(frames)
    steps = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))
    means = stack.mean(axis=(1, 2))
    # Flicker is a spike: a frame that jumps away from its neighbours and back. A camera move or a fade changes
    # brightness steadily in one direction and so has no spike.
    d = np.diff(means)
    spikes = np.where(d[:-1] * d[1:] < 0, np.minimum(np.abs(d[:-1]), np.abs(d[1:])), 0.0)
    span = float(np.abs(stack[-1] - stack[0]).mean())
    frozen = span < th.frozen_motion and float(steps.max()) < th.frozen_motion
    scores = {
        "motion.frames": float(len(frames)),
        "motion.span": span,
        "motion.max_step": float(steps.max()),
        "motion.flicker": float(spikes.max()) if spikes.size else 0.0,
        "motion.frozen": 1.0 if frozen else 0.0,
    }
    issues = []
    if frozen and motion != "static":
        reason = f"frozen: the clip barely changes (difference {span:.4f})"
        issues.append(Issue(category="motion", reason=reason, critic="motion"))
    if scores["motion.flicker"] > th.flicker_jump:
        reason = f"flicker: brightness spikes by {scores['motion.flicker']:.3f} between frames"
        issues.append(Issue(category="motion", reason=reason, critic="motion"))
    return CriticResult(name="motion", ran=True, passed=not issues, scores=scores, issues=issues)


def drift_critic(first_frame: np.ndarray, still_path: str, th: Thresholds) -> CriticResult:
    """How far the clip's first frame is from the still it was animated from (at the frames' small size)."""
    from PIL import Image

    try:
        still = load_rgb(still_path).convert("L").resize(first_frame.shape[::-1], Image.BOX)
    except (OSError, ValueError) as e:
        return CriticResult(name="drift", ran=False, not_run_reason=f"still {still_path} unreadable: {e}")
    drift = float(np.abs(np.asarray(still, dtype=np.float32) / 255.0 - first_frame).mean())
    issues = []
    if drift > th.drift_fail:
        reason = f"first frame drifts from the still (difference {drift:.3f})"
        issues.append(Issue(category="motion", reason=reason, critic="drift"))
    return CriticResult(
        name="drift", ran=True, passed=not issues, scores={"motion.drift": drift}, issues=issues
    )


def clip_critics(clip_path: str, still_path: str, th: Thresholds, motion: str | None) -> list[CriticResult]:
    """Every clip critic's result; a clip that cannot be decoded, or has under two frames, fails `motion`."""
    try:
        frames = list(_clip_frames(clip_path))
    except (OSError, RuntimeError, StopIteration) as e:
        return [_failed("backend", f"clip {clip_path} cannot be decoded: {type(e).__name__}: {e}")]
    if len(frames) < 2:
        return [_failed("motion", f"clip {clip_path} has {len(frames)} frame(s)")]
    return [motion_critic(frames, th, motion), drift_critic(frames[0], still_path, th)]
