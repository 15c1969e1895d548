"""Tool: cut. Assembles the clips in shot order with crossfades and subtitles, for one platform's frame.

Writes `<name>.srt` and `<name>.mp4` (subtitles burned in and as a soft mov_text track) with the ffmpeg that
ships inside imageio-ffmpeg (built with libass). Chinese subtitles use the Noto Sans CJK font installed with the
project. Files are probed with PyAV (FFmpeg's own libraries), not by reading ffmpeg's log.

Timing: with crossfades of `f` seconds, clip i starts at (sum of the earlier clips' durations) - i·f, and the
film lasts sum(durations) - (n-1)·f. A shot's subtitle runs from the middle of the fade that brings it in to the
middle of the fade that takes it out, so consecutive subtitles touch but never overlap.

Burned subtitles sit in the title-safe zone: centred, their last line's baseline `SUBTITLE_MARGIN_V` of the
height above the bottom edge, inside side margins of `SUBTITLE_MARGIN_H`, on a translucent box that keeps them
readable over any picture.

The picture is encoded in segments, each shot's body and each fade by its own ffmpeg process at once, then
joined by stream copy (tools/cut_segments.py): the cut's encode runs on every core, not on one filter thread.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tools.files import write_atomic
from tools.film import Clip, Cut, Shot

SUBTITLE_LANGS = {"en": "eng", "zh": "chi"}  # ISO 639-2 codes for the MP4 track's language
SUBTITLE_HEIGHT = 0.065  # subtitle glyph size as a share of the frame's shorter side
SUBTITLE_MARGIN_V = 0.08  # bottom of the subtitle block above the frame's bottom edge, share of the height
SUBTITLE_MARGIN_H = 0.07  # side margins, share of the width (title-safe: inside the central ~86%)
SUBTITLE_MAX_CHARS = 160  # one cue; longer copy is cut with an ellipsis rather than filling the frame
ASS_PLAY_RES_Y = 288  # libass's script height for SRT input: FontSize and margins are in these units
NAME = re.compile(r"final(-[a-z0-9]{1,20})?")  # the cut's file stem: final, final-tiktok, final-4x5


class CutConfig(BaseModel):
    """How to cut: the frame, the rate, the fades and the subtitle language (named as the run settings)."""

    width: int = Field(ge=16, le=4096, description="Frame width in pixels (even).")
    height: int = Field(ge=16, le=4096, description="Frame height in pixels (even).")
    fps: int = Field(default=24, ge=1, le=120, description="Frames per second of the cut.")
    crossfade: float = Field(default=0.4, ge=0, le=2, description="Crossfade between clips, seconds.")
    lang: Literal["en", "zh"] | None = Field(default=None, description="Subtitle language; guessed if None.")
    platform: str = Field(default="", description="The platform the cut is for, as recorded on the Cut.")
    voice: bool = Field(default=True, description="Speak the shots' voice-over lines.")
    tts_base_url: str | None = Field(default=None, description="OpenAI-compatible speech endpoint.")
    tts_model: str = Field(default="tts-1", description="Speech model name at the endpoint.")
    tts_voice: str = Field(default="alloy", description="Voice name at the endpoint.")
    tts_api_key: str | None = Field(default=None, description="Key for the speech endpoint.")
    music: str | None = Field(default=None, description="Music file for the bed.")
    music_volume: float = Field(default=-12.0, ge=-60, le=12, description="Music gain before ducking, dB.")
    loudness: float | None = Field(default=None, ge=-40, le=-5, description="Integrated target, LUFS.")
    cut_to_beat: bool = Field(default=False, description="Shot boundaries on the music's beats.")


# --- probing ----------------------------------------------------------------------------------------------------


def probe(path: str | Path) -> dict:
    """What a media file holds: duration (s), width, height, fps and its streams.

    Returns {"duration", "width", "height", "fps", "streams": [{"index", "type", "codec", "language"}, ...]};
    width/height/fps come from the first video stream (None without one). Used by the cut, the critic and tests.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot probe {path}: no such file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"{path} is not a media file ffmpeg can read: {err}") from None
    with container:
        if container.duration is None:
            raise ValueError(f"{path} is not a media file ffmpeg can read: it has no duration")
        info: dict = {
            "duration": container.duration / av.time_base,
            "width": None,
            "height": None,
            "fps": None,
            "streams": [],
        }
        for stream in container.streams:
            codec = stream.codec_context.name if stream.codec_context else None
            info["streams"].append(
                {
                    "index": stream.index,
                    "type": stream.type,
                    "codec": codec,
                    "language": stream.metadata.get("language"),
                }
            )
            if stream.type == "video" and info["width"] is None:
                info["width"], info["height"] = stream.width, stream.height
                rate = stream.average_rate or stream.guessed_rate
                info["fps"] = float(rate) if rate else None
    return info


# --- subtitles ----------------------------------------------------------------------------------------------


def subtitle_font_px(width: int, height: int) -> float:
    """Subtitle glyph size in pixels: relative to the shorter side, so 9:16 and 16:9 read alike."""
    return SUBTITLE_HEIGHT * min(width, height)


def clean_subtitle(text: str) -> str:
    """One subtitle line made safe for SRT and libass, at most `SUBTITLE_MAX_CHARS` long.

    A blank line would end the cue and `-->` would read as a timing line; `{` `}` `\\` and `<` `>` are
    markup to libass / ffmpeg's SRT reader, so a model's subtitle could restyle or hide the text. NUL and other
    control or format characters (bidirectional overrides among them) are dropped: they can cut a C string
    short or reorder what is shown.
    """
    text = "".join(" " if ch.isspace() else ch for ch in text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _UNSHOWN or ch in _JOINERS)
    text = " ".join(text.split())
    text = text.replace("-->", "→")
    text = text.translate(str.maketrans({"{": "(", "}": ")", "\\": "/", "<": "‹", ">": "›"}))
    if len(text) > SUBTITLE_MAX_CHARS:
        text = text[: SUBTITLE_MAX_CHARS - 1].rstrip() + "…"
    return text


_UNSHOWN = {"Cc", "Cf", "Cs", "Co", "Cn"}  # control, format, surrogate, private use, unassigned
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiners shape emoji and some scripts: kept


def srt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def subtitle_cues(
    shots: list[Shot], durations: list[float], crossfade: float, onsets: dict[str, float] | None = None
) -> list[tuple[float, float, str]]:
    """(start, end, text) for every shot with a subtitle, timed to the shot's visible time in the cut.

    A shot whose line is spoken (`onsets`: shot id → second the speech starts in the cut) starts its cue there.
    """
    onsets = onsets or {}
    cues = []
    start = 0.0
    last = len(durations) - 1
    for i, (shot, d) in enumerate(zip(shots, durations, strict=True)):
        text = clean_subtitle(shot.subtitle)
        begin = start + (crossfade / 2 if i > 0 else 0.0)
        end = start + d - (crossfade / 2 if i < last else 0.0)
        begin = max(begin, min(onsets.get(shot.id, begin), end - 0.1))
        if text and end > begin:
            cues.append((begin, end, text))
        start += d - crossfade
    return cues


def to_srt(cues: list[tuple[float, float, str]], max_units: int) -> str:
    """SRT text of `cues`, each wrapped to lines of at most `max_units` half-em units (see fonts.wrap_text)."""
    from tools.fonts import wrap_text

    blocks = []
    for n, (begin, end, text) in enumerate(cues, start=1):
        lines = "\n".join(wrap_text(text, max_units, balance=True))
        blocks.append(f"{n}\n{srt_time(begin)} --> {srt_time(end)}\n{lines}\n")
    return "\n".join(blocks)


# --- the cut --------------------------------------------------------------------------------------------------


def cut_film(
    shots: list[Shot], clips: list[Clip], root: str | Path, config: CutConfig, name: str = "final"
) -> Cut:
    """Cut `clips` (one per shot, in `shots` order; paths relative to `root`) into `root/<name>.mp4` + `.srt`.

    Clips are joined with `config.crossfade`-second crossfades (a plain join for 0 or a single clip; a fade is
    shortened to half the shortest clip so no shot vanishes inside its fades), each brought to the config's
    frame. Subtitles are burned in with the bundled CJK font and also carried as a soft mov_text track, off by
    default so players do not show them twice. Both files are written to temporary names and renamed, so a
    killed cut leaves no half file. The returned Cut's paths are relative to `root`.
    """
    root = Path(root)
    if not NAME.fullmatch(name):
        raise ValueError(f"cut name {name!r} is not final or final-<platform> (lowercase letters and digits)")
    paths = _clip_files(shots, clips, root)
    w, h, fps = config.width, config.height, config.fps
    if w % 2 or h % 2:
        raise ValueError(f"cut size {w}x{h} is not encodable: H.264 yuv420p needs even sides")

    # Real lengths, not the asked ones: a video model may return a few frames more or less, and a fade offset
    # past the end of its clip would freeze the picture.
    durations = [probe(p)["duration"] for p in paths]
    fade = _fade(durations, config.crossfade)
    lang = _lang(shots, config)
    from tools.sound import film_sound

    clip_durations = durations
    durations, audio, onsets = film_sound(shots, durations, fade, lang, root, config)
    cues, burned = _cues(shots, durations, fade, onsets, w, h)
    srt_path = root / f"{name}.srt"
    write_atomic(srt_path, to_srt(cues, max_units=_units(w, h)))

    from tools.cut_segments import encode_film

    out = root / f"{name}.mp4"
    sound = (root / audio.path).resolve() if audio else None
    encode_film(
        paths, durations, clip_durations, fade, w, h, fps, burned, _subtitle_style(w, h),
        srt_path if cues else None, lang, out, sound,
    )  # fmt: skip

    info = probe(out)
    return Cut(
        path=out.relative_to(root).as_posix(),
        srt=srt_path.relative_to(root).as_posix(),
        duration=info["duration"],
        width=info["width"],
        height=info["height"],
        fps=round(info["fps"] or fps),
        lang=lang,
        shots=[s.id for s in shots],
        platform=config.platform,
        audio=audio,
    )


def _fade(durations: list[float], crossfade: float) -> float:
    """The crossfade, shortened to half the shortest clip so no shot vanishes inside its fades."""
    return min(crossfade, min(durations) / 2) if len(durations) > 1 else 0.0


def _lang(shots: list[Shot], config: CutConfig) -> str:
    from tools.fonts import is_cjk

    return config.lang or ("zh" if is_cjk(" ".join(s.subtitle for s in shots)) else "en")


def _units(w: int, h: int) -> int:
    """Half-em units a subtitle line may hold inside the side margins."""
    return int((1 - 2 * SUBTITLE_MARGIN_H) * w / (subtitle_font_px(w, h) / 2))


def _cues(
    shots: list[Shot], durations: list[float], fade: float, onsets: dict, w: int, h: int
) -> tuple[list, list]:
    """(the cues, the cues with their text wrapped as burned and as in the .srt)."""
    from tools.fonts import wrap_text

    cues = subtitle_cues(shots, durations, fade, onsets)
    units = _units(w, h)
    return cues, [(b, e, "\n".join(wrap_text(t, units, balance=True))) for b, e, t in cues]


def prepare_cut(
    shots: list[Shot], clips: dict[str, Clip | None], root: str | Path, config: CutConfig, nice: int = 0
) -> int:
    """Encode now the segments of the film's first cut whose clips are already made, while other shots are
    still rendering: `cut_film` then only makes what is left and joins. Returns the segments made.

    `shots` is the whole storyboard in order, `clips` the clips made so far (shot id → Clip, or None). A shot
    without a clip is assumed to get the length it is planned for (its duration, plus the crossfade for all but
    the last). The film is timed as the cut will time it: the voice lines spoken ahead (tools/sound.py
    speak_ahead) re-time the shots and start their subtitles, so this waits for the speaker and reads them
    from the cache; while a line is not spoken, or with --cut-to-beat, nothing is made (it would be wasted).
    Whatever `cut_film` later finds different (a clip made again) only misses the cache and is encoded then:
    the prepared segments are never wrong, only unused. `nice`: the encoders run that much below this process
    (a clip still being checked may be made again).
    """
    from tools.animate import frame_count
    from tools.cut_segments import encode_segments

    root = Path(root)
    w, h, fps = config.width, config.height, config.fps
    paths: list[Path | None] = []
    durations = []
    for i, shot in enumerate(shots):
        clip = clips.get(shot.id)
        path = (root / clip.path) if clip else None
        if path is not None and path.is_file():
            paths.append(path)
            durations.append(probe(path)["duration"])
        else:
            paths.append(None)
            tail = config.crossfade if i < len(shots) - 1 else 0.0
            durations.append(frame_count(shot.duration + tail, fps) / fps)
    if not any(paths):
        return 0
    fade = _fade(durations, config.crossfade)
    timing = _sound_timing(shots, durations, fade, root, config)
    if timing is None:
        return 0
    timed, onsets = timing
    _, burned = _cues(shots, timed, fade, onsets, w, h)
    cache = root / "segments" / "final"
    before = set(cache.glob("*.mp4")) if cache.exists() else set()
    # Two cores left to the render loop and the critics: the GPU is still being fed while these encode.
    workers = max(1, (os.cpu_count() or 2) - 2)
    style = _subtitle_style(w, h)
    encode_segments(paths, timed, durations, fade, w, h, fps, burned, style, cache, workers, nice=nice)
    return len(set(cache.glob("*.mp4")) - before)


def _sound_timing(
    shots: list[Shot], durations: list[float], fade: float, root: Path, config: CutConfig
) -> tuple[list[float], dict[str, float]] | None:
    """(the shots' lengths, shot id → second its speech starts) as tools/sound.py film_sound will make them,
    from the voice lines already spoken; None while they cannot be known yet (tests/test_cut_prepared.py
    holds the two to the same result)."""
    from tools.sound import LEAD, retime, voice_lines
    from tools.voice import VoiceConfig, spoken_lines

    if config.cut_to_beat:
        return None
    wanted = voice_lines(shots)
    if not (config.voice and wanted):
        return durations, {}
    voice_cfg = VoiceConfig.model_validate({k: getattr(config, k) for k in VoiceConfig.model_fields})
    lines = spoken_lines(wanted, _lang(shots, config), root, voice_cfg)
    if lines is None:
        return None
    index = {s.id: i for i, s in enumerate(shots)}
    timed, _ = retime(durations, {index[ln.shot_id]: ln.speech for ln in lines}, fade)
    starts, t = [], 0.0
    for i, d in enumerate(timed):
        starts.append(t + (fade / 2 if i else 0.0))
        t += d - fade
    return timed, {ln.shot_id: starts[index[ln.shot_id]] + LEAD for ln in lines}


def _clip_files(shots: list[Shot], clips: list[Clip], root: Path) -> list[Path]:
    """The clips' files, checked: one per shot in shot order, each inside `root` and on disk."""
    if not clips:
        raise ValueError("cut_film needs at least one clip")
    if len(shots) != len(clips):
        raise ValueError(f"cut_film got {len(shots)} shots but {len(clips)} clips; pass one clip per shot")
    inside = root.resolve()
    paths = []
    for shot, clip in zip(shots, clips, strict=True):
        if shot.id != clip.shot_id:
            raise ValueError(
                f"clip for {clip.shot_id} is in the place of shot {shot.id}; pass clips in shot order"
            )
        path = (root / clip.path).resolve()
        if inside not in path.parents:
            raise ValueError(f"clip path {clip.path!r} of {clip.shot_id} is outside {root}")
        if not path.is_file():
            raise FileNotFoundError(f"clip of {clip.shot_id} is missing: {path}")
        paths.append(path)
    return paths


def _retime(target: float, real: float) -> str:
    if abs(target - real) < 0.01:
        return ""
    if target < real:
        return f",trim=duration={target:.4f}"
    return f",tpad=stop_mode=clone:stop_duration={target - real:.4f}"


def _subtitle_style(w: int, h: int) -> str:
    """libass force_style for the title-safe subtitle block (sizes in libass script units)."""
    from tools.fonts import FONT_FAMILY

    px, scale = subtitle_font_px(w, h), ASS_PLAY_RES_Y / h  # pixels → libass script units
    return ",".join([
        # An opaque-ish box (BorderStyle=3, drawn in OutlineColour) keeps the line readable over any picture.
        f"FontName={FONT_FAMILY}", f"FontSize={px * scale:.1f}", "Bold=0",
        "PrimaryColour=&H00FFFFFF", "OutlineColour=&H50000000", "BackColour=&H50000000",
        "BorderStyle=3", f"Outline={px * 0.25 * scale:.2f}", "Shadow=0",
        "Alignment=2", f"MarginV={SUBTITLE_MARGIN_V * h * scale:.0f}",
        f"MarginL={SUBTITLE_MARGIN_H * w * scale:.0f}", f"MarginR={SUBTITLE_MARGIN_H * w * scale:.0f}",
    ])  # fmt: skip
