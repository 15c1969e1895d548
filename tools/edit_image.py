"""Tool: edit image. Changes an existing still instead of rendering from nothing.

Modes (argument names follow diffusers):
- `img2img`: re-render the whole image from `image` at `strength` (Z-Image / Qwen-Image img2img pipelines);
- `inpaint`: re-render only `mask_region` (x0, y0, x1, y1) of `image` (the inpaint pipelines);
- `reference`: a new image conditioned on `reference_images` (an accepted shot, a user's product photo):
  Z-Image Omni and Qwen-Image-Edit take them as conditions; a model without a reference pipeline falls back to
  img2img from the first reference, and the result's parameters say so (`reference_mode`);
- `outpaint`: extend an accepted take to another platform's aspect ratio: the take is scaled to fit inside the
  new frame, the new borders are inpainted, and the original pixels are put back over the middle.

All pipelines come from the one `ModelManager` (tools/models.py), derived with `from_pipe` from the loaded image
model, so an edit never loads a second copy of the model. Sizes: the model runs at the request's size rounded up
to its multiple, and the result is resized back to exactly the size asked for (the pixels of the input and of
`mask_region` stay aligned because input and output are scaled by the same factors).
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from tools.generate_image import ImageResult

EditMode = Literal["img2img", "inpaint", "reference", "outpaint"]


class EditRequest(BaseModel):
    """One edit of a still."""

    mode: EditMode
    prompt: str
    negative_prompt: str = ""
    image: str | None = Field(
        default=None, description="Absolute path of the still to edit (not for reference)."
    )
    mask_region: tuple[int, int, int, int] | None = Field(
        default=None, description="Box to inpaint, in pixels."
    )
    mask_image: str | None = Field(
        default=None, description="Mask PNG to inpaint, any shape (white: repaint); over mask_region."
    )
    reference_images: list[str] = Field(default_factory=list, description="Conditions for `reference` mode.")
    width: int
    height: int
    seed: int
    strength: float | None = Field(
        default=None, description="How far from the input; None: the mode's default."
    )
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    output_path: str


EditResult = ImageResult  # an edit's result has the same fields as a render's


DEFAULT_STRENGTH = {"img2img": 0.6, "inpaint": 1.0, "reference": 0.7, "outpaint": 1.0}


def _open(path: str):
    """An edit input as RGB, through the safe opener (regular files only, a pixel limit, any mode)."""
    from tools.images import open_image

    return open_image(path)


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]):
    """White (repaint) inside `box`, black elsewhere."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]):
        raise ValueError(f"mask_region {box} is not a box inside the {size[0]}x{size[1]} image")
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    return mask


def outpaint_canvas(image, width: int, height: int):
    """(canvas, mask, box): `image` scaled to fit inside width x height and centred; mask white on the new borders.

    The borders start as a blurred stretch of the image rather than flat grey, so the inpainting starts from the
    take's own colours.
    """
    from PIL import Image, ImageFilter

    scale = min(width / image.width, height / image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    x0, y0 = (width - w) // 2, (height - h) // 2
    blur = max(8, max(width, height) // 24)  # enough that no detail (text, edges) shows through the borders
    canvas = image.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(blur))
    canvas.paste(image.resize((w, h), Image.Resampling.LANCZOS), (x0, y0))
    mask = Image.new("L", (width, height), 255)
    mask.paste(0, (x0, y0, x0 + w, y0 + h))
    return canvas, mask, (x0, y0, x0 + w, y0 + h)


def run_edit(manager, source: str, req: EditRequest):
    """Run one edit on the manager's pipelines; returns (PIL image at exactly req.width x req.height, parameters)."""
    from PIL import Image

    from tools.models import call_kwargs, round_size

    spec = manager.spec(source)
    gw, gh = round_size(req.width, req.height, spec.size_multiple)
    kw = call_kwargs(spec, req.prompt, req.negative_prompt, req.num_inference_steps, req.guidance_scale)
    kw.update(height=gh, width=gw, generator=manager.generator(req.seed))
    strength = req.strength if req.strength is not None else DEFAULT_STRENGTH[req.mode]
    params: dict = {"mode": req.mode, "generated_size": [gw, gh]}
    keep = None  # (original, box) to composite back after outpainting

    def to_gen(im):
        return im.resize((gw, gh), Image.Resampling.LANCZOS)

    if req.mode == "reference":
        task = _reference_inputs(spec, req, strength, to_gen, kw, params)
    else:
        task, keep = _image_inputs(req, strength, to_gen, kw, params)
    params.update({k: v for k, v in kw.items() if isinstance(v, (int, float, str)) and k != "prompt"})
    out = manager.run(source, task, **kw).images[0]
    out = out.resize((req.width, req.height), Image.Resampling.LANCZOS)
    if keep is not None:
        out.paste(keep[0], keep[1][:2])
    params["pipeline"] = spec.pipelines[task]
    return out, params


def _reference_inputs(spec, req: EditRequest, strength: float, to_gen, kw: dict, params: dict) -> str:
    """Fill the call's reference images into kw (and what was done into params); returns the task."""
    if not req.reference_images:
        raise ValueError("reference mode needs reference_images")
    refs = [to_gen(_open(p)) for p in req.reference_images]
    if "reference" in spec.pipelines:
        task = "reference"
        # Omni takes a list of condition images; Qwen-Image-Edit edits one image.
        kw["image"] = refs if spec.pipelines["reference"] == "ZImageOmniPipeline" else refs[0]
        params["reference_mode"] = spec.pipelines["reference"]
    else:
        task = "img2img"
        kw.update(image=refs[0], strength=strength)
        params.update(reference_mode="img2img", strength=strength)
    params["reference_images"] = list(req.reference_images)
    return task


def _image_inputs(req: EditRequest, strength: float, to_gen, kw: dict, params: dict):
    """Fill the source image (and the mask) for img2img, inpaint or outpaint into kw; returns the task and, for
    an outpaint, the original to paste back at its box."""
    from PIL import Image

    if not req.image:
        raise ValueError(f"{req.mode} needs an image")
    image = _open(req.image)
    keep = None
    if req.mode == "img2img":
        task = "img2img"
        kw.update(image=to_gen(image), strength=strength)
    elif req.mode == "inpaint":
        if req.mask_region is None and req.mask_image is None:
            raise ValueError("inpaint needs mask_region or mask_image")
        image = image.resize((req.width, req.height), Image.Resampling.LANCZOS)
        if req.mask_image:
            mask = _open(req.mask_image).convert("L").resize(image.size, Image.Resampling.NEAREST)
            params["mask_image"] = req.mask_image
        else:
            mask = box_mask((req.width, req.height), req.mask_region)
        task = "inpaint"
        kw.update(image=to_gen(image), mask_image=to_gen(mask), strength=strength)
        if req.mask_region:
            params["mask_region"] = list(req.mask_region)
    else:  # outpaint
        canvas, mask, box = outpaint_canvas(image, req.width, req.height)
        task = "inpaint"
        kw.update(image=to_gen(canvas), mask_image=to_gen(mask), strength=strength)
        keep = (image.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS), box)
        params["kept_box"] = list(box)
    params["strength"] = strength
    params["source_image"] = req.image
    return task, keep


def edit_image(req: EditRequest, manager=None, source: str | None = None) -> EditResult:
    """Edit a still (img2img, inpaint, reference-guided or outpaint) with the run's diffusers image model.

    `manager` and `source` default to a new ModelManager and the default image model.
    """
    from pathlib import Path

    from tools.models import DEFAULT_IMAGE_MODEL, ModelManager

    manager = manager or ModelManager()
    source = source or DEFAULT_IMAGE_MODEL
    start = time.perf_counter()
    image, params = run_edit(manager, source, req)
    Path(req.output_path).parent.mkdir(parents=True, exist_ok=True)
    image.save(req.output_path)
    return EditResult(
        path=req.output_path,
        backend="diffusers",
        model=source,
        seed=req.seed,
        parameters=params,
        timings={"wall_s": round(time.perf_counter() - start, 3)},
    )
