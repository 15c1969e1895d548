"""Fault injection on the run directory, the director and the command line (issue 11).

Each test drives `python main.py ...` (or the director in-process where a fault cannot be made from outside) and
asserts what a person sees: the exit code, one line on stderr and no traceback, what is left on disk, the
run's status. All offline, tiny frames, bounded in time.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from faults.image_server import LOGIN_PAGE, Garbage, Image, ImageServer, Refuse, Status
from test_cli import ROOT, cli

TINY = ["--shots", "2", "--duration", "4", "--size", "160x96"]
BRIEF = "Tea leaves unfurl in a glass. Steam rises by the window."


def one_line_error(proc, code: int, *words: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def marker(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def finished(out: Path, *extra: str) -> Path:
    proc = cli("run", BRIEF, *TINY, *extra, "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    return out


# --- an image server that fails, then comes back ------------------------------------------------------------


def panel_png() -> bytes:
    """A small grey frame with a shape: what a healthy image server answers."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 96), (90, 110, 130))
    ImageDraw.Draw(image).ellipse((40, 20, 120, 80), fill=(220, 200, 160))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def image_server():
    """HTTP 500 until a test scripts it back to health."""
    with ImageServer(default_png=panel_png()) as server:
        server.script([Status(500, "out of memory")])
        yield server


# --- item 3: a run whose shots all failed ---------------------------------------------------------------------


def test_unreachable_image_server_keeps_the_folder_and_says_why(tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run", BRIEF, *TINY, "--image-server", "http://127.0.0.1:1/v1", "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), timeout=60,
    )  # fmt: skip
    one_line_error(proc, 1, "every shot failed", "s01", "s02", "127.0.0.1:1")
    assert out.is_dir(), "the run folder was deleted"
    assert marker(out)["status"] == "failed"
    assert sorted(marker(out)["missing"]) == ["s01", "s02"]
    report = (out / "report.html").read_text()
    assert report.count("127.0.0.1:1") >= 2  # every failed take, with why
    assert (out / "shots" / "s01" / "take-1.json").exists()


def test_failed_run_resumes_once_the_server_is_back(tmp_path, image_server):
    out = tmp_path / "run"
    proc = cli(
        "run", BRIEF, *TINY, "--image-server", image_server.base_url, "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), timeout=60,
    )  # fmt: skip
    one_line_error(proc, 1, "every shot failed", "500")
    assert marker(out)["status"] == "failed"
    failed = json.loads((out / "shots" / "s01" / "take-1.json").read_text())
    assert failed["error"]

    again = cli("run", "--resume", str(out), timeout=60)  # still down: fails again, not replayed forever
    one_line_error(again, 1, "every shot failed")
    image_server.script([Image(panel_png())])
    done = cli("run", "--resume", str(out), timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert marker(out)["status"] == "done"
    assert (out / "final.mp4").exists()
    # The failed takes stay on disk and in the record; the new ones are numbered after them.
    assert json.loads((out / "shots" / "s01" / "take-1.json").read_text()) == failed
    assert (out / "shots" / "s01" / "take-3.png").exists()


def takes(out: Path) -> dict[str, list[dict]]:
    return {
        shot.name: [json.loads(t.read_text()) for t in sorted(shot.glob("take-*.json"))]
        for shot in sorted((out / "shots").iterdir())
    }


@pytest.mark.parametrize("encoding, words", [(None, "not JSON"), ("gzip", "content-encoding 'gzip'")])
def test_an_html_page_with_status_200_fails_only_that_take(tmp_path, encoding, words):
    """A login wall or proxy page instead of an image: that take is a failed take, the shot is shot again."""
    out = tmp_path / "run"
    with ImageServer() as server:
        server.script([Garbage(LOGIN_PAGE, "text/html", encoding), Image(panel_png())])
        proc = cli(
            "run", BRIEF, *TINY, "--image-server", server.base_url, "--image-server-retries", "0",
            "--max-takes", "2", "--out", str(out), timeout=90,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert marker(out)["status"] == "done" and (out / "final.mp4").exists()
    failed = [(shot, t) for shot, ts in takes(out).items() for t in ts if t.get("error")]
    assert len(failed) == 1, failed  # the one answer that was a page, and no other
    shot, take = failed[0]
    assert take["n"] == 1 and words.lower() in take["error"].lower() and "Sign in" not in take["error"][:40]
    assert take["critique"]["grade"] == "C"
    assert take["critique"]["issues"][0]["category"] == "backend"
    assert len(takes(out)[shot]) == 2, "the shot was not shot again after the failed take"
    assert (out / "clips" / f"{shot}.mp4").exists()


def test_html_on_every_answer_ends_by_the_all_failed_rule(tmp_path):
    out = tmp_path / "run"
    with ImageServer() as server:
        server.script([Garbage(LOGIN_PAGE, "text/html", "gzip")])
        proc = cli(
            "run", BRIEF, *TINY, "--image-server", server.base_url, "--image-server-retries", "0",
            "--max-takes", "2", "--out", str(out), timeout=90,
        )  # fmt: skip
        assert (
            server.hits == 4
        )  # two shots, two takes each: a take's failure is not asked again by the client
    one_line_error(proc, 1, "every shot failed", "s01", "s02", "content-encoding")
    assert out.is_dir() and marker(out)["status"] == "failed"
    assert all(len(ts) == 2 and all(t["error"] for t in ts) for ts in takes(out).values())


# --- items 1, 2 and 4: model text and a dripping model server, end to end ---------------------------------------


def test_nul_and_ten_thousand_character_subtitles_in_an_edited_storyboard_are_cut(tmp_path):
    """Three 10,000-character subtitles with NUL and escapes: cleaned and clamped as they enter, the cut finishes
    in bounded time and its subtitle file holds none of them (once, they hung the cut or broke ffmpeg for good)."""
    out = tmp_path / "run"
    waiting = cli(
        "run", BRIEF, "--shots", "3", "--duration", "6", "--size", "160x96", "--approve", "--out", str(out)
    )
    assert waiting.returncode == 0, waiting.stderr.decode()
    board = json.loads((out / "storyboard.json").read_text())
    for shot in board["shots"]:
        shot["subtitle"] = "Tea\x00 time\x1b[31m " + "x" * 10_000
    (out / "storyboard.json").write_text(json.dumps(board))
    start = time.monotonic()
    done = cli("approve", str(out), timeout=240)
    assert done.returncode == 0, done.stderr.decode()
    assert time.monotonic() - start < 240
    srt = (out / "final.srt").read_text()
    assert "\x00" not in srt and "\x1b" not in srt and "Tea time" in srt
    assert max(len(line) for line in srt.splitlines()) < 200


@pytest.mark.parametrize("mode, asked", [("whole", 1), ("auto", 2)])
def test_a_dripping_llm_server_is_cut_off_at_its_deadline(tmp_path, mode, asked):
    """`whole` asks once; `auto` asks once for the whole storyboard and, when that runs out of time, once for the
    short outline a slow local model can manage (issue 18): each call is cut off at its own 2 s deadline."""
    from llm_server import ChatServer, Drip

    out = tmp_path / "run"
    with ChatServer() as server:
        server.script([Drip(0.5)])
        start = time.monotonic()
        proc = cli(
            "run", BRIEF, *TINY, "--planner", "llm", "--llm-base-url", server.base_url, "--llm-model", "m",
            "--llm-timeout", "2", "--llm-retries", "0", "--llm-plan", mode, "--out", str(out), timeout=120,
        )  # fmt: skip
        took = time.monotonic() - start
    line = one_line_error(proc, proc.returncode, server.base_url.split("//")[1].split("/")[0])
    assert proc.returncode in (1, 2) and ("2 s" in line or "timed out" in line.lower()), line
    assert len(server.requests) == asked  # no retries were asked for
    assert took < 60  # the 2 s deadlines and a start-up on a loaded machine, not the drip's 100+ s


# --- item 4: settings checked at start and again on resume ----------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--threshold", "foo=1"], ["--threshold", "foo"]),
        (["--threshold", "min_side=nan"], ["--threshold", "min_side", "finite"]),
        (["--threshold", "sharpness_fail=inf"], ["finite"]),
        (["--steps", "-5"], ["--steps"]),
        (["--gpu-memory", "-1"], ["--gpu-memory"]),
        (["--llm-timeout", "inf"], ["--llm-timeout"]),
    ],
)
def test_bad_settings_refused_at_start(tmp_path, flags, words):
    out = tmp_path / "run"
    one_line_error(cli("run", BRIEF, *TINY, *flags, "--out", str(out)), 2, *words)
    assert not out.exists()


def test_resume_rereads_and_checks_settings_given_again(tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run", BRIEF, *TINY, "--image-server", "http://127.0.0.1:1/v1", "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    one_line_error(cli("run", "--resume", str(out), "--threshold", "foo=1"), 2, "foo")
    one_line_error(cli("run", "--resume", str(out), "--shots", "5"), 2, "--shots", "cannot change")
    assert marker(out)["status"] == "failed"  # a refused resume leaves the status as it was
    # The setting given again replaces the saved one, and is kept for the resumes after this one.
    done = cli("run", "--resume", str(out), "--image-backend", "draft", "--threshold", "sharpness_fail=0")
    assert done.returncode == 0, done.stderr.decode()
    saved = json.loads((out / "settings.json").read_text())
    assert saved["image_backend"] == "draft" and saved["thresholds"] == {"sharpness_fail": 0.0}
    assert (out / "final.mp4").exists()


# --- item 5: shot ids in an edited storyboard ---------------------------------------------------------------


@pytest.mark.parametrize("ids, words", [(["s01", "s01"], ["unique"]), (["s01", "../x"], ["shots.1.id"])])
def test_bad_shot_ids_refused_on_approve_and_on_resume(tmp_path, ids, words):
    out = tmp_path / "run"
    proc = cli("run", BRIEF, *TINY, "--approve", "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    board = json.loads((out / "storyboard.json").read_text())
    for shot, new in zip(board["shots"], ids, strict=True):
        shot["id"] = new
    (out / "storyboard.json").write_text(json.dumps(board))
    one_line_error(cli("approve", str(out)), 2, "storyboard.json", *words)
    assert marker(out)["status"] == "waiting-for-approval"

    finished(tmp_path / "done")
    board = json.loads((tmp_path / "done" / "storyboard.json").read_text())
    for shot, new in zip(board["shots"], ids, strict=True):
        shot["id"] = new
    (tmp_path / "done" / "storyboard.json").write_text(json.dumps(board))
    one_line_error(cli("run", "--resume", str(tmp_path / "done")), 2, "storyboard.json", *words)


def test_storyboard_edited_after_a_failure_is_what_the_resume_shoots(tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run", BRIEF, *TINY, "--image-server", "http://127.0.0.1:1/v1", "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    board = json.loads((out / "storyboard.json").read_text())
    board["shots"][1]["subtitle"] = "Steam, fixed by hand"
    (out / "storyboard.json").write_text(json.dumps(board))
    done = cli("run", "--resume", str(out), "--image-backend", "draft")
    assert done.returncode == 0, done.stderr.decode()
    assert "Steam, fixed by hand" in (out / "final.srt").read_text()


# --- item 7: a kill during start-up --------------------------------------------------------------------------


def test_startup_killed_before_the_marker(tmp_path):
    done = finished(tmp_path / "first")
    # What a kill after the settings and brief, before run.json, leaves.
    half = tmp_path / "half"
    half.mkdir()
    for name in ("settings.json", "brief.json"):
        text = (done / name).read_text().replace(str(done), str(half))
        (half / name).write_text(text)
    (half / ".settings.json.abcd1234.tmp").write_text("{")
    resumed = cli("run", "--resume", str(half))
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert (half / "final.mp4").exists() and marker(half)["status"] == "done"
    assert not (half / ".settings.json.abcd1234.tmp").exists()

    # Only the settings (killed before the brief): --resume says to start again; --out reuses the folder.
    only = tmp_path / "only"
    only.mkdir()
    (only / "settings.json").write_text((done / "settings.json").read_text())
    one_line_error(cli("run", "--resume", str(only)), 2, "start it again", "--out")
    again = cli("run", BRIEF, *TINY, "--out", str(only))
    assert again.returncode == 0, again.stderr.decode()
    assert (only / "final.mp4").exists()


def test_startup_writes_the_marker_last(tmp_path, monkeypatch):
    """Stop the start-up at each write in turn: until run.json is written, --out accepts the folder again."""
    import main
    from agent import rundir

    written = []
    real = rundir.write_json

    def record(path, obj):
        written.append(Path(path).name)
        return real(path, obj)

    monkeypatch.setattr("agent.director.write_json", record)
    monkeypatch.chdir(tmp_path)
    assert main.main(["run", BRIEF, *TINY, "--out", "r"]) == 0
    start = written[: written.index("run.json") + 1]
    assert start[-1] == "run.json" and {"settings.json", "brief.json"} <= set(start)


# --- item 8: a film that lacks a shot ------------------------------------------------------------------------


@pytest.fixture
def picky_server():
    """Refuses the second shot's prompts (they have 'steam' in them), answers the others with an image."""
    with ImageServer() as server:
        server.script([Refuse("steam", Image(panel_png()))])
        yield server


@pytest.mark.parametrize("allow", [False, True])
def test_a_film_that_lacks_a_shot(tmp_path, picky_server, allow):
    out = tmp_path / "run"
    flags = ["--allow-missing-shots"] if allow else []
    proc = cli(
        "run", BRIEF, *TINY, "--image-server", picky_server.base_url, "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), *flags, timeout=60,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert (out / "final.mp4").exists()
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "s02" in last and "lacks 1 shot" in last, err
    assert proc.stdout.decode().strip().splitlines()[-1] == str(out)
    assert "missing from the cut" in (out / "report.html").read_text()
    if allow:
        assert proc.returncode == 0, err
        assert marker(out)["status"] == "done"
    else:
        one_line_error(proc, 1, "s02")
        assert marker(out)["status"] == "incomplete"


# --- item 9: standard input ----------------------------------------------------------------------------------


def test_endless_stdin_is_refused_quickly(tmp_path):
    out = tmp_path / "run"
    start = time.perf_counter()
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "run", "--brief", "-", "--out", str(out)],
            stdin=zero, capture_output=True, timeout=30,
        )  # fmt: skip
    assert time.perf_counter() - start < 30
    one_line_error(proc, 2, "limit")
    assert not out.exists()


# --- item 10: the run lock -----------------------------------------------------------------------------------


def _hold_lock(out: Path) -> subprocess.Popen:
    code = (
        "import sys, time; sys.argv = ['main.py', 'run', '--resume', sys.argv[1]]\n"
        "from pathlib import Path; from agent.runlock import run_lock\n"
        "with run_lock(Path(sys.argv[3])):\n    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"held", proc.stderr.read()
    return proc


def test_a_second_process_is_told_who_holds_the_run(tmp_path):
    out = finished(tmp_path / "run", "--approve")  # waiting: approve, redo and resume each have work to do
    holder = _hold_lock(out)
    try:
        for args in (["run", "--resume", str(out)], ["approve", str(out)], ["redo", str(out), "--shot", "1"]):
            one_line_error(cli(*args, timeout=30), 2, f"pid {holder.pid}", "--resume", "--wait")
    finally:
        holder.send_signal(signal.SIGKILL)  # a kill releases the lock
        holder.wait()
    assert cli("approve", str(out)).returncode == 0
    assert (out / "final.mp4").exists()


def test_wait_waits_for_the_holder(tmp_path):
    out = finished(tmp_path / "run")
    holder = _hold_lock(out)
    waiter = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "redo", str(out), "--shot", "1", "--note", "warmer", "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        first = waiter.stderr.readline().decode()
        assert f"waiting for pid {holder.pid}" in first, first
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting
        assert not list(out.glob("shots/s01/take-2.*"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    _, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err.decode()
    assert (out / "shots" / "s01" / "take-2.png").exists()


# --- item 12: one-line errors for damaged or unwritable folders -----------------------------------------------


def test_unwritable_out(tmp_path):
    # root writes anywhere chmod forbids, so use a path under a file: no folder can ever be made there.
    (tmp_path / "a-file").write_text("x")
    one_line_error(cli("run", BRIEF, *TINY, "--out", str(tmp_path / "a-file" / "run")), 2, "a-file")


def test_read_only_out_in_process(tmp_path, monkeypatch, capsys):
    import main

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main.main(["run", BRIEF, *TINY, "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err


def test_full_disk_midway_fails_in_one_line(tmp_path, monkeypatch, capsys):
    """ENOSPC on the first clip: exit 1, one line, status "failed" (not "running"); resume finishes it."""
    import main
    from tools import animate

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "clips"))

    monkeypatch.setattr(animate, "run_ffmpeg", full)
    out = tmp_path / "r"
    assert main.main(["run", BRIEF, *TINY, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert marker(out)["status"] == "failed"
    monkeypatch.undo()
    assert main.main(["run", "--resume", str(out)]) == 0
    assert (out / "final.mp4").exists()


@pytest.mark.parametrize(
    "damage, words",
    [
        ("take-png", ["take-1.png", "not a readable image"]),
        ("take-json", ["take-1.json", "damaged"]),
        ("settings", ["settings.json", "damaged"]),
        ("checkpoints", ["checkpoints.sqlite"]),
        ("marker", ["run.json"]),
    ],
)
def test_damaged_files_are_named_in_one_line(tmp_path, damage, words):
    out = finished(tmp_path / "run")
    target = {
        "take-png": out / "shots" / "s01" / "take-1.png",
        "take-json": out / "shots" / "s01" / "take-1.json",
        "settings": out / "settings.json",
        "checkpoints": out / "checkpoints.sqlite",
        "marker": out / "run.json",
    }[damage]
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3] + b"\x00garbage")
    for wal in out.glob("checkpoints.sqlite-*"):
        wal.unlink()
    line = one_line_error(cli("run", "--resume", str(out)), 2, *words)
    assert "--resume" in line or "restore" in line or "delete" in line


def test_checkpoints_moved_aside_resume_from_the_records(tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run", BRIEF, *TINY, "--image-server", "http://127.0.0.1:1/v1", "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    plan = json.loads((out / "storyboard.json").read_text())
    for p in out.glob("checkpoints.sqlite*"):
        p.unlink()
    done = cli("run", "--resume", str(out), "--image-backend", "draft")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads((out / "storyboard.json").read_text()) == plan  # not planned again


# --- item 13: temp files, status after a failed resume, verdicts not judged twice ------------------------------


def test_temp_files_cleaned_on_the_next_run(tmp_path):
    out = finished(tmp_path / "run")
    cut = Path(tempfile.mkdtemp(prefix="cd-cut-"))
    os.utime(cut, (time.time() - 3600, time.time() - 3600))
    young = Path(tempfile.mkdtemp(prefix="cd-cut-"))  # may be a cut starting now in another run
    # Young when the redo cleans, however long this loaded machine takes to start it.
    os.utime(young, (time.time() + 600, time.time() + 600))
    busy = Path(tempfile.mkdtemp(prefix="cd-cut-"))  # old, but a live ffmpeg works in it
    os.utime(busy, (time.time() - 3600, time.time() - 3600))
    worker = subprocess.Popen(["sleep", "120"], cwd=busy)
    left = [
        out / ".final.k3j2h1g0.mp4",
        out / "clips" / ".s01.a1b2c3d4.mp4",
        out / ".manifest.json.zz99yy88.tmp",
        out / "shots" / "s01" / ".take-1.json.qwertyui.tmp",
        out / "audio" / ".voice-7fn4nfme.wav",
        out / "audio" / ".mix-qs7uavyw.m4a",
        out / "contact_sheet.tmp.png",
    ]
    (out / "audio").mkdir(exist_ok=True)
    for p in left:
        p.write_bytes(b"half")
    try:
        proc = cli("redo", str(out), "--shot", "1")
        assert proc.returncode == 0, proc.stderr.decode()
        assert not any(p.exists() for p in left)
        assert not cut.exists()
        assert young.exists()
        assert busy.exists()
    finally:
        worker.kill()
        worker.wait()
        for p in (cut, young, busy):
            if p.exists():
                p.rmdir()


def test_failed_resume_does_not_stay_running(tmp_path):
    out = tmp_path / "run"
    cli(
        "run", BRIEF, *TINY, "--image-server", "http://127.0.0.1:1/v1", "--image-server-retries", "0",
        "--max-takes", "1", "--out", str(out), timeout=60,
    )  # fmt: skip
    proc = cli("run", "--resume", str(out), timeout=60)
    assert proc.returncode == 1
    assert marker(out)["status"] == "failed"


def test_recorded_verdicts_are_not_judged_again(tmp_path, monkeypatch):
    """Killed after a take's verdict was recorded but before the step's checkpoint: the checkpoint's take has no
    verdict, its record on disk has one; the critique step on resume takes the record and judges nothing."""
    from langgraph.runtime import Runtime

    from agent import nodes
    from agent.rundir import RunDir
    from agent.state import TakeState

    out = finished(tmp_path / "run")
    run = RunDir(out)
    recorded = run.load_take("s01", 1)
    assert recorded.critique is not None
    board = json.loads((out / "storyboard.json").read_text())
    from tools.film import Shot

    shot = Shot.model_validate(board["shots"][0])
    state = TakeState(shot=shot, takes=[recorded.model_copy(update={"critique": None})])
    judged = []
    monkeypatch.setattr(nodes, "judge_take", lambda *a, **k: judged.append(a) or recorded.critique)
    from agent.director import load_settings

    update = nodes.critique(state, Runtime(context=load_settings(out)))
    assert judged == []
    assert update["takes"][0].critique == recorded.critique


def test_busy_database_is_not_mistaken_for_damage(tmp_path):
    """A healthy checkpoint file opened by a reader at the same time still resumes."""
    out = finished(tmp_path / "run")
    with sqlite3.connect(out / "checkpoints.sqlite") as conn:
        conn.execute("select count(*) from checkpoints").fetchone()
        assert cli("run", "--resume", str(out)).returncode == 0
