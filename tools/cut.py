"""Tool: cut. Assembles the clips in shot order with crossfades and subtitles.

Writes `final.srt` and `final.mp4` (subtitles burned in and as a soft mov_text track) with the ffmpeg that
ships inside imageio-ffmpeg. Chinese subtitles use the Noto Sans CJK font installed with the project.

Timing: with crossfades of `f` seconds, clip i starts at (sum of the earlier clips' durations) - i·f, and the
film lasts sum(durations) - (n-1)·f. A shot's subtitle runs from the middle of the fade that brings it in to the
middle of the fade that takes it out, so consecutive subtitles touch but never overlap.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from agent.rundir import RunDir  # layering: to go (issue 9)
from tools.files import temp_file, write_atomic
from tools.film import Clip, Cut, Shot

SUBTITLE_LANGS = {"en": "eng", "zh": "chi"}  # ISO 639-2 codes for the MP4 track's language
SUBTITLE_HEIGHT = 0.065  # subtitle glyph size as a share of the frame's shorter side
ASS_PLAY_RES_Y = 288  # libass's script height for SRT input: FontSize and margins are in these units
X264_PRESET = "veryfast"  # the cut is encoded once; faster presets save little time and cost sharpness


# --- probing ----------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:(\d+)(?:\[\w+\])?(?:\((\w+)\))?:\s*(\w+):\s*([^\s,]+)(.*)$")


def probe(path: str | Path) -> dict:
    """What ffmpeg says about a media file: duration (s), width, height, fps and its streams.

    Returns {"duration", "width", "height", "fps", "streams": [{"index", "type", "codec", "language"}, ...]};
    width/height/fps come from the first video stream (None without one). Used by the cut, the critic and tests.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot probe {path}: no such file")
    # `ffmpeg -i` with no output prints the container's description on stderr and exits 1: that is expected.
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", f"file:{path}"],
        check=False,
        capture_output=True,
        text=True,
        errors="replace",
    )
    text = proc.stderr
    m = _DURATION.search(text)
    if not m:
        tail = "\n".join(text.strip().splitlines()[-3:])
        raise ValueError(f"{path} is not a media file ffmpeg can read:\n{tail}")
    info: dict = {
        "duration": int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]),
        "width": None,
        "height": None,
        "fps": None,
        "streams": [],
    }
    for line in text.splitlines():
        s = _STREAM.match(line)
        if not s:
            continue
        stream = {"index": int(s[1]), "type": s[3].lower(), "codec": s[4], "language": s[2]}
        info["streams"].append(stream)
        if stream["type"] == "video" and info["width"] is None:
            if size := re.search(r"\b(\d{2,5})x(\d{2,5})\b", s[5]):
                info["width"], info["height"] = int(size[1]), int(size[2])
            if fps := re.search(r"([\d.]+) fps", s[5]):
                info["fps"] = float(fps[1])
    return info


# --- subtitles ----------------------------------------------------------------------------------------------


def subtitle_font_px(width: int, height: int) -> float:
    """Subtitle glyph size in pixels: relative to the shorter side, so 9:16 and 16:9 read alike."""
    return SUBTITLE_HEIGHT * min(width, height)


def clean_subtitle(text: str) -> str:
    """One subtitle line made safe for SRT and libass.

    A blank line would end the cue and `-->` would read as a timing line; `{` `}` `\\` and `<` `>` are
    markup to libass / ffmpeg's SRT reader, so a model's subtitle could restyle or hide the text.
    """
    text = " ".join(text.split())
    text = text.replace("-->", "→")
    return text.translate(str.maketrans({"{": "(", "}": ")", "\\": "/", "<": "‹", ">": "›"}))


def srt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def subtitle_cues(
    shots: list[Shot], durations: list[float], crossfade: float
) -> list[tuple[float, float, str]]:
    """(start, end, text) for every shot with a subtitle, timed to the shot's visible time in the cut."""
    cues = []
    start = 0.0
    last = len(durations) - 1
    for i, (shot, d) in enumerate(zip(shots, durations, strict=True)):
        text = clean_subtitle(shot.subtitle)
        begin = start + (crossfade / 2 if i > 0 else 0.0)
        end = start + d - (crossfade / 2 if i < last else 0.0)
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


def cut_film(shots: list[Shot], clips: list[Clip], run: RunDir, settings) -> Cut:
    """Cut `clips` (one per shot, in `shots` order) into final.mp4 + final.srt under the run directory.

    Clips are joined with `settings.crossfade`-second crossfades (a plain join for 0 or a single clip; a fade
    is shortened to half the shortest clip so no shot vanishes inside its fades). Subtitles are burned in with
    the bundled CJK font and also carried as a soft mov_text track, off by default so players do not show them
    twice. Both files are written to temporary names and renamed, so a killed cut leaves no half file.
    """
    from tools.animate import run_ffmpeg
    from tools.fonts import FONT_FAMILY, fontconfig_env, is_cjk

    if not clips:
        raise ValueError("cut_film needs at least one clip")
    if len(shots) != len(clips):
        raise ValueError(f"cut_film got {len(shots)} shots but {len(clips)} clips; pass one clip per shot")
    for shot, clip in zip(shots, clips, strict=True):
        if shot.id != clip.shot_id:
            raise ValueError(
                f"clip for {clip.shot_id} is in the place of shot {shot.id}; pass clips in shot order"
            )
    w, h, fps = settings.width, settings.height, settings.fps
    if w % 2 or h % 2:
        raise ValueError(f"cut size {w}x{h} is not encodable: H.264 yuv420p needs even sides")
    paths = [run.abs(c.path) for c in clips]
    for clip, path in zip(clips, paths, strict=True):
        if not path.is_file():
            raise FileNotFoundError(f"clip of {clip.shot_id} is missing: {path}")

    # Real lengths, not the asked ones: a video model may return a few frames more or less, and a fade offset
    # past the end of its clip would freeze the picture.
    durations = [probe(p)["duration"] for p in paths]
    fade = min(settings.crossfade, min(durations) / 2) if len(clips) > 1 else 0.0

    subtitles = " ".join(s.subtitle for s in shots)
    lang = settings.lang or ("zh" if is_cjk(subtitles) else "en")
    px = subtitle_font_px(w, h)
    cues = subtitle_cues(shots, durations, fade)
    srt = to_srt(cues, max_units=int(0.88 * w / (px / 2)))
    srt_path = run.root / "final.srt"
    write_atomic(srt_path, srt)

    # The filter graph: every clip brought to one size, rate and timebase (xfade requires it), then joined.
    parts = [
        f"[{i}:v]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
        f"format=yuv420p,settb=AVTB,setpts=PTS-STARTPTS,fps={fps}[v{i}]"
        for i in range(len(paths))
    ]
    if fade > 0:
        last, offset = "v0", 0.0
        for i in range(1, len(paths)):
            offset += durations[i - 1] - fade
            parts.append(f"[{last}][v{i}]xfade=transition=fade:duration={fade:.4f}:offset={offset:.4f}[x{i}]")
            last = f"x{i}"
    else:
        parts.append("".join(f"[v{i}]" for i in range(len(paths))) + f"concat=n={len(paths)}:v=1:a=0[joined]")
        last = "joined"
    if cues:
        scale = ASS_PLAY_RES_Y / h  # pixels → libass script units
        style = ",".join([
            # An opaque box (BorderStyle=3, drawn in OutlineColour) keeps the line readable over any picture,
            # the draft panels' own captions included.
            f"FontName={FONT_FAMILY}", f"FontSize={px * scale:.1f}", "Bold=0",
            "PrimaryColour=&H00FFFFFF", "OutlineColour=&H50000000", "BackColour=&H50000000",
            "BorderStyle=3", f"Outline={px * 0.25 * scale:.2f}", "Shadow=0",
            "Alignment=2", f"MarginV={0.06 * h * scale:.0f}", f"MarginL={0.05 * w * scale:.0f}",
            f"MarginR={0.05 * w * scale:.0f}",
        ])  # fmt: skip
        # The filter reads "subs.srt" from ffmpeg's working folder (a temporary one): the run directory's own
        # path, which may hold spaces, colons or quotes, never enters the filter graph's syntax.
        parts.append(f"[{last}]subtitles=filename=subs.srt:charenc=UTF-8:force_style='{style}'[out]")
        last = "out"

    out = run.root / "final.mp4"
    with tempfile.TemporaryDirectory(prefix="cd-cut-") as work:
        env = {**os.environ, **fontconfig_env(work)}
        args: list[str] = []
        for p in paths:
            args += ["-i", f"file:{p}"]
        if cues:
            shutil.copyfile(srt_path, Path(work) / "subs.srt")
            args += ["-f", "srt", "-i", "subs.srt"]
        args += ["-filter_complex", ";".join(parts), "-map", f"[{last}]"]
        if cues:
            args += [
                "-map", f"{len(paths)}:s", "-c:s", "mov_text",
                "-metadata:s:s:0", f"language={SUBTITLE_LANGS[lang]}",
                "-metadata:s:s:0", f"title={'中文' if lang == 'zh' else 'English'}",
                "-disposition:s:0", "0",
            ]  # fmt: skip
        tmp = temp_file(run.root, ".final.", ".mp4")
        args += [
            "-c:v", "libx264", "-preset", X264_PRESET, "-crf", "20", "-pix_fmt", "yuv420p", "-r", str(fps),
            "-movflags", "+faststart", "-an", tmp,
        ]  # fmt: skip
        try:
            run_ffmpeg(args, cwd=work, env=env)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    info = probe(out)
    return Cut(
        path=run.rel(out),
        srt=run.rel(srt_path),
        duration=info["duration"],
        width=info["width"],
        height=info["height"],
        fps=round(info["fps"] or fps),
        lang=lang,
        shots=[s.id for s in shots],
    )
