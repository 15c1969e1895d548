"""Bad input at the command line: one clear line on stderr, exit code 2, no traceback, no folder left behind."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    umask: int | None = None,
):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    clean["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=timeout,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def assert_usage_error(proc, *words: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err, err
    for w in words:
        assert w.lower() in err.lower(), (w, err)


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", ""], ["empty"]),
        (["run", "   \n\t "], ["empty"]),
        (["run", "a film about tea", "--platform", "7:0"], ["7:0"]),
        (["run", "a film about tea", "--platform", "cinemascope"], ["unknown --platform"]),
        (["run", "a film about tea", "--size", "12by7"], ["--size"]),
        (["run", "a film about tea", "--size", "100000x20"], ["out of range"]),
        (["run", "--brief", "does-not-exist.md"], ["does-not-exist.md"]),
        (["run", "a film about tea", "--shots", "0"], ["--shots"]),
        (["run"], ["no brief"]),
        (["run", "a film about tea", "--image-backend", "remote"], ["--image-server"]),
        (["run", "a film about tea", "--reference", "nope.png"], ["--reference nope.png", "no such file"]),
        (["run", "a film about tea", "--anchor", "5", "--shots", "3"], ["--anchor 5", "3 shots"]),
    ],
)
def test_bad_run_input(tmp_path, args, words):
    proc = cli(*args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert_usage_error(proc, *words)
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "runs").exists()


def test_brief_too_long_and_binary(tmp_path):
    long = tmp_path / "long.md"
    long.write_text("word " * 10_000)
    assert_usage_error(cli("run", "--brief", str(long), "--out", str(tmp_path / "a")), "limit")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    assert_usage_error(cli("run", "--brief", str(junk), "--out", str(tmp_path / "b")))
    assert_usage_error(
        cli("run", "--brief", "-", "--out", str(tmp_path / "c"), stdin=b"\x00\x01\x02\xff\xfe")
    )
    assert not any((tmp_path / n).exists() for n in "abc")


def test_unreadable_brief(tmp_path):
    if os.geteuid() == 0:
        folder = tmp_path / "a-folder.md"  # root reads any file; a folder is unreadable as a brief for anyone
        folder.mkdir()
        assert_usage_error(cli("run", "--brief", str(folder), "--out", str(tmp_path / "r")), "a-folder.md")
    else:
        f = tmp_path / "secret.md"
        f.write_text("a brief")
        f.chmod(0)
        assert_usage_error(cli("run", "--brief", str(f), "--out", str(tmp_path / "r")), "secret.md")


def test_resume_on_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    assert_usage_error(cli("run", "--resume", str(tmp_path / "notes")), "not a run directory")
    assert_usage_error(cli("run", "--resume", str(tmp_path / "missing")), "no such folder")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["a.txt"]


def test_out_must_be_new_or_empty(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert_usage_error(cli("run", "a film about tea", "--out", str(tmp_path / "busy")), "not empty")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_llm_planner_down_is_a_clear_error(tmp_path):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    proc = cli(
        "run", "a film about tea", "--planner", "llm", "--llm-base-url", "http://127.0.0.1:9/v1",
        "--llm-model", "m", "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert_usage_error(proc, "127.0.0.1:9")
    assert not (tmp_path / "r").exists()


def test_llm_planner_without_endpoint_names_the_flag(tmp_path):
    proc = cli("run", "a film about tea", "--planner", "llm", "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "--llm-base-url")


def test_storyboard_command_on_a_chinese_script(tmp_path):
    script = tmp_path / "script.md"
    script.write_text(
        "场景一 清晨的茶园\n薄雾笼罩着山坡。采茶人走进茶田。\n\n场景二 茶室\n水开了，茶叶在杯中舒展。她微笑着端起茶杯。\n",
        encoding="utf-8",
    )
    proc = cli(
        "storyboard", str(script), "--out", str(tmp_path / "board"), "--shots", "5", "--platform", "douyin"
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = tmp_path / "board"
    assert proc.stdout.decode().strip().splitlines()[-1] == str(out)
    import json

    from PIL import Image

    board = json.loads((out / "storyboard.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in board["shots"]] == ["s01", "s02", "s03", "s04", "s05"]
    assert (board["width"], board["height"]) == (720, 1280)
    assert all(
        any("\u4e00" <= ch <= "\u9fff" for ch in s["subtitle"]) for s in board["shots"] if s["subtitle"]
    )
    with Image.open(out / "storyboard.png") as sheet:
        assert sheet.height > sheet.width / 4
    assert "s05" in (out / "storyboard.html").read_text(encoding="utf-8")
    assert not (out / "final.mp4").exists()


def test_critique_command_json(tmp_path):
    from PIL import Image, ImageDraw

    good = tmp_path / "good.png"
    img = Image.new("RGB", (512, 288), (90, 110, 140))
    draw = ImageDraw.Draw(img)
    for x in range(0, 512, 24):
        draw.line([(x, 0), (x + 100, 288)], fill=(230, 220, 200), width=3)
    img.save(good)
    Image.new("RGB", (512, 288), (0, 0, 0)).save(tmp_path / "black.png")
    (tmp_path / "notes.txt").write_text("not an image")
    proc = cli(
        "critique", str(good), str(tmp_path / "black.png"), str(tmp_path / "notes.txt"),
        "--prompt", "diagonal light through blinds", "--size", "512x288", "--json", "--clip-model", "none",
    )  # fmt: skip
    import json

    results = json.loads(proc.stdout)
    assert [r["path"].rsplit("/", 1)[-1] for r in results] == ["good.png", "black.png", "notes.txt"]
    assert results[0]["pass"] is True
    assert results[1]["pass"] is False and results[1]["grade"] == "C"
    assert "notes.txt" in results[2]["error"]
    assert proc.returncode == 1  # one file could not be judged; the others were


def test_reference_that_is_not_an_image(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    proc = cli("run", "tea", "--reference", str(bad), "--out", str(tmp_path / "run"))
    assert_usage_error(proc, "notes.png", "not an image")
    assert not (tmp_path / "run").exists()


def test_redo_bad_input(tmp_path):
    assert_usage_error(cli("redo", str(tmp_path), "--shot", "1"), "not a run directory")
    out = tmp_path / "run"
    done = cli("run", "Tea is poured. Steam rises.", "--shots", "2", "--size", "320x180", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert_usage_error(cli("redo", str(out), "--shot", "9"), "--shot 9", "shots 1 to 2")
    assert_usage_error(cli("redo", str(out), "--shot", "1", "--note", "x" * 1001), "--note", "at most 1000")


# --- settings: flags from the fields, CD_ variables, the brief's own reading ------------------------------------


class SlowChat(http.server.BaseHTTPRequestHandler):
    """A chat endpoint that answers only after 3 s: a short --llm-timeout must give up well before."""

    def do_POST(self):
        time.sleep(3)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_chat():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_llm_timeout_is_a_flag_and_a_variable(tmp_path, slow_chat, how):
    base = ["run", "a film about tea", "--planner", "llm", "--out", str(tmp_path / "r")]
    if how == "flag":
        args = [
            *base,
            "--llm-base-url",
            slow_chat,
            "--llm-model",
            "m",
            "--llm-timeout",
            "0.5",
            "--llm-retries",
            "0",
        ]
        env = {}
    else:
        args = base
        env = {
            "CD_LLM_BASE_URL": slow_chat,
            "CD_LLM_MODEL": "m",
            "CD_LLM_TIMEOUT": "0.5",
            "CD_LLM_RETRIES": "0",
        }
    start = time.monotonic()
    proc = cli(*args, env=env, timeout=60)
    assert_usage_error(proc, "0.5 s")
    assert time.monotonic() - start < 15  # one 0.5 s try, not 60 s times three


def test_every_flag_of_before_is_still_there():
    """The flags are generated from the settings' fields now; none of the hand-written ones may go missing."""
    before = {
        "run": "--brief --out --shots --duration --platform --size --lang --style --seed --max-takes --threshold "
        "--approve --reference --variants --anchor --resume --planner --llm-base-url --llm-model --image-backend "
        "--image-model --image-server --image-server-model --image-server-timeout --image-server-retries "
        "--video-backend --video-model --lora --gpu-memory --compile --quantize --steps --vlm-base-url "
        "--vlm-model --clip-model --llm-timeout --llm-retries --llm-max-tokens --llm-temperature",
        "storyboard": "--out --shots --duration --platform --size --lang --style --seed --planner --llm-base-url "
        "--image-backend --steps --clip-model --llm-timeout",
        "critique": "--prompt --expect-text --size --threshold --json --planner --image-model --vlm-model --steps",
    }
    for command, flags in before.items():
        text = cli(command, "--help").stdout.decode()
        missing = [f for f in flags.split() if f not in text.replace("\n", " ").split()]
        assert not missing, (command, missing)


def test_settings_from_flags_env_and_brief(monkeypatch):
    from agent.flags import settings_from_args
    from main import build_parser
    from tools.film import BriefReading

    parse = build_parser().parse_args
    monkeypatch.setenv("CD_LLM_TIMEOUT", "300")
    monkeypatch.setenv("CD_DURATION", "30")
    s, line = settings_from_args(parse(["run", "x", "--steps", "4", "--threshold", "clip=0.2"]), "r")
    assert (s.llm_timeout, s.num_inference_steps, s.thresholds, s.duration) == (300, 4, {"clip": 0.2}, 30)
    assert line is None
    s, _ = settings_from_args(parse(["run", "x", "--llm-timeout", "5"]), "r")
    assert s.llm_timeout == 5  # the flag beats the variable

    reading = BriefReading(duration=15, platforms=["tiktok", "instagram"], slogans=["Slow mornings"])
    s, line = settings_from_args(parse(["run", "x"]), "r", reading)
    assert (s.duration, s.platform, s.platforms, s.width, s.height) == (
        15,
        "tiktok",
        ["tiktok", "instagram"],
        720,
        1280,
    )
    assert line is None  # the brief beats CD_DURATION, and nothing the user typed disagrees
    s, line = settings_from_args(
        parse(["run", "x", "--duration", "20", "--platform", "youtube"]), "r", reading
    )
    assert (s.duration, s.platform, s.platforms, s.width) == (20, "youtube", ["youtube"], 1280)
    assert line == "the brief asks for 15 s and tiktok + instagram; --duration 20 and --platform youtube win"
    s, _ = settings_from_args(parse(["run", "x", "--size", "640x360"]), "r", reading)
    assert (s.platform, s.width, s.height) == ("tiktok", 640, 360)  # --size wins for the pixels only

    endpoint = settings_from_args(
        parse(["run", "x", "--llm-base-url", "http://h/v1", "--llm-model", "m", "--llm-max-tokens", "900",
               "--llm-temperature", "0.3"]), "r",
    )[0].endpoint("llm")  # fmt: skip
    assert (endpoint.timeout, endpoint.max_tokens, endpoint.temperature) == (300, 900, 0.3)


def test_old_settings_json_still_loads(tmp_path):
    """A settings.json written before the settings model changed (no platforms, no llm_* extras) resumes."""
    from agent.director import load_settings

    old = {
        "run_dir": "elsewhere", "platform": "tiktok", "width": 720, "height": 1280, "fps": 24, "shots": 2,
        "duration": None, "lang": None, "style": "", "seed": 0, "max_takes": 3, "crossfade": 0.4,
        "planner": "offline", "llm_base_url": None, "llm_model": None, "llm_timeout": 60.0, "llm_retries": 2,
        "image_backend": "auto", "image_model": None, "image_server": None, "image_server_model": None,
        "image_server_timeout": 120.0, "image_server_retries": 2, "video_backend": "auto", "video_model": None,
        "lora": [], "gpu_memory": None, "compile": False, "quantize": "none", "num_inference_steps": None,
        "vlm_base_url": None, "vlm_model": None, "clip_model": None, "thresholds": {}, "approve": True,
        "reference": [], "variants": ["4:5"], "anchor": None, "a_field_from_long_ago": 1,
    }  # fmt: skip
    (tmp_path / "settings.json").write_text(json.dumps(old))
    s = load_settings(tmp_path)
    assert (s.run_dir, s.width, s.height, s.platforms, s.variants, s.approve) == (
        str(tmp_path),
        720,
        1280,
        [],
        ["4:5"],
        True,
    )


def test_brief_reading_printed_applied_and_kept(tmp_path, monkeypatch, capsys):
    """What the brief asks for becomes the settings where no flag says otherwise, and is kept in brief.json."""
    import main
    import tools.plan
    from tools.film import BriefReading

    real = tools.plan.read_brief

    def read_with_reading(raw, source):  # what the planner's reading fills in, here given directly
        brief = real(raw, source)
        return brief.model_copy(update={"reading": BriefReading(
            duration=15, platforms=["tiktok", "instagram"], slogans=["Slow mornings"], price="¥899"
        )})  # fmt: skip

    monkeypatch.setattr(tools.plan, "read_brief", read_with_reading)
    out = tmp_path / "a"
    assert main.main(["run", "A coffee mug on a table. Steam rises.", "--approve", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "read from the brief: 15 s, tiktok + instagram, copy: 'Slow mornings', ¥899" in err
    saved = json.loads((out / "settings.json").read_text())
    assert (saved["duration"], saved["platforms"], saved["width"], saved["height"]) == (
        15,
        ["tiktok", "instagram"],
        720,
        1280,
    )
    board = json.loads((out / "storyboard.json").read_text())
    assert (board["width"], board["height"]) == (720, 1280)
    assert abs(sum(s["duration"] for s in board["shots"]) - 15) < 0.01
    assert json.loads((out / "brief.json").read_text())["reading"]["price"] == "¥899"

    out = tmp_path / "b"
    argv = ["run", "A coffee mug.", "--approve", "--duration", "20", "--out", str(out)]
    assert main.main(argv) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "wins" in ln]
    assert lines == ["the brief asks for 15 s; --duration 20 wins"]
    assert json.loads((out / "settings.json").read_text())["duration"] == 20


def test_platform_comma_list(tmp_path):
    out = tmp_path / "board"
    proc = cli("run", "Tea is poured.", "--approve", "--platform", "tiktok,instagram", "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    saved = json.loads((out / "settings.json").read_text())
    assert (saved["platform"], saved["platforms"], saved["width"], saved["height"]) == (
        "tiktok",
        ["tiktok", "instagram"],
        720,
        1280,
    )
    assert_usage_error(cli("run", "tea", "--platform", "tiktok,cinemascope", "--out", str(tmp_path / "x")),
                       "cinemascope")  # fmt: skip


# --- never brick a run ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished 2-shot run, made with umask 027 and stderr piped."""
    out = tmp_path_factory.mktemp("finished") / "run"
    proc = cli("run", "Tea is poured. Steam rises.", "--shots", "2", "--size", "320x180", "--out", str(out),
               umask=0o027)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return out, proc


def test_files_are_written_with_the_umask(finished):
    out, _ = finished
    names = ["run.json", "settings.json", "brief.json", "storyboard.json", "manifest.json", "report.html",
             "final.mp4", "final.srt", "clips/s01.mp4", "clips/s01.json", "shots/s01/take-1.png",
             "shots/s01/take-1.json"]  # fmt: skip
    modes = {n: oct(stat.S_IMODE((out / n).stat().st_mode)) for n in names}
    assert modes == {n: oct(0o640) for n in names}


def test_piped_progress_is_plain_lines(finished):
    _, proc = finished
    err = proc.stderr.decode()
    for line in ("plan: 2 shots", "render: take 1", "render: take 2", "animate: s01", "cut: done"):
        assert line in err, (line, err)
    assert "\x1b[" not in err  # no terminal escapes in a log


def test_approve_on_a_finished_run_is_a_no_op(finished):
    out, _ = finished
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    proc = cli("approve", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert "already finished" in proc.stderr.decode()
    assert proc.stdout.decode().strip().splitlines()[-1] == str(out)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_approve_on_a_missing_folder_names_it(tmp_path):
    proc = cli("approve", str(tmp_path / "nope"))
    assert_usage_error(proc, str(tmp_path / "nope"), "no such folder")
    assert "--resume" not in proc.stderr.decode()


def test_redo_a_shot_past_the_end_fails_before_backends(finished):
    out, _ = finished
    proc = cli("redo", str(out), "--shot", "99")
    assert_usage_error(proc, "--shot 99", "shots 1 to 2")
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err  # no "render ..." backend line came first


def test_broken_storyboard_edit_is_refused_then_fixed_and_approved(tmp_path):
    out = tmp_path / "run"
    proc = cli("run", "Tea is poured. Steam rises.", "--shots", "2", "--size", "320x180", "--approve",
               "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert (out / "storyboard.png").exists() and (out / "storyboard.html").exists()
    path = out / "storyboard.json"
    good = path.read_text(encoding="utf-8")
    lines = good.splitlines()
    broken = next(i for i, ln in enumerate(lines) if '"duration"' in ln)
    lines[broken] = lines[broken].rstrip(",")  # a missing comma, as a hand edit leaves it
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = cli("approve", str(out))
    assert_usage_error(proc, "storyboard.json", f"line {broken + 2}", "delimiter")
    assert json.loads((out / "run.json").read_text())["status"] == "waiting-for-approval"

    board = json.loads(good)
    board["shots"][1]["duration"] = "three"
    path.write_text(json.dumps(board, indent=2), encoding="utf-8")
    assert_usage_error(cli("approve", str(out)), "storyboard.json", "shots.1.duration", "'three'")
    assert not (out / "final.mp4").exists()

    board["shots"][1]["duration"] = 3.0  # fixed: approve again and the run continues with the edit
    path.write_text(json.dumps(board, indent=2), encoding="utf-8")
    proc = cli("approve", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert (out / "final.mp4").exists()
    assert json.loads(path.read_text())["shots"][1]["duration"] == 3.0
