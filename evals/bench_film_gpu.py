"""GPU film benchmark: an 8-shot 1024² film through the real director, with full-size random Z-Image-Turbo.

The pipeline is the full-size architecture with random bf16 weights built on the GPU (evals/bench_gpu.py's
builder: speed does not depend on weight values), put under the run's ModelManager; then the director runs
the film as `main.py run` does (offline planner, render queue, critique, motion clips, cut, report). Prints a
timeline and writes JSON:

- cold: a fresh process, from its start to final.mp4 (imports, building the weights on the GPU, the compile
  if --compile, the film); warm: a second film in the same process, models loaded;
- time to the first image, each render call (size of its batch, seconds), GPU busy (NVML utilisation sampled
  every 50 ms: the fraction of samples over 50% and the mean) over the render phase and over the whole film;
- the single image at batch 1 and the per-image time at batch 4 through the render queue, and peak memory.

    python evals/bench_film_gpu.py --out film.json                          # one process: cold, warm, images
    python evals/bench_film_gpu.py --compile --compile-cache DIR --out c.json
    python evals/bench_film_gpu.py --tiny --out tiny.json                   # the same code on a CPU, tiny models

Building random weights on the GPU stands in for loading them: a real first process also reads ~20 GB of
safetensors from disk, which this does not time (evals/gpu_cold.py does: `main.py run` from saved weights).
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the heavy imports: a cold film counts from the process's start

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, evals/ comes first on the path and its tokenizers.py would hide the `tokenizers` package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]

MODEL = "Tongyi-MAI/Z-Image-Turbo"
from tools.model_specs import spec_for  # noqa: E402

IMAGE_STEPS = spec_for(MODEL).num_inference_steps  # the product's default (8: one DiT forward per step)
BRIEF = (
    "A 20-second launch film for wireless noise-cancelling headphones. A commuter on a loud morning train. "
    "She puts the headphones on and the city goes quiet. Close on the matte black ear cups. "
    "Evening light on a rooftop, music in her ears. The product on a stone plinth: “Silence, redesigned.”"
)


class GpuSampler:
    """NVML utilisation every `every` seconds on a thread: (perf_counter, percent) pairs."""

    def __init__(self, every: float = 0.05):
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> GpuSampler:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as err:  # no NVML (a CPU run): say so in the results, sample nothing
            print(f"no GPU sampling: {type(err).__name__}: {err}", flush=True)
            return self

        def loop():
            while not self._stop.is_set():
                util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
                self.samples.append((time.perf_counter(), util))
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def busy(self, start: float, end: float) -> dict:
        window = [u for t, u in self.samples if start <= t <= end]
        if not window:
            return {"samples": 0}
        return {
            "samples": len(window),
            "busy_fraction": round(sum(u > 50 for u in window) / len(window), 3),
            "mean_util": round(statistics.mean(window), 1),
        }


class Spans:
    """(name, start, end) perf_counter spans of the CPU steps around the renders, taken by wrapping the tools'
    functions in this process: where the time after the last image goes."""

    WRAPPED = (
        ("tools.critique", "critique_image", "critique"),
        ("tools.critique", "critique_clip", "clip check"),
        ("tools.animate", "MotionBackend.animate", "clip"),
        ("tools.animate", "DiffusersVideoBackend.animate", "video clip"),
        ("tools.sound", "film_sound", "sound"),
        ("tools.cut_segments", "encode_film", "cut encode"),
        ("tools.cut_segments", "_encode_segment", "segment"),
        ("tools.cut", "cut_film", "cut"),
        ("agent.report", "write_report", "report"),
    )

    def __init__(self):
        import functools
        import importlib

        self.spans: list[tuple[str, float, float]] = []
        lock = threading.Lock()
        for module, attr, label in self.WRAPPED:
            owner = importlib.import_module(module)
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part)
            fn = getattr(owner, name)

            def timed(*a, _fn=fn, _label=label, **kw):
                start = time.perf_counter()
                try:
                    return _fn(*a, **kw)
                finally:
                    with lock:
                        self.spans.append((_label, start, time.perf_counter()))

            setattr(owner, name, functools.wraps(fn)(timed))
        # The callers import these inside their functions, so they find the wrappers.

    def between(self, start: float, end: float, t0: float) -> list[dict]:
        return [
            {"step": n, "start_s": round(a - t0, 3), "seconds": round(b - a, 3)}
            for n, a, b in sorted(self.spans, key=lambda x: x[1])
            if b >= start and a <= end
        ]


def build_manager(args):
    """The full-size random pipeline (or a tiny one) adopted by a ModelManager, sped up as --compile asks."""
    from evals.bench_gpu import Bench
    from tools.models import ModelManager
    from tools.speed import speed_up

    bench = Bench(tiny=args.tiny, repeats=1)
    t = time.perf_counter()
    pipe = bench.build_zimage()
    bench.sync()
    built = time.perf_counter() - t
    manager = ModelManager(
        device=bench.device,
        compile=args.compile,
        quantize=args.quantize,
        compile_cache=args.compile_cache,
        render_batch=args.render_batch,
        cuda_graphs=args.cuda_graphs,
        attention=args.attention,
    )
    manager.adopt(MODEL, pipe)
    speed_up(
        pipe,
        compile=args.compile,
        quantize=args.quantize,
        mode=args.compile_mode,
        compile_vae=True,
        cuda_graphs=args.cuda_graphs,
        attention=args.attention,
    )
    if args.video == "ltx":  # full-size random LTX-Video 2B (T5-XXL text encoder) beside the image model
        from tools.model_specs import DEFAULT_VIDEO_MODEL

        t = time.perf_counter()
        manager.adopt(DEFAULT_VIDEO_MODEL, bench.build_ltx())
        bench.sync()
        built += time.perf_counter() - t
    return bench, manager, built


def film_settings(args, out: Path):
    """The settings `main.py run BRIEF --shots N --size WxH --image-backend diffusers --image-model MODEL
    --video-backend motion --clip-model none --max-takes K --render-batch B [--compile ...]` gives."""
    from agent.settings import RunSettings, resolve_size

    full = "768x512" if args.video == "ltx" else "1024x1024"  # the LTX film: 3 s clips at 768×512
    platform, width, height = resolve_size(None, "64x64" if args.tiny else full)
    video = (
        {"video_backend": "diffusers", "video_model": "Lightricks/LTX-Video"} if args.video == "ltx" else {}
    )
    return RunSettings(
        run_dir=str(out),
        shots=args.shots,
        platform=platform,
        width=width,
        height=height,
        image_backend="diffusers",
        image_model=MODEL,
        clip_model="none",
        max_takes=args.max_takes,
        render_batch=args.render_batch,
        compile=args.compile,
        quantize=args.quantize,
        cuda_graphs=args.cuda_graphs,
        attention=args.attention,
        compile_cache=args.compile_cache,
        **({"video_backend": "motion"} | video),
    )


def film(
    args, manager, out: Path, t0_perf: float, t0_epoch: float, sampler: GpuSampler, spans: Spans
) -> dict:
    """One film through the director; times relative to t0 (perf_counter and epoch of the same instant)."""
    from agent import director
    from agent.backends import Backends
    from tools.plan import read_brief

    settings = film_settings(args, out)
    settings.attach(Backends.for_settings(settings, manager))
    first_call = len(manager.queue.batches)
    began = time.perf_counter()
    brief = BRIEF.replace("20-second", "24-second") if args.video == "ltx" else BRIEF  # 8 shots of 3 s
    result = director.start(read_brief(brief, "argument"), settings)
    done = time.perf_counter()
    if result.state.cut is None:
        raise RuntimeError(f"the film made no cut; see {out}/report.html")
    calls = manager.queue.batches[first_call:]
    return timeline(out, calls, (t0_perf, t0_epoch), (began, done), sampler, spans)


def timeline(
    out: Path, calls: list, t0: tuple[float, float], ran: tuple[float, float], sampler, spans
) -> dict:
    """Where the film's time went, from its files' times and the render queue's calls."""
    from tools.render_queue import sum_costs

    (t0_perf, t0_epoch), (began, done) = t0, ran
    takes = json.loads((out / "manifest.json").read_text())["takes"]
    pngs = sorted(p.stat().st_mtime for p in out.glob("shots/*/take-*.png"))
    final = (out / "final.mp4").stat().st_mtime
    render_start, render_end = calls[0].started, calls[-1].ended
    return {
        "to_final_mp4_s": round(final - t0_epoch, 2),
        "director_s": round(done - began, 2),
        "before_director_s": round(began - t0_perf, 2),
        "first_image_s": round(pngs[0] - t0_epoch, 2),
        "last_image_s": round(pngs[-1] - t0_epoch, 2),
        "after_last_image_s": round(final - pngs[-1], 2),
        "takes": len(takes),
        "calls": [
            {
                "start_s": round(c.started - t0_perf, 3),
                "seconds": round(c.ended - c.started, 3),
                "batch": c.size,
                "s_per_image": round((c.ended - c.started) / c.size, 3),
            }
            for c in calls
        ],
        "render_phase_s": round(render_end - render_start, 2),
        "gpu_render_phase": sampler.busy(render_start, render_end),
        "gpu_whole_film": sampler.busy(t0_perf, done),
        "cost": sum_costs([t["timings"] for t in takes]),
        # What ran from the last render call's end to the director's return, in order of start.
        "after_last_render": spans.between(render_end, done, t0_perf),
    }


def first_image(bench, manager) -> float:
    """Seconds from the process's start to the first 1024² image (imports, weights, compile, one render)."""
    size = 64 if bench.tiny else 1024
    manager.queue.render(
        MODEL,
        "a first image",
        0,
        width=size,
        height=size,
        num_inference_steps=IMAGE_STEPS,
        guidance_scale=0.0,
    )
    return round(time.time() - STARTED, 2)


def images(bench, manager, repeats: int) -> dict:
    """Batch 1 and batch 4 through the render queue (the warm pipeline), median of `repeats`; peak memory."""
    import torch

    size = 64 if bench.tiny else 1024
    kw = dict(width=size, height=size, num_inference_steps=IMAGE_STEPS, guidance_scale=0.0)
    queue = manager.queue
    rows = {}
    for batch in (1, 4):
        if bench.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for r in range(repeats + 1):  # the first is a warm-up (a new batch size may compile)
            t = time.perf_counter()
            with queue._ready:  # all of the batch queued before the worker looks
                futures = [
                    queue.submit(MODEL, f"shot {i} of a film, take {r}", i, **kw) for i in range(batch)
                ]
            results = [f.result() for f in futures]
            if r:
                times.append(time.perf_counter() - t)
            else:
                first = time.perf_counter() - t
        rows[f"batch{batch}"] = {
            "s_per_image": round(statistics.median(times) / batch, 3),
            "runs_s": [round(x, 3) for x in times],
            "first_call_s": round(first, 3),
            "gpu_s_per_image": round(results[0].cost.gpu_s, 3),
            "peak_gib": round(bench.peak_gib(), 1),
        }
    return rows


def compile_counters() -> dict:
    """What the compile caches did in this process: FX graph and AOTAutograd hits and misses, graphs."""
    from torch._dynamo.utils import counters

    keep = ("fxgraph", "autograd_cache", "unique_graphs", "calls_captured")
    return {
        f"{group}.{k}": v
        for group in ("inductor", "aot_autograd", "stats")
        for k, v in counters[group].items()
        if any(w in k for w in keep)
    }


def compile_time_totals(top: int = 20) -> dict:
    """Seconds each compile phase of this process took in all (Dynamo's own account), the largest first."""
    from torch._dynamo.utils import compilation_time_metrics

    totals = {k: round(sum(v), 2) for k, v in compilation_time_metrics.items()}
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:top])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tiny", action="store_true", help="tiny configs on the CPU (checks the script, not speed)"
    )
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-cache", default=None)
    ap.add_argument(
        "--quantize", default="none", choices=["none", "fp8"], help="fp8: torchao FP8 linear layers"
    )
    ap.add_argument(
        "--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead (CUDA graphs)"
    )
    ap.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="the denoiser's forward from CUDA graphs (tools/denoiser_graph.py)",
    )
    ap.add_argument(
        "--attention",
        default="auto",
        help="the denoiser's attention (--attention's choices; fp8: tools/fp8_attention.py)",
    )
    ap.add_argument("--render-batch", type=int, default=4)
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument(
        "--max-takes", type=int, default=1, help="1: every shot rendered once (random weights fail critique)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--what", default="films,images", help="films (cold, then warm in the same process) and/or images"
    )
    ap.add_argument(
        "--video", default="motion", choices=["motion", "ltx"], help="ltx: LTX-Video 2B clips at 768x512"
    )
    ap.add_argument(
        "--sample-stacks",
        action="store_true",
        help="count where the cold film's threads are (evals/stack_sampler.py)",
    )
    ap.add_argument("--out", default="bench_film_gpu.json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from evals.stack_sampler import StackSampler

    args = parse_args(argv)
    t0_perf = time.perf_counter() - (time.time() - STARTED)
    sampler = GpuSampler().start()
    bench, manager, built = build_manager(args)
    spans = Spans()
    row: dict = {
        "gpu": bench.gpu,
        "config": {
            k: getattr(args, k)
            for k in (
                "compile",
                "quantize",
                "compile_mode",
                "cuda_graphs",
                "attention",
                "compile_cache",
                "render_batch",
                "shots",
                "max_takes",
                "video",
            )
        },
        "build_weights_s": round(built, 2),
        "built_at_s": round(time.time() - STARTED, 2),
    }
    import torch

    row["torch"] = torch.__version__
    what = args.what.split(",")
    try:
        if "images" in what and "films" not in what:
            row["first_image_s"] = first_image(bench, manager)
        with tempfile.TemporaryDirectory() as tmp:
            if "films" in what:
                stacks = StackSampler().start() if args.sample_stacks else None
                try:
                    row["cold"] = film(args, manager, Path(tmp) / "cold", t0_perf, STARTED, sampler, spans)
                finally:
                    if stacks:
                        stacks.stop()
                        row["cold_stacks"] = stacks.summary()
                        print(json.dumps({"cold_stacks": row["cold_stacks"]}, indent=1), flush=True)
                print(json.dumps({"cold": row["cold"]}), flush=True)
                t_perf, t_epoch = time.perf_counter(), time.time()
                row["warm"] = film(args, manager, Path(tmp) / "warm", t_perf, t_epoch, sampler, spans)
                print(json.dumps({"warm": row["warm"]}), flush=True)
        if "images" in what:
            row["images"] = images(bench, manager, args.repeats)
    finally:
        sampler.stop()
        row["compile_counters"] = compile_counters()
        row["compile_times"] = compile_time_totals()
        Path(args.out).write_text(json.dumps(row, indent=1))
    print_table(row)
    return 0


def print_table(row: dict) -> None:
    print(f"\n{row['gpu']}, compile={row['config']['compile']}, cache={row['config']['compile_cache']}")
    print(
        f"weights built {row['built_at_s']} s after start; first image {row.get('first_image_s')} s after start"
    )
    print(
        "| film | to final.mp4 s | first image s | render phase s | GPU busy (render) | mean util | after last image s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in ("cold", "warm"):
        f = row.get(name)
        if f:
            g = f["gpu_render_phase"]
            print(f"| {name} | {f['to_final_mp4_s']} | {f['first_image_s']} | {f['render_phase_s']} | "
                  f"{g.get('busy_fraction')} | {g.get('mean_util')} | {f['after_last_image_s']} |")  # fmt: skip
            print("  calls: " + ", ".join(f"{c['batch']}x{c['s_per_image']}s" for c in f["calls"]))
            tail = f.get("after_last_render", [])
            print(
                "  after the last render: "
                + ", ".join(f"{x['step']}@{x['start_s']}+{x['seconds']}" for x in tail)
            )
    for name, r in row.get("images", {}).items():
        print(
            f"| {name} | {r['s_per_image']} s/image | GPU {r['gpu_s_per_image']} s | peak {r['peak_gib']} GiB |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
