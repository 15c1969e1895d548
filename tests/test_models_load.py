"""The fast loader (tools/model_load.py): the torch components of a saved pipeline loaded each by its own class on
its own thread give the same pipeline, weight for weight and image for image, as diffusers' own loader."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tiny_pipelines

from tools.model_load import load_pipeline, local_folder, module_components, weight_bytes
from tools.models import ModelManager


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("load") / "z-image-turbo")


def _state(pipe) -> dict:
    import torch

    return {
        f"{name}.{k}": v
        for name, c in pipe.components.items()
        if isinstance(c, torch.nn.Module)
        for k, v in c.state_dict().items()
    }


def _image(pipe) -> np.ndarray:
    import torch

    out = pipe(
        prompt="a paper boat on a rainy street",
        width=32,
        height=32,
        num_inference_steps=2,
        guidance_scale=0.0,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="np",
    )
    return out.images[0]


def test_components_are_the_torch_modules_only(zimage):
    found = module_components(Path(zimage))
    assert set(found) == {"transformer", "text_encoder", "vae"}  # not the tokenizer, not the scheduler
    assert found["transformer"].__name__ == "ZImageTransformer2DModel"
    files = sum(f.stat().st_size for f in Path(zimage).rglob("*.safetensors"))
    assert weight_bytes(Path(zimage)) == files > 0


def test_parallel_load_equals_the_library_load(zimage):
    import torch
    from diffusers import DiffusionPipeline

    reference = DiffusionPipeline.from_pretrained(zimage, dtype=torch.float32)
    pipe, report = load_pipeline(Path(zimage), torch.float32, "cpu")
    assert type(pipe) is type(reference)
    assert set(report.components) == {"transformer", "text_encoder", "vae"} and report.parallel
    ref, got = _state(reference), _state(pipe)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    np.testing.assert_array_equal(_image(pipe), _image(reference))
    seq, seq_report = load_pipeline(Path(zimage), torch.float32, "cpu", parallel=False)
    assert not seq_report.parallel
    np.testing.assert_array_equal(_image(seq), _image(reference))


def test_components_load_on_threads(zimage, monkeypatch):
    """Each torch component's from_pretrained runs on a loader thread, not the caller's."""
    import torch
    from diffusers import AutoencoderKL

    names: list[str] = []
    real = AutoencoderKL.from_pretrained.__func__

    def spy(cls, *a, **kw):
        names.append(threading.current_thread().name)
        return real(cls, *a, **kw)

    monkeypatch.setattr(AutoencoderKL, "from_pretrained", classmethod(spy))
    load_pipeline(Path(zimage), torch.float32, "cpu")
    assert names and names[0].startswith("load")
    names.clear()
    load_pipeline(Path(zimage), torch.float32, "cpu", parallel=False)
    assert names == [threading.current_thread().name]


def test_manager_loads_a_folder_once_through_the_fast_loader(zimage):
    manager = ModelManager(device="cpu")
    pipe = manager.get(zimage)
    assert manager.get(zimage) is pipe
    assert manager.load_counts[zimage] == 1
    assert len(manager.load_reports) == 1 and manager.load_reports[0].folder == zimage
    assert local_folder(zimage) is not None
    assert local_folder("no-such-org/no-such-model") is None
