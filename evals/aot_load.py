"""Where the load of `--compile-aot`'s packages goes (tools/aot_blocks.py), measured step by step.

    python evals/aot_load.py make --cache /tmp/cd-aot      # compile the packages of a full-width Z-Image denoiser
    python evals/aot_load.py load --cache /tmp/cd-aot --out load.json   # in a fresh process: each step timed

`make` builds Z-Image's denoiser at its published width (evals/gpu_configs.py) with one block of each kind and
random weights, routes its blocks through `aot_blocks.install`, and runs one 1024² forward (`--tiny`: the tiny
config on the CPU), which compiles one package per kind; it writes what each package was called with to
`aot/inputs.json`. `load` then takes each package apart in a fresh process: what the archive holds (the kernel
files, and whether they are machine code or PTX), unpacking it with zipfile, opening its shared library with
ctypes, the project's `aot_blocks.load_package`, `torch._inductor.aoti_load_package` twice (the first under
cProfile), and the first and second calls. Each step's row is written to --out as it is measured, so a crash
keeps the steps before it.

Bare-process runs of this script crashed on an H200 where films did not. `--thread` (a worker thread instead of
the main thread), `--no-dlopen` (no ctypes step), `--imports a,b` and `--warm` (what a film imports and runs
first) told the suspects apart: none mattered. The cause was the package's own static libstdc++ against torch's
private one, fixed in `aot_blocks.share_cxx_runtime` (docs/PERFORMANCE.md, sixteenth session).
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import importlib
import io
import json
import pstats
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]

# The names aot_blocks writes; its temporary files start with a dot and are left out.
PACKAGES = "ZImageTransformerBlock-*.pt2"


def make(args) -> dict:
    import torch
    from diffusers import ZImageTransformer2DModel

    from evals.gpu_configs import TINY, ZIMAGE_DIT
    from tools import aot_blocks

    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    config = dict(TINY["zimage_dit"] if args.tiny else ZIMAGE_DIT, n_layers=1, n_refiner_layers=1)
    calls = []
    real = aot_blocks.compile_package

    def noted(block, given, tensors, weights, path):
        calls.append(
            {
                "package": path.name,
                "inputs": [[n, list(t.shape), str(t.dtype)] for n, t in zip(given, tensors, strict=True)],
                "weights": [[n, list(w.shape), str(w.dtype)] for n, w in weights.items()],
            }
        )
        return real(block, given, tensors, weights, path)

    aot_blocks.compile_package = noted
    with torch.device(device):
        dit = ZImageTransformer2DModel(**config).to(dtype).eval()
    aot_blocks.install(dit, args.cache)
    side = 8 if args.tiny else 128  # latent side: 1024 px / 8
    g = torch.Generator(device).manual_seed(0)
    x = [torch.randn(16, 1, side, side, generator=g, device=device, dtype=dtype)]
    cap = [
        torch.randn(40 if args.tiny else 120, config["cap_feat_dim"], generator=g, device=device, dtype=dtype)
    ]
    t = time.perf_counter()
    with torch.no_grad():
        dit(x, torch.full((1,), 0.5, device=device), cap, return_dict=False)
    row = {
        "thread": threading.current_thread().name,
        "compile_and_first_forward_s": round(time.perf_counter() - t, 2),
        "packages": calls,
    }
    (Path(args.cache) / "aot" / "inputs.json").write_text(json.dumps(calls, indent=1))
    return row


class Steps:
    """Timed steps, each row appended to the output file at once."""

    def __init__(self, out: str | None):
        self.out, self.rows = out, []

    def __call__(self, step: str, fn, **extra):
        t = time.perf_counter()
        got = fn()
        self.note(step, s=round(time.perf_counter() - t, 4), **extra)
        return got

    def note(self, step: str, **row):
        self.rows.append({"step": step} | row)
        print(json.dumps(self.rows[-1]), flush=True)
        if self.out:
            Path(self.out).write_text(json.dumps(self.rows, indent=1))


def contents(path: Path) -> dict:
    """What a package holds: its files by kind, and whether its kernel files are ELF machine code or PTX text."""
    kinds: dict[str, list] = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            ext = Path(info.filename).suffix or Path(info.filename).name
            kind = kinds.setdefault(ext, [0, 0])
            kind[0] += 1
            kind[1] += info.file_size
        kernels = [i for i in z.infolist() if i.filename.endswith((".cubin", ".fatbin", ".ptx"))]
        heads = [z.read(i)[:4] for i in kernels]
    return {
        "mib": round(path.stat().st_size / 2**20, 2),
        "files": {k: {"n": n, "mib": round(b / 2**20, 3)} for k, (n, b) in sorted(kinds.items())},
        "kernel_files": len(kernels),
        "kernel_files_elf": sum(h == b"\x7fELF" for h in heads),
    }


def load(args) -> list[dict]:
    from tools import aot_blocks

    steps = Steps(args.out)
    steps.note("where", thread=threading.current_thread().name, dlopen=args.dlopen)
    torch = steps("import torch", lambda: __import__("torch"))
    steps("import torch._inductor", lambda: __import__("torch._inductor"))
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        steps("cuda init", lambda: torch.zeros(1, device="cuda"))
    for name in filter(None, args.imports.split(",")):
        steps(f"import {name}", lambda n=name: importlib.import_module(n))
    if args.warm:
        steps("warm (matmul, attention)", lambda: _warm(torch, "cuda" if on_gpu else "cpu"))
    folder = Path(args.cache) / "aot"
    calls = json.loads((folder / "inputs.json").read_text()) if (folder / "inputs.json").is_file() else []
    for path in sorted(folder.glob(PACKAGES)):
        steps.note("contents", package=path.name, **contents(path))
        with tempfile.TemporaryDirectory() as tmp:
            steps("unzip (python)", lambda p=path, d=tmp: zipfile.ZipFile(p).extractall(d), package=path.name)
            for so in Path(tmp).rglob("*.so") if args.dlopen else ():
                steps("dlopen .so (ctypes)", lambda s=so: ctypes.CDLL(str(s)), package=path.name)
        steps("load_package (aot_blocks)", lambda p=path: aot_blocks.load_package(p), package=path.name)
        profile = cProfile.Profile()
        profile.enable()
        loaded = steps(
            "aoti_load_package", lambda p=path: torch._inductor.aoti_load_package(str(p)), package=path.name
        )
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(18)
        steps.note("aoti_load_package profile", package=path.name, top=text.getvalue()[-4000:].splitlines())
        steps(
            "aoti_load_package again",
            lambda p=path: torch._inductor.aoti_load_package(str(p)),
            package=path.name,
        )
        call = next((c for c in calls if c["package"] == path.name), None)
        if call is None:
            continue
        device = "cuda" if on_gpu else "cpu"
        tensors = [_tensor(torch, shape, dtype, device) for _, shape, dtype in call["inputs"]]
        weights = [_tensor(torch, shape, dtype, device) for _, shape, dtype in call["weights"]]

        def run(loader=loaded.loader, inputs=tensors + weights):
            loader.boxed_run(list(inputs))
            if on_gpu:
                torch.cuda.synchronize()

        steps("first call", run, package=path.name)
        steps("second call", run, package=path.name)
    return steps.rows


def _warm(torch, device):
    """What a film has run before its first package loads: a bf16 matrix product and attention."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(256, 256, device=device, dtype=dtype)
    q = torch.randn(1, 8, 128, 64, device=device, dtype=dtype)
    (a @ a).sum().item()
    torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().item()


def _tensor(torch, shape, dtype, device):
    dtype = getattr(torch, dtype.removeprefix("torch."))
    if dtype == torch.bool:
        return torch.ones(shape, dtype=dtype, device=device)
    return torch.randn(shape, dtype=dtype, device=device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["make", "load"])
    ap.add_argument("--cache", required=True, help="the --compile-cache folder (its aot/ holds the packages)")
    ap.add_argument(
        "--tiny", action="store_true", help="make: the tiny config on the CPU (checks the script)"
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--thread", action="store_true", help="run on a worker thread, not the main thread")
    ap.add_argument(
        "--no-dlopen", dest="dlopen", action="store_false", help="load: leave out the ctypes step"
    )
    ap.add_argument("--imports", default="", help="load: modules to import first, comma-separated")
    ap.add_argument("--warm", action="store_true", help="load: run a matrix product and attention first")
    args = ap.parse_args(argv)
    if args.thread:
        done = {}
        worker = threading.Thread(target=lambda: done.update(got=_main(args)), name="aot-worker")
        worker.start()
        worker.join()
        return done.get("got")
    return _main(args)


def _main(args):
    if args.what == "make":
        row = make(args)
        print(json.dumps(row, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(row, indent=1))
        return row
    return load(args)


if __name__ == "__main__":
    main()
