"""The image denoiser's repeated blocks compiled ahead of time, once per machine (AOTInductor, `--compile-aot`).

`--compile` traces the blocks with Dynamo in every process: with Inductor's caches filled, a cold 8-shot film on
an H200 still took 34.0 s against 28.9 s uncompiled, because each process traced its graphs again. Here one
block of each kind is exported (`torch.export`) with its weights as inputs, compiled by AOTInductor into a
package (a shared library holding its kernels), and kept in the cache folder; every block of that kind then
runs through that one package with its own weights. A later process loads the package and calls it: no
tracing, no code generation.
Measured (docs/PERFORMANCE.md): about 1.0 s per 1024² image against 1.43 s eager on an H200. The first load
took 14-18 s there through `aoti_load_package`; loaded with `load_package` below, a cold film with the packages
on disk took 26.1 and 29.5 s against 30.2 and 31.6 s plain on the same machine (fifteenth session).

- One package per kind of block: the block's class and structure (its parameters' names, shapes and dtypes, and
  its settings such as eps, heads and modulation), which of its inputs the model passes, their dtypes, the
  device, and the versions of torch and diffusers. The batch and the sequence length are dynamic, so a batch of
  one, a batch of four and longer prompts share it.
- The first call of a kind with no package compiles it from that call's inputs (the first process pays the
  compile, tens of seconds), writes it atomically and loads it. A compile that fails is written down beside it
  (`<key>.failed`, the error), logged, and that kind runs eagerly from then on, in this and later processes.
- A call the package was not made for (other inputs, other dtypes, a LoRA adapter injected into the block)
  runs the block's own forward, as does a block whose parameters changed shape.

torch is imported inside the functions: importing this module loads nothing heavy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from pathlib import Path

from tools.errors import SettingsError

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the wrapper's signature changes: old packages are then simply not found
# The blocks this works for, and which of their forward's inputs carry the batch (dim 0) and sequence (dim 1).
SUPPORTED = {"ZImageTransformerBlock": ("x", "attn_mask", "freqs_cis", "adaln_input")}
ARGS = {
    "ZImageTransformerBlock": (
        "x",
        "attn_mask",
        "freqs_cis",
        "adaln_input",
        "noise_mask",
        "adaln_noisy",
        "adaln_clean",
    )
}
SEQUENCE_INPUTS = ("x", "attn_mask", "freqs_cis")  # (batch, sequence, ...); the rest are (batch, ...)
PER_BLOCK = ("layer_id", "training")  # attributes that differ between blocks of one kind, or change no code
MAX_BATCH = 64
MAX_SEQUENCE = 65536
_EXPORTING = threading.local()  # set while this thread exports a block: its forward is then the block's own


def aot_unavailable(denoiser) -> str | None:
    """Why `--compile-aot` cannot run on this denoiser, or None when it can."""
    names = getattr(denoiser, "_repeated_blocks", None) or []
    if not any(name in SUPPORTED for name in names):
        return (
            f"--compile-aot compiles Z-Image's transformer blocks; {type(denoiser).__name__} has none it knows "
            "(use --compile for this model)"
        )
    return None


def default_folder() -> Path:
    """Where packages live when no --compile-cache is named: the user's cache folder, kept between runs."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "creative-director" / "compile"


def install(denoiser, folder: str | Path) -> int:
    """Route every supported repeated block of `denoiser` through packages kept in `folder`; the number of
    blocks routed. Raises SettingsError when the denoiser has no block this supports."""
    if problem := aot_unavailable(denoiser):
        raise SettingsError(problem)
    folder = Path(folder).expanduser().resolve() / "aot"
    folder.mkdir(parents=True, exist_ok=True)
    packages = Packages(folder)
    count = 0
    for module in denoiser.modules():
        kind = type(module).__name__
        if kind in SUPPORTED and not getattr(module, "_aot_installed", False):
            eager = module.forward
            module.forward = functools.partial(_forward, module, eager, packages)
            module._aot_installed = True
            count += 1
    log.info("%d denoiser blocks run from ahead-of-time packages in %s", count, folder)
    return count


def _forward(block, eager, packages: Packages, *args, **kwargs):
    names = ARGS[type(block).__name__]
    if getattr(_EXPORTING, "on", False) or len(args) > len(names) or set(kwargs) - set(names):
        return eager(*args, **kwargs)
    values = dict(zip(names, args, strict=False)) | kwargs
    given = tuple(n for n in names if values.get(n) is not None)
    if not set(given) <= set(SUPPORTED[type(block).__name__]) or "x" not in given:
        return eager(*args, **kwargs)  # per-token modulation (the omni mode) and the like: not compiled
    tensors = [values[n].contiguous() for n in given]  # the layout compiled for (a no-op when it is)
    weights = dict(block.named_parameters()) | dict(block.named_buffers())
    if any(".lora_" in name for name in weights):
        return eager(*args, **kwargs)  # a LoRA adapter: its scale would be baked into the package
    runner = packages.runner(block, given, tensors, weights)
    if runner is None or tuple(weights) != runner.names or not _fits(tensors, given, runner.signature):
        return eager(*args, **kwargs)  # a LoRA adapter injected since, or inputs it was not made for
    return runner(tensors, weights)


def _fits(tensors, given, signature) -> bool:
    """The inputs have the dtypes and ranks the package was made for, and a batch and sequence it takes."""
    batch = tensors[0].shape[0]
    for name, t, (dtype, ndim) in zip(given, tensors, signature, strict=True):
        if str(t.dtype) != dtype or t.ndim != ndim or t.shape[0] != batch:
            return False
        if name in SEQUENCE_INPUTS and t.shape[1] != tensors[0].shape[1]:
            return False
    return 1 <= batch <= MAX_BATCH and 2 <= tensors[0].shape[1] <= MAX_SEQUENCE


class Runner:
    """One loaded package: called with a block's inputs and its weights in the order it was compiled with."""

    def __init__(self, loader, names: tuple[str, ...], signature: tuple):
        self.loader = loader
        self.names = names
        self.signature = signature

    def __call__(self, tensors, weights):
        return self.loader.boxed_run([*tensors, *weights.values()])[0]


class Packages:
    """The packages of one folder, loaded (or compiled) once per kind in this process."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._runners: dict[str, Runner | None] = {}
        self._lock = threading.Lock()

    def runner(self, block, given, tensors, weights) -> Runner | None:
        key = package_key(block, given, tensors, weights)
        if (got := self._runners.get(key, False)) is not False:
            return got
        with self._lock:
            if key not in self._runners:
                self._runners[key] = self._open(key, block, given, tensors, weights)
            return self._runners[key]

    def _open(self, key, block, given, tensors, weights) -> Runner | None:
        path, failed = self.folder / f"{key}.pt2", self.folder / f"{key}.failed"
        compiled = False
        signature = tuple((str(t.dtype), t.ndim) for t in tensors)
        if failed.is_file():
            log.warning(
                "%s runs eagerly: its ahead-of-time compile failed before (%s; delete it to try again)",
                type(block).__name__,
                failed,
            )
            return None
        if not path.is_file():
            try:
                compile_package(block, given, tensors, weights, path)
            except Exception as err:  # noqa: BLE001 - the block still runs eagerly; the run goes on
                return _give_up(block, failed, "compile", err)
            compiled = True
        started = time.perf_counter()
        try:
            loader = load_package(path)
        except Exception as err:  # noqa: BLE001 - an unreadable package costs a compile, never the run
            path.unlink(missing_ok=True)
            if compiled:  # made by this process and still not loadable: compiling again would not help
                return _give_up(block, failed, "load of a fresh package", err)
            log.warning("package %s not loaded (%s); it is compiled again", path, err)
            return self._open(key, block, given, tensors, weights)
        log.info("loaded %s in %.2f s", path.name, time.perf_counter() - started)
        return Runner(loader, tuple(weights), signature)


def _give_up(block, failed: Path, what: str, err: Exception) -> None:
    """Write down why a kind of block runs eagerly from now on (`<key>.failed`), and say so."""
    from tools.files import write_atomic

    write_atomic(failed, f"{what}: {type(err).__name__}: {err}\n".encode())
    log.warning("ahead-of-time %s of %s failed, it runs eagerly: %s", what, type(block).__name__, err)


@functools.cache
def share_cxx_runtime() -> bool:
    """Put the C++ runtime this process already runs (libstdc++, loaded with torch) in its global symbol scope,
    once; whether it was there to share.

    A compiler that links libstdc++ into each package statically (the H200 image's does: its packages list no
    libstdc++ among their needed libraries) makes a package run two copies at once: most of its locale and
    regex code binds to its own copy, a few symbols (the facets' ids) to the process's, so the ids index the
    other copy's facets. The package's constructor, parsing its device string with std::regex, then crashed the
    process there (a segmentation fault; std::bad_cast with GCC 12 here). Torch loads libstdc++ privately, so a
    bare process crashed, and a film, where some library had already made it global, did not. The global scope
    is searched first, so with the process's copy there every such symbol binds to that one copy
    (docs/PERFORMANCE.md, sixteenth session)."""
    import ctypes
    import os

    try:  # RTLD_NOLOAD: only promote a library already loaded, never load one
        ctypes.CDLL("libstdc++.so.6", mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)
    except (OSError, AttributeError):  # not loaded under that name, or no such flags (not glibc)
        return False
    return True


def load_package(path: Path):
    """The runner of one package, built by AOTInductor's C++ loader straight from the archive.

    `torch._inductor.aoti_load_package` does the same and then compares the package's recorded CPU vector
    ISA with this machine's, which probes each ISA by building a test library and opening it in a child
    interpreter (on torch 2.11 each child imports torch; `evals/aot_load.py load` times both ways). The key
    already pins the device and the torch version, so that comparison tells nothing here. The arguments: the
    file, the model's name in the archive ("model"), not single-threaded, one runner, the current device."""
    import torch

    share_cxx_runtime()
    return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)


def package_key(block, given, tensors, weights) -> str:
    """What the compiled code depends on, hashed: the block's structure and settings, its inputs' dtypes and
    ranks, the device, and the library versions."""
    import diffusers
    import torch

    device = tensors[0].device
    settings = []
    for name, module in block.named_modules():
        plain = {
            k: v
            for k, v in vars(module).items()
            if isinstance(v, (bool, int, float, str, type(None)))
            and not k.startswith("_")
            and k not in PER_BLOCK
        }
        processor = getattr(module, "processor", None)
        if processor is not None:
            plain["processor"] = type(processor).__name__
            plain["backend"] = str(getattr(processor, "_attention_backend", None))
        settings.append((name, type(module).__name__, sorted(plain.items())))
    described = {
        "format": FORMAT,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "inputs": [(n, str(t.dtype), t.ndim) for n, t in zip(given, tensors, strict=True)],
        "weights": [(n, tuple(w.shape), str(w.dtype)) for n, w in weights.items()],
        "modules": settings,
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return f"{type(block).__name__}-{digest}"


def compile_package(block, given, tensors, weights, path: Path) -> Path:
    """Export `block` as a function of its inputs and weights, compile it with AOTInductor and write the package
    to `path` (atomically). The batch and sequence are dynamic; the example is doubled along the batch when it
    has one image, since export fixes a dimension whose example size is 1."""
    import os
    import tempfile

    import torch
    import torch._inductor
    from torch.export import Dim

    start = time.perf_counter()
    names = tuple(weights)

    class Blockwise(torch.nn.Module):
        def forward(self, tensors, weights):
            inputs = dict.fromkeys(ARGS[type(block).__name__]) | dict(zip(given, tensors, strict=True))
            return torch.func.functional_call(block, dict(zip(names, weights, strict=True)), (), inputs)

    example = [torch.cat([t, t]) if t.shape[0] == 1 else t for t in tensors]
    batch, seq = Dim("batch", min=1, max=MAX_BATCH), Dim("seq", min=2, max=MAX_SEQUENCE)
    shapes = [{0: batch, 1: seq} if n in SEQUENCE_INPUTS else {0: batch} for n in given]
    _EXPORTING.on = True  # functional_call calls the block, whose forward is the wrapper: run its own
    try:
        with torch.no_grad():
            program = torch.export.export(
                Blockwise(),
                (example, tuple(weights.values())),
                dynamic_shapes=(shapes, (None,) * len(names)),
                strict=False,
            )
    finally:
        _EXPORTING.on = False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=".pt2")
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info(
        "compiled %s ahead of time in %.1f s: %s", type(block).__name__, time.perf_counter() - start, path
    )
    return path
