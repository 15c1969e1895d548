"""The denoiser's attention backend (`--attention`, tools/speed.py set_attention): auto leaves the model as it is,
a named backend reaches every attention processor of the image model's denoiser before a compile traces it and
leaves the process's other models alone, and a wrong value is refused with the choices named."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_pipelines

from agent.settings import RunSettings
from tools import speed
from tools.errors import SettingsError
from tools.models import ManagerConfig, ModelManager


@pytest.fixture(scope="module")
def z_image(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny") / "z-image-turbo")


def _backends(denoiser) -> set:
    return {
        getattr(m.processor, "_attention_backend", "none")
        for m in denoiser.modules()
        if getattr(m, "processor", None) is not None
    }


def _active():
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    return _AttentionBackendRegistry._active_backend


def _image(manager, source):
    out = manager.run(
        source,
        "t2i",
        prompt="a red cup",
        width=64,
        height=64,
        num_inference_steps=2,
        guidance_scale=0.0,
        generator=manager.generator(3),
    )
    return np.asarray(out.images[0].convert("RGB"))


def test_auto_leaves_the_denoiser_and_native_sets_only_its_processors(z_image):
    before = _active()
    auto = ModelManager(device="cpu")
    assert _backends(auto.get(z_image).transformer) == {None}
    native = ModelManager(device="cpu", attention="native")
    denoiser = native.get(z_image).transformer
    assert {str(getattr(b, "value", b)) for b in _backends(denoiser)} == {"native"}
    assert _active() == before, "the process's active backend (other models) must not change"
    # On the CPU both run PyTorch's SDPA: the same picture.
    assert np.array_equal(_image(auto, z_image), _image(native, z_image))


def test_the_backend_is_set_before_the_blocks_compile(monkeypatch):
    seen: list[str] = []

    class Denoiser:
        def set_attention_backend(self, name):
            seen.append(f"attention {name}")

        def compile_repeated_blocks(self, **kw):
            seen.append("compile")

    class Pipe:
        transformer = Denoiser()

    import torch._dynamo.config as dynamo_config

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    with dynamo_config.patch(recompile_limit=dynamo_config.recompile_limit):  # compile=True raises it
        speed.speed_up(Pipe(), compile=True, attention="_native_cudnn")
        assert seen == ["attention _native_cudnn", "compile"]
        seen.clear()
        speed.speed_up(Pipe(), compile=True)  # auto: the model keeps its own setting
        assert seen == ["compile"]


def test_wrong_or_unusable_values_are_refused_with_the_choices():
    with pytest.raises(SettingsError, match="choose one of auto, native, _native_cudnn"):
        ModelManager(device="cpu", attention="flash3")
    with pytest.raises(SettingsError, match="needs a CUDA GPU"):
        ModelManager(device="cpu", attention="_native_cudnn")
    with pytest.raises(SettingsError, match="--render-batch 1"):
        ModelManager(device="cuda", gpu_memory=1.0, attention="_native_flash")
    ModelManager(device="cuda", gpu_memory=1.0, attention="_native_flash", render_batch=1)

    class Pipe:
        transformer = object()

    with pytest.raises(SettingsError, match="not a backend"):
        speed.speed_up(Pipe(), attention="sdpa")


def test_the_flag_reaches_the_manager_and_names_its_choices(capsys):
    from agent.backends import model_key
    from main import build_parser

    settings = RunSettings(run_dir="r", attention="native")
    assert settings.config(ManagerConfig).attention == "native"
    assert model_key(settings) != model_key(RunSettings(run_dir="r")), (
        "a warm worker must not reuse other attention"
    )
    assert set(RunSettings.model_fields["attention"].annotation.__args__) == set(speed.ATTENTION)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "a brief", "--attention", "bogus"])
    assert "_native_cudnn" in capsys.readouterr().err


def test_compile_also_compiles_an_image_models_vae_decoder_on_a_gpu(monkeypatch):
    """--compile compiles the VAE's decoder of an image model on CUDA (measured to pay); not on a CPU, not
    without --compile, and not for a video model's VAE (compile_vae=False)."""
    import torch
    import torch._dynamo.config as dynamo_config

    compiled: list[str] = []

    class Part:
        def __init__(self, name):
            self.name = name

        def compile(self, **kw):
            compiled.append(self.name)

        def compile_repeated_blocks(self, **kw):
            compiled.append(self.name)

    class Vae:
        decoder = Part("decoder")

    class Pipe:
        transformer = Part("blocks")
        vae = Vae()

        def __init__(self, device):
            self.device = torch.device(device)

    with dynamo_config.patch(recompile_limit=dynamo_config.recompile_limit):  # compile=True raises it
        speed.speed_up(Pipe("cuda"), compile=True, compile_vae=True)
        assert compiled == ["blocks", "decoder"]
        compiled.clear()
        speed.speed_up(Pipe("cpu"), compile=True, compile_vae=True)
        speed.speed_up(Pipe("cuda"), compile=True, compile_vae=False)
        speed.speed_up(Pipe("cuda"), compile=False, compile_vae=True)
        assert compiled == ["blocks", "blocks"]
