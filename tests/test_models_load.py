"""The fast loader (tools/model_load.py): the torch components of a saved pipeline loaded each by its own class on
its own thread give the same pipeline, weight for weight and image for image, as diffusers' own loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tiny_pipelines

from tools.model_load import load_pipeline, local_folder, module_components, weight_bytes
from tools.models import ModelManager


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("load") / "z-image-turbo")


def _state(pipe) -> dict:
    import torch

    return {
        f"{name}.{k}": v
        for name, c in pipe.components.items()
        if isinstance(c, torch.nn.Module)
        for k, v in c.state_dict().items()
    }


def _image(pipe) -> np.ndarray:
    import torch

    out = pipe(
        prompt="a paper boat on a rainy street",
        width=32,
        height=32,
        num_inference_steps=2,
        guidance_scale=0.0,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="np",
    )
    return out.images[0]


def test_components_are_the_torch_modules_only(zimage):
    found = module_components(Path(zimage))
    assert set(found) == {"transformer", "text_encoder", "vae"}  # not the tokenizer, not the scheduler
    assert found["transformer"].__name__ == "ZImageTransformer2DModel"
    files = sum(f.stat().st_size for f in Path(zimage).rglob("*.safetensors"))
    assert weight_bytes(Path(zimage)) == files > 0


def test_parallel_load_equals_the_library_load(zimage):
    import torch
    from diffusers import DiffusionPipeline

    reference = DiffusionPipeline.from_pretrained(zimage, dtype=torch.float32)
    pipe, report = load_pipeline(Path(zimage), torch.float32, "cpu")
    assert type(pipe) is type(reference)
    assert set(report.components) == {"transformer", "text_encoder", "vae"} and report.parallel
    ref, got = _state(reference), _state(pipe)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    np.testing.assert_array_equal(_image(pipe), _image(reference))
    seq, seq_report = load_pipeline(Path(zimage), torch.float32, "cpu", parallel=False)
    assert not seq_report.parallel
    np.testing.assert_array_equal(_image(seq), _image(reference))


def test_weight_files_are_read_ahead_in_load_order(zimage, monkeypatch):
    """Every weight file of the torch components is handed to the read-ahead threads, in the order the
    components load; parallel=False reads nothing ahead."""
    import torch

    import tools.model_load as model_load

    asked: list[list[Path]] = []
    real = model_load.read_ahead

    def spy(files, **kw):
        asked.append(list(files))
        pool = real(files, **kw)
        pool.shutdown(wait=True)
        return pool

    monkeypatch.setattr(model_load, "read_ahead", spy)
    _, report = load_pipeline(Path(zimage), torch.float32, "cpu")
    order = list(report.components)
    weights = sorted(Path(zimage).rglob("*.safetensors"), key=lambda f: order.index(f.parent.name))
    assert asked == [weights]
    asked.clear()
    load_pipeline(Path(zimage), torch.float32, "cpu", parallel=False)
    assert asked == []


def test_read_ahead_reads_every_chunk(tmp_path, monkeypatch):
    data = tmp_path / "w.safetensors"
    data.write_bytes(bytes(range(256)) * 10)  # 2,560 bytes: 11 chunks of 250
    seen: list[int] = []
    real_open = Path.open

    def spy_open(self, *a, **kw):
        f = real_open(self, *a, **kw)
        real_seek = f.seek

        def seek(pos, *rest):
            seen.append(pos)
            return real_seek(pos, *rest)

        return _Wrapped(f, seek)

    monkeypatch.setattr(Path, "open", spy_open)
    from tools.model_load import read_ahead

    read_ahead([data], workers=3, chunk=250).shutdown(wait=True)
    assert sorted(seen) == list(range(0, 2560, 250))


class _Wrapped:
    def __init__(self, f, seek):
        self._f, self.seek = f, seek

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def read(self, n):
        return self._f.read(n)


def test_manager_loads_a_folder_once_through_the_fast_loader(zimage):
    manager = ModelManager(device="cpu")
    pipe = manager.get(zimage)
    assert manager.get(zimage) is pipe
    assert manager.load_counts[zimage] == 1
    assert len(manager.load_reports) == 1 and manager.load_reports[0].folder == zimage
    assert local_folder(zimage) is not None
    assert local_folder("no-such-org/no-such-model") is None


def test_cold_benchmark_saves_and_loads_a_folder(tmp_path):
    """evals/gpu_cold.py on tiny configs: the saved folder is a pipeline the manager loads and renders with."""
    import json

    from evals import gpu_cold

    folder = tmp_path / "Z-Image-Turbo"
    assert gpu_cold.main(["save", "--tiny", "--folder", str(folder), "--out", str(tmp_path / "s.json")]) == 0
    assert (folder / "model_index.json").is_file()
    assert gpu_cold.main(["load", "--tiny", "--folder", str(folder), "--out", str(tmp_path / "l.json")]) == 0
    row = json.loads((tmp_path / "l.json").read_text())
    assert set(row["components_s"]) == {"transformer", "text_encoder", "vae"}
    assert row["first_render_s"] > 0 and row["device"] == "cpu"
    assert (
        gpu_cold.main(["stage", "--tiny", "--folder", str(folder), "--out", str(tmp_path / "st.json")]) == 0
    )
    row = json.loads(
        (tmp_path / "st.json").read_text()
    )  # built around the staged tensors, equal to the library's
    assert set(row["staged"]) == {"transformer", "text_encoder", "vae"}
    assert row["tensors_compared"] > 0 and row["tensors_differ"] == []


def test_diffusers_reads_a_components_shards_on_threads():
    """tools/models.py imports the loader before diffusers, and the loader turns on diffusers' parallel shard
    loading (read once, at diffusers' import); a user's HF_ENABLE_PARALLEL_LOADING=no still wins. In a fresh
    interpreter, so no earlier import in this test process decides it."""
    import os
    import subprocess
    import sys

    probe = "import tools.models, diffusers.models.modeling_utils as m; print(m.HF_ENABLE_PARALLEL_LOADING)"
    env = {k: v for k, v in os.environ.items() if k != "HF_ENABLE_PARALLEL_LOADING"}
    root = str(Path(__file__).resolve().parents[1])
    for setting, expected in ((None, "True"), ("no", "False")):
        run_env = env if setting is None else {**env, "HF_ENABLE_PARALLEL_LOADING": setting}
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=root, env=run_env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip().splitlines()[-1] == expected, out.stderr[-500:]


RACE = """
import importlib.abc, sys, threading, time
started = threading.Event()

class Slow(importlib.abc.MetaPathFinder):  # holds the other thread inside diffusers' own import for a second
    def find_spec(self, name, path, target=None):
        if name == "diffusers.utils" and threading.current_thread().name == "importer":
            started.set()
            time.sleep(1.0)
        return None

sys.meta_path.insert(0, Slow())
from tools.models import ModelManager
importer = threading.Thread(target=__import__, args=("diffusers",), name="importer")
importer.start()
if not started.wait(60):
    sys.exit("diffusers.utils was never imported: the race was not set up")
print(type(ModelManager(device="cpu").get(sys.argv[1], "img2img")).__name__)
"""


def test_a_task_pipeline_is_found_while_another_thread_imports_diffusers(zimage):
    """A preload imports diffusers on its thread while a shot asks for an edit pipeline: the manager finds the
    pipeline class in diffusers' lazy module, not in the module object from before it replaced itself (which
    an `import diffusers` statement returns while the import is under way, and which has no pipelines)."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", RACE, zimage], cwd=root, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip().splitlines()[-1] == "ZImageImg2ImgPipeline"
