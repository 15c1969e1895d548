"""The segments the shot branches prepare are exactly the ones the cut uses: with the voice re-timing the film,
and with no voice to speak, the cut node encodes no segment of its own and only joins."""

from __future__ import annotations

import json
import time

import pytest

import agent.delivery
from agent import director
from agent.settings import RunSettings
from evals.segment_spy import SegmentSpy
from tools.cut import probe
from tools.film import Brief

# The end card speaks its copy, a line longer than its shot: it re-times the shots around it.
BRIEF = Brief(
    text="A 6-second film for a lighthouse museum. The keeper climbs the long stairs to the lamp room. "
    "He lights the lamp: “Still shining for every ship that comes in late at night.”",
    lang="en",
)


@pytest.fixture
def encoded(monkeypatch):
    """Every segment encode, tagged with who made it: a shot branch or the cut node."""
    monkeypatch.setattr(agent.delivery, "PREPARE_MIN_CPUS", 1)  # this machine's cores are few; the hook runs
    return SegmentSpy().install(monkeypatch.setattr).made


def run_film(tmp_path):
    settings = RunSettings(run_dir=str(tmp_path / "run"), width=160, height=96, shots=3, duration=6.0,
                           max_takes=1, crossfade=0.4)  # fmt: skip
    film = director.start(BRIEF, settings)
    assert film.state.cut is not None
    return film


def test_a_voiced_film_is_prepared_as_the_cut_times_it(tmp_path, encoded):
    from tools.voice import VoiceUnavailable, offline_engine

    try:
        offline_engine("en")
    except VoiceUnavailable:
        pytest.skip("no offline English voice installed")
    film = run_film(tmp_path)
    audio = film.state.cut.audio
    assert audio is not None and audio.voice, "the end card's copy is spoken"
    storyboard = json.loads((film.run_dir / "storyboard.json").read_text())
    clips = [probe(film.run_dir / "clips" / f"{s['id']}.mp4")["duration"] for s in storyboard["shots"]]
    film_length = probe(film.run_dir / "final.mp4")["duration"]
    retimed = abs(film_length - (sum(clips) - 0.4 * (len(clips) - 1))) < 0.15
    assert retimed, "the line fits: the film keeps its length while its shots are re-timed"
    assert [e for e in encoded if e[0] == "cut"] == [], (
        f"the cut encoded what the branches had not: {encoded}"
    )
    made = [(a, b) for _, a, b in encoded]
    assert len(made) == len(set(made)), f"each segment made once: {made}"


def test_a_film_without_a_voice_is_prepared_without_voice_onsets(tmp_path, encoded, monkeypatch):
    """No engine to speak the line (none installed, no endpoint): its subtitle starts with the fade as in the
    cut, not where the voice would have started."""
    import tools.voice
    from tools.voice import VoiceUnavailable

    def nothing(lang):
        raise VoiceUnavailable("no offline voice in this test")

    monkeypatch.setattr(tools.voice, "offline_engine", nothing)
    film = run_film(tmp_path)
    assert film.state.cut.audio is None or not film.state.cut.audio.voice
    assert [e for e in encoded if e[0] == "cut"] == [], (
        f"the cut encoded what the branches had not: {encoded}"
    )


def test_segments_start_while_the_clip_is_checked_and_a_remade_clip_keeps_its_record(
    tmp_path, encoded, monkeypatch
):
    """s02's first clip fails its check; the check only returns once that clip's segments are being encoded
    (the head start overlaps it), and the clip made again is the one recorded, prepared and cut."""
    import threading

    import tools.critique
    import tools.cut_segments as segs
    from tools.film import Critique, Issue

    started, niceness = threading.Event(), []
    encode = segs._encode_segment  # the fixture's tagging wrapper

    def tagged(seg, name, paths, *a, **k):
        if paths[seg.a].name == "s02.mp4" and not started.is_set():
            niceness.append(a[-1])  # the `nice` its encoders run at
            started.set()
        return encode(seg, name, paths, *a, **k)

    monkeypatch.setattr(segs, "_encode_segment", tagged)
    real_check, checks = tools.critique.critique_clip, []

    def check(clip_path, still_path, config, motion=None):
        first = clip_path.endswith("s02.mp4") and not any(c == "s02" for c in checks)
        checks.append("s02" if clip_path.endswith("s02.mp4") else "other")
        if first:
            checks.append("overlapped" if started.wait(60) else "not overlapped")
            issue = Issue(category="motion", reason="frozen: made to fail in this test", critic="motion")
            return Critique(passed=False, grade="C", issues=[issue])
        return real_check(clip_path, still_path, config, motion)

    monkeypatch.setattr(tools.critique, "critique_clip", check)
    settings = RunSettings(run_dir=str(tmp_path / "run"), width=160, height=96, shots=3, duration=6.0,
                           max_takes=1, crossfade=0.4, voice=False)  # fmt: skip
    film = director.start(BRIEF, settings)
    assert film.state.cut is not None
    assert "overlapped" in checks, "s02's segments were encoding while its first clip was checked"
    assert niceness == [agent.delivery.AHEAD_NICE], "a clip not yet checked is encoded below the run"
    record = json.loads((film.run_dir / "clips" / "s02.json").read_text())
    assert record["parameters"]["attempt"] == 2 and "made to fail" in record["parameters"]["remade_because"]
    manifest = json.loads((film.run_dir / "manifest.json").read_text())
    assert [c["shot_id"] for c in manifest["clips"]] == ["s01", "s02", "s03"]
    assert [e for e in encoded if e[0] == "cut"] == [], (
        f"the cut encoded what the branches had not: {encoded}"
    )
    cached = list((film.run_dir / "segments" / "final").glob("*.mp4"))
    assert len(cached) == 5, "the cut's segments only: those of s02's first clip were removed"


@pytest.mark.parametrize("max_takes", [1, 2])
def test_the_only_take_is_animated_while_it_is_critiqued(tmp_path, monkeypatch, max_takes):
    """--max-takes 1: the take is kept whatever its verdict, so its clip is made while it is judged, and the
    animate node uses that clip (each clip made once). With a re-shoot possible, nothing starts early."""
    import threading

    import agent.nodes
    from tools.animate import MotionBackend

    animated, lock = [], threading.Lock()
    real_animate = MotionBackend.animate

    def animate(self, req):
        with lock:
            animated.append(req.output_path.rsplit("/", 1)[-1])
        return real_animate(self, req)

    monkeypatch.setattr(MotionBackend, "animate", animate)
    real_judge, during = agent.nodes.judge_take, []

    def judge(take, *a, **k):
        deadline = time.monotonic() + (60 if max_takes == 1 else 1.0)
        while f"{take.shot_id}.mp4" not in animated and time.monotonic() < deadline:
            time.sleep(0.02)
        during.append((take.shot_id, f"{take.shot_id}.mp4" in animated))
        return real_judge(take, *a, **k)

    monkeypatch.setattr(agent.nodes, "judge_take", judge)
    settings = RunSettings(run_dir=str(tmp_path / "run"), width=160, height=96, shots=3, duration=6.0,
                           max_takes=max_takes, crossfade=0.4, voice=False)  # fmt: skip
    film = director.start(BRIEF, settings)
    assert film.state.cut is not None
    assert sorted(during) == [(s, max_takes == 1) for s in ("s01", "s02", "s03")]
    clips = json.loads((film.run_dir / "manifest.json").read_text())["clips"]
    made = sorted(animated)
    assert made == sorted(f"{c['shot_id']}.mp4" for c in clips for _ in range(c["parameters"]["attempt"]))
    lengths = {c["shot_id"]: c["duration"] for c in clips}
    storyboard = json.loads((film.run_dir / "storyboard.json").read_text())["shots"]
    tails = [0.4, 0.4, 0.0]  # every clip but the last runs on under the fade into the next
    for shot, tail in zip(storyboard, tails, strict=True):
        assert lengths[shot["id"]] == pytest.approx(shot["duration"] + tail, abs=1 / 24)


def test_a_critique_that_raises_lets_the_clip_ahead_finish_first(tmp_path, monkeypatch):
    """The shot whose critique raises fails as before; its clip made ahead is finished (not left writing into
    the run while the others are cut), and the film is cut from the other shots."""
    import threading

    import agent.nodes

    real_judge = agent.nodes.judge_take

    def judge(take, *a, **k):
        if take.shot_id == "s02":
            raise RuntimeError("the critic broke in this test")
        return real_judge(take, *a, **k)

    monkeypatch.setattr(agent.nodes, "judge_take", judge)
    from tools.animate import MotionBackend

    real_animate = MotionBackend.animate

    def slow(self, req):  # s02's clip outlasts the rest of the film unless its failure waits for it
        if req.output_path.endswith("s02.mp4"):
            time.sleep(4)
        return real_animate(self, req)

    monkeypatch.setattr(MotionBackend, "animate", slow)
    settings = RunSettings(run_dir=str(tmp_path / "run"), width=160, height=96, shots=3, duration=6.0,
                           max_takes=1, crossfade=0.4, voice=False)  # fmt: skip
    film = director.start(BRIEF, settings, allow_missing=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("clip-ahead-")]
    assert film.state.cut is not None and film.state.cut.shots == ["s01", "s03"]
    manifest = json.loads((film.run_dir / "manifest.json").read_text())
    assert "s02" in manifest["failed_shots"]
