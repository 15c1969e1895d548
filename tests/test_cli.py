"""Bad input at the command line: one clear line on stderr, exit code 2, no traceback, no folder left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
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
