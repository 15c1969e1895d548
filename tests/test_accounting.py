"""Cost accounting: each take records its wait for the device apart from its GPU and wall time, so the
provenance says what a take cost; the sums over a film's takes match."""

from __future__ import annotations

import json

import pytest
import tiny_pipelines

from tools.generate_image import DiffusersImageBackend, ImageRequest
from tools.models import ModelManager
from tools.render_queue import COST_KEYS, sum_costs


@pytest.fixture(scope="module")
def z_image(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny") / "z-image-turbo")


def _film(z_image, out, *extra):
    from agent import director
    from main import build_parser, make_settings
    from tools.plan import read_brief

    brief = "a red cup on a desk, then a kettle, then the street outside"
    argv = ["run", brief, "--shots", "3", "--duration", "5", "--size", "64x64", "--steps", "2",
            "--max-takes", "1", "--image-model", z_image, "--video-backend", "motion", "--clip-model", "none",
            "--out", str(out), *extra]  # fmt: skip
    settings = make_settings(build_parser().parse_args(argv), str(out))
    film = director.start(read_brief(brief, "argument"), settings)
    assert film.state.cut is not None
    return json.loads((out / "manifest.json").read_text()), settings


def test_takes_record_wait_apart_from_work_and_the_sums_match(z_image, tmp_path):
    """Three parallel shots through one pipeline, one render at a time: the later takes waited for the earlier
    ones, and that wait is in queue_wait_s, not in run_s; wall_s is the wait, the work and the write."""
    manifest, settings = _film(z_image, tmp_path / "serial", "--render-batch", "1")
    takes = manifest["takes"]
    assert [t["shot_id"] for t in takes] == [
        s["id"] for s in json.loads((tmp_path / "serial" / "storyboard.json").read_text())["shots"]
    ]
    timings = [t["timings"] for t in takes]
    for t in timings:
        assert set(COST_KEYS) <= set(t)
        assert t["gpu_s"] == 0.0  # a CPU has no GPU seconds to record
        assert t["batch"] == 1.0
        assert t["wall_s"] >= t["queue_wait_s"] + t["run_s"] - 0.01
        assert t["wall_s"] <= t["queue_wait_s"] + t["run_s"] + t["save_s"] + 0.25  # nothing else is hidden
    # Renders ran one at a time: the last to start waited at least for the other two, and that is not work.
    by_wait = sorted(timings, key=lambda t: t["queue_wait_s"])
    assert by_wait[-1]["queue_wait_s"] >= 0.9 * (by_wait[0]["run_s"] + by_wait[1]["run_s"])
    assert all(t["run_s"] < 0.9 * by_wait[-1]["wall_s"] for t in by_wait[:1])
    totals = sum_costs(timings)
    for key in COST_KEYS:
        assert totals[key] == pytest.approx(sum(t[key] for t in timings), abs=1e-3)
    assert settings.backends().manager.queue.batches and all(
        b.size == 1 for b in settings.backends().manager.queue.batches
    )


def test_batched_film_charges_each_take_a_share(z_image, tmp_path):
    manifest, settings = _film(z_image, tmp_path / "batched")
    sizes = [b.size for b in settings.backends().manager.queue.batches]
    assert sum(sizes) == 3 and max(sizes) >= 2  # the fanned-out shots met in the queue
    takes = {t["shot_id"]: t["timings"] for t in manifest["takes"]}
    calls = settings.backends().manager.queue.batches
    run_total = sum(b.ended - b.started for b in calls)
    # Shares add back up to the calls' wall time (the record also holds the image's conversion after the call).
    assert sum(t["run_s"] for t in takes.values()) == pytest.approx(run_total, rel=0.1, abs=0.05)
    assert {t["batch"] for t in takes.values()} <= {float(s) for s in sizes}


def test_edits_record_their_cost_too(z_image, tmp_path):
    from PIL import Image

    manager = ModelManager(device="cpu")
    backend = DiffusersImageBackend(z_image, manager, num_inference_steps=2)
    first = backend.generate(
        ImageRequest(prompt="a red cup", width=64, height=64, seed=1, output_path=str(tmp_path / "a.png"))
    )
    Image.open(first.path).load()
    edit = backend.generate(
        ImageRequest(
            prompt="a red cup, brighter",
            width=64,
            height=64,
            seed=2,
            init_image=first.path,
            output_path=str(tmp_path / "b.png"),
        )
    )
    for result in (first, edit):
        assert {"queue_wait_s", "gpu_s", "run_s", "save_s", "wall_s"} <= set(result.timings)
        assert result.timings["run_s"] > 0 and result.timings["gpu_s"] == 0.0


COMPILE_ONCE = """
import sys, time
from tools.speed import use_compile_cache
use_compile_cache(sys.argv[1])
import torch
from torch._dynamo.utils import counters

block = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 16))
compiled = torch.compile(block, fullgraph=True)
start = time.perf_counter()
compiled(torch.randn(4, 16))
print(counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"], time.perf_counter() - start)
"""


def test_compile_cache_is_paid_once_per_folder(tmp_path):
    """A second process with the same folder finds the first one's compiled graph instead of compiling again."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHINDUCTOR", "TRITON"))}
    env["PYTHONPATH"] = str(root)

    def one_process():
        out = subprocess.run(
            [sys.executable, "-c", COMPILE_ONCE, str(tmp_path / "kernels")],
            cwd=root, env=env, capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        hit, miss, _ = out.stdout.split()
        return int(hit), int(miss)

    assert one_process() == (0, 1)
    assert one_process() == (1, 0)
    assert any((tmp_path / "kernels").iterdir())


def test_compile_cache_must_be_a_folder(tmp_path):
    from tools.speed import use_compile_cache

    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        use_compile_cache(tmp_path / "file")


# --- the GPU budget ---------------------------------------------------------------------------------------------


class _CostlyBlank:
    """An image backend whose takes are flat grey (every critique fails them, so the loop re-shoots) and each
    cost 2 GPU seconds, as a GPU backend records them."""

    name, model = "costly", "blank"

    def generate(self, req):
        from PIL import Image

        from tools.generate_image import ImageResult

        Image.new("RGB", (req.width, req.height), (128, 128, 128)).save(req.output_path)
        timings = {"queue_wait_s": 0.0, "gpu_s": 2.0, "run_s": 0.01, "wall_s": 0.01}
        return ImageResult(path=req.output_path, backend=self.name, model=self.model, seed=req.seed,
                           timings=timings)  # fmt: skip


def _budget_film(tmp_path, budget: float | None):
    from agent import director
    from agent.backends import Backends, model_key
    from agent.settings import RunSettings
    from tools.animate import MotionBackend
    from tools.plan import read_brief

    settings = RunSettings(
        run_dir=str(tmp_path), shots=3, duration=6.0, width=64, height=64, max_takes=3,
        video_backend="motion", clip_model="none", voice=False, budget_gpu_seconds=budget,
    )  # fmt: skip
    settings.attach(Backends(model_key(settings), _CostlyBlank(), "test", MotionBackend(), "test", None))
    film = director.start(read_brief("a cup, a kettle, a window", "argument"), settings)
    return film, json.loads((tmp_path / "manifest.json").read_text())


def test_without_a_budget_every_failing_shot_gets_all_its_takes(tmp_path):
    film, manifest = _budget_film(tmp_path, None)
    assert len(manifest["takes"]) == 9 and not (tmp_path / "budget.json").exists()
    assert sum_costs([t["timings"] for t in manifest["takes"]])["gpu_s"] == pytest.approx(18.0)


def test_the_budget_stops_reshoots_keeps_the_best_takes_and_says_so(tmp_path, capsys):
    film, manifest = _budget_film(tmp_path, 9.0)
    takes = manifest["takes"]
    spent = sum_costs([t["timings"] for t in takes])["gpu_s"]
    # Three first takes (6 s) always; re-shoots only while one more 2 s take fits in 9 s: one of them.
    assert spent <= 9.0 and len(takes) == 4, [(t["shot_id"], t["n"]) for t in takes]
    assert film.state.cut is not None, "the film is still cut from the takes it has"
    assert all(r.best is not None for r in film.state.results), "every shot keeps its best take"
    record = json.loads((tmp_path / "budget.json").read_text())
    assert record["budget_gpu_s"] == 9.0 and len(record["stopped"]) == 3
    assert {s["shot"] for s in record["stopped"]} == {"s01", "s02", "s03"}
    assert "not re-shot" in capsys.readouterr().out
    report = (tmp_path / "report.html").read_text()
    assert "GPU budget of 9 s stopped the re-shoots" in report
    assert "cost: GPU 8.00 s (2.67 s per kept shot)" in report and "shot cost: GPU 2.00 s" in report


def test_a_budget_must_be_positive(tmp_path):
    from pydantic import ValidationError

    from agent.settings import RunSettings

    for bad in (0, -1, float("inf")):
        with pytest.raises(ValidationError, match="budget_gpu_seconds"):
            RunSettings(run_dir=str(tmp_path), budget_gpu_seconds=bad)
