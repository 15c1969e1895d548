"""The chat's LLM agent, driven by a scripted tool-calling endpoint (a loopback server behind the real openai
client): tool calls change the storyboard, shoot, redo and deliver; bad calls are answered and capped; a model
that goes down mid-chat leaves the chat going on the offline parser. And a shoot started from the chat, killed
and continued with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tool_server import Calls, Status, ToolServer

from agent import chat_agent
from agent.chat import Chat
from agent.operation_args import OPERATIONS
from agent.settings import RunSettings

ROOT = Path(__file__).resolve().parents[1]
BRIEF = "A 20-second launch film for wireless headphones. A runner at dawn. The slogan 'Hear the city'."


def entries(root: Path, role: str) -> list[dict]:
    lines = (root / "chat.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["role"] == role]


def board(root: Path) -> dict:
    return json.loads((root / "storyboard.json").read_text(encoding="utf-8"))


def tool_names(request: dict) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


def tool_results(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def probe(path: Path) -> tuple[int, int]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    return tuple(meta["size"])


@pytest.fixture()
def server():
    with ToolServer() as s:
        yield s


def llm_chat(root: Path, server: ToolServer) -> Chat:
    settings = RunSettings(
        run_dir=str(root), llm_base_url=server.base_url, llm_model="director", llm_retries=0
    )
    return Chat(root, settings)


@pytest.fixture()
def planned(tmp_path, server) -> Chat:
    chat = llm_chat(tmp_path / "run", server)
    assert isinstance(chat.interpreter, chat_agent.ChatAgent)
    assert "8 shots" in chat.handle(BRIEF)  # the brief is planned by the planner, not the chat model
    assert server.requests == []
    return chat


def test_tool_calls_change_the_storyboard_as_the_model_wrote_it(planned, server):
    logo = "The brand's logo, embossed in brushed aluminium, turning slowly under a single spotlight"
    server.script(
        [
            Calls(
                ("revise_shot", {"shots": [3], "kind": "close-up", "look": "night"}),
                ("add_shot", {"description": logo, "after": 2, "kind": "insert"}),
            ),
            "Shot 3 is a night close-up now, and the logo follows shot 2.",
        ]
    )
    reply = planned.handle("make shot 3 a close-up at night and add a shot of the logo after shot 2")
    shots = board(planned.root)["shots"]
    assert len(shots) == 9
    assert shots[2]["description"] == logo and shots[2]["kind"] == "insert"  # written by the model
    assert shots[3]["kind"] == "close-up" and "night" in shots[3]["lighting"]  # old shot 3, now 4th
    assert "Changed s03" in reply and "Added a shot as shot 3" in reply
    assert reply.rstrip().endswith("and the logo follows shot 2.")

    first, second = server.requests
    assert set(tool_names(first)) == set(OPERATIONS)
    system = first["messages"][0]["content"]
    assert first["messages"][0]["role"] == "system" and '"shot": 8' in system and "Hear the city" in system
    assert first["messages"][-1] == {
        "role": "user",
        "content": "make shot 3 a close-up at night and add a shot of the logo after shot 2",
    }
    assert any("Read from the brief" in m["content"] for m in first["messages"][1:-1])  # the conversation
    results = tool_results(second)
    assert "Changed s03" in results[0] and "Added a shot" in results[1]
    assert [a["op"] for a in entries(planned.root, "action")][-2:] == ["revise_shot", "add_shot"]
    assert entries(planned.root, "agent")[-1]["ops"] == ["revise_shot", "add_shot"]


def test_invalid_and_unknown_calls_are_answered_and_the_model_corrects_itself(planned, server):
    server.script(
        [
            Calls(("make_coffee", {"strength": 3}), ("revise_shot", {"shots": [], "kind": "giant"})),
            Calls(("revise_shot", {"shots": [99], "kind": "close-up"})),
            Calls(("revise_shot", {"shots": [2], "kind": "close-up"})),
            "Shot 2 is a close-up.",
        ]
    )
    reply = planned.handle("close-up on shot two please")
    first_answers = tool_results(server.requests[1])
    assert "there is no tool named 'make_coffee'" in first_answers[0] and "revise_shot" in first_answers[0]
    assert first_answers[1].startswith("Error: revise_shot was not run:")
    assert "shots" in first_answers[1] and "kind" in first_answers[1]  # the pydantic errors, named
    assert "no shot 99" in tool_results(server.requests[2])[-1]  # the operation's own refusal, passed on
    assert board(planned.root)["shots"][1]["kind"] == "close-up"
    assert "Changed s02" in reply
    assert len(list((planned.root / "storyboards").glob("v*.json"))) == 2  # one change, nothing else


def test_malformed_tool_calls_fall_back_to_the_offline_parser(planned, server):
    server.script([Calls(("revise_shot", '{"shots": [3], "kind": "close-up"')), Calls(("undo", "[1, 2"))])
    reply = planned.handle("make shot 3 a close-up at night")
    assert "malformed tool calls 2 times" in reply and "offline parser" in reply
    assert "Changed s03" in reply  # the offline parser did it, once
    shots = board(planned.root)["shots"]
    assert shots[2]["kind"] == "close-up" and "night" in shots[2]["lighting"]
    assert len(server.requests) == 2
    assert "not valid JSON" in tool_results(server.requests[1])[0]
    assert entries(planned.root, "agent")[-1]["failed"].startswith("the model sent malformed")


def test_every_turn_is_capped(planned, server):
    server.script([Calls(("status", {}))])  # a model that never stops calling tools
    reply = planned.handle("how is it going?")
    assert len(server.requests) == chat_agent.MAX_ROUNDS
    assert f"stopped after {chat_agent.MAX_ROUNDS} rounds" in reply
    assert reply.count("waiting for your approval") == chat_agent.MAX_ROUNDS


def test_a_question_gets_the_models_answer_and_nothing_changes(planned, server):
    server.script(["Which shot should be darker? There are 8."])
    assert planned.handle("make it darker") == "Which shot should be darker? There are 8."
    assert len(list((planned.root / "storyboards").glob("v*.json"))) == 1


def test_llm_down_mid_chat_the_chat_goes_on(planned, server):
    server.script([Calls(("swap_shots", {"a": 1, "b": 2})), "Swapped."])
    assert "Swapped shots 1 and 2" in planned.handle("swap the first two shots")
    server.close()
    start = time.perf_counter()
    reply = planned.handle("make shot 3 a close-up at night")
    assert time.perf_counter() - start < 10
    assert "could not be used" in reply and server.base_url in reply and "offline parser" in reply
    assert "Changed s03" in reply
    assert "Undid revise_shot" in planned.handle("undo")  # and the next message too
    assert entries(planned.root, "agent")[-1]["failed"]
    ops = [a["op"] for a in entries(planned.root, "action")]
    assert ops == ["plan", "swap_shots", "revise_shot", "undo"]  # nothing lost, nothing twice


def test_a_server_error_reply_falls_back(planned, server):
    server.script([Status(400, "tools are not supported by this model")])
    reply = planned.handle("remove the last shot")
    assert "HTTP 400" in reply and "offline parser" in reply and "Removed shot 8" in reply


def test_shoot_redo_and_deliver_by_tool_calls_with_progress_and_questions_meanwhile(tmp_path, server):
    lines: list[str] = []
    root = tmp_path / "run"
    settings = RunSettings(
        run_dir=str(root), llm_base_url=server.base_url, llm_model="director", llm_retries=0, shots=3
    )
    chat = Chat(root, settings, say=lines.append, background=True)
    assert "3 shots" in chat.handle(BRIEF)
    server.script([Calls(("approve", {}))])
    assert "Shooting now" in chat.handle("looks good, shoot it")
    server.script([Calls(("status", {})), "It is shooting; 3 shots."])
    during = chat.handle("how is it going?")
    assert "shooting" in during.lower()
    assert tool_names(server.requests[-2]) == list(chat_agent.READ_ONLY)  # nothing that changes, meanwhile
    assert "only status, show, takes can run" in server.requests[-2]["messages"][0]["content"]
    chat.wait()
    assert (root / "final.mp4").exists()
    assert any(line.startswith("  s0") and "take 1 rendered" in line for line in lines)
    assert any("take 1 grade" in line for line in lines)
    assert any(line.startswith("Final cut final.mp4") for line in lines)

    server.script([Calls(("redo", {"shot": 2, "note": "more rain"}))])
    assert "Shooting now" in chat.handle("redo the second shot with more rain")
    chat.wait()
    assert (root / "shots" / "s02" / "take-2.png").exists()
    assert any("s02: take 2 rendered" in line for line in lines)
    assert not any("s01: take 1 rendered" in line for line in lines[-10:])  # only new takes are announced

    server.script([Calls(("deliver", {"platform": "tiktok"}))])
    chat.handle("and a version for TikTok")
    chat.wait()
    assert probe(root / "final-tiktok.mp4") == (720, 1280)
    cuts = json.loads((root / "manifest.json").read_text())["cuts"]
    assert [(c["path"], c["width"], c["height"]) for c in cuts] == [
        ("final.mp4", 1280, 720),
        ("final-tiktok.mp4", 720, 1280),
    ]
    assert "final-tiktok.mp4" in (root / "report.html").read_text(encoding="utf-8")
    ops = [a["op"] for a in entries(root, "action")]
    assert ops == ["plan", "status", "approve", "redo", "deliver"]  # a shoot is logged when it is done


def test_main_chat_uses_the_llm_agent(tmp_path, server):
    server.script([Calls(("set_line", {"text": "Hear the city", "shot": 1})), "Shot 1 carries the slogan."])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", "--out", str(out)]
        + ["--llm-base-url", server.base_url, "--llm-model", "director", "--llm-retries", "0"],
        input=f"{BRIEF}\nput the slogan on the first shot\n".encode(),
        capture_output=True,
        env=env,
        timeout=300,
    )
    text = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "Shot 1's line: 'Hear the city'" in text and "Shot 1 carries the slogan." in text
    assert board(out)["shots"][0]["subtitle"] == "Hear the city"


def test_kill_during_a_chat_shoot_then_resume(tmp_path):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "chat", "--out", str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    proc.stdin.write(f"{BRIEF}\ngo\n".encode())
    proc.stdin.flush()
    deadline = time.monotonic() + 240
    while not list(out.glob("shots/*/take-*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = list(out.glob("shots/*/take-*.json"))
    recorded = {r.with_suffix(".png"): r.with_suffix(".png").stat().st_mtime_ns for r in records}
    made = {r: json.loads(r.read_text())["seed"] for r in records}
    assert recorded and not (out / "final.mp4").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "running"

    resumed = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", "--resume", str(out)],
        input=b"status\n",
        capture_output=True,
        env=env,
        timeout=300,
    )
    text = resumed.stdout.decode()
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert "The shoot was stopped; continuing it." in text and "Final cut final.mp4" in text
    assert "Done: final.mp4" in text  # the status message, after the film
    assert (out / "final.mp4").stat().st_size > 0
    assert {p: p.stat().st_mtime_ns for p in recorded} == recorded  # no recorded take rendered again
    # (a take killed before its critique is judged now: its record gains the verdict, same take)
    assert {r: json.loads(r.read_text())["seed"] for r in records} == made
    for take in records:
        assert f"{take.parent.name}: take {take.stem.split('-')[1]} rendered" not in text
    assert [a["op"] for a in entries(out, "action")][-2:] == ["resume", "status"]
