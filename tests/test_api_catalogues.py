"""Catalogues as service jobs: submitted over the API, owned by their key, their B and C images in the studio's
review queue, and a decision there recorded by the same operation `main.py review` uses (agent/review.decide).
Offline draft backend; the worker is a real worker process."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from catalogue_photos import headphones
from fastapi.testclient import TestClient

from agent.server import ServerConfig, create_app

KEY_A, KEY_B = "a" * 24, "b" * 24
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}


def photo_b64() -> str:
    buf = io.BytesIO()
    headphones().save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


CATALOGUE = {
    "products": [
        {"sku": "HP-01", "name": "Studio headphones", "category": "electronics", "price": "¥399",
         "image": "hp01.png"},
        {"sku": "MUG-7", "name": "手工陶瓷杯", "category": "home"},
    ],
    "scenes": ["studio"],
    "platforms": ["instagram"],
    "render_side": 192,
}  # fmt: skip


def wait_done(client, cid, headers=A, timeout=300) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        view = client.get(f"/v1/catalogues/{cid}", headers=headers).json()
        if view["status"] in ("done", "failed"):
            return view
        time.sleep(0.3)
    raise AssertionError(f"catalogue {cid} stayed {view['status']}")


def grade_b(root: Path) -> None:
    """Grade every image B in records.db, as the critique grades a borderline image."""
    db = sqlite3.connect(root / "records.db")
    db.execute(
        "update records set grade = 'B', issues = ?", (json.dumps(["sharpness: edge strength 0.18 is soft"]),)
    )
    db.commit()
    db.close()


@pytest.fixture
def client(tmp_path):
    config = ServerConfig(state_dir=str(tmp_path / "state"), keys=[KEY_A, KEY_B], workers=1)
    with TestClient(create_app(config)) as c:
        yield c


def test_a_catalogue_job_its_review_queue_decisions_and_ownership(client, tmp_path, monkeypatch):
    from agent import api_catalogues

    monkeypatch.setattr(api_catalogues, "REPORT_DELAY", 0.2)
    body = {**CATALOGUE, "photos": {"hp01.png": photo_b64()}}
    r = client.post("/v1/catalogues", json=body, headers=A)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    view = wait_done(client, cid)
    assert view["status"] == "done", view["error"]
    assert view["products"] == 2 and sum(view["grades"].values()) == 2
    root = tmp_path / "state" / "runs" / cid
    assert (
        "review.jsonl" in view["files"] and "records.db" in view["files"] and "run.lock" not in view["files"]
    )
    # A catalogue is not a film, and another key sees nothing of it.
    assert client.get("/v1/films", headers=A).json() == []
    assert client.get(f"/v1/films/{cid}", headers=A).status_code == 404
    assert client.get("/v1/catalogues", headers=B).json() == []
    assert client.get(f"/v1/catalogues/{cid}", headers=B).status_code == 404
    assert client.get(f"/v1/catalogues/{cid}/files/review.jsonl", headers=B).status_code == 404

    grade_b(root)
    client.app.state.service.store.update_film(cid)
    queue = [i for i in client.get("/v1/review", headers=A).json() if i["kind"] == "image"]
    assert {(i["sku"], i["scene"], i["platform"]) for i in queue} == {
        ("HP-01", "studio", "instagram"),
        ("MUG-7", "studio", "instagram"),
    }
    assert all(i["grade"] == "B" and i["issues"] == ["sharpness: edge strength 0.18 is soft"] for i in queue)
    assert all(i["decision"] is None and i["film_id"] == cid for i in queue)
    assert client.get("/v1/review", headers=B).json() == []
    image = client.get(queue[0]["url"], headers=A)
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(queue[0]["url"], headers=B).status_code == 404

    hp = {"sku": "HP-01", "scene": "studio", "platform": "instagram"}
    assert (
        client.post(f"/v1/review/{cid}/images", json={**hp, "action": "approve"}, headers=B).status_code
        == 404
    )
    missing = {**hp, "sku": "NOPE", "action": "approve"}
    assert client.post(f"/v1/review/{cid}/images", json=missing, headers=A).status_code == 404
    r = client.post(f"/v1/review/{cid}/images", json={**hp, "action": "approve", "note": "fine"}, headers=A)
    assert r.status_code == 200 and r.json()["decision"] == "approved"
    # Kept where `main.py review` keeps it: the reviews table, the record's status, and review.jsonl rewritten.
    db = sqlite3.connect(root / "records.db")
    assert db.execute("select sku, decision, note from reviews").fetchall() == [("HP-01", "approved", "fine")]
    assert db.execute("select status from records where sku = 'HP-01'").fetchone() == ("approved",)
    db.close()
    pending = [json.loads(line)["sku"] for line in (root / "review.jsonl").read_text().splitlines()]
    assert pending == ["MUG-7"]
    decided = {i["sku"]: i["decision"] for i in client.get("/v1/review", headers=A).json()}
    assert decided == {"HP-01": "approved", "MUG-7": None}
    # The QC page is written again once decisions pause (REPORT_DELAY, shortened here), off the request.
    end = time.time() + 60
    while "1 B and C images waiting" not in (root / "qc_report.html").read_text():
        assert time.time() < end, "qc_report.html was not written again after the decision"
        time.sleep(0.1)

    # A redo is a job on the worker's warm models: the image is made again and comes back undecided.
    mug = {"sku": "MUG-7", "scene": "studio", "platform": "instagram"}
    assert (
        client.post(f"/v1/review/{cid}/images", json={**mug, "action": "redo"}, headers=A).status_code == 422
    )
    r = client.post(
        f"/v1/review/{cid}/images", json={**mug, "action": "redo", "note": "warmer light"}, headers=A
    )
    assert r.status_code == 200 and r.json()["decision"] == "redo"
    assert wait_done(client, cid)["status"] == "done"
    db = sqlite3.connect(root / "records.db")
    assert db.execute("select made, status from records where sku = 'MUG-7'").fetchone() == (2, "new")
    assert db.execute("select decision, note from reviews where sku = 'MUG-7'").fetchall() == [
        ("redo", "warmer light")
    ]
    db.close()
    assert client.app.state.service.loads == 1  # the redo rendered with the worker's warm backends


def test_the_qc_page_read_after_a_decision_is_written_first(tmp_path, monkeypatch):
    """Read through the API before the debounced write: the page is written again, with the decision counted."""
    from agent import api_catalogues

    monkeypatch.setattr(api_catalogues, "REPORT_DELAY", 3600.0)
    config = ServerConfig(state_dir=str(tmp_path / "state"), keys=[KEY_A, KEY_B], workers=1)
    with TestClient(create_app(config)) as c:
        mugs = [{"sku": sku, "name": "手工陶瓷杯", "category": "home"} for sku in ("MUG-7", "MUG-8")]
        cid = c.post("/v1/catalogues", json={**CATALOGUE, "products": mugs}, headers=A).json()["id"]
        assert wait_done(c, cid)["status"] == "done"
        root = tmp_path / "state" / "runs" / cid
        grade_b(root)
        c.app.state.service.store.update_film(cid)
        written = (root / "qc_report.html").read_text()
        mug = {"sku": "MUG-7", "scene": "studio", "platform": "instagram", "action": "reject"}
        assert c.post(f"/v1/review/{cid}/images", json=mug, headers=A).status_code == 200
        assert (root / "qc_report.html").read_text() == written  # not written by the decision itself
        page = c.get(f"/v1/catalogues/{cid}/files/qc_report.html", headers=A)
        assert page.status_code == 200 and "1 B and C images waiting" in page.text


def test_a_decision_survives_a_restart(tmp_path):
    config = ServerConfig(state_dir=str(tmp_path / "state"), keys=[KEY_A, KEY_B], workers=1)
    with TestClient(create_app(config)) as c:
        cid = c.post(
            "/v1/catalogues", json={**CATALOGUE, "products": CATALOGUE["products"][1:]}, headers=A
        ).json()["id"]
        assert wait_done(c, cid)["status"] == "done"
        grade_b(tmp_path / "state" / "runs" / cid)
        c.app.state.service.store.update_film(cid)
        mug = {
            "sku": "MUG-7",
            "scene": "studio",
            "platform": "instagram",
            "action": "reject",
            "note": "chipped",
        }
        assert c.post(f"/v1/review/{cid}/images", json=mug, headers=A).status_code == 200
    with TestClient(create_app(config)) as c:
        [item] = [i for i in c.get("/v1/review", headers=A).json() if i["kind"] == "image"]
        assert item["sku"] == "MUG-7" and item["decision"] == "rejected"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"platforms": ["myspace"]}, 422, "unknown platform 'myspace'"),
        ({"photos": {"../x.png": "AAAA"}}, 422, "not a plain file name"),
        ({"photos": {"hp01.png": base64.b64encode(b"not an image").decode()}}, 422, "not a readable"),
        ({"photos": {}}, 422, "products[0].image 'hp01.png' names none of the photos"),
        ({"products": [{"name": "no sku", "category": "home"}]}, 422, "no usable product rows"),
        ({"products": []}, 422, "at least 1"),
        ({"render_side": 9000}, 422, "less than or equal to 2048"),
        ({"scenes": ["../../etc"]}, 422, "scene '../../etc' is not a name"),
    ],
)
def test_bad_catalogues_are_refused_with_what_is_wrong(client, tmp_path, change, status, message):
    body = {**CATALOGUE, "photos": {"hp01.png": photo_b64()}, **change}
    r = client.post("/v1/catalogues", json=body, headers=A)
    assert r.status_code == status and message in r.text, r.text
    assert client.get("/v1/catalogues", headers=A).json() == []
    uploads = tmp_path / "state" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing of a refused catalogue is kept


def wait_status(client, cid, statuses, timeout=300) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        view = client.get(f"/v1/catalogues/{cid}", headers=A).json()
        if view["status"] in statuses:
            return view
        time.sleep(0.1)
    raise AssertionError(f"catalogue {cid} stayed {view['status']}")


def recorded(root: Path) -> dict[str, int]:
    """sku -> how many times its image was recorded (1: made once)."""
    if not (root / "records.db").exists():
        return {}
    db = sqlite3.connect(root / "records.db")
    try:
        return dict(db.execute("select sku, made from records").fetchall())
    except sqlite3.OperationalError:  # its tables not written yet
        return {}
    finally:
        db.close()


def test_a_queued_catalogue_is_cancelled_at_once_and_stays_cancelled_after_a_restart(tmp_path):
    config = {"state_dir": str(tmp_path / "state"), "keys": [KEY_A, KEY_B]}
    body = {**CATALOGUE, "products": CATALOGUE["products"][1:]}
    with TestClient(create_app(ServerConfig(**config, workers=0))) as c:
        cid = c.post("/v1/catalogues", json=body, headers=A).json()["id"]
        assert c.post(f"/v1/catalogues/{cid}/cancel", headers=B).status_code == 404  # not B's
        r = c.post(f"/v1/catalogues/{cid}/cancel", headers=A)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        view = c.get(f"/v1/catalogues/{cid}", headers=A).json()
        assert view["status"] == "cancelled" and f"/v1/catalogues/{cid}/resume" in view["error"]
        r = c.post(f"/v1/catalogues/{cid}/cancel", headers=A)
        assert r.status_code == 409 and "no work queued or running" in r.json()["detail"]
        assert [j.state for j in c.app.state.service.store.jobs(cid)] == ["cancelled"]
    with TestClient(create_app(ServerConfig(**config, workers=1))) as c:
        assert c.get(f"/v1/catalogues/{cid}", headers=A).json()["status"] == "cancelled"  # kept in SQLite
        assert c.post(f"/v1/catalogues/{cid}/resume", headers=B).status_code == 404
        assert c.post(f"/v1/catalogues/{cid}/resume", headers=A).status_code == 202
        view = wait_status(c, cid, {"done", "failed"})
        assert view["status"] == "done" and view["error"] is None, view
        assert recorded(tmp_path / "state" / "runs" / cid) == {"MUG-7": 1}
        r = c.post(f"/v1/catalogues/{cid}/resume", headers=A)
        assert r.status_code == 409 and "only a failed or cancelled catalogue" in r.json()["detail"]


def test_a_running_catalogue_stops_between_units_and_resumes_without_making_them_again(tmp_path):
    config = {"state_dir": str(tmp_path / "state"), "keys": [KEY_A, KEY_B], "workers": 1}
    # Draft units at 192 px finish in bursts of the engine's units in flight: 16 units were all made before a
    # cancel sent after the first record reached the worker (seen in CI). 64 leave the cancel room to land.
    products = [{"sku": f"MUG-{i:02d}", "name": "手工陶瓷杯", "category": "home"} for i in range(64)]
    body = {**CATALOGUE, "products": products}
    with TestClient(create_app(ServerConfig(**config))) as c:
        cid = c.post("/v1/catalogues", json=body, headers=A).json()["id"]
        root = tmp_path / "state" / "runs" / cid
        end = time.time() + 300
        while not recorded(root):
            assert time.time() < end, "no unit was ever recorded"
            time.sleep(0.05)
        assert c.post(f"/v1/catalogues/{cid}/cancel", headers=A).status_code == 200
        view = wait_status(c, cid, {"cancelled", "done", "failed"})
        if view["status"] == "done":
            pytest.skip("the catalogue finished before the cancel reached it (an unusually fast machine)")
        assert view["status"] == "cancelled", view
        assert c.app.state.service.store.jobs(cid)[-1].state == "cancelled"
        made = recorded(root)
        assert 1 <= len(made) < len(products) and set(made.values()) == {1}  # finished units stay
    with TestClient(create_app(ServerConfig(**config))) as c:
        assert c.get(f"/v1/catalogues/{cid}", headers=A).json()["status"] == "cancelled"
        assert recorded(root) == made  # the restart made nothing
        assert c.post(f"/v1/catalogues/{cid}/resume", headers=A).status_code == 202
        view = wait_status(c, cid, {"done", "failed"})
        assert view["status"] == "done", view
        after = recorded(root)
        assert sorted(after) == sorted(p["sku"] for p in products)
        assert set(after.values()) == {1}  # no unit recorded twice: those made before the cancel were kept


def test_a_decision_rewrites_only_its_own_lines_and_the_qc_page_later(tmp_path):
    """One decision changes its own lines of the exports (identical to writing them whole again), leaves
    qc_report.html stale, and `refresh_report` writes the page with the new count but keeps the contact sheets
    (a decision changes no image on them)."""
    from agent.catalogue_records import Records
    from agent.review import publish_decision, refresh_report
    from evals.bench_review import build

    build(tmp_path, 30, 64)
    page, sheet = tmp_path / "qc_report.html", tmp_path / "qc" / "contact-B.png"
    waiting = page.read_text().split(" B and C images waiting")[0].rsplit(" ", 1)[-1]
    sheet_made = sheet.stat().st_mtime_ns
    names = ("catalogue.jsonl", "catalogue.csv", "review.jsonl")
    with Records(tmp_path) as records:
        rows = list(records.rows("where grade in ('B', 'C')"))
        for row, kind in zip(rows[:3], ("approved", "rejected", "redo"), strict=True):
            key = (row["sku"], row["scene"], row["platform"])
            records.review(*key, kind, "a note")  # what decide records (a redo would also make the unit)
            publish_decision(records, tmp_path, row)
        one_by_one = {n: (tmp_path / n).read_bytes() for n in names}
        records.export()
        assert {n: (tmp_path / n).read_bytes() for n in names} == one_by_one
    queue = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert (
        len(queue) == len(rows) - 2 and {"sku": rows[2]["sku"], "status": "redo"}.items() <= queue[0].items()
    )
    assert f"{waiting} B and C images waiting" in page.read_text()  # stale until refreshed
    refresh_report(tmp_path)
    assert f"{int(waiting) - 2} B and C images waiting" in page.read_text()
    assert sheet.stat().st_mtime_ns == sheet_made  # the sheet was not drawn again
    written = page.stat().st_mtime_ns
    refresh_report(tmp_path)
    assert page.stat().st_mtime_ns == written  # nothing decided since: not written again


def test_a_cancel_its_worker_never_reached_ends_cancelled_at_the_restart(tmp_path):
    """The server stopped (or the worker died) after the cancel was asked and before a worker saw it: the job is
    not queued again, and the catalogue says `cancelled` (before, the job was cancelled and the row said
    shooting for good)."""
    config = {"state_dir": str(tmp_path / "state"), "keys": [KEY_A, KEY_B], "workers": 0}
    with TestClient(create_app(ServerConfig(**config))) as c:
        store = c.app.state.service.store
        cid = c.post("/v1/catalogues", json={**CATALOGUE, "products": CATALOGUE["products"][1:]}, headers=A)
        cid = cid.json()["id"]
        job = store.claim("worker-0")  # a worker took it ...
        store.update_film(cid, status="shooting")
        assert c.post(f"/v1/catalogues/{cid}/cancel", headers=A).json()["status"] == "shooting"
        assert store.job(job.id).cancel and store.job(job.id).state == "running"  # ... and died before it saw
    with TestClient(create_app(ServerConfig(**config))) as c:
        view = c.get(f"/v1/catalogues/{cid}", headers=A).json()
        assert view["status"] == "cancelled" and "resume" in view["error"], view
        store = c.app.state.service.store
        assert [j.state for j in store.jobs(cid)] == ["cancelled"] and store.claim("w") is None
        assert c.post(f"/v1/catalogues/{cid}/resume", headers=A).status_code == 202


def test_shadow_false_makes_the_main_on_white_with_no_shadow(client, tmp_path):
    """`shadow: false` in the request is `main.py catalogue --no-shadow`: the drawn main's contact shadow goes."""
    import numpy as np
    from PIL import Image

    def shade_below_the_product(shadow: bool | None) -> int:
        """How far from white the rows under the product are, summed: its contact shadow, and the soft edge
        a 192 px draft gets when it is resized to Amazon's 2000 px."""
        body = {"products": [CATALOGUE["products"][1]], "scenes": ["product_only"], "platforms": ["amazon"],
                "render_side": 192, **({} if shadow is None else {"shadow": shadow})}  # fmt: skip
        r = client.post("/v1/catalogues", json=body, headers=A)
        assert r.status_code == 202, r.text
        view = wait_done(client, r.json()["id"])
        assert view["status"] == "done", view["error"]
        (png,) = [f for f in view["files"] if f.startswith("amazon/") and f.endswith(".png")]
        with Image.open(tmp_path / "state" / "runs" / view["id"] / png) as im:
            a = np.asarray(im.convert("L")).astype(int)
        rows = np.nonzero((a < 200).any(axis=1))[0]  # the product's own pixels, not its soft shadow
        return int((255 - a[rows.max() + 1 :]).sum())

    shaded = shade_below_the_product(None)  # by default the main keeps its contact shadow
    bare = shade_below_the_product(False)
    assert bare < shaded / 4, (bare, shaded)
