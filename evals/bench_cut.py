"""The cut alone: how long the segmented encode takes, by how the film is split, on this machine's cores.

Makes `--shots` draft panels at `--size`, their motion clips (`--seconds` each), then times
tools.cut_segments.encode_film over them with burned subtitles: one segment per body (`whole`), bodies split to
spread over the cores (`pieces`), and the same on one worker (`serial`); then cut_film end to end, and again
after `prepare_cut` made the segments of all clips but the last (as the shot branches do during rendering). Prints a table and
writes JSON.

    python evals/bench_cut.py --size 1024x1024 --shots 8 --out cut.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]


def make_clips(root: Path, shots: int, w: int, h: int, seconds: float, fps: int):
    from concurrent.futures import ThreadPoolExecutor

    from tools.animate import AnimateRequest, MotionBackend
    from tools.film import Clip, Shot
    from tools.generate_image import DraftBackend, ImageRequest

    motions = ["push-in", "pan-left", "drift", "pull-out"]

    def one(i: int):
        shot = Shot(id=f"s{i:02d}", index=i, kind="medium", description=f"shot {i} of a headphone film",
                    camera="slow push-in", lighting="soft key", mood="calm", duration=seconds,
                    subtitle=f"Line {i}: silence, redesigned", prompt=f"headphones, shot {i}",
                    motion=motions[i % 4])  # fmt: skip
        still = root / f"s{i:02d}.png"
        DraftBackend().generate(ImageRequest(prompt=shot.prompt, width=w, height=h, seed=i,
                                             output_path=str(still), shot=shot))  # fmt: skip
        t = time.perf_counter()
        made = MotionBackend().animate(AnimateRequest(image_path=str(still), output_path=str(root / f"{shot.id}.mp4"),
                                                      duration=seconds, fps=fps, width=w, height=h,
                                                      motion=shot.motion))  # fmt: skip
        clip = Clip(shot_id=shot.id, take=1, path=f"{shot.id}.mp4", backend=made.backend, model=made.model,
                    motion=shot.motion, duration=seconds, fps=fps, width=w, height=h)  # fmt: skip
        return shot, clip, time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=4) as pool:
        made = list(pool.map(one, range(1, shots + 1)))
    return [m[0] for m in made], [m[1] for m in made], [round(m[2], 3) for m in made]


def main(argv: list[str] | None = None) -> int:
    from tools.cut import CutConfig, _subtitle_style, cut_film, prepare_cut, probe, subtitle_cues
    from tools.cut_segments import encode_film, piece_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1024x1024")
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.9)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--fade", type=float, default=0.4)
    ap.add_argument("--out", default="bench_cut.json")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))
    row: dict = {"cpus": os.cpu_count(), "size": args.size, "shots": args.shots}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shots, clips, clip_s = make_clips(root, args.shots, w, h, args.seconds, args.fps)
        row["clip_s"] = clip_s
        paths = [root / c.path for c in clips]
        durations = [probe(p)["duration"] for p in paths]
        cues = subtitle_cues(shots, durations, args.fade)
        style = _subtitle_style(w, h)
        pieces = piece_size(durations, args.fps, os.cpu_count() or 2)
        for name, kw in [("whole", {}), ("pieces", {"piece": pieces}), ("serial", {"workers": 1})]:
            shutil.rmtree(root / "segments", ignore_errors=True)  # nothing cached from the variant before
            t = time.perf_counter()
            segs = encode_film(paths, durations, durations, args.fade, w, h, args.fps, cues, style, None, "en",
                               root / "final.mp4", None, **kw)  # fmt: skip
            row[name] = {"seconds": round(time.perf_counter() - t, 3), "segments": len(segs)}
        config = CutConfig(width=w, height=h, fps=args.fps, crossfade=args.fade, voice=False)
        shutil.rmtree(root / "segments", ignore_errors=True)
        t = time.perf_counter()
        cut_film(shots, clips, root, config)
        row["cut_film_s"] = round(time.perf_counter() - t, 3)
        # As in a film: the first shots' segments made while the last one renders, then the cut.
        shutil.rmtree(root / "segments", ignore_errors=True)
        t = time.perf_counter()
        prepare_cut(shots, {c.shot_id: c for c in clips[:-1]}, root, config)
        row["prepare_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        cut_film(shots, clips, root, config)
        row["cut_film_after_prepare_s"] = round(time.perf_counter() - t, 3)
    Path(args.out).write_text(json.dumps(row, indent=1))
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
