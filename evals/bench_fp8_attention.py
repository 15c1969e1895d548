"""One attention of Z-Image-Turbo at 1024² (batch 1, 4,128 tokens, 30 heads of 128), three ways, on a CUDA GPU:
PyTorch's bf16 SDPA (its own kernel choice), `tools.fp8_attention.attention` (the per-tensor FP8 casts plus
cuDNN's FP8 kernel, eager) and the cuDNN FP8 kernel alone; with the FP8 output's relative difference from the
bf16 one. Random inputs shaped as the model's: Q and K RMS-normed per head, as its QK-norm leaves them.

    python evals/bench_fp8_attention.py [--tokens 4128] [--heads 30] [--batch 1] [--out row.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, repeats: int = 20) -> float:
    """Median milliseconds of `fn` on the GPU (CUDA events), after three warm-up calls."""
    import torch

    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4128)
    parser.add_argument("--heads", type=int, default=30)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from tools import fp8_attention

    problem = fp8_attention.fp8_attention_unavailable()
    if problem:
        raise SystemExit(problem)
    torch.manual_seed(0)
    shape = (args.batch, args.tokens, args.heads, args.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    q, k = F.rms_norm(q, (args.head_dim,)), F.rms_norm(k, (args.head_dim,))
    scale = args.head_dim**-0.5

    def bf16():
        return F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        ).transpose(1, 2)

    op = fp8_attention.register()
    q8, dq = fp8_attention.quantize(q)
    k8, dk = fp8_attention.quantize(k)
    v8, dv = fp8_attention.quantize(v)
    ref = bf16().float()
    out = fp8_attention.attention(q, k, v, scale).float()
    flops = 4 * args.batch * args.heads * args.tokens**2 * args.head_dim  # QKᵀ and PV
    row = dict(
        shape=list(shape),
        gpu=torch.cuda.get_device_name(),
        torch=torch.__version__,
        cudnn=torch.backends.cudnn.version(),
        bf16_sdpa_ms=timed(bf16),
        fp8_attention_ms=timed(lambda: fp8_attention.attention(q, k, v, scale)),
        fp8_kernel_ms=timed(lambda: op(q8, k8, v8, dq, dk, dv, scale)),
        rel_diff=((out - ref).norm() / ref.norm()).item(),
    )
    row["bf16_tflops"] = flops / row["bf16_sdpa_ms"] / 1e9
    row["fp8_kernel_tflops"] = flops / row["fp8_kernel_ms"] / 1e9
    row = {key: round(val, 4) if isinstance(val, float) else val for key, val in row.items()}
    print(json.dumps(row))
    if args.out:
        Path(args.out).write_text(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
