"""Loading a diffusers pipeline fast: its weights read straight onto the device, the files read ahead on threads.

`DiffusionPipeline.from_pretrained(folder)` loads every component into host memory, and the caller then copies
~20 GB to the GPU with `pipe.to("cuda")`. Here each torch component (the denoiser, the text encoder, the VAE)
is loaded by its own class's `from_pretrained` with `device_map` set to the device, so its safetensors go from
the file's memory map to the GPU tensor by tensor, with no second copy in host memory; meanwhile threads read
the weight files ahead, in the order they will be loaded, so a cold disk is read at its full parallel rate
while the loader copies what is already in the page cache. The small parts (tokenizer, scheduler) and the
pipeline itself are then made by `DiffusionPipeline.from_pretrained` with the loaded components passed in, so
the pipeline class and its config come from the library exactly as in a plain load.

The components themselves load one after another: loading two at once on threads is not safe with
diffusers 0.42 and transformers 5, whose loaders build each model on the meta device through a process-wide
patch of `nn.Module` (accelerate's `init_empty_weights`); a model built on another thread meanwhile gets meta
tensors ("Tensor.item() cannot be called on meta tensors" at the first image, seen on an H200).

Within a component, diffusers reads its weight shards on threads when `HF_ENABLE_PARALLEL_LOADING` is on
(transformers does so by default). Importing this module turns it on unless the environment says otherwise; it
must happen before diffusers is imported, since diffusers reads the variable once, at import (tools/models.py
imports this module first). On one H200 the 8-shot film's load went from 4.3 to 3.7 s with it (ninth session).

In a fresh process the copies can begin before any of this: `stage_folder` (called by ModelManager.preload)
starts tools/weight_stage.py's Stage, which copies the weight files onto the GPU while diffusers is still
being imported, and `load_pipeline` then builds each component it holds around its tensors.

torch and diffusers are imported inside the functions: importing this module loads neither.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tools import weight_stage
from tools.weight_stage import assemble

log = logging.getLogger(__name__)

os.environ.setdefault("HF_ENABLE_PARALLEL_LOADING", "yes")  # diffusers: a component's shards on threads

WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class LoadReport:
    """What one load cost: seconds per component and for the whole pipeline; `parallel`: files read ahead."""

    folder: str
    device: str
    seconds: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    parallel: bool = True
    staged: list[str] = field(default_factory=list)  # components built around weights staged in advance


def local_folder(source: str) -> Path | None:
    """The folder holding `source`'s model_index.json: the folder itself, or the hub cache's snapshot of a model
    id (found without a network). None when neither is on this machine."""
    path = Path(source).expanduser()
    if (path / "model_index.json").is_file():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(source, "model_index.json")
    return Path(found).parent if isinstance(found, str) else None


def weight_bytes(folder: Path) -> int:
    """Bytes of the weight files of a pipeline folder (an upper bound of what its modules take on the device)."""
    return sum(f.stat().st_size for f in folder.glob("*/*") if _weights(f))


def module_components(folder: Path) -> dict[str, type]:
    """{component name: class} for the components of `folder`'s model_index.json that are torch modules."""
    import torch

    index = json.loads((folder / "model_index.json").read_text())
    found = {}
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or None in value:
            continue
        library, class_name = value
        try:
            cls = getattr(importlib.import_module(library), class_name)
        except (ImportError, AttributeError):
            continue  # a class this install lacks: the pipeline's own loader says so with its cause
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and (folder / name).is_dir():
            found[name] = cls
    return found


def stage_folder(source: str, device: str, room: float):
    """A tools/weight_stage.py Stage of `source`'s weights onto `device`, started, when staging is on, the device
    is a GPU, the weights are on this machine and fit `room` bytes; else None (the load reads them itself)."""
    if not weight_stage.STAGE or not device.startswith("cuda"):
        return None
    folder = local_folder(source)
    try:
        if folder is None or weight_bytes(folder) > room:
            return None
        return weight_stage.Stage(folder, device).start()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # malformed: the load says why
        log.info("not staging %s: %s", source, err)
        return None


def read_ahead(files: list[Path], workers: int = 8, chunk: int = 64 * 2**20) -> ThreadPoolExecutor:
    """Read `files` on `workers` threads (each file in `chunk` pieces, in order), so that they are in the page
    cache when the loader maps them. Returns the pool; its threads end when the reads are done."""

    def read(path: Path, start: int) -> None:
        with path.open("rb", buffering=0) as f:
            f.seek(start)
            f.read(chunk)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read-ahead")
    for path in files:
        for start in range(0, path.stat().st_size, chunk):
            pool.submit(read, path, start)
    pool.shutdown(wait=False)
    return pool


def load_pipeline(folder: Path, dtype, device: str, parallel: bool = True, stage=None):
    """(pipeline, LoadReport): `folder`'s pipeline with its torch components loaded onto `device` directly.

    `stage`: a tools/weight_stage.py Stage of this folder onto `device`, started earlier: components whose
    tensors it holds are built around them (`assemble`), the rest the library loads. `parallel=False` reads no
    files ahead (for measuring what the reading threads save)."""
    from diffusers import DiffusionPipeline

    report = LoadReport(str(folder), device, parallel=parallel)
    start = time.perf_counter()
    # Straight to the accelerator; on the CPU the library's default (low_cpu_mem_usage) is already one copy.
    placement = {"device_map": device} if device != "cpu" else {}
    components = module_components(folder)
    if stage is not None and stage.device != device:
        stage.discard()
        stage = None
    if parallel:
        staged = stage.files if stage is not None else {}
        ahead = [f for name in components if name not in staged for f in sorted((folder / name).glob("*"))]
        read_ahead([f for f in ahead if _weights(f)])
    loaded = {}
    for name, cls in components.items():
        began = time.perf_counter()
        tensors = stage.take(name) if stage is not None else None
        model = _assembled(cls, folder / name, tensors, dtype, placement) if tensors is not None else None
        del tensors  # a component the stage could not build gives its memory back before the library loads it
        if model is None:
            model = cls.from_pretrained(folder / name, dtype=dtype, **placement)
        else:
            report.staged.append(name)
        loaded[name] = model
        report.components[name] = round(time.perf_counter() - began, 3)
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=dtype, **loaded)
    report.seconds = round(time.perf_counter() - start, 3)
    log.info(
        "loaded %s onto %s in %.1f s (%s%s)",
        folder,
        device,
        report.seconds,
        ", ".join(f"{k} {v:.1f} s" for k, v in report.components.items()),
        f"; staged: {', '.join(report.staged)}" if report.staged else "",
    )
    return pipe, report


def _assembled(cls, folder: Path, tensors: dict, dtype, placement: dict):
    """`assemble`, or None when it fails in any way: the library's own load then reports the cause."""
    try:
        return assemble(cls, folder, tensors, dtype, placement)
    except Exception as err:  # noqa: BLE001
        log.warning("building %s around its staged weights failed (%s); the library loads it", folder, err)
        return None


def _weights(path: Path) -> bool:
    return path.is_file() and path.name.endswith(WEIGHT_SUFFIXES)
