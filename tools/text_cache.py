"""Cached prompt embeddings: a prompt the text encoder has read once is not read again.

A re-shoot with a new seed, a second take, or a catalogue that renders one prompt for several platforms
asks the same text again; on an H200 the Qwen3-4B text encoder costs about 60 ms of a 0.8 s Z-Image image.
`TextCache` keeps the embeddings of the most recently used texts (an LRU) and rewrites a pipeline call's
`prompt` / `negative_prompt` into diffusers' `prompt_embeds` / `negative_prompt_embeds`, encoding only the
texts it has not seen, all of them in one text-encoder call.

Z-Image's pipelines take `prompt_embeds` as a list with one tensor per prompt (its tokens after the padding
mask), and each text is padded to `max_sequence_length` before the encoder, so a text's embedding does not
depend on the other prompts of its batch: one entry per text serves every batch it rides in, as a positive
or a negative prompt alike. The key holds everything the embedding depends on: the model, the text, the
maximum length, the device and dtype of the encoder. A LoRA may change the text encoder, so loading or
reweighting one drops the model's entries (`forget`).

torch is imported inside the functions: importing this module loads nothing heavy.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from typing import Any

# Pipelines whose encode_prompt is Z-Image's (a chat template over Qwen3, one tensor per prompt) and whose
# __call__ skips the encoder when given `prompt_embeds` with `prompt=None`. Others (Omni reads images with
# the text, Qwen-Image pads to a mask) are called with their text as before.
CACHED_PIPELINES = frozenset({"ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"})


def _default(pipe, name: str, fallback: Any) -> Any:
    """The default of `name` in the pipeline's __call__ (guidance and maximum length differ per class)."""
    param = inspect.signature(type(pipe).__call__).parameters.get(name)
    return fallback if param is None or param.default is inspect.Parameter.empty else param.default


class TextCache:
    """The embeddings of the `size` most recently used prompt texts, per model. Thread-safe.

    `hits` and `misses` count texts (not calls), and `encoder_calls` the text-encoder calls made, so a test
    or a benchmark can see what the cache saved."""

    def __init__(self, size: int = 64):
        if size < 0:
            raise ValueError(f"text cache size must be 0 (off) or more, got {size}")
        self.size = size
        self._entries: OrderedDict[tuple, Any] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.encoder_calls = 0

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, source: str) -> None:
        """Drop every entry of model `source` (its text encoder changed: a LoRA was loaded or reweighted)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == source]:
                del self._entries[key]

    def prepare(self, source: str, pipe, kwargs: dict) -> dict:
        """The call's keyword arguments with the texts replaced by their embeddings (cached or encoded now);
        `kwargs` itself as it is when the pipeline is not one of CACHED_PIPELINES, the cache is off, or the
        caller already passed embeddings."""
        if (
            not self.size
            or type(pipe).__name__ not in CACHED_PIPELINES
            or kwargs.get("prompt") is None
            or "prompt_embeds" in kwargs
        ):
            return kwargs
        out = dict(kwargs)
        prompts = out.pop("prompt")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        negative = out.pop("negative_prompt", None)
        max_len = out.get("max_sequence_length", _default(pipe, "max_sequence_length", 512))
        out["prompt_embeds"] = self.embeddings(source, pipe, prompts, max_len)
        # Mirrors the pipelines' do_classifier_free_guidance (guidance_scale > 0): only then is a negative read,
        # "" for each prompt when none is given.
        if out.get("guidance_scale", _default(pipe, "guidance_scale", 5.0)) > 0:
            negative = (
                [negative] * len(prompts) if isinstance(negative, str) or negative is None else negative
            )
            out["negative_prompt_embeds"] = self.embeddings(
                source, pipe, [n or "" for n in negative], max_len
            )
        return out

    def embeddings(self, source: str, pipe, texts: list[str], max_len: int) -> list:
        """One embedding tensor per text: those seen come from the cache, the rest from one encoder call."""
        import torch

        device = pipe._execution_device
        encoder = pipe.text_encoder
        where = (str(device), str(encoder.dtype))
        keys = [(source, text, max_len, *where) for text in texts]
        with self._lock:
            found = {k: self._entries[k] for k in keys if k in self._entries}
            for k in found:
                self._entries.move_to_end(k)
            todo = list(dict.fromkeys(k for k in keys if k not in found))  # a text twice in a batch: once
            self.hits += sum(k in found for k in keys)
            self.misses += len(todo)
        if todo:
            with torch.no_grad():
                # encode_prompt writes the chat template into the list it is given: hand it a copy.
                fresh, _ = pipe.encode_prompt(
                    prompt=[k[1] for k in todo],
                    device=device,
                    do_classifier_free_guidance=False,
                    max_sequence_length=max_len,
                )
            self.encoder_calls += 1
            with self._lock:
                for k, tensor in zip(todo, fresh, strict=True):
                    found[k] = tensor
                    self._entries[k] = tensor
                    self._entries.move_to_end(k)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return [found[k] for k in keys]
