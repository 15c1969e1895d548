"""A fresh process's weights copied onto the GPU while it imports the libraries that will use them.

In a cold `main.py run` on one H200 (ninth session) the load began only after diffusers and the model classes
were imported (5 s), then spent 3.3 s copying 20 GB from the page cache to the GPU with the GPU idle all the
while. The copies need nothing but torch and safetensors, and they run without the GIL, so they can go on
while the imports hold it. `Stage` starts them as soon as a run knows its model folder (ModelManager.preload):
one thread per weight file, `safetensors.torch.load_file` straight onto the device. The loader
(tools/model_load.py) then takes each component's tensors and `assemble` builds the module around them:

- a diffusers model (ModelMixin): `from_config` under accelerate's `init_empty_weights` (parameters on the meta
  device, as `from_pretrained` builds it), then `load_state_dict(strict=True, assign=True)`: the staged tensors
  become the parameters, no second copy. Only where that is exactly `from_pretrained`'s result: every tensor
  of the module comes from the file (no computed buffers), in the asked dtype, no fp32-kept modules, no
  quantisation config. Anything else returns None and the library loads the component itself.
- a transformers model (PreTrainedModel): `from_pretrained(None, config=..., state_dict=...)`, transformers' own
  path for weights already in memory; a key it reports missing or unexpected returns None likewise.

On one H200 (twelfth session, docs/PERFORMANCE.md) the 19.1 GiB were on the GPU 2.5 s after the copies began,
inside the imports; a cold 8-shot film's first image came 3.4 s earlier (11.8 s against 15.2 s) and all
1,163 tensors equalled the library's load. tests/test_weight_stage.py loads a tiny Z-Image-Turbo both ways
and compares every tensor and the image.
torch and the libraries are imported inside the functions: importing this module loads neither.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

STAGE = True  # off: the loader reads every file itself (an A/B switch: evals/startup_trace.py --set)
SINGLE_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")


def weight_files(component: Path) -> list[Path]:
    """The safetensors a component's loader reads: its index's shards, or its one file ([] for anything else,
    e.g. .bin weights or variants, which the library resolves itself)."""
    for name in SINGLE_FILES:
        index = component / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            files = [component / s for s in shards if "/" not in s and "\\" not in s]
            return files if len(files) == len(shards) and all(f.is_file() for f in files) else []
        if (component / name).is_file():
            return [component / name]
    return []


class Stage:
    """The weight files of a pipeline folder's components being copied onto `device`, one thread per file."""

    def __init__(self, folder: Path, device: str):
        self.folder, self.device = Path(folder), device
        index = json.loads((self.folder / "model_index.json").read_text())
        self.files = {
            name: files
            for name, value in index.items()
            if not name.startswith("_") and isinstance(value, list) and (self.folder / name).is_dir()
            if (files := weight_files(self.folder / name))
        }
        self._futures: dict[str, list[Future]] = {}

    def start(self) -> Stage:
        from safetensors.torch import load_file

        every = [f for files in self.files.values() for f in files]
        pool = ThreadPoolExecutor(max_workers=max(1, min(8, len(every))), thread_name_prefix="stage")
        for name, files in self.files.items():
            self._futures[name] = [pool.submit(load_file, str(f), device=self.device) for f in files]
        pool.shutdown(wait=False)
        return self

    def take(self, name: str) -> dict | None:
        """`name`'s tensors on the device once all its files are copied (the stage lets go of them), or None
        when it has none or a file failed. A failure (logged) drops the whole stage, so that the library,
        which then reads the files and reports the cause, has all the device's memory (an out-of-memory)."""
        futures = self._futures.pop(name, None)
        if not futures:
            return None
        tensors: dict = {}
        for future in futures:
            try:
                tensors.update(future.result())
            except Exception as err:  # noqa: BLE001 (any failure: the library's own load says it properly)
                log.warning("staging %s/%s failed (%s); the library loads it all", self.folder, name, err)
                del tensors
                self.discard()
                return None
        return tensors

    def discard(self) -> None:
        """Drop what is staged (a load that does not go to this device)."""
        for name in list(self._futures):
            self.take(name)


def assemble(cls, folder: Path, tensors: dict, dtype, placement: dict):
    """The component of class `cls` in `folder` with `tensors` as its weights, or None where that would not be
    exactly what `cls.from_pretrained(folder, dtype=dtype, **placement)` gives (placement: {} or a device_map)."""
    if any(t.dtype != dtype for t in tensors.values() if t.is_floating_point()):
        return None  # the library casts, and knows which modules stay in float32
    from diffusers import ModelMixin

    if issubclass(cls, ModelMixin):
        return _diffusers_model(cls, folder, tensors, placement)
    from transformers import PreTrainedModel

    if not issubclass(cls, PreTrainedModel):
        return None
    config = cls.config_class.from_pretrained(folder)
    if getattr(config, "quantization_config", None):
        return None
    model, info = cls.from_pretrained(
        None, config=config, state_dict=tensors, dtype=dtype, output_loading_info=True, **placement
    )
    if info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]:
        return None
    model.config._name_or_path = str(folder)  # as a load from the folder records it
    return model


def _diffusers_model(cls, folder: Path, tensors: dict, placement: dict):
    from accelerate import dispatch_model, init_empty_weights

    config = cls.load_config(folder)
    if config.get("quantization_config") or getattr(cls, "_keep_in_fp32_modules", None):
        return None
    with init_empty_weights():
        model = cls.from_config(config)
    if {name for name, _ in model.named_buffers()} - tensors.keys():
        return None  # buffers computed at construction: the library's dtype rules for them apply
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:  # keys or shapes that do not match: the library's loader explains them
        log.info("staged weights of %s do not fit %s (%s)", folder, cls.__name__, str(err)[:200])
        return None
    if "device_map" in placement:  # as from_pretrained places it: the module moved, its map recorded
        dispatch_model(model, device_map={"": placement["device_map"]})
    model.register_to_config(_name_or_path=folder)  # as given, as from_pretrained records it
    return model.eval()
