"""The catalogue's inputs: product rows (CSV, XLSX, JSONL, bad rows, bad files, 200,000 rows streamed), the
platform presets, the scene templates, and the engine's backpressure. No rendering here."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from agent.catalogue_engine import LocalEngine
from agent.catalogue_unit import UnitRecord
from tools.errors import SettingsError
from tools.platforms import aspect_key, known_platforms, load_platforms
from tools.products import Product, RowError, read_products, sku_slug
from tools.scene_templates import scene_prompt, scenes_for

DATA = Path(__file__).parent / "data" / "catalogue"


def _split(items):
    return [i for i in items if isinstance(i, Product)], [i for i in items if isinstance(i, RowError)]


def test_the_test_catalogue_reads_twelve_products_and_reports_two_bad_rows_by_line():
    products, errors = _split(list(read_products(DATA / "products.csv")))
    assert len(products) == 12
    assert [str(e) for e in errors] == [
        "line 8: no sku; row skipped",
        "line 13 (sku EL-001): duplicate sku (first on line 2); row skipped",
    ]
    speaker = next(p for p in products if p.sku == "EL-002")
    assert (speaker.name, speaker.price, speaker.promo, speaker.line) == ("蓝牙音箱", "¥199", "限时特惠", 3)
    head = products[0]
    assert head.claims == ["40-hour battery"] and head.image == "headphones.png" and head.price == "$129"
    assert {p.category for p in products} == {"electronics", "fashion", "home", "beauty", "toys"}


def test_xlsx_and_jsonl_give_the_same_rows(tmp_path):
    import csv

    import openpyxl

    rows = list(csv.reader((DATA / "products.csv").open(encoding="utf-8")))
    book = openpyxl.Workbook()
    for r in rows:
        book.active.append([float(v[1:]) if v.startswith("$") else (v or None) for v in r])
    book.save(tmp_path / "p.xlsx")
    with (tmp_path / "p.jsonl").open("w", encoding="utf-8") as f:
        for r in rows[1:]:
            f.write(json.dumps(dict(zip(rows[0], r, strict=True)), ensure_ascii=False) + "\n")
        f.write("{not json\n")
        f.write("[1, 2]\n")
    from_csv, _ = _split(list(read_products(DATA / "products.csv")))
    from_xlsx, xlsx_errors = _split(list(read_products(tmp_path / "p.xlsx")))
    from_jsonl, jsonl_errors = _split(list(read_products(tmp_path / "p.jsonl")))
    assert [p.sku for p in from_xlsx] == [p.sku for p in from_csv] == [p.sku for p in from_jsonl]
    assert next(p for p in from_xlsx if p.sku == "EL-001").price == "129"  # a spreadsheet number, not 129.0
    assert [e.line for e in xlsx_errors] == [8, 13]
    assert [str(e) for e in jsonl_errors[-2:]] == [
        "line 15: not valid JSON (Expecting property name enclosed in double quotes at column 2); row skipped",
        "line 16: not a JSON object; row skipped",
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        (b"", "is empty"),
        (b"sku,name,category\n", "has a header but no product rows"),
        (b"sku,title\nA,b\n", r"no name, category column\(s\); the header row has: sku, title"),
        ("sku,name,category\nA,无线耳机,x\n".encode("gbk"), "is not UTF-8 text"),
    ],
)
def test_a_bad_catalogue_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "products.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SettingsError, match=message) as err:
        list(read_products(path))
    assert str(path) in str(err.value)


def test_a_folder_a_corrupt_workbook_and_an_unknown_extension_are_refused(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(SettingsError, match="is not a file"):
        list(read_products(tmp_path / "d.csv"))
    (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    with pytest.raises(SettingsError, match="is not a readable .xlsx workbook"):
        list(read_products(tmp_path / "bad.xlsx"))
    (tmp_path / "p.txt").write_text("sku,name,category\n")
    with pytest.raises(SettingsError, match="use a .csv, .xlsx or .jsonl file"):
        list(read_products(tmp_path / "p.txt"))


def test_bad_fields_name_the_field(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "sku,name,category,price,scenes\nA,a,x,free,\nB,b,x,,../../etc\nC,,x,,\n", encoding="utf-8"
    )
    errors = [str(e) for e in read_products(path) if isinstance(e, RowError)]
    assert errors == [
        "line 2 (sku A): price 'free' has no number in it; row skipped",
        "line 3 (sku B): scenes '../../etc' is not a name (letters, digits, _ or -); row skipped",
        "line 4 (sku C): no name; row skipped",
    ]


def test_sku_slugs_are_safe_folder_names_and_never_collide():
    slugs = {s: sku_slug(s) for s in ["A/1", "a-1", "../../etc/passwd", "蓝牙-01", "蓝牙-02", "x" * 300]}
    assert len(set(slugs.values())) == len(slugs)
    for slug in slugs.values():
        assert slug.replace("-", "").isalnum() and slug.isascii() and len(slug) <= 41 and ".." not in slug
    assert sku_slug("A/1") == sku_slug("A/1")


def _write_rows(path: Path, n: int, width: int) -> None:
    claims = "|".join(f"claim {k} " + "x" * width for k in range(3))
    with path.open("w", encoding="utf-8") as f:
        f.write("sku,name,category,color,price,promo,claims\n")
        for i in range(n):
            f.write(f"SKU-{i:06d},Product {i} 商品 {'y' * width},home,blue,¥{i % 500},限时特惠,{claims}\n")


def _peak(path: Path) -> tuple[int, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    count = sum(1 for item in read_products(path) if isinstance(item, Product))
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count, seconds, peak


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_200000_rows_are_streamed_in_bounded_memory_and_time(tmp_path):
    big = tmp_path / "big.csv"
    _write_rows(big, 200_000, 1)
    t0 = time.perf_counter()
    first = next(iter(read_products(big)))
    first_s = time.perf_counter() - t0
    base, top, stop = _rss(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            top[0] = max(top[0], _rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    count = sum(1 for item in read_products(big) if isinstance(item, Product))
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    grew = max(top[0] - base, 0)
    mb = 2**20
    # Wider rows must cost no more memory: only the SKUs seen are kept (for duplicates), never the rows.
    narrow, wide = tmp_path / "narrow.csv", tmp_path / "wide.csv"
    _write_rows(narrow, 20_000, 1)
    _write_rows(wide, 20_000, 200)
    (_, _, narrow_peak), (_, _, wide_peak) = _peak(narrow), _peak(wide)
    print(
        f"200,000 rows ({big.stat().st_size / mb:.0f} MB): {seconds:.1f} s, RSS grew {grew / mb:.1f} MB, first row "
        f"{first_s * 1000:.0f} ms; 20,000 rows: peak {narrow_peak / mb:.1f} MB, "
        f"{wide.stat().st_size / narrow.stat().st_size:.0f}x wider rows: peak {wide_peak / mb:.1f} MB"
    )
    assert count == 200_000 and first.sku == "SKU-000000"
    assert first_s < 1.0  # the first row comes before the file is read
    assert grew < 80 * mb  # a list of 200,000 Products alone would be several hundred MB
    assert wide_peak < 1.2 * narrow_peak


def test_every_named_marketplace_has_a_preset_with_its_sources():
    names = ["taobao", "tmall", "jd", "pinduoduo", "amazon", "shopify", "instagram", "xiaohongshu", "douyin"]
    platforms = load_platforms(names + ["tiktok_shop", "TikTok-Shop"])
    assert [p.name for p in platforms] == [
        "taobao", "jd", "pinduoduo", "amazon", "shopify", "instagram", "xiaohongshu", "douyin"
    ]  # fmt: skip
    for p in platforms:
        assert p.sources or p.unconfirmed, p.name
        assert all(u.startswith("http") for u in p.sources)
    amazon = load_platforms(["amazon"])[0]
    assert (amazon.background, amazon.min_fill, amazon.text_on_main) == ("white", 0.85, False)
    assert aspect_key(load_platforms(["xiaohongshu"])[0]) == "3x4-any"
    assert aspect_key(amazon) == "1x1-white"
    assert "taobao_white" in known_platforms()


def test_an_unknown_platform_names_the_known_ones():
    with pytest.raises(SettingsError) as err:
        load_platforms(["taobao", "ebay"])
    assert str(err.value).startswith(
        "unknown platform 'ebay'; known platforms: amazon, douyin, instagram, jd,"
    )


def test_scene_templates_by_category_with_a_default_and_a_user_folder(tmp_path):
    assert scenes_for("electronics") == ["flat_lay", "lifestyle", "studio"]
    assert scenes_for("fashion") == ["detail", "outdoor", "studio"]
    assert scenes_for("home") == ["kitchen", "living_room", "product_only"]
    assert scenes_for("beauty") == ["luxury", "minimal", "nature"]
    assert scenes_for("toys") == ["detail", "lifestyle", "studio"]
    lamp = Product(sku="H2", name="北欧台灯", category="home", color="原木色", material="木")
    assert scene_prompt(lamp, "kitchen").startswith(
        "Photograph of 北欧台灯, 原木色, made of 木 on a kitchen counter"
    )
    assert "pure white background (255,255,255)" in scene_prompt(lamp, "kitchen", white=True)
    assert "beach setting" in scene_prompt(lamp, "beach")  # a scene without a template of its own

    (tmp_path / "toys").mkdir()
    (tmp_path / "toys" / "playroom.j2").write_text("A playroom with {{ product.name }} on the rug")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "kitchen.j2").write_text("My kitchen: {{ product.name }}")
    car = Product(sku="T1", name="Wooden Toy Car", category="toys")
    assert scenes_for("toys", tmp_path) == ["playroom"]
    assert scene_prompt(car, "playroom", tmp_path) == "A playroom with Wooden Toy Car on the rug"
    assert scene_prompt(lamp, "kitchen", tmp_path) == "My kitchen: 北欧台灯"
    assert scenes_for("home", tmp_path) == ["kitchen", "living_room", "product_only"]

    (tmp_path / "toys" / "broken.j2").write_text("{{ product.nme }}")
    with pytest.raises(SettingsError, match="scene template toys/broken.j2: UndefinedError"):
        scene_prompt(car, "broken", tmp_path)
    (tmp_path / "toys" / "evil.j2").write_text("{{ product.__class__.__mro__ }}")
    with pytest.raises(SettingsError, match="evil.j2"):
        scene_prompt(car, "evil", tmp_path)
    with pytest.raises(SettingsError, match="templates folder .* not found"):
        scenes_for("home", tmp_path / "nope")


def test_the_local_engine_keeps_at_most_twice_its_workers_in_flight_and_never_reads_ahead():
    drawn, finished = [0], [0]
    lock = threading.Lock()
    most_ahead = [0]

    def units():
        for i in range(500):
            with lock:
                drawn[0] += 1
                most_ahead[0] = max(most_ahead[0], drawn[0] - finished[0])
            yield i

    def unit_fn(unit, ctx, backends):
        time.sleep(0.001)
        with lock:
            finished[0] += 1
        return [unit]

    seen = []
    engine = LocalEngine(workers=3, backends=object(), unit_fn=unit_fn)
    engine.run(units(), ctx=None, on_record=seen.append)
    assert sorted(seen) == list(range(500)) and drawn[0] == 500
    assert engine.peak_in_flight <= 6 and most_ahead[0] <= 6


def test_the_local_engine_calls_on_record_in_the_driver_thread_only():
    threads = set()

    def unit_fn(unit, ctx, backends):
        return [unit]

    LocalEngine(workers=4, backends=object(), unit_fn=unit_fn).run(
        range(50), None, lambda r: threads.add(threading.current_thread().name)
    )
    assert threads == {threading.current_thread().name}


def test_unit_records_pickle_for_ray():
    import pickle

    r = UnitRecord(unit="u", sku="s", slug="s-1", scene="studio", platform="jd", path="jd/s-1/studio.png",
                   grade="A", prompt="p", seed=1, model="draft", takes=1)  # fmt: skip
    assert pickle.loads(pickle.dumps(r)) == r
