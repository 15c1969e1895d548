"""Tool: mix. The film's sound track: voice lines at their places, a music bed ducked under them, normalised.

The music (any audio ffmpeg reads) is looped or trimmed to the film, faded in and out, set `music_volume` dB
and ducked by side-chain compression keyed on the voice. The sum is normalised with ffmpeg's loudnorm in two
passes (pass one measures, pass two applies the measured figures linearly) to the platform's integrated target
with a true-peak ceiling, encoded to AAC, and measured again with ffmpeg's ebur128 filter: the figures recorded
are the encoded file's, not the targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from pydantic import BaseModel, Field

from tools.files import temp_file
from tools.film import AudioMix, VoiceLine

# Integrated loudness targets (LUFS). YouTube, TikTok, Instagram/Facebook and the Chinese apps normalise playback
# to about -14; a louder master is turned down, a quieter one is not turned up.
PLATFORM_LOUDNESS = {"youtube": -14.0, "tiktok": -14.0, "instagram": -14.0, "douyin": -14.0,
                     "xiaohongshu": -14.0}  # fmt: skip
DEFAULT_LOUDNESS = -14.0
TRUE_PEAK_CEILING = -1.0  # dBTP the delivered file must stay under
TRUE_PEAK_AIM = -2.0  # what loudnorm aims for: AAC's reconstruction adds a few tenths of a dB
MUSIC_MIN_SECONDS = 3.0  # shorter beds loop audibly every beat; refused
FADE_IN, FADE_OUT = 1.0, 2.0
RATE = 48000


class MixConfig(BaseModel):
    """The music bed and the loudness target (named as the run settings)."""

    music: str | None = Field(default=None, description="Music file for the bed.")
    music_volume: float = Field(default=-12.0, ge=-60, le=12, description="Music gain before ducking, dB.")
    loudness: float | None = Field(default=None, ge=-40, le=-5, description="Integrated target, LUFS.")


def target_loudness(config: MixConfig, platform: str) -> float:
    if config.loudness is not None:
        return config.loudness
    return PLATFORM_LOUDNESS.get(platform, DEFAULT_LOUDNESS)


def check_music(music: str | None) -> tuple[Path | None, str | None]:
    """The music file if it can be a bed, else (None, a one-line reason naming the file and what to do)."""
    if not music:
        return None, None
    from tools.cut import probe

    path = Path(music).expanduser()
    what = f"--music {music}"
    if not path.is_file():
        return None, f"{what}: no such file; the film is made without music"
    try:
        info = probe(path)
    except (ValueError, OSError) as err:
        return None, f"{what}: not audio ffmpeg can read ({str(err)[-80:]}); the film is made without music"
    if not any(s["type"] == "audio" for s in info["streams"]):
        return None, f"{what}: has no audio stream; the film is made without music"
    if info["duration"] < MUSIC_MIN_SECONDS:
        return None, (
            f"{what}: {info['duration']:.1f} s long, a bed needs at least {MUSIC_MIN_SECONDS:g} s; "
            "the film is made without music"
        )
    return path, None


def mix_film(
    lines: list[VoiceLine], duration: float, root: str | Path, config: MixConfig, platform: str = ""
) -> AudioMix | None:
    """root/audio/mix-<key>.m4a for a film of `duration` s; None when there is neither voice nor music.

    `lines` carry their `start` in the cut. The same inputs give the same key, so each platform's cut of the
    same film (and a resumed run) reuses the mix.
    """
    root = Path(root)
    notes: list[str] = []
    music, why = check_music(config.music)
    if why:
        notes.append(why)
    if not lines and music is None:
        return None
    target = target_loudness(config, platform)
    key = hashlib.sha256(
        json.dumps(
            [[ln.path, round(ln.start or 0, 3)] for ln in lines]
            + [str(music), config.music_volume, target, round(duration, 3)]
        ).encode()
    ).hexdigest()[:16]
    out = root / "audio" / f"mix-{key}.m4a"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file():
        _render(lines, music, duration, root, config.music_volume, target, out)
    integrated, peak = measure_loudness(out)
    return AudioMix(
        path=out.relative_to(root).as_posix(), voice=lines, music=config.music if music else None,
        music_volume=config.music_volume if music else None, target_lufs=target,
        integrated_lufs=integrated, true_peak_dbtp=peak, notes=notes,
    )  # fmt: skip


def _graph(lines: list[VoiceLine], music: bool, duration: float, music_db: float) -> tuple[str, str]:
    """The filter graph summing the voice lines and the ducked music; returns (graph, output label)."""
    d = f"{duration:.3f}"
    parts = [f"anullsrc=r={RATE}:cl=stereo,atrim=0:{d}[base]"]
    for i, line in enumerate(lines):
        ms = max(0, round((line.start or 0) * 1000))
        parts.append(
            f"[{i}:a]aresample={RATE},aformat=sample_fmts=fltp:channel_layouts=mono,"
            f"adelay={ms}:all=1,pan=stereo|c0=c0|c1=c0[v{i}]"
        )
    n = len(lines)
    if n:
        voices = "".join(f"[v{i}]" for i in range(n))
        parts.append(f"[base]{voices}amix=inputs={n + 1}:duration=first:normalize=0[voice]")
    if music:
        parts.append(
            f"[{n}:a]aresample={RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=0:{d},"
            f"asetpts=PTS-STARTPTS,volume={music_db:.2f}dB,afade=t=in:d={FADE_IN},"
            f"afade=t=out:st={max(0.0, duration - FADE_OUT):.3f}:d={FADE_OUT}[bed]"
        )
        if not n:
            parts.append("[base][bed]amix=inputs=2:duration=first:normalize=0[mix]")
            return ";".join(parts), "mix"
        # The voice keys a compressor on the bed: 10:1 above -34 dBFS takes the music well down under speech.
        parts.append("[voice]asplit=2[vo][key]")
        parts.append("[bed][key]sidechaincompress=threshold=0.02:ratio=10:attack=15:release=350[ducked]")
        parts.append("[vo][ducked]amix=inputs=2:duration=first:normalize=0[mix]")
        return ";".join(parts), "mix"
    return ";".join(parts), "voice"


def _render(
    lines: list[VoiceLine], music: Path | None, duration: float, root: Path, music_db: float,
    target: float, out: Path,
) -> None:  # fmt: skip
    inputs: list[str] = []
    for line in lines:
        inputs += ["-i", f"file:{root / line.path}"]
    if music is not None:
        inputs += ["-stream_loop", "-1", "-t", f"{duration + 1:.3f}", "-i", f"file:{music.resolve()}"]
    graph, last = _graph(lines, music is not None, duration, music_db)
    raw = temp_file(out.parent, ".mix-", ".wav")
    tmp = temp_file(out.parent, ".mix-", ".m4a")
    try:
        _ffmpeg([*inputs, "-filter_complex", graph, "-map", f"[{last}]", "-t", f"{duration:.3f}", raw])
        norm = f"loudnorm=I={target}:TP={TRUE_PEAK_AIM}:LRA=11"
        log = _ffmpeg(["-i", raw, "-af", f"{norm}:print_format=json", "-f", "null", "-"])
        m = json.loads(log[log.rindex("{") : log.rindex("}") + 1])
        second = (
            f"{norm}:measured_I={m['input_i']}:measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}:"
            f"measured_thresh={m['input_thresh']}:offset={m['target_offset']}:linear=true,aresample={RATE}"
        )
        _ffmpeg(["-i", raw, "-af", second, "-c:a", "aac", "-b:a", "192k", "-f", "mp4", tmp])
        integrated, _ = measure_loudness(tmp)
        gain = 0.0
        for _ in range(3):
            if abs(integrated - target) <= 0.3:
                break
            # Speech with long pauses can leave linear loudnorm short of the target (it will not raise peaks
            # past the ceiling): the rest is made up with gain and a limiter that keeps the peaks down.
            gain += target - integrated
            fix = f",volume={gain:.2f}dB,alimiter=limit={10 ** (TRUE_PEAK_AIM / 20 - 0.025):.4f}"
            fix += f":attack=2:release=60:level=disabled,aresample={RATE}"
            _ffmpeg(["-i", raw, "-af", second + fix, "-c:a", "aac", "-b:a", "192k", "-f", "mp4", tmp])
            integrated, _ = measure_loudness(tmp)
        os.replace(tmp, out)
    finally:
        Path(raw).unlink(missing_ok=True)
        Path(tmp).unlink(missing_ok=True)


def measure_loudness(path: str | Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file's first audio stream, by ffmpeg's ebur128 filter."""
    log = _ffmpeg(["-i", f"file:{path}", "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"])
    summary = log[log.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if not integrated or not peak:
        raise RuntimeError(f"ebur128 gave no summary for {path}")
    return float(integrated.group(1)), float(peak.group(1))


def _ffmpeg(args: list[str]) -> str:
    """Run the bundled ffmpeg; returns its log (the loudness filters print their figures there)."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "info", "-y", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}):\n{tail}")
    return proc.stderr
