"""Catalogue benchmark on GPUs: a synthetic catalogue through the real `catalogue` path, full-size Z-Image-Turbo.

Each worker holds the full-size Z-Image-Turbo architecture with random bf16 weights built on its GPU
(evals/bench_gpu.py's builder, adopted by the worker's ModelManager as evals/bench_film_gpu.py does: speed
does not depend on weight values). The catalogue (evals/bench_catalogue.py's, products generated from their
fields) runs through `agent.catalogue.run_catalogue`: units, make_unit (render, critique, grade), records,
exports and the QC report. Modes:

- `ray`: a local Ray cluster on this machine, one RayEngine actor per GPU, for each count in --workers;
- `local`: LocalEngine on one GPU in this process (threads sharing one Backends), no Ray.

Per run it prints images/s, images/s per GPU, the GPU-busy fraction of each GPU (NVML utilisation every
50 ms, the share of samples over 50% between the first and the last image), the time to the first image
(from the run's start: the actors' weights and any compile included), and the projected time for 3,600
units (first image + 3,600 × the steady time per unit).

    python evals/bench_catalogue_gpu.py --mode ray --workers 1,2,4 --units 400 --out ray.json
    python evals/bench_catalogue_gpu.py --mode local --units 400 [--compile] [--quantize fp8] --out local.json
    python evals/bench_catalogue_gpu.py --tiny --mode local,ray --units 8      # the same code on a CPU

The default platform is xiaohongshu (3:4), rendered at 768×1024: the pixel count of 1024×768. `--cap 1`:
random weights fail the critique, and repairs would make every run a different amount of work.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]

MODEL = "Tongyi-MAI/Z-Image-Turbo"


class GpuSampler:
    """NVML utilisation of every GPU every `every` seconds: {index: [(time.time(), percent)]}."""

    def __init__(self, every: float = 0.05):
        self.every = every
        self.samples: dict[int, list[tuple[float, int]]] = {}
        self._stop = threading.Event()

    def start(self) -> GpuSampler:
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception as err:  # no NVML (a CPU run): the rows say so
            print(f"no GPU sampling: {type(err).__name__}: {err}", flush=True)
            return self
        self.samples = {i: [] for i in range(len(handles))}

        def loop():
            while not self._stop.is_set():
                now = time.time()
                for i, h in enumerate(handles):
                    self.samples[i].append((now, pynvml.nvmlDeviceGetUtilizationRates(h).gpu))
                self._stop.wait(self.every)

        threading.Thread(target=loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def busy(self, start: float, end: float) -> dict[str, float]:
        out = {}
        for i, rows in self.samples.items():
            window = [u for t, u in rows if start <= t <= end]
            if window:
                out[f"gpu{i}"] = round(sum(u > 50 for u in window) / len(window), 3)
        return out


def random_manager(
    tiny: bool,
    compile: bool,
    quantize: str,
    render_batch: int,
    compile_cache: str | None = None,
    cuda_graphs: bool = False,
):
    """A ModelManager holding the full-size (or tiny) random Z-Image-Turbo, sped up as asked."""
    from evals.bench_gpu import Bench
    from tools.models import ModelManager
    from tools.speed import speed_up

    bench = Bench(tiny=tiny, repeats=1)
    pipe = bench.build_zimage()
    manager = ModelManager(
        device=bench.device,
        compile=compile,
        quantize=quantize,
        render_batch=render_batch,
        compile_cache=compile_cache,  # its mega-cache file loaded now and saved after calls that compiled
        cuda_graphs=cuda_graphs,
    )
    manager.adopt(MODEL, pipe)
    # as ModelManager does
    speed_up(pipe, compile=compile, quantize=quantize, compile_vae=True, cuda_graphs=cuda_graphs)
    return manager


def random_backends(ctx, tiny: bool = False):
    """What a worker builds once: its own random pipeline under the run's settings (a Ray actor calls it)."""
    from agent.backends import Backends
    from agent.settings import RunSettings

    settings = RunSettings.model_validate(ctx.settings)
    manager = random_manager(
        tiny,
        settings.compile,
        settings.quantize,
        settings.render_batch,
        settings.compile_cache,
        settings.cuda_graphs,
    )
    return Backends.for_settings(settings, manager)


def model_settings(args) -> dict:
    steps = {"num_inference_steps": 2} if args.tiny else {}
    return dict(
        image_backend="diffusers",
        image_model=MODEL,
        compile=args.compile,
        quantize=args.quantize,
        compile_cache=args.compile_cache,
        cuda_graphs=args.cuda_graphs,
        **steps,
    )


def one_run(args, mode: str, workers: int, sampler: GpuSampler) -> dict:
    from agent.catalogue_engine import RENDER_SWITCH_S, LocalEngine
    from agent.catalogue_unit import UnitContext
    from evals import bench_catalogue

    # bench_catalogue.run is the catalogue run itself; its arguments are the CPU benchmark's.
    run_args = bench_catalogue.parse(
        [
            f"--units={args.units}",
            f"--workers={workers}",
            f"--platforms={args.platforms}",
            f"--cap={args.cap}",
            f"--render-side={64 if args.tiny else 1024}",
            f"--render-batch={args.render_batch}",
            "--no-photos",
        ]
        + (["--verbose"] if args.verbose else [])
    )
    # evals.bench_catalogue_gpu by name (not __main__): a Ray actor imports the builder from there.
    from evals.bench_catalogue_gpu import random_backends as build

    build = functools.partial(build, tiny=args.tiny)
    built_s = 0.0  # Ray: each actor builds its model inside the run, so its first image includes it
    if mode == "ray":
        from agent.catalogue_ray import RayEngine

        engine = RayEngine("local", workers=workers, build=build, on_event=print)  # each actor builds its own
    else:
        fields = dict(run_dir="unused", render_batch=args.render_batch, **model_settings(args))
        ctx = UnitContext.model_construct(settings=fields)
        t = time.perf_counter()
        switch = RENDER_SWITCH_S if args.switch_ms is None else args.switch_ms / 1000
        engine = LocalEngine(workers=args.threads, backends=build(ctx), switch_interval_s=switch)
        built_s = time.perf_counter() - t
    t0 = time.time()
    row = bench_catalogue.run(run_args, engine=engine, build_settings=model_settings(args))
    end = time.time()
    first = t0 + row["first_image_s"]
    row.update(
        run=f"{mode}, {workers} worker(s)" if mode == "ray" else f"local, {engine.workers} threads, one GPU",
        mode=mode,
        workers=workers,
        built_before_run_s=round(built_s, 1),
        images_per_gpu_s=round(row["images_per_s"] / workers, 3),
        steady_images_per_gpu_s=row["steady_images_per_s"] and round(row["steady_images_per_s"] / workers, 3),
        gpu_busy=sampler.busy(first, end),
        peak_units_in_flight=engine.peak_in_flight,
        config={
            k: getattr(args, k)
            for k in ("compile", "quantize", "cuda_graphs", "render_batch", "cap", "platforms")
        },
        threads=getattr(engine, "workers", None),
        switch_interval_s=getattr(engine, "switch_interval_s", None),
    )
    print(json.dumps(row), flush=True)
    return row


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="ray,local", help="ray and/or local (LocalEngine, one GPU, no Ray)")
    ap.add_argument("--workers", default="1,2,4", help="Ray worker counts; those over the GPUs are skipped")
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--platforms", default="xiaohongshu")
    ap.add_argument("--cap", type=int, default=1)
    ap.add_argument("--render-batch", type=int, default=4)
    ap.add_argument(
        "--threads", type=int, default=None, help="LocalEngine CPU-stage threads (default: the engine's, 4)"
    )
    ap.add_argument(
        "--switch-ms",
        type=float,
        default=None,
        help="the switch interval while the units run (default: the engine's, 0.5 ms; Python's own is 5 ms)",
    )
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--quantize", default="none", choices=["none", "fp8"])
    ap.add_argument("--compile-cache", default=None)
    ap.add_argument("--cuda-graphs", action="store_true", help="the denoiser from CUDA graphs")
    ap.add_argument(
        "--tiny", action="store_true", help="tiny configs on the CPU (checks the script, not speed)"
    )
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--out", default="bench_catalogue_gpu.json")
    args = ap.parse_args(argv)

    gpus = 0 if args.tiny else gpu_count()
    sampler = GpuSampler().start()
    rows: list[dict] = []
    try:
        for mode in args.mode.split(","):
            counts = [1] if mode == "local" else [int(w) for w in args.workers.split(",")]
            for workers in counts:
                if mode == "ray" and workers > max(gpus, 2 if args.tiny else 0):
                    print(f"skip ray × {workers}: {gpus} GPU(s) here", flush=True)
                    continue
                rows.append(one_run(args, mode, workers, sampler))
                Path(args.out).write_text(json.dumps(rows, indent=1))
    finally:
        sampler.stop()
    print_table(rows, gpus)
    return 0


def print_table(rows: list[dict], gpus: int) -> None:
    name = "CPU (tiny)" if not gpus else f"{gpus} GPU(s)"
    print(f"\n{name}, load {os.getloadavg()[0]:.1f}")
    print(
        "| mode | workers | units | images/s | per GPU | steady per GPU | GPU busy | first image s | 3,600 units |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        busy = ", ".join(f"{v:.0%}" for v in r["gpu_busy"].values()) or "n/a"
        mins = r["projected_3600_units_s"] / 60
        print(
            f"| {r['mode']}{' compile' * r['config']['compile']}{' fp8' * (r['config']['quantize'] == 'fp8')} "
            f"| {r['workers']} | {r['units']} | {r['images_per_s']} | {r['images_per_gpu_s']} | "
            f"{r['steady_images_per_gpu_s']} | {busy} | {r['first_image_s']} | {mins:.1f} min |"
        )
    ones = [r for r in rows if r["mode"] == "ray" and r["workers"] == 1]
    for r in rows:
        if ones and r["mode"] == "ray" and r["workers"] > 1 and ones[0]["steady_images_per_s"]:
            eff = r["steady_images_per_s"] / (r["workers"] * ones[0]["steady_images_per_s"])
            print(f"scaling efficiency at {r['workers']} workers (steady): {eff:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
