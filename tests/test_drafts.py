"""Draft panels a client can read: subject silhouettes, reference photos, the scene's look, slogans, title safety."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tools.critics.ocr import read_text
from tools.draft_panel import TITLE_SAFE, render_panel, scene_look
from tools.film import Shot
from tools.generate_image import DraftBackend, ImageRequest
from tools.silhouettes import DRAWINGS, draw_subject, reference_sprite, subject_kind


def make_shot(kind: str = "medium", **kw) -> Shot:
    fields = {
        "id": "s01",
        "index": 1,
        "kind": kind,
        "description": "A commuter on a quiet street wearing noise-cancelling headphones.",
        "camera": "slow push-in, 35mm",
        "lighting": "soft daylight",
        "mood": "calm",
        "duration": 2.0,
        "prompt": "a commuter, headphones",
    }
    return Shot(**(fields | kw))


def alpha_mask(kind: str) -> np.ndarray:
    """The silhouette's coverage on a common 200x200 canvas, centred."""
    sprite = draw_subject(kind, 180, (60, 70, 90), (220, 200, 160), (10, 10, 10))
    sprite.thumbnail((200, 200))
    canvas = Image.new("L", (200, 200), 0)
    canvas.paste(sprite.getchannel("A"), ((200 - sprite.width) // 2, (200 - sprite.height) // 2))
    return np.asarray(canvas) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_silhouettes_differ_by_kind():
    masks = {k: alpha_mask(k) for k in DRAWINGS}
    assert iou(masks["headphones"], masks["bottle"]) < 0.3
    for a in masks:
        for b in masks:
            if a < b:
                assert iou(masks[a], masks[b]) < 0.8, (a, b)
    # Headphones are a band over two cups: the middle below the band is open; a bottle is solid in its middle.
    hp = masks["headphones"]
    assert not hp[140:190, 95:105].any() and hp[140:190, 20:60].any() and hp[140:190, 140:180].any()
    assert masks["bottle"][100:150, 95:105].all()


@pytest.mark.parametrize(
    ("given", "words", "shot_kind", "expected"),
    [
        ("headphones", "", "medium", "headphones"),
        ("Bottle", "", "medium", "bottle"),
        (None, "Close on the matte black ear cups of the wireless headphones", "close-up", "headphones"),
        (None, "INT. SUBWAY CAR - NIGHT. A tired nurse slumps in a seat", "medium", "person"),
        (None, "Her hands wrap around the insulated bottle", "close-up", "bottle"),
        (None, "手工陶瓷咖啡杯，清晨的厨房", "hero", "mug"),
        (None, "保温杯放在登山包旁边", "hero", "bottle"),
        (None, "Two hikers on a ridge at dawn", "wide", "person"),
        (None, "nothing named here", "hero", "product"),
    ],
)
def test_subject_kind_from_field_or_words(given, words, shot_kind, expected):
    assert subject_kind(given, words, shot_kind) == expected


def test_panel_draws_the_shot_subject_kind(tmp_path):
    shot = make_shot("close-up", description="The product on a table.", prompt="the product on a table")
    _, params = render_panel(width=640, height=360, seed=1, prompt=shot.prompt, shot=shot)
    assert params["subject"] == "product"
    shot = shot.model_copy(update={"subject_kind": "headphones"})  # the planner's field, when it sets it
    _, params = render_panel(width=640, height=360, seed=1, prompt=shot.prompt, shot=shot)
    assert params["subject"] == "headphones" and params["drawn"] == "headphones"


def white_product_photo(path) -> None:
    """A product shot as clients send them: a red body and a blue cap on a white sweep, with sensor noise."""
    im = Image.new("RGB", (400, 600), (250, 250, 248))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([130, 160, 270, 560], radius=30, fill=(205, 30, 40))
    d.rectangle([165, 80, 235, 170], fill=(30, 60, 175))
    noisy = np.asarray(im, np.float32) + np.random.default_rng(0).normal(0, 2.5, (600, 400, 3))
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path)


def test_reference_photo_is_cut_out_and_placed_at_the_framing(tmp_path):
    ref = tmp_path / "product.png"
    white_product_photo(ref)
    sprite = np.asarray(reference_sprite(str(ref)))
    assert sprite[..., 3][5, 5] == 0 and sprite[sprite.shape[0] // 2, sprite.shape[1] // 2, 3] == 255
    boxes = {}
    for kind in ("close-up", "establishing"):
        shot = make_shot(kind, description="The bottle at night in a dark room.", lighting="night, lamp")
        out = tmp_path / f"{kind}.png"
        res = DraftBackend().generate(
            ImageRequest(prompt=shot.prompt, width=640, height=360, seed=2, output_path=str(out), shot=shot,
                         reference_images=[str(ref)])
        )  # fmt: skip
        assert res.parameters["drawn"] == "reference"
        x0, y0, x1, y1 = boxes[kind] = res.parameters["subject_box"]
        px = np.asarray(Image.open(out).convert("RGB"), np.int16)[y0:y1, x0:x1].reshape(-1, 3)
        red = (px[:, 0] > 140) & (px[:, 1] < 80) & (px[:, 2] < 90)
        blue = (px[:, 2] > 120) & (px[:, 0] < 80)
        white = (px > 225).all(axis=1)
        assert red.mean() > 0.3 and blue.any(), kind
        assert white.mean() < 0.02, f"{kind}: the white background was not removed"
    close, far = boxes["close-up"], boxes["establishing"]
    assert (close[3] - close[1]) > 3 * (far[3] - far[1]), "close-up large, establishing small"


def luma(img: Image.Image) -> float:
    return float(np.asarray(img.convert("L"), np.float32).mean() / 255)


def test_night_interior_is_darker_than_day_exterior_and_still_passes_exposure(tmp_path):
    from agent.settings import RunSettings
    from tools.critique import CritiqueRequest, critique_image

    night = make_shot("medium", description="INT. SUBWAY CAR - NIGHT. A nurse dozes in her seat.",
                      lighting="fluorescent strip lights", mood="tired")  # fmt: skip
    day = make_shot("medium", description="A hiker on a sunny mountain trail.", lighting="bright daylight")
    assert scene_look("INT. SUBWAY CAR - NIGHT", "", "medium").place == "carriage"
    assert scene_look("", night.description, "medium").time == "night"
    assert scene_look("EXT. BEACH - DAWN", "", "wide") == scene_look("", "a beach at dawn", "wide")
    assert scene_look("", "rain on the window of the kitchen", "medium").weather == "rain"
    settings = RunSettings(run_dir=str(tmp_path), image_backend="draft", image_model=None, video_model=None)
    values = {}
    for name, shot in (("night", night), ("day", day)):
        img, params = render_panel(width=640, height=360, seed=3, prompt=shot.prompt, shot=shot)
        values[name] = luma(img)
        path = tmp_path / f"{name}.png"
        img.save(path)
        verdict = critique_image(CritiqueRequest(image_path=str(path), prompt=shot.prompt, width=640, height=360),
                                 settings)  # fmt: skip
        assert verdict.passed, (name, verdict.issues)
    assert values["night"] < values["day"] - 0.15, values
    assert values["night"] < 0.3


@pytest.mark.parametrize("slogan", ["Silence, redesigned.", "静享此刻，安静由你"])
@pytest.mark.parametrize("kind", ["hero", "medium"])
def test_requested_text_is_composited_and_reads_back(tmp_path, slogan, kind):
    shot = make_shot(kind, expect_text=slogan)
    img, params = render_panel(width=1280, height=720, seed=4, prompt=shot.prompt, shot=shot)
    read = "".join(t for t, _, _ in read_text(img)).replace(" ", "")
    assert slogan.replace(" ", "") in read, read
    assert params["text_box"][3] <= 720 * (1 - TITLE_SAFE)


def test_quoted_slogan_in_the_prompt_is_drawn_without_a_shot(tmp_path):
    img, params = render_panel(
        width=960, height=540, seed=1, prompt='hero packshot, the words "Cold for 24 hours"'
    )
    assert params["text"] == "Cold for 24 hours"
    assert "Coldfor24hours" in "".join(t for t, _, _ in read_text(img)).replace(" ", "")


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280), (1024, 1024)])
def test_no_text_in_the_title_safe_band(tmp_path, monkeypatch, size):
    from tools import draft_panel

    w, h = size
    band_top = round(h * (1 - TITLE_SAFE))
    long_slogan = "A very long slogan that has to wrap over several lines to fit the frame of this film"
    for kind in ("hero", "close-up", "wide", "detail"):
        shot = make_shot(kind, description="A long description " * 6, expect_text=long_slogan)
        img, params = render_panel(width=w, height=h, seed=5, prompt=shot.prompt, shot=shot)
        with monkeypatch.context() as m:  # the same panel with nothing written on it
            m.setattr(draft_panel, "composite_text", lambda image, layout: None)
            without, _ = render_panel(width=w, height=h, seed=5, prompt=shot.prompt, shot=shot)
        assert params["text_box"][3] <= band_top
        changed = np.abs(np.asarray(img, np.int16) - np.asarray(without, np.int16)).max(axis=2) > 0
        assert changed[:band_top].any() and not changed[band_top:].any(), kind
        words = [
            t for t, _, _ in read_text(img.crop((0, band_top, w, h))) if sum(ch.isalnum() for ch in t) >= 3
        ]
        assert words == [], (kind, words)


def test_film_frames_carry_no_metadata_and_the_sheet_does(tmp_path):
    shot = make_shot("wide", index=3)
    frame, sheet = tmp_path / "frame.png", tmp_path / "sheet.png"
    for backend, out in ((DraftBackend(), frame), (DraftBackend(annotate=True), sheet)):
        backend.generate(ImageRequest(prompt=shot.prompt, width=1280, height=720, seed=1, output_path=str(out),
                                      shot=shot))  # fmt: skip
    frame_text = " ".join(t for t, _, _ in read_text(Image.open(frame).convert("RGB")))
    sheet_text = " ".join(t for t, _, _ in read_text(Image.open(sheet).convert("RGB")))
    assert "SHOT" not in frame_text and "CAMERA" not in frame_text, frame_text
    assert "SHOT" in sheet_text and "CAMERA" in sheet_text, sheet_text
