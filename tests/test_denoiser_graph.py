"""`--cuda-graphs` (tools/denoiser_graph.py) on the CPU: what makes two calls one graph, the wrapper's
transparency where it does not graph, the clearing that keeps a graph from outliving its weights, and the
refusals on a machine without CUDA. The capture and replay themselves need a GPU: evals/bench_steps.py
measures them (`--variants fp8-graph`), with the eager/captured/replayed counts in its rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tiny_pipelines
import torch

from tools.denoiser_graph import GraphedForward, _key, clear, graphed
from tools.errors import SettingsError
from tools.models import ModelManager

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def _leaves(*args, **kwargs):
    from torch.utils._pytree import tree_flatten

    return tree_flatten((args, kwargs))


def test_the_key_is_the_shapes_and_plain_arguments_and_refuses_what_cannot_be_graphed(monkeypatch):
    a = torch.zeros(2, 3)
    # A CPU tensor is never graphed.
    assert _key(*_leaves([a], t=a)) is None
    # Pretend the tensors live on a GPU to check what the key holds (only .device is read).
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("cuda", 0)))
    with torch.no_grad():
        same = _key(*_leaves([torch.zeros(2, 3)], torch.ones(1), return_dict=False))
        assert same == _key(*_leaves([torch.ones(2, 3)], torch.zeros(1), return_dict=False))  # values differ
        assert same != _key(*_leaves([torch.zeros(2, 4)], torch.ones(1), return_dict=False))  # shape
        assert same != _key(*_leaves([torch.zeros(2, 3)], torch.ones(1), return_dict=True))  # a flag
        assert same != _key(
            *_leaves([torch.zeros(2, 3), torch.zeros(2, 3)], torch.ones(1), return_dict=False)
        )
        assert same != _key(
            *_leaves([torch.zeros(2, 3, dtype=torch.bfloat16)], torch.ones(1), return_dict=False)
        )
        assert _key(*_leaves([torch.zeros(2, 3)], scale=object())) is None  # not a tensor nor a plain value
    # While gradients are recorded nothing is graphed (a graph replays no autograd).
    assert _key(*_leaves([torch.zeros(2, 3)])) is None


def _tiny_transformer(tmp_path):
    from diffusers import ZImageTransformer2DModel

    folder = tmp_path / "zimage"
    tiny_pipelines.build("z-image", folder)
    return ZImageTransformer2DModel.from_pretrained(folder, subfolder="transformer").eval()


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(16, 1, 8, 8, generator=g)]
    cap = [torch.randn(5, _CAP_DIM, generator=g)]
    return x, torch.tensor([0.5]), cap


_CAP_DIM = 16  # tiny_pipelines' Qwen3 hidden size, the transformer's cap_feat_dim


def test_where_nothing_can_be_graphed_the_forward_is_the_model_s_own(tmp_path):
    dit = _tiny_transformer(tmp_path)
    x, t, cap = _inputs()
    with torch.no_grad():
        want = dit(x, t, cap, return_dict=False)[0][0]
        wrapped = GraphedForward(dit.forward)
        dit.forward = wrapped
        for _ in range(3):  # CPU tensors: every call runs the model itself, none is captured
            got = dit(x, t, cap, return_dict=False)[0][0]
            assert torch.equal(got, want)
    assert wrapped.counts == {"eager": 3}
    assert not wrapped.graphs and not wrapped.seen


def test_clear_drops_every_graph_and_what_was_seen(tmp_path):
    dit = _tiny_transformer(tmp_path)
    wrapped = GraphedForward(dit.forward)
    dit.forward = wrapped
    wrapped.seen.add(("k",))
    wrapped.failed.add(("f",))
    wrapped.graphs[("k",)] = object()
    # a pool handle: torch releases it with its last graph, so it is never captured into again
    wrapped.pool = (0, 1)
    pipe = type("Pipe", (), {"transformer": dit})()
    assert graphed(pipe) is wrapped
    clear(pipe)
    assert not wrapped.graphs and not wrapped.seen and not wrapped.failed and wrapped.pool is None
    clear(type("Pipe", (), {"transformer": None})())  # a pipeline without a denoiser: nothing to do


def test_model_manager_drops_graphs_before_lora_changes(tmp_path):
    """A graph keeps the adapters' scales it was captured with; ModelManager clears before it changes them."""
    folder = tmp_path / "zi"
    tiny_pipelines.build("z-image", folder)
    manager = ModelManager(device="cpu")
    pipe = manager.get(str(folder))
    wrapped = GraphedForward(pipe.transformer.forward)
    pipe.transformer.forward = wrapped
    wrapped.seen.add(("k",))
    manager.unload_loras(str(folder))
    assert not wrapped.seen
    wrapped.seen.add(("k",))
    manager._to_host(manager._entries[str(folder)])  # moving the weights away invalidates the addresses
    assert not wrapped.seen


@NO_CUDA
def test_cuda_graphs_refused_without_cuda(tmp_path):
    from tools.denoiser_graph import install

    with pytest.raises(SettingsError, match="--cuda-graphs needs a CUDA GPU"):
        install(torch.nn.Linear(2, 2))
    with pytest.raises(SettingsError, match="--cuda-graphs needs a CUDA GPU"):
        ModelManager(device="cpu", cuda_graphs=True)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "run",
            "tea",
            "--cuda-graphs",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--cuda-graphs needs a CUDA GPU" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
