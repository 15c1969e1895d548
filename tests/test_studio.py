"""The studio in headless Chromium (Playwright): submit a brief, edit a shot, approve, watch the progress reach
100%, play the film. Screenshots of each step go to the test's temporary folder (and STUDIO_SHOTS if set)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="no system Chromium (apt-get install chromium); Playwright's own download is not reachable here",
)
KEY = "studio-key-" + "x" * 16


@pytest.fixture
def server(tmp_path):
    import uvicorn

    from agent.server import ServerConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerConfig(state_dir=str(tmp_path / "state"), keys=[KEY], workers=1))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_studio_brief_edit_approve_progress_and_play(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots_dir = Path(os.environ.get("STUDIO_SHOTS", tmp_path / "screens"))
    shots_dir.mkdir(parents=True, exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None)
        page.goto(server + "/")
        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("heading", name="New film")).to_be_visible()
        page.screenshot(path=shots_dir / "1-studio.png")

        page.get_by_label("Brief").fill("a 6-second film about a paper boat on a rainy street")
        page.get_by_label("Shots").fill("2")
        page.get_by_role("button", name="Make the film").click()
        expect(page.get_by_role("status")).to_have_text("waiting for approval", timeout=120_000)
        expect(page.locator(".panel")).to_have_count(2)
        page.screenshot(path=shots_dir / "2-storyboard.png")

        page.get_by_label("Line 2").fill("Home before dark")
        page.get_by_label("Look 2").fill("night")
        page.locator(".panel").nth(1).get_by_role("button", name="Save shot").click()
        expect(page.locator("#chat-log")).to_contain_text("changed s02")
        expect(page.get_by_label("Line 2")).to_have_value("Home before dark")
        page.get_by_label("Message").fill("make shot 1 a close-up")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#chat-log")).to_contain_text("close-up")
        page.screenshot(path=shots_dir / "3-edited.png")

        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=240_000)
        expect(page.get_by_role("status")).to_have_text("done")
        video = page.get_by_label("Film", exact=True)
        page.wait_for_function(
            "() => { const v = document.querySelector('#player'); return v && v.readyState >= 2 && v.duration > 0; }",
            timeout=60_000,
        )
        duration = video.evaluate("v => v.duration")
        assert duration > 2
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("() => document.querySelector('#player').currentTime > 0.2", timeout=30_000)
        expect(page.locator("#downloads")).to_contain_text("final.srt")
        expect(page.get_by_role("link", name="Everything (zip of the run)")).to_have_attribute(
            "href", re.compile(r"^/v1/films/\w+/zip$")
        )
        expect(page.locator(".panel .still").first).to_be_visible()
        expect(page.locator(".takes").first).to_contain_text("kept")
        page.screenshot(path=shots_dir / "4-film.png", full_page=True)

        page.get_by_role("button", name="中文").click()
        expect(page.get_by_role("heading", name="新影片")).to_be_visible()
        expect(page.get_by_role("status")).to_have_text("完成")
        page.screenshot(path=shots_dir / "5-zh.png")
        browser.close()
    assert outside == [], f"the studio fetched from outside the server: {outside}"


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
CHINESE_TITLE = "创意导演"


def _signed_in(p, server):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None)
    page.goto(server + "/")
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    # The sign-in page has a heading too: wait for its key field to go (the session cookie is set and the
    # page reloaded into the studio), or a loaded machine runs the test's next request without the cookie.
    page.get_by_label("API key").wait_for(state="detached")
    page.get_by_role("heading", level=1).wait_for()
    return browser, page, outside


def test_studio_in_chinese_draws_real_glyphs_not_boxes(server, tmp_path):
    """Chinese in the studio is drawn by the font it serves itself. Fails if the glyphs are boxes: the font the
    heading is drawn with must be the served one, its glyphs for different characters must differ (every
    missing glyph is the same box), and OCR must read the heading back as Chinese."""
    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright
    from rapidocr import RapidOCR

    shots_dir = Path(os.environ.get("STUDIO_SHOTS", tmp_path / "screens"))
    shots_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser, page, outside = _signed_in(p, server)
        page.get_by_role("button", name="中文").click()
        title = page.get_by_role("heading", name=CHINESE_TITLE)
        expect(title).to_be_visible()
        page.evaluate("document.fonts.ready")
        page.wait_for_function("() => document.fonts.check('32px StudioCJK', '创意导演')", timeout=30_000)
        page.screenshot(path=shots_dir / "zh-studio.png")
        title.evaluate("h => { h.style.fontSize = '64px'; }")
        title.screenshot(path=tmp_path / "zh-title.png")
        cdp = page.context.new_cdp_session(page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        doc = cdp.send("DOM.getDocument")
        node = cdp.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "h1"})
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
        # Each character drawn alone in the page's own font stack: a box is the same picture for all of them.
        prints = page.evaluate(
            """(chars) => chars.map((ch) => {
                const c = document.createElement('canvas'); c.width = c.height = 64;
                const g = c.getContext('2d'); g.font = '48px ' + getComputedStyle(document.body).fontFamily;
                g.fillStyle = '#000'; g.fillRect(0, 0, 64, 64); g.fillStyle = '#fff'; g.fillText(ch, 4, 52);
                return Array.from(g.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 0)).join(',');
            })""",
            list("创意导演批准并拍摄"),
        )
        browser.close()
    assert outside == [], f"the studio fetched from outside the server: {outside}"
    assert any(f["isCustomFont"] and f["glyphCount"] >= len(CHINESE_TITLE) for f in fonts), fonts
    assert len(set(prints)) == len(prints), "two different characters drew the same picture: boxes"
    assert all(any(v != "0" for v in p.split(",")) for p in prints), "a character drew nothing"
    engine = RapidOCR(params={"Global.log_level": "warning"})
    text = "".join(
        engine(np.asarray(Image.open(tmp_path / "zh-title.png").convert("RGB")), use_cls=False).txts or ()
    )
    assert sum(ch in text for ch in CHINESE_TITLE) >= 3, (
        f"the heading {CHINESE_TITLE!r} read back as {text!r}"
    )


def test_api_docs_page_works_offline(server):
    """/docs is Swagger UI 5 served from the installed fastapi-offline package, not a CDN: it renders the API's
    operations with no request leaving the server."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser, page, outside = _signed_in(p, server)
        page.goto(server + "/docs")
        expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        expect(page.locator(".opblock-summary-path", has_text="/v1/films/{film_id}/zip")).to_have_count(1)
        browser.close()
    assert outside == [], f"the docs fetched from outside the server: {outside}"


def test_studio_review_page_shows_catalogue_images_and_records_a_decision(server, tmp_path):
    """A catalogue's B images sit in the studio's review queue with their picture, SKU, scene, platform and
    reasons; Approve there is recorded in the catalogue's records.db and stays after a reload."""
    import json
    import sqlite3

    import httpx
    from playwright.sync_api import expect, sync_playwright

    from agent.jobs import JobStore

    shots_dir = Path(os.environ.get("STUDIO_SHOTS", tmp_path / "screens"))
    shots_dir.mkdir(parents=True, exist_ok=True)
    h = {"Authorization": f"Bearer {KEY}"}
    body = {"products": [{"sku": "HP-01", "name": "Studio headphones", "category": "electronics"},
                         {"sku": "MUG-7", "name": "手工陶瓷杯", "category": "home"}],
            "scenes": ["studio"], "platforms": ["instagram"], "render_side": 192}  # fmt: skip
    cid = httpx.post(f"{server}/v1/catalogues", json=body, headers=h, timeout=30).json()["id"]
    end = time.time() + 300
    while httpx.get(f"{server}/v1/catalogues/{cid}", headers=h).json()["status"] not in ("done", "failed"):
        assert time.time() < end, "the catalogue did not finish"
        time.sleep(0.3)
    root = tmp_path / "state" / "runs" / cid
    db = sqlite3.connect(root / "records.db")
    db.execute(
        "update records set grade = 'B', issues = ?", (json.dumps(["sharpness: edge strength 0.18 is soft"]),)
    )
    db.commit()
    db.close()
    JobStore(tmp_path / "state" / "jobs.sqlite").update_film(cid)
    with sync_playwright() as p:
        browser, page, outside = _signed_in(p, server)
        page.get_by_role("button", name="English").click()
        queue = page.get_by_role("list", name="Review queue")
        item = queue.locator("li[data-kind=image]").filter(has_text="SKU HP-01")
        expect(item).to_contain_text("studio · instagram · grade B")
        expect(item).to_contain_text("sharpness: edge strength 0.18 is soft")
        expect(queue.locator("li[data-kind=image]")).to_have_count(2)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#review li[data-kind=image] img')]"
            ".every((i) => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        page.screenshot(path=shots_dir / "review-1-queue.png", full_page=True)
        item.get_by_role("button", name="Approve").click()
        # The decision changes its lines of review.jsonl before it answers (the QC page is written later).
        expect(queue.locator("li[data-kind=image]").filter(has_text="SKU HP-01")).to_contain_text(
            "approved", timeout=60_000
        )
        page.reload()
        page.get_by_role("heading", level=1).wait_for()
        expect(queue.locator("li[data-kind=image]").filter(has_text="SKU HP-01")).to_contain_text(
            "approved", timeout=30_000
        )
        expect(queue.locator("li[data-kind=image]").filter(has_text="SKU MUG-7")).not_to_contain_text(
            "approved"
        )
        page.screenshot(path=shots_dir / "review-2-decided.png", full_page=True)
        browser.close()
    assert outside == [], f"the studio fetched from outside the server: {outside}"
    db = sqlite3.connect(root / "records.db")
    assert db.execute("select sku, status from records order by sku").fetchall() == [
        ("HP-01", "approved"),
        ("MUG-7", "new"),
    ]
    db.close()
