"""The offline media parts: draft panels, ffmpeg camera moves, the subtitled cut and probe.

Everything here runs the real tools (PIL, the ffmpeg inside imageio-ffmpeg with libass, rapidocr's bundled
model) at small sizes so the file stays fast. The burned-subtitle tests read the text back by OCR from a frame
of final.mp4: they fail if the CJK font setup breaks and libass draws empty boxes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.rundir import RunDir
from agent.settings import RunSettings
from tools.animate import MOTIONS, AnimateRequest, MotionBackend, select_video_backend
from tools.cut import (
    SUBTITLE_MARGIN_V,
    SUBTITLE_MAX_CHARS,
    CutConfig,
    clean_subtitle,
    cut_film,
    probe,
    subtitle_cues,
    subtitle_font_px,
    to_srt,
)
from tools.draft_panel import pick_palette
from tools.film import Clip, Shot
from tools.fonts import FONT_FAMILY, display_units, font_path, fontconfig_env, pil_font, wrap_text
from tools.generate_image import DraftBackend, ImageRequest, select_image_backend

ZH_LINES = ["城市在清晨醒来", "戴上耳机世界安静", "新品今天上市"]
EN_LINES = ["The city wakes up", "Silence on demand", "Available today"]
# A run directory whose path would break an unescaped ffmpeg filter argument.
ODD_NAME = 'run dir: it\'s "odd", [1]'


def make_shot(i: int, kind: str = "medium", subtitle: str = "", duration: float = 1.5, **kw) -> Shot:
    fields = {
        "id": f"s{i:02d}",
        "index": i,
        "kind": kind,
        "description": "A commuter crosses a quiet street at dawn wearing noise-cancelling headphones.",
        "camera": "slow push-in, 35mm, eye level",
        "lighting": "golden hour, warm key",
        "mood": "calm, premium",
        "duration": duration,
        "subtitle": subtitle,
        "prompt": "a commuter at dawn, headphones",
    }
    return Shot(**(fields | kw))


def gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255


def frame_at(video: Path, t: float, out: Path) -> Path:
    import imageio_ffmpeg

    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{t:.3f}", "-i", str(video),
         "-frames:v", "1", str(out)],
        check=True,
    )  # fmt: skip
    return out


def read_frames(video: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(video))
    meta = next(gen)
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3).astype(np.float32) for f in gen]


@pytest.fixture(scope="module")
def ocr():
    from rapidocr import RapidOCR

    # One thread each: on a busy 2-core machine onnxruntime's spinning thread pool is several times slower.
    return RapidOCR(
        params={
            "Global.log_level": "warning",
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )


def ocr_text(engine, image: Path) -> str:
    """The text rapidocr reads in the subtitle band of `image` (cropped there: OCR time grows with text lines)."""
    im = Image.open(image).convert("RGB")
    w, h = im.size
    px = subtitle_font_px(w, h)
    bottom = h * (1 - SUBTITLE_MARGIN_V)  # the subtitle block's lower edge (title-safe margin)
    band = im.crop((0, round(bottom - 2.2 * px), w, round(bottom + 0.04 * h)))
    return "".join(engine(np.asarray(band), use_cls=False).txts or ())


def build_film(root: Path, lines: list[str], size=(640, 360), crossfade=0.4, fps=24) -> tuple:
    """Draft panels → motion clips → cut, for one shot per subtitle line; returns (cut, shots, run, settings)."""
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    w, h = size
    settings = RunSettings(run_dir=str(root), width=w, height=h, fps=fps, crossfade=crossfade)
    kinds = ["establishing", "close-up", "hero", "insert"]
    motions = ["push-in", "pan-left", "drift", "pull-out"]
    shots, clips = [], []
    for i, line in enumerate(lines, start=1):
        shot = make_shot(i, kinds[(i - 1) % 4], line, motion=motions[(i - 1) % 4])
        still = run.take_image(shot.id, 1)
        DraftBackend().generate(
            ImageRequest(prompt=shot.prompt, width=w, height=h, seed=i, output_path=str(still), shot=shot)
        )
        result = MotionBackend().animate(
            AnimateRequest(image_path=str(still), output_path=str(run.clip_path(shot.id)), duration=shot.duration,
                           fps=fps, width=w, height=h, motion=shot.motion)
        )  # fmt: skip
        shots.append(shot)
        clips.append(
            Clip(shot_id=shot.id, take=1, path=run.rel(Path(result.path)), backend=result.backend,
                 model=result.model, motion=shot.motion, duration=shot.duration, fps=fps, width=w, height=h)
        )  # fmt: skip
    return cut_film(shots, clips, root, settings.config(CutConfig)), shots, run, settings


@pytest.fixture(scope="module")
def zh_film(tmp_path_factory):
    return build_film(tmp_path_factory.mktemp("zh") / ODD_NAME, ZH_LINES)


@pytest.fixture(scope="module")
def en_film(tmp_path_factory):
    return build_film(tmp_path_factory.mktemp("en") / "plain", EN_LINES)


# --- fonts ------------------------------------------------------------------------------------------------


def test_font_is_the_simplified_chinese_face():
    font = pil_font(20)
    assert font.getname()[0] == FONT_FAMILY
    assert font_path().is_file()
    # A real glyph, not the .notdef box: two different characters draw differently.
    assert font.getmask("中").getbbox() != font.getmask("国").getbbox() or list(font.getmask("中")) != list(
        font.getmask("国")
    )


def test_fontconfig_env_names_the_font_folder(tmp_path):
    env = fontconfig_env(tmp_path / "has space")
    conf = Path(env["FONTCONFIG_FILE"]).read_text()
    assert str(font_path().parent) in conf and conf.startswith("<?xml")


def test_wrap_text_breaks_cjk_by_characters_and_latin_by_words():
    zh = wrap_text("全新降噪耳机，让城市的喧嚣瞬间安静下来，只留下你想听的声音。", 24)
    assert all(display_units(line) <= 24 for line in zh) and len(zh) >= 3
    assert not any(line.startswith(("，", "。")) for line in zh)
    en = wrap_text("Wireless noise-cancelling headphones that make the city fall quiet.", 30)
    assert all(len(line) <= 30 for line in en)
    assert " ".join(en) == "Wireless noise-cancelling headphones that make the city fall quiet."


# --- draft panels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280), (1024, 1024), (64, 64)])
def test_draft_panel_size_and_exposure(tmp_path, size):
    w, h = size
    out = tmp_path / "p.png"
    result = DraftBackend().generate(
        ImageRequest(
            prompt="p", width=w, height=h, seed=3, output_path=str(out), shot=make_shot(3, "close-up")
        )
    )
    img = Image.open(out)
    assert img.size == (w, h)
    g = gray(out)
    assert 0.2 < g.mean() < 0.8, "mid exposure"
    assert g.std() > 0.08, "not blank"
    assert result.backend == "draft" and result.model == "draft-panel-v1" and result.timings["render_s"] > 0


def test_draft_panel_has_sharp_edges_and_legible_header(tmp_path, ocr):
    out = tmp_path / "p.png"
    shot = make_shot(3, "hero")
    DraftBackend(annotate=True).generate(
        ImageRequest(prompt="p", width=1280, height=720, seed=5, output_path=str(out), shot=shot)
    )
    g = gray(out)
    lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    assert lap.max() > 0.5, "text and shape edges are crisp"
    header = Image.open(out).convert("RGB").crop((0, 0, 1280, 130))
    text = "".join(ocr(np.asarray(header), use_cls=False).txts or ())
    assert re.search(r"SHOT\s*03", text) and "HERO" in text, text


def test_draft_takes_differ_and_repeat(tmp_path):
    shot = make_shot(2, "wide")

    def render(seed: int, name: str) -> np.ndarray:
        out = tmp_path / name
        DraftBackend().generate(ImageRequest(prompt="p", width=320, height=180, seed=seed, output_path=str(out),
                                             shot=shot))  # fmt: skip
        return gray(out)

    a, b, a_again = render(1, "a.png"), render(2, "b.png"), render(1, "c.png")
    assert np.abs(a - b).mean() > 0.01, "different seeds give different takes"
    assert np.array_equal(a, a_again), "the same seed gives the same take"


def test_draft_palette_follows_mood_words():
    assert pick_palette("warm golden sunset") == "warm"
    assert pick_palette("冷 蓝色 夜晚") == "cool"
    assert pick_palette("nothing in particular") == "neutral"


def test_draft_without_shot_uses_prompt(tmp_path):
    out = tmp_path / "p.png"
    result = DraftBackend().generate(
        ImageRequest(prompt="close-up of a ceramic mug, warm light", width=256, height=256, seed=0,
                     output_path=str(out))
    )  # fmt: skip
    assert Image.open(out).size == (256, 256) and result.parameters["kind"] == "close-up"


def test_select_backends_say_why(tmp_path):
    settings = RunSettings(run_dir=str(tmp_path), image_backend="auto", image_model=None, video_model=None)
    image, why = select_image_backend(settings)
    assert image.name == "draft" and "no --image-model" in why
    image, why = select_image_backend(settings.model_copy(update={"image_backend": "draft"}))
    assert image.name == "draft" and why.startswith("draft")
    video, why = select_video_backend(settings)
    assert video.name == "motion" and "motion" in why


# --- animate ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("motion", MOTIONS)
def test_animate_duration_size_fps(tmp_path, motion):
    still = tmp_path / "still.png"
    DraftBackend().generate(
        ImageRequest(
            prompt="p", width=320, height=180, seed=1, output_path=str(still), shot=make_shot(1, "wide")
        )
    )
    out = tmp_path / "clip dir" / "c.mp4"
    result = MotionBackend().animate(
        AnimateRequest(image_path=str(still), output_path=str(out), duration=1.0, fps=12, width=320, height=180,
                       motion=motion)
    )  # fmt: skip
    info = probe(out)
    assert abs(info["duration"] - 1.0) <= 1 / 12 + 1e-6
    assert (info["width"], info["height"], info["fps"]) == (320, 180, 12)
    assert [s["codec"] for s in info["streams"]] == ["h264"]
    assert result.parameters["frames"] == 12 and result.timings["wall_s"] > 0
    frames = read_frames(out)
    assert len(frames) == 12
    change = np.abs(frames[0] - frames[-1]).mean()
    if motion == "static":
        assert change < 1.0
    else:
        assert change > 2.0, f"{motion} should move the picture"
    assert not list(out.parent.glob(".*")), "no temporary file left behind"


def test_animate_unknown_motion_names_the_allowed_ones(tmp_path):
    req = AnimateRequest(image_path=str(tmp_path / "x.png"), output_path=str(tmp_path / "o.mp4"), duration=1,
                         fps=12, width=64, height=64, motion="barrel-roll")  # fmt: skip
    with pytest.raises(ValueError, match="push-in.*pull-out.*pan-left"):
        MotionBackend().animate(req)


# --- cut --------------------------------------------------------------------------------------------------


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    def sec(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((sec(start), sec(end), "".join(lines[2:])))
    return cues


def test_cut_duration_streams_and_srt(zh_film):
    cut, _, run, _ = zh_film
    info = probe(run.root / cut.path)
    assert abs(info["duration"] - (3 * 1.5 - 2 * 0.4)) <= 0.1
    assert (info["width"], info["height"], info["fps"]) == (640, 360, 24)
    kinds = {s["type"]: s for s in info["streams"]}
    assert kinds["video"]["codec"] == "h264"
    assert kinds["subtitle"]["codec"] == "mov_text" and kinds["subtitle"]["language"] == "chi"
    assert cut.lang == "zh" and cut.shots == ["s01", "s02", "s03"] and abs(cut.duration - 3.7) <= 0.1
    cues = parse_srt((run.root / cut.srt).read_text(encoding="utf-8"))
    assert [c[2] for c in cues] == ZH_LINES
    # Shot i starts at 1.1·i (1.5 s clips, 0.4 s fades); subtitles change at the middle of each fade.
    expected = [(0.0, 1.3), (1.3, 2.4), (2.4, 3.7)]
    for (start, end, _), (want_start, want_end) in zip(cues, expected, strict=True):
        assert abs(start - want_start) < 0.01 and abs(end - want_end) < 0.01
    assert not list(run.root.glob(".final*")), "no temporary file left behind"


def test_burned_chinese_subtitle_reads_back(zh_film, ocr, tmp_path):
    cut, _, run, _ = zh_film
    # The middle of shots 1 and 2 (their visible spans are 0–1.3 s and 1.3–2.4 s).
    for i, (t, line) in enumerate(zip((0.65, 1.85), ZH_LINES[:2], strict=True)):
        text = ocr_text(ocr, frame_at(run.root / cut.path, t, tmp_path / f"f{i}.png"))
        overlap = sum(ch in text for ch in line) / len(line)
        assert overlap >= 0.6, f"burned subtitle {line!r} read back as {text!r}"


def test_burned_english_subtitle_reads_back(en_film, ocr, tmp_path):
    cut, _, run, _ = en_film
    assert cut.lang == "en"
    assert [s["language"] for s in probe(run.root / cut.path)["streams"] if s["type"] == "subtitle"] == [
        "eng"
    ]
    text = ocr_text(ocr, frame_at(run.root / cut.path, 1.85, tmp_path / "f.png")).lower().replace(" ", "")
    assert "silence" in text and "demand" in text, text


def test_cut_without_crossfade_or_subtitles_is_a_plain_join(tmp_path):
    cut, _, run, _ = build_film(tmp_path / "plain", ["", ""], size=(320, 180), crossfade=0.0, fps=12)
    info = probe(run.root / cut.path)
    assert abs(info["duration"] - 3.0) <= 0.1
    assert [s["type"] for s in info["streams"]] == ["video"], "no subtitle track when no shot has a subtitle"
    assert (run.root / cut.srt).read_text() == ""


def test_cut_rejects_clips_out_of_order(zh_film):
    _, shots, run, settings = zh_film
    clips = [Clip(shot_id=s.id, take=1, path=f"clips/{s.id}.mp4", backend="motion", model="m", motion="static",
                  duration=1.5, fps=24, width=640, height=360) for s in shots]  # fmt: skip
    with pytest.raises(ValueError, match="shot order"):
        cut_film(shots, list(reversed(clips)), run.root, settings.config(CutConfig))


def test_subtitle_cues_skip_empty_and_escape_markup():
    shots = [
        make_shot(1, subtitle="one --> two {\\b1}"),
        make_shot(2, subtitle="  "),
        make_shot(3, subtitle="三"),
    ]
    cues = subtitle_cues(shots, [2.0, 2.0, 2.0], 0.5)
    assert [(round(a, 2), round(b, 2)) for a, b, _ in cues] == [(0.0, 1.75), (3.25, 5.0)]
    assert "-->" not in cues[0][2] and "{" not in cues[0][2] and "\\" not in cues[0][2]
    srt = to_srt([(0, 1, "很长的字幕" * 8)], max_units=20)
    text_lines = srt.splitlines()[2:]
    assert len(text_lines) >= 4 and all(display_units(line) <= 20 for line in text_lines if line)
    assert clean_subtitle("a\n\nb") == "a b", "a blank line would end the SRT cue"


def test_probe_rejects_non_media(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="not a media file"):
        probe(junk)
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "missing.mp4")


def test_wrap_text_is_about_linear(monkeypatch):
    """A 10,000-character word used to take minutes (every split re-measured the whole line)."""
    import time

    calls = {"n": 0, "chars": 0}

    def counting(text: str) -> int:
        calls["n"] += 1
        calls["chars"] += len(text)
        return display_units(text)

    work = {}
    for n in (1000, 10_000):
        calls.update(n=0, chars=0)
        lines = wrap_text("x" * n, 40, counting, balance=True)
        assert "".join(lines) == "x" * n and all(len(line) <= 40 for line in lines)
        work[n] = calls["chars"]
    assert work[10_000] < 15 * work[1000], f"measuring grows faster than n log n: {work}"
    start = time.perf_counter()
    lines = wrap_text("x" * 10_000, 40, balance=True)
    assert time.perf_counter() - start < 0.5 and len(lines) == 250
    mixed = wrap_text("新品上市 the quick brown fox, " * 400, 40, balance=True)
    assert all(display_units(line) <= 40 for line in mixed)


def test_clean_subtitle_drops_control_characters_and_caps_length():
    text = clean_subtitle("Slow\x00 mornings\x07\u202e\x1b[31m \u200bnow\ufeff")
    assert text == "Slow mornings[31m now", text
    assert all(ch.isprintable() for ch in text)
    long = clean_subtitle("word " * 1000)
    assert len(long) == SUBTITLE_MAX_CHARS and long.endswith("…")
    assert clean_subtitle("👩\u200d👩") == "👩\u200d👩", "a joiner inside an emoji stays"


def test_cut_with_hostile_subtitles_still_encodes(tmp_path):
    lines = ["a\x00b\x1b\u202e{\\an8}up" + "x" * 5000, "正常的字幕"]
    cut, _, run, _ = build_film(tmp_path / "hostile", lines, size=(320, 180), fps=12)
    cues = parse_srt((run.root / cut.srt).read_text(encoding="utf-8"))
    assert cues[0][2].startswith("ab(/an8)up") and len(cues[0][2]) <= SUBTITLE_MAX_CHARS
    assert "\x00" not in (run.root / cut.srt).read_text(encoding="utf-8")
    assert [s["type"] for s in probe(run.root / cut.path)["streams"]] == ["video", "subtitle"]
