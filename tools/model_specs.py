"""The model table: which diffusers pipeline class does each task of a model family, with its default steps,
guidance, size multiple, negative-prompt use and frame rule, and the keyword arguments of a pipeline call.

A model is matched by its hub id or, for a local folder, by the folder name and the `_class_name` in its
`model_index.json`; anything else that diffusers can load runs with the generic entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Task = Literal["t2i", "img2img", "inpaint", "reference", "t2v", "i2v"]

DEFAULT_IMAGE_MODEL = "Tongyi-MAI/Z-Image-Turbo"
DEFAULT_VIDEO_MODEL = "Lightricks/LTX-Video"  # the fastest measured: ~30 s per 5 s 720p clip on an H100


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
    # Model card: "9 steps (8 DiT forwards)", guidance 0 (the Turbo model is guidance-distilled). The card's
    # diffusers ran 9 timesteps whose last is sigma 0, a forward whose step is zero; diffusers 0.42 spaces N
    # steps as linspace(1, 1/N, N), so there 9 steps are nine working forwards on another schedule, and 8
    # steps are exactly the card's eight (tests/test_generation.py compares the sigmas).
    ModelSpec(
        "z-image-turbo",
        "image",
        _Z_IMAGE_TASKS,
        8,
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
