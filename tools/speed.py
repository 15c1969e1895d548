"""Making the denoiser fast and paying for it once: FP8 linear layers, compiled repeated blocks, and the folder
that keeps Inductor's compiled kernels between processes.

The folder holds Inductor's own caches and one file more, `compile_artifacts.bin`: torch's "mega-cache"
(`torch.compiler.save_cache_artifacts`), every compiled graph, autotuning result, AOTAutograd entry and
dynamic-shape profile this process made, in one blob. A later process loads it before its first compile
(`load_cache_artifacts`), so the folder can also be copied to a fresh machine and still hit.

torch is imported inside the functions: importing this module loads nothing heavy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tools.errors import SettingsError

log = logging.getLogger(__name__)


def fp8_layers(module) -> list[str]:
    """Names of the linear layers that FP8 pays for: both sides at least 1024 wide (the attention and MLP
    projections of the transformer blocks). Small ones (timestep and adaLN inputs, patch embedders, the final
    layer) stay in bf16: their matmuls are too small to gain, and the conditioning path keeps full precision."""
    import torch

    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and min(m.in_features, m.out_features) >= 1024
    ]


def fp8_unavailable() -> str | None:
    """Why `--quantize fp8` cannot run on this machine, or None when it can."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        return (
            "--quantize fp8 needs a CUDA GPU with FP8 tensor cores (compute capability 8.9 or newer: L4, L40, "
            "H100, H200, B200); leave it out on this machine"
        )
    try:
        import torchao.quantization  # noqa: F401
    except ImportError:
        return "--quantize fp8 needs torchao: pip install -e '.[gpu]'"
    return None


ATTENTION = ("auto", "native", "_native_cudnn", "_native_flash", "_native_efficient", "fp8")


def check_speed_settings(
    device: str,
    attention: str,
    render_batch: int,
    cuda_graphs: bool,
    compile: bool = False,
    quantize: str = "none",
    compile_aot: bool = False,
    lora: bool = False,
) -> None:
    """Refuse, with SettingsError naming the flags, speed settings that cannot run together or on `device`."""
    from tools.denoiser_graph import NEEDS_CUDA
    from tools.fp8_attention import fp8_attention_unavailable

    if attention not in ATTENTION:
        raise SettingsError(f"--attention {attention!r}: not a backend; choose one of {', '.join(ATTENTION)}")
    if attention not in ("auto", "native") and device != "cuda":
        raise SettingsError(f"--attention {attention} needs a CUDA GPU; use auto or native on this machine")
    if attention == "fp8" and device == "cuda" and (problem := fp8_attention_unavailable()):
        raise SettingsError(problem)
    if attention == "_native_flash" and render_batch > 1:
        # Flash takes no attention mask, and a batch of prompts of different lengths needs one.
        raise SettingsError("--attention _native_flash renders one image per call: add --render-batch 1")
    if cuda_graphs and device != "cuda":
        raise SettingsError(NEEDS_CUDA)
    if compile_aot and (problem := aot_clash(compile, quantize, cuda_graphs, attention, lora)):
        raise SettingsError(problem)


def aot_clash(compile: bool, quantize: str, cuda_graphs: bool, attention: str, lora: bool) -> str | None:
    """What `--compile-aot` cannot be combined with among these settings, said as the error; None if nothing."""
    clashes = {
        "--compile": compile,
        "--quantize fp8": quantize == "fp8",
        "--cuda-graphs": cuda_graphs,
        f"--attention {attention}": attention not in ("auto", "native"),
        "--lora": lora,
    }
    if not (named := [flag for flag, on in clashes.items() if on]):
        return None
    return (
        f"--compile-aot runs the denoiser's bf16 blocks from ahead-of-time packages; it does not combine with "
        f"{', '.join(named)}: leave {'those' if len(named) > 1 else 'it'} out, or use --compile instead"
    )


def set_attention(denoiser, attention: str) -> None:
    """Run the denoiser's attention through one of diffusers' backends (models/attention_dispatch.py), or
    through cuDNN's FP8 attention ("fp8", Z-Image only: tools/fp8_attention.py).

    "auto" leaves the model as it is (diffusers' default, PyTorch's own SDPA choice): cuDNN attention cost 8% at
    batch 1 on an H100 (docs/PERFORMANCE.md), so no backend is picked until a measurement says it pays.
    "native" is plain `scaled_dot_product_attention`; the others force one SDPA kernel and need a CUDA GPU.
    `_native_flash` takes no attention mask, so it fails on a batch of prompts of different lengths.
    diffusers also makes the backend the process's active one, which every model without its own setting
    would then use; the previous one is put back, so only this denoiser changes."""
    if attention not in ATTENTION:
        raise SettingsError(f"--attention {attention!r}: not a backend; choose one of {', '.join(ATTENTION)}")
    if attention == "auto":
        return
    import torch

    if attention != "native" and not torch.cuda.is_available():
        raise SettingsError(f"--attention {attention} needs a CUDA GPU; use auto or native on this machine")
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    from tools import fp8_attention
    from tools.denoiser_graph import GraphedForward

    if isinstance(getattr(denoiser, "forward", None), GraphedForward):
        denoiser.forward.clear()  # its graphs replay the old backend's kernels
    if attention == "fp8":
        problem = fp8_attention.fp8_attention_unavailable()
        if problem:
            raise SettingsError(problem)
        fp8_attention.install(denoiser)
        return
    fp8_attention.remove(denoiser)
    active = _AttentionBackendRegistry._active_backend
    denoiser.set_attention_backend(attention)
    _AttentionBackendRegistry.set_active_backend(active)
    log.info("attention backend of the denoiser: %s", attention)


def speed_up(
    pipe,
    compile: bool = False,
    quantize: str = "none",
    mode: str | None = None,
    attention: str = "auto",
    compile_vae: bool = False,
    fp8_scales: str = "row",
    cuda_graphs: bool = False,
    aot: str | Path | None = None,
) -> None:
    """Make the denoiser faster in place: FP8 linear layers (torchao) and/or compiled repeated blocks.

    `quantize="fp8"`: torchao's dynamic FP8 (e4m3) activations and weights with per-row scales, on the layers of
    `fp8_layers`; needs a GPU with FP8 tensor cores (compute capability 8.9 or newer: Ada, Hopper, Blackwell).
    Quantize first, then compile, so Inductor fuses the activation scaling into the surrounding kernels.
    `mode`: torch.compile's mode for the blocks ("reduce-overhead" adds CUDA graphs); None is the default.
    `attention`: the denoiser's attention backend (`set_attention`), set before the compile traces it.
    `compile_vae` (with `compile`, on a CUDA device): the VAE's decoder compiled too. On one H200 a 1024² decode
    went from 86.8 to 35.8 ms for an 18.4 s compile (channels-last made it slower, 140.8 ms: not used), so it
    pays from a few hundred images in a process, or at once where the compile cache already holds it.
    `fp8_scales`: "row" (one scale per row of activations and weights, the default) or "tensor" (one per
    tensor: cuBLAS's plain FP8 path, coarser; for benchmarks).
    `cuda_graphs` (a CUDA device): the denoiser's whole forward replayed from CUDA graphs, one per input shape,
    on top of whatever else is applied (tools/denoiser_graph.py).
    `aot` (a folder): the repeated blocks run from AOTInductor packages kept there (tools/aot_blocks.py),
    compiled by the first process that needs one; instead of `compile`, not with it.
    """
    denoiser = getattr(pipe, "transformer", None)
    if denoiser is None:
        return
    set_attention(denoiser, attention)
    if quantize == "fp8":
        quantize_fp8(denoiser, fp8_scales)
    if compile and hasattr(denoiser, "compile_repeated_blocks"):
        allow_recompiles()
        denoiser.compile_repeated_blocks(fullgraph=True, **({"mode": mode} if mode else {}))
    decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
    if compile and compile_vae and decoder is not None and _on_cuda(pipe):
        allow_recompiles()
        decoder.compile()  # nn.Module.compile: in place; a new batch size or image size recompiles it once
    if cuda_graphs:
        from tools.denoiser_graph import install

        install(denoiser)
    if aot is not None:
        from tools import aot_blocks

        aot_blocks.install(denoiser, aot)


def quantize_fp8(denoiser, fp8_scales: str = "row") -> None:
    """torchao's dynamic FP8 on the layers of `fp8_layers`, in place (`speed_up`'s `quantize="fp8"`)."""
    problem = fp8_unavailable()
    if problem:
        raise RuntimeError(problem)
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        PerRow,
        PerTensor,
        quantize_,
    )

    chosen = set(fp8_layers(denoiser))
    # set_inductor_config=False: by default torchao turns on Inductor's coordinate-descent tuning, which
    # re-tunes every kernel at its first launch in each process. On an H200 that was 172 s of a 192 s
    # first FP8 call whose FX-graph and AOTAutograd caches all hit (seventh session), so FP8 paid minutes
    # in every process however warm the compile cache.
    quantize_(
        denoiser,
        Float8DynamicActivationFloat8WeightConfig(
            granularity=PerTensor() if fp8_scales == "tensor" else PerRow(), set_inductor_config=False
        ),
        filter_fn=lambda m, fqn: fqn in chosen,
    )
    log.info("FP8 linear layers: %d of the denoiser's", len(chosen))


def _on_cuda(pipe) -> bool:
    device = getattr(pipe, "device", None)
    return getattr(device, "type", None) == "cuda"


RECOMPILE_LIMIT = 64


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Let Dynamo keep more than its default 8 compiled versions of one block's forward.

    All of Z-Image's blocks share one code object: the image blocks, the refiners with modulation and the
    caption refiner without it, each at the batch sizes and prompt lengths a long run meets. A 400-unit catalogue
    with `--compile` passed 8 on an H200 and, with `fullgraph=True`, stopped with FailOnRecompileLimitHit
    ("self.modulation == False"). Raising the limit only lets such a run go on; it compiles nothing more."""
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, limit)


def use_compile_cache(folder: str | Path) -> Path:
    """Keep Inductor's caches (FX graphs, AOTAutograd, autotuning, Triton kernels) in `folder`.

    Inductor reads TORCHINDUCTOR_CACHE_DIR at each compile and puts Triton's kernel cache under it, so a second
    process with the same models, shapes and torch version skips code generation and autotuning. The default,
    /tmp/torchinductor_$USER, is lost with the machine's /tmp; a folder the user names survives.
    """
    path = Path(folder).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--compile-cache {folder}: not a folder; name a folder (it is created if missing)")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    os.environ.pop("TRITON_CACHE_DIR", None)  # Inductor then keeps Triton's kernels under the folder too
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    load_compile_artifacts(path)
    return path


ARTIFACTS = "compile_artifacts.bin"


def load_compile_artifacts(folder: Path) -> bool:
    """Load the mega-cache file of `folder` into this process's compile caches; False when there is none or
    torch cannot read it (another torch version, a cut-off file): the compile then runs as without it."""
    path = Path(folder) / ARTIFACTS
    if not path.is_file():
        return False
    import torch

    try:
        torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as err:  # a stale or foreign blob must never stop a run: it only costs the compile
        log.warning("compile cache %s not used (%s: %s)", path, type(err).__name__, err)
        return False
    log.info("compile cache artefacts loaded from %s", path)
    return True


def save_compile_artifacts(folder: Path) -> int:
    """Write this process's compile artefacts to `folder`'s mega-cache file; bytes written (0: nothing new).

    A process that only hit the cache holds fewer artefacts than the file: it keeps the larger file, so a
    short warm run never replaces what a long first run compiled."""
    import torch

    from tools.files import write_atomic

    got = torch.compiler.save_cache_artifacts()
    if not got:
        return 0
    blob = got[0]
    path = Path(folder) / ARTIFACTS
    if path.is_file() and path.stat().st_size >= len(blob):
        return 0
    write_atomic(path, blob)
    log.info("compile cache artefacts saved to %s (%.1f MB)", path, len(blob) / 1e6)
    return len(blob)


def compiled_graphs() -> int:
    """Graphs Dynamo has compiled in this process so far: a change after a call means new compile work."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]
