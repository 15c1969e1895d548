"""`--compile-aot` (tools/aot_blocks.py) on the CPU with the tiny Z-Image: packages compiled once and then only
loaded, outputs equal to the eager blocks', the fallbacks (a failed compile, an unreadable package, a LoRA
adapter) and the refusals. One fixture pays the compile (about a minute on two cores); every other test reuses
its packages or makes the compile fail on purpose."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_pipelines
import torch

from tools import aot_blocks
from tools.errors import SettingsError
from tools.speed import check_speed_settings

ROOT = Path(__file__).resolve().parents[1]


def _inputs(batch: int, caption: int, seed: int):
    """The denoiser's inputs for `batch` images whose captions have `caption`, `caption + 1`, ... tokens."""
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(16, 1, 8, 8, generator=g) for _ in range(batch)]
    cap = [torch.randn(caption + i, 16, generator=g) for i in range(batch)]
    return x, torch.full((batch,), 0.5), cap


CASES = [(1, 5, 0), (3, 9, 1), (2, 40, 2)]  # batch of one, of three with padding, a longer caption


def _denoise(dit, cases=CASES) -> list[torch.Tensor]:
    with torch.no_grad():
        return [torch.stack(dit(*_inputs(*c), return_dict=False)[0]) for c in cases]


def _transformer(folder: Path):
    from diffusers import ZImageTransformer2DModel

    return ZImageTransformer2DModel.from_pretrained(folder, subfolder="transformer").eval()


class _Calls:
    """Counts the calls that ran a package (Runner.__call__), so a test can tell packaged from eager."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = aot_blocks.Runner.__call__

        def counted(runner, tensors, weights):
            self.n += 1
            return real(runner, tensors, weights)

        monkeypatch.setattr(aot_blocks.Runner, "__call__", counted)


def _no_compile(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("compile refused by the test")

    monkeypatch.setattr(aot_blocks, "compile_package", refuse)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A tiny Z-Image folder, its denoiser's eager outputs, and a cache folder whose packages were compiled
    from the first of CASES (the later cases only call them)."""
    root = tmp_path_factory.mktemp("aot")
    model = root / "zimage"
    tiny_pipelines.build("z-image", model)
    dit = _transformer(model)
    eager = _denoise(dit)
    cache = root / "cache"
    installed = aot_blocks.install(dit, cache)
    packaged = _denoise(dit)
    return {"model": model, "cache": cache, "eager": eager, "packaged": packaged, "installed": installed}


def test_packaged_blocks_match_the_eager_ones_for_every_batch_and_caption_length(compiled, monkeypatch):
    # 2 layers, 1 noise refiner, 1 context refiner: all routed; two kinds (with and without modulation)
    assert compiled["installed"] == 4
    assert sorted(p.suffix for p in (compiled["cache"] / "aot").iterdir()) == [".pt2", ".pt2"]
    for want, got in zip(compiled["eager"], compiled["packaged"], strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # and the packages really ran (not the eager fallback): a fresh model counts its packaged calls
    calls = _Calls(monkeypatch)
    _no_compile(monkeypatch)
    dit = _transformer(compiled["model"])
    aot_blocks.install(dit, compiled["cache"])
    _denoise(dit, CASES[:1])
    assert calls.n == 4  # each of the four blocks once per forward


def test_a_later_process_loads_the_packages_without_compiling_or_probing_the_cpu(compiled, tmp_path):
    torch.save(compiled["eager"], tmp_path / "eager.pt")
    script = f"""
import json, sys, torch
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
import test_aot_blocks as t
from tools import aot_blocks
def refuse(*a, **k):
    raise RuntimeError("compiled again")
aot_blocks.compile_package = refuse
import torch._inductor.cpu_vec_isa as isa  # the CPU ISA probe aoti_load_package runs: a child process per ISA
probes, pick = [], isa.pick_vec_isa
isa.pick_vec_isa = lambda: probes.append(1) or pick()
calls = []
real = aot_blocks.Runner.__call__
aot_blocks.Runner.__call__ = lambda self, a, w: calls.append(1) or real(self, a, w)
dit = t._transformer(__import__("pathlib").Path({str(compiled["model"])!r}))
aot_blocks.install(dit, {str(compiled["cache"])!r})
got = t._denoise(dit)
want = torch.load({str(tmp_path / "eager.pt")!r})
print(json.dumps({{"calls": len(calls), "probes": len(probes), "diff": max(float((a - b).abs().max()) for a, b in zip(got, want))}}))
"""
    before = sorted(p.name for p in (compiled["cache"] / "aot").iterdir())
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["calls"] == 4 * len(CASES) and out["diff"] < 1e-4, out
    assert out["probes"] == 0, out  # on torch 2.11 each ISA probed is a child that imports torch
    assert sorted(p.name for p in (compiled["cache"] / "aot").iterdir()) == before  # nothing new, no .failed


def test_a_failed_compile_is_written_down_and_the_blocks_run_eagerly(compiled, tmp_path, monkeypatch, caplog):
    calls = _Calls(monkeypatch)
    _no_compile(monkeypatch)
    dit = _transformer(compiled["model"])
    aot_blocks.install(dit, tmp_path)
    got = _denoise(dit)
    for want, have in zip(compiled["eager"], got, strict=True):
        assert torch.equal(want, have)  # the block's own forward: exactly the eager result
    failed = sorted((tmp_path / "aot").glob("*.failed"))
    assert len(failed) == 2 and "compile refused by the test" in failed[0].read_text()
    assert calls.n == 0 and not list((tmp_path / "aot").glob("*.pt2"))
    # a later process reads the marker and does not try again
    monkeypatch.setattr(
        aot_blocks, "compile_package", lambda *a, **k: pytest.fail("compiled despite .failed")
    )
    dit = _transformer(compiled["model"])
    aot_blocks.install(dit, tmp_path)
    _denoise(dit, CASES[:1])
    assert "delete it to try again" in caplog.text


def test_an_unreadable_package_is_dropped_and_never_stops_the_run(compiled, tmp_path, monkeypatch):
    shutil.copytree(compiled["cache"], tmp_path / "cache")
    for package in (tmp_path / "cache" / "aot").glob("*.pt2"):
        package.write_bytes(b"cut off")
    _no_compile(monkeypatch)  # the compile that would replace it fails too: the blocks run eagerly
    dit = _transformer(compiled["model"])
    aot_blocks.install(dit, tmp_path / "cache")
    for want, have in zip(compiled["eager"], _denoise(dit), strict=True):
        assert torch.equal(want, have)
    names = sorted(p.suffix for p in (tmp_path / "cache" / "aot").iterdir())
    assert names == [".failed", ".failed"]  # the cut-off packages are gone, the failed recompile written down


def test_a_fresh_package_that_does_not_load_is_written_down_not_compiled_again(
    compiled, tmp_path, monkeypatch
):
    made = []

    def cut_off(block, given, tensors, weights, path):  # a compile that "succeeds" with an unloadable file
        made.append(path.name)
        path.write_bytes(b"cut off")
        return path

    monkeypatch.setattr(aot_blocks, "compile_package", cut_off)
    dit = _transformer(compiled["model"])
    aot_blocks.install(dit, tmp_path)
    for want, have in zip(compiled["eager"], _denoise(dit), strict=True):
        assert torch.equal(want, have)
    assert len(made) == 2  # one compile per kind, not one after another for ever
    failed = sorted((tmp_path / "aot").glob("*.failed"))
    assert len(failed) == 2 and "load of a fresh package" in failed[0].read_text()
    assert not list((tmp_path / "aot").glob("*.pt2"))


def _static_libstdcxx_compiler(folder: Path) -> Path | None:
    """A g++ that links libstdc++ and libgcc into every shared library statically, as the H200 image's does;
    None without a static libstdc++ to link."""
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    found = subprocess.run(
        [gxx, "-print-file-name=libstdc++.a"], capture_output=True, text=True
    ).stdout.strip()
    if not Path(found).is_file():
        return None
    wrapper = folder / "g++-static-libstdcxx"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -shared "*) exec {gxx} "$@" -static-libstdc++ -static-libgcc ;; esac\n'
        f'exec {gxx} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_a_package_with_its_own_static_libstdcxx_loads_in_a_bare_process(tmp_path):
    """The H200 image's compiler links libstdc++ into each package; a bare process that opened such a package
    crashed in its constructor (std::regex on mismatched locale facets). aot_blocks.load_package shares the
    process's C++ runtime first. Built here with the same linking; torch's own loader is the control."""
    import os

    cxx = _static_libstdcxx_compiler(tmp_path)
    if cxx is None:
        pytest.skip("no g++ with a static libstdc++ to build such a package")
    package = tmp_path / "static.pt2"
    make = f"""
import torch, torch._inductor
class M(torch.nn.Module):
    def forward(self, x, w):
        return torch.relu(x @ w)
ep = torch.export.export(M(), (torch.randn(4, 8), torch.randn(8, 8)))
torch._inductor.aoti_compile_and_package(ep, package_path={str(package)!r})
"""
    env = os.environ | {"CXX": str(cxx), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = subprocess.run([sys.executable, "-c", make], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and package.is_file(), proc.stderr[-3000:]
    run = """
import sys, torch
sys.path.insert(0, {root!r})
from tools import aot_blocks
x = torch.arange(32, dtype=torch.float32).reshape(4, 8) - 16
w = torch.eye(8)
if {ours}:
    loader = aot_blocks.load_package({package!r})
else:
    loader = torch._C._aoti.AOTIModelPackageLoader({package!r}, "model", False, 1, -1)
print(float((loader.boxed_run([x, w])[0] - torch.relu(x)).abs().max()))
"""

    def load(ours: bool):
        code = run.format(root=str(ROOT), ours=ours, package=str(package))
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)

    # the setup reproduces the fault: torch's loader alone fails (bad_cast here, a segfault on GCC 13)
    assert load(ours=False).returncode != 0, (
        "torch's own loader opened the package: the test no longer shows the fault"
    )
    ours = load(ours=True)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert float(ours.stdout.strip().splitlines()[-1]) == 0.0


def test_a_lora_adapter_makes_its_blocks_run_eagerly(compiled, monkeypatch):
    from peft import LoraConfig, inject_adapter_in_model

    calls = _Calls(monkeypatch)
    _no_compile(monkeypatch)
    dit = _transformer(compiled["model"])
    aot_blocks.install(dit, compiled["cache"])
    # peft's own injection, as diffusers' load_lora_weights does; lora_B starts at zero, so set it
    inject_adapter_in_model(LoraConfig(r=2, target_modules=["to_q"], init_lora_weights=False), dit)
    before = sorted(p.name for p in (compiled["cache"] / "aot").iterdir())
    got = _denoise(dit, CASES[:1])[0]
    assert calls.n == 0  # every block has an adapter now: a package would have baked its scale in
    assert not torch.allclose(got, compiled["eager"][0])  # the adapter is applied
    assert sorted(p.name for p in (compiled["cache"] / "aot").iterdir()) == before


def test_model_manager_renders_through_the_packages(compiled, monkeypatch):
    from tools.models import ManagerConfig, ModelManager

    calls = _Calls(monkeypatch)
    _no_compile(monkeypatch)
    config = ManagerConfig(compile_aot=True, compile_cache=str(compiled["cache"]))
    manager = ModelManager.from_config(config)
    assert manager.aot_folder == compiled["cache"].resolve()
    pipe = manager.get(str(compiled["model"]))
    assert all(getattr(b, "_aot_installed", False) for b in pipe.transformer.layers)
    kwargs = dict(height=64, width=64, num_inference_steps=2, output_type="np")
    got = pipe("a red cup", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert calls.n == 4 * 2  # four blocks, two steps
    plain = ModelManager(device="cpu").get(str(compiled["model"]))
    want = plain("a red cup", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert abs(got - want).max() < 1e-3


def test_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert aot_blocks.default_folder() == tmp_path / "creative-director" / "compile"


def test_a_denoiser_without_known_blocks_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="--compile-aot compiles Z-Image's transformer blocks; Linear"):
        aot_blocks.install(torch.nn.Linear(2, 2), tmp_path)


@pytest.mark.parametrize(
    "clash, named",
    [
        ({"compile": True}, "--compile"),
        ({"quantize": "fp8"}, "--quantize fp8"),
        ({"lora": True}, "--lora"),
        ({"compile": True, "lora": True}, "--compile, --lora: leave those out"),
    ],
)
def test_flags_it_does_not_combine_with_are_refused_by_name(clash, named):
    with pytest.raises(SettingsError, match=f"does not combine with {named}"):
        check_speed_settings("cpu", "auto", 4, False, compile_aot=True, **clash)
    check_speed_settings("cpu", "auto", 4, False, compile_aot=False, **clash)  # alone each is fine


def test_the_command_line_refuses_compile_aot_with_compile(tmp_path):
    cmd = [sys.executable, str(ROOT / "main.py"), "run", "tea", "--compile-aot", "--compile"]
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--compile-aot" in proc.stderr and "does not combine with --compile" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_the_flag_is_in_the_help():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "run", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--compile-aot" in proc.stdout and "AOTInductor packages" in proc.stdout
