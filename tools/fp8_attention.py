"""FP8 attention for the image denoiser (`--attention fp8`): cuDNN's FP8 flash attention, through NVIDIA's
cudnn-frontend.

On one H200 the bf16 attention of Z-Image-Turbo's 30 blocks is about a quarter of a 1024² image's kernels
(141 of 564 ms over 8 steps: 0.59 ms a call, cuDNN's bf16 flash kernel). cuDNN's FP8 kernel took 0.43 ms a
call in the same model, and the image 0.594 s instead of 0.631 s through ModelManager.run (docs/PERFORMANCE.md,
eleventh session). This replaces the attention of each block:

- Q, K and V are each cast to FP8 e4m3 with one scale per tensor. Q and K come out of the blocks' RMS
  QK-norm and RoPE, so no element can exceed sqrt(head_dim) times the norm's largest weight (`norm_bound`):
  that bound maps to 448 (e4m3's largest value), a fixed scale, and the RoPE (written here in real arithmetic)
  and the cast fuse into one kernel when the blocks are compiled. V's scale is its absolute maximum (one
  reduction); e4m3 is a floating-point format, so a scale only has to keep values in range;
- cuDNN's `sdpa_fp8` graph runs the attention: QKᵀ, the softmax with its probabilities scaled by 448 into FP8,
  PV, each product's scales undone inside the kernel; on Hopper its output is FP8 too, scaled as V is (every
  output row is an average of V's rows, so V's maximum bounds it);
- the output is scaled back to bf16 for the block's output projection.

A call with an attention mask (a batch of prompts of different lengths) runs the model's own bf16 attention:
the FP8 graph here is built without padding. The cuDNN graph of each shape is built once and kept; it runs on the caller's CUDA stream, so the blocks' compile and `--cuda-graphs` capture it like any
kernel. It is a `torch.library` custom op, opaque to Dynamo, with a shape-only fake for tracing.

What it costs in accuracy: e4m3 keeps 3 bits of mantissa, so each product carries about 6% rounding per
element, averaged over thousands of terms. `evals/bench_steps.py` reports the latents' relative difference from
bf16 attention next to the speed; the choice stays the user's (off by default).

Only Z-Image's attention (diffusers' `ZSingleStreamAttnProcessor`) is replaced; another denoiser is refused.
torch and cudnn are imported inside the functions: importing this module loads nothing heavy.
"""

from __future__ import annotations

import logging
import threading

from tools.errors import SettingsError

log = logging.getLogger(__name__)

E4M3_MAX = 448.0  # the largest finite float8_e4m3fn
NEEDS = (
    "--attention fp8 needs a CUDA GPU with FP8 attention in cuDNN (compute capability 9.0 or newer: H100, H200, "
    "B200) and cudnn-frontend (pip install -e '.[gpu]'); leave it out or use auto on this machine"
)
_local = threading.local()  # cuDNN handles are not thread-safe: one per thread and device
_graphs: dict = {}  # (shape, stride, device, scale) -> (graph, its tensors, workspace bytes)
_build_lock = threading.Lock()
_constants: dict = {}  # device -> the softmax's scales


def fp8_attention_unavailable() -> str | None:
    """Why `--attention fp8` cannot run on this machine, or None when it can."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (9, 0):
        return NEEDS
    try:
        import cudnn  # noqa: F401
    except (ImportError, OSError):
        return NEEDS
    return None


def quantize(x, bound: float | None = None):
    """(x in FP8 e4m3, its descale as a float32 [1, 1, 1, 1] tensor): one scale for the whole tensor, mapping
    `bound` (or, without one, x's absolute maximum: a reduction kernel) to 448. Values past the bound saturate
    (e4m3fn has no infinity: an unclamped overflow would be NaN)."""
    import torch

    if bound is None:
        amax = x.detach().abs().amax().float().clamp(min=1e-12)
        scale, descale = E4M3_MAX / amax, (amax / E4M3_MAX).reshape(1, 1, 1, 1)
    else:
        scale = E4M3_MAX / bound
        descale = torch.full((1, 1, 1, 1), bound / E4M3_MAX, dtype=torch.float32, device=x.device)
    return (x.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), descale


def attention(query, key, value, scale: float, q_bound: float | None = None, k_bound: float | None = None):
    """Attention over (batch, sequence, heads, head_dim) tensors through FP8; out in value's dtype, same
    layout. `q_bound`/`k_bound`: what no element of query/key exceeds (`norm_bound`), so their scales need no
    reduction; value's is its maximum."""
    q8, dq = quantize(query, q_bound)
    k8, dk = quantize(key, k_bound)
    v8, dv = quantize(value)
    out = (_sdpa_fp8 or register())(q8, k8, v8, dq, dk, dv, scale)
    return (out.float() * dv).to(value.dtype)


def norm_bound(norm, head_dim: int) -> float | None:
    """What no element of an RMS-normed head (then rotated by RoPE) can exceed: an RMS-normed vector of
    `head_dim` elements has length at most sqrt(head_dim), its weight stretches it by at most the weight's
    largest magnitude, and RoPE rotates pairs of elements, which keeps the length. None without a norm."""
    if norm is None:
        return None
    weight = getattr(norm, "weight", None)
    stretch = 1.0 if weight is None else float(weight.detach().abs().max())
    return head_dim**0.5 * stretch * 1.01  # 1% for the norm's own rounding to bf16


_sdpa_fp8 = None  # the custom op, once registered (a plain global, so Dynamo reads it while tracing a block)


def register():
    """Register the custom op (needs torch; importing this module does not). `install` calls it before any
    compile traces a block."""
    global _sdpa_fp8
    if _sdpa_fp8 is not None:
        return _sdpa_fp8
    import torch

    schema = "(Tensor q8, Tensor k8, Tensor v8, Tensor dq, Tensor dk, Tensor dv, float scale) -> Tensor"

    @torch.library.custom_op("creative_director::sdpa_fp8", mutates_args=(), schema=schema)
    def sdpa_fp8(q8, k8, v8, dq, dk, dv, scale):
        return _run(q8, k8, v8, dq, dk, dv, scale)

    @sdpa_fp8.register_fake
    def _(q8, k8, v8, dq, dk, dv, scale):
        return torch.empty_like(q8)

    _sdpa_fp8 = sdpa_fp8
    return sdpa_fp8


def _run(q8, k8, v8, dq, dk, dv, scale: float):
    """cuDNN's FP8 attention on the current stream; q8/k8/v8 are (B, S, H, D) FP8, the output likewise, scaled
    by 1 / dv."""
    import torch

    graph, t, workspace_bytes = _graph(q8, scale)
    out = torch.empty_like(q8)
    p_descale, p_scale = _p_scales(q8.device)
    amax_s = torch.empty_like(p_scale)
    amax_o = torch.empty_like(p_scale)
    workspace = torch.empty(workspace_bytes, dtype=torch.uint8, device=q8.device)
    handle = _handle(q8.device)
    import cudnn

    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(q8.device).cuda_stream)
    pack = {t["q"]: q8, t["k"]: k8, t["v"]: v8, t["dq"]: dq, t["dk"]: dk, t["dv"]: dv}
    # P (every probability at most 1) is scaled by 448 into FP8 and back; O is scaled as V is.
    pack.update({t["ds"]: p_descale, t["ss"]: p_scale, t["so"]: 1.0 / dv})
    pack.update({t["o"]: out, t["amax_s"]: amax_s, t["amax_o"]: amax_o})
    graph.execute(pack, workspace, handle=handle)
    return out


def _p_scales(device):
    """(1/448, 448) as float32 [1, 1, 1, 1] tensors on `device`, made once: the softmax's FP8 scales."""
    import torch

    if device not in _constants:
        one = torch.ones((1, 1, 1, 1), dtype=torch.float32, device=device)
        _constants[device] = (one / E4M3_MAX, one * E4M3_MAX)
    return _constants[device]


def _handle(device):
    import cudnn

    handles = getattr(_local, "handles", None)
    if handles is None:
        handles = _local.handles = {}
    if device.index not in handles:
        handles[device.index] = cudnn.create_handle()
    return handles[device.index]


def _graph(q8, scale: float):
    """The built cuDNN graph for this shape and layout (built once, then kept)."""
    key = (tuple(q8.shape), q8.stride(), str(q8.device), scale)
    with _build_lock:
        if key not in _graphs:
            _graphs[key] = _build(q8, scale)
        return _graphs[key]


def _build(q8, scale: float):
    import cudnn

    e4m3, fp32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
    graph = cudnn.pygraph(
        io_data_type=e4m3,
        intermediate_data_type=fp32,
        compute_data_type=fp32,
        handle=_handle(q8.device),
    )
    b, s, h, d = q8.shape
    dims = [b, h, s, d]  # cuDNN's BHSD order over the (B, S, H, D) memory: strides say where each lies
    st = q8.stride()
    strides = [st[0], st[2], st[1], st[3]]
    t = {n: graph.tensor(name=n, dim=dims, stride=strides, data_type=e4m3) for n in ("q", "k", "v")}
    for n in ("dq", "dk", "dv", "ds", "ss", "so"):
        t[n] = graph.tensor(name=n, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=fp32)
    o, _stats, amax_s, amax_o = graph.sdpa_fp8(
        q=t["q"],
        k=t["k"],
        v=t["v"],
        descale_q=t["dq"],
        descale_k=t["dk"],
        descale_v=t["dv"],
        descale_s=t["ds"],
        scale_s=t["ss"],
        scale_o=t["so"],
        is_inference=True,
        attn_scale=scale,
        use_causal_mask=False,
        name="sdpa_fp8",
    )
    o.set_output(True).set_dim(dims).set_stride(strides).set_data_type(e4m3)
    for amax in (amax_s, amax_o):
        amax.set_output(True).set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(fp32)
    t.update(o=o, amax_s=amax_s, amax_o=amax_o)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    graph.build_plans()
    log.info("cuDNN FP8 attention graph built for %s", tuple(q8.shape))
    return graph, t, graph.get_workspace_size()


def rope(x, freqs_cis):
    """Z-Image's rotary embedding (diffusers multiplies complex numbers) in real float32 arithmetic, so
    Inductor fuses it with the FP8 cast that follows: it generates no code for complex operators.
    x: (B, S, H, D); freqs_cis: complex (B, S, D/2)."""
    import torch

    cos_sin = torch.view_as_real(freqs_cis).unsqueeze(2)  # (B, S, 1, D/2, 2)
    cos, sin = cos_sin[..., 0], cos_sin[..., 1]
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(3)


def processor_class():
    """Z-Image's attention processor with its attention through FP8 (a subclass, so diffusers sees the
    processor it knows). Built on first use, as it needs diffusers."""
    global _processor
    if _processor is not None:
        return _processor
    from diffusers.models.transformers.transformer_z_image import ZSingleStreamAttnProcessor

    class Fp8AttnProcessor(ZSingleStreamAttnProcessor):
        """Diffusers' Z-Image attention, with the attention itself through `attention` when no mask is given.
        `q_bound`/`k_bound` (`norm_bound` of the module's QK-norms) give Q and K fixed FP8 scales."""

        def __init__(self, q_bound: float | None = None, k_bound: float | None = None):
            super().__init__()
            self.q_bound, self.k_bound = q_bound, k_bound

        def __call__(
            self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, freqs_cis=None
        ):
            if attention_mask is not None:
                return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, freqs_cis)
            query = attn.to_q(hidden_states).unflatten(-1, (attn.heads, -1))
            key = attn.to_k(hidden_states).unflatten(-1, (attn.heads, -1))
            value = attn.to_v(hidden_states).unflatten(-1, (attn.heads, -1))
            if attn.norm_q is not None:
                query = attn.norm_q(query)
            if attn.norm_k is not None:
                key = attn.norm_k(key)
            if freqs_cis is not None:
                query, key = rope(query, freqs_cis), rope(key, freqs_cis)
            scale = query.shape[-1] ** -0.5
            out = attention(query, key, value, scale, self.q_bound, self.k_bound).flatten(2, 3)
            out = attn.to_out[0](out)
            return attn.to_out[1](out) if len(attn.to_out) > 1 else out

    _processor = Fp8AttnProcessor
    return Fp8AttnProcessor


_processor = None  # the processor class, once built


def install(denoiser) -> int:
    """Replace the attention of every Z-Image attention module of `denoiser` in place; how many. A denoiser
    with none is refused (this attention is written for Z-Image's blocks)."""
    from diffusers.models.transformers.transformer_z_image import ZSingleStreamAttnProcessor

    register()
    cls = processor_class()
    modules = [
        m for m in denoiser.modules() if isinstance(getattr(m, "processor", None), ZSingleStreamAttnProcessor)
    ]
    if not modules:
        raise SettingsError(
            f"--attention fp8 is written for Z-Image's attention; {type(denoiser).__name__} has none: "
            "use auto or a diffusers backend for this model"
        )
    for m in modules:
        head_dim = m.to_q.out_features // m.heads
        m.set_processor(cls(norm_bound(m.norm_q, head_dim), norm_bound(m.norm_k, head_dim)))
    log.info("FP8 attention in %d attention modules", len(modules))
    return len(modules)


def remove(denoiser) -> int:
    """Put diffusers' own Z-Image attention back where `install` replaced it; how many."""
    cls = _processor
    if cls is None or not hasattr(denoiser, "modules"):  # never installed, or not a torch module
        return 0
    from diffusers.models.transformers.transformer_z_image import ZSingleStreamAttnProcessor

    modules = [m for m in denoiser.modules() if isinstance(getattr(m, "processor", None), cls)]
    for m in modules:
        m.set_processor(ZSingleStreamAttnProcessor())
    return len(modules)
