"""The image model in a process of its own (tools/render_process.py), with the tiny Z-Image on the CPU: the same
pixels as the in-process queue, batched the same way; edits; a child that dies; settings that do not fit it;
which command lines start one; and a whole `main.py run` rendered through it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_pipelines

from agent.cli_input import start_render_process
from main import build_parser, make_settings
from tools import render_process
from tools.generate_image import DiffusersImageBackend, ImageRequest
from tools.models import ManagerConfig, ModelManager
from tools.render_process import RenderProcess, RenderProcessError

ROOT = Path(__file__).resolve().parents[1]
ASK = {"height": 64, "width": 64, "num_inference_steps": 2, "guidance_scale": 0.0}


@pytest.fixture(scope="module")
def z_image(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny-rp") / "z-image-turbo")


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_the_child_renders_what_this_process_renders_batched_the_same_way(z_image):
    proc = RenderProcess(z_image, ManagerConfig(render_batch=2))
    try:
        remote = [proc.submit(z_image, f"a red chair, view {i}", 10 + i, **ASK) for i in range(3)]
        remote = [f.result(timeout=300) for f in remote]
        local = ModelManager(render_batch=2)
        local.queue.first_batch = 1  # as the child's preload sets it: one image first, then batches
        here = [local.queue.submit(z_image, f"a red chair, view {i}", 10 + i, **ASK) for i in range(3)]
        here = [f.result(timeout=300) for f in here]
    finally:
        proc.close()
    for a, b in zip(remote, here, strict=True):
        assert a.image.size == (64, 64) and np.array_equal(_pixels(a.image), _pixels(b.image))
    assert [r.cost.batch for r in remote] == [1, 2, 2]
    assert [b.size for b in proc.batches] == [1, 2] and proc.batches[0].ended <= proc.batches[1].started
    assert remote[0].cost.queue_wait_s > 0 and remote[0].cost.run_s > 0
    assert proc.load_report["folder"] == z_image and proc.load_report["device"] == "cpu"
    assert proc.proc.returncode == 0 and not proc.alive


def test_an_edit_goes_to_the_child_and_equals_the_local_edit(z_image, tmp_path):
    init = tmp_path / "take.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    req = ImageRequest(prompt="a blue chair", width=64, height=64, seed=3, num_inference_steps=2,
                       guidance_scale=0.0, init_image=str(init), strength=0.6,
                       output_path=str(tmp_path / "remote.png"))  # fmt: skip
    proc = RenderProcess(z_image, ManagerConfig())
    try:
        remote = DiffusersImageBackend(z_image, ModelManager(), remote=proc).generate(req)
    finally:
        proc.close()
    local = DiffusersImageBackend(z_image, ModelManager()).generate(
        req.model_copy(update={"output_path": str(tmp_path / "local.png")})
    )
    assert remote.parameters["mode"] == local.parameters["mode"] == "img2img"
    assert np.array_equal(_pixels(Image.open(remote.path)), _pixels(Image.open(local.path)))
    assert remote.timings["run_s"] > 0


def test_a_child_that_dies_fails_what_it_held_and_this_process_renders_the_next(z_image, tmp_path):
    proc = RenderProcess(z_image, ManagerConfig())
    backend = DiffusersImageBackend(z_image, ModelManager(), 2, remote=proc)
    held = proc.submit(z_image, "a lamp", 1, **ASK)  # the child is still importing: it cannot answer yet
    os.kill(proc.proc.pid, signal.SIGKILL)
    with pytest.raises(RenderProcessError, match=r"render process ended \(exit code -9\) before it answered"):
        held.result(timeout=60)
    req = ImageRequest(prompt="a lamp", width=64, height=64, seed=1, guidance_scale=0.0,
                       output_path=str(tmp_path / "a.png"))  # fmt: skip
    again = backend.generate(req)
    assert "render_process" not in again.parameters and Path(again.path).is_file()
    assert backend.remote is None and backend.manager.load_counts[z_image] == 1


def test_a_child_started_with_other_settings_is_closed_not_used(z_image):
    proc = render_process.start_early(z_image, ManagerConfig(render_batch=2))
    assert render_process.take(z_image, ManagerConfig(render_batch=4)) is None
    assert proc.proc.wait(timeout=60) == 0
    assert render_process.take(z_image, ManagerConfig(render_batch=2)) is None  # taken once, then gone
    with pytest.raises(RenderProcessError, match="ended"):
        proc.submit(z_image, "a cup", 1, **ASK)


@pytest.mark.parametrize(
    "extra, starts",
    [
        (["--render-process", "on"], True),
        (["--render-process", "on", "--video-backend", "diffusers"], False),  # one manager shares the GPU
        (["--render-process", "on", "--image-backend", "draft"], False),
        (["--render-process", "off"], False),
        ([], False),  # auto: this machine has no NVIDIA GPU
    ],
)
def test_which_command_lines_start_a_render_process(z_image, monkeypatch, extra, starts):
    started = []
    monkeypatch.setattr(
        render_process, "start_early", lambda source, config: started.append((source, config))
    )
    monkeypatch.setattr(render_process, "gpu_present", lambda: False)
    args = build_parser().parse_args(
        ["run", "a cup", "--image-model", z_image, "--render-batch", "2", *extra]
    )
    start_render_process(args)
    assert bool(started) is starts
    if starts:  # the guess from the flags is the run's own ManagerConfig, so the backend adopts it
        settings = make_settings(args, "/tmp/unused")
        assert started[0] == (z_image, settings.config(ManagerConfig))


def test_a_whole_film_renders_in_the_child(z_image, tmp_path):
    out = tmp_path / "film"
    cmd = [sys.executable, "main.py", "run", "a red cup on a desk, then a kettle, then the street outside",
           "--shots", "3", "--duration", "5", "--size", "64x64", "--steps", "2", "--max-takes", "1",
           "--image-model", z_image, "--video-backend", "motion", "--clip-model", "none", "--no-voice",
           "--render-process", "on", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    takes = json.loads((out / "manifest.json").read_text())["takes"]
    assert len(takes) == 3 and all(t["parameters"].get("render_process") for t in takes)
    assert (out / "final.mp4").stat().st_size > 0
