"""The render queue: requests from parallel shots that share a model, size and steps go through one pipeline
call; each result is the image its own seed gives alone; requests that cannot share run alone, oldest first."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import tiny_pipelines

from tools.models import ModelManager
from tools.render_queue import RenderCost, RenderQueue


@pytest.fixture(scope="module")
def z_image(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny") / "z-image-turbo")


class RecordingManager:
    """Stands in for the ModelManager: records each call's prompts and seeds, returns one tag per prompt."""

    def __init__(self):
        self.calls: list[dict] = []

    def generator(self, seed):
        return SimpleNamespace(seed=seed)

    def call(self, source, task, kwargs, asked, share=1):
        prompts = kwargs["prompt"] if isinstance(kwargs["prompt"], list) else [kwargs["prompt"]]
        gens = kwargs["generator"] if isinstance(kwargs["generator"], list) else [kwargs["generator"]]
        self.calls.append({"source": source, "prompts": prompts, "seeds": [g.seed for g in gens], **kwargs})
        images = [f"{p}|{g.seed}|{kwargs['width']}x{kwargs['height']}" for p, g in zip(prompts, gens)]
        return SimpleNamespace(images=images), RenderCost(0.0, 0.0, 0.01, share)


def test_batches_group_by_size_steps_and_model_oldest_first():
    manager = RecordingManager()
    queue = RenderQueue(manager, max_batch=2, gather_s=0.01)
    asks = [
        ("m", "a1", 1, 64, 2),
        ("m", "a2", 2, 64, 2),
        ("m", "b1", 3, 80, 2),  # another size
        ("m", "a3", 4, 64, 2),
        ("m", "c1", 5, 64, 3),  # other steps
        ("m", "b2", 6, 80, 2),
    ]
    with queue._ready:  # hold the worker until every request is queued, as eight branches fanned out at once
        futures = [
            queue.submit(src, p, seed, width=w, height=w, num_inference_steps=n)
            for src, p, seed, w, n in asks
        ]
    results = [f.result(timeout=10) for f in futures]
    assert [c["prompts"] for c in manager.calls] == [["a1", "a2"], ["b1", "b2"], ["a3"], ["c1"]]
    assert [c["seeds"] for c in manager.calls] == [[1, 2], [3, 6], [4], [5]]
    # Each future gets its own image back, whatever batch it rode in.
    assert [r.image for r in results] == [f"{p}|{seed}|{w}x{w}" for _, p, seed, w, _ in asks]
    assert [r.cost.batch for r in results] == [2, 2, 2, 1, 1, 2]
    assert [b.size for b in queue.batches] == [2, 2, 1, 1]
    queue.close()


def test_unbatchable_requests_run_alone_and_errors_reach_every_waiter():
    manager = RecordingManager()
    queue = RenderQueue(manager, max_batch=4, gather_s=0.01)
    with queue._ready:
        a = queue.submit("m", "edit one", 1, width=64, height=64, image=object())
        b = queue.submit("m", "edit two", 2, width=64, height=64, image=object())
    a.result(timeout=10), b.result(timeout=10)
    assert [c["prompts"] for c in manager.calls] == [["edit one"], ["edit two"]]

    def broken(*args, **kwargs):
        raise RuntimeError("the pipeline broke")

    manager.call = broken
    with queue._ready:
        futures = [queue.submit("m", f"p{i}", i, width=64, height=64) for i in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="the pipeline broke"):
            f.result(timeout=10)
    queue.close()
    with pytest.raises(RuntimeError, match="closed"):
        queue.submit("m", "late", 1, width=64, height=64)


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_batched_takes_are_the_images_their_seeds_give_alone(z_image):
    """Three shots of one size in one call: each result is its own prompt and seed's image (within rounding),
    not another shot's; the same requests one by one give the same pictures."""
    manager = ModelManager(device="cpu", render_batch=4)
    asks = [("a red cup on a desk", 11), ("a blue kettle, close-up", 12), ("a long street at night", 13)]
    kw = dict(width=64, height=64, num_inference_steps=2, guidance_scale=0.0)
    with manager.queue._ready:
        futures = [manager.queue.submit(z_image, p, seed, **kw) for p, seed in asks]
    batched = [f.result(timeout=120) for f in futures]
    assert [b.size for b in manager.queue.batches] == [3]
    alone = [manager.queue.render(z_image, p, seed, **kw) for p, seed in asks]
    assert [b.size for b in manager.queue.batches] == [3, 1, 1, 1]
    for together, single in zip(batched, alone):
        assert np.abs(_pixels(together.image) - _pixels(single.image)).max() <= 2
    # The three pictures differ, so the comparison above would catch results handed to the wrong shot.
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(_pixels(alone[i].image) - _pixels(alone[j].image)).mean() > 5
    assert manager.load_counts[z_image] == 1


def test_parallel_branches_share_one_call(z_image):
    """Shot branches on their own threads, as the graph runs them: their renders meet in one batch."""
    manager = ModelManager(device="cpu", render_batch=4)
    manager.queue.gather_s = 0.5
    start = threading.Barrier(4)

    def branch(i):
        start.wait()
        return manager.queue.render(z_image, f"shot {i}", i, width=64, height=64, num_inference_steps=2)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(branch, range(4)))
    assert [b.size for b in manager.queue.batches] == [4]
    assert all(r.cost.batch == 4 for r in results)


class CountingLock:
    """A device lock (as a server's cross-process GPU lock): counts entries, knows whether it is held."""

    def __init__(self):
        self.entered = 0
        self.held = False
        self._lock = threading.Lock()

    def __enter__(self):
        self._lock.acquire()
        self.entered += 1
        self.held = True
        return self

    def __exit__(self, *exc):
        self.held = False
        self._lock.release()


def test_device_lock_is_held_per_pipeline_call_and_keeps_batching(z_image, monkeypatch):
    """The manager's device lock wraps each pipeline call, not each request: four parallel branches still meet
    in one batch, the lock is entered once for it, held while the pipeline runs, and free afterwards."""
    lock = CountingLock()
    manager = ModelManager(device="cpu", render_batch=4, device_lock=lock)
    seen_held: list[bool] = []
    pipe = manager.get(z_image)
    real_call = type(pipe).__call__

    def spy(self, *a, **kw):
        seen_held.append(lock.held)
        return real_call(self, *a, **kw)

    manager.queue.gather_s = 0.5
    start = threading.Barrier(4)

    def branch(i):
        start.wait()
        return manager.queue.render(z_image, f"shot {i}", i, width=64, height=64, num_inference_steps=2)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(branch, range(4)))
    assert [b.size for b in manager.queue.batches] == [4]
    assert lock.entered == 1 and seen_held == [True] and not lock.held


def test_a_warm_worker_puts_its_gpu_lock_inside_the_model_manager(z_image, tmp_path):
    """The service's worker hands its cross-process GPU lock to the diffusers backend's manager instead of
    wrapping `generate` (which would let one shot at a time reach the render queue, so nothing would batch);
    a backend without a manager (the draft panels) is still wrapped."""
    from agent.settings import RunSettings
    from agent.worker import Worker

    worker = Worker(tmp_path / "state")
    settings = worker.warm(
        RunSettings(run_dir=str(tmp_path / "run"), image_model=z_image, video_backend="motion")
    )
    image = settings.backends().image
    assert image.manager.device_lock is worker.gpu
    assert not hasattr(image.generate, "__wrapped__"), "generate must reach the render queue unwrapped"
    draft = worker.warm(
        RunSettings(run_dir=str(tmp_path / "d"), image_backend="draft", video_backend="motion")
    )
    assert hasattr(draft.backends().image.generate, "__wrapped__")


def test_first_batch_takes_one_request_then_the_rest_batch():
    """A fresh process's queue renders its first request alone (the first image after one render, not four),
    then batches the others as before."""
    manager = RecordingManager()
    queue = RenderQueue(manager, max_batch=4, gather_s=0.01)
    queue.first_batch = 1
    with queue._ready:
        futures = [queue.submit("m", f"s{i}", i, width=64, height=64) for i in range(8)]
    assert [f.result(timeout=10).image.split("|")[0] for f in futures] == [f"s{i}" for i in range(8)]
    assert [c["prompts"] for c in manager.calls] == [["s0"], ["s1", "s2", "s3", "s4"], ["s5", "s6", "s7"]]
    queue.close()


def test_preload_loads_on_a_thread_and_the_first_render_waits_for_it(z_image):
    """`preload` loads the model while the caller goes on; the first render uses that load (one load in all)
    and, without --compile, runs alone before the rest batch."""
    manager = ModelManager(device="cpu", render_batch=4)
    thread = manager.preload(z_image)
    assert manager.queue.first_batch == 1
    manager.queue.gather_s = 0.5
    kw = dict(width=64, height=64, num_inference_steps=2)
    with manager.queue._ready:
        futures = [manager.queue.submit(z_image, f"shot {i}", i, **kw) for i in range(3)]
    [f.result(timeout=120) for f in futures]
    thread.join(timeout=120)
    assert manager.load_counts[z_image] == 1
    assert [b.size for b in manager.queue.batches] == [1, 2]
    compiled = ModelManager(device="cpu", compile=True)

    def broken(source, task="t2i"):
        raise OSError(f"{source}: no such model")

    compiled.get = broken
    compiled.preload("no/such-model").join(timeout=30)  # a failed preload only logs; the render reports it
    assert compiled.queue.first_batch is None  # batch 1 then 4 would compile two graphs


def test_the_switch_interval_is_short_during_each_call_and_restored_after():
    """While the queue's thread launches a batch's kernels the interpreter hands the GIL over every
    RENDER_SWITCH_S (the shot branches and clip encoders would otherwise hold it for 5 ms at a time); after the
    call the interval from before comes back. None leaves it alone."""
    import sys

    from tools.render_queue import RENDER_SWITCH_S

    seen: list[float] = []
    manager = RecordingManager()
    real = manager.call

    def call(*args, **kwargs):
        seen.append(sys.getswitchinterval())
        return real(*args, **kwargs)

    manager.call = call
    before = sys.getswitchinterval()
    assert before > RENDER_SWITCH_S  # Python's default, 5 ms
    queue = RenderQueue(manager, max_batch=1, gather_s=0.0)
    queue.render("m", "a", 1, width=64, height=64)
    plain = RenderQueue(manager, max_batch=1, gather_s=0.0, switch_interval_s=None)
    plain.render("m", "b", 2, width=64, height=64)
    assert seen == [RENDER_SWITCH_S, before]
    assert sys.getswitchinterval() == before
    queue.close(), plain.close()


def test_images_are_made_pil_from_tensors_exactly_as_the_library_does(z_image):
    """The manager asks an image pipeline for tensors and makes the PIL images itself (on the device, where one
    is): byte for byte what the pipeline's own "pil" output gives, for a whole call and for values on the
    rounding boundaries; a caller's own output_type is left alone."""
    import torch
    from diffusers.image_processor import VaeImageProcessor

    from tools.pipeline_output import tensors_to_pil

    x = torch.rand(2, 3, 8, 8, dtype=torch.bfloat16)
    x[0, 0, 0, :4] = torch.tensor([0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0])  # halves: round to even
    library = VaeImageProcessor().postprocess(x * 2 - 1, output_type="pil")  # it denormalises [-1, 1] first
    denorm = VaeImageProcessor().postprocess(x * 2 - 1, output_type="pt")
    ours = tensors_to_pil(denorm)
    assert [np.asarray(a).tobytes() for a in ours] == [np.asarray(b).tobytes() for b in library]

    manager = ModelManager(device="cpu")
    kw = dict(prompt="a red cup", height=64, width=64, num_inference_steps=2, guidance_scale=0.0)
    mine = manager.run(z_image, "t2i", generator=torch.Generator().manual_seed(3), **kw).images[0]
    pipe = manager.get(z_image)
    theirs = pipe(generator=torch.Generator().manual_seed(3), **kw).images[0]
    assert np.asarray(mine).tobytes() == np.asarray(theirs).tobytes()
    latents = manager.run(z_image, "t2i", output_type="latent", generator=manager.generator(3), **kw).images
    assert isinstance(latents, torch.Tensor) and latents.ndim == 4
