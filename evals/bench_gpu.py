"""GPU benchmark: full-size Z-Image-Turbo, LTX-Video and Wan 2.2 TI2V-5B architectures with random weights.

Speed does not depend on weight values, so the real architectures (configs copied from the published
config.json files) with random bf16 weights time what the real models cost. Weights are created directly on the
GPU; tokenizers are the small local ones from evals/tokenizers.py (a byte-level tokenizer yields more tokens
per prompt than Qwen's BPE, so text encoding is, if anything, timed pessimistically).

    python -m evals.bench_gpu --zimage --out bench.json             # Z-Image variants (plain, compiled, fast)
    python -m evals.bench_gpu --video --switch --out bench.json     # LTX, Wan TI2V-5B clips; model switch
    python -m evals.bench_gpu --tiny --zimage --video --switch       # the same code on tiny configs, on a CPU
    python -m evals.bench_gpu --what steps --variants plain,fp8 --budget-s 540 --out steps.json
                                                                   # batch 1, each step timed on its own

Every image time is end to end (prompt text in, decoded image out: text encoding, 9 steps, VAE decode), median
of --repeats runs after warm-up. Prints a table last; writes JSON. `--what steps` (evals/bench_steps.py) takes a
single image apart instead: text encoding, one DiT step, the loop, the VAE decode, the whole call, batch 4,
peak memory and the attention backends, inside a deadline.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = (
    "A cinematic product photo of wireless noise-cancelling headphones on a walnut desk, soft window light, "
    "shallow depth of field, 35mm"
)

from evals.gpu_configs import (  # noqa: E402
    FLUX_VAE,
    QWEN3_4B,
    T5_XXL,
    TINY,
    UMT5_XXL,
    WAN5B_DIT,
    WAN22_VAE,
    ZIMAGE_DIT,
)


@contextmanager
def default_dtype(dtype):
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class Bench:
    def __init__(self, tiny: bool, repeats: int):
        import torch

        self.tiny = tiny
        self.repeats = repeats
        self.device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
        self.dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.rows: list[dict] = []
        self.jsonl: str | None = None  # rows are appended here as they come, so a killed run keeps them
        self.gpu = torch.cuda.get_device_name() if self.device == "cuda" else "cpu"

    def cfg(self, name: str, full: dict) -> dict:
        return TINY[name] if self.tiny else full

    def sync(self):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self):
        import torch

        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        import torch

        return torch.cuda.max_memory_allocated() / 2**30 if self.device == "cuda" else 0.0

    def timed(self, fn, repeats: int | None = None, warmup: int = 1) -> list[float]:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats or self.repeats):
            self.sync()
            t = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t)
        return times

    def row(self, **kw):
        kw.setdefault("gpu", self.gpu)
        self.rows.append(kw)
        print(json.dumps(kw), flush=True)
        if self.jsonl:
            with open(self.jsonl, "a") as f:
                f.write(json.dumps(kw) + "\n")

    # ---- builders ----------------------------------------------------------------------------------------

    def build_zimage(self):
        import torch
        from diffusers import (
            AutoencoderKL,
            FlowMatchEulerDiscreteScheduler,
            ZImagePipeline,
            ZImageTransformer2DModel,
        )
        from transformers import Qwen3Config, Qwen3Model

        from evals.tokenizers import qwen_tokenizer

        with torch.device(self.device), default_dtype(self.dtype):
            dit = ZImageTransformer2DModel(**self.cfg("zimage_dit", ZIMAGE_DIT))
            dit.x_pad_token.data.fill_(1.0)
            dit.cap_pad_token.data.fill_(1.0)
            te = Qwen3Model(Qwen3Config(**self.cfg("qwen3", QWEN3_4B)))
            vae = AutoencoderKL(**self.cfg("flux_vae", FLUX_VAE))
        pipe = ZImagePipeline(FlowMatchEulerDiscreteScheduler(shift=3.0), vae, te, qwen_tokenizer(), dit)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def build_wan5b(self):
        import torch
        from diffusers import (
            AutoencoderKLWan,
            UniPCMultistepScheduler,
            WanImageToVideoPipeline,
            WanTransformer3DModel,
        )
        from transformers import UMT5Config, UMT5EncoderModel

        from evals.tokenizers import t5_tokenizer

        with torch.device(self.device), default_dtype(self.dtype):
            dit = WanTransformer3DModel(**self.cfg("wan_dit", WAN5B_DIT))
            te = UMT5EncoderModel(UMT5Config(**self.cfg("t5", UMT5_XXL)))
            vae = AutoencoderKLWan(**self.cfg("wan_vae", WAN22_VAE))
        sched = UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
        )
        pipe = WanImageToVideoPipeline(t5_tokenizer(), te, vae, sched, transformer=dit, expand_timesteps=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def build_ltx(self):
        import torch
        from diffusers import (
            AutoencoderKLLTXVideo,
            FlowMatchEulerDiscreteScheduler,
            LTXImageToVideoPipeline,
            LTXVideoTransformer3DModel,
        )
        from transformers import T5Config, T5EncoderModel

        from evals.tokenizers import t5_tokenizer

        with torch.device(self.device), default_dtype(self.dtype):
            dit = LTXVideoTransformer3DModel(**self.cfg("ltx_dit", {}))
            te = T5EncoderModel(T5Config(**self.cfg("t5", T5_XXL)))
            vae = AutoencoderKLLTXVideo(**self.cfg("ltx_vae", {}))
        pipe = LTXImageToVideoPipeline(FlowMatchEulerDiscreteScheduler(), vae, te, t5_tokenizer(), dit)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # ---- Z-Image -----------------------------------------------------------------------------------------

    def zimage(self, variants: list[str], batches: list[int]):
        """Each variant on a freshly built pipeline (a quantized or compiled model is not undone in place)."""
        import torch

        size = 64 if self.tiny else 1024
        steps = 9
        pipe = None
        for variant in variants:
            del pipe
            gc.collect()
            if self.device == "cuda":
                torch.cuda.empty_cache()
            torch._dynamo.reset()
            pipe = self.build_zimage()
            marks: list[float] = []

            def on_step(p, i, t, kwargs, marks=marks):
                self.sync()
                marks.append(time.perf_counter())
                return kwargs

            def gen(batch=1, pipe=pipe, marks=marks, breakdown=False):
                marks.clear()
                return pipe(
                    prompt=[PROMPT] * batch,
                    height=size,
                    width=size,
                    num_inference_steps=steps,
                    guidance_scale=0.0,
                    generator=torch.Generator(self.device).manual_seed(0),
                    output_type="pil",
                    callback_on_step_end=on_step if breakdown else None,
                )

            t0 = time.perf_counter()
            self._apply_variant(pipe, variant)
            self.reset_peak()
            gen()  # warm-up: compilation happens here
            gen()
            warm = time.perf_counter() - t0
            from torch._dynamo.utils import counters

            graphs = dict(counters["stats"])
            for batch in batches:
                self._measure_batch(gen, marks, dict(variant=variant, size=size, steps=steps, batch=batch),
                                    warm, graphs)  # fmt: skip
        return pipe

    def _apply_variant(self, pipe, variant: str) -> None:
        """What the variant does to a freshly built pipeline (the `run` flags it stands for)."""
        import torch

        from tools.speed import speed_up

        if variant == "compile":  # what --compile does
            speed_up(pipe, compile=True)
        elif variant == "graph":  # --cuda-graphs alone: the plain bf16 denoiser replayed from CUDA graphs
            speed_up(pipe, cuda_graphs=self.device == "cuda")
        elif variant in (
            "fp8",
            "fp8-all",
        ):  # what --quantize fp8 --compile does (+ compiled VAE and encoder)
            speed_up(pipe, compile=True, quantize="none" if self.tiny else "fp8")
            if variant == "fp8-all":
                pipe.vae.decoder.compile()
                pipe.text_encoder.compile()
        elif variant == "fp8-tensor":
            # FP8 with one scale per tensor (cuBLAS's plain FP8 GEMM) instead of one per row
            speed_up(pipe, compile=True, quantize="none" if self.tiny else "fp8", fp8_scales="tensor")
        elif variant == "fp8-cg":  # FP8 blocks compiled with CUDA graphs (torch.compile mode reduce-overhead)
            speed_up(pipe, compile=True, quantize="none" if self.tiny else "fp8", mode="reduce-overhead")
        elif (
            variant == "fp8-graph"
        ):  # --compile --quantize fp8 --cuda-graphs: the whole forward from CUDA graphs
            speed_up(
                pipe, compile=True, quantize="none" if self.tiny else "fp8", cuda_graphs=self.device == "cuda"
            )
        elif variant == "fp8-graph-attn":
            # fp8-graph and --attention fp8: cuDNN's FP8 attention (tools/fp8_attention.py)
            speed_up(
                pipe,
                compile=True,
                quantize="none" if self.tiny else "fp8",
                attention="auto" if self.tiny else "fp8",
                cuda_graphs=self.device == "cuda",
            )
        elif variant == "fp8-cl":  # FP8 blocks + a channels-last VAE (cuDNN's NHWC convolutions, no compile)
            speed_up(pipe, compile=True, quantize="none" if self.tiny else "fp8")
            pipe.vae.to(memory_format=torch.channels_last)
        elif variant == "fp8-vae":  # FP8 blocks + the VAE decoder compiled on its own
            speed_up(pipe, compile=True, quantize="none" if self.tiny else "fp8")
            pipe.vae.decoder.compile()
        elif variant == "fast":
            # On top of compiled blocks: cuDNN attention (faster than FA2 SDPA on Hopper), Inductor's
            # coordinate-descent tuning and 1x1-convs-as-matmul, a channels-last VAE. (max-autotune was tried:
            # its autotuning of the VAE's 1024x1024 convolutions alone outran a 10-minute device call.)
            import torch._inductor.config as ic

            ic.conv_1x1_as_mm = True
            ic.coordinate_descent_tuning = True
            ic.epilogue_fusion = False
            ic.coordinate_descent_check_all_directions = True
            if self.device == "cuda":
                pipe.transformer.set_attention_backend("_native_cudnn")
            speed_up(pipe, compile=True)
            pipe.vae.to(memory_format=torch.channels_last)

    def _measure_batch(self, gen, marks: list[float], case: dict, warm: float, graphs: dict) -> None:
        """Median seconds of `case["batch"]` images, then one synchronised run for where the time goes."""
        variant, size, steps, batch = case["variant"], case["size"], case["steps"], case["batch"]
        self.reset_peak()
        times = self.timed(lambda: gen(batch), warmup=1 if batch > 1 else 0)
        med = statistics.median(times)
        # One more run with a synchronising callback after every step, for where the time goes (the
        # syncs stop the CPU from queueing ahead, so these parts add up to a little more than `med`).
        self.sync()
        start = time.perf_counter()
        gen(batch, breakdown=True)
        self.sync()
        end = time.perf_counter()
        step = statistics.median(b2 - a for a, b2 in itertools.pairwise(marks))
        encode, decode = (
            marks[0] - start - step,
            end - marks[-1],
        )  # text encoding + latents; VAE decode
        self.row(
            model="Z-Image-Turbo",
            variant=variant,
            size=f"{size}x{size}",
            steps=steps,
            batch=batch,
            s_per_image=round(med / batch, 3),
            images_per_s=round(batch / med, 3),
            peak_gib=round(self.peak_gib(), 1),
            warmup_s=round(warm, 1),
            encode_s=round(encode, 3),
            s_per_step=round(step, 4),
            decode_s=round(decode, 3),
            runs=[round(t, 3) for t in times],
            dynamo=graphs,
        )

    # ---- video -------------------------------------------------------------------------------------------

    def clip(self, name: str, pipe, width: int, height: int, frames: int, steps: int, full_steps: int, **kw):
        """Time one clip at `steps`, then report the full-step clip time from measured parts (labelled)."""
        import torch
        from PIL import Image

        image = Image.new("RGB", (width, height), (120, 90, 60))
        step_times: list[float] = []
        marks: list[float] = []

        def on_step(p, i, t, kwargs):
            self.sync()
            marks.append(time.perf_counter())
            return kwargs

        def run(n):
            marks.clear()
            self.sync()
            start = time.perf_counter()
            pipe(
                image=image,
                prompt=PROMPT,
                height=height,
                width=width,
                num_frames=frames,
                num_inference_steps=n,
                generator=torch.Generator(self.device).manual_seed(0),
                output_type="np",
                callback_on_step_end=on_step,
                **kw,
            )
            self.sync()
            return start, time.perf_counter()

        self.reset_peak()
        start, end = run(steps)
        total = end - start
        step_times = [b - a for a, b in itertools.pairwise(marks)]
        per_step = statistics.median(step_times) if step_times else 0.0
        before = marks[0] - start - per_step  # text encoding, image encoding, latents
        after = end - marks[-1]  # VAE decode
        self.row(
            model=name,
            variant="plain",
            size=f"{width}x{height}",
            frames=frames,
            steps=steps,
            measured_s=round(total, 2),
            s_per_step=round(per_step, 3),
            encode_s=round(before, 2),
            decode_s=round(after, 2),
            clip_s_at_full_steps=round(before + full_steps * per_step + after, 1),
            full_steps=full_steps,
            peak_gib=round(self.peak_gib(), 1),
        )

    def video(self, steps: int):
        from tools.models import frame_count, round_size

        w, h = (64, 64) if self.tiny else (1280, 720)
        _, frames_ltx = frame_count(5.0, 24, 8)
        _, frames_wan = frame_count(5.0, 24, 4)
        if self.tiny:
            frames_ltx = frames_wan = 9
        ltx = self.build_ltx()
        lw, lh = round_size(w, h, 32)
        self.clip("LTX-Video 2B", ltx, lw, lh, frames_ltx, steps, 50, frame_rate=24, guidance_scale=3.0)
        wan = self.build_wan5b()
        ww, wh = round_size(w, h, 32)
        self.clip("Wan2.2-TI2V-5B", wan, ww, wh, frames_wan, steps, 50, guidance_scale=5.0)
        return ltx, wan

    # ---- model switch inside one ModelManager ------------------------------------------------------------

    def switch(self, image_pipe, video_pipe, budget_gib: float | None):
        import torch

        from tools.models import ModelManager, module_bytes

        mm = ModelManager(gpu_memory=budget_gib, device=self.device)
        mm.adopt("Tongyi-MAI/Z-Image-Turbo", image_pipe)
        mm.adopt("Wan-AI/Wan2.2-TI2V-5B-Diffusers", video_pipe)
        times = []
        for source, task in [
            ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "i2v"),
            ("Tongyi-MAI/Z-Image-Turbo", "t2i"),
        ] * 2:
            self.sync()
            t = time.perf_counter()
            mm.get(source, task)
            self.sync()
            times.append(time.perf_counter() - t)
        self.row(
            model="switch image<->video",
            variant=f"budget {budget_gib or 'auto'} GiB",
            image_gib=round(module_bytes(image_pipe) / 2**30, 1),
            video_gib=round(module_bytes(video_pipe) / 2**30, 1),
            switch_s=[round(x, 3) for x in times],
            loads=sum(mm.load_counts.values()),
            events=mm.events[-6:],
        )
        torch.cuda.empty_cache() if self.device == "cuda" else None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tiny", action="store_true", help="tiny configs on the CPU (checks the script, not speed)"
    )
    ap.add_argument("--zimage", action="store_true")
    ap.add_argument(
        "--what",
        choices=("pipeline", "steps"),
        default="pipeline",
        help="pipeline: the --zimage/--video/--switch runs; steps: one image's steps timed on their own",
    )
    ap.add_argument(
        "--variants",
        default=None,
        help="plain, graph, compile, fp8, fp8-all, fp8-cl, fp8-vae, fp8-tensor, fp8-cg, fp8-graph, fp8-graph-attn, fast (default plain,compile,fp8,fp8-all; "
        "with --what steps plain,fp8)",
    )
    ap.add_argument(
        "--attentions",
        default="native,_native_cudnn,_native_flash,_native_efficient",
        help="--what steps: the attention backends to time the denoising loop under",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=540.0,
        help="--what steps: seconds for the whole mode; steps that would not fit are skipped with a note",
    )
    ap.add_argument("--compile-cache", default=None, help="folder for Inductor's caches (tools/speed.py)")
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--video", action="store_true")
    ap.add_argument(
        "--video-steps",
        type=int,
        default=4,
        help="steps actually run per clip (time per step is "
        "measured and the 50-step clip time computed from it)",
    )
    ap.add_argument("--switch", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench_gpu.json")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    bench = Bench(args.tiny, args.repeats)
    bench.jsonl = args.out + "l"
    if args.compile_cache:
        from tools.speed import use_compile_cache

        use_compile_cache(args.compile_cache)
    if args.what == "steps":
        return steps_main(bench, args)
    zpipe = None
    variants = (args.variants or "plain,compile,fp8,fp8-all").split(",")
    try:
        if args.zimage:
            zpipe = bench.zimage(variants, [int(b) for b in args.batches.split(",")])
        if args.video or args.switch:
            ltx, wan = bench.video(args.video_steps) if args.video else (None, bench.build_wan5b())
            if args.switch:
                del ltx
                zpipe = zpipe or bench.build_zimage()
                bench.switch(zpipe, wan, None)
                bench.switch(zpipe, wan, 40.0 if not args.tiny else 1e-6)
    finally:
        Path(args.out).write_text(json.dumps({"gpu": bench.gpu, "rows": bench.rows}, indent=1))
        print("\n| model | variant | config | result |\n|---|---|---|---|")
        for r in bench.rows:
            cfg = ", ".join(f"{k}={r[k]}" for k in ("size", "steps", "batch", "frames") if k in r)
            res = ", ".join(
                f"{k}={r[k]}"
                for k in (
                    "s_per_image",
                    "images_per_s",
                    "encode_s",
                    "decode_s",
                    "clip_s_at_full_steps",
                    "s_per_step",
                    "switch_s",
                    "loads",
                    "peak_gib",
                )
                if k in r
            )
            print(f"| {r['model']} | {r['variant']} | {cfg} | {res} |")
    return 0


def steps_main(bench: Bench, args) -> int:
    """`--what steps`: the single image's steps, a table of them, the JSON (rows and skipped steps)."""
    from evals.bench_steps import run_steps, table

    skipped: list[dict] = []
    try:
        run_steps(
            bench,
            (args.variants or "plain,fp8").split(","),
            [a for a in args.attentions.split(",") if a],  # "" times none
            args.budget_s,
            skipped,
        )
    finally:
        Path(args.out).write_text(
            json.dumps({"gpu": bench.gpu, "rows": bench.rows, "skipped": skipped}, indent=1)
        )
        print(f"\n{bench.gpu}\n" + table(bench.rows, skipped))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
