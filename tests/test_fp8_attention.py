"""`--attention fp8` (tools/fp8_attention.py) on the CPU: the per-tensor FP8 scaling, the processor's wiring
into Z-Image's blocks (layout, RoPE, scales, the masked fallback) with the cuDNN kernel replaced by the same
maths done in float32 on FP8 inputs, install/remove, and the refusals. The cuDNN kernel itself needs a Hopper
GPU: evals/bench_steps.py measures it (`--variants fp8-graph-attn`, `--attentions fp8`) with the latents'
difference from bf16 attention in its rows."""

from __future__ import annotations

import pytest
import tiny_pipelines
import torch
import torch.nn.functional as F

from tools import fp8_attention
from tools.errors import SettingsError
from tools.models import ModelManager
from tools.speed import set_attention

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_quantize_maps_the_maximum_to_448_and_round_trips_within_e4m3_precision():
    x = torch.randn(2, 64, 3, 16) * 7.0
    q8, descale = fp8_attention.quantize(x)
    assert q8.dtype == torch.float8_e4m3fn and descale.shape == (1, 1, 1, 1)
    assert q8.float().abs().max().item() == 448.0
    back = q8.float() * descale
    big = x.abs() > x.abs().max() / 64  # normal e4m3 numbers: 3 mantissa bits, at most 1/16 off
    assert ((back - x).abs()[big] / x.abs()[big]).max() <= 1 / 16 + 1e-6
    assert not torch.equal(back, x)  # it really went through 8 bits


def _reference_kernel(q8, k8, v8, dq, dk, dv, scale):
    """What cuDNN's sdpa_fp8 computes, in float32 on the CPU: descaled inputs, softmax attention, the output
    scaled by 1 / dv into FP8 (B, S, H, D in and out)."""
    q, k, v = ((t.float() * d).transpose(1, 2) for t, d in ((q8, dq), (k8, dk), (v8, dv)))
    out = F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2)
    return (out / dv).to(torch.float8_e4m3fn)


def _forward(transformer, lengths: list[int]):
    torch.manual_seed(1)
    x = [torch.randn(16, 1, 8, 8) for _ in lengths]
    caps = [torch.randn(n, 16) for n in lengths]
    with torch.no_grad():
        return transformer(x, torch.full((len(lengths),), 0.5), caps, return_dict=False)[0]


def test_the_processor_is_the_models_attention_with_only_the_kernel_changed(monkeypatch):
    torch.manual_seed(0)
    transformer = tiny_pipelines._z_image_transformer()
    stock = _forward(transformer, [7])
    monkeypatch.setattr(fp8_attention, "_sdpa_fp8", _reference_kernel)
    calls = []
    monkeypatch.setattr(fp8_attention, "attention", _counted(fp8_attention.attention, calls))
    assert fp8_attention.install(transformer) == 4  # 2 main layers, 1 noise and 1 context refiner
    fp8 = _forward(transformer, [7])
    assert len(calls) == 4
    err = [((a - b).norm() / b.norm()).item() for a, b in zip(fp8, stock)]
    # Close to the bf16 model (8-bit rounding of Q, K, V and the output), not equal to it.
    assert 0 < max(err) < 0.1
    # A batch of prompts of different lengths has an attention mask, so the caption refiner and the main
    # layers run the model's own attention; only the noise refiner (two images of one size, no mask) is FP8.
    calls.clear()
    masked = _forward(transformer, [7, 40])
    assert calls == [torch.Size([2, 32, 2, 16])]
    assert fp8_attention.remove(transformer) == 4
    stock_masked = _forward(transformer, [7, 40])
    assert all(0 < ((a - b).norm() / b.norm()).item() < 0.1 for a, b in zip(masked, stock_masked))
    assert torch.equal(_forward(transformer, [7])[0], stock[0])


def _counted(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append(args[0].shape)
        return fn(*args, **kwargs)

    return wrapper


def test_install_refuses_a_denoiser_without_z_image_attention():
    with pytest.raises(SettingsError, match="written for Z-Image"):
        fp8_attention.install(torch.nn.Sequential(torch.nn.Linear(4, 4)))


@NO_CUDA
def test_fp8_attention_is_refused_without_a_hopper_gpu():
    assert "compute capability 9.0" in fp8_attention.fp8_attention_unavailable()
    with pytest.raises(SettingsError, match="--attention fp8 needs a CUDA GPU"):
        set_attention(tiny_pipelines._z_image_transformer(), "fp8")
    with pytest.raises(SettingsError, match="--attention fp8 needs a CUDA GPU"):
        ModelManager(device="cpu", attention="fp8")


def test_the_custom_op_has_a_shape_only_fake_for_tracing():
    from torch._subclasses.fake_tensor import FakeTensorMode

    op = fp8_attention.register()
    with FakeTensorMode():
        q8 = torch.empty(1, 4128, 30, 128, dtype=torch.float8_e4m3fn)
        one = torch.ones(1, 1, 1, 1)
        out = op(q8, q8, q8, one, one, one, 128**-0.5)
    assert out.shape == (1, 4128, 30, 128) and out.dtype == torch.float8_e4m3fn


def test_rope_in_real_arithmetic_is_the_models_complex_rope():
    torch.manual_seed(2)
    x = torch.randn(2, 5, 3, 8)
    freqs = torch.polar(torch.ones(2, 5, 4), torch.randn(2, 5, 4))
    z = torch.view_as_complex(x.float().reshape(2, 5, 3, 4, 2))  # diffusers' ZSingleStreamAttnProcessor
    theirs = torch.view_as_real(z * freqs.unsqueeze(2)).flatten(3)
    assert torch.allclose(fp8_attention.rope(x, freqs), theirs, atol=1e-6)


def test_the_qk_norm_bound_holds_after_rope_and_a_fixed_scale_saturates_past_it():
    torch.manual_seed(3)
    norm = torch.nn.RMSNorm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16) * 2)
    bound = fp8_attention.norm_bound(norm, 16)
    x = torch.randn(1, 64, 2, 16)
    x[0, 0, 0] = torch.tensor([100.0] + [0.0] * 15)  # all of a head's length in one element: the worst case
    freqs = torch.polar(torch.ones(1, 64, 8), torch.randn(1, 64, 8))
    y = fp8_attention.rope(norm(x), freqs)
    assert y.abs().max() <= bound
    # The worst-case head: its length sqrt(16) * |w0|, all in the first pair, kept by the rotation.
    assert torch.isclose(y[0, 0, 0, :2].norm(), 4 * norm.weight[0].abs(), rtol=1e-3)
    q8, descale = fp8_attention.quantize(y * 3, bound)  # past the bound: saturated, never NaN
    assert not q8.float().isnan().any() and q8.float().abs().max() == 448.0
    assert torch.allclose(descale, torch.full((1, 1, 1, 1), bound / 448))
    assert fp8_attention.norm_bound(None, 16) is None
