"""Where a single Z-Image-Turbo image's time goes, each step timed on its own (`bench_gpu.py --what steps`).

At batch 1 and 1024² (64² with --tiny), the model's default steps (8: one forward each), guidance 0, for each
variant (a freshly built pipeline, as `bench_gpu.py` builds it) this times with CUDA events (perf_counter on a
CPU):

- text encoding: the pipeline's own encoder run (what every call from text pays), and the answer of the
  project's `TextCache` (tools/text_cache.py, what ModelManager does for a repeated prompt);
- one DiT step (the median of the gaps between step-end events, nothing synchronised in between) and the
  whole denoising loop (a call from cached embeddings to latents);
- the VAE decode alone: plain, channels-last, and with its decoder compiled; the latents-to-PIL conversion;
- the whole call: from text, and from cached embeddings; again with the fastest decode, directly and through
  `ModelManager.run` with a prompt it has seen (the product's path: text cache and lock included); batch 4
  per image (with the plain VAE, as batch 1's first figure); peak memory (`torch.cuda.max_memory_allocated`) of the batch-1 and batch-4 calls;
- the denoising loop under each attention backend diffusers accepts here (`--attention`'s choices).

Everything runs inside `--budget-s`: before a step that may compile a new graph (batch 4, a new attention
backend) the time the variant's warm-up took is the estimate (VAE_COMPILE_NEED_S for the VAE's compile), and a
step that would not fit is skipped with a note in the JSON and the table. A compile already started cannot be
cut short: give the device call some slack past the budget. Rows are appended to the
`.jsonl` as they come, so a call killed at its limit keeps what it measured.
"""

from __future__ import annotations

import gc
import statistics
import time
import traceback

from tools.denoiser_graph import graphed
from tools.model_specs import spec_for

# What the first compile of the VAE decoder may take at 1024² (not yet measured on a GPU): below this much time
# left, it is skipped.
VAE_COMPILE_NEED_S = 90.0
SOURCE = "Tongyi-MAI/Z-Image-Turbo"


class Clock:
    """CUDA events on a GPU (recorded without synchronising, read afterwards), perf_counter on a CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def between(self, a, b) -> float:
        if not self.cuda:
            return b - a
        b.synchronize()
        return a.elapsed_time(b) / 1000.0

    def time(self, fn):
        """(fn's result, seconds from before to after it on the device's clock)."""
        a = self.mark()
        out = fn()
        b = self.mark()
        return out, self.between(a, b)


class StepBench:
    """One variant's table of steps; `bench` is the Bench of bench_gpu.py (builders, rows, device)."""

    def __init__(self, bench, budget_s: float, attentions: list[str]):
        self.bench = bench
        self.clock = Clock(bench.device == "cuda")
        self.deadline = time.perf_counter() + budget_s
        self.attentions = attentions
        self.size = 64 if bench.tiny else 1024
        self.steps = spec_for(SOURCE).num_inference_steps  # the product's default: 8 (tools/model_specs.py)
        self.skipped: list[dict] = []
        self.pipe = self.manager = None
        self.recompiled = 0  # graphs Dynamo compiled inside timed runs (should stay 0)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def fits(self, variant: str, what: str, need_s: float) -> bool:
        """True when about `need_s` seconds are left; else the step is noted as skipped."""
        if self.left() >= need_s:
            return True
        note = dict(
            variant=variant, what=what, skipped=f"{self.left():.0f} s left, needs about {need_s:.0f} s"
        )
        self.skipped.append(note)
        print(f"skipped: {note}", flush=True)
        return False

    # ---- one call of the pipeline ------------------------------------------------------------------------

    def call(self, pipe, batch: int = 1, embeds=None, output_type: str = "pil", marks: list | None = None):
        import torch

        from evals.bench_gpu import PROMPT

        def on_step(p, i, t, kwargs):
            marks.append(self.clock.mark())
            return kwargs

        text = {"prompt_embeds": embeds} if embeds is not None else {"prompt": [PROMPT] * batch}
        return pipe(
            **text,
            height=self.size,
            width=self.size,
            num_inference_steps=self.steps,
            guidance_scale=0.0,
            generator=torch.Generator(self.bench.device).manual_seed(0),
            output_type=output_type,
            callback_on_step_end=on_step if marks is not None else None,
        )

    def settle(self, fn) -> None:
        """Untimed runs of `fn` until one compiles nothing new (a new batch size can take two: static, then
        dynamic), at most three."""
        from tools.speed import compiled_graphs

        for _ in range(3):
            before = compiled_graphs()
            fn()
            if compiled_graphs() == before:
                return

    def repeat(self, fn) -> float:
        """Median device seconds of `fn` over the bench's repeats, once settled. A timed run that still compiled
        is counted in `self.recompiled`, so a figure with a compile inside it is flagged, not hidden."""
        from tools.speed import compiled_graphs

        self.settle(fn)
        before = compiled_graphs()
        times = [self.clock.time(fn)[1] for _ in range(self.bench.repeats)]
        self.recompiled += compiled_graphs() - before
        return statistics.median(times)

    # ---- the variant -------------------------------------------------------------------------------------

    def variant(self, variant: str) -> dict:
        import torch

        from evals.bench_gpu import PROMPT
        from tools.text_cache import TextCache

        b = self.bench
        pipe, row = self.build(variant)

        # Text encoding: the pipeline's own encoder (as a call from text runs it), then the cache's answer.
        row["text_encode_s"] = self.repeat(
            lambda: pipe.encode_prompt(prompt=[PROMPT], do_classifier_free_guidance=False)
        )
        cache = TextCache()
        cache.embeddings(SOURCE, pipe, [PROMPT], 512)
        cached = []
        for _ in range(b.repeats):
            t = time.perf_counter()
            embeds = cache.embeddings(SOURCE, pipe, [PROMPT], 512)
            cached.append(time.perf_counter() - t)
        row["text_cached_s"] = statistics.median(cached)

        # The denoising loop alone (from embeddings to latents), and one DiT step inside it.
        row.update(self.loop(pipe, embeds))
        latents = self.call(pipe, embeds=embeds, output_type="latent").images

        # The whole call at batch 1: from text (the encoder runs), and from cached embeddings.
        b.reset_peak()
        row["call_s"] = self.repeat(lambda: self.call(pipe))
        row["peak_gib_b1"] = round(b.peak_gib(), 2)
        row["call_cached_text_s"] = self.repeat(lambda: self.call(pipe, embeds=embeds))
        row.update(self.decode(pipe, latents, variant))
        row["call_cached_text_best_decode_s"] = self.repeat(lambda: self.call(pipe, embeds=embeds))
        row["call_manager_repeated_prompt_s"] = self.repeat(self.through_manager())
        self.report(row)

        if self.fits(variant, "batch 4", self.warm + 4 * (b.repeats + 1) * row["call_s"]):
            # The VAE as the product runs it (contiguous, not compiled), so batch 4 compares with batch 1's
            # call_s and with the film's batches, and a compiled decoder's new batch size is not in the figure.
            pipe.vae.decoder._compiled_call_impl = None
            pipe.vae.to(memory_format=torch.contiguous_format)
            b.reset_peak()
            row["b4_s_per_image"] = self.repeat(lambda: self.call(pipe, batch=4)) / 4
            row["peak_gib_b4"] = round(b.peak_gib(), 2)
            self.report(row)
        self.attention_rows(variant, pipe, embeds, row, latents)
        return row

    def build(self, variant: str):
        """(a fresh pipeline with the variant applied and warmed up, the variant's row so far)."""
        import torch

        from tools.models import ModelManager

        gc.collect()
        if self.bench.device == "cuda":
            torch.cuda.empty_cache()
        torch._dynamo.reset()
        self.recompiled = 0
        t0 = time.perf_counter()
        pipe = self.bench.build_zimage()
        built = time.perf_counter() - t0
        # Adopted before the variant is applied, as bench_film_gpu.py does: adopting moves the pipeline to the
        # device, which is not to be tried on FP8 weights.
        self.manager = ModelManager(device=self.bench.device)
        self.manager.adopt(SOURCE, pipe)
        self.bench._apply_variant(pipe, variant)
        t1 = time.perf_counter()
        self.call(pipe)  # warm-up: a compiled variant compiles here, then once more for a second length
        pipe(
            prompt="a cup",
            height=self.size,
            width=self.size,
            num_inference_steps=self.steps,
            guidance_scale=0.0,
        )
        self.pipe, self.warm = pipe, time.perf_counter() - t1
        row: dict = dict(variant=variant, attention="auto", size=f"{self.size}x{self.size}", steps=self.steps)
        row.update(build_s=round(built, 1), warmup_s=round(self.warm, 1))
        return pipe, row

    def through_manager(self):
        """A call as a re-shoot makes it: ModelManager.run with a prompt it has seen (its text cache answers)."""
        from evals.bench_gpu import PROMPT

        kw = dict(height=self.size, width=self.size, num_inference_steps=self.steps, guidance_scale=0.0)

        def run():
            gen = self.manager.generator(0)
            return self.manager.run(SOURCE, "t2i", prompt=PROMPT, generator=gen, **kw)

        return run

    def loop(self, pipe, embeds) -> dict:
        """Seconds of the denoising loop (embeddings in, latents out) and the median of its steps."""
        from tools.speed import compiled_graphs

        def run(marks=None):
            return self.call(pipe, embeds=embeds, output_type="latent", marks=marks)

        self.settle(run)
        before = compiled_graphs()
        per_step, loops = [], []
        for _ in range(self.bench.repeats):
            marks: list = []
            _, s = self.clock.time(lambda m=marks: run(m))
            loops.append(s)
            per_step.append(statistics.median(self.clock.between(a, b) for a, b in zip(marks, marks[1:])))
        self.recompiled += compiled_graphs() - before
        out = {"dit_step_s": statistics.median(per_step), "denoise_loop_s": statistics.median(loops)}
        if self.bench.device == "cuda":
            out.update(profile_loop(run))
        return out

    def decode(self, pipe, latents, variant: str) -> dict:
        """The VAE decode alone: plain, channels-last, compiled; leaves the pipeline with the fastest one."""
        import torch

        vae = pipe.vae
        x = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor

        def run():
            return vae.decode(x, return_dict=False)[0]

        with torch.no_grad():
            out: dict = {"vae_decode_s": self.repeat(run)}
            image = run()
            self.bench.sync()  # else the conversion below would wait for the decode and count it
            t = time.perf_counter()
            pipe.image_processor.postprocess(image, output_type="pil")
            out["to_pil_s"] = time.perf_counter() - t
            vae.to(memory_format=torch.channels_last)
            out["vae_decode_channels_last_s"] = self.repeat(run)
            kept, best = "channels-last", out["vae_decode_channels_last_s"]
            if best > out["vae_decode_s"]:
                vae.to(memory_format=torch.contiguous_format)
                kept, best = "plain", out["vae_decode_s"]
            if self.fits(variant, "compiled VAE decode", 0.0 if self.bench.tiny else VAE_COMPILE_NEED_S):
                vae.decoder.compile()  # nn.Module.compile: in place, undone by clearing _compiled_call_impl
                t = time.perf_counter()
                run()
                out["vae_compile_s"] = round(time.perf_counter() - t, 1)
                out["vae_decode_compiled_s"] = self.repeat(run)
                if out["vae_decode_compiled_s"] < best:
                    kept = f"compiled, {kept}"
                else:
                    vae.decoder._compiled_call_impl = None
        out["decode_kept"] = kept
        return out

    def attention_rows(self, variant: str, pipe, embeds, base: dict, latents) -> None:
        """The denoising loop under each backend `--attention` accepts here; one row each, or a note why not.
        Each row also has the relative difference of its latents from the variant's own (`latents`, same seed):
        what a backend changes in the image, FP8 attention's rounding above all."""
        from tools.fp8_attention import remove
        from tools.speed import set_attention

        for name in self.attentions:
            need = self.warm + (self.bench.repeats + 2) * base["denoise_loop_s"]
            if not self.fits(variant, f"attention {name}", need):
                continue
            row = dict(variant=variant, attention=name, size=base["size"], steps=self.steps)
            try:
                set_attention(pipe.transformer, name)
                t = time.perf_counter()
                self.call(pipe, embeds=embeds, output_type="latent")  # a compiled variant recompiles here
                row["switch_s"] = round(time.perf_counter() - t, 1)
                row.update(self.loop(pipe, embeds))
                mine = self.call(pipe, embeds=embeds, output_type="latent").images.float()
                row["latents_rel_diff"] = round(
                    ((mine - latents.float()).norm() / latents.float().norm()).item(), 5
                )
            except Exception as err:  # a backend this GPU or build cannot run is a finding, not a crash
                row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
            self.report(row)
        remove(pipe.transformer)
        pipe.transformer.reset_attention_backend()

    def report(self, row: dict) -> None:
        """Round and write the row (rows are re-written as the variant's later steps fill them in)."""
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        shown["left_s"] = round(self.left())
        shown["compiled_while_timed"] = self.recompiled
        graphs = graphed(self.pipe) if self.pipe is not None else None
        if graphs is not None:  # how the denoiser's calls went: eager, captured, replayed, capture failed
            shown["cuda_graph_calls"] = dict(graphs.counts)
        self.bench.row(model="Z-Image-Turbo steps", **shown)


# Kernel families of a profiled loop, by the first match in the kernel's name (lower case).
KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "attention", "cudnn", "sdpa")),
    ("fp8 gemm", ("f8", "fp8", "e4m3", "scaled_mm")),
    ("gemm", ("gemm", "cutlass", "sm90_xmma", "nvjet", "matmul")),
    ("triton (fused elementwise, norms, quantisation)", ("triton",)),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, marks in KERNEL_KINDS if any(m in low for m in marks)), "other")


def profile_loop(run) -> dict:
    """One denoising loop under torch.profiler: the GPU's kernel seconds against the loop's wall time (their
    difference is time the GPU waited for the CPU: launches, Python between the blocks, a sync), the kernel
    seconds per family, and the ten kernels that took longest in all."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        run()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy, reach = 0.0, None  # the union of the kernels' intervals (microseconds)
    for a, b in spans:
        if reach is None or a > reach:
            busy += b - a
            reach = b
        elif b > reach:
            busy += b - reach
            reach = b
    first, last = (spans[0][0], max(b for _, b in spans)) if spans else (0, 0)
    kinds: dict[str, float] = {}
    names: dict[str, float] = {}
    for e in kernels:
        d = (e.time_range.end - e.time_range.start) / 1e6
        kind = kernel_kind(e.name)
        kinds[kind] = kinds.get(kind, 0.0) + d
        names[e.name[:90]] = names.get(e.name[:90], 0.0) + d
    top = sorted(names.items(), key=lambda kv: -kv[1])[:10]
    # The host waiting for the device inside the loop: each of these drains the GPU's queue.
    waits: dict[str, int] = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA and (
            "Synchronize" in e.name or "MemcpyDtoH" in e.name or e.name == "aten::_local_scalar_dense"
        ):
            waits[e.name] = waits.get(e.name, 0) + 1
    return {
        "profiled_loop_wall_s": wall,
        "profiled_kernel_busy_s": busy / 1e6,
        "profiled_gpu_span_s": (last - first) / 1e6,
        "profiled_kernels": len(kernels),
        "profiled_kinds_s": {k: round(v, 4) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "profiled_top_kernels_s": {k: round(v, 4) for k, v in top},
        "profiled_host_waits": waits,
    }


FIELDS = (
    ("text_encode_s", "text encoding, new prompt"),
    ("text_cached_s", "text encoding, cached prompt"),
    ("dit_step_s", "one DiT step"),
    ("denoise_loop_s", "denoising loop (all steps)"),
    ("profiled_loop_wall_s", "denoising loop under the profiler"),
    ("profiled_kernel_busy_s", "  of it, GPU kernels running"),
    ("vae_decode_s", "VAE decode"),
    ("vae_decode_channels_last_s", "VAE decode, channels-last"),
    ("vae_decode_compiled_s", "VAE decode, compiled"),
    ("vae_compile_s", "VAE compile (once)"),
    ("to_pil_s", "latents to PIL"),
    ("call_s", "whole call, batch 1"),
    ("call_cached_text_s", "whole call, cached text"),
    ("call_cached_text_best_decode_s", "whole call, cached text, fastest decode"),
    ("call_manager_repeated_prompt_s", "ModelManager.run, repeated prompt, fastest decode"),
    ("b4_s_per_image", "batch 4, per image (plain VAE)"),
    ("peak_gib_b1", "peak GiB, batch 1"),
    ("peak_gib_b4", "peak GiB, batch 4"),
    ("warmup_s", "warm-up (compile)"),
    ("compiled_while_timed", "graphs compiled inside timed runs (0: clean)"),
    ("latents_rel_diff", "latents' relative difference from the variant's own attention"),
)


def table(rows: list[dict], skipped: list[dict]) -> str:
    """The steps as a markdown table: the last row of each (variant, attention), then the skipped steps."""
    last: dict[tuple, dict] = {}
    for r in rows:
        if r.get("model") == "Z-Image-Turbo steps":
            last[(r["variant"], r["attention"])] = r
    lines = ["| variant | attention | step | value |", "|---|---|---|---|"]
    for (variant, attention), r in last.items():
        if "error" in r:
            lines.append(f"| {variant} | {attention} | error | {r['error']} |")
        for key, label in FIELDS:
            if key in r:
                unit = "" if key.startswith(("peak", "compiled", "latents")) else " s"
                lines.append(f"| {variant} | {attention} | {label} | {r[key]}{unit} |")
        if "decode_kept" in r:
            lines.append(f"| {variant} | {attention} | decode kept | {r['decode_kept']} |")
        if "cuda_graph_calls" in r:
            lines.append(
                f"| {variant} | {attention} | denoiser calls by CUDA graph | {r['cuda_graph_calls']} |"
            )
    lines += [f"| {s['variant']} | | {s['what']} | skipped: {s['skipped']} |" for s in skipped]
    return "\n".join(lines)


def run_steps(
    bench, variants: list[str], attentions: list[str], budget_s: float, skipped: list[dict]
) -> None:
    """Every variant's steps within `budget_s` (rows in bench.rows); skipped steps are appended to `skipped`.
    A variant that fails (no torchao, no FP8 tensor cores, out of memory) is a row with its error; the next
    variant still runs."""
    steps = StepBench(bench, budget_s, attentions)
    steps.skipped = skipped
    for variant in variants:
        if not steps.fits(variant, "the variant", 0.0 if bench.tiny else 30.0):
            continue
        try:
            steps.variant(variant)
        except Exception as err:
            first = str(err).splitlines()[0] if str(err) else ""
            traceback.print_exc()  # the error row holds one line; the log keeps where it came from
            steps.report(
                dict(variant=variant, attention="auto", error=f"{type(err).__name__}: {first}"[:300])
            )
        steps.pipe = steps.manager = None
