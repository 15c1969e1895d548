"""Tool: music beats. Finds the music bed's beats and moves the cut's shot boundaries onto them (--cut-to-beat).

Beats come from aubio's tempo tracker (aubio-ledfx, the maintained wheel of aubio; GPL-3.0), run in a child
Python process (`_AUBIO_WORKER`) so nothing GPL is imported into this program. ffmpeg decodes the bed as it would
be heard under the film (looped when shorter, only the film's length of it when longer) and streams mono PCM
into the worker's stdin: a 3-hour file is never decoded past the film's end, nor held in memory.

A boundary is the middle of the crossfade between two shots. Each one moves to the nearest beat within
`BEAT_TOLERANCE`, taking the time from the shot on its other side, so the film keeps its length; a move that
would leave a shot shorter than its voice line needs (or than `floor`) is not made, and the next nearest beat in
tolerance is tried instead.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tools.film import BeatMove

BEAT_TOLERANCE = 0.5  # seconds a boundary may move to reach a beat
RATE = 44100
HOP = 512
BEAT_TIMEOUT = 120.0  # seconds for decoding and tracking the film's length of music

# Runs in a child process: aubio's tempo tracker over float32 mono PCM read from stdin in hops.
_AUBIO_WORKER = """
import json, sys
import numpy as np
import aubio
rate, hop = int(sys.argv[1]), int(sys.argv[2])
tracker = aubio.tempo("default", 2 * hop, hop, rate)
beats, read = [], sys.stdin.buffer.read
while True:
    data = read(4 * hop)
    if not data:
        break
    frame = np.zeros(hop, dtype=np.float32)
    chunk = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4")
    frame[: len(chunk)] = chunk
    if tracker(frame)[0]:
        beats.append(float(tracker.get_last_s()))
    if len(data) < 4 * hop:
        break
print(json.dumps({"beats": beats, "bpm": float(tracker.get_bpm())}))
"""


class BeatsUnavailable(RuntimeError):
    """The beats could not be found (aubio not installed, the music not decodable, no steady beat)."""


def find_beats(music: str | Path, seconds: float) -> tuple[list[float], float]:
    """(beat times in seconds, tempo in BPM) of the first `seconds` of `music` as the bed plays it (looped)."""
    import imageio_ffmpeg

    if not _has_aubio():
        raise BeatsUnavailable("aubio is not installed (pip install aubio-ledfx)")
    decode = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
        "-stream_loop", "-1", "-t", f"{seconds:.3f}", "-i", f"file:{Path(music).resolve()}",
        "-map", "0:a:0", "-ac", "1", "-ar", str(RATE), "-f", "f32le", "-",
    ]  # fmt: skip
    ffmpeg = subprocess.Popen(decode, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        worker = subprocess.run(
            [sys.executable, "-c", _AUBIO_WORKER, str(RATE), str(HOP)],
            stdin=ffmpeg.stdout, capture_output=True, timeout=BEAT_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise BeatsUnavailable(f"beat tracking took over {BEAT_TIMEOUT:g} s") from None
    finally:
        ffmpeg.stdout.close()
        ffmpeg.kill()
        err = ffmpeg.communicate()[1].decode(errors="replace").strip()
    if worker.returncode != 0:
        raise BeatsUnavailable(f"aubio exited {worker.returncode}: {worker.stderr.decode()[-200:]}")
    found = json.loads(worker.stdout)
    if len(found["beats"]) < 2:
        raise BeatsUnavailable(f"no steady beat found{f' ({err[-120:]})' if err else ''}")
    return beat_grid(found["beats"], seconds), found["bpm"]


def beat_grid(beats: list[float], seconds: float) -> list[float]:
    """The tracked beats with the grid carried at their own tempo over what the tracker did not mark: the
    seconds it needs to lock on at the start, a beat it skipped, and the end."""
    period = float(np.median(np.diff(beats)))
    if period <= 0.1:
        return list(beats)
    head = beats[0] - period * np.arange(int(beats[0] / period), 0, -1)
    out = [float(t) for t in head if t >= 0]
    for a, b in zip(beats, beats[1:], strict=False):
        k = max(1, round((b - a) / period))
        out += [a + j * (b - a) / k for j in range(k)]
    t = beats[-1]
    while t <= seconds:
        out.append(t)
        t += period
    return out


def cached_beats(music: Path, seconds: float, root: Path) -> tuple[list[float], float]:
    """find_beats, kept under root/audio/beats-<key>.json (music path, size, mtime, length): each platform's
    cut of the film and a resumed run read them back."""
    from tools.files import read_json, write_json

    stat = music.stat()
    key = hashlib.sha256(
        json.dumps([str(music.resolve()), stat.st_size, stat.st_mtime_ns, round(seconds, 3)]).encode()
    ).hexdigest()[:16]
    path = Path(root) / "audio" / f"beats-{key}.json"
    if path.is_file():
        try:
            found = read_json(path)
            return [float(b) for b in found["beats"]], float(found["bpm"])
        except (ValueError, KeyError, TypeError, OSError):
            pass  # a damaged record is found again
    beats, bpm = find_beats(music, seconds)
    write_json(path, {"music": str(music), "seconds": seconds, "bpm": bpm, "beats": beats})
    return beats, bpm


def _has_aubio() -> bool:
    import importlib.util

    return importlib.util.find_spec("aubio") is not None


def boundaries(durations: list[float], fade: float) -> list[float]:
    """Where each cut between shot i and i+1 falls in the film: the middle of their crossfade."""
    out, t = [], 0.0
    for d in durations[:-1]:
        t += d - fade
        out.append(t + fade / 2)
    return out


def snap_to_beats(
    durations: list[float], floor: list[float], beats: list[float], fade: float, ids: list[str],
    tolerance: float = BEAT_TOLERANCE,
) -> tuple[list[float], list[BeatMove]]:  # fmt: skip
    """Shot lengths with each boundary on its nearest beat within `tolerance` where both shots keep at least
    `floor` (their voice line's need); the sum stays. Returns (lengths, one BeatMove per boundary)."""
    new = list(durations)
    moves: list[BeatMove] = []
    for i in range(len(new) - 1):
        at = boundaries(new, fade)[i]
        near = sorted((b for b in beats if abs(b - at) <= tolerance), key=lambda b: abs(b - at))
        chosen = None
        for beat in near:
            shift = beat - at
            if new[i] + shift >= floor[i] - 1e-9 and new[i + 1] - shift >= floor[i + 1] - 1e-9:
                chosen = beat
                break
        why = ""
        if chosen is None:
            why = "no beat within tolerance" if not near else "the beat would cut into a voice line"
        else:
            new[i] += chosen - at
            new[i + 1] -= chosen - at
        moves.append(BeatMove(between=f"{ids[i]}|{ids[i + 1]}", before=at, after=chosen, why=why))
    return new, moves
