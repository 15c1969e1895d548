"""Tool: mix. The film's sound track: voice lines at their places, a music bed ducked under them, normalised.

The music (any audio ffmpeg reads) is looped or trimmed to the film, faded in and out, set `music_volume` dB
and ducked by side-chain compression keyed on the voice. The sum is measured with ffmpeg's ebur128 filter while
it is mixed, brought to the platform's integrated target by one gain (a peak limiter under the true-peak ceiling
where the gain needs one), encoded to AAC, and measured again with ebur128: the figures recorded are the encoded
file's, not the targets. (loudnorm's two passes gave the same figures at three to five times the time: it
resamples to 192 kHz, and its linear mode falls short on speech with pauses, which needed the limiter anyway.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from pydantic import BaseModel, Field

from tools.files import read_json, temp_file, write_json
from tools.film import AudioMix, VoiceLine

# Integrated loudness targets (LUFS), per platform preset. YouTube (Shorts too) plays back normalised to about -14
# LUFS and turns a louder master down; Spotify publishes -14 as well. TikTok, Instagram/Facebook (Reels) publish
# no figure; third-party measurements of their playback put them at about -14. Douyin, Xiaohongshu publish none
# either: -14, the figure every social platform converges on, is used. A louder master is turned down, a quieter
# one is mostly not turned up, so -14 is the loudest that plays back untouched. The true-peak ceiling is -1 dBTP.
PLATFORM_LOUDNESS = {"youtube": -14.0, "shorts": -14.0, "tiktok": -14.0, "instagram": -14.0, "reels": -14.0,
                     "facebook": -14.0, "douyin": -14.0, "xiaohongshu": -14.0}  # fmt: skip
DEFAULT_LOUDNESS = -14.0
TRUE_PEAK_CEILING = -1.0  # dBTP the delivered file must stay under
TRUE_PEAK_AIM = -2.0  # what the gain and limiter aim for: AAC's reconstruction adds a few tenths of a dB
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
    if not path.exists():
        return None, f"{what}: no such file; the film is made without music"
    if not path.is_file():  # a folder, a pipe or a device: ffmpeg would fail or wait on it for good
        return None, f"{what}: not a regular file; the film is made without music"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        return None, f"{what}: cannot be read ({err.strerror}); the film is made without music"
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
    integrated, peak = _measured(out)
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
    """Mix to a float WAV while ebur128 measures it (one ffmpeg pass), find the gain to the target (a limiter
    under the ceiling where it needs one), encode AAC and measure the encoded file; aim once more past what the
    encoder moved when that was over 0.3 LU."""
    inputs: list[str] = []
    for line in lines:
        inputs += ["-i", f"file:{root / line.path}"]
    if music is not None:
        inputs += ["-stream_loop", "-1", "-t", f"{duration + 1:.3f}", "-i", f"file:{music.resolve()}"]
    graph, last = _graph(lines, music is not None, duration, music_db)
    graph += f";[{last}]asplit=2[raw][meter];[meter]ebur128=peak=true:framelog=verbose[measured]"
    raw = temp_file(out.parent, ".mix-", ".wav")
    tmp = temp_file(out.parent, ".mix-", ".m4a")
    try:
        log = _ffmpeg([*inputs, "-filter_complex", graph, "-map", "[raw]", "-t", f"{duration:.3f}",
                       "-c:a", "pcm_f32le", raw, "-map", "[measured]", "-f", "null", "-"])  # fmt: skip
        integrated, peak = _summary(log, raw)
        if integrated == float("-inf"):
            raise RuntimeError("the mix is silent: no voice line or music could be heard")
        gain, aim = target - integrated, target
        for _ in range(2):
            chain = _level_chain(raw, gain, peak, aim)
            _ffmpeg(["-i", raw, "-af", chain, "-c:a", "aac", "-b:a", "192k", "-f", "mp4", tmp])
            measured, measured_peak = measure_loudness(tmp)
            if abs(measured - target) <= 0.3:
                break
            gain, aim = _gain_of(chain), aim + target - measured  # what the encoder moved, aimed past
        # The figures of the file as encoded, kept beside it: every platform's cut reuses the mix unmeasured.
        write_json(out.with_suffix(".json"), {"integrated_lufs": measured, "true_peak_dbtp": measured_peak})
        os.replace(tmp, out)
    finally:
        Path(raw).unlink(missing_ok=True)
        Path(tmp).unlink(missing_ok=True)


def _level_chain(raw: str, gain: float, peak: float, target: float) -> str:
    """The filters that bring the float mix `raw` (true peak `peak`) to `target` LUFS under the ceiling.

    Where the gain would lift peaks past the ceiling a limiter holds them, and takes some loudness with it
    (much of it on a dense bed): the gain is then found by measuring the limited mix again, without encoding
    (a fraction of a second each), stepping by the measured slope.
    """
    limit = f"alimiter=limit={10 ** (TRUE_PEAK_AIM / 20 - 0.025):.4f}:attack=2:release=60:level=disabled"

    def chain(g: float) -> str:
        return f"volume={g:.2f}dB" + (f",{limit}" if peak + g > TRUE_PEAK_AIM else "") + f",aresample={RATE}"

    tried: list[tuple[float, float]] = []
    for _ in range(5):
        if peak + gain <= TRUE_PEAK_AIM:
            return chain(gain)  # a plain gain: loudness moves dB for dB, nothing to measure
        log = _ffmpeg(["-i", raw, "-af", chain(gain) + ",ebur128=framelog=verbose", "-f", "null", "-"])
        measured, _ = _summary(log, raw, peak=False)
        tried.append((gain, measured))
        if abs(measured - target) <= 0.15:
            break
        slope = 1.0
        if len(tried) > 1 and abs(tried[-1][0] - tried[-2][0]) > 1e-3:
            slope = (tried[-1][1] - tried[-2][1]) / (tried[-1][0] - tried[-2][0])
        gain += (target - measured) / min(1.0, max(0.2, slope))
    return chain(gain)


def _measured(out: Path) -> tuple[float, float]:
    """(integrated, true peak) of a made mix: from its sidecar, else measured (a mix made before sidecars)."""
    try:
        figures = read_json(out.with_suffix(".json"))
        return float(figures["integrated_lufs"]), float(figures["true_peak_dbtp"])
    except (OSError, ValueError, KeyError, TypeError):
        return measure_loudness(out)


def _gain_of(chain: str) -> float:
    return float(re.match(r"volume=(-?[\d.]+)dB", chain).group(1))


def measure_loudness(path: str | Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file's first audio stream, by ffmpeg's ebur128 filter."""
    log = _ffmpeg(
        [
            "-i",
            f"file:{path}",
            "-map",
            "0:a:0",
            "-af",
            "ebur128=peak=true:framelog=verbose",
            "-f",
            "null",
            "-",
        ]
    )
    return _summary(log, path)


def _summary(log: str, path: str | Path, peak: bool = True) -> tuple[float, float]:
    """(integrated, true peak) from the last summary ebur128 printed in an ffmpeg log (peak: only if asked)."""
    summary = log[log.rindex("Summary:") :] if "Summary:" in log else ""
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    true_peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if not integrated or (peak and not true_peak):
        raise RuntimeError(f"ebur128 gave no summary for {path}")
    return float(integrated.group(1)), float(true_peak.group(1)) if true_peak else float("nan")


def _ffmpeg(args: list[str]) -> str:
    """Run the bundled ffmpeg; returns its log (the loudness filters print their figures there)."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "info", "-y", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}):\n{tail}")
    return proc.stderr
