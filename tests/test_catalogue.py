"""The catalogue end to end: the 12-SKU test catalogue through `main.py catalogue` (draft backend, and the tiny
diffusers models), the grade routing A/B/C with the repair of a C, review, resume after kill -9, bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from catalogue_photos import write_photos
from PIL import Image, ImageDraw, ImageFilter

from agent.backends import Backends, model_key
from agent.catalogue import CatalogueOptions, run_catalogue
from agent.catalogue_records import CSV_COLUMNS
from agent.review import review
from agent.settings import RunSettings
from main import main
from tools.generate_image import ImageBackend, ImageRequest, ImageResult
from tools.platforms import load_platforms
from tools.products import sku_slug

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "catalogue"
SKUS = ["EL-001", "EL-002", "FA-001", "FA-002", "HO-001", "HO-002", "BE-001", "BE-002", "TO-001", "EL-003",
        "HO-003", "FA-003"]  # fmt: skip


@pytest.fixture
def catalogue(tmp_path):
    shutil.copy(DATA / "products.csv", tmp_path / "products.csv")
    write_photos(tmp_path / "images")
    return tmp_path


def _records(out: Path) -> list[dict]:
    db = sqlite3.connect(out / "records.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("select * from records order by sku, scene, platform")]
    db.close()
    return rows


def test_twelve_skus_end_to_end_offline_with_the_draft_backend(catalogue, capsys):
    out = catalogue / "out"
    argv = ["catalogue", str(catalogue / "products.csv"), "--out", str(out), "--images", str(catalogue / "images"),
            "--scenes", "studio,lifestyle", "--platforms", "taobao,pinduoduo", "--render-side", "320",
            "--workers", "2"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "line 8: no sku; row skipped" in err
    assert "line 13 (sku EL-001): duplicate sku (first on line 2); row skipped" in err
    assert "units 36/36 · A " in err and "images/s" in err and "left" in err

    rows = _records(out)
    assert len(rows) == 12 * 2 * 2 and {r["sku"] for r in rows} == set(SKUS)
    platforms = {p.name: p for p in load_platforms(["taobao", "pinduoduo"])}
    for r in rows:
        path = out / r["path"]
        assert path == out / r["platform"] / sku_slug(r["sku"]) / f"{r['scene']}.png"
        with Image.open(path) as im:
            assert im.size == (platforms[r["platform"]].width, platforms[r["platform"]].height)
        assert r["made"] == 1 and 1 <= r["takes"] <= 3

    by = {(r["sku"], r["scene"], r["platform"]): r for r in rows}
    # A platform that shares an aspect reuses the render: lifestyle is one unit for taobao and pinduoduo.
    assert by["EL-001", "lifestyle", "taobao"]["unit"] == by["EL-001", "lifestyle", "pinduoduo"]["unit"]
    # The main image differs: pinduoduo asks for pure white, taobao does not.
    assert by["EL-001", "studio", "taobao"]["unit"] != by["EL-001", "studio", "pinduoduo"]["unit"]

    # The real product, kept: a photo on white is cut out and placed on 255 white for pinduoduo's main image.
    main_img = np.asarray(Image.open(out / by["EL-001", "studio", "pinduoduo"]["path"]).convert("RGB"))
    assert (main_img[:10] == 255).all() and (main_img[:, :10] == 255).all()
    scores = json.loads(by["EL-001", "studio", "pinduoduo"]["scores"])
    assert scores["pinduoduo.white_border"] == 1.0 and scores["pinduoduo.fill"] >= 0.5
    assert by["EL-001", "studio", "pinduoduo"]["model"] == "composite:white-product-shot"
    for key in [
        ("EL-001", "studio", "pinduoduo"),
        ("EL-001", "lifestyle", "taobao"),
        ("HO-001", "studio", "taobao"),
    ]:
        assert json.loads(by[key]["scores"])["fidelity.ssim"] > 0.95, key

    # Copy: taobao allows it on the main image and it is read back; pinduoduo's main image has none.
    assert json.loads(by["EL-002", "studio", "taobao"]["scores"])["ocr.cer"] <= 0.2
    assert "ocr.cer" not in json.loads(by["EL-002", "studio", "pinduoduo"]["scores"])

    notes = {r["sku"]: json.loads(r["notes"]) for r in rows}
    assert any(
        "watch_on_table.png is not on a plain background" in n and "as a reference" in n
        for n in notes["EL-003"]
    )
    assert any(
        "vase_corrupt.png cannot be read" in n and "generated from its fields" in n for n in notes["HO-003"]
    )
    assert any("shoe_missing.png not found" in n for n in notes["FA-003"])
    assert any(
        "category 'toys' has no scene templates; the default ones are used" in n for n in notes["TO-001"]
    )

    with (out / "catalogue.csv").open(encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == CSV_COLUMNS == ["sku", "scene", "platform", "path", "grade", "scores", "issues", "prompt",
                                       "seed", "model", "takes"]  # fmt: skip
    assert len(table) == 1 + len(rows)
    assert len((out / "catalogue.jsonl").read_text(encoding="utf-8").splitlines()) == len(rows)
    review_items = [json.loads(x) for x in (out / "review.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(i["sku"], i["scene"], i["platform"]) for i in review_items} == {
        k for k, r in by.items() if r["grade"] in "BC"
    }
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["slugs"] == {sku_slug(s): s for s in SKUS}
    assert manifest["options"]["platforms"] == ["taobao", "pinduoduo"]
    page = (out / "qc_report.html").read_text(encoding="utf-8")
    assert "Every C, with its reasons" in page and "grade A" in page
    assert sum(manifest["grades"].values()) == len(rows)


# --- grade routing, with a scripted image backend --------------------------------------------------------------


class ScriptedBackend(ImageBackend):
    """Draws by the product named in the prompt: sharp, soft (a B), blank on the first take only, always blank."""

    name = "scripted"
    model = "scripted-v1"

    def __init__(self):
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def generate(self, req: ImageRequest) -> ImageResult:
        who = next(k for k in ("Sharp", "Soft", "Blank First", "Always Blank") if k in req.prompt)
        with self.lock:
            self.calls[who] = n = self.calls.get(who, 0) + 1
        w, h = req.width, req.height
        img = Image.new("RGB", (w, h), (200, 180, 150))
        if who == "Always Blank" or (who == "Blank First" and n == 1):
            img = Image.new("RGB", (w, h), (128, 128, 128))
        else:
            d = ImageDraw.Draw(img)
            d.ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(40, 60, 120))
            d.rectangle((w // 10, int(h * 0.82), int(w * 0.9), int(h * 0.94)), fill=(90, 40, 30))
            if who == "Soft":
                img = img.filter(ImageFilter.GaussianBlur(1.2 * w / 256))
        img.save(req.output_path)
        return ImageResult(path=req.output_path, backend=self.name, model=self.model, seed=req.seed,
                           parameters={"num_inference_steps": req.num_inference_steps})  # fmt: skip


def _scripted_settings(out: Path, backend: ScriptedBackend) -> RunSettings:
    settings = RunSettings(run_dir=str(out), max_takes=3)
    from tools.animate import MotionBackend

    backends = Backends(model_key(settings), backend, "scripted", MotionBackend(), "motion", None)
    return settings.attach(backends)


def test_grade_routing_a_b_c_and_the_repair_of_a_c_then_review(tmp_path):
    (tmp_path / "p.csv").write_text(
        "sku,name,category\nG-1,Sharp Mug,home\nS-1,Soft Lamp,home\nR-1,Blank First Vase,home\nX-1,Always Blank Box,home\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    backend = ScriptedBackend()
    settings = _scripted_settings(out, backend)
    options = CatalogueOptions(catalogue=str(tmp_path / "p.csv"), out=str(out), scenes=["studio"],
                               platforms=["taobao"], render_side=256, cap=3)  # fmt: skip
    summary = run_catalogue(settings, options)
    by = {r["sku"]: r for r in _records(out)}
    assert {k: v["grade"] for k, v in by.items()} == {"G-1": "A", "S-1": "B", "R-1": "A", "X-1": "C"}
    assert summary.grades == {"A": 2, "B": 1, "C": 1}
    assert [by[k]["takes"] for k in ("G-1", "S-1", "R-1", "X-1")] == [1, 1, 2, 3]  # B is not re-shot

    # The repair followed the failure: a blank take gets a new seed and more steps.
    attempts = json.loads(by["R-1"]["attempts"])
    assert attempts[0]["grade"] == "C" and any(i.startswith("blank:") for i in attempts[0]["issues"])
    assert {"new-seed", "more-steps"} <= set(attempts[1]["actions"]) and attempts[1]["grade"] == "A"
    assert attempts[1]["seed"] != attempts[0]["seed"] and by["R-1"]["seed"] == attempts[1]["seed"]
    # A C at the cap: every attempt recorded, the best one kept, and the reasons in the report.
    assert [a["grade"] for a in json.loads(by["X-1"]["attempts"])] == ["C", "C", "C"]
    assert len({a["seed"] for a in json.loads(by["X-1"]["attempts"])}) == 3
    page = (out / "qc_report.html").read_text(encoding="utf-8")
    assert "X-1" in page and "blank" in page and "G-1" not in page.split("Every C")[1]
    queue = [json.loads(x) for x in (out / "review.jsonl").read_text().splitlines()]
    assert [(q["sku"], q["grade"]) for q in queue] == [("S-1", "B"), ("X-1", "C")]

    said = []
    counts = review(out, io.StringIO("a\nd a plain box, bright light\n"), said.append, settings.backends())
    assert counts == {"approved": 1, "rejected": 0, "redo": 1, "skip": 0}
    assert said[0] == f"[1/2] S-1 · studio · taobao · grade B · taobao/{sku_slug('S-1')}/studio.png"
    rows = {r["sku"]: r for r in _records(out)}
    assert rows["S-1"]["status"] == "approved"
    assert rows["X-1"]["made"] == 2 and "Reviewer's note: a plain box, bright light" in rows["X-1"]["prompt"]
    db = sqlite3.connect(out / "records.db")
    assert db.execute("select sku, decision, note from reviews order by id").fetchall() == [
        ("S-1", "approved", ""),
        ("X-1", "redo", "a plain box, bright light"),
    ]
    # Approved images leave the queue; the redone C is still C and comes back for a decision.
    assert [json.loads(x)["sku"] for x in (out / "review.jsonl").read_text().splitlines()] == ["X-1"]


def test_review_cli_on_a_folder_that_is_not_a_catalogue(tmp_path, capsys):
    assert main(["review", str(tmp_path)]) == 2
    assert f"error: {tmp_path} is not a catalogue folder (no records.db)" in capsys.readouterr().err


# --- resume after kill -9 ---------------------------------------------------------------------------------------


def test_a_killed_catalogue_rerun_finishes_the_rest_and_makes_nothing_twice(catalogue):
    out = catalogue / "out"
    cmd = [sys.executable, "main.py", "catalogue", str(catalogue / "products.csv"), "--out", str(out),
           "--images", str(catalogue / "images"), "--scenes", "studio", "--platforms", "taobao,instagram",
           "--render-side", "256"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    recorded = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (out / "records.db").exists():
            try:
                db = sqlite3.connect(out / "records.db", timeout=1)
                (recorded,) = db.execute("select count(*) from records").fetchone()
                db.close()
            except sqlite3.OperationalError:
                continue
            if recorded >= 6:
                break
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {r["path"]: (out / r["path"]).stat().st_mtime_ns for r in _records(out)}
    assert 6 <= len(before) < 24

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _records(out)
    assert len(rows) == 24 and all(r["made"] == 1 for r in rows)
    assert {p: (out / p).stat().st_mtime_ns for p in before} == before  # nothing recorded was made again
    skipped = int(done.stderr.split(" of 24 renders already made")[0].rsplit(", ", 1)[1])
    assert len(before) <= skipped < 24  # the recorded units were skipped, the rest made
    assert not list(out.rglob("*.tmp"))
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=200, check=False)
    assert again.returncode == 0 and "24 of 24 renders already made" in again.stderr
    assert {r["path"]: r["made_at"] for r in _records(out)} == {r["path"]: r["made_at"] for r in rows}


def test_one_process_at_a_time_and_a_killed_write_s_temp_file_is_swept(catalogue, capsys):
    one = catalogue / "one.csv"
    one.write_text((DATA / "products.csv").read_text(encoding="utf-8").splitlines()[0] + "\n"
                   "EL-001,Wireless Headphones,electronics,black,,$129,,,headphones.png,,\n", encoding="utf-8")  # fmt: skip
    out = catalogue / "out"
    args = ["catalogue", str(one), "--out", str(out), "--images", str(catalogue / "images"), "--scenes", "studio",
            "--platforms", "taobao", "--render-side", "128"]  # fmt: skip
    out.mkdir()
    code = "import sys, time\nfrom pathlib import Path; from agent.runlock import run_lock\nwith run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n"  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "--wait" in err and not (out / "records.db").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a kill releases the lock
        holder.wait()
    (out / "taobao").mkdir()
    stale = out / "taobao" / ".studio.png.5w72m_2m.tmp"  # what a kill during an image's write leaves
    stale.write_bytes(b"half a png")
    kept = out / "taobao" / ".notes"  # a dot file that is not a temporary file of ours
    kept.write_text("mine", encoding="utf-8")
    assert main(args) == 0
    assert not stale.exists() and kept.read_text(encoding="utf-8") == "mine"
    assert [r["made"] for r in _records(out)] == [1]


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--platforms", "taobao,ebay"], "error: unknown platform 'ebay'; known platforms: amazon, douyin,"),
        (["--images", "nowhere"], "error: --images nowhere is not a folder"),
        (["--templates", "nowhere"], "error: templates folder nowhere not found"),
    ],
)
def test_bad_options_are_one_line_and_exit_2_before_anything_is_made(catalogue, capsys, extra, message):
    out = catalogue / "out"
    code = main(["catalogue", str(catalogue / "products.csv"), "--out", str(out), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not (out / "records.db").exists()


def test_a_missing_empty_or_unusable_catalogue_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["catalogue", str(tmp_path / "nope.csv"), "--out", out]) == 2
    assert f"error: catalogue {tmp_path / 'nope.csv'} not found" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_bytes(b"")
    assert main(["catalogue", str(tmp_path / "empty.csv"), "--out", out]) == 2
    assert "is empty: write a header row" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("sku,name,category\n,x,y\n", encoding="utf-8")
    assert main(["catalogue", str(tmp_path / "bad.csv"), "--out", out]) == 2
    assert "no usable rows (1 bad)" in capsys.readouterr().err


def test_a_malformed_brand_file_names_the_file(catalogue, capsys):
    brand = catalogue / "brand.yaml"
    brand.write_text("palette: [not-a-colour]\n", encoding="utf-8")
    code = main(
        ["catalogue", str(catalogue / "products.csv"), "--out", str(catalogue / "out"), "--brand", str(brand)]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(brand) in err and "palette" in err


# --- the tiny diffusers models --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_z_image(tmp_path_factory):
    import tiny_pipelines

    return tiny_pipelines.build("z-image", tmp_path_factory.mktemp("tiny-catalogue") / "z-image-turbo")


def test_twelve_skus_with_the_tiny_diffusers_model_and_a_clip_per_sku(catalogue, tiny_z_image):
    out = catalogue / "out"
    cmd = [sys.executable, "main.py", "catalogue", str(catalogue / "products.csv"), "--out", str(out),
           "--images", str(catalogue / "images"), "--scenes", "studio", "--platforms", "taobao",
           "--render-side", "64", "--image-model", tiny_z_image, "--steps", "2", "--max-takes", "1", "--video"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _records(out)
    assert len(rows) == 12 and all(r["takes"] == 1 for r in rows)
    models = {r["sku"]: r["model"] for r in rows}
    # Products without a usable photo are rendered by the model; photos on white are composited into its scene.
    assert models["FA-001"] == f"diffusers:{tiny_z_image}" and models["HO-003"] == f"diffusers:{tiny_z_image}"
    assert models["EL-001"] == f"diffusers:{tiny_z_image}"
    # The photo itself is placed at the platform's size, and the fidelity check finds its pixels unchanged.
    for r in rows:
        scores = json.loads(r["scores"])
        if r["sku"] in ("EL-001", "EL-002", "FA-002", "HO-001", "BE-001", "TO-001"):
            assert scores["fidelity.ssim"] > 0.95 and not any("product" in i for i in json.loads(r["issues"]))
        else:
            assert "fidelity.ssim" not in scores
    for r in rows:
        with Image.open(out / r["path"]) as im:
            assert im.size == (800, 800)
    clips = sorted(p.name for p in (out / "video").glob("*.mp4"))
    assert clips == sorted(f"{sku_slug(s)}.mp4" for s in SKUS)
    import av

    with av.open(str(out / "video" / clips[0])) as c:
        assert c.streams.video[0].frames >= 24


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="chromium is not installed (apt-get install chromium)"
)
def test_the_qc_report_in_headless_chromium_shows_the_grades_sheets_and_every_c(tmp_path):
    from playwright.sync_api import sync_playwright

    (tmp_path / "p.csv").write_text(
        "sku,name,category\nG-1,Sharp Mug,home\nG-2,锋利的杯子 Sharp,home\nS-1,Soft Lamp,home\nX-1,Always Blank Box,home\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    options = CatalogueOptions(catalogue=str(tmp_path / "p.csv"), out=str(out), scenes=["studio", "lifestyle"],
                               platforms=["taobao", "instagram"], render_side=256, cap=2)  # fmt: skip
    run_catalogue(_scripted_settings(out, ScriptedBackend()), options)
    shot = out / "qc_report-screenshot.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((out / "qc_report.html").as_uri())
        page.get_by_role("heading", name="Every C, with its reasons").wait_for()
        counts = {g: page.get_by_label(f"grade {g}", exact=True).inner_text() for g in "ABC"}
        sheets = page.get_by_role("img", name="contact sheet")
        sheet_count = sheets.count()
        loaded = page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        failed_rows = page.locator("table.failed tbody tr").count()
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert counts == {"A": "A 10", "B": "B 2", "C": "C 4"}  # soft at 1:1; the 4:5 render is blurred less
    assert sheet_count == 3 and loaded and failed_rows == 4


def test_a_brand_file_sets_the_badges_and_the_brand_colour_check(tmp_path):
    (tmp_path / "p.csv").write_text(
        "sku,name,category,price,promo\nG-1,Sharp Mug,home,199,新品\n", encoding="utf-8"
    )
    brand = tmp_path / "brand.yaml"
    brand.write_text(
        (DATA / "brand.yaml").read_text() + 'currency: "$"\nbadge_colours: {price: "#1F3A5F"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    options = CatalogueOptions(catalogue=str(tmp_path / "p.csv"), out=str(out), scenes=["studio"],
                               platforms=["taobao"], render_side=256, brand=str(brand))  # fmt: skip
    run_catalogue(_scripted_settings(out, ScriptedBackend()), options)
    (row,) = _records(out)
    scores = json.loads(row["scores"])
    assert any(k.startswith("brand") for k in scores), scores
    assert scores["ocr.cer"] <= 0.2  # "$199" and "新品" read back
    img = np.asarray(Image.open(out / row["path"]).convert("RGB")).reshape(-1, 3)
    assert (
        (np.abs(img.astype(int) - (0x1F, 0x3A, 0x5F)).sum(axis=1)) < 6
    ).sum() > 500  # the brand's price plate
