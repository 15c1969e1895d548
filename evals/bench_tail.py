"""Benchmark: the film's tail after its last image, on the CPU (issue 14 target B).

Runs the offline 8-shot film in this process (the draft renderer, motion clips, as `main.py run` does) at
1024² and prints, from the spans of the CPU steps (evals/bench_film_gpu.py's `Spans`), what ran after the last
take was written, the last shot's path from its critique to final.mp4, and which segments the cut itself still
had to encode (the rest were prepared by the shot branches).

    python evals/bench_tail.py [--shots 8] [--size 1024x1024] [--repeat 2] [--prepare] [--out tail.json]

--prepare runs the branches' head start (agent/delivery.py pre_cut) on this machine even where it has fewer
than PREPARE_MIN_CPUS cores, as the 16-core GPU machine does: the flow of the GPU film, on a slower CPU.
Also times the tail's steps one by one on a 1024² clip (`--steps`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]

BRIEF = (
    "A 20-second launch film for wireless noise-cancelling headphones. A commuter on a loud morning train. "
    "She puts the headphones on and the city goes quiet. Close on the matte black ear cups. "
    "Evening light on a rooftop, music in her ears. The product on a stone plinth: “Silence, redesigned.”"
)


def film(out: Path, shots: int, width: int, height: int, spans, spy) -> dict:
    from agent import director
    from agent.settings import RunSettings
    from tools.plan import read_brief

    settings = RunSettings(
        run_dir=str(out), shots=shots, width=width, height=height, video_backend="motion", max_takes=1
    )
    t0 = time.perf_counter()
    t0_epoch = time.time()
    first = len(spans.spans)
    result = director.start(read_brief(BRIEF, "argument"), settings)
    done = time.perf_counter()
    if result.state.cut is None:
        raise RuntimeError(f"the film made no cut; see {out}/report.html")
    pngs = sorted(p.stat().st_mtime for p in out.glob("shots/*/take-*.png"))
    final = (out / "final.mp4").stat().st_mtime
    last_png = pngs[-1] - t0_epoch
    mine = spans.spans[first:]
    rows = [
        {"step": n, "start_s": round(a - t0, 3), "seconds": round(b - a, 3)}
        for n, a, b in sorted(mine, key=lambda x: x[1])
        if b - t0 >= last_png
    ]
    by_step: dict[str, list[float]] = {}
    for n, a, b in mine:
        by_step.setdefault(n, []).append(b - a)
    return {
        "to_final_mp4_s": round(final - t0_epoch, 2),
        "director_s": round(done - t0, 2),
        "last_image_s": round(last_png, 2),
        "after_last_image_s": round(final - pngs[-1], 2),
        "cut_encoded_segments": len(spy.by("cut")),
        "median_s": {k: round(statistics.median(v), 3) for k, v in sorted(by_step.items())},
        "count": {k: len(v) for k, v in sorted(by_step.items())},
        "after_last_image": rows,
    }


def steps(tmp: Path, width: int, height: int, repeat: int) -> dict:
    """Each tail step on its own on one clip: the motion clip, its check, and a prepared cut's join."""
    import numpy as np
    from PIL import Image

    from tools.animate import AnimateRequest, MotionBackend
    from tools.critics.inputs import Thresholds
    from tools.critics.motion import clip_critics

    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    pic = np.stack([x * y, (1 - x) * y, x * (1 - y)], -1)
    pic[::48, :] = 1.0  # lines: a move shows in them, and a bad resample aliases them
    still = tmp / "still.png"
    Image.fromarray((pic * 255).astype("uint8")).save(still)
    clip, check = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        MotionBackend().animate(AnimateRequest(image_path=str(still), output_path=str(tmp / "c.mp4"),
                                               duration=2.9, fps=24, width=width, height=height))  # fmt: skip
        clip.append(time.perf_counter() - t)
        t = time.perf_counter()
        clip_critics(str(tmp / "c.mp4"), str(still), Thresholds(), "push-in")
        check.append(time.perf_counter() - t)
    return {"clip_s": [round(v, 3) for v in clip], "check_s": [round(v, 3) for v in check]}


def spans_for_pre_cut(spans) -> None:
    """The branches' head start as spans too: `pre_cut` (agent.clips holds its own name for it)."""
    import functools
    import threading

    import agent.clips

    real = agent.clips.pre_cut
    lock = threading.Lock()

    @functools.wraps(real)
    def timed(*a, **k):
        start = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            label = "pre_cut ahead" if len(a) > 2 or k.get("made") else "pre_cut"
            with lock:
                spans.spans.append((label, start, time.perf_counter()))

    agent.clips.pre_cut = timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--size", default="1024x1024")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--prepare", action="store_true", help="run pre_cut on this machine whatever its cores")
    ap.add_argument("--steps", action="store_true", help="also time the clip and its check on their own")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    import agent.delivery
    from evals.bench_film_gpu import Spans
    from evals.segment_spy import SegmentSpy

    if args.prepare:
        agent.delivery.PREPARE_MIN_CPUS = 1
    spans = Spans()
    spans_for_pre_cut(spans)
    # Which segments the cut itself encodes: those no branch prepared.
    spy = SegmentSpy().install()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.steps:
            print(json.dumps({"steps": steps(Path(tmp), width, height, args.repeat)}), flush=True)
        for i in range(args.repeat):
            spy.clear()
            row = film(Path(tmp) / f"run{i}", args.shots, width, height, spans, spy)
            rows.append(row)
            tail = ", ".join(f"{r['step']}@{r['start_s']}+{r['seconds']}" for r in row["after_last_image"])
            print(
                f"run {i + 1}: final.mp4 {row['to_final_mp4_s']} s, last image {row['last_image_s']} s, "
                f"tail {row['after_last_image_s']} s; the cut encoded {row['cut_encoded_segments']} "
                f"segments\n  medians {row['median_s']}\n  after the last image: {tail}",
                flush=True,
            )
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores")
    if args.out:
        Path(args.out).write_text(json.dumps({"runs": rows, "load": load}, indent=1))


if __name__ == "__main__":
    main()
