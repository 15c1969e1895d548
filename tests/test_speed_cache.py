"""The compile cache folder's mega-cache file: written after a call that compiled, loaded by the next
process, never shrunk by a run that only hit the cache, and a broken file costs only the compile."""

from __future__ import annotations

import logging

import torch

from tools import speed
from tools.speed import ARTIFACTS, load_compile_artifacts, save_compile_artifacts


def test_save_writes_the_artefacts_and_keeps_a_larger_file(tmp_path, monkeypatch):
    blobs = iter([b"x" * 10, b"y" * 4, b"z" * 20])
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (next(blobs), object()))
    assert save_compile_artifacts(tmp_path) == 10
    assert (tmp_path / ARTIFACTS).read_bytes() == b"x" * 10
    # A process that only hit the cache recorded less than the file holds: the file stays.
    assert save_compile_artifacts(tmp_path) == 0
    assert (tmp_path / ARTIFACTS).read_bytes() == b"x" * 10
    assert save_compile_artifacts(tmp_path) == 20
    assert (tmp_path / ARTIFACTS).read_bytes() == b"z" * 20


def test_nothing_compiled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)
    assert save_compile_artifacts(tmp_path) == 0
    assert not (tmp_path / ARTIFACTS).exists()


def test_the_next_process_loads_the_file_and_a_broken_one_is_only_a_warning(tmp_path, monkeypatch, caplog):
    loaded: list[bytes] = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append)
    assert load_compile_artifacts(tmp_path) is False  # no file yet
    (tmp_path / ARTIFACTS).write_bytes(b"blob")
    speed.use_compile_cache(tmp_path)  # what ModelManager(compile_cache=...) does at its start
    assert loaded == [b"blob"]

    def broken(data):
        raise RuntimeError("written by another torch")

    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", broken)
    with caplog.at_level(logging.WARNING, logger="tools.speed"):
        assert load_compile_artifacts(tmp_path) is False
    assert "not used" in caplog.text and "another torch" in caplog.text


def test_the_manager_saves_only_after_a_call_that_compiled(tmp_path, monkeypatch):
    from tools import models

    saves: list = []
    graphs = iter([0, 1, 1, 3])
    monkeypatch.setattr(models, "compiled_graphs", lambda: next(graphs))
    monkeypatch.setattr(models, "save_compile_artifacts", saves.append)
    manager = models.ModelManager(device="cpu", compile=True, compile_cache=str(tmp_path))
    for _ in range(4):
        manager._keep_compiled()
    assert saves == [tmp_path.resolve(), tmp_path.resolve()]  # after the 2nd and the 4th call
    plain = models.ModelManager(device="cpu", compile_cache=str(tmp_path))
    plain._keep_compiled()  # not compiling: nothing to keep, and the counter is not read
    assert len(saves) == 2


def test_compiling_the_blocks_allows_more_than_eight_recompiles():
    """A long compiled run meets more block variants than Dynamo's default 8: --compile raises the limit."""
    import torch._dynamo.config as dynamo_config

    compiled: list[dict] = []

    class Denoiser:
        def compile_repeated_blocks(self, **kw):
            compiled.append(kw)

    class Pipe:
        transformer = Denoiser()

    # Dynamo's own patch, not monkeypatch: undoing a monkeypatch deletes the option from torch's config module
    # (every later compile in the process then fails).
    with dynamo_config.patch(recompile_limit=8):
        speed.speed_up(Pipe(), compile=False)
        assert dynamo_config.recompile_limit == 8 and not compiled
        speed.speed_up(Pipe(), compile=True)
        assert compiled == [{"fullgraph": True}]
        assert dynamo_config.recompile_limit >= speed.RECOMPILE_LIMIT
