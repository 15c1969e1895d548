"""RayEngine on a local Ray cluster of two CPU workers: every unit done once, a killed worker, backpressure.

One cluster serves the whole module (starting Ray takes seconds here). The unit functions are module-level and
pickled by value, so the Ray workers run them without importing this test file.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
cloudpickle = pytest.importorskip("ray.cloudpickle")

from agent.catalogue_ray import RayEngine, connect  # noqa: E402
from agent.catalogue_unit import Unit, UnitContext, UnitRecord  # noqa: E402
from tools.critics.inputs import CritiqueConfig  # noqa: E402
from tools.errors import SettingsError  # noqa: E402
from tools.products import Product  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    connect("local", num_cpus=3)
    yield
    ray.shutdown()


def units(n: int, made: list[str] | None = None):
    """A lazy catalogue of n units; `made` records when each is drawn (the backpressure check)."""
    for i in range(n):
        if made is not None:
            made.append(f"u{i}")
        product = Product(sku=f"SKU-{i}", name=f"产品 {i}", category="home")
        yield Unit(
            key=f"s{i}/studio/1x1",
            sku=product.sku,
            slug=f"s{i}",
            product=product,
            scene="studio",
            platforms=["taobao", "jd"],
            width=64,
            height=64,
            seed=i,
        )


def context(tmp_path: Path, **settings) -> UnitContext:
    return UnitContext(settings=settings, critique=CritiqueConfig(), out_dir=str(tmp_path))


def build(ctx: UnitContext) -> dict:
    """The Backends stand-in: built once per actor, so the unit can say which actor made it."""
    return {"pid": os.getpid(), "built": time.time()}


def make(unit: Unit, ctx: UnitContext, backends: dict) -> list[UnitRecord]:
    """Writes a marker per unit (the work) and one record per platform, naming the worker's pid."""
    out = Path(ctx.out_dir)
    (out / "made").mkdir(exist_ok=True)
    with open(out / "made" / f"{unit.slug}-{os.getpid()}", "w") as f:
        f.write(unit.key)
    time.sleep(0.02)
    return [
        UnitRecord(
            unit=unit.key,
            sku=unit.sku,
            slug=unit.slug,
            scene=unit.scene,
            platform=p,
            path=f"{p}/{unit.slug}/{unit.scene}.png",
            grade="A",
            prompt="x",
            seed=unit.seed,
            model=str(backends["pid"]),
            takes=1,
        )
        for p in unit.platforms
    ]


def make_or_die(unit: Unit, ctx: UnitContext, backends: dict) -> list[UnitRecord]:
    """Unit s7 kills its worker's process the first time it runs (a crashed GPU worker, an OOM kill)."""
    flag = Path(ctx.out_dir) / "died-once"
    if unit.slug == "s7" and not flag.exists():
        flag.write_text(str(os.getpid()))
        os._exit(1)
    return make(unit, ctx, backends)


def always_die(unit: Unit, ctx: UnitContext, backends: dict) -> list[UnitRecord]:
    if unit.slug == "s3":
        os._exit(1)
    return make(unit, ctx, backends)


def broken(unit: Unit, ctx: UnitContext, backends: dict) -> list[UnitRecord]:
    if unit.slug == "s2":
        raise ValueError("the unit's own bug")
    return make(unit, ctx, backends)


def collect(engine: RayEngine, n: int, ctx: UnitContext, made: list[str] | None = None) -> list[UnitRecord]:
    got: list[UnitRecord] = []
    engine.run(units(n, made), ctx, got.append)
    return got


def test_two_workers_make_every_unit_once(cluster, tmp_path):
    engine = RayEngine("local", workers=2, batch=3, unit_fn=make, build=build)
    got = collect(engine, 20, context(tmp_path))
    per_unit = Counter(r.unit for r in got)
    assert len(per_unit) == 20 and set(per_unit.values()) == {2}  # two platforms, each once
    assert len({r.model for r in got}) == 2  # both actors took work
    assert len(engine.actors_started) == 2 and all(h["build_s"] >= 0 for h in engine.actors_started)
    assert len(list((tmp_path / "made").iterdir())) == 20
    # the actors are gone once run returns: the cluster's CPUs are free for the next run
    deadline = time.time() + 10
    while ray.available_resources().get("CPU", 0) < 3 and time.time() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 3


def test_a_killed_worker_has_its_units_done_elsewhere_exactly_once(cluster, tmp_path):
    events: list[str] = []
    engine = RayEngine("local", workers=2, batch=2, unit_fn=make_or_die, build=build, on_event=events.append)
    got = collect(engine, 16, context(tmp_path))
    per_unit = Counter(r.unit for r in got)
    assert len(per_unit) == 16 and set(per_unit.values()) == {2}  # nothing lost, nothing delivered twice
    dead_pid = (tmp_path / "died-once").read_text()
    assert engine.restarts == 1 and engine.resent >= 1
    assert any("died" in e and "sent again" in e for e in events)
    s7 = [r for r in got if r.slug == "s7"]
    assert all(r.model != dead_pid for r in s7)  # made by another process than the one that died
    assert len(engine.actors_started) == 2  # greeted at the start; the replacement joined without a wait


def test_a_unit_that_kills_every_worker_is_named(cluster, tmp_path):
    engine = RayEngine("local", workers=2, batch=2, unit_fn=always_die, build=build, max_restarts=5)
    with pytest.raises(RuntimeError, match=r"unit s3/studio/1x1 was on 3 workers that died"):
        collect(engine, 8, context(tmp_path))


def test_a_units_own_error_stops_the_run_with_its_cause(cluster, tmp_path):
    engine = RayEngine("local", workers=2, batch=2, unit_fn=broken, build=build)
    with pytest.raises(ValueError, match="the unit's own bug"):
        collect(engine, 8, context(tmp_path))


def no_model(ctx: UnitContext) -> dict:
    raise OSError("no model at /models/missing")


def test_a_worker_whose_backends_fail_to_build_stops_the_run_with_the_cause(cluster, tmp_path):
    engine = RayEngine("local", workers=1, unit_fn=make, build=no_model)
    with pytest.raises(RuntimeError, match=r"could not start: building its backends failed.*no model at"):
        collect(engine, 2, context(tmp_path))


def test_backpressure_bounds_units_in_flight_and_draws_lazily(cluster, tmp_path):
    drawn: list[str] = []
    seen: list[tuple[int, int]] = []  # (units drawn, records delivered) at each delivery

    engine = RayEngine("local", workers=2, batch=2, batches_in_flight=2, unit_fn=make, build=build)
    got: list[UnitRecord] = []

    def on_record(r: UnitRecord) -> None:
        got.append(r)
        seen.append((len(drawn), len(got)))

    engine.run(units(40, drawn), context(tmp_path), on_record)
    bound = 2 * 2 * 2  # workers × batches in flight × batch
    assert len({r.unit for r in got}) == 40
    assert 0 < engine.peak_in_flight <= bound
    # at the first record the driver had drawn at most the bound of units, not the catalogue
    assert seen[0][0] <= bound
    # and at every delivery, drawn − units delivered never exceeded the bound
    assert all(d - g // 2 <= bound for d, g in seen)


def test_the_run_batch_setting_sizes_the_batches(cluster, tmp_path):
    engine = RayEngine("local", workers=1, unit_fn=make, build=build)
    got = collect(engine, 6, context(tmp_path, render_batch=3))
    assert len(got) == 12 and engine.peak_in_flight == 6  # 1 worker × 2 batches × 3 (render_batch)


def test_more_workers_than_the_cluster_has_is_a_clear_error(cluster, tmp_path):
    engine = RayEngine("local", workers=9, unit_fn=make, build=build)
    with pytest.raises(SettingsError, match=r"--workers 9: the Ray cluster has 3 CPU"):
        collect(engine, 2, context(tmp_path))


@pytest.mark.parametrize("address", ["127.0.0.1:9", "ray://127.0.0.1:9"])
def test_bad_address(address, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    t = time.perf_counter()
    with pytest.raises(
        SettingsError, match=rf"--ray {address}: no Ray cluster answers there.*ray start --head"
    ):
        connect(address)
    assert time.perf_counter() - t < 5


def test_a_malformed_address_names_the_forms(monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(SettingsError, match="give auto, local, HOST:PORT"):
        connect("my-cluster")


def test_missing_ray_names_the_extra(monkeypatch):
    import agent.catalogue_ray as cr

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SettingsError, match=r"pip install -e '\.\[ray\]'"):
        cr.RayEngine("local", workers=1)
