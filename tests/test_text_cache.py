"""Cached prompt embeddings (tools/text_cache.py) on the tiny Z-Image pipeline: a repeated prompt skips the text
encoder and gives the very image an uncached call gives; a new prompt, a new maximum length or a LoRA change
reads the encoder again; a batch encodes only its new texts, in one call."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_pipelines

from tools.models import ModelManager
from tools.text_cache import TextCache

KW = dict(width=64, height=64, num_inference_steps=2, guidance_scale=0.0)


@pytest.fixture(scope="module")
def z_image(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny") / "z-image-turbo")


class EncoderSpy:
    """Counts the text encoder's forward calls and the prompts (rows) it read, around the real module."""

    def __init__(self, pipe, monkeypatch):
        self.calls = 0
        self.rows = 0
        encoder = pipe.text_encoder
        real = encoder.forward

        def forward(*args, **kwargs):
            self.calls += 1
            self.rows += kwargs["input_ids"].shape[0]
            return real(*args, **kwargs)

        monkeypatch.setattr(encoder, "forward", forward)


def _render(manager, source, prompt, seed, **kw):
    out = manager.run(source, "t2i", prompt=prompt, generator=manager.generator(seed), **{**KW, **kw})
    return np.asarray(out.images[0].convert("RGB"))


def test_a_repeated_prompt_skips_the_encoder_and_gives_the_same_image(z_image, monkeypatch):
    cached = ModelManager(device="cpu")
    plain = ModelManager(device="cpu", text_cache_size=0)
    spy = EncoderSpy(cached.get(z_image), monkeypatch)
    prompt = "a red cup on a walnut desk, soft window light"

    first = _render(cached, z_image, prompt, 7)
    assert spy.calls == 1
    again = _render(cached, z_image, prompt, 7)
    other_seed = _render(cached, z_image, prompt, 8)
    assert spy.calls == 1, "the second and third call with the same prompt must not run the text encoder"
    assert cached.text_cache.hits == 2 and cached.text_cache.misses == 1

    uncached = _render(plain, z_image, prompt, 7)
    assert np.array_equal(again, uncached), (
        "a cached embedding must give the uncached call's image bit for bit"
    )
    assert np.array_equal(first, uncached)
    assert not np.array_equal(other_seed, uncached)  # the seed still decides the picture

    _render(cached, z_image, "a blue kettle, close-up", 7)
    assert spy.calls == 2, "a different prompt must miss and be encoded"
    _render(cached, z_image, prompt, 7, max_sequence_length=64)
    assert spy.calls == 3, "another maximum length is another embedding"


def test_a_batch_encodes_only_its_new_prompts_in_one_call(z_image, monkeypatch):
    manager = ModelManager(device="cpu", render_batch=4)
    spy = EncoderSpy(manager.get(z_image), monkeypatch)
    manager.queue.render(z_image, "shot one", 1, **KW)
    assert (spy.calls, spy.rows) == (1, 1)
    with manager.queue._ready:  # three requests in one call, as parallel shot branches send them
        futures = [
            manager.queue.submit(z_image, p, i, **KW)
            for i, p in enumerate(["shot one", "shot two", "shot one"])
        ]
    done = [f.result(timeout=120) for f in futures]
    assert [b.size for b in manager.queue.batches] == [1, 3]
    assert (spy.calls, spy.rows) == (2, 2), "only 'shot two' is new: one encoder call of one row"
    alone = manager.queue.render(z_image, "shot two", 1, **KW)
    assert spy.calls == 2
    together = np.asarray(done[1].image.convert("RGB"), dtype=np.int16)
    assert np.abs(together - np.asarray(alone.image.convert("RGB"), dtype=np.int16)).max() <= 2


def test_guidance_reads_the_negative_prompt_through_the_cache(z_image, monkeypatch):
    """With guidance on, the pipeline needs a negative embedding too: the empty text is cached like any other,
    and the image equals the uncached call's."""
    cached = ModelManager(device="cpu")
    plain = ModelManager(device="cpu", text_cache_size=0)
    spy = EncoderSpy(cached.get(z_image), monkeypatch)
    kw = dict(guidance_scale=2.0, negative_prompt="blurry, text")
    a = _render(cached, z_image, "a lamp", 3, **kw)
    b = _render(cached, z_image, "a lamp", 3, **kw)
    assert spy.calls == 2  # the prompt, then the negative prompt; nothing on the second call
    assert np.array_equal(a, b)
    assert np.array_equal(b, _render(plain, z_image, "a lamp", 3, **kw))


def test_lru_keeps_the_recent_texts_and_a_lora_change_forgets_the_model(z_image, monkeypatch):
    manager = ModelManager(device="cpu", text_cache_size=2)
    pipe = manager.get(z_image)
    spy = EncoderSpy(pipe, monkeypatch)
    for prompt in ["one", "two", "one", "three"]:  # "two" is now the least recently used: dropped
        _render(manager, z_image, prompt, 1)
    assert len(manager.text_cache) == 2 and spy.calls == 3
    _render(manager, z_image, "one", 1)
    assert spy.calls == 3
    _render(manager, z_image, "two", 1)
    assert spy.calls == 4
    monkeypatch.setattr(pipe, "set_adapters", lambda names, weights: None)  # no adapters on the tiny model
    manager.set_lora_weights(z_image, {"style0": 0.5})
    assert len(manager.text_cache) == 0, "a LoRA reweighting may change the text encoder: forget the model"
    _render(manager, z_image, "one", 1)
    assert spy.calls == 5


def test_other_pipelines_and_given_embeddings_pass_through():
    cache = TextCache()

    class Other:
        pass

    kwargs = {"prompt": "a cup"}
    assert cache.prepare("m", Other(), kwargs) is kwargs
    with pytest.raises(ValueError, match="text cache size"):
        TextCache(-1)
