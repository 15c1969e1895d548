"""Loading a diffusers pipeline fast: its weights read straight onto the device, its big parts in parallel.

`DiffusionPipeline.from_pretrained(folder)` loads one component after another into host memory, and the caller
then copies ~20 GB to the GPU with `pipe.to("cuda")`. Here each torch component (the denoiser, the text
encoder, the VAE) is loaded by its own class's `from_pretrained` on its own thread with `device_map` set to the
device, so its safetensors go from the file's memory map to the GPU tensor by tensor, with no second copy in
host memory, while the other components load beside it (safetensors and the host-to-device copies release the
GIL). The small parts (tokenizer, scheduler) and the pipeline itself are then made by
`DiffusionPipeline.from_pretrained` with the loaded components passed in, so the pipeline class, its config
and every other detail come from the library exactly as in a plain load.

torch and diffusers are imported inside the functions: importing this module loads neither.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class LoadReport:
    """What one load cost: seconds per component (on its own thread) and for the whole pipeline."""

    folder: str
    device: str
    seconds: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    parallel: bool = True


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
    return sum(
        f.stat().st_size for f in folder.glob("*/*") if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)
    )


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


def load_pipeline(folder: Path, dtype, device: str, parallel: bool = True):
    """(pipeline, LoadReport): `folder`'s pipeline with its torch components loaded onto `device` directly.

    `parallel=False` loads the same components one after another (for measuring what the threads save)."""
    from diffusers import DiffusionPipeline

    report = LoadReport(str(folder), device, parallel=parallel)
    start = time.perf_counter()
    # Straight to the accelerator; on the CPU the library's default (low_cpu_mem_usage) is already one copy.
    placement = {"device_map": device} if device != "cpu" else {}

    def one(item: tuple[str, type]):
        name, cls = item
        began = time.perf_counter()
        module = cls.from_pretrained(folder / name, dtype=dtype, **placement)
        report.components[name] = round(time.perf_counter() - began, 3)
        return name, module

    items = list(module_components(folder).items())
    if parallel and len(items) > 1:
        with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="load") as pool:
            loaded = dict(pool.map(one, items))
    else:
        loaded = dict(map(one, items))
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=dtype, **loaded)
    report.seconds = round(time.perf_counter() - start, 3)
    log.info(
        "loaded %s onto %s in %.1f s (%s)",
        folder,
        device,
        report.seconds,
        ", ".join(f"{k} {v:.1f} s" for k, v in report.components.items()),
    )
    return pipe, report
