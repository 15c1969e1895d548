"""Models on the GPU: the per-model defaults table and the one `ModelManager` that owns every loaded pipeline.

The table (`MODEL_SPECS`) is the single place that knows a model family: which diffusers pipeline class does
each task, default steps and guidance, the size multiple, whether a negative prompt is used, the frame rule of
video models. A model is matched by its hub id or, for a local folder, by the folder name and the
`_class_name` in its `model_index.json`; anything else that diffusers can load runs with the generic entry.

`ModelManager` (one per run or per server, never a process global: agent/backends.py owns it):
- loads through `DiffusionPipeline.from_pretrained`, so the class comes from `model_index.json` and hub ids and
  local folders share one code path; bf16 on CUDA, float32 on CPU;
- derives the other task pipelines of a family with `from_pipe` (no second load, same component objects);
- keeps models resident while their parameter bytes fit the budget (`--gpu-memory`), moves the least recently
  used to host memory when they do not, and never loads one model twice;
- runs one pipeline at a time on the device (a lock: parallel shot branches never share the GPU mid-call);
- on out-of-memory frees the cache, falls back to model CPU offload, retries once and says so in the log.

torch and diffusers are imported inside functions: importing this module loads neither.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

Task = Literal["t2i", "img2img", "inpaint", "reference", "t2v", "i2v"]
DEFAULT_IMAGE_MODEL = "Tongyi-MAI/Z-Image-Turbo"
DEFAULT_VIDEO_MODEL = "Lightricks/LTX-Video"  # the fastest measured: ~30 s per 5 s 720p clip on an H100
GIB = 1024**3


@dataclass(frozen=True)
class ModelSpec:
    """What the project knows about one model family. `pipelines` maps a task to a diffusers class name."""

    family: str
    kind: Literal["image", "video"]
    pipelines: dict[str, str]
    num_inference_steps: int | None
    guidance_scale: float | None
    size_multiple: int = 16
    negative_prompt: bool = True
    # Qwen-Image's classifier-free guidance is `true_cfg_scale`; its `guidance_scale` is for distilled models.
    true_cfg: bool = False
    frame_step: int | None = None  # video: frames must be frame_step * k + 1
    extra: dict[str, Any] = field(default_factory=dict)  # further call arguments the model card recommends
    # Pipelines that cast inputs to bf16 inside (Z-Image Omni's VAE encode) must also run in bf16 on a CPU.
    cpu_dtype: str = "float32"
    ids: tuple[str, ...] = ()  # lower-case substrings of hub ids or folder names
    class_names: tuple[str, ...] = ()  # `_class_name` values in model_index.json


_Z_IMAGE_TASKS = {
    "t2i": "ZImagePipeline",
    "img2img": "ZImageImg2ImgPipeline",
    "inpaint": "ZImageInpaintPipeline",
}
_QWEN_TASKS = {
    "t2i": "QwenImagePipeline",
    "img2img": "QwenImageImg2ImgPipeline",
    "inpaint": "QwenImageInpaintPipeline",
}

# Order matters: the first entry whose id substring or class name matches wins (Turbo before base, Edit before
# plain Qwen-Image, the Wan variants before each other).
MODEL_SPECS: list[ModelSpec] = [
    # Model card: 9 steps (8 DiT forwards), guidance 0 (the Turbo model is guidance-distilled).
    ModelSpec(
        "z-image-turbo",
        "image",
        _Z_IMAGE_TASKS,
        9,
        0.0,
        16,
        negative_prompt=False,
        ids=("z-image-turbo",),
        class_names=("ZImagePipeline",),
    ),
    ModelSpec(
        "z-image-omni",
        "image",
        {**_Z_IMAGE_TASKS, "t2i": "ZImageOmniPipeline", "reference": "ZImageOmniPipeline"},
        50,
        4.0,
        16,
        ids=("z-image-omni", "omni"),
        class_names=("ZImageOmniPipeline",),
        cpu_dtype="bfloat16",
    ),
    ModelSpec("z-image", "image", _Z_IMAGE_TASKS, 50, 4.0, 16, ids=("z-image",)),
    ModelSpec(
        "qwen-image-edit",
        "image",
        {
            "t2i": "QwenImagePipeline",
            "reference": "QwenImageEditPipeline",
            "img2img": "QwenImageImg2ImgPipeline",
            "inpaint": "QwenImageInpaintPipeline",
        },
        50,
        None,
        16,
        true_cfg=True,
        extra={"true_cfg_scale": 4.0},
        ids=("qwen-image-edit",),
        class_names=("QwenImageEditPipeline", "QwenImageEditPlusPipeline"),
    ),
    ModelSpec(
        "qwen-image",
        "image",
        _QWEN_TASKS,
        50,
        None,
        16,
        true_cfg=True,
        extra={"true_cfg_scale": 4.0},
        ids=("qwen-image",),
        class_names=("QwenImagePipeline",),
    ),
    ModelSpec(
        "ltx-video",
        "video",
        {"i2v": "LTXImageToVideoPipeline", "t2v": "LTXPipeline"},
        50,
        3.0,
        32,
        frame_step=8,
        ids=("ltx-video", "ltx"),
        class_names=("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline"),
    ),
    # TI2V-5B: one transformer, 48-channel VAE (16x spatial), `expand_timesteps` conditions on the first frame.
    ModelSpec(
        "wan2.2-ti2v",
        "video",
        {"t2v": "WanPipeline", "i2v": "WanImageToVideoPipeline"},
        50,
        5.0,
        32,
        frame_step=4,
        ids=("ti2v",),
    ),
    ModelSpec(
        "wan2.2-i2v",
        "video",
        {"i2v": "WanImageToVideoPipeline"},
        40,
        3.5,
        16,
        frame_step=4,
        ids=("i2v",),
        class_names=("WanImageToVideoPipeline",),
    ),
    ModelSpec(
        "wan2.2-t2v",
        "video",
        {"t2v": "WanPipeline"},
        40,
        4.0,
        16,
        frame_step=4,
        extra={"guidance_scale_2": 3.0},
        ids=("t2v", "wan"),
        class_names=("WanPipeline",),
    ),
]
GENERIC_IMAGE = ModelSpec(
    "generic",
    "image",
    {
        "t2i": "AutoPipelineForText2Image",
        "img2img": "AutoPipelineForImage2Image",
        "inpaint": "AutoPipelineForInpainting",
    },
    None,
    None,
    16,
)


def _model_index(source: str) -> dict | None:
    path = Path(source).expanduser() / "model_index.json"
    return json.loads(path.read_text()) if path.is_file() else None


def spec_for(source: str) -> ModelSpec:
    """The table entry for a hub id or local folder (generic when nothing matches)."""
    index = _model_index(source)
    name = Path(source).name.lower() if index is not None else source.lower()
    class_name = (index or {}).get("_class_name", "")
    if class_name == "WanPipeline" and (index or {}).get("expand_timesteps"):
        class_name = "WanPipeline:ti2v"  # TI2V-5B ships as WanPipeline; the config flag tells it apart
        name = name + " ti2v"
    for spec in MODEL_SPECS:
        if any(i in name for i in spec.ids):
            return spec
    for spec in MODEL_SPECS:
        if class_name in spec.class_names:
            return spec
    if class_name.startswith(("Wan", "LTX")):
        raise ValueError(f"{source}: video pipeline {class_name} is not in the model table (tools/models.py)")
    return GENERIC_IMAGE


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


def speed_up(pipe, compile: bool = False, quantize: str = "none") -> None:
    """Make the denoiser faster in place: FP8 linear layers (torchao) and/or compiled repeated blocks.

    `quantize="fp8"`: torchao's dynamic FP8 (e4m3) activations and weights with per-row scales, on the layers of
    `fp8_layers`; needs a GPU with FP8 tensor cores (compute capability 8.9 or newer: Ada, Hopper, Blackwell).
    Quantize first, then compile, so Inductor fuses the activation scaling into the surrounding kernels.
    """
    denoiser = getattr(pipe, "transformer", None)
    if denoiser is None:
        return
    if quantize == "fp8":
        problem = fp8_unavailable()
        if problem:
            raise RuntimeError(problem)
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

        chosen = set(fp8_layers(denoiser))
        quantize_(
            denoiser,
            Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
            filter_fn=lambda m, fqn: fqn in chosen,
        )
        log.info("FP8 linear layers: %d of the denoiser's", len(chosen))
    if compile and hasattr(denoiser, "compile_repeated_blocks"):
        denoiser.compile_repeated_blocks(fullgraph=True)


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


class ModelManager:
    """Owns every loaded pipeline of a run (or a server). Thread-safe; one pipeline runs on the device at a time."""

    def __init__(
        self,
        gpu_memory: float | None = None,
        compile: bool = False,
        quantize: str = "none",
        device: str | None = None,
        lora: list[str] | None = None,
    ):
        self.device = device or self._default_device()
        self.budget = gpu_memory * GIB if gpu_memory is not None else self._default_budget()
        self.compile = compile
        self.quantize = quantize
        self.lora = [parse_lora(x) for x in (lora or [])]
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()
        self.load_counts: Counter[str] = Counter()
        self.events: list[str] = []  # "offload X", "onload X", "cpu-offload X", "oom X" ... in order

    @classmethod
    def from_config(cls, config: ManagerConfig) -> ModelManager:
        return cls(
            gpu_memory=config.gpu_memory,
            compile=config.compile,
            quantize=config.quantize,
            lora=list(config.lora),
        )

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
        import diffusers

        with self._lock:
            entry = self._entries.get(source)
            fresh = entry is None
            if fresh:
                entry = self._load(source)
            self._entries.move_to_end(source)
            self._ensure_on_device(entry)
            if fresh:  # on the device already: quantizing there is quick, and compiling is lazy anyway
                speed_up(
                    next(iter(entry.pipes.values())),
                    compile=self.compile,
                    quantize=self.quantize if entry.spec.kind == "image" else "none",
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
        import torch
        from diffusers import DiffusionPipeline

        spec = spec_for(source)
        dtype = self.dtype if self.device == "cuda" else getattr(torch, spec.cpu_dtype)
        start = time.perf_counter()
        pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        self.load_counts[source] += 1
        nbytes = module_bytes(pipe)
        entry = _Entry(source, spec, {}, nbytes, on_device=False)
        entry.pipes[self._task_of(pipe, spec)] = pipe
        self._entries[source] = entry
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

    def _ensure_on_device(self, entry: _Entry) -> None:
        """Make room for `entry` (moving least recently used models to host memory) and move it to the device."""
        if entry.on_device:
            return
        for other in list(self._entries.values()):
            if self.resident_bytes() + entry.nbytes <= self.budget:
                break
            if other is not entry and other.on_device:
                self._to_host(other)
        pipe = next(iter(entry.pipes.values()))
        if self.resident_bytes() + entry.nbytes > self.budget and self.device == "cuda":
            # It alone does not fit: keep it in host memory and stream each component in as it runs.
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
                self.events.append(f"evict {source}")
                self._free()

    # ---- LoRA ----------------------------------------------------------------------------------------------

    def add_lora(self, source: str, path: str, weight: float = 1.0) -> str:
        """Load a LoRA onto a loaded model (shared by all its task pipelines); returns the adapter name."""
        with self._lock:
            entry = self._entries.get(source) or self._load(source)
            name = f"style{len(entry.loras)}"
            pipe = next(iter(entry.pipes.values()))
            pipe.load_lora_weights(path, adapter_name=name)
            entry.loras.append(name)
            return name

    def set_lora_weights(self, source: str, weights: dict[str, float]) -> None:
        with self._lock:
            pipe = next(iter(self._entries[source].pipes.values()))
            pipe.set_adapters(list(weights), list(weights.values()))

    def unload_loras(self, source: str) -> None:
        with self._lock:
            entry = self._entries[source]
            next(iter(entry.pipes.values())).unload_lora_weights()
            entry.loras.clear()

    # ---- running -------------------------------------------------------------------------------------------

    def generator(self, seed: int):
        """A per-take generator. On the CPU when model offload is on, since latents start there then."""
        import torch

        return torch.Generator("cpu" if self.device != "cuda" else "cuda").manual_seed(seed)

    def run(self, source: str, task: Task, **kwargs):
        """Call the task pipeline under the device lock. Out of memory: free, fall back to offload, retry once."""
        import torch

        with self._lock:
            pipe = self.get(source, task)
            try:
                return pipe(**kwargs)
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
                    next(iter(entry.pipes.values())).enable_model_cpu_offload()
                    entry.offload = True
                    self.events.append(f"cpu-offload {source}")
                try:
                    result = pipe(**kwargs)
                except torch.OutOfMemoryError as second:
                    self._free()
                    raise OutOfMemory(
                        f"out of GPU memory on {source} even with CPU offload: {second}"
                    ) from second
                log.warning("retry of %s/%s with CPU offload succeeded", source, task)
                return result


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


def call_kwargs(
    spec: ModelSpec,
    prompt: str,
    negative_prompt: str = "",
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a pipeline call: the request's values where given, else the table's defaults.

    The names are diffusers' own. A negative prompt is passed only to models that use one (Z-Image-Turbo runs
    without classifier-free guidance); Qwen-Image's guidance goes to `true_cfg_scale`, which needs a negative
    prompt to switch on (its model card passes " ").
    """
    kw: dict[str, Any] = {"prompt": prompt, **spec.extra}
    steps = num_inference_steps or spec.num_inference_steps
    if steps:
        kw["num_inference_steps"] = steps
    if spec.true_cfg:
        if guidance_scale is not None:
            kw["true_cfg_scale"] = guidance_scale
        kw["negative_prompt"] = negative_prompt or " "
    else:
        guidance = guidance_scale if guidance_scale is not None else spec.guidance_scale
        if guidance is not None:
            kw["guidance_scale"] = guidance
        if spec.negative_prompt and negative_prompt:
            kw["negative_prompt"] = negative_prompt
    return kw
