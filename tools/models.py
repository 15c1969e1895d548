"""Models on the GPU: the one `ModelManager` that owns every loaded pipeline.

The table of model families (`MODEL_SPECS`, `spec_for`, `call_kwargs`) is tools/model_specs.py.

`ModelManager` (one per run or per server, never a process global: agent/backends.py owns it):
- loads weights on this machine (a folder, or a hub id in the cache) straight to the device with the components
  in parallel (tools/model_load.py), the class coming from `model_index.json`; bf16 on CUDA, float32 on CPU;
- derives the other task pipelines of a family with `from_pipe` (no second load, same component objects);
- keeps models resident while their parameter bytes fit the budget (`--gpu-memory`), moves the least recently
  used to host memory when they do not, and never loads one model twice;
- runs one pipeline at a time on the device (a lock: parallel shot branches never share the GPU mid-call; a
  server's cross-process GPU lock goes in as `device_lock`, held around each pipeline call);
  text-to-image requests go through its `RenderQueue` (tools/render_queue.py), which batches the ones that
  share a model, size and steps into one pipeline call;
- keeps the prompt embeddings of recent texts (tools/text_cache.py), so a re-shoot, a second seed or a second
  platform of the same prompt skips the text encoder; applies `--attention` to the image model's denoiser;
- records what every call cost (`RenderCost`: the wait for the device, GPU seconds from CUDA events, the wall
  time of the call), so a take's provenance says what it cost apart from the time it spent queued;
- points Inductor's caches at a folder that outlives the process (`compile_cache`), so `--compile` is paid once
  per machine rather than once per process;
- on out-of-memory frees the cache, falls back to model CPU offload, retries once and says so in the log.

torch and diffusers are imported inside functions: importing this module loads neither.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.aot_blocks import default_folder as aot_default_folder
from tools.denoiser_graph import clear as clear_graphs
from tools.model_load import load_pipeline, local_folder, stage_folder, weight_bytes  # sets diffusers env
from tools.model_specs import (  # noqa: F401  (the table's names are used through this module too)
    DEFAULT_IMAGE_MODEL,
    DEFAULT_VIDEO_MODEL,
    GENERIC_IMAGE,
    MODEL_SPECS,
    ModelSpec,
    Task,
    _model_index,
    call_kwargs,
    spec_for,
)
from tools.pipeline_output import as_pil, image_pipeline
from tools.speed import (
    check_speed_settings,
    compiled_graphs,
    save_compile_artifacts,
    speed_up,
    use_compile_cache,
)
from tools.text_cache import TextCache

log = logging.getLogger(__name__)

GIB = 1024**3


def round_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """The smallest size at least (width, height) with both sides multiples of `multiple`.

    Rounding up (then centre-cropping the output back, see `fit_to`) never distorts and never loses more than
    `multiple - 1` pixels per side, so the take has exactly the size the critic asked for.
    """
    return max(multiple, math.ceil(width / multiple) * multiple), max(
        multiple, math.ceil(height / multiple) * multiple
    )


def frame_count(duration: float, fps: int, frame_step: int | None) -> tuple[int, int]:
    """(frames the clip needs, frames to generate): the second meets the model's `frame_step * k + 1` rule."""
    needed = max(1, round(duration * fps))
    if not frame_step:
        return needed, needed
    return needed, frame_step * math.ceil(max(needed - 1, 1) / frame_step) + 1


def fit_to(image, width: int, height: int):
    """Scale (keeping aspect) to cover width x height, then centre-crop to exactly that size (PIL in, PIL out)."""
    from PIL import Image, ImageOps

    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)


def parse_lora(item: str) -> tuple[str, float]:
    """`PATH[:weight]` -> (path, weight). The weight is whatever follows the last colon, if it is a number."""
    path, _, tail = item.rpartition(":")
    if path:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return item, 1.0


def module_bytes(pipe) -> int:
    """Bytes of the parameters and buffers of a pipeline's modules, each tensor counted once."""
    import torch

    seen: set[int] = set()
    total = 0
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for t in [*component.parameters(), *component.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total


class OutOfMemory(RuntimeError):
    """Out of device memory even after freeing and falling back to offload."""


@dataclass
class _Entry:
    source: str
    spec: ModelSpec
    pipes: dict[str, Any]  # task -> pipeline; all share the components of the first one loaded
    nbytes: int
    on_device: bool = True
    offload: bool = False  # enable_model_cpu_offload is on (it alone did not fit)
    loras: list[str] = field(default_factory=list)
    placed: bool = False  # has been on the device before (a later move there is an onload, not a load)


class ManagerConfig(BaseModel):
    """What a ModelManager is built with (the names are the run settings')."""

    gpu_memory: float | None = Field(default=None, description="GiB of GPU memory models may keep resident.")
    compile: bool = Field(default=False, description="torch.compile the image model's repeated blocks.")
    quantize: Literal["none", "fp8"] = Field(default="none", description="FP8 linear layers in the denoiser.")
    lora: list[str] = Field(default_factory=list, description="LoRA style lock PATH[:weight].")
    compile_cache: str | None = Field(default=None, description="Folder that keeps compiled kernels.")
    render_batch: int = Field(
        default=4, ge=1, description="Most text-to-image requests in one pipeline call."
    )
    attention: Literal["auto", "native", "_native_cudnn", "_native_flash", "_native_efficient", "fp8"] = (
        Field(default="auto", description="Attention backend of the image model's denoiser (tools/speed.py).")
    )
    cuda_graphs: bool = Field(
        default=False, description="CUDA graphs over the image denoiser's forward (tools/denoiser_graph.py)."
    )
    compile_aot: bool = Field(
        default=False, description="Denoiser blocks from AOTInductor packages (aot_blocks)."
    )


class ModelManager:
    """Owns every loaded pipeline of a run (or a server). Thread-safe; one pipeline runs on the device at a time."""

    def __init__(
        self,
        gpu_memory: float | None = None,
        compile: bool = False,
        quantize: str = "none",
        device: str | None = None,
        lora: list[str] | None = None,
        compile_cache: str | None = None,
        render_batch: int = 4,
        device_lock: AbstractContextManager | None = None,
        text_cache_size: int = 64,
        attention: str = "auto",
        cuda_graphs: bool = False,
        compile_aot: bool = False,
    ):
        self.device = device or self._default_device()
        # Held around each pipeline call on the device, after the batch is formed: a server's cross-process GPU
        # lock belongs here, not around a backend's generate, where it would keep the other shots' requests out
        # of the render queue (nothing would batch). Its wait counts as queue wait.
        self.device_lock = device_lock
        self.budget = gpu_memory * GIB if gpu_memory is not None else self._default_budget()
        self.compile = compile
        self.quantize = quantize
        self.lora = [parse_lora(x) for x in (lora or [])]
        check_speed_settings(
            self.device,
            attention,
            render_batch,
            cuda_graphs,
            compile=compile,
            quantize=quantize,
            compile_aot=compile_aot,
            lora=bool(self.lora),
        )
        self.attention = attention
        self.compile_aot = compile_aot
        self.cuda_graphs = cuda_graphs
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()
        self.load_counts: Counter[str] = Counter()
        self.load_reports: list = []  # tools.model_load.LoadReport of every load from a folder, in order
        self._stages: dict = {}  # source: its weights being copied onto the GPU by preload (weight_stage.py)
        self.events: list[str] = []  # "offload X", "onload X", "cpu-offload X", "oom X" ... in order
        self.compile_cache = use_compile_cache(compile_cache) if compile_cache else None
        self.aot_folder = (self.compile_cache or aot_default_folder()) if compile_aot else None
        self._graphs_saved = 0  # Dynamo's graph count at the last save of the compile artefacts
        self.render_batch = render_batch
        self._queue_lock = threading.Lock()
        self._queue = None  # made on the first render: a manager that only runs video never starts a worker
        self._costs = threading.local()  # each calling thread reads the cost of its own last call
        # Prompt embeddings of recent texts (tools/text_cache.py): a re-shoot or a second platform of the same
        # prompt skips the text encoder. 0 turns it off.
        self.text_cache = TextCache(text_cache_size)

    @classmethod
    def from_config(cls, config: ManagerConfig) -> ModelManager:
        return cls(**config.model_dump())  # its fields are named as this class's arguments

    @staticmethod
    def _default_device() -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _default_budget(self) -> float:
        if self.device != "cuda":
            return math.inf
        import torch

        _, total = torch.cuda.mem_get_info()
        return total * 0.85  # leave room for activations, the VAE decode and the allocator's slack

    @property
    def dtype(self):
        import torch

        return torch.bfloat16 if self.device == "cuda" else torch.float32

    def resident_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values() if e.on_device and not e.offload)

    def resident(self) -> list[str]:
        return [s for s, e in self._entries.items() if e.on_device]

    def spec(self, source: str) -> ModelSpec:
        return spec_for(source)

    # ---- loading -------------------------------------------------------------------------------------------

    def get(self, source: str, task: Task = "t2i"):
        """The pipeline for `task` of model `source`, on the device, loading the model at most once per process."""
        diffusers = import_module("diffusers")  # an `import` statement gives the pre-lazy module
        with self._lock:  # while another thread (a preload) imports diffusers: no pipeline class in it
            entry = self._entries.get(source)
            fresh = entry is None
            if fresh:
                entry = self._load(source)
            elif stage := self._stages.pop(source, None):  # staged by a preload that came too late
                stage.discard()
            self._entries.move_to_end(source)
            self._ensure_on_device(entry)
            if fresh:  # on the device already: quantizing there is quick, and compiling is lazy anyway
                speed_up(
                    next(iter(entry.pipes.values())),
                    compile=self.compile,
                    quantize=self.quantize if entry.spec.kind == "image" else "none",
                    attention=self.attention if entry.spec.kind == "image" else "auto",
                    compile_vae=entry.spec.kind == "image",
                    cuda_graphs=self.cuda_graphs and entry.spec.kind == "image",
                    aot=self.aot_folder if entry.spec.kind == "image" else None,
                )
            if task not in entry.pipes:
                name = entry.spec.pipelines.get(task)
                if name is None:
                    raise ValueError(f"{source} ({entry.spec.family}) cannot do {task}")
                base = next(iter(entry.pipes.values()))
                if type(base).__name__ == name:
                    entry.pipes[task] = base
                else:
                    # from_pipe casts to float32 unless told otherwise, and the modules are shared: keep the dtype.
                    entry.pipes[task] = getattr(diffusers, name).from_pipe(base, dtype=base.dtype)
                    entry.pipes[task].set_progress_bar_config(disable=True)
            return entry.pipes[task]

    def preload(self, source: str, first_batch: int | None = 1) -> threading.Thread:
        """Start loading `source` on a thread now, its weights copied to the GPU at once (tools/weight_stage.py)
        while the run imports and plans; the first render waits on the manager's lock for it. `first_batch`: the
        most requests in the first render call (1: the first image comes after one render, not a batch of
        four). Ignored when compiling: a batch of one and then four would compile two graphs. A failed load is
        only logged here: the render's own `get` loads again and reports the cause."""

        def load() -> None:
            try:
                self.get(source)
            except Exception as err:
                log.warning("preloading %s failed (%s); the first render loads it again", source, err)

        if first_batch and not self.compile:
            self.queue.first_batch = first_batch
        if source not in self._entries and source not in self._stages:  # copies begin now, imports or not
            self._stages[source] = stage_folder(source, self.device, self.budget - self.resident_bytes())
        thread = threading.Thread(target=load, name=f"preload {source}", daemon=True)
        thread.start()
        return thread

    def adopt(self, source: str, pipe) -> None:
        """Put a pipeline built in this process (not loaded from `source`) under management, e.g. for benchmarks."""
        with self._lock:
            if source in self._entries:
                raise ValueError(f"{source} is already managed")
            spec = spec_for(source)
            pipe.set_progress_bar_config(disable=True)
            entry = _Entry(
                source, spec, {self._task_of(pipe, spec): pipe}, module_bytes(pipe), on_device=False
            )
            self._entries[source] = entry
            self._ensure_on_device(entry)  # holds the budget: may move others to host memory

    def _load(self, source: str) -> _Entry:
        """Load `source` once. Weights on this machine go straight to the device, components in parallel
        (tools/model_load.py), when they fit the budget after moving others out; else into host memory, and
        `_ensure_on_device` decides between a move and CPU offload."""
        import torch
        from diffusers import DiffusionPipeline

        spec = spec_for(source)
        dtype = self.dtype if self.device == "cuda" else getattr(torch, spec.cpu_dtype)
        start = time.perf_counter()
        folder = local_folder(source)
        direct = False
        if folder is not None:
            direct = self.device != "cpu" and self._make_room(weight_bytes(folder))
            stage = self._stages.pop(source, None)
            pipe, report = load_pipeline(folder, dtype, self.device if direct else "cpu", stage=stage)
            self.load_reports.append(report)
        else:  # not on this machine: the library fetches it
            pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        self.load_counts[source] += 1
        nbytes = module_bytes(pipe)
        entry = _Entry(source, spec, {}, nbytes, on_device=direct, placed=direct)
        entry.pipes[self._task_of(pipe, spec)] = pipe
        self._entries[source] = entry
        if direct:
            self.events.append(f"load-to-device {source}")
        if self.lora and spec.kind == "image":
            for i, (path, _) in enumerate(self.lora):
                pipe.load_lora_weights(path, adapter_name=f"style{i}")
                entry.loras.append(f"style{i}")
            pipe.set_adapters(entry.loras, [w for _, w in self.lora])
            log.info("LoRA style lock on %s: %s", source, ", ".join(f"{p}:{w}" for p, w in self.lora))
        log.info(
            "loaded %s (%s, %.2f GiB) in %.1f s",
            source,
            type(pipe).__name__,
            nbytes / GIB,
            time.perf_counter() - start,
        )
        return entry

    @staticmethod
    def _task_of(pipe, spec: ModelSpec) -> str:
        name = type(pipe).__name__
        for task, cls in spec.pipelines.items():
            if cls == name:
                return task
        return "t2i" if spec.kind == "image" else "t2v"

    def _make_room(self, nbytes: int, keep: _Entry | None = None) -> bool:
        """Move least recently used models to host memory until `nbytes` more fit the budget; True if they do."""
        for other in list(self._entries.values()):
            if self.resident_bytes() + nbytes <= self.budget:
                break
            if other is not keep and other.on_device:
                self._to_host(other)
        return self.resident_bytes() + nbytes <= self.budget

    def _ensure_on_device(self, entry: _Entry) -> None:
        """Make room for `entry` (moving least recently used models to host memory) and move it to the device."""
        if entry.on_device:
            return
        self._make_room(entry.nbytes, keep=entry)
        pipe = next(iter(entry.pipes.values()))
        if self.resident_bytes() + entry.nbytes > self.budget and self.device == "cuda":
            # It alone does not fit: keep it in host memory and stream each component in as it runs.
            clear_graphs(pipe)
            pipe.enable_model_cpu_offload()
            entry.offload = True
            self.events.append(f"cpu-offload {entry.source}")
            log.warning(
                "%s (%.1f GiB) does not fit the %.1f GiB budget: model CPU offload on",
                entry.source,
                entry.nbytes / GIB,
                self.budget / GIB,
            )
        elif self.device != "cpu" or pipe.device.type != "cpu":
            pipe.to(self.device)
        self.events.append(f"{'onload' if entry.placed else 'place'} {entry.source}")
        entry.placed = True
        entry.on_device = True

    def _to_host(self, entry: _Entry) -> None:
        pipe = next(iter(entry.pipes.values()))
        clear_graphs(pipe)  # a graph holds the weights' device addresses
        if entry.offload:
            pipe.remove_all_hooks()
            entry.offload = False
        pipe.to("cpu")
        entry.on_device = False
        self.events.append(f"offload {entry.source}")
        log.info("moved %s to host memory to make room (budget %.1f GiB)", entry.source, self.budget / GIB)
        self._free()

    def _free(self) -> None:
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def evict(self, source: str) -> None:
        """Drop a model entirely (host memory too)."""
        with self._lock:
            entry = self._entries.pop(source, None)
            if entry is not None:
                entry.pipes.clear()
                self.text_cache.forget(source)
                self.events.append(f"evict {source}")
                self._free()

    # ---- LoRA ----------------------------------------------------------------------------------------------

    def add_lora(self, source: str, path: str, weight: float = 1.0) -> str:
        """Load a LoRA onto a loaded model (shared by all its task pipelines); returns the adapter name."""
        with self._lock:
            entry = self._entries.get(source) or self._load(source)
            name = f"style{len(entry.loras)}"
            pipe = next(iter(entry.pipes.values()))
            clear_graphs(pipe)  # a graph would keep running without the new adapter
            pipe.load_lora_weights(path, adapter_name=name)
            entry.loras.append(name)
            self.text_cache.forget(source)  # a LoRA may reach into the text encoder
            return name

    def set_lora_weights(self, source: str, weights: dict[str, float]) -> None:
        with self._lock:
            pipe = next(iter(self._entries[source].pipes.values()))
            clear_graphs(pipe)  # the adapters' weights are numbers baked into a graph
            pipe.set_adapters(list(weights), list(weights.values()))
            self.text_cache.forget(source)

    def unload_loras(self, source: str) -> None:
        with self._lock:
            entry = self._entries[source]
            pipe = next(iter(entry.pipes.values()))
            clear_graphs(pipe)
            pipe.unload_lora_weights()
            entry.loras.clear()
            self.text_cache.forget(source)

    # ---- running -------------------------------------------------------------------------------------------

    def generator(self, seed: int):
        """A per-take generator. On the CPU when model offload is on, since latents start there then."""
        import torch

        return torch.Generator("cpu" if self.device != "cuda" else "cuda").manual_seed(seed)

    @property
    def queue(self):
        """The render queue that batches text-to-image requests (tools/render_queue.py), made on first use."""
        from tools.render_queue import RenderQueue

        with self._queue_lock:  # not the device lock: asking for the queue must not wait for a render
            if self._queue is None:
                self._queue = RenderQueue(self, max_batch=self.render_batch)
            return self._queue

    def last_cost(self):
        """The cost of the calling thread's last `run` (edits and clips read theirs here)."""
        return getattr(self._costs, "last", None)

    def run(self, source: str, task: Task, **kwargs):
        """Call the task pipeline under the device lock; the cost goes to `last_cost()` of this thread."""
        asked = time.perf_counter()
        with self._lock:
            out, cost = self.call(source, task, kwargs, asked=asked)
        self._costs.last = cost
        return out

    def call(self, source: str, task: Task, kwargs: dict, asked: float, share: int = 1):
        """(output, RenderCost) of one pipeline call; the caller holds the lock. `asked`: when the request
        came (perf_counter), for its queue wait; `share`: the requests the call serves (a batch's size).
        Out of memory: free, fall back to offload, retry once."""
        import torch

        with self._lock, self.device_lock or nullcontext():
            pipe = self.get(source, task)
            began = time.perf_counter()
            try:
                out, gpu_s = self._timed(pipe, kwargs, source)
            except torch.OutOfMemoryError as first:
                entry = self._entries[source]
                self.events.append(f"oom {source}")
                log.warning(
                    "out of memory on %s/%s (%s): freeing memory, turning on CPU offload, retrying once",
                    source,
                    task,
                    str(first).splitlines()[0] if str(first) else "OOM",
                )
                for other in list(self._entries.values()):
                    if other is not entry and other.on_device:
                        self._to_host(other)
                self._free()
                if self.device == "cuda" and not entry.offload:
                    clear_graphs(pipe)
                    next(iter(entry.pipes.values())).enable_model_cpu_offload()
                    entry.offload = True
                    self.events.append(f"cpu-offload {source}")
                try:
                    out, gpu_s = self._timed(pipe, kwargs, source)
                except torch.OutOfMemoryError as second:
                    self._free()
                    raise OutOfMemory(
                        f"out of GPU memory on {source} even with CPU offload: {second}"
                    ) from second
                log.warning("retry of %s/%s with CPU offload succeeded", source, task)
            run_s = time.perf_counter() - began
            self._keep_compiled()
            from tools.render_queue import RenderCost

            cost = RenderCost(began - asked, gpu_s / share, run_s / share, share)
            return out, cost

    def _keep_compiled(self) -> None:
        """After a call that compiled something new, write the compile artefacts to the cache folder, so the
        next process (on this machine or one the folder is copied to) loads them instead of compiling."""
        if not (self.compile and self.compile_cache):
            return
        graphs = compiled_graphs()
        if graphs != self._graphs_saved:
            self._graphs_saved = graphs
            try:
                save_compile_artifacts(self.compile_cache)
            except Exception as err:  # a full disk must not fail the take that was just rendered
                log.warning("compile artefacts not saved to %s: %s", self.compile_cache, err)

    def _timed(self, pipe, kwargs: dict, source: str):
        """(output, GPU seconds between CUDA events around the call, text encoding included; 0.0 off CUDA).

        An image pipeline asked for no `output_type` returns tensors, made PIL here by `tensors_to_pil` (the
        library's own arithmetic, on the device): a 1024² image's conversion took 13-29 ms on the host on an
        H200 machine, on the render thread, with the GIL held."""
        as_tensors = "output_type" not in kwargs and kwargs.get("return_dict", True) and image_pipeline(pipe)
        call = {
            **self.text_cache.prepare(source, pipe, kwargs),
            **({"output_type": "pt"} if as_tensors else {}),
        }
        if self.device != "cuda":
            out = pipe(**call)
            return (as_pil(out) if as_tensors else out), 0.0
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = pipe(**call)
        out = as_pil(out) if as_tensors else out
        end.record()
        end.synchronize()
        return out, start.elapsed_time(end) / 1000.0


def ready_on_gpu(model_id: str) -> bool:
    """A CUDA GPU is present and `model_id`'s weights are on this machine (checked without a network)."""
    if not weights_cached(model_id):
        return False
    import torch

    return torch.cuda.is_available()


def weights_cached(model_id: str) -> bool:
    """True when `model_id` is a local folder or its model_index.json is in the Hugging Face cache (no network)."""
    if _model_index(model_id) is not None:
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # installed without the models extra: no hub weights can be used
        return False

    found = try_to_load_from_cache(model_id, "model_index.json")
    return isinstance(found, str)
