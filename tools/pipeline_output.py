"""Images out of a diffusers pipeline as tensors, made PIL on the device.

ModelManager asks a still-image pipeline for `output_type="pt"` and converts here: the arithmetic runs where
the tensors are and only the bytes come to the host. A 1024² image's conversion by the pipeline's own "pil"
output took 13-29 ms on the host on an H200 machine, on the render thread, with the GIL held.
"""

from __future__ import annotations


def image_pipeline(pipe) -> bool:
    """A still-image pipeline (its output is `.images` from a VaeImageProcessor), not a video one."""
    return hasattr(pipe, "image_processor") and not hasattr(pipe, "video_processor")


def as_pil(out):
    """The pipeline output `out` with its `.images` tensors made PIL images (`tensors_to_pil`)."""
    out.images = tensors_to_pil(out.images)
    return out


def tensors_to_pil(images) -> list:
    """PIL images from a pipeline's `output_type="pt"` images ((B, C, H, W) in [0, 1]), exactly as its "pil"
    output makes them (diffusers' pt_to_numpy and numpy_to_pil: float32, x 255, round half to even, uint8),
    with the arithmetic on the tensors' device and only the bytes copied to the host."""
    import torch
    from PIL import Image

    if images.ndim == 3:
        images = images[None]
    data = (images.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if data.shape[-1] == 1:
        return [Image.fromarray(a.squeeze(-1), mode="L") for a in data]
    return [Image.fromarray(a) for a in data]
