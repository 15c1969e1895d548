"""The cut's sound: speaks the shots' voice-over lines, re-times the shots so every line fits (and, with
--cut-to-beat, puts their boundaries on the music's beats), places the lines and has tools/mix.py build the
sound track.

A shot with a line lasts at least LEAD + the speech + BREATH of visible time (its crossfade on top). The time a
long line needs is taken from the shots with room to spare, in proportion to that room, so the film keeps its
length; when the copy cannot fit, the film grows and a note names the line. Each line's speech starts LEAD after
its shot comes into view; its subtitle cue starts at that same moment.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import BaseModel

from tools.film import AudioMix, BeatMove, Shot, VoiceLine

LEAD = 0.15  # seconds of picture before the voice starts: the cut lands, then the line
BREATH = 0.35  # seconds of quiet after a line before the next shot takes over
MIN_SHOT = 1.0  # a shot is never squeezed below this to make room for another's line


def shot_needs(n: int, speech: dict[int, float], fade: float) -> tuple[list[float], list[float]]:
    """(what each of `n` shots needs for its line, the least each may be made: that need or MIN_SHOT)."""
    need = [speech[i] + LEAD + BREATH + fade if i in speech else 0.0 for i in range(n)]
    return need, [max(MIN_SHOT, 2 * fade + 0.1, x) for x in need]


def retime(durations: list[float], speech: dict[int, float], fade: float) -> tuple[list[float], list[int]]:
    """New shot lengths keeping their sum: shot i needs speech[i] + LEAD + BREATH + fade. Returns (lengths,
    indexes of the shots whose line still does not fit the film's length)."""
    need, floor = shot_needs(len(durations), speech, fade)
    new = [max(d, n) for d, n in zip(durations, need, strict=True)]
    extra = sum(new) - sum(durations)
    room = [max(0.0, new[i] - floor[i]) for i in range(len(new))]
    spare = sum(room)
    unfit: list[int] = []
    if extra > 1e-6:
        if spare >= extra:
            new = [n - r * extra / spare for n, r in zip(new, room, strict=True)]
        else:
            new = [n - r for n, r in zip(new, room, strict=True)]
            unfit = [i for i in range(len(new)) if need[i] > durations[i] + 1e-6]
    return new, unfit


def _configs(config: BaseModel):
    from tools.mix import MixConfig
    from tools.voice import VoiceConfig

    fields = config.model_dump()
    voice_cfg = VoiceConfig.model_validate({k: fields[k] for k in VoiceConfig.model_fields if k in fields})
    mix_cfg = MixConfig.model_validate({k: fields[k] for k in MixConfig.model_fields if k in fields})
    return voice_cfg, mix_cfg


def film_lang(shots: list[Shot], config: BaseModel) -> str:
    """The film's language as the cut decides it: the setting, else Chinese when the subtitles are."""
    from tools.fonts import is_cjk

    return getattr(config, "lang", None) or ("zh" if is_cjk(" ".join(s.subtitle for s in shots)) else "en")


def voice_lines(shots: list[Shot]) -> list[tuple[str, str]]:
    return [(s.id, s.voiceover.strip()) for s in shots if s.voiceover.strip()]


def speak_ahead(shots: list[Shot], root: str | Path, config: BaseModel) -> threading.Thread | None:
    """Start speaking the storyboard's lines now, in a background thread, while the shots render.

    The lines land in the voice cache; the cut's own `speak_lines` waits on the cache's lock and reads them
    back, so nothing is spoken twice. `config` is the CutConfig. Returns the thread (None: nothing to speak).
    """
    from tools.voice import VoiceUnavailable, speak_lines

    voice_cfg, _ = _configs(config)
    wanted = voice_lines(shots)
    if not (voice_cfg.voice and wanted):
        return None
    lang = film_lang(shots, config)

    def run() -> None:
        try:
            speak_lines(wanted, lang, root, voice_cfg)
        except (VoiceUnavailable, OSError):
            pass  # the cut speaks the lines again and records why they failed

    thread = threading.Thread(target=run, name="speak-ahead", daemon=True)
    thread.start()
    return thread


def film_sound(
    shots: list[Shot], durations: list[float], fade: float, lang: str, root: str | Path, config: BaseModel
) -> tuple[list[float], AudioMix | None, dict[str, float]]:
    """(shot lengths, the sound track or None, shot id → second its speech starts in the cut).

    `config` is the CutConfig; its voice and music fields are read through VoiceConfig and MixConfig.
    """
    from tools.mix import mix_film
    from tools.voice import speak_lines

    root = Path(root)
    voice_cfg, mix_cfg = _configs(config)
    notes: list[str] = []
    lines: list[VoiceLine] = []
    wanted = voice_lines(shots)
    if voice_cfg.voice and wanted:
        lines, notes = speak_lines(wanted, lang, root, voice_cfg)
    index = {s.id: i for i, s in enumerate(shots)}
    speech = {index[ln.shot_id]: ln.speech for ln in lines}
    new, unfit = retime(durations, speech, fade)
    for i in unfit:
        notes.append(
            f"the voice-over of {shots[i].id} ({speech[i]:.1f} s) does not fit the film's length; "
            f"the film runs {sum(new) - fade * (len(new) - 1):.1f} s"
        )
    moves: list[BeatMove] = []
    bpm = None
    if getattr(config, "cut_to_beat", False):
        new, moves, bpm, said = _cut_to_beat(shots, new, speech, fade, mix_cfg, root)
        notes += said
    starts, t = [], 0.0
    for i, d in enumerate(new):
        starts.append(t + (fade / 2 if i else 0.0))
        t += d - fade
    onsets: dict[str, float] = {}
    placed = []
    for line in lines:
        speak_at = starts[index[line.shot_id]] + LEAD
        onsets[line.shot_id] = speak_at
        placed.append(line.model_copy(update={"start": max(0.0, speak_at - line.onset)}))
    film_length = sum(new) - fade * (len(new) - 1)
    mix = mix_film(placed, film_length, root, mix_cfg, getattr(config, "platform", ""))
    if mix is not None:
        mix = mix.model_copy(
            update={"notes": notes + mix.notes, "unfit": [shots[i].id for i in unfit], "tempo_bpm": bpm,
                    "beat_moves": moves}
        )  # fmt: skip
    elif notes:
        mix = None  # nothing to hear: the notes still reach the person through the run's log below
        for note in notes:
            print(f"sound: {note}")
    return new, mix, onsets


def _cut_to_beat(
    shots: list[Shot], durations: list[float], speech: dict[int, float], fade: float, mix_cfg, root: Path
) -> tuple[list[float], list[BeatMove], float | None, list[str]]:
    """--cut-to-beat: the lengths with boundaries on the bed's beats, the moves, the tempo and what to say."""
    from tools.mix import check_music
    from tools.music_beats import BeatsUnavailable, cached_beats, snap_to_beats

    music, why = check_music(mix_cfg.music)
    if music is None:
        return durations, [], None, [f"--cut-to-beat needs a music bed{'' if why else ' (--music FILE)'}; "
                                     "the shots keep their timing"]  # fmt: skip
    length = sum(durations) - fade * (len(durations) - 1)
    try:
        beats, bpm = cached_beats(music, length + 1.0, root)
    except BeatsUnavailable as err:
        return durations, [], None, [f"--cut-to-beat: {err}; the shots keep their timing"]
    _, floor = shot_needs(len(durations), speech, fade)
    new, moves = snap_to_beats(durations, floor, beats, fade, [s.id for s in shots])
    moved = [m for m in moves if m.after is not None]
    said = f"--cut-to-beat: {bpm:.0f} BPM; {len(moved)} of {len(moves)} cuts moved onto a beat"
    if moved:
        said += f" (largest move {max(abs(m.after - m.before) for m in moved):.2f} s)"
    stayed = [f"{m.between} ({m.why})" for m in moves if m.after is None]
    return new, moves, bpm, [said + (f"; stayed: {', '.join(stayed)}" if stayed else "")]


VOICE_NAMES = {
    "piper": "Piper (offline neural voice)",
    "espeak-ng": "espeak-ng (offline): a scratch voice, robotic formant synthesis; no neural Chinese voice "
    "installs offline with its model, so use --tts-base-url for a real one",
    "openai": "the speech endpoint",
}


def sound_notes(cuts: list) -> dict | None:
    """What the report says about the sound of `cuts` (Cut records): the voice, each line's timing, the lines
    that did not fit, the music and its ducking, the measured loudness per cut and --cut-to-beat's moves.
    None when no cut has sound."""
    voiced = [c for c in cuts if c.audio is not None]
    if not voiced:
        return None
    mix = voiced[0].audio
    voices = sorted({(v.engine, v.model, v.voice, v.lang) for v in mix.voice})
    return {
        "voices": [
            {"engine": e, "model": m, "voice": v, "lang": lang, "what": VOICE_NAMES.get(e, e),
             "scratch": e == "espeak-ng"}
            for e, m, v, lang in voices
        ],
        "lines": [
            {"shot": v.shot_id, "text": v.text, "starts": (v.start or 0) + v.onset, "speech": v.speech,
             "ends": (v.start or 0) + v.onset + v.speech, "fits": v.shot_id not in mix.unfit}
            for v in mix.voice
        ],
        "unfit": list(mix.unfit),
        "music": mix.music,
        "music_volume": mix.music_volume,
        "ducking": "side-chain compression keyed on the voice (10:1 above −34 dBFS, 15 ms attack, 350 ms release)"
        if mix.music and mix.voice else "",
        "loudness": [
            {"platform": c.platform or "cut", "path": c.path, "target": c.audio.target_lufs,
             "integrated": c.audio.integrated_lufs, "true_peak": c.audio.true_peak_dbtp}
            for c in voiced
        ],
        "tempo": mix.tempo_bpm,
        "beats": [m.model_dump() for m in mix.beat_moves],
        "notes": list(dict.fromkeys(n for c in voiced for n in c.audio.notes)),
    }  # fmt: skip
