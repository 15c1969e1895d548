"""Cold start from weights on disk, as a user meets it: save full-size random weights once, then time fresh
processes that load them through the product's own loading path (tools/model_load.py, tools/models.py).

    python evals/gpu_cold.py save --folder W/Z-Image-Turbo            # random bf16 weights as safetensors
    python evals/gpu_cold.py load --folder W/Z-Image-Turbo --out l.json [--sequential] [--library]
    python evals/gpu_cold.py stage --folder W/Z-Image-Turbo --out s.json
    python evals/gpu_cold.py run --folder W/Z-Image-Turbo --out r.json [--compile | --compile-aot] [--compile-cache DIR]
    python evals/gpu_cold.py worker --folder W/Z-Image-Turbo --films 2 --out w.json [--compile ...]
    python evals/gpu_cold.py --tiny ...                                # the same on a CPU with tiny configs

- `save`: the full-size Z-Image-Turbo architecture with random weights (evals/bench_gpu.py's builder), written
  with `save_pretrained` in 5 GB safetensors shards, the layout of a hub snapshot. Speed does not depend on the
  weight values, and the folder is read exactly as a downloaded model is.
- `load`: a fresh process; seconds of imports, then of `ModelManager.get` (straight to the GPU, components on
  threads; `--sequential` one after another; `--library` the plain `DiffusionPipeline.from_pretrained` and
  `.to("cuda")` this replaced), per component, and the first image after it.
- `stage`: a fresh process that starts copying the weights onto the GPU right after `import torch`
  (tools/weight_stage.py), imports diffusers meanwhile, then builds the pipeline around the staged tensors;
  when it is ready, against `load`'s imports-then-load. Then the library's own load beside it, and every
  tensor of the two compared (equal or not).
- `run`: `main.py run` of the 8-shot 1024² film in a child process, as a user types it; from the child's start
  to its first take and to final.mp4 (file times), with the GPU's NVML utilisation sampled every 50 ms.
- `worker`: issue 13's warm server. One `agent.worker.Worker` (the service's worker class, warm backends, the
  GPU lock) runs `--films` films from its SQLite queue one after another in this process: the first pays the
  load, the later ones none. Wall time and GPU busy per film.
"""

from __future__ import annotations

import time

STARTED = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "evals"]

from evals.bench_film_gpu import BRIEF, IMAGE_STEPS, GpuSampler  # noqa: E402

FILM_FLAGS = ["--shots", "8", "--image-backend", "diffusers", "--video-backend", "motion"]
FILM_FLAGS += ["--clip-model", "none", "--max-takes", "1", "--no-voice"]


def save(args) -> dict:
    from evals.bench_gpu import Bench

    bench = Bench(tiny=args.tiny, repeats=1)
    t = time.perf_counter()
    pipe = bench.build_zimage()
    bench.sync()
    built = time.perf_counter() - t
    t = time.perf_counter()
    pipe.save_pretrained(args.folder, safe_serialization=True, max_shard_size="5GB")
    os.sync()
    files = [f for f in Path(args.folder).rglob("*") if f.is_file()]
    return {
        "gpu": bench.gpu,
        "build_s": round(built, 2),
        "save_s": round(time.perf_counter() - t, 2),
        "files": len(files),
        "gib": round(sum(f.stat().st_size for f in files) / 2**30, 2),
    }


def load(args) -> dict:
    import diffusers  # noqa: F401  (imports are timed apart from the load)
    import torch
    import transformers  # noqa: F401

    from tools.models import ModelManager

    row: dict = {"imports_s": round(time.time() - STARTED, 2)}
    manager = ModelManager(compile=args.compile, compile_cache=args.compile_cache)
    t = time.perf_counter()
    if args.library:  # the path this replaced: host memory first, then one copy of everything to the device
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(args.folder, dtype=manager.dtype)
        pipe.to(manager.device)
    elif args.sequential:
        from tools.model_load import load_pipeline

        pipe, report = load_pipeline(Path(args.folder), manager.dtype, manager.device, parallel=False)
        row["components_s"] = report.components
    else:
        pipe = manager.get(args.folder)
        row["components_s"] = manager.load_reports[-1].components
        row["events"] = manager.events
    if manager.device == "cuda":
        torch.cuda.synchronize()
    row["load_s"] = round(time.perf_counter() - t, 2)
    row["loaded_at_s"] = round(time.time() - STARTED, 2)
    row["device"] = str(pipe.device)
    if not args.library and not args.sequential:
        size = 64 if args.tiny else 1024
        t = time.perf_counter()
        manager.queue.render(
            args.folder,
            "a first image",
            0,
            width=size,
            height=size,
            num_inference_steps=IMAGE_STEPS,
            guidance_scale=0,
        )
        row["first_render_s"] = round(time.perf_counter() - t, 2)
        row["first_image_at_s"] = round(time.time() - STARTED, 2)
    return row


def stage(args) -> dict:
    import torch

    from tools import model_load
    from tools.weight_stage import Stage

    row: dict = {"torch_at_s": round(time.time() - STARTED, 2)}
    device = "cpu" if args.tiny else "cuda"
    began = time.perf_counter()
    staged = Stage(Path(args.folder), device).start()  # what ModelManager.preload starts
    import diffusers  # noqa: F401  (the imports the copies overlap)
    import transformers  # noqa: F401
    from diffusers import DiffusionPipeline  # noqa: F401

    module_classes = model_load.module_components(Path(args.folder))
    row["imports_done_at_s"] = round(time.time() - STARTED, 2)
    row["imports_during_stage_s"] = round(time.perf_counter() - began, 2)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    t = time.perf_counter()
    pipe, report = model_load.load_pipeline(Path(args.folder), dtype, device, stage=staged)
    if device == "cuda":
        torch.cuda.synchronize()
    row.update(load_after_imports_s=round(time.perf_counter() - t, 2), components_s=report.components)
    row.update(loaded_at_s=round(time.time() - STARTED, 2), staged=report.staged)
    reference, _ = model_load.load_pipeline(Path(args.folder), dtype, device)  # the library, per component
    differ, count = [], 0
    for name in module_classes:
        mine, theirs = getattr(pipe, name).state_dict(), getattr(reference, name).state_dict()
        count += len(theirs)
        if mine.keys() != theirs.keys():
            differ.append(f"{name}: keys")
        differ += [f"{name}.{k}" for k in theirs if k in mine and not _same(mine[k], theirs[k])]
    row.update(tensors_compared=count, tensors_differ=differ[:20])
    if device == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def _same(a, b) -> bool:
    import torch

    return a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)


def run(args) -> dict:
    """`main.py run` in a child process; times from the child's start, read from the run folder's files."""
    out = Path(tempfile.mkdtemp(prefix="cold-run-")) / "film"
    trace = out.parent / "trace.json"
    cmd = film_command(args, out, trace)
    sampler = GpuSampler().start()
    began, began_perf = time.time(), time.perf_counter()
    quiet = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # keep the log to what matters
    extra = dict(item.split("=", 1) for item in args.env)
    child = run_child(cmd, {**os.environ, **quiet, **extra})
    ended_perf = time.perf_counter()
    sampler.stop()
    if child.returncode != 0 or not (out / "final.mp4").exists():
        raise RuntimeError(
            f"main.py run failed ({child.returncode}): {child.stderr[-2000:]}\n{error_log(out)}"
        )
    pngs = sorted(p.stat().st_mtime for p in out.glob("shots/*/take-*.png"))
    final = (out / "final.mp4").stat().st_mtime
    takes = json.loads((out / "manifest.json").read_text())["takes"]
    from tools.render_queue import sum_costs

    # The render phase, from the takes' own timings: first render call's start to the last PNG.
    first_png, last_png = pngs[0] - began, pngs[-1] - began
    render_start = first_png - max(t["timings"].get("run_s", 0) * t["timings"].get("batch", 1) for t in takes)
    return {
        "command": " ".join(cmd[1:]),
        "to_final_mp4_s": round(final - began, 2),
        "process_s": round(ended_perf - began_perf, 2),
        "first_image_s": round(first_png, 2),
        "last_image_s": round(last_png, 2),
        "after_last_image_s": round(final - pngs[-1], 2),
        "gpu_render_phase": sampler.busy(began_perf + render_start, began_perf + last_png),
        "gpu_whole": sampler.busy(began_perf, ended_perf),
        "cost": sum_costs([t["timings"] for t in takes]),
        "env": extra,
        "stdout_tail": child.stdout[-1500:],
        **({"trace": startup_spans(trace, began)} if args.trace else {}),
    }


def startup_spans(path: Path, began: float) -> dict:
    """The child's startup trace, its times moved to this process's clock (the child's start = `began`):
    the spans of the first 40 s and each thread's seconds per label."""
    if not path.exists():
        return {"missing": str(path)}
    trace = json.loads(path.read_text())
    shift = trace["started"] - began
    spans = [
        {**s, "start": round(s["start"] + shift, 2), "end": round(s["end"] + shift, 2)}
        for s in trace["spans"]
        if s["start"] + shift < 40
    ]
    return {"child_started_s": round(shift, 3), "spans": spans, "seconds": trace["seconds"]}


def film_command(args, out: Path, trace: Path) -> list[str]:
    """The child's command line: `main.py run` of the 8-shot film into `out`, as a user types it. With --trace
    it runs under evals/startup_trace.py (every thread's stack every 50 ms, as spans, into `trace`);
    --no-preload and --no-stage imply it (the tracer sets their constants before main.py runs)."""
    args.trace = args.trace or args.no_preload or args.no_stage
    wrap = [str(ROOT / "evals" / "startup_trace.py"), "--out", str(trace)] if args.trace else []
    if args.no_preload:
        wrap += ["--set", "agent.director.PRELOAD=0"]
    if args.no_stage:
        wrap += ["--set", "tools.weight_stage.STAGE=0"]
    cmd = [sys.executable, *([*wrap, "--"] if wrap else []), str(ROOT / "main.py"), "run", BRIEF]
    cmd += ["--out", str(out), "--image-model", args.folder]
    cmd += FILM_FLAGS + ["--size", "64x64" if args.tiny else "1024x1024"]
    if args.compile:
        cmd += ["--compile"]
    if args.compile_aot:
        cmd += ["--compile-aot"]
    if args.compile_cache:
        cmd += ["--compile-cache", args.compile_cache]
    if args.quantize != "none":
        cmd += ["--quantize", args.quantize]
    if args.cuda_graphs:
        cmd += ["--cuda-graphs"]
    return cmd


def run_child(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    """`subprocess.run` that ends the child when this process is stopped (the device script's `timeout` sends
    SIGTERM to this process only: in the sixth session a killed step's `main.py run` went on compiling on the
    GPU beside the next step)."""
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def stop(signum, frame):
        proc.kill()
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        out, err = proc.communicate()
    finally:
        signal.signal(signal.SIGTERM, old)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def error_log(root: Path) -> str:
    """The traceback a failed run keeps in its folder (the one-line error names only the shots)."""
    path = root / "error.log"
    return path.read_text()[-4000:] if path.exists() else ""


def worker(args) -> dict:
    """Films through one warm `Worker`, one after another, as the service's worker process runs them."""
    from agent.jobs import JobStore
    from agent.worker import Worker

    state = Path(tempfile.mkdtemp(prefix="cold-worker-"))
    base = {"image_backend": "diffusers", "image_model": args.folder, "video_backend": "motion"}
    base |= {"clip_model": "none", "compile": args.compile, "compile_cache": args.compile_cache}
    options = {"shots": 8, "size": "64x64" if args.tiny else "1024x1024", "max_takes": 1, "voice": False}
    work = Worker(state, base)
    store = JobStore(state / "jobs.sqlite")
    sampler = GpuSampler().start()
    films = []
    for n in range(args.films):
        film_id = f"film{n}"
        root = state / "runs" / film_id
        store.create_film(film_id, "bench", str(root), BRIEF, options)
        job = store.claim("bench")
        t_epoch, t = time.time(), time.perf_counter()
        work.run_job(job)
        done = time.perf_counter()
        film = store.film(film_id)
        pngs = sorted(p.stat().st_mtime for p in root.glob("shots/*/take-*.png"))
        films.append(
            {
                "status": film.status,
                "error": film.error,
                "wall_s": round(done - t, 2),
                "first_image_s": round(pngs[0] - t_epoch, 2) if pngs else None,
                "model_loads_so_far": work.loads,
                "error_log": error_log(root) if film.status != "done" else "",
                "gpu_busy": sampler.busy(t, done),
            }
        )
        print(json.dumps(films[-1]), flush=True)
    sampler.stop()
    return {"films": films}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["save", "load", "stage", "run", "worker"])
    ap.add_argument("--folder", required=True, help="the saved pipeline folder")
    ap.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (checks the script)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-aot", action="store_true", help="run: the film with --compile-aot")
    ap.add_argument("--compile-cache", default=None)
    ap.add_argument("--quantize", default="none", choices=["none", "fp8"])
    ap.add_argument("--cuda-graphs", action="store_true", help="run: the film with --cuda-graphs")
    ap.add_argument("--sequential", action="store_true", help="load: components one after another")
    ap.add_argument("--library", action="store_true", help="load: from_pretrained to host, then .to(device)")
    ap.add_argument("--films", type=int, default=2)
    ap.add_argument("--trace", action="store_true", help="run: the child under evals/startup_trace.py")
    ap.add_argument("--no-preload", action="store_true", help="run: agent.director.PRELOAD off (traced)")
    ap.add_argument("--no-stage", action="store_true", help="run: tools.weight_stage.STAGE off (traced)")
    ap.add_argument("--env", action="append", default=[], help="run: KEY=VALUE in the child's environment")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    row = {
        "what": args.what,
        **{"save": save, "load": load, "stage": stage, "run": run, "worker": worker}[args.what](args),
    }
    row["config"] = {
        k: getattr(args, k)
        for k in (
            "compile",
            "compile_aot",
            "compile_cache",
            "quantize",
            "cuda_graphs",
            "sequential",
            "library",
            "trace",
            "no_preload",
            "no_stage",
            "env",
        )
    }
    text = json.dumps(row, indent=1)
    print(text, flush=True)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
