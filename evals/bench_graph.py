"""Benchmark: the graph's own overhead per shot, with instant fake tools.

Every tool is replaced by one that returns at once (a 1×1 PNG, a passing critique, an empty clip), so what is
left is LangGraph (fan-out, the shot subgraph, the SQLite checkpointer) and the run directory's records.

    python evals/bench_graph.py --shots 8 16 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import director, nodes
from agent.settings import RunSettings
from tools.animate import AnimateResult
from tools.film import Brief, Critique, Cut, Shot, Storyboard
from tools.generate_image import ImageResult

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003010100"
    "c9fe92ef0000000049454e44ae426082"
)


class InstantImage:
    name, model = "instant", "none"

    def generate(self, req):
        Path(req.output_path).parent.mkdir(parents=True, exist_ok=True)
        Path(req.output_path).write_bytes(PNG_1x1)
        return ImageResult(path=req.output_path, backend=self.name, model=self.model, seed=req.seed)


class InstantVideo:
    name, model = "instant", "none"

    def animate(self, req):
        Path(req.output_path).parent.mkdir(parents=True, exist_ok=True)
        Path(req.output_path).write_bytes(b"")
        return AnimateResult(path=req.output_path, backend=self.name, model=self.model)


def instant_storyboard(brief, settings):
    shots = [
        Shot(id=f"s{i:02d}", index=i, kind="medium", description="d", camera="c", lighting="l", mood="m",
             duration=1.0, prompt="p")
        for i in range(1, settings.shot_count() + 1)
    ]  # fmt: skip
    return Storyboard(title="t", lang="en", width=1, height=1, planner="instant", shots=shots)


def passing(*args, **kwargs):
    return Critique(passed=True, grade="A")


def instant_cut(shots, clips, run, settings):
    return Cut(path="final.mp4", srt="final.srt", duration=1, width=1, height=1, fps=1, lang="en", shots=[])


def run_once(n_shots: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(run_dir=str(Path(tmp) / "run"), shots=n_shots, width=64, height=64)
        instant = {"image": InstantImage(), "video": InstantVideo(), "image_why": "", "video_why": ""}
        with (
            mock.patch.object(nodes, "backends", lambda s: instant),
            mock.patch("tools.plan.plan_storyboard", instant_storyboard),
            mock.patch("tools.critique.critique_image", passing),
            mock.patch("tools.critique.critique_clip", passing),
            mock.patch("tools.cut.cut_film", instant_cut),
            mock.patch("agent.report.write_report", lambda *a: "report.html"),
        ):
            start = time.perf_counter()
            director.start(Brief(text="x", lang="en"), settings)
            return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run_once(2)  # warm up imports
    print(f"| shots | total (median of {args.repeat}) | per shot |")
    print("|---|---|---|")
    for n in args.shots:
        times = sorted(run_once(n) for _ in range(args.repeat))
        median = times[len(times) // 2]
        print(f"| {n} | {median * 1000:.0f} ms | {median / n * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
