"""Weights staged onto the device before the libraries import (tools/weight_stage.py): the pipeline built around
them is the library's own load, tensor for tensor and image for image; whatever the stage cannot build exactly
goes to the library; the model manager stages at preload and hands the stage to the load."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_pipelines
from test_models_load import _image, _state

from tools import weight_stage
from tools.model_load import load_pipeline, stage_folder
from tools.models import ModelManager
from tools.weight_stage import Stage, assemble, weight_files

MODULES = {"transformer", "text_encoder", "vae"}


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    return Path(tiny_pipelines.build("z-image", tmp_path_factory.mktemp("stage") / "z-image-turbo"))


def _config(module) -> dict:
    config = module.config
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def test_weight_files_follow_the_loaders_names(tmp_path):
    assert weight_files(tmp_path) == []  # nothing the loaders would read
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"x")
    assert weight_files(tmp_path) == []  # .bin: the library reads it itself
    one = tmp_path / "model.safetensors"
    one.write_bytes(b"x")
    assert weight_files(tmp_path) == [one]
    shards = {"a": "model-00002.safetensors", "b": "model-00001.safetensors", "c": "model-00002.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))
    assert weight_files(tmp_path) == []  # a shard the index names is missing
    for name in set(shards.values()):
        (tmp_path / name).write_bytes(b"x")
    assert weight_files(tmp_path) == [
        tmp_path / "model-00001.safetensors",
        tmp_path / "model-00002.safetensors",
    ]
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../x.safetensors"}})
    )
    assert weight_files(tmp_path) == []  # an index never points the stage outside the component's folder


def test_staged_load_equals_the_library_load(zimage):
    import torch
    from diffusers import DiffusionPipeline

    reference = DiffusionPipeline.from_pretrained(zimage, dtype=torch.float32)
    stage = Stage(zimage, "cpu").start()
    assert set(stage.files) == MODULES  # not the tokenizer, not the scheduler
    pipe, report = load_pipeline(zimage, torch.float32, "cpu", stage=stage)
    assert set(report.staged) == MODULES and type(pipe) is type(reference)
    unstaged, _ = load_pipeline(
        zimage, torch.float32, "cpu"
    )  # the loader's own from_pretrained per component
    ref, got = _state(reference), _state(pipe)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) and ref[k].dtype == got[k].dtype for k in ref)
    for name in MODULES:
        mine, theirs = getattr(pipe, name), getattr(reference, name)
        assert _config(mine) == _config(getattr(unstaged, name)) and mine.training is theirs.training is False
        bufs, ref_bufs = dict(mine.named_buffers()), dict(theirs.named_buffers())
        assert bufs.keys() == ref_bufs.keys() and all(torch.equal(bufs[k], ref_bufs[k]) for k in bufs)
        assert [p.requires_grad for p in mine.parameters()] == [p.requires_grad for p in theirs.parameters()]
    np.testing.assert_array_equal(_image(pipe), _image(reference))


def test_a_diffusers_model_takes_the_staged_tensors_without_a_copy(zimage):
    import torch
    from diffusers import ZImageTransformer2DModel

    tensors = Stage(zimage, "cpu").start().take("transformer")
    model = assemble(ZImageTransformer2DModel, zimage / "transformer", tensors, torch.float32, {})
    params = dict(model.named_parameters())
    assert params.keys() == tensors.keys()
    assert all(params[k].data_ptr() == tensors[k].data_ptr() for k in tensors)


def test_what_the_stage_cannot_build_exactly_goes_to_the_library(zimage, monkeypatch):
    import torch
    from diffusers import ZImageTransformer2DModel

    tensors = Stage(zimage, "cpu").start().take("transformer")
    folder = zimage / "transformer"
    # Asked in another dtype: the library casts, so the stage builds nothing.
    assert assemble(ZImageTransformer2DModel, folder, tensors, torch.bfloat16, {}) is None
    partial = dict(list(tensors.items())[1:])
    assert assemble(ZImageTransformer2DModel, folder, partial, torch.float32, {}) is None  # a key missing
    # A whole load asked in another dtype: nothing staged is used, and the pipeline is the library's.
    pipe, report = load_pipeline(zimage, torch.bfloat16, "cpu", stage=Stage(zimage, "cpu").start())
    assert report.staged == [] and pipe.transformer.dtype == torch.bfloat16
    # A component whose building fails in any way is the library's to load (and to report on).
    monkeypatch.setattr("tools.model_load.assemble", lambda *a: 1 / 0)
    pipe, report = load_pipeline(zimage, torch.float32, "cpu", stage=Stage(zimage, "cpu").start())
    assert report.staged == [] and set(report.components) == MODULES
    monkeypatch.undo()
    # A stage onto another device than the load's is dropped, not half used.
    other = Stage(zimage, "cpu").start()
    other.device = "cuda"
    _, report = load_pipeline(zimage, torch.float32, "cpu", stage=other)
    assert report.staged == [] and other.take("vae") is None


def test_a_file_that_fails_to_stage_is_left_to_the_library(zimage, tmp_path, caplog):
    folder = tmp_path / "broken"
    shutil.copytree(zimage, folder)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    stage = Stage(folder, "cpu").start()
    with caplog.at_level(logging.WARNING, logger="tools.weight_stage"):
        assert stage.take("vae") is None
    assert "staging" in caplog.text and "vae" in caplog.text
    assert stage.take("transformer") is None  # the rest was dropped: the library gets the whole device
    whole = Stage(zimage, "cpu").start()
    assert whole.take("transformer") is not None and whole.take("transformer") is None  # taken once


def test_stage_folder_stages_only_a_gpu_load_that_fits(zimage, monkeypatch):
    assert stage_folder(str(zimage), "cpu", float("inf")) is None  # on the CPU the load is one copy already
    assert stage_folder(str(zimage), "cuda", 10) is None  # does not fit the room left: nothing starts
    assert stage_folder("no-such-org/no-such-model", "cuda", float("inf")) is None  # not on this machine
    monkeypatch.setattr(weight_stage, "STAGE", False)
    assert stage_folder(str(zimage), "cuda", float("inf")) is None


def test_a_malformed_folder_is_not_staged_and_preload_never_sees_the_error(zimage, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(zimage, folder)
    (folder / "model_index.json").write_text("{not json")
    assert stage_folder(str(folder), "cuda", float("inf")) is None  # nothing raised, nothing started
    with pytest.raises(ValueError):  # the stage itself refuses it; stage_folder keeps that from the preload
        Stage(folder, "cuda")
    (folder / "model_index.json").write_text(
        json.dumps({"transformer": ["diffusers", "X"], "_class_name": 1})
    )
    shards = folder / "transformer" / "diffusion_pytorch_model.safetensors.index.json"
    shards.write_text("[]")  # an index that is not a mapping
    assert stage_folder(str(folder), "cuda", float("inf")) is None


def test_the_manager_stages_at_preload_and_loads_from_the_stage(zimage, monkeypatch):
    calls = []

    def stage_on_cpu(source, device, room):
        calls.append((source, device, room))
        return Stage(Path(source), "cpu").start()

    monkeypatch.setattr("tools.models.stage_folder", stage_on_cpu)
    manager = ModelManager(device="cpu")
    manager.preload(str(zimage)).join()
    assert [c[:2] for c in calls] == [(str(zimage), "cpu")] and calls[0][2] == float("inf")
    assert set(manager.load_reports[0].staged) == MODULES and manager._stages == {}
    manager.preload(str(zimage)).join()  # loaded already: nothing more is staged or loaded
    assert len(calls) == 1 and manager.load_counts[str(zimage)] == 1


def test_a_stage_that_comes_after_the_load_is_dropped(zimage):
    manager = ModelManager(device="cpu")
    manager.get(str(zimage))
    late = Stage(zimage, "cpu").start()
    manager._stages[str(zimage)] = late
    manager.get(str(zimage))
    assert manager._stages == {} and late.take("vae") is None
