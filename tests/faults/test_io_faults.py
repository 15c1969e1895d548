"""Faults from outside: image servers that drip, hang, fail or lie; images that are bombs, 16-bit or not files;
model text with NUL, 10,000 characters or an infinite duration. Each case is bounded in time."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from faults.image_server import Drip, Garbage, Hang, ImageServer, Json, Status, refused_url
from faults.image_server import Image as ImageReply
from PIL import Image

from agent.rundir import load_references
from evals.calibrate_critic import photo_scene
from tools.critique import CritiqueConfig, critique_files
from tools.errors import SettingsError
from tools.film import SHOT_TEXT_LIMITS, Shot, Storyboard
from tools.generate_image import BackendError, DraftBackend, ImageRequest, RemoteImageBackend
from tools.images import MAX_PIXELS, ImageError, ImageTooLarge, open_image


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header then declares width x height: tiny on disk, huge once decoded."""
    data = bytearray(png_bytes(Image.new("L", (1, 1))))
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.fixture
def config(tmp_path) -> CritiqueConfig:
    return CritiqueConfig(clip_model="none", vlm_base_url=None, vlm_model=None)


@pytest.fixture
def server():
    with ImageServer(default_png=png_bytes(Image.new("RGB", (64, 48), (10, 120, 200)))) as s:
        yield s


def request(tmp_path) -> ImageRequest:
    return ImageRequest(prompt="a cup", width=64, height=48, seed=7, output_path=str(tmp_path / "take.png"))


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    except BaseException as exc:
        return exc, time.monotonic() - start
    raise AssertionError("expected a failure")


# --- the remote image backend: total deadlines, bounded retries, one-line failures ----------------------------


@pytest.mark.parametrize("interval", [0.25, 20.0])
def test_dripping_server_is_cut_off_at_the_deadline(server, tmp_path, interval):
    """Headers, then one byte per interval: each read is quick (0.25 s) or slow (20 s); the whole answer is cut at
    the total deadline either way, and a timeout is not asked again."""
    server.script([Drip(interval)])
    backend = RemoteImageBackend(server.base_url, timeout=1.5, max_retries=2)
    err, took = timed(lambda: backend.generate(request(tmp_path)))
    assert isinstance(err, BackendError) and 1.4 < took < 4.0
    assert str(err).startswith(f"image server {server.base_url} timed out after 1.5 s total")
    assert "\n" not in str(err) and server.hits == 1


def test_hanging_server_times_out(server, tmp_path):
    server.script([Hang()])
    err, took = timed(lambda: RemoteImageBackend(server.base_url, timeout=1.0).generate(request(tmp_path)))
    assert isinstance(err, BackendError) and "timed out after 1 s" in str(err) and took < 2.5


def test_refused_connection_is_retried_within_count_and_time(tmp_path):
    url = refused_url()
    backend = RemoteImageBackend(url, timeout=2.0, max_retries=2)
    err, took = timed(lambda: backend.generate(request(tmp_path)))
    assert isinstance(err, BackendError) and took < 6.0
    message = str(err)
    assert message.startswith(f"image server {url} could not be reached") and "3 tries" in message
    assert "\n" not in message


def test_http_500_is_retried_then_named(server, tmp_path):
    server.script([Status(500, "CUDA out of memory")])
    err, _ = timed(
        lambda: RemoteImageBackend(server.base_url, timeout=2.0, max_retries=1).generate(request(tmp_path))
    )
    assert (
        isinstance(err, BackendError) and "HTTP 500: CUDA out of memory" in str(err) and "2 tries" in str(err)
    )
    assert server.hits == 2

    server.script([Status(503), ImageReply(server.default_png)])  # a retry that mends it
    res = RemoteImageBackend(server.base_url, timeout=2.0, max_retries=1).generate(request(tmp_path))
    assert Image.open(res.path).size == (64, 48) and server.hits == 2


@pytest.mark.parametrize(
    "reply,words",
    [
        (Garbage(), "a body that is not JSON"),
        (Json({"created": 0, "data": []}), "without an image"),
        (Json({"created": 0, "data": [{"url": "http://elsewhere/x.png"}]}), "without an image"),
        (Json([1, 2, 3]), "without an image"),
        (Json({"data": [{"b64_json": "not base64 at all!"}]}), "not an image"),
        (ImageReply(b"GIF89a but truncated"), "not an image"),
        (ImageReply(bomb_png(100_000, 100_000)), "too large"),
        (ImageReply(bomb_png(9000, 9000)), "too large"),  # under Pillow's own limit, over ours
    ],
)
def test_bad_answers_are_one_line_failures_not_asked_again(server, tmp_path, reply, words):
    server.script([reply])
    err, took = timed(
        lambda: RemoteImageBackend(server.base_url, timeout=2.0, max_retries=2).generate(request(tmp_path))
    )
    assert isinstance(err, BackendError), err
    assert str(err).startswith(f"image server {server.base_url} ") and words in str(err)
    assert "\n" not in str(err) and server.hits == 1 and took < 2.0
    assert not (tmp_path / "take.png").exists()


def test_oversized_answer_body_is_refused(server, tmp_path):
    server.script([Json({"data": [{"b64_json": "A" * 4096}]})])
    backend = RemoteImageBackend(server.base_url, timeout=2.0, max_retries=0)
    backend.max_body_bytes = 1024
    err, _ = timed(lambda: backend.generate(request(tmp_path)))
    assert isinstance(err, BackendError) and "larger than" in str(err)


# --- images from anywhere: the pixel limit, every mode, special files -----------------------------------------


def test_bomb_png_is_refused_everywhere_it_can_enter(tmp_path, config):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(100_000, 100_000))
    assert bomb.stat().st_size < 200
    near = tmp_path / "near.png"  # past our limit, under Pillow's (no DecompressionBombError from Pillow)
    near.write_bytes(bomb_png(9000, 9000))
    good = tmp_path / "good.png"
    photo_scene(random.Random(1), (640, 360)).save(good)

    for path in (bomb, near):
        with pytest.raises(ImageTooLarge, match="pixels"):
            open_image(path)
    assert 9000 * 9000 > MAX_PIXELS > 4096 * 4096

    out = critique_files([str(bomb), str(good), str(near)], "a scene", config=config)
    assert "100000x100000" in out[0]["error"] or "pixels" in out[0]["error"]
    assert out[1]["pass"] is True and "error" not in out[1]  # the batch goes on past the bomb
    assert "9000x9000" in out[2]["error"] and "limit" in out[2]["error"]

    with pytest.raises(SettingsError, match="--reference .*bomb.png.*pixels"):
        load_references([str(good), str(bomb)])

    draft = DraftBackend()  # an edit input (outpaint from a take) through the same opener
    with pytest.raises(ImageTooLarge):
        draft.generate(
            ImageRequest(
                prompt="x", width=64, height=64, seed=1, init_image=str(near), outpaint=True,
                output_path=str(tmp_path / "out.png"),
            )
        )  # fmt: skip


def test_sixteen_bit_and_other_modes_are_judged_on_their_content(tmp_path, config):
    scene = photo_scene(random.Random(3), (320, 180))
    grey8 = np.asarray(scene.convert("L"), dtype=np.float64)

    grey16 = Image.fromarray((grey8 * 257).astype(np.uint16))  # the same picture at 16 bits
    grey16.save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    assert np.asarray(Image.open(tmp_path / "g16.png").convert("RGB")).mean() > 250  # Pillow alone: white
    seen = np.asarray(open_image(tmp_path / "g16.png").convert("L"), dtype=np.float64)
    assert np.abs(seen - grey8).max() <= 1

    Image.fromarray((grey8 * 257).astype(np.int32)).save(tmp_path / "g32.tif")
    assert (
        np.abs(np.asarray(open_image(tmp_path / "g32.tif").convert("L"), dtype=np.float64) - grey8).max() <= 1
    )

    rgb = np.asarray(scene, dtype=np.float64)
    scene.quantize(256).save(tmp_path / "p.png")
    scene.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    opaque = scene.copy()
    opaque.putalpha(255)
    opaque.save(tmp_path / "rgba.png")
    la = scene.convert("LA")
    la.save(tmp_path / "la.png")
    assert np.abs(np.asarray(open_image(tmp_path / "rgba.png"), dtype=np.float64) - rgb).max() == 0
    assert (
        np.abs(np.asarray(open_image(tmp_path / "la.png").convert("L"), dtype=np.float64) - grey8).max() <= 1
    )
    assert np.abs(np.asarray(open_image(tmp_path / "p.png"), dtype=np.float64) - rgb).mean() < 12
    assert np.abs(np.asarray(open_image(tmp_path / "cmyk.jpg"), dtype=np.float64) - rgb).mean() < 12

    clear = Image.new("RGBA", (320, 180), (0, 0, 0, 0))  # transparent with black beneath: shows nothing
    clear.save(tmp_path / "clear.png")
    assert (
        np.asarray(open_image(tmp_path / "clear.png")).min() == 255
    )  # laid over white, not its hidden black

    names = ["g16.png", "g32.tif", "p.png", "cmyk.jpg", "rgba.png", "la.png"]
    out = critique_files([str(tmp_path / n) for n in names], "a scene", config=config)
    for name, result in zip(names, out, strict=True):
        categories = {i["category"] for i in result["issues"]}
        assert "blank" not in categories and "exposure" not in categories, (name, result["issues"])
    assert critique_files([str(tmp_path / "clear.png")], "a scene", config=config)[0]["pass"] is False


def test_fifo_and_device_are_refused_without_blocking(tmp_path, config):
    fifo = tmp_path / "take.png"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    photo_scene(random.Random(2), (640, 360)).save(good)
    results: list = []
    worker = threading.Thread(
        target=lambda: results.append(
            critique_files([str(fifo), "/dev/zero", str(good)], "x", config=config)
        ),
        daemon=True,
    )
    start = time.monotonic()
    worker.start()
    worker.join(20)
    if worker.is_alive():  # unblock the reader so the test run ends, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("critique blocked on a FIFO")
    out = results[0]
    assert time.monotonic() - start < 20
    assert "FIFO" in out[0]["error"] and "take.png" in out[0]["error"]
    assert "a device" in out[1]["error"] and out[2]["pass"] is True

    with pytest.raises(SettingsError, match="--reference .*FIFO"):
        load_references([str(fifo)])
    with pytest.raises(ImageError, match="a folder"):
        open_image(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_image(tmp_path / "gone.png")


def test_chat_reference_goes_through_the_safe_opener(tmp_path):
    """The chat's `reference` (agent/reference_image.py): bombs, FIFOs and corrupt files refused in one line,
    without blocking; a 16-bit photo kept as what it shows."""
    from agent.operation_args import OperationError
    from agent.reference_image import copy_reference
    from agent.settings import RunSettings

    root = tmp_path / "run"
    root.mkdir()
    settings = RunSettings(run_dir=str(root))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(100_000, 100_000))
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    corrupt = tmp_path / "cut-off.png"
    corrupt.write_bytes(png_bytes(photo_scene(random.Random(4), (320, 180)))[:400])  # a download cut short

    for path, words in [
        (bomb, "megapixels"),
        (fifo, "FIFO"),
        (corrupt, "not an image"),
        (tmp_path / "gone.png", "no such file"),
    ]:
        outcome: list = []
        worker = threading.Thread(
            target=lambda p=path, o=outcome: o.append(_refusal(copy_reference, root, str(p), settings))
        )
        worker.start()
        worker.join(10)
        if worker.is_alive():
            with open(fifo, "wb"):
                pass
            pytest.fail(f"copy_reference blocked on {path.name}")
        err = outcome[0]
        assert isinstance(err, OperationError) and words in str(err) and "\n" not in str(err), (path, err)
    assert not (root / "refs").exists()  # nothing copied from any of them

    grey8 = np.asarray(photo_scene(random.Random(5), (320, 180)).convert("L"), dtype=np.float64)
    Image.fromarray((grey8 * 257).astype(np.uint16)).save(tmp_path / "g16.png")
    rel = copy_reference(root, str(tmp_path / "g16.png"), settings)
    kept = np.asarray(Image.open(root / rel).convert("L"), dtype=np.float64)
    assert np.abs(kept - grey8).max() <= 1  # not the white that Pillow's convert makes of it


def _refusal(fn, *args):
    try:
        fn(*args)
    except Exception as err:
        return err
    return None


# --- model text at the boundary: the Shot model ---------------------------------------------------------------


def storyboard_json(**shot) -> str:
    base = {
        "id": "s01", "index": 1, "kind": "wide", "description": "a cup", "camera": "static", "lighting": "soft",
        "mood": "calm", "duration": 2.0, "prompt": "a cup on a desk",
    }  # fmt: skip
    board = {
        "title": "t",
        "lang": "en",
        "width": 64,
        "height": 64,
        "planner": "llm:m",
        "shots": [{**base, **shot}],
    }
    return json.dumps(board)


def test_nul_and_ten_thousand_character_subtitle_are_cleaned_where_they_enter():
    text = storyboard_json(
        subtitle="Hello\u0000 world\x1b[31m\u202e" + "x" * 10_000,
        description="line one\r\nline two\ttab",
        prompt="p" * 50_000,
        expect_text="\x00",
        speaker="\ud800Ann",
    )
    start = time.monotonic()
    shot = Storyboard.model_validate(json.loads(text)).shots[0]  # as a model answer is parsed
    assert time.monotonic() - start < 1.0
    assert shot.subtitle.startswith("Hello world[31m") and len(shot.subtitle) <= SHOT_TEXT_LIMITS["subtitle"]
    assert not any(ord(c) < 32 or c == "\u202e" for c in shot.subtitle + shot.description)
    assert shot.description == "line one line two tab"
    assert len(shot.prompt) == SHOT_TEXT_LIMITS["prompt"]
    assert shot.expect_text is None and shot.speaker == "Ann"
    shot.model_dump_json().encode("utf-8")  # no lone surrogate survives to a file
    assert Shot.model_validate(shot.model_dump()) == shot  # cleaning again changes nothing


@pytest.mark.parametrize("duration", ["Infinity", "NaN", "1e308", "-1", "0"])
def test_absurd_durations_are_refused_with_a_clear_message(duration):
    text = storyboard_json().replace('"duration": 2.0', f'"duration": {duration}')
    with pytest.raises(ValueError) as info:
        Storyboard.model_validate(json.loads(text))  # json.loads reads Infinity and NaN, as model answers do
    message = str(info.value)
    assert "shots.0.duration" in message
    assert "at most 600" in message or "greater than 0" in message


@pytest.mark.parametrize("duration", [float("inf"), float("nan"), 1e308, -2.0, 601.0])
def test_the_llm_planners_absurd_duration_is_refused_and_asked_again(duration):
    """PlannedShot.duration (the LLM planner's answer) is bounded as Shot.duration is; the model is told why."""
    from llm_server import ChatServer
    from test_llm_paths import BRIEF, board, good, shot
    from test_llm_paths import config as planner_config

    from tools.plan import plan_storyboard, read_brief

    with ChatServer() as server:
        server.script([board([shot(0), shot(1, duration=duration), shot(2), shot(3)]), good()])
        start = time.monotonic()
        storyboard = plan_storyboard(read_brief(BRIEF), planner_config(server))
        assert time.monotonic() - start < 30
    durations = [s.duration for s in storyboard.shots]
    assert all(0 < d < 12 for d in durations) and abs(sum(durations) - 12.0) < 0.05, durations
    assert len(server.requests) == 2
    asked_again = json.dumps(server.requests[1]["messages"])
    assert "shots.1.duration" in asked_again and "at most 600" in asked_again
