"""A motion clip rendered in parts at once (a machine with cores to spare) is the clip one process makes: the
same frames, count and length, joined without a seam."""

from __future__ import annotations

import random

import numpy as np
import pytest

import tools.animate as A
from evals.calibrate_critic import storyboard_panel
from tools.cut import probe


def frames(path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    w, h = next(reader)["size"]
    return [np.frombuffer(raw, np.uint8).reshape(h, w, 3).astype(np.float32) for raw in reader]


@pytest.mark.parametrize("motion", ["push-in", "drift"])
def test_a_clip_in_parts_has_the_frames_of_one_process(tmp_path, monkeypatch, motion):
    still = tmp_path / "still.png"
    storyboard_panel(random.Random(3), (320, 192)).save(still)

    def make(name: str):
        req = A.AnimateRequest(image_path=str(still), output_path=str(tmp_path / "clips" / name), duration=2.5,
                               fps=24, width=320, height=192, motion=motion, seed=1)  # fmt: skip
        return A.MotionBackend().animate(req)

    monkeypatch.setattr(A, "PARTS_MIN_CPUS", 10**6)
    whole = make("whole.mp4")
    monkeypatch.setattr(A, "PARTS_MIN_CPUS", 1)
    parted = make("parts.mp4")
    assert (whole.parameters["parts"], parted.parameters["parts"]) == (1, 2)
    a, b = probe(whole.path), probe(parted.path)
    assert a["duration"] == pytest.approx(b["duration"], abs=1e-6) == pytest.approx(60 / 24, abs=1e-6)
    assert (b["width"], b["height"], b["fps"]) == (320, 192, 24)
    fa, fb = frames(whole.path), frames(parted.path)
    assert len(fa) == len(fb) == 60
    # The zoompan frames are the same; only x264's choices differ (part 2 starts on a keyframe).
    diffs = [float(np.abs(x - y).mean()) for x, y in zip(fa, fb, strict=True)]
    assert max(diffs) < 1.5, diffs
    # No seam: the step from the last frame of part 1 to the first of part 2 is the move's own step.
    steps = [float(np.abs(fb[i + 1] - fb[i]).mean()) for i in range(len(fb) - 1)]
    assert steps[29] < 2 * max(steps[27], steps[31]) + 0.5, steps[25:34]
    assert not list((tmp_path / "clips").glob(".*")), "no temporary part left behind"


def test_parts_only_on_a_machine_with_cores_to_spare(monkeypatch):
    monkeypatch.setattr(A.os, "cpu_count", lambda: 2)
    assert A._parts(70) == 1
    monkeypatch.setattr(A.os, "cpu_count", lambda: 16)
    assert A._parts(70) == 2 and A._parts(120) == 4 and A._parts(30) == 1


def test_ffmpeg_run_below_this_process(tmp_path, monkeypatch):
    """Work done ahead runs `nice` steps below the run, as ffmpeg's own priority."""
    calls = []
    real = A.os.setpriority

    def record(which, who, prio):
        calls.append((who, prio))
        real(which, who, prio)

    monkeypatch.setattr(A.os, "setpriority", record)
    A.run_ffmpeg(["-f", "lavfi", "-i", "color=s=32x32:d=0.2", str(tmp_path / "a.mp4")], nice=3)
    A.run_ffmpeg(["-f", "lavfi", "-i", "color=s=32x32:d=0.2", str(tmp_path / "b.mp4")])
    assert len(calls) == 1 and calls[0][1] == A.os.getpriority(A.os.PRIO_PROCESS, 0) + 3
    assert (tmp_path / "a.mp4").stat().st_size > 0 and (tmp_path / "b.mp4").stat().st_size > 0
    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        A.run_ffmpeg(["-i", str(tmp_path / "missing.png"), str(tmp_path / "c.mp4")], nice=3)
