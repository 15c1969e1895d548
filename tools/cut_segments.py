"""The cut's picture, encoded as segments in parallel and joined by stream copy.

One ffmpeg pass that crossfades eight clips and burns the subtitles runs its filter graph on one thread: on a
16-core machine the cut of an 8-shot 1024² film took about 4 s after the last clip was made. Here the film's
frames are split where the fades begin and end: each shot's body (its frames outside any fade) and each fade
(the end of one clip dissolving into the start of the next) is one segment, encoded by its own ffmpeg process,
all at once; then the segments are joined with the concat demuxer without re-encoding, and the soft subtitle
track and the sound are muxed in the same pass.

Frame boundaries: clip i starts at frame G_i = round(start_i · fps), where start_i is its start in seconds
(the sum of the earlier clips' lengths less one fade each), and lasts D_i = round(d_i · fps) frames. The fade
into clip i is frames [G_i, G_{i-1} + D_{i-1}); every frame of the film belongs to exactly one segment. The
subtitles are burned per segment from the film's cues shifted to the segment's start, so a cue changes at the
same frame as in a single pass.

Segments are kept in a folder per cut, named by a hash of everything their pixels depend on, so a segment made
early (`encode_segments` from a shot branch, through tools/cut.py `prepare_cut`) or by an earlier cut is used
as it is, and one whose clip or timing changed is simply made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# veryfast: the cut is encoded once; faster presets save little time and cost sharpness.
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) of the film: clip `a`'s local frames from `a_from` alone, or, for a fade, clip `a`'s
    from `a_from` dissolving into clip `b`'s first frames."""

    start: int
    end: int
    a: int
    a_from: int
    b: int | None = None

    @property
    def frames(self) -> int:
        return self.end - self.start


MIN_PIECE = 12  # frames: a shorter piece costs more in process start and decoding than it saves


def plan_segments(durations: list[float], fade: float, fps: int, piece: int | None = None) -> list[Segment]:
    """The film's segments in order (empty bodies, when a fade takes a whole clip's middle, are left out).

    `piece`: a body longer than this many frames is split into near-equal pieces, so that the longest segment,
    which one encoder thread makes alone, does not set the cut's time."""
    if fade * fps < 0.5:  # a fade shorter than one frame shows nothing: a plain join
        fade = 0.0
    starts, t = [], 0.0
    for d in durations:
        starts.append(round(t * fps))
        t += d - fade
    lengths = [max(1, round(d * fps)) for d in durations]
    ends = [g + n for g, n in zip(starts, lengths, strict=True)]
    n = len(durations)
    segments = []
    for i in range(n):
        body_from = ends[i - 1] if i and fade > 0 else starts[i]  # the fade into this clip is not its body
        body_to = starts[i + 1] if i < n - 1 and fade > 0 else ends[i]
        if i and fade > 0 and ends[i - 1] > starts[i]:
            segments.append(Segment(starts[i], ends[i - 1], i - 1, starts[i] - starts[i - 1], i))
        frames = body_to - body_from
        parts = max(1, -(-frames // piece)) if piece and frames > 0 else 1
        cuts = [body_from + frames * k // parts for k in range(parts + 1)]
        for a, b in zip(cuts, cuts[1:], strict=False):
            if b > a:
                segments.append(Segment(a, b, i, a - starts[i]))
    return segments


def piece_size(durations: list[float], fps: int, workers: int) -> int:
    """Frames per body piece: the film spread over the workers, at least `MIN_PIECE`."""
    frames = sum(durations) * fps
    return max(MIN_PIECE, -(-round(frames) // max(1, workers)))


def _shifted_srt(cues: list[tuple[float, float, str]], start: float, end: float) -> str:
    """SRT of the cues visible in [start, end), times relative to `start` (wrapped lines kept as given)."""
    from tools.cut import srt_time

    blocks = []
    for begin, stop, text in cues:
        if stop <= start or begin >= end:
            continue
        blocks.append(
            f"{len(blocks) + 1}\n{srt_time(max(0.0, begin - start))} --> {srt_time(min(stop, end) - start)}\n{text}\n"
        )
    return "\n".join(blocks)


def _normalise(label: str, w: int, h: int, fps: int, retime: str, first: int, last: int, out: str) -> str:
    """Bring input `label` to the frame, rate and timebase, and keep its local frames [first, last)."""
    return (
        f"[{label}]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,"
        f"setsar=1,format=yuv420p{retime},settb=AVTB,setpts=PTS-STARTPTS,fps={fps},"
        f"trim=start_frame={first}:end_frame={last},setpts=PTS-STARTPTS,fps={fps}[{out}]"  # trim forgets the rate
    )


def _segment_key(
    seg: Segment, paths: list[Path | None], retimes: list[str], srt: str, style: str, w: int, h: int, fps: int
) -> str:  # fmt: skip
    """What a segment's pixels depend on: its clips (name, size, modification time) and how they are cut."""

    def clip(i: int) -> list:
        st = paths[i].stat()
        return [paths[i].name, st.st_size, st.st_mtime_ns, retimes[i]]

    parts = [clip(seg.a), seg.a_from, seg.frames, clip(seg.b) if seg.b is not None else None]
    parts += [srt, style, w, h, fps, X264]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _encode_segment(
    seg: Segment, name: str, paths: list[Path | None], retimes: list[str], srt: str, style: str,
    w: int, h: int, fps: int, cache: Path, work: Path, env: dict[str, str], threads: int, nice: int = 0,
) -> None:  # fmt: skip
    """Encode `seg` into cache/<name>.mp4 (a temporary name, then renamed: a killed cut leaves no half segment)."""
    from tools.animate import run_ffmpeg
    from tools.files import temp_file

    # One decoder and filter thread: the segments run side by side on every core already.
    args = ["-threads", "1", "-i", f"file:{paths[seg.a]}"]
    parts = [_normalise("0:v", w, h, fps, retimes[seg.a], seg.a_from, seg.a_from + seg.frames, "a")]
    last = "a"
    if seg.b is not None:
        args += ["-threads", "1", "-i", f"file:{paths[seg.b]}"]
        parts.append(_normalise("1:v", w, h, fps, retimes[seg.b], 0, seg.frames, "b"))
        parts.append(f"[a][b]xfade=transition=fade:duration={seg.frames / fps:.6f}:offset=0[x]")
        last = "x"
    if srt:
        subs = f"subs-{name}.srt"  # read from ffmpeg's working folder: no run path enters the filter syntax
        (work / subs).write_text(srt, encoding="utf-8")
        parts.append(f"[{last}]subtitles=filename={subs}:charenc=UTF-8:force_style='{style}'[s]")
        last = "s"
    args += ["-filter_threads", "1", "-filter_complex", ";".join(parts), "-map", f"[{last}]"]
    tmp = temp_file(cache, f".{name}.", ".mp4")
    args += [
        "-frames:v",
        str(seg.frames),
        *X264,
        "-threads",
        str(threads),
        "-r",
        str(fps),
        "-an",
        f"file:{tmp}",
    ]
    try:
        run_ffmpeg(args, cwd=work, env=env, nice=nice)
        os.replace(tmp, cache / f"{name}.mp4")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_segments(
    paths: list[Path | None], durations: list[float], clip_durations: list[float], fade: float, w: int, h: int,
    fps: int, cues: list[tuple[float, float, str]], style: str, cache: Path, workers: int | None = None,
    piece: int | None = None, wait: bool = False, nice: int = 0,
) -> list[tuple[Segment, str | None]]:  # fmt: skip
    """Every segment of the film with its cache name; those whose clips are all on disk (`paths[i]` not None)
    and that are not in `cache` yet are encoded now, in parallel. A segment with a missing clip gets None.
    One that another thread is making is left to it, or, with `wait` (the cut), waited for. `nice`: the
    encoders run that much below this process (segments made ahead that may go unused)."""
    from tools.cut import _retime

    segments = plan_segments(durations, fade, fps, piece)
    retimes = [_retime(d, real) for d, real in zip(durations, clip_durations, strict=True)]
    named: list[tuple[Segment, str | None, str]] = []
    for seg in segments:
        text = _shifted_srt(cues, seg.start / fps, seg.end / fps)
        ready = paths[seg.a] is not None and (seg.b is None or paths[seg.b] is not None)
        named.append(
            (seg, _segment_key(seg, paths, retimes, text, style, w, h, fps) if ready else None, text)
        )
    cache.mkdir(parents=True, exist_ok=True)
    with _claimed:
        if wait:  # the cut needs every segment: one another thread is making is waited for, not made twice
            while any((cache, name) in _claims for _, name, _ in named if name):
                _claimed.wait()
        todo = [
            (seg, name, text)
            for seg, name, text in named
            if name and (cache, name) not in _claims and not (cache / f"{name}.mp4").exists()
        ]
        _claims.update((cache, name) for _, name, _ in todo)
    try:
        _encode_all(todo, paths, retimes, style, w, h, fps, cache, workers, nice)
    finally:
        with _claimed:
            _claims.difference_update((cache, name) for _, name, _ in todo)
            _claimed.notify_all()
    return [(seg, name) for seg, name, _ in named]


# Segments being made right now, by any thread: shot branches that finish together prepare the same fades.
_claims: set[tuple[Path, str]] = set()
_claimed = threading.Condition()


def _encode_all(
    todo, paths, retimes, style, w, h, fps, cache: Path, workers: int | None, nice: int = 0
) -> None:
    from tools.fonts import fontconfig_env

    cpus = os.cpu_count() or 2
    if todo:
        workers = max(1, min(len(todo), workers or cpus))
        threads = max(1, cpus // workers)
        # In the system temp folder as cd-cut-*: a killed cut's folder is found and removed by the next run.
        with tempfile.TemporaryDirectory(prefix="cd-cut-") as tmp:
            env = {**os.environ, **fontconfig_env(tmp)}

            def one(item: tuple[Segment, str, str]) -> None:
                seg, name, text = item
                _encode_segment(
                    seg, name, paths, retimes, text, style, w, h, fps, cache, Path(tmp), env, threads, nice
                )

            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, todo))


def encode_film(
    paths: list[Path], durations: list[float], clip_durations: list[float], fade: float, w: int, h: int,
    fps: int, cues: list[tuple[float, float, str]], style: str, srt: Path | None, lang: str, out: Path,
    audio: Path | None, workers: int | None = None, piece: int | None = None,
) -> list[Segment]:  # fmt: skip
    """Encode the film into `out` (a temporary name beside it, then renamed): the segments not made yet (see
    `prepare`) in parallel, then one stream-copy join with the soft subtitle track `srt` (off by default) and
    the AAC sound `audio` copied. `cues` are burned in (text already wrapped). The segments are kept in
    segments/<out's stem>/ beside `out`, those of an earlier cut that this one does not use are removed.
    Returns the segments."""
    from tools.animate import run_ffmpeg
    from tools.cut import SUBTITLE_LANGS
    from tools.files import temp_file

    cache = out.parent / "segments" / out.stem
    for stale in cache.glob(".join-*"):  # a killed cut's join folder (the run lock keeps one cut at a time)
        shutil.rmtree(stale, ignore_errors=True)
    made = encode_segments(
        paths, durations, clip_durations, fade, w, h, fps, cues, style, cache, workers, piece, wait=True
    )
    names = [f"{name}.mp4" for _, name in made]
    with tempfile.TemporaryDirectory(prefix=".join-", dir=cache) as tmp:
        work = Path(tmp)
        # The list names the cached segments relative to itself: program-made hex names, nothing to escape.
        (work / "list.txt").write_text("".join(f"file '../{n}'\n" for n in names))
        args = ["-f", "concat", "-safe", "0", "-i", "list.txt"]
        maps = ["-map", "0:v", "-c:v", "copy"]
        if srt is not None:
            shutil.copyfile(srt, work / "subs.srt")
            args += ["-f", "srt", "-i", "subs.srt"]
            maps += [
                "-map", "1:s", "-c:s", "mov_text",
                "-metadata:s:s:0", f"language={SUBTITLE_LANGS[lang]}",
                "-metadata:s:s:0", f"title={'中文' if lang == 'zh' else 'English'}",
                "-disposition:s:0", "0",
            ]  # fmt: skip
        if audio is not None:
            args += ["-i", f"file:{audio}"]
            maps += ["-map", f"{2 if srt is not None else 1}:a", "-c:a", "copy"]
        else:
            maps += ["-an"]
        target = temp_file(out.parent, f".{out.stem}.", ".mp4")
        try:
            run_ffmpeg([*args, *maps, "-movflags", "+faststart", f"file:{target}"], cwd=work)
            os.replace(target, out)
        except BaseException:
            Path(target).unlink(missing_ok=True)
            raise
    for old in cache.glob("*.mp4"):
        if old.name not in names:
            old.unlink(missing_ok=True)
    return [seg for seg, _ in made]
