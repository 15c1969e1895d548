"""The chat: the offline parser on the request set, scripted chats end to end (English and Chinese), bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.chat import Chat
from agent.chat_numbers import shot_refs, zh_number
from agent.chat_parser import parse
from agent.settings import RunSettings
from evals.bench_chat import load_requests, score

ROOT = Path(__file__).resolve().parents[1]
BRIEF_EN = "A 20-second launch film for wireless headphones. A runner at dawn. The slogan 'Hear the city'."
BRIEF_ZH = (
    "为一款陶瓷咖啡杯拍一支20秒的短片。清晨的厨房里，阳光照进窗户。一个女孩慢慢倒咖啡。广告语“慢享清晨”。"
)


def chat_cli(out: Path, lines: list[str], *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", *extra, *(["--out", str(out)] if out else [])],
        input="\n".join(lines).encode() + b"\n",
        capture_output=True,
        env=env,
        timeout=timeout,
    )


def actions(root: Path) -> list[dict]:
    entries = [json.loads(line) for line in (root / "chat.jsonl").read_text(encoding="utf-8").splitlines()]
    return [e for e in entries if e["role"] == "action"]


def board(root: Path) -> dict:
    return json.loads((root / "storyboard.json").read_text(encoding="utf-8"))


# --- the parser -------------------------------------------------------------------------------------------------


def test_request_set_meets_the_bar():
    requests = load_requests()
    assert len(requests) >= 60
    assert {r["expect"] for r in requests} >= {
        "revise_shot", "add_shot", "remove_shot", "move_shot", "swap_shots", "set_film", "set_line", "undo",
        "show", "approve", "status", "redo", "deliver", "takes", "ask", "refuse",
    }  # fmt: skip
    zh = [r for r in requests if any("\u4e00" <= ch <= "\u9fff" for ch in r["text"])]
    assert len(zh) >= 20
    result = score(requests)
    assert result["op_done_pct"] >= 90, result["asked"]
    assert result["wrong"] == [], result["wrong"]


@pytest.mark.parametrize(
    "text, n",
    [("三", 3), ("十", 10), ("十二", 12), ("二十三", 23), ("两", 2), ("7", 7), ("一百", 100)],
)
def test_chinese_numerals(text, n):
    assert zh_number(text) == n


@pytest.mark.parametrize(
    "text, shots",
    [
        ("make shot three wider", [3]),
        ("the 2nd shot", [2]),
        ("the last shot", [8]),
        ("第三个镜头", [3]),
        ("三号镜头", [3]),
        ("镜头5", [5]),
        ("最后一个镜头", [8]),
        ("shots 2 and 4", [2, 4]),
        ("第二和第四个镜头", [2, 4]),
    ],
)
def test_shot_numbers(text, shots):
    assert [r[0] for r in shot_refs(text, 8)] == shots


def test_ambiguous_change_gets_a_question_not_a_change():
    parsed = parse("make it darker", 8)
    assert parsed.op is None and "which shot" in parsed.question.lower()
    assert parse("make it darker", 1).op == "revise_shot"  # with one shot there is nothing to ask


# --- scripted chats end to end ------------------------------------------------------------------------------------


def test_scripted_chat_english(tmp_path):
    out = tmp_path / "run"
    proc = chat_cli(
        out,
        [
            BRIEF_EN,
            "make shot 3 a close-up at night",
            "add a shot of the logo after shot 2",
            "undo",
            "the slogan is 'Slow mornings'",
            "show the storyboard",
            "go",
            "status",
            "redo shot 2 with more rain",
            "show shot 2's takes",
        ],
    )
    text = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "Traceback" not in text + proc.stderr.decode()
    assert "sheet: storyboard.png" in text and "Read from the brief" in text
    assert re.search(
        r"  3\. close-up, .*night.*\n    was: 3\. (?!close-up)", text
    )  # what it is, and what it was
    shots = board(out)["shots"]
    assert len(shots) == 8  # the added shot was undone
    assert shots[2]["kind"] == "close-up" and "night" in shots[2]["lighting"]
    assert shots[2]["prompt"].startswith("Close-up:") and "night" in shots[2]["prompt"]
    assert shots[-1]["subtitle"] == "Slow mornings" and "Slow mornings" in shots[-1]["prompt"]
    versions = sorted((out / "storyboards").glob("v*.json"))
    assert len(versions) == 5  # plan, revise, add, undo, slogan
    assert (out / "final.mp4").stat().st_size > 0
    assert (out / "shots" / "s02" / "take-2.png").exists()  # the redo's take, after take 1
    ops = [a["op"] for a in actions(out)]
    assert ops[:4] == ["plan", "revise_shot", "add_shot", "undo"] and "approve" in ops and "redo" in ops
    assert "take 2 is kept: made by the redo (more rain)" in text
    assert text.strip().endswith(str(out))


def test_scripted_chat_chinese(tmp_path):
    out = tmp_path / "run"
    proc = chat_cli(
        out,
        [
            BRIEF_ZH,
            "第三个镜头改成夜景特写",
            "删掉最后一个镜头",
            "撤销",
            "交换第一和第二个镜头",
            "开拍",
            "重拍第二个镜头，雨大一点",
        ],
    )
    text = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "Traceback" not in text + proc.stderr.decode()
    shots = board(out)["shots"]
    n = len(shots)
    assert shots[2]["kind"] == "close-up" and "night" in shots[2]["lighting"]
    first_planned = json.loads((out / "storyboards" / "v1.json").read_text(encoding="utf-8"))["shots"]
    assert n == len(first_planned)  # the removal was undone
    assert shots[0]["description"] == first_planned[1]["description"]  # swapped
    assert [s["id"] for s in shots] == [f"s{i:02d}" for i in range(1, n + 1)]
    assert (out / "final.mp4").exists()
    redo = json.loads((out / "run.json").read_text())["redos"][-1]
    assert redo["shot"] == "s02" and redo["note"] == "雨大一点"


# --- bad input --------------------------------------------------------------------------------------------------


@pytest.fixture()
def planned(tmp_path) -> Chat:
    root = tmp_path / "run"
    chat = Chat(root, RunSettings(run_dir=str(root)))
    assert "8 shots" in chat.handle(BRIEF_EN)
    return chat


def test_bad_input_gets_a_reply_and_the_chat_goes_on(planned, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    replies = {
        "empty": planned.handle(""),
        "huge": planned.handle("x" * 50_000),
        "binary": planned.handle("\x00\x01\x02\x03\ufffd" * 200),
        "shot 99": planned.handle("make shot 99 a close-up"),
        "missing": planned.handle("use this photo: ./no-such-kettle.png"),
        "not image": planned.handle(f"use this photo: {not_image}"),
        "nonsense": planned.handle("what is the capital of France?"),
    }
    assert "what to change" in replies["empty"].lower()
    assert "50,000" in replies["huge"]
    assert "binary" in replies["binary"]
    assert "no shot 99" in replies["shot 99"] and "1 to 8" in replies["shot 99"]
    assert "no such file" in replies["missing"]
    assert "not an image" in replies["not image"]
    assert "I can change a shot" in replies["nonsense"]
    assert len(list((planned.root / "storyboards").glob("v*.json"))) == 1  # nothing changed
    assert "Changed s03" in planned.handle("make shot 3 a close-up at night")


def test_first_message_checks_a_brief_file(tmp_path):
    root = tmp_path / "run"
    chat = Chat(root, RunSettings(run_dir=str(root)))
    assert "no such file" in chat.handle("./missing-brief.txt")
    assert "no storyboard yet" in chat.handle("undo")
    assert not root.exists()
    brief = tmp_path / "brief.md"
    brief.write_text(BRIEF_EN, encoding="utf-8")
    assert "8 shots" in chat.handle(str(brief))
    log = [json.loads(line) for line in (root / "chat.jsonl").read_text().splitlines()]
    assert log[0] == {
        **log[0],
        "role": "user",
        "text": "./missing-brief.txt",
    }  # kept from before the run existed


def test_resume_continues_with_history(planned):
    planned.handle("swap shots 2 and 4")
    again = Chat.resume(planned.root)
    assert len(again.history) == len(planned.history)
    reply = again.handle("undo")
    assert "Undid swap_shots" in reply
    assert [e["op"] for e in actions(planned.root)][-1] == "undo"


def test_changes_are_refused_while_shooting_or_after(planned):
    marker = planned.root / "run.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "status": "running"}))
    assert "shooting" in planned.handle("make shot 3 a close-up")
    assert "shooting" in planned.handle("status").lower()
    marker.write_text(json.dumps({**data, "status": "done"}))
    assert "already shot" in planned.handle("remove shot 2")


def test_the_reading_line_says_what_the_brief_named_and_the_brief_sets_the_film(tmp_path):
    plain = Chat(tmp_path / "a", RunSettings(run_dir=str(tmp_path / "a")))
    reply = plain.handle(BRIEF_EN)
    assert "platforms: (none named)" in reply and "Making it for youtube at 1280×720" in reply
    vertical = Chat(tmp_path / "b", RunSettings(run_dir=str(tmp_path / "b")))
    reply = vertical.handle("A 12-second launch film for wireless headphones for TikTok. A runner at dawn.")
    assert "length 12 s, platforms tiktok," in reply and "Making it for tiktok at 720×1280" in reply
    made = board(tmp_path / "b")
    assert (made["width"], made["height"]) == (720, 1280) and abs(
        sum(s["duration"] for s in made["shots"]) - 12
    ) <= 1.2
    flagged = RunSettings(run_dir=str(tmp_path / "c"), platform="youtube", platforms=["youtube"])
    reply = Chat(tmp_path / "c", flagged).handle("A 12-second film for TikTok. A runner at dawn.")
    assert "Making it for youtube at 1280×720" in reply  # a --platform the person gave wins
