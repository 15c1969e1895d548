"""Real generation, offline: tiny random pipelines of the real diffusers classes, saved to folders and loaded through
the same `from_pretrained(path)` code as real model ids; the remote backend against a loopback server."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_pipelines
from fakes import Delay, FakeOpenAI, Status
from PIL import Image

from tools.animate import AnimateRequest, DiffusersVideoBackend, select_video_backend
from tools.edit_image import EditRequest, edit_image
from tools.generate_image import (
    BackendError,
    DiffusersImageBackend,
    DraftBackend,
    ImageRequest,
    RemoteImageBackend,
    select_image_backend,
)
from tools.models import ModelManager, OutOfMemory, frame_count, round_size, spec_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Build each tiny pipeline once per session, on demand: models("z-image") -> folder."""
    root = tmp_path_factory.mktemp("tiny")
    names = {"z-image": "z-image-turbo"}
    return lambda name: tiny_pipelines.build(name, root / names.get(name, name))


@pytest.fixture
def manager():
    return ModelManager(device="cpu")


def _png(path: Path, size=(64, 48), color=(200, 40, 40)) -> str:
    im = Image.new("RGB", size, color)
    im.paste((30, 30, 200), (size[0] // 2, 0, size[0], size[1]))
    im.save(path)
    return str(path)


def _pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# ---- the table ------------------------------------------------------------------------------------------------


def test_z_image_turbo_default_steps_are_the_model_cards_eight_forwards():
    """The card's recipe (9 steps in the diffusers it was written for: sigma_min 0, so the 9th timestep is
    sigma 0 and its forward moves nothing) and the table's default on this diffusers take the same steps: the
    sigmas of every forward that moves the latents are equal, and none is wasted now."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.z_image.pipeline_z_image import get_default_z_image_sigmas, retrieve_timesteps

    config = dict(num_train_timesteps=1000, use_dynamic_shifting=False, shift=3.0)  # Z-Image-Turbo's
    card = FlowMatchEulerDiscreteScheduler(**config)
    card.sigma_min = 0.0
    card.set_timesteps(9)
    sig = card.sigmas.tolist()
    moving = [a for a, b in zip(sig, sig[1:]) if b != a]  # forwards whose Euler step is not zero
    assert len(sig) - 1 == 9 and len(moving) == 8

    steps = spec_for("Tongyi-MAI/Z-Image-Turbo").num_inference_steps
    ours = FlowMatchEulerDiscreteScheduler(**config)
    retrieve_timesteps(ours, steps, "cpu", sigmas=get_default_z_image_sigmas(steps))
    now = ours.sigmas.tolist()
    assert len(now) - 1 == steps == 8  # one forward per step
    assert now[:-1] == pytest.approx(moving, abs=1e-6) and now[-1] == 0.0


def test_table_matches_ids_and_folders(models):
    assert spec_for("Tongyi-MAI/Z-Image-Turbo").num_inference_steps == 8
    assert spec_for("Tongyi-MAI/Z-Image-Turbo").guidance_scale == 0.0
    assert spec_for("Tongyi-MAI/Z-Image").family == "z-image"
    assert spec_for("Qwen/Qwen-Image-Edit").pipelines["reference"] == "QwenImageEditPipeline"
    assert spec_for("Lightricks/LTX-Video").frame_step == 8
    assert spec_for("Wan-AI/Wan2.2-TI2V-5B-Diffusers").family == "wan2.2-ti2v"
    assert spec_for("Wan-AI/Wan2.2-T2V-A14B-Diffusers").family == "wan2.2-t2v"
    assert spec_for("some/other-model").family == "generic"
    # A local folder is matched by its model_index.json: TI2V by the expand_timesteps flag, not the name.
    ti2v = Path(models("wan-ti2v"))
    renamed = ti2v.parent / "my-video-model"
    if not renamed.exists():
        renamed.symlink_to(ti2v)
    assert spec_for(str(renamed)).family == "wan2.2-ti2v"


def test_frame_and_size_rules():
    assert frame_count(5, 24, 8) == (120, 121)  # LTX: 8k+1
    assert frame_count(5, 24, 4) == (120, 121)
    assert frame_count(2, 25, 8) == (50, 57)
    assert frame_count(2, 25, 4) == (50, 53)
    for n in range(1, 200):
        assert (frame_count(n / 24, 24, 8)[1] - 1) % 8 == 0
    assert round_size(1280, 720, 32) == (1280, 736)
    assert round_size(720, 1280, 16) == (720, 1280)
    assert round_size(72, 40, 16) == (80, 48)


def test_modules_import_without_torch():
    code = "import sys, tools.models, tools.edit_image, tools.generate_image, tools.animate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- images ---------------------------------------------------------------------------------------------------


def test_z_image_text_to_image_exact_size_and_seeds(models, manager, tmp_path):
    backend = DiffusersImageBackend(models("z-image"), manager, num_inference_steps=2)
    req = dict(prompt="a red cup on a desk", width=72, height=40, seed=3)
    a = backend.generate(ImageRequest(**req, output_path=str(tmp_path / "a.png")))
    b = backend.generate(ImageRequest(**req, output_path=str(tmp_path / "b.png")))
    c = backend.generate(ImageRequest(**{**req, "seed": 4}, output_path=str(tmp_path / "c.png")))
    assert Image.open(a.path).size == (72, 40)  # generated at 80x48 (multiple of 16), cropped back
    assert a.parameters["generated_size"] == [80, 48]
    assert a.backend == "diffusers" and a.model == models("z-image")
    assert a.parameters["pipeline"] == "ZImagePipeline" and a.parameters["guidance_scale"] == 0.0
    assert np.array_equal(_pixels(a.path), _pixels(b.path))  # per-take generator: same seed, same image
    assert not np.array_equal(_pixels(a.path), _pixels(c.path))
    assert manager.load_counts[models("z-image")] == 1


def test_z_image_edits_share_components(models, manager, tmp_path):
    src = models("z-image")
    init = _png(tmp_path / "take.png")
    results = {}
    for mode in ["img2img", "inpaint", "outpaint", "reference"]:
        width = 96 if mode == "outpaint" else 64
        req = EditRequest(
            mode=mode,
            prompt="a red cup",
            image=init,
            mask_region=(8, 8, 40, 40),
            reference_images=[init],
            width=width,
            height=48,
            seed=1,
            num_inference_steps=2,
            output_path=str(tmp_path / f"{mode}.png"),
        )
        results[mode] = edit_image(req, manager, src)
        assert Image.open(results[mode].path).size == (width, 48)
    assert results["img2img"].parameters["pipeline"] == "ZImageImg2ImgPipeline"
    assert results["inpaint"].parameters["pipeline"] == "ZImageInpaintPipeline"
    assert results["reference"].parameters["reference_mode"] == "img2img"  # Turbo has no reference pipeline
    # Outpainting to a wider frame keeps the original take, scaled, exactly in the middle.
    x0, y0, x1, y1 = results["outpaint"].parameters["kept_box"]
    kept = _pixels(results["outpaint"].path)[y0:y1, x0:x1]
    original = np.asarray(
        Image.open(init).resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), dtype=np.int16
    )
    assert np.abs(kept - original).max() <= 1
    # One load; the task pipelines were derived with from_pipe and hold the very same modules.
    assert manager.load_counts[src] == 1
    t2i, i2i, inp = (manager.get(src, t) for t in ("t2i", "img2img", "inpaint"))
    assert t2i.transformer is i2i.transformer is inp.transformer
    assert t2i.vae is inp.vae and t2i.text_encoder is i2i.text_encoder


def test_backend_routes_edit_requests(models, manager, tmp_path):
    backend = DiffusersImageBackend(models("z-image"), manager, num_inference_steps=2)
    init = _png(tmp_path / "take.png", size=(64, 64))
    res = backend.generate(
        ImageRequest(
            prompt="cup",
            width=64,
            height=64,
            seed=0,
            init_image=init,
            mask_region=(0, 0, 32, 32),
            output_path=str(tmp_path / "fix.png"),
        )
    )
    assert res.parameters["mode"] == "inpaint" and res.parameters["mask_region"] == [0, 0, 32, 32]


def test_qwen_image_and_qwen_image_edit_reference(models, tmp_path):
    manager = ModelManager(device="cpu")
    qwen = DiffusersImageBackend(models("qwen-image"), manager, num_inference_steps=2)
    res = qwen.generate(
        ImageRequest(prompt="a poster", width=64, height=64, seed=0, output_path=str(tmp_path / "q.png"))
    )
    assert res.parameters["pipeline"] == "QwenImagePipeline" and "true_cfg_scale" in res.parameters
    edit = DiffusersImageBackend(models("qwen-image-edit"), manager, num_inference_steps=2)
    ref = _png(tmp_path / "ref.png", size=(64, 64))
    res = edit.generate(
        ImageRequest(
            prompt="the same cup, now blue",
            width=64,
            height=64,
            seed=0,
            reference_images=[ref],
            output_path=str(tmp_path / "e.png"),
        )
    )
    assert res.parameters["reference_mode"] == "QwenImageEditPipeline"
    assert Image.open(res.path).size == (64, 64)


def test_z_image_omni_reference(models, tmp_path):
    manager = ModelManager(device="cpu")
    ref = _png(tmp_path / "ref.png", size=(64, 64))
    res = edit_image(
        EditRequest(
            mode="reference",
            prompt="the product on a beach",
            reference_images=[ref],
            width=64,
            height=64,
            seed=0,
            num_inference_steps=2,
            output_path=str(tmp_path / "o.png"),
        ),
        manager,
        models("z-image-omni"),
    )
    assert res.parameters["reference_mode"] == "ZImageOmniPipeline"
    assert Image.open(res.path).size == (64, 64)


# ---- the model manager --------------------------------------------------------------------------------------


def test_manager_budget_offloads_lru_and_never_reloads(models):
    z, q = models("z-image"), models("qwen-image")
    roomy = ModelManager(device="cpu")
    for source in (z, q, z, q):
        roomy.get(source)
    assert not any(e.startswith("offload") for e in roomy.events)  # both fit: nothing moves
    assert roomy.load_counts == {z: 1, q: 1}

    sizes = sorted(e.nbytes for e in roomy._entries.values())
    budget = sizes[1] + sizes[0] / 2  # room for either model alone, not for both
    tight = ModelManager(device="cpu", gpu_memory=budget / 1024**3)
    tight.get(z)
    tight.get(q)
    assert tight.events[-2:] == [f"offload {z}", f"place {q}"]
    assert tight.resident() == [q]
    tight.get(z)  # back: moved in again, not loaded again
    assert tight.events[-2:] == [f"offload {q}", f"onload {z}"]
    assert tight.load_counts == {z: 1, q: 1}


def test_manager_out_of_memory_retries_once_then_raises(models, tmp_path):
    import torch

    manager = ModelManager(device="cpu")
    src = models("z-image")
    calls = {"n": 0}

    def oom_once(pipe, i, t, kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return kw

    out = manager.run(
        src,
        "t2i",
        prompt="cup",
        height=32,
        width=32,
        num_inference_steps=2,
        guidance_scale=0.0,
        callback_on_step_end=oom_once,
    )
    assert out.images[0].size == (32, 32)
    assert f"oom {src}" in manager.events

    def always(pipe, i, t, kw):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(OutOfMemory):
        manager.run(
            src, "t2i", prompt="cup", height=32, width=32, num_inference_steps=2, callback_on_step_end=always
        )


def _make_lora(src: str, folder: Path) -> Path:
    """A LoRA for the tiny Z-Image transformer, strong enough to change a 2-step render."""
    import torch
    from diffusers import ZImagePipeline, ZImageTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = ZImageTransformer2DModel.from_pretrained(src, subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    )
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ZImagePipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return folder / "pytorch_lora_weights.safetensors"


def test_lora_load_weight_and_unload(models, tmp_path):
    src = models("z-image")
    lora_file = _make_lora(src, tmp_path / "style")
    assert lora_file.exists()

    def render(manager):
        out = manager.run(
            src,
            "t2i",
            prompt="cup",
            height=32,
            width=32,
            num_inference_steps=2,
            guidance_scale=0.0,
            generator=manager.generator(0),
            output_type="np",
        )
        return out.images[0]

    base = render(ModelManager(device="cpu"))
    styled = ModelManager(device="cpu", lora=[f"{lora_file}:0.8"])
    with_lora = render(styled)
    assert np.abs(with_lora - base).max() > 1e-3
    styled.set_lora_weights(src, {"style0": 0.0})
    assert np.abs(render(styled) - base).max() < 1e-5
    styled.set_lora_weights(src, {"style0": 0.8})
    assert np.abs(render(styled) - with_lora).max() < 1e-5
    styled.unload_loras(src)
    assert np.abs(render(styled) - base).max() < 1e-5


# ---- video ----------------------------------------------------------------------------------------------------


def _probe(path: str) -> tuple[int, tuple[int, int], float]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    frames = sum(1 for _ in reader)
    return frames, tuple(meta["size"]), meta["fps"]


@pytest.mark.parametrize("name,task", [("ltx-i2v", "i2v"), ("wan-ti2v", "i2v"), ("wan-t2v", "t2v")])
def test_video_backends_frames_size_fps(models, tmp_path, name, task):
    manager = ModelManager(device="cpu")
    still = _png(tmp_path / "still.png", size=(72, 40))
    backend = DiffusersVideoBackend(models(name), manager, num_inference_steps=2)
    res = backend.animate(
        AnimateRequest(
            image_path=still,
            output_path=str(tmp_path / "clip.mp4"),
            prompt="a cup",
            duration=0.75,
            fps=8,
            width=72,
            height=40,
            seed=1,
        )
    )
    assert res.parameters["task"] == task and res.backend == "diffusers" and res.model == models(name)
    step = spec_for(models(name)).frame_step
    assert (res.parameters["generated_frames"] - 1) % step == 0
    frames, size, fps = _probe(res.path)
    assert (frames, size, fps) == (6, (72, 40), 8.0)


# ---- remote server --------------------------------------------------------------------------------------------


def _b64_png(size=(80, 80)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_remote_backend_success_errors_and_timeout(tmp_path):
    with FakeOpenAI() as server:
        backend = RemoteImageBackend(server.base_url, "z-image-turbo", timeout=1.0, max_retries=0)
        req = ImageRequest(prompt="a cup", width=64, height=48, seed=7, output_path=str(tmp_path / "r.png"))

        server.script("/v1/images/generations", [{"created": 0, "data": [{"b64_json": _b64_png()}]}])
        res = backend.generate(req)
        assert Image.open(res.path).size == (64, 48)
        assert res.backend == "remote" and res.model == "z-image-turbo"
        sent = server.requests["/v1/images/generations"][-1]
        assert sent["response_format"] == "b64_json" and sent["seed"] == 7 and sent["size"] == "64x48"

        server.script("/v1/images/generations", [Status(500)])
        with pytest.raises(BackendError, match="HTTP 500"):
            backend.generate(req)
        server.script(
            "/v1/images/generations",
            [Status(400, {"error": {"message": "content policy violation", "code": "content_policy"}})],
        )
        with pytest.raises(BackendError, match="refused.*content policy"):
            backend.generate(req)
        server.script("/v1/images/generations", [{"created": 0, "data": []}])
        with pytest.raises(BackendError, match="without an image"):
            backend.generate(req)
        server.script(
            "/v1/images/generations", [Delay(3, {"created": 0, "data": [{"b64_json": _b64_png()}]})]
        )
        start = time.monotonic()
        with pytest.raises(BackendError, match="timed out"):
            backend.generate(req)
        assert time.monotonic() - start < 2.5

        server.script("/v1/images/edits", [{"created": 0, "data": [{"b64_json": _b64_png((64, 48))}]}])
        init = _png(tmp_path / "take.png")
        res = backend.generate(req.model_copy(update={"init_image": init, "mask_region": (0, 0, 16, 16)}))
        assert res.parameters["endpoint"] == "edits"
        assert len(server.requests["/v1/images/edits"]) == 1


# ---- selection and the whole run ------------------------------------------------------------------------------


def test_selection(models, tmp_path):
    from agent.backends import Backends
    from agent.settings import RunSettings

    s = RunSettings(run_dir=str(tmp_path), image_model=models("z-image"), video_model=models("ltx-i2v"))
    chosen = Backends.for_settings(s)
    image, why = chosen["image"], chosen["image_why"]
    assert isinstance(image, DiffusersImageBackend) and models("z-image") in why
    video, why = chosen.video, chosen.video_why
    assert isinstance(video, DiffusersVideoBackend) and video.model == models("ltx-i2v")
    assert video.manager is image.manager is chosen.manager  # one ModelManager per run
    image, why = select_image_backend(
        RunSettings(run_dir=str(tmp_path), image_server="http://127.0.0.1:9/v1")
    )
    assert isinstance(image, RemoteImageBackend)
    image, why = select_image_backend(RunSettings(run_dir=str(tmp_path)))
    assert isinstance(image, DraftBackend) and "no --image-model" in why


def test_two_runs_in_one_process_get_their_own_model_managers(models, tmp_path):
    """A second run in the same process with another --gpu-memory and --lora gets its own ModelManager, and
    the backends main.py reports are the ones the graph rendered with."""
    from agent import director
    from agent.nodes import backends
    from main import build_parser, make_settings
    from tools.plan import read_brief

    src = models("z-image")
    lora = _make_lora(src, tmp_path / "style")
    managers = []
    for i, extra in enumerate([["--gpu-memory", "3"], ["--gpu-memory", "5", "--lora", f"{lora}:0.8"]]):
        out = tmp_path / f"run{i}"
        argv = ["run", "a red cup on a desk", "--shots", "1", "--duration", "2", "--size", "64x64",
                "--steps", "2", "--max-takes", "1", "--image-model", src, "--video-backend", "motion",
                "--clip-model", "none", "--out", str(out), *extra]  # fmt: skip
        settings = make_settings(build_parser().parse_args(argv), str(out))
        reported = backends(settings)  # what main.py prints at start
        film = director.start(read_brief("a red cup on a desk", "argument"), settings)
        assert film.state.cut is not None
        assert backends(settings) is reported
        assert reported.manager.load_counts[src] == 1  # the graph loaded into this run's manager
        managers.append(reported.manager)
    first, second = managers
    assert first is not second
    assert (first.budget, second.budget) == (3 * 1024**3, 5 * 1024**3)
    assert first.lora == [] and second.lora == [(str(lora), 0.8)]


def test_main_run_end_to_end_with_tiny_models(models, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "main.py",
        "run",
        "a red cup on a desk, then a close-up",
        "--shots",
        "2",
        "--duration",
        "3",
        "--image-model",
        models("z-image"),
        "--video-model",
        models("ltx-i2v"),
        "--size",
        "64x64",
        "--steps",
        "2",
        "--max-takes",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["takes"] and all(
        t["backend"] == "diffusers" and t["model"] == models("z-image")
        for t in manifest["takes"]
        if not t.get("error")
    )
    assert manifest["clips"] and all(
        c["backend"] == "diffusers" and c["model"] == models("ltx-i2v") for c in manifest["clips"]
    )
    assert (out / "final.mp4").exists()


def test_fp8_layers_are_the_block_projections():
    """--quantize fp8 converts the attention and MLP projections of every block and nothing small."""
    from diffusers import ZImageTransformer2DModel

    from tools.speed import fp8_layers

    dit = ZImageTransformer2DModel(
        dim=1024,
        n_layers=1,
        n_refiner_layers=1,
        n_heads=8,
        n_kv_heads=8,
        cap_feat_dim=64,
        axes_dims=[32, 48, 48],
        axes_lens=[64, 32, 32],
    )
    blocks = ["layers.0", "noise_refiner.0", "context_refiner.0"]
    parts = [
        "attention.to_q",
        "attention.to_k",
        "attention.to_v",
        "attention.to_out.0",
        "feed_forward.w1",
        "feed_forward.w2",
        "feed_forward.w3",
    ]
    assert set(fp8_layers(dit)) == {f"{b}.{p}" for b in blocks for p in parts}


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the refusal on a machine without FP8"
)
def test_fp8_refused_without_an_fp8_gpu(models, tmp_path):
    from tools.speed import speed_up

    pipe = ModelManager(device="cpu").get(models("z-image"))
    with pytest.raises(RuntimeError, match="compute capability 8.9"):
        speed_up(pipe, quantize="fp8")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "run",
            "tea",
            "--quantize",
            "fp8",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--quantize fp8 needs a CUDA GPU" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_defaults_chosen_only_with_a_gpu_and_cached_weights(tmp_path, monkeypatch):
    """Z-Image-Turbo and LTX-Video are picked by `auto` when CUDA is there and their weights are in the HF cache;
    otherwise the offline backends, each with its reason. Explicit choices and the server settings are honoured."""
    import huggingface_hub.constants
    import torch

    from agent.settings import RunSettings
    from tools.models import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL

    hub = tmp_path / "hub"
    for repo in (DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL):
        folder = hub / f"models--{repo.replace('/', '--')}"
        (folder / "snapshots" / "abc").mkdir(parents=True)
        (folder / "snapshots" / "abc" / "model_index.json").write_text("{}")
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    cpu = ModelManager(device="cpu")  # no real GPU behind the fake one
    settings = RunSettings(run_dir=str(tmp_path))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_image_backend(settings)[0].name == "draft"
    video, why = select_video_backend(settings)
    assert video.name == "motion" and DEFAULT_VIDEO_MODEL in why

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    image, why = select_image_backend(settings, lambda: cpu)
    assert (image.name, image.model) == ("diffusers", DEFAULT_IMAGE_MODEL) and "cached weights" in why
    video, why = select_video_backend(settings, lambda: cpu)
    assert (video.name, video.model) == ("diffusers", DEFAULT_VIDEO_MODEL) and "cached weights" in why
    assert select_video_backend(settings.model_copy(update={"video_backend": "motion"}))[0].name == "motion"

    (hub / f"models--{DEFAULT_VIDEO_MODEL.replace('/', '--')}" / "refs" / "main").unlink()  # weights gone
    assert select_video_backend(settings)[0].name == "motion"

    remote, _ = select_image_backend(
        settings.model_copy(
            update={
                "image_server": "http://127.0.0.1:9/v1",
                "image_server_timeout": 1.5,
                "image_server_retries": 0,
            }
        )
    )
    assert (remote.client.timeout, remote.client.max_retries) == (1.5, 0)


def test_outpaint_to_another_aspect_ratio_on_every_backend(models, manager, tmp_path):
    """A 16:9 take delivered at 9:16: exact size, the take's own pixels kept in the middle, new borders painted."""
    take = _png(tmp_path / "take.png", size=(64, 36))
    ask = {
        "prompt": "a red cup on a desk",
        "width": 36,
        "height": 64,
        "seed": 1,
        "init_image": take,
        "outpaint": True,
    }

    def check(res):
        assert res.parameters["mode"] == "outpaint"
        pixels = _pixels(res.path)
        assert pixels.shape[:2] == (64, 36)
        x0, y0, x1, y1 = res.parameters["kept_box"]
        assert (x1 - x0, y1 - y0) == (36, 20)  # the take scaled to fit the new width, centred
        original = np.asarray(Image.open(take).resize((36, 20), Image.Resampling.LANCZOS), dtype=np.int16)
        assert np.abs(pixels[y0:y1, x0:x1] - original).max() <= 1
        return pixels[:y0].reshape(-1, 3).mean(0)  # the painted top border

    check(
        DiffusersImageBackend(models("z-image"), manager, num_inference_steps=2).generate(
            ImageRequest(**ask, output_path=str(tmp_path / "d.png"))
        )
    )
    res = DraftBackend().generate(ImageRequest(**ask, output_path=str(tmp_path / "draft.png")))
    check(res)
    assert res.parameters["fill"] == "blurred-stretch"

    with FakeOpenAI() as server:
        server.script("/v1/images/edits", [{"created": 0, "data": [{"b64_json": _b64_png((36, 64))}]}])
        backend = RemoteImageBackend(server.base_url, "z-image-turbo", timeout=5.0, max_retries=0)
        border = check(backend.generate(ImageRequest(**ask, output_path=str(tmp_path / "r.png"))))
        assert np.abs(border - (10, 120, 200)).max() < 3  # the server's painting, not the take
        sent = server.requests["/v1/images/edits"][-1]["_raw"]
        assert 'name="mask"' in sent and 'name="image"' in sent and "64x36" not in sent


def test_reference_mode_says_how_references_are_used(models, manager):
    from tools.generate_image import reference_mode

    turbo = reference_mode(DiffusersImageBackend(models("z-image"), manager))
    assert "no reference pipeline" in turbo and "img2img" in turbo
    omni = reference_mode(DiffusersImageBackend(models("z-image-omni"), manager))
    assert "ZImageOmniPipeline" in omni
    assert "colours" in reference_mode(DraftBackend())
