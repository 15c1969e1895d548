"""The clip check reads frames that ffmpeg has already scaled down: its scores agree with the full-frame
computation (every frame decoded at full size, PIL's L and BOX resize), and bad clips still fail."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest

from evals.calibrate_critic import storyboard_panel, write_clip
from tools.critics.inputs import Thresholds
from tools.critics.motion import _clip_frames, clip_critics, drift_critic, motion_critic

# Stated tolerance: the area filter and PIL's box filter average the same pixels but round differently, and
# ffmpeg scales before the YUV → RGB conversion; a frame differs by a few thousandths on average. The scores
# are means of such frames: they agree well inside the thresholds' scale (frozen 0.004, flicker 0.02).
FRAME_TOL = 0.006
SCORE_TOL = 0.002


def full_frames(path: str, size: int = 96) -> list[np.ndarray]:
    """The former computation: every frame at full size through the pipe, then L and a box resize."""
    import imageio_ffmpeg
    from PIL import Image

    reader = imageio_ffmpeg.read_frames(path)
    w, h = next(reader)["size"]
    scale = size / max(w, h)
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    return [
        np.asarray(
            Image.frombuffer("RGB", (w, h), raw, "raw", "RGB", 0, 1).convert("L").resize(small, Image.BOX),
            dtype=np.float32,
        )
        / 255.0
        for raw in reader
    ]


@pytest.mark.parametrize(("width", "height", "motion"), [(512, 512, "push-in"), (480, 272, "pan-left")])
def test_scaled_frames_score_as_the_full_frames(tmp_path, width, height, motion):
    from tools.animate import AnimateRequest, MotionBackend

    still = tmp_path / "still.png"
    storyboard_panel(random.Random(4), (width, height)).save(still)
    clip = tmp_path / "clip.mp4"
    MotionBackend().animate(AnimateRequest(image_path=str(still), output_path=str(clip), duration=1.5, fps=24,
                                           width=width, height=height, motion=motion))  # fmt: skip
    new, old = list(_clip_frames(str(clip))), full_frames(str(clip))
    assert len(new) == len(old) == 36
    assert max(new[0].shape) == 96 and abs(new[0].shape[0] - old[0].shape[0]) <= 1
    if new[0].shape != old[0].shape:  # one row fewer or more from ffmpeg's rounding: compare at one size
        from PIL import Image

        old = [np.asarray(Image.fromarray(f).resize(new[0].shape[::-1], Image.BILINEAR)) for f in old]
    diffs = [float(np.abs(a - b).mean()) for a, b in zip(new, old, strict=True)]
    assert max(diffs) < FRAME_TOL, diffs
    th = Thresholds()
    a, b = motion_critic(new, th, motion), motion_critic(old, th, motion)
    for key in ("motion.span", "motion.max_step", "motion.flicker"):
        assert a.scores[key] == pytest.approx(b.scores[key], abs=SCORE_TOL), key
    assert a.passed and b.passed
    da, db = drift_critic(new[0], str(still), th), drift_critic(old[0], str(still), th)
    assert da.scores["motion.drift"] == pytest.approx(db.scores["motion.drift"], abs=SCORE_TOL)
    assert da.scores["motion.drift"] < 0.05, "the still and the first frame in the same luma and range"


@pytest.mark.parametrize(("mode", "says"), [("frozen", "frozen"), ("flicker", "flicker")])
def test_frozen_and_flickering_clips_still_fail(tmp_path, caplog, mode, says):
    still = storyboard_panel(random.Random(7), (640, 360))
    still.save(tmp_path / "still.png")
    write_clip(tmp_path / "clip.mp4", still, frames=30, fps=12, mode=mode)
    with caplog.at_level(logging.WARNING, logger="imageio_ffmpeg"):
        results = clip_critics(
            str(tmp_path / "clip.mp4"), str(tmp_path / "still.png"), Thresholds(), "push-in"
        )
    motion = next(r for r in results if r.name == "motion")
    assert not motion.passed and says in motion.issues[0].reason
    assert motion.scores["motion.frames"] == 30
    assert not [r for r in caplog.records if "frame size" in r.getMessage()], "the size warning is silenced"
