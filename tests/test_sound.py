"""Sound: the voice-over, the music bed, loudness and subtitles timed to the voice, measured on the output."""

from __future__ import annotations

import http.server
import io
import json
import re
import subprocess
import sys
import threading
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from tools.animate import run_ffmpeg
from tools.cut import CutConfig, cut_film, probe
from tools.film import Clip, Shot
from tools.mix import check_music, measure_loudness
from tools.sound import LEAD, retime

ROOT = Path(__file__).resolve().parents[1]
EN = ["Meet Aurora.", "Forty hours of quiet, wherever the day takes you.", "", "Order now."]
ZH = ["欢迎来到新的一天。", "四十小时的安静。", "", "现在下单。"]
W, H = 320, 180


def make_film(root: Path, texts: list[str], seconds: float = 2.0) -> tuple[list[Shot], list[Clip]]:
    """Plain coloured clips, one per line (the picture does not matter here, the sound does)."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    shots, clips = [], []
    for i, text in enumerate(texts, start=1):
        sid = f"s{i:02d}"
        path = root / "clips" / f"{sid}.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", f"color=c=0x{i * 40:02x}4080:s={W}x{H}:d={seconds}:r=24",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)])  # fmt: skip
        shots.append(Shot(id=sid, index=i, kind="wide", description="d", camera="c", lighting="l", mood="m",
                          duration=seconds, subtitle=text, prompt="p", voiceover=text))  # fmt: skip
        clips.append(Clip(shot_id=sid, take=1, path=f"clips/{sid}.mp4", backend="t", model="t",
                          motion="push-in", duration=seconds, fps=24, width=W, height=H))  # fmt: skip
    return shots, clips


def make_music(path: Path, seconds: float, tone: float = 50.0) -> Path:
    """A bed whose level can be read under the voice: a low tone (speech has almost nothing at 50 Hz)."""
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=f={tone}:d={seconds}", "-af", "aformat=channel_layouts=stereo",
                str(path)])  # fmt: skip
    return path


def decode(path: Path, rate: int = 16000, voice_band: bool = False) -> np.ndarray:
    """The file's audio as mono float samples at `rate`; `voice_band`: above 200 Hz only, where speech is and
    the tests' 50 Hz music bed is not (two 2-pole high-pass filters take the bed down by about 45 dB)."""
    band = ["-af", "highpass=f=200,highpass=f=200"] if voice_band else []
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
           *band, "-ar", str(rate), "-f", "f32le", "-"]  # fmt: skip
    return np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, dtype="<f4")


def srt_starts(path: Path) -> list[float]:
    starts = []
    for h, m, s, ms in re.findall(r"(\d+):(\d+):(\d+),(\d+) -->", path.read_text()):
        starts.append(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000)
    return starts


def onsets(samples: np.ndarray, rate: int = 16000, gap: float = 0.25) -> list[float]:
    """Where sound starts after at least `gap` s of silence (10 ms windows above -40 dBFS)."""
    win = rate // 100
    n = len(samples) // win
    rms = np.sqrt(np.mean(samples[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    loud = 20 * np.log10(rms) > -40
    found, quiet = [], gap * 100
    for i, on in enumerate(loud):
        if on and quiet >= gap * 100:
            found.append(i / 100)
        quiet = 0 if on else quiet + 1
    return found


@pytest.fixture(scope="module")
def en_film(tmp_path_factory):
    root = tmp_path_factory.mktemp("en")
    shots, clips = make_film(root, EN)
    return root, shots, clips, cut_film(shots, clips, root, CutConfig(width=W, height=H))


@pytest.fixture(scope="module")
def zh_film(tmp_path_factory):
    root = tmp_path_factory.mktemp("zh")
    shots, clips = make_film(root, ZH)
    return root, shots, clips, cut_film(shots, clips, root, CutConfig(width=W, height=H))


VOICES = {"en_film": ({"piper"}, EN), "zh_film": ({"espeak-ng"}, ZH)}


@pytest.mark.parametrize("film", ["en_film", "zh_film"])
def test_a_film_has_a_voice_measured_to_the_loudness_target(request, film):
    root, shots, _, cut = request.getfixturevalue(film)
    engines, texts = VOICES[film]
    streams = [s["type"] for s in probe(root / cut.path)["streams"]]
    assert streams.count("audio") == 1 and "subtitle" in streams
    assert (
        cut.audio is not None and len(cut.audio.voice) == 3 and {v.engine for v in cut.audio.voice} == engines
    )
    integrated, peak = measure_loudness(root / cut.path)  # measured on the delivered MP4, not taken from it
    print(f"figures {film}: {integrated:.1f} LUFS, true peak {peak:.1f} dBTP")  # for the README (pytest -s)
    assert abs(integrated - (-14.0)) <= 1.0, integrated
    assert peak <= -1.0, peak
    assert (cut.audio.integrated_lufs, cut.audio.true_peak_dbtp) == (integrated, peak)
    for line in cut.audio.voice:  # provenance: every line's file, text and length in the record
        assert (root / line.path).is_file() and line.path.startswith("audio/")
        assert line.text in texts and line.duration > 0.3


@pytest.mark.parametrize("film", ["en_film", "zh_film"])
def test_subtitle_cues_start_within_150_ms_of_their_voice_line(request, film):
    root, _, _, cut = request.getfixturevalue(film)
    heard = onsets(decode(root / cut.path))
    cues = srt_starts(root / cut.srt)
    assert len(cues) == 3 and len(heard) >= 3
    print(
        f"figures {film}: cue to voice onset ≤ {max(min(abs(c - t) for t in heard) for c in cues) * 1000:.0f} ms"
    )
    for cue in cues:
        assert min(abs(cue - t) for t in heard) <= 0.15, (cue, heard)


def test_a_long_line_gets_its_time_from_the_other_shots(en_film):
    _, _, _, cut = en_film
    long_line = next(v for v in cut.audio.voice if v.shot_id == "s02")
    short_next = next(v for v in cut.audio.voice if v.shot_id == "s04")
    assert long_line.speech > 2.0  # longer than the 2 s shot it belongs to, less its fades
    assert short_next.start >= long_line.start + long_line.duration  # no two lines overlap
    assert abs(cut.duration - (4 * 2.0 - 3 * 0.4)) < 0.1  # the film keeps its length


def test_retime_keeps_the_length_and_names_a_line_that_cannot_fit():
    new, unfit = retime([2.0, 2.0, 2.0], {1: 3.0}, 0.4)
    assert abs(sum(new) - 6.0) < 1e-6 and new[1] >= 3.0 + 0.4 and not unfit
    new, unfit = retime([2.0, 2.0], {0: 5.0, 1: 5.0}, 0.4)
    assert unfit == [0, 1] and sum(new) > 4.0


def test_resume_does_not_synthesise_a_line_again(en_film, monkeypatch):
    root, shots, clips, cut = en_film
    import tools.voice

    def refuse(*_):
        raise AssertionError("a cached line was synthesised again")

    monkeypatch.setattr(tools.voice, "_run_piper", refuse)
    again = cut_film(shots, clips, root, CutConfig(width=W, height=H))
    assert [v.path for v in again.audio.voice] == [v.path for v in cut.audio.voice]


def tone_db(samples: np.ndarray, t: float, rate: int = 16000) -> float:
    """The 50 Hz bed's level (dB) in the 100 ms window from second `t`."""
    chunk = samples[int(t * rate) : int(t * rate) + rate // 10]
    spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
    band = spectrum[int(45 * len(chunk) / rate) : int(56 * len(chunk) / rate) + 1]
    return 20 * np.log10(band.max() + 1e-9)


def ducking_db(root: Path, shots: list[Shot], cut) -> tuple[float, float]:
    """(the bed's median level under the voice lines, in the gap of the line-less s03), read off the final."""
    samples = decode(root / cut.path)
    under = []
    for line in cut.audio.voice:
        begin = line.start + line.onset
        under += [tone_db(samples, begin + 0.3 + k * 0.1) for k in range(max(1, int(line.speech / 0.1) - 5))]
    s03 = next(s for s in shots if s.id == "s03")  # the shot with no line: the music comes back up
    assert not s03.voiceover
    starts = sorted(v.start + v.onset for v in cut.audio.voice)
    gap_start = starts[1] + next(v.speech for v in cut.audio.voice if v.shot_id == "s02") + 0.9
    between = [tone_db(samples, gap_start + k * 0.1) for k in range(5)]
    return float(np.median(under)), float(np.median(between))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_film_with_voice_and_music_is_ducked_under_the_voice(tmp_path, lang):
    shots, clips = make_film(tmp_path, ZH if lang == "zh" else EN, seconds=3.0)
    music = make_music(tmp_path / "bed.wav", 5.0)  # shorter than the film: looped
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H, music=str(music), music_volume=-6))
    assert cut.lang == lang and {v.engine for v in cut.audio.voice} <= {"espeak-ng", "piper"}
    assert len(cut.audio.voice) == 3 and cut.audio.music == str(music)
    integrated, peak = measure_loudness(tmp_path / cut.path)
    assert abs(integrated + 14.0) <= 1.0 and peak <= -1.0, (integrated, peak)
    under, between = ducking_db(tmp_path, shots, cut)
    print(f"figures {lang} with music: {integrated:.1f} LUFS, true peak {peak:.1f} dBTP, bed {between - under:.1f} dB "
          "lower under the voice")  # fmt: skip
    assert between - under >= 6.0, (between, under)
    # Under a music bed too, every cue starts with its line as heard in the final (the bed filtered out).
    heard = onsets(decode(tmp_path / cut.path, voice_band=True))
    cues = srt_starts(tmp_path / cut.srt)
    assert len(cues) == 3 and len(heard) >= 3, (cues, heard)
    print(
        f"figures {lang} with music: cue to voice onset ≤ {max(min(abs(c - t) for t in heard) for c in cues) * 1000:.0f} ms"
    )
    for cue in cues:
        assert min(abs(cue - t) for t in heard) <= 0.15, (cue, heard)


@pytest.mark.parametrize("kind", ["missing", "not-audio", "empty", "one-second"])
def test_bad_music_is_named_and_the_film_is_still_made(tmp_path, kind):
    bad = tmp_path / "bad.mp3"
    if kind == "not-audio":
        bad.write_text("this is a shopping list, not a song\n")
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "one-second":
        make_music(bad, 1.0, tone=440)
    path, why = check_music(str(bad))
    assert path is None and why.startswith(f"--music {bad}:") and "without music" in why and "\n" not in why
    shots, clips = make_film(tmp_path, EN[:2])
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H, music=str(bad)))
    assert cut.audio.music is None and why in cut.audio.notes and len(cut.audio.voice) == 2


class _Speech(http.server.BaseHTTPRequestHandler):
    """/v1/audio/speech answering a WAV of a 440 Hz tone whose length follows the text; counts requests."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, **body})
        rate, seconds = 24000, 0.5 + 0.05 * len(body["input"])
        t = np.arange(int(rate * seconds)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wf:
            wf.setnchannels(1), wf.setsampwidth(2), wf.setframerate(rate)
            wf.writeframes(np.concatenate([np.zeros(rate // 10, "<i2"), tone]).tobytes())
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(buf.tell()))
        self.end_headers()
        self.wfile.write(buf.getvalue())

    def log_message(self, *_):
        pass


def test_speech_endpoint_through_the_openai_client(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Speech)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Speech.requests.clear()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        shots, clips = make_film(tmp_path, EN[:2])
        config = CutConfig(width=W, height=H, tts_base_url=url, tts_model="kokoro", tts_voice="af_sky")
        cut = cut_film(shots, clips, tmp_path, config)
    finally:
        server.shutdown()
    assert [r["path"] for r in _Speech.requests] == ["/v1/audio/speech"] * 2
    assert [r["input"] for r in _Speech.requests] == EN[:2] and _Speech.requests[0]["voice"] == "af_sky"
    line = cut.audio.voice[0]
    assert (line.engine, line.model, line.voice) == ("openai", "kokoro", "af_sky")
    assert abs(line.onset - 0.1) < 0.02 and abs(line.duration - (0.6 + 0.05 * len(EN[0]))) < 0.02
    assert not [n for n in cut.audio.notes if "endpoint" in n]


def test_speech_endpoint_down_falls_back_to_the_offline_voice_and_says_so(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shots, clips = make_film(tmp_path, EN[:2])
    config = CutConfig(width=W, height=H, tts_base_url=f"http://127.0.0.1:{port}/v1")
    cut = cut_film(shots, clips, tmp_path, config)
    assert probe(tmp_path / cut.path)["duration"] > 3
    assert [v.engine for v in cut.audio.voice] == ["piper", "piper"]
    said = [n for n in cut.audio.notes if f"127.0.0.1:{port}" in n]
    assert len(said) == 1 and "offline voice speaks instead" in said[0]


def test_no_voice_and_no_music_keeps_the_cut_silent(tmp_path):
    shots, clips = make_film(tmp_path, EN[:2])
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H, voice=False))
    assert cut.audio is None
    assert "audio" not in [s["type"] for s in probe(tmp_path / cut.path)["streams"]]
    assert srt_starts(tmp_path / cut.srt)[0] == 0.0  # without a voice the cues follow the shots, as before
    assert LEAD > 0


# --- --cut-to-beat ------------------------------------------------------------------------------------------


def make_clicks(path: Path, bpm: float, seconds: float) -> Path:
    """A click track at a known tempo: a 15 ms 1 kHz blip on every beat, the first at 0 s."""
    period = 60.0 / bpm
    expr = f"if(lt(mod(t\\,{period:.6f})\\,0.015)\\,0.8*sin(2*PI*1000*t)\\,0)"
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={expr}:s=44100:d={seconds}", str(path)])
    return path


def red_per_frame(path: Path) -> np.ndarray:
    """Mean red of the top third of every frame (the subtitles sit at the bottom)."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf",
           "crop=iw:ih/3:0:0,scale=8:4", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    frames = np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, np.uint8)
    return frames.reshape(-1, 4 * 8, 3)[:, :, 0].mean(axis=1)


def seen_boundaries(red: np.ndarray, near: list[float], fps: int) -> list[float]:
    """Where each crossfade is half done in the picture: red halfway between the two shots' colours."""
    found = []
    for b in near:
        before, after = red[round((b - 0.6) * fps)], red[round((b + 0.6) * fps)]
        mid = (before + after) / 2
        lo, hi = round((b - 0.6) * fps), round((b + 0.6) * fps)
        k = next(
            k for k in range(lo, hi) if (red[k] - mid) * (red[k + 1] - mid) <= 0 and red[k] != red[k + 1]
        )
        found.append((k + (mid - red[k]) / (red[k + 1] - red[k])) / fps)
    return found


def test_cut_to_beat_puts_every_boundary_on_a_beat_within_one_frame(tmp_path):
    bpm, fps = 100.0, 24
    shots, clips = make_film(tmp_path, ["Meet Aurora.", "", "Quiet, wherever you go.", "", ""], seconds=2.2)
    clicks = make_clicks(tmp_path / "clicks.wav", bpm, 12.0)
    config = CutConfig(width=W, height=H, fps=fps, music=str(clicks), cut_to_beat=True)
    cut = cut_film(shots, clips, tmp_path, config)
    assert cut.audio.tempo_bpm == pytest.approx(bpm, abs=1.0)
    clip_length = probe(tmp_path / clips[0].path)["duration"]
    assert abs(cut.duration - (5 * clip_length - 4 * 0.4)) < 0.1  # the film keeps its length
    moves = cut.audio.beat_moves
    assert [m.between for m in moves] == ["s01|s02", "s02|s03", "s03|s04", "s04|s05"]
    assert all(m.after is not None and abs(m.after - m.before) > 0.05 for m in moves), moves
    period = 60.0 / bpm
    seen = seen_boundaries(red_per_frame(tmp_path / cut.path), [m.after for m in moves], fps)
    for t in seen:  # measured in the delivered picture, against the click track's own beats
        assert abs(t - round(t / period) * period) <= 1 / fps, (seen, period)
    said = [n for n in cut.audio.notes if n.startswith("--cut-to-beat:")]
    assert len(said) == 1 and "4 of 4 cuts moved" in said[0]
    cue_starts = srt_starts(tmp_path / cut.srt)
    for line in cut.audio.voice:  # every line still starts and ends inside its own shot
        i = [s.id for s in shots].index(line.shot_id)
        shot_in = 0.0 if i == 0 else seen[i - 1]
        speech_in, speech_out = line.start + line.onset, line.start + line.onset + line.speech
        assert shot_in < speech_in and speech_out < seen[i], (line, seen)
        assert min(abs(c - speech_in) for c in cue_starts) <= 0.15


def test_snap_to_beats_never_cuts_into_a_voice_line():
    from tools.music_beats import boundaries, snap_to_beats

    # Shot 1 is exactly as long as its line needs: its end may move later, never earlier.
    durations, floor = [2.0, 2.0, 2.0], [2.0, 1.0, 1.0]
    beats = [1.6, 1.85, 3.55]  # the boundaries sit at 1.8 and 3.4
    new, moves = snap_to_beats(durations, floor, beats, 0.4, ["a", "b", "c"])
    assert moves[0].after == 1.85 and moves[0].why == ""  # 1.75 would have been nearer; 1.6 is refused
    assert abs(sum(new) - 6.0) < 1e-9 and all(n >= f for n, f in zip(new, floor, strict=True))
    assert boundaries(new, 0.4) == pytest.approx([1.85, 3.55])
    new, moves = snap_to_beats(durations, floor, [1.6], 0.4, ["a", "b", "c"])
    assert new == durations and moves[0].after is None and "voice line" in moves[0].why
    assert moves[1].why == "no beat within tolerance"


def test_cut_to_beat_without_music_says_so_and_keeps_the_timing(tmp_path):
    shots, clips = make_film(tmp_path, EN[:2])
    cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H, cut_to_beat=True))
    assert cut.audio.beat_moves == [] and any("--cut-to-beat needs a music bed" in n for n in cut.audio.notes)
    assert cut.audio.unfit == ["s02"]  # the long line does not fit two 2 s shots: recorded, not only said


# --- the run: the report's sound notes ----------------------------------------------------------------------


def test_report_says_the_voice_lines_loudness_per_cut_music_and_beats(tmp_path):
    from html import unescape

    from agent import director
    from agent.settings import RunSettings
    from tools.film import Brief

    root = tmp_path / "run"
    clicks = make_clicks(tmp_path / "clicks.wav", 120.0, 20.0)
    settings = RunSettings(
        run_dir=str(root), platform="tiktok", platforms=["tiktok", "instagram"], width=180, height=320,
        shots=2, duration=6.0, max_takes=1, music=str(clicks), cut_to_beat=True, lang="zh",
    )  # fmt: skip
    film = director.start(Brief(text="一个6秒的短片：新款保温杯，“一杯暖一天”", lang="zh"), settings)
    manifest = json.loads((root / "manifest.json").read_text())
    assert len(manifest["cuts"]) == 2
    page = unescape(re.sub(r"<[^>]+>", " ", (root / "report.html").read_text()))
    sound = page[page.index(" Sound ") :]
    assert "espeak-ng" in sound and "scratch voice" in sound  # the Chinese voice is said to be a scratch one
    assert f"Music: {clicks}" in sound and "ducked under the voice" in sound
    assert "Cut to the beat: 120 BPM" in sound
    for cut in manifest["cuts"]:  # every cut's measured figures, as measured on its file
        integrated, peak = measure_loudness(root / cut["path"])
        assert f"{integrated:.1f} LUFS" in sound and f"{peak:.1f} dBTP" in sound
    for line in manifest["cuts"][0]["audio"]["voice"]:
        assert f"“{line['text']}”" in sound
        assert f"{line['start'] + line['onset']:.2f}–" in sound
    assert film.state.cut.audio.beat_moves


# --- the chat changes a voice-over line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("shot 3 voiceover: Forty hours of quiet.", {"shot": 3, "text": "Forty hours of quiet."}),
        ("change the narration of shot 2 to 'Order now'", {"shot": 2, "text": "Order now"}),
        ("第3个镜头旁白改成“四十小时的安静”", {"shot": 3, "text": "四十小时的安静"}),
        ("第2个镜头的配音改为：现在下单", {"shot": 2, "text": "现在下单"}),
        ("remove the voice-over of shot 4", {"shot": 4, "text": ""}),
        ("去掉第1个镜头的旁白", {"shot": 1, "text": ""}),
    ],
)
def test_chat_parser_reads_a_voiceover_change(message, args):
    from agent.chat_parser import parse

    parsed = parse(message, 4)
    assert (parsed.op, parsed.args) == ("set_voiceover", args)


def test_chat_parser_asks_which_voiceover_and_keeps_subtitles_apart():
    from agent.chat_parser import parse

    assert parse("change the voiceover", 4).question  # which shot?
    assert parse("shot 2 voiceover", 4).question  # to what?
    line = parse("shot 2 subtitle: 'Order now'", 4)
    assert (line.op, line.args) == ("set_line", {"shot": 2, "text": "Order now"})


def test_chat_changes_a_voiceover_line_and_the_recut_speaks_only_that_line(tmp_path, monkeypatch):
    import tools.voice
    from agent.chat import Chat
    from agent.settings import RunSettings

    root = tmp_path / "run"
    chat = Chat(
        root, RunSettings(run_dir=str(root), shots=2, duration=6.0, width=320, height=180, max_takes=1)
    )
    chat.handle("A 6-second film for wireless headphones: “Hear the city”")
    assert "voice-over" in chat.handle("shot 1 voiceover: 'Meet Aurora.'")
    assert json.loads((root / "storyboard.json").read_text())["shots"][0]["voiceover"] == "Meet Aurora."
    chat.handle("go")
    before = json.loads((root / "manifest.json").read_text())["cut"]["audio"]["voice"]
    assert [v["text"] for v in before][0] == "Meet Aurora."
    spoken: list[str] = []
    real = tools.voice._run_piper

    def counting(jobs):
        spoken.extend(text for text, _, _ in jobs)
        return real(jobs)

    monkeypatch.setattr(tools.voice, "_run_piper", counting)
    reply = chat.handle("shot 2 voiceover: Forty hours of quiet.")
    assert "re-cut with only that line spoken again" in reply, reply
    assert spoken == ["Forty hours of quiet."]  # the other line came from the cache
    after = json.loads((root / "manifest.json").read_text())["cut"]["audio"]["voice"]
    assert [(v["shot_id"], v["text"]) for v in after] == [
        ("s01", "Meet Aurora."),
        ("s02", "Forty hours of quiet."),
    ]
    assert after[0]["path"] == before[0]["path"]
    takes = json.loads((root / "manifest.json").read_text())["takes"]
    assert len(takes) == 2  # no shot was shot again


# --- a 3-hour music file ------------------------------------------------------------------------------------


def long_wav(path: Path, hours: float, head: Path) -> Path:
    """A WAV `hours` long whose first part is `head` (a 22.05 kHz mono 16-bit WAV) and the rest silence, written
    sparse: the file is hours long to every reader without taking that much disk or time to make."""
    with wave.open(str(head), "rb") as wf:
        assert (wf.getframerate(), wf.getnchannels(), wf.getsampwidth()) == (22050, 1, 2)
        data = wf.readframes(wf.getnframes())
    size = int(hours * 3600 * 22050) * 2
    header = (
        b"RIFF" + (36 + size).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little")
        + (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + size.to_bytes(4, "little")
    )  # fmt: skip
    with open(path, "wb") as f:
        f.write(header + data)
        f.truncate(len(header) + size)
    return path


LONG_MUSIC_RUN = """
import resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from tests.test_sound import make_film, W, H
from tools.cut import CutConfig, cut_film
root, music = Path(sys.argv[1]), sys.argv[2]
shots, clips = make_film(root, ["", "", ""], seconds=2.0)
start = time.perf_counter()
cut = cut_film(shots, clips, root, CutConfig(width=W, height=H, voice=False, music=music, cut_to_beat=True))
took = time.perf_counter() - start
# Not RUSAGE_SELF: Linux keeps ru_maxrss across execve, so it would report the pytest process this one was
# forked from. VmHWM belongs to this process's own memory map; the children (ffmpeg, the beat tracker) are theirs.
hwm = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
rss = max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(took, rss // 1024, cut.audio.music, cut.audio.tempo_bpm, cut.duration)
"""


def test_a_three_hour_music_file_is_streamed_not_loaded(tmp_path):
    from tools.mix import check_music

    head = tmp_path / "head.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "aevalsrc='if(lt(mod(t,0.5),0.015),0.8*sin(2*PI*1000*t),0)':s=22050:d=30",
                "-c:a", "pcm_s16le", str(head)])  # fmt: skip
    music = long_wav(tmp_path / "three-hours.wav", 3.0, head)
    assert probe(music)["duration"] == pytest.approx(3 * 3600, abs=1)
    path, why = check_music(str(music))
    assert path is not None and why is None  # long is fine: the bed is trimmed to the film
    proc = subprocess.run(
        [sys.executable, "-c", LONG_MUSIC_RUN, str(tmp_path / "film"), str(music), str(ROOT)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    took, rss_mb, used, bpm, duration = proc.stdout.split()[-5:]
    # 3 hours of the mix's 48 kHz stereo float PCM would be 4 GB; of the beat tracker's 44.1 kHz mono, 1.9 GB.
    assert int(rss_mb) < 600, rss_mb
    assert float(took) < 90, took  # the cut of a 5 s film, not the decoding of 3 hours
    assert used == str(music) and float(bpm) == pytest.approx(120, abs=1) and float(duration) < 6


class _BadSpeech(http.server.BaseHTTPRequestHandler):
    """/v1/audio/speech that answers an HTML page with status 200, or (slow) sleeps past the client's timeout."""

    mode = "html"

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).mode == "slow":
            import time

            time.sleep(3)
        body = b"<html><body>Service temporarily unavailable</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


@pytest.mark.parametrize("mode", ["html", "slow"])
def test_speech_endpoint_answering_html_or_too_slowly_falls_back_and_says_so(tmp_path, monkeypatch, mode):
    import tools.voice

    monkeypatch.setattr(tools.voice, "TTS_TIMEOUT", 1.0)
    _BadSpeech.mode = mode
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BadSpeech)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        shots, clips = make_film(tmp_path, EN[:2])
        url = f"http://127.0.0.1:{server.server_port}/v1"
        cut = cut_film(shots, clips, tmp_path, CutConfig(width=W, height=H, tts_base_url=url))
    finally:
        server.shutdown()
    assert [v.engine for v in cut.audio.voice] == ["piper", "piper"]  # the film still has its voice
    said = [n for n in cut.audio.notes if url in n]
    assert len(said) == 1 and "the offline voice speaks instead" in said[0] and "\n" not in said[0]
    assert ("not a 16-bit WAV" if mode == "html" else "Timeout") in said[0], said
