"""report.html for the people who decide: the film first, the shot list, what needs a decision, every take.

The page is read as HTML (structure, escaping, the embedded font) and, where Chromium is installed, opened in
headless Chromium: a screenshot of the Chinese title is read back by OCR, and Chromium's own account of the
fonts it drew the title with names the embedded font (this machine has no CJK font of its own).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent import director
from agent.report import write_report
from agent.rundir import RunDir
from agent.settings import RunSettings
from tools.film import Brief

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TITLE = "灯塔守望者的最后一夜"
NOTE = "让海面下起雨"
BRIEF = Brief(text="灯塔守望者的最后一夜。他点亮了灯。海浪回应了他。", lang="zh")


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """A two-platform Chinese film whose second shot was redone with a note."""
    root = tmp_path_factory.mktemp("report") / "run"
    settings = RunSettings(
        run_dir=str(root), platform="tiktok", platforms=["tiktok", "instagram"], width=288, height=512,
        shots=2, duration=4.0, max_takes=1,
    )  # fmt: skip
    director.start(BRIEF, settings)
    again = director.redo(root, 2, NOTE)
    # A fixed title and a planner's note: the checks are about the page and its font, not about the planner.
    storyboard = again.state.storyboard.model_copy(
        update={"title": TITLE, "notes": ["对白“我们回家吧”放不下，已删去"]}
    )
    state = again.state.model_copy(update={"storyboard": storyboard})
    write_report(state, RunDir(root), settings)
    return root, state


class Page(HTMLParser):
    """The tags and visible text of a page, as lists."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._skip = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.text.append(data.strip())


def test_report_opens_with_every_cut_then_the_shot_list_and_decisions(film):
    root, _ = film
    html = (root / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    videos = [a["src"] for t, a in page.tags if t == "video"]
    assert videos == ["final.mp4", "final-instagram.mp4"]
    assert all((root / v).is_file() for v in videos)
    order = [html.index(f'id="{name}"') for name in ("film", "decisions", "shots", "details")]
    assert order == sorted(order), "film, then decisions, then the shot list, then the critics"
    text = " ".join(page.text)
    assert TITLE in text and "对白“我们回家吧”放不下，已删去" in text, "the planner's notes need a decision"
    # The shot list: a frame, the action and the copy for every shot.
    frames = [a["src"] for t, a in page.tags if t == "img" and a.get("alt", "").endswith(" frame")]
    assert frames == ["shots/s01/take-1.png", "shots/s02/take-2.png"]


def test_every_take_is_shown_with_the_redo_note_and_which_is_kept(film):
    root, state = film
    html = (root / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r'alt="(s\d\d) take (\d+)"', html)
    assert shown == [("s01", "1"), ("s02", "1"), ("s02", "2")], "the take before the redo is still shown"
    s02 = html[html.index("<summary><b>s02</b>") :]
    assert "2 takes · take 2 kept" in s02
    assert f"redo note: “{NOTE}”" in s02
    assert s02.index("take 1") < s02.index(NOTE), "the note belongs to the new take, not the old one"
    assert next(r for r in state.results if r.shot_id == "s02").best == 2


def test_no_raw_metric_dumps_and_text_is_escaped(film, tmp_path):
    root, state = film
    page = Page((root / "report.html").read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert '{"' not in text and "':" not in text, "scores are tables, not JSON"
    hostile = state.model_copy(deep=True)
    hostile.storyboard.title = '<script>alert("x")</script>'
    run = tmp_path / "copy"
    shutil.copytree(root, run)
    write_report(hostile, RunDir(run), RunSettings(run_dir=str(run)))
    out = (run / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_report_embeds_a_font_subset_holding_its_chinese(film):
    from fontTools.ttLib import TTFont

    root, _ = film
    html = (root / "report.html").read_text(encoding="utf-8")
    data = re.search(r"base64,([A-Za-z0-9+/=]+)\)", html)
    assert data, "an @font-face with the font inline"
    font = TTFont(io.BytesIO(base64.b64decode(data[1])))
    cmap = font.getBestCmap()
    chinese = {ch for ch in " ".join(Page(html).text) if "\u4e00" <= ch <= "\u9fff"}
    assert chinese and all(ord(ch) in cmap for ch in chinese)
    assert len(data[1]) < 400_000, "a subset, not the whole collection"


@pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="chromium is not installed (apt-get install chromium)"
)
def test_chinese_title_reads_as_chinese_in_headless_chromium(film, tmp_path):
    from playwright.sync_api import sync_playwright
    from rapidocr import RapidOCR

    root, _ = film
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((root / "report.html").as_uri())
        title = page.get_by_role("heading", name=TITLE)
        title.wait_for()
        page.screenshot(path=str(shot))
        title.screenshot(path=str(tmp_path / "title.png"))
        cdp = page.context.new_cdp_session(page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        doc = cdp.send("DOM.getDocument")
        node = cdp.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "#title"})
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
        browser.close()
    assert any(f["isCustomFont"] and f["glyphCount"] >= len(TITLE) for f in fonts), fonts
    engine = RapidOCR(params={"Global.log_level": "warning"})
    text = "".join(
        engine(np.asarray(Image.open(tmp_path / "title.png").convert("RGB")), use_cls=False).txts or ()
    )
    overlap = sum(ch in text for ch in TITLE) / len(TITLE)
    assert overlap >= 0.7, f"the title {TITLE!r} read back as {text!r}"
    shutil.copy(shot, Path(root) / "report-screenshot.png")  # kept beside the report as the test's artefact
