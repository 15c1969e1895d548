"""The catalogue keeps the render queue full: a render stage ahead of the CPU stage (agent/catalogue_engine.py).

With the tiny diffusers model on a CPU: the renders of batch k+1 start before any of batch k's units has been
critiqued and written, the records are those of the one-at-a-time run, and a killed run given again makes
nothing twice."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import agent.catalogue as catalogue_mod
from agent.catalogue import CatalogueOptions, run_catalogue
from agent.catalogue_engine import LocalEngine, Stages
from agent.catalogue_unit import finish_unit, start_unit
from agent.settings import RunSettings

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "catalogue"
# What may differ between two runs of the same units: when and how long, never what.
TIMES = {"made_at", "wall_s", "gpu_s"}


@pytest.fixture(scope="module")
def tiny_z_image(tmp_path_factory):
    import tiny_pipelines

    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny-stages") / "z-image-turbo")


@pytest.fixture
def catalogue(tmp_path):
    """The 12-SKU catalogue without its photos: every product is rendered by the model from its fields, so
    the renders can share pipeline calls (a photo's scene is an inpaint of its own, which runs alone)."""
    return _without_photos(tmp_path)


def _without_photos(folder: Path) -> Path:
    with open(DATA / "products.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "products.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, [k for k in rows[0] if k != "image"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (folder / "images").mkdir()
    return folder


def _settings(model: str, out: Path, render_batch: int) -> RunSettings:
    return RunSettings(
        run_dir=str(out),
        image_backend="diffusers",
        image_model=model,
        num_inference_steps=2,
        render_batch=render_batch,
        max_takes=1,
    )


def _records(out: Path) -> list[dict]:
    db = sqlite3.connect(out / "records.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("select * from records order by sku, scene, platform")]
    db.close()
    return rows


def _run(catalogue: Path, out: Path, settings: RunSettings, engine: LocalEngine, monkeypatch) -> list[dict]:
    monkeypatch.setattr(catalogue_mod, "_engine", lambda options, s, work=True: engine)
    options = CatalogueOptions(
        catalogue=str(catalogue / "products.csv"),
        out=str(out),
        images=str(catalogue / "images"),
        scenes=["studio"],
        platforms=["instagram"],
        render_side=64,
        cap=1,
    )
    run_catalogue(settings, options)
    return _records(out)


class Timeline:
    """Each pipeline call's seeds and times, and each unit's CPU stage (by its seed), in perf_counter time."""

    def __init__(self, queue):
        self.lock = threading.Lock()
        self.batches: list[tuple[float, float, list[int]]] = []
        self.finished: dict[int, tuple[float, float]] = {}
        run = queue._run

        def timed_run(batch):
            t = time.perf_counter()
            out = run(batch)
            with self.lock:
                self.batches.append((t, time.perf_counter(), [r.seed for r in batch]))
            return out

        queue._run = timed_run

    def stages(self) -> Stages:
        def finish(started, ctx, backends):
            t = time.perf_counter()
            records = finish_unit(started, ctx, backends)
            with self.lock:
                self.finished[started.unit.seed] = (t, time.perf_counter())
            return records

        return Stages(start=start_unit, finish=finish)


@pytest.fixture(scope="module")
def one_by_one(tiny_z_image, tmp_path_factory):
    """The reference: one CPU thread, nothing rendered ahead, every render a pipeline call of its own."""
    folder = _without_photos(tmp_path_factory.mktemp("one-by-one"))
    settings = _settings(tiny_z_image, folder / "out", render_batch=1)
    with pytest.MonkeyPatch.context() as mp:
        return _run(folder, folder / "out", settings, LocalEngine(1, settings.backends(), render_ahead=0), mp)


def _what(rows: list[dict], scores: bool = True) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMES and (scores or k != "scores")} for r in rows]


def _staged(catalogue, model, render_batch, monkeypatch) -> tuple[list[dict], Timeline, LocalEngine]:
    settings = _settings(model, catalogue / "staged", render_batch=render_batch)
    backends = settings.backends()
    timeline = Timeline(backends.manager.queue)
    # Two CPU threads: the old engine (a unit on one thread from its render to its last PNG) had both threads
    # critiquing batch k, so batch k+1 could start only once one of them was done.
    engine = LocalEngine(2, backends, stages=timeline.stages(), render_ahead=4)
    return _run(catalogue, catalogue / "staged", settings, engine, monkeypatch), timeline, engine


def _renders_ran_ahead(timeline: Timeline) -> list[int]:
    batches = sorted(timeline.batches)
    assert len(batches) >= 4
    for (_, _, seeds), (next_start, _, _) in zip(batches, batches[1:]):
        # Every seed here is a unit's first take (cap 1): the batch after it started before any of its units
        # ended its CPU stage, so the render never waited on the critique.
        assert next_start < min(timeline.finished[s][1] for s in seeds)
    return [len(seeds) for _, _, seeds in batches]


def test_renders_run_ahead_of_the_critiques_and_the_records_are_the_one_by_one_ones(
    catalogue, tiny_z_image, one_by_one, monkeypatch
):
    rows, timeline, engine = _staged(catalogue, tiny_z_image, 1, monkeypatch)
    assert len(rows) == len(one_by_one) == 12
    assert _what(rows) == _what(one_by_one)
    assert set(_renders_ran_ahead(timeline)) == {1}
    assert 4 < engine.peak_in_flight <= 4 + (4 + 2)  # ahead of the CPU stage, within its bound


def test_the_render_stage_forms_batches_while_the_cpu_stage_works(
    catalogue, tiny_z_image, one_by_one, monkeypatch
):
    rows, timeline, _ = _staged(catalogue, tiny_z_image, 2, monkeypatch)
    assert max(_renders_ran_ahead(timeline)) == 2
    # A batched render is its seed's image within the rounding of batched matmuls (tests/test_render_queue.py),
    # so the scores may move in their last digits; the rest of every record is the one-by-one run's.
    assert _what(rows, scores=False) == _what(one_by_one, scores=False)
    for got, ref in zip(rows, one_by_one, strict=True):
        got_s, ref_s = json.loads(got["scores"]), json.loads(ref["scores"])
        assert got_s.keys() == ref_s.keys()
        assert all(got_s[k] == pytest.approx(ref_s[k], abs=0.02, rel=0.02) for k in ref_s), got["sku"]


def test_a_killed_staged_run_rerun_finishes_the_rest_and_makes_nothing_twice(catalogue, tiny_z_image):
    out = catalogue / "out"
    cmd = [sys.executable, "main.py", "catalogue", str(catalogue / "products.csv"), "--out", str(out),
           "--images", str(catalogue / "images"), "--scenes", "studio,detail", "--platforms", "instagram",
           "--render-side", "64", "--image-model", tiny_z_image, "--steps", "2", "--max-takes", "1",
           "--render-batch", "2", "--workers", "1"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    recorded = 0
    while time.monotonic() < deadline and proc.poll() is None and recorded < 5:
        time.sleep(0.2)
        if (out / "records.db").exists():
            try:
                db = sqlite3.connect(out / "records.db", timeout=1)
                (recorded,) = db.execute("select count(*) from records").fetchone()
                db.close()
            except sqlite3.OperationalError:
                continue
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {r["path"]: (out / r["path"]).stat().st_mtime_ns for r in _records(out)}
    assert 5 <= len(before) < 24

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _records(out)
    assert len(rows) == 24 and all(r["made"] == 1 for r in rows)
    assert {p: (out / p).stat().st_mtime_ns for p in before} == before  # nothing recorded was made again
    assert not list(out.rglob("*.tmp"))


def test_the_ray_actor_body_renders_its_next_batch_while_the_last_is_critiqued(
    catalogue, tiny_z_image, one_by_one, monkeypatch
):
    """UnitWorker (the Ray actor's body, here in this process): with a render queue its units run in the two
    stages, with the records of the one-by-one run. (On these two loaded cores the CPU stage is the slower one,
    so the actor's six units in flight all wait on it at times: the strict check above is the LocalEngine's.)"""
    from concurrent.futures import ThreadPoolExecutor

    from agent.catalogue_ray import UnitWorker

    settings = _settings(tiny_z_image, catalogue / "ray", render_batch=1)
    backends = settings.backends()
    timeline = Timeline(backends.manager.queue)
    got: list[dict] = []

    class WorkerEngine:
        """Batches of two units, three at once, on one UnitWorker, as RayEngine sends them to a GPU actor."""

        peak_in_flight = 0

        def run(self, units, ctx, on_record):
            worker = UnitWorker(
                ctx, build=lambda c: backends, threads=2 * 3, cpu_threads=2 * 2
            )  # as RayEngine
            assert worker.stages is not None  # a render queue: the worker splits its units in two
            worker.stages = timeline.stages()
            units = list(units)
            batches = [units[i : i + 2] for i in range(0, len(units), 2)]
            with ThreadPoolExecutor(3) as calls:
                for records in calls.map(worker.run_batch, batches):
                    for unit_records in records:
                        for r in unit_records:
                            on_record(r)
                            got.append(r)

    rows = _run(catalogue, catalogue / "ray", settings, WorkerEngine(), monkeypatch)
    assert _what(rows) == _what(one_by_one)
    cpu = list(timeline.finished.values())
    overlapped = [a for a, _, _ in timeline.batches if any(s < a < e for s, e in cpu)]
    assert len(overlapped) >= len(timeline.batches) // 2  # renders went on while other units were critiqued


def test_a_render_queue_run_shortens_the_switch_interval_and_gives_it_back(
    catalogue, tiny_z_image, monkeypatch
):
    """While units render through the queue the CPU threads see RENDER_SWITCH_S (the render thread gets the GIL
    back quickly), the run picks RENDER_WORKERS threads when none are given, and the interval is restored."""
    from agent.catalogue_engine import RENDER_SWITCH_S, RENDER_WORKERS

    settings = _settings(tiny_z_image, catalogue / "switch", render_batch=2)
    seen: list[float] = []

    def finish(started, ctx, backends):
        seen.append(sys.getswitchinterval())
        return finish_unit(started, ctx, backends)

    engine = LocalEngine(None, settings.backends(), stages=Stages(start=start_unit, finish=finish))
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default, whatever an earlier test left
    try:
        rows = _run(catalogue, catalogue / "switch", settings, engine, monkeypatch)
        assert sys.getswitchinterval() == 0.005
    finally:
        sys.setswitchinterval(before)
    assert len(rows) == 12 and len(seen) == 12
    assert set(seen) == {RENDER_SWITCH_S}
    assert engine.workers == RENDER_WORKERS


def test_overlapping_runs_keep_the_shortest_interval_until_the_last_ends():
    from agent.catalogue_engine import render_switch_interval

    before = sys.getswitchinterval()
    assert before > 0.002, "an earlier test left the interval shortened"
    with render_switch_interval(0.002):
        assert sys.getswitchinterval() == 0.002
        outer = render_switch_interval(0.0005)
        outer.__enter__()
        assert sys.getswitchinterval() == 0.0005
        with render_switch_interval(None):
            assert sys.getswitchinterval() == 0.0005
    # the first run ended, the second still runs: its interval holds
    assert sys.getswitchinterval() == 0.0005
    outer.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_a_catalogue_with_work_starts_loading_its_image_model_before_its_first_unit(
    catalogue, tiny_z_image, monkeypatch
):
    from tools.generate_image import DiffusersImageBackend

    real, threads = DiffusersImageBackend.preload, []
    monkeypatch.setattr(DiffusersImageBackend, "preload", lambda self: threads.append(real(self)))
    options = CatalogueOptions(catalogue=str(catalogue / "products.csv"), out=str(catalogue / "out"))
    settings = _settings(tiny_z_image, catalogue / "out", render_batch=4)
    catalogue_mod._engine(options, settings, work=False)
    assert threads == []  # every unit made already: nothing is loaded
    engine = catalogue_mod._engine(options, settings, work=True)
    assert len(threads) == 1
    threads[0].join()
    assert engine.backends.manager.load_counts[tiny_z_image] == 1  # loaded before any unit asked for it
