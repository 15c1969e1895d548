"""One cut per platform: a run for TikTok and Instagram makes final.mp4 (9:16) and final-instagram.mp4 (1:1)."""

from __future__ import annotations

import json

import pytest

from agent import director
from agent.nodes import cut_platforms
from agent.settings import RunSettings
from tools.cut import probe
from tools.film import Brief

# A script with a line of dialogue: subtitles are copy, so the film has a line to carry on every cut.
BRIEF = Brief(
    text="INT. LIGHTHOUSE - NIGHT\n\nThe keeper climbs the stairs.\n\nKEEPER\nOne last time.\n\nHe lights the lamp.",
    lang="en",
)


@pytest.fixture(scope="module")
def two_platform_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("platforms") / "run"
    settings = RunSettings(
        run_dir=str(root), platform="tiktok", platforms=["tiktok", "instagram"], width=360, height=640,
        shots=2, duration=4.0, max_takes=1, crossfade=0.4,
    )  # fmt: skip
    return director.start(BRIEF, settings)


def test_every_platform_gets_its_cut_at_its_aspect(two_platform_run):
    film = two_platform_run
    root = film.run_dir
    main, square = probe(root / "final.mp4"), probe(root / "final-instagram.mp4")
    assert (main["width"], main["height"]) == (360, 640), "the first platform's cut is the run's own frame"
    assert (square["width"], square["height"]) == (1080, 1080), "instagram's preset size, 1:1"
    storyboard = json.loads((root / "storyboard.json").read_text())
    planned = sum(s["duration"] for s in storyboard["shots"])
    for info in (main, square):
        assert abs(info["duration"] - planned) < 0.15, (info["duration"], planned)
        assert [s["type"] for s in info["streams"]] == ["video", "subtitle"]
    srt, other_srt = (root / "final.srt").read_text(), (root / "final-instagram.srt").read_text()
    assert srt and srt == other_srt, "the same copy at the same times on every cut"


def test_cuts_are_listed_in_the_manifest_with_their_clips(two_platform_run):
    root = two_platform_run.run_dir
    manifest = json.loads((root / "manifest.json").read_text())
    cuts = manifest["cuts"]
    assert [(c["platform"], c["path"], c["srt"]) for c in cuts] == [
        ("tiktok", "final.mp4", "final.srt"),
        ("instagram", "final-instagram.mp4", "final-instagram.srt"),
    ]
    assert manifest["cut"] == cuts[0]
    framed = [c for c in manifest["clips"] if c["parameters"].get("platform") == "instagram"]
    assert sorted(c["path"] for c in framed) == ["clips/s01-instagram.mp4", "clips/s02-instagram.mp4"]
    for clip in framed:
        assert (clip["width"], clip["height"]) == (1080, 1080)
        assert clip["parameters"]["still"] == f"shots/{clip['shot_id']}/variants/instagram.png"
        assert (root / clip["parameters"]["still"]).is_file()
    variants = {(v["shot_id"], v["platform"], v["mode"]) for v in manifest["variants"]}
    assert variants == {("s01", "instagram", "outpaint"), ("s02", "instagram", "outpaint")}


def test_resume_of_a_finished_multi_platform_run_makes_nothing_again(two_platform_run):
    root = two_platform_run.run_dir
    before = {p.name: p.stat().st_mtime_ns for p in (root / "clips").glob("*-instagram.*")}
    again = director.resume(root)
    assert again.state.cut == two_platform_run.state.cut
    assert {p.name: p.stat().st_mtime_ns for p in (root / "clips").glob("*-instagram.*")} == before


def test_platforms_default_to_the_runs_own_and_are_deduplicated(tmp_path):
    assert cut_platforms(RunSettings(run_dir=str(tmp_path), platform="youtube")) == ["youtube"]
    s = RunSettings(run_dir=str(tmp_path), platforms=["TikTok", "4:5", "tiktok"])
    assert cut_platforms(s) == ["tiktok", "4:5"]


# --- the segmented encode: every frame once, in order ----------------------------------------------------------


@pytest.mark.parametrize(
    ("durations", "fade", "fps", "piece"),
    [
        ([1.5, 1.5, 1.5], 0.4, 24, None),
        ([2.9, 2.5, 3.1, 0.8], 0.4, 24, None),
        ([2.9, 2.5, 3.1, 0.8], 0.4, 24, 13),
        ([1.0, 1.0], 0.0, 12, 5),
        ([1.0, 1.0, 1.0], 0.01, 24, None),
        ([2.0], 0.0, 30, None),
    ],
)
def test_segments_cover_every_frame_once(durations, fade, fps, piece):
    from tools.cut_segments import plan_segments

    segments = plan_segments(durations, fade, fps, piece)
    if piece:
        assert all(s.frames <= piece for s in segments if s.b is None), "no body piece longer than asked"
    assert segments[0].start == 0
    for before, after in zip(segments, segments[1:], strict=False):
        assert before.end == after.start, "segments touch: no frame dropped or doubled"
    total = round((sum(durations) - fade * (len(durations) - 1)) * fps)
    assert abs(segments[-1].end - total) <= 1
    fades = [s for s in segments if s.b is not None]
    assert len(fades) == (len(durations) - 1 if fade * fps >= 0.5 else 0)
    for s in fades:
        assert abs(s.frames - fade * fps) <= 1 and s.b == s.a + 1


def test_segmented_cut_keeps_the_order_and_blends_the_fade(tmp_path):
    """Red then blue with a 0.5 s fade at 12 fps: red body, a blend in the fade, blue body, every frame there."""
    import av
    import numpy as np
    from PIL import Image

    from tools.animate import AnimateRequest, MotionBackend
    from tools.cut import CutConfig, cut_film
    from tools.film import Clip, Shot

    shots, clips = [], []
    for i, colour in enumerate([(220, 20, 20), (20, 20, 220)], start=1):
        still = tmp_path / f"s{i}.png"
        Image.new("RGB", (96, 64), colour).save(still)
        made = MotionBackend().animate(
            AnimateRequest(image_path=str(still), output_path=str(tmp_path / f"s0{i}.mp4"), duration=1.5,
                           fps=12, width=96, height=64, motion="static")
        )  # fmt: skip
        shots.append(Shot(id=f"s0{i}", index=i, kind="insert", description="a colour", camera="locked off",
                          lighting="flat", mood="plain", prompt="a colour", duration=1.5))  # fmt: skip
        clips.append(Clip(shot_id=f"s0{i}", take=1, path=f"s0{i}.mp4", backend=made.backend, model=made.model,
                          motion="static", duration=1.5, fps=12, width=96, height=64))  # fmt: skip
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=96, height=64, fps=12, crossfade=0.5, voice=False))
    with av.open(str(tmp_path / cut.path)) as container:
        frames = [f.to_ndarray(format="rgb24").mean(axis=(0, 1)) for f in container.decode(video=0)]
    assert len(frames) == round((3.0 - 0.5) * 12)
    red, blue = frames[3], frames[-3]
    assert red[0] > 150 > red[2] and blue[2] > 150 > blue[0]
    middle = frames[round(1.25 * 12)]  # the middle of the fade (it runs 1.0-1.5 s)
    assert 60 < middle[0] < 170 and 60 < middle[2] < 170, middle
    reds = np.array([f[0] for f in frames])
    assert (np.diff(reds) <= 8).all(), "red only ever fades out: the segments are in order"


def test_segments_prepared_while_shooting_are_what_the_cut_uses(tmp_path, monkeypatch):
    """A branch's head start: with two of three clips made, their segments are encoded ahead; once the third
    exists the cut encodes only what involves it, and the film is the same as one cut from nothing."""
    import av
    from PIL import Image

    import tools.cut_segments as segs
    from tools.animate import AnimateRequest, MotionBackend
    from tools.cut import CutConfig, cut_film, prepare_cut
    from tools.film import Clip, Shot

    def build(root):
        shots, clips = [], []
        for i, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)], start=1):
            still = root / f"s{i}.png"
            Image.new("RGB", (96, 64), colour).save(still)
            duration = 1.5 + (0.4 if i < 3 else 0.0)  # the branch's clip: its shot plus the fade's tail
            made = MotionBackend().animate(AnimateRequest(image_path=str(still), output_path=str(root / f"s0{i}.mp4"),
                                                          duration=duration, fps=12, width=96, height=64,
                                                          motion="push-in"))  # fmt: skip
            shots.append(Shot(id=f"s0{i}", index=i, kind="insert", description="a colour", camera="locked off",
                              lighting="flat", mood="plain", prompt="a colour", duration=1.5,
                              subtitle=f"line {i}"))  # fmt: skip
            clips.append(Clip(shot_id=f"s0{i}", take=1, path=f"s0{i}.mp4", backend=made.backend,
                              model=made.model, motion="push-in", duration=duration, fps=12, width=96,
                              height=64))  # fmt: skip
        return shots, clips

    config = CutConfig(width=96, height=64, fps=12, crossfade=0.4, voice=False)
    shots, clips = build(tmp_path)
    made_ahead = prepare_cut(shots, {"s01": clips[0], "s02": clips[1], "s03": None}, tmp_path, config)
    assert made_ahead == 3, "bodies of s01 and s02 and the fade between them"
    encoded = []
    real = segs._encode_segment
    monkeypatch.setattr(
        segs, "_encode_segment", lambda seg, *a, **k: (encoded.append(seg), real(seg, *a, **k))
    )
    cut = cut_film(shots, clips, tmp_path, config)
    assert sorted((s.a, s.b) for s in encoded) == [(1, 2), (2, None)], "only the segments with s03 in them"
    monkeypatch.setattr(segs, "_encode_segment", real)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shots2, clips2 = build(fresh)
    cut2 = cut_film(shots2, clips2, fresh, config)

    def frames(path):
        with av.open(str(path)) as c:
            return [
                f.to_ndarray(format="rgb24").mean(axis=(0, 1)).round(1).tolist() for f in c.decode(video=0)
            ]

    assert frames(tmp_path / cut.path) == frames(fresh / cut2.path)
    assert len(list((tmp_path / "segments" / "final").glob("*.mp4"))) == 5, (
        "the cut's segments, nothing stale"
    )


def test_shot_branches_prepare_the_cut_so_the_cut_only_joins(tmp_path, monkeypatch):
    """The overlap in a real run: each shot branch encodes its segments once its clip exists; the cut node then
    encodes none and joins them in shot order, and the film lasts what the storyboard says."""
    import agent.delivery
    from evals.segment_spy import SegmentSpy

    monkeypatch.setattr(agent.delivery, "PREPARE_MIN_CPUS", 1)  # this machine's cores are few; the hook runs
    encoded = SegmentSpy().install(monkeypatch.setattr).made
    settings = RunSettings(run_dir=str(tmp_path / "run"), width=160, height=96, shots=3, duration=6.0,
                           max_takes=1, voice=False, crossfade=0.4)  # fmt: skip
    film = director.start(BRIEF, settings)
    assert film.state.cut is not None
    assert [e for e in encoded if e[0] == "cut"] == [], "every segment was made by the shot branches"
    made = [(a, b) for _, a, b in encoded]
    assert len(made) == len(set(made)), f"each segment made once: {made}"
    assert set(made) == {(0, None), (0, 1), (1, None), (1, 2), (2, None)}
    info = probe(film.run_dir / "final.mp4")
    storyboard = json.loads((film.run_dir / "storyboard.json").read_text())
    assert abs(info["duration"] - sum(s["duration"] for s in storyboard["shots"])) < 0.15
