"""The backends a run renders with: its image backend, its video backend and the ModelManager they share.

A run owns one `Backends`, built from its settings when the director starts it (`RunSettings.backends()`), so
two runs in one process with other model settings never share a manager by accident. A long-lived server can
keep one warm and hand it to every run whose model settings match (`fits`, `RunSettings.attach`): loaded models
then stay on the GPU between films.

The ModelManager is made only when a diffusers backend is chosen: a draft run never imports torch.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.settings import RunSettings
    from tools.animate import VideoBackend
    from tools.generate_image import ImageBackend
    from tools.models import ModelManager

# The settings that decide which backends a run gets and how their models load. Two runs that agree on all of
# them can share one Backends (and its loaded models); any other setting is free to differ.
MODEL_FIELDS = (
    "image_backend",
    "image_model",
    "image_server",
    "image_server_model",
    "image_server_timeout",
    "image_server_retries",
    "video_backend",
    "video_model",
    "lora",
    "gpu_memory",
    "compile",
    "quantize",
    "cuda_graphs",
    "compile_aot",
    "compile_cache",
    "render_batch",
    "attention",
    "num_inference_steps",
)


def model_key(settings: RunSettings) -> str:
    return settings.model_dump_json(include=set(MODEL_FIELDS))


class Backends:
    """The image and video backends of a run, why each was chosen, and the ModelManager behind them."""

    def __init__(
        self,
        key: str,
        image: ImageBackend,
        image_why: str,
        video: VideoBackend,
        video_why: str,
        manager: ModelManager | None,
    ):
        self.key = key
        self.image, self.image_why = image, image_why
        self.video, self.video_why = video, video_why
        self.manager = manager

    @classmethod
    def for_settings(cls, settings: RunSettings, manager: ModelManager | None = None) -> Backends:
        """Choose the backends for `settings`; the diffusers ones share `manager`, or one new ModelManager."""
        from tools.animate import select_video_backend
        from tools.generate_image import select_image_backend
        from tools.models import ManagerConfig, ModelManager

        shared = [manager]
        lock = threading.Lock()

        def the_manager() -> ModelManager:
            with lock:
                if shared[0] is None:
                    shared[0] = ModelManager.from_config(settings.config(ManagerConfig))
                return shared[0]

        image, image_why = select_image_backend(settings, the_manager)
        video, video_why = select_video_backend(settings, the_manager)
        return cls(model_key(settings), image, image_why, video, video_why, shared[0])

    def fits(self, settings: RunSettings) -> bool:
        """True when `settings` would choose these same backends with the same model settings."""
        return model_key(settings) == self.key

    def __getitem__(self, name: str):
        """`backends["image"]`, `backends["video_why"]`: the dict-style access the nodes use."""
        if name not in ("image", "image_why", "video", "video_why", "manager"):
            raise KeyError(name)
        return getattr(self, name)
