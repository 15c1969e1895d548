"""The cut's sound: speaks the shots' voice-over lines, re-times the shots so every line fits, places the lines
and has tools/mix.py build the sound track.

A shot with a line lasts at least LEAD + the speech + BREATH of visible time (its crossfade on top). The time a
long line needs is taken from the shots with room to spare, in proportion to that room, so the film keeps its
length; when the copy cannot fit, the film grows and a note names the line. Each line's speech starts LEAD after
its shot comes into view; its subtitle cue starts at that same moment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tools.film import AudioMix, Shot, VoiceLine

LEAD = 0.15  # seconds of picture before the voice starts: the cut lands, then the line
BREATH = 0.35  # seconds of quiet after a line before the next shot takes over
MIN_SHOT = 1.0  # a shot is never squeezed below this to make room for another's line


def retime(durations: list[float], speech: dict[int, float], fade: float) -> tuple[list[float], list[int]]:
    """New shot lengths keeping their sum: shot i needs speech[i] + LEAD + BREATH + fade. Returns (lengths,
    indexes of the shots whose line still does not fit the film's length)."""
    need = [speech[i] + LEAD + BREATH + fade if i in speech else 0.0 for i in range(len(durations))]
    floor = [max(MIN_SHOT, 2 * fade + 0.1, n) for n in need]
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


def film_sound(
    shots: list[Shot], durations: list[float], fade: float, lang: str, root: str | Path, config: BaseModel
) -> tuple[list[float], AudioMix | None, dict[str, float]]:
    """(shot lengths, the sound track or None, shot id → second its speech starts in the cut).

    `config` is the CutConfig; its voice and music fields are read through VoiceConfig and MixConfig.
    """
    from tools.mix import MixConfig, mix_film
    from tools.voice import VoiceConfig, speak_lines

    root = Path(root)
    fields = config.model_dump()
    voice_cfg = VoiceConfig.model_validate({k: fields[k] for k in VoiceConfig.model_fields if k in fields})
    mix_cfg = MixConfig.model_validate({k: fields[k] for k in MixConfig.model_fields if k in fields})
    notes: list[str] = []
    lines: list[VoiceLine] = []
    wanted = [(s.id, s.voiceover.strip()) for s in shots if s.voiceover.strip()]
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
        mix = mix.model_copy(update={"notes": notes + mix.notes})
    elif notes:
        mix = None  # nothing to hear: the notes still reach the person through the run's log below
        for note in notes:
            print(f"sound: {note}")
    return new, mix, onsets
