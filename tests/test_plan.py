"""The planner: reading briefs, the deterministic offline planner, and the LLM planner behind the real openai client
talking to a scripted loopback server (tests/fakes.py)."""

from __future__ import annotations

import itertools
import json
import re
import socket
import time

import jinja2
import pytest
from fakes import Delay, FakeOpenAI, Status

from agent.settings import RunSettings
from tools.plan import (
    MAX_BRIEF_CHARS,
    MIN_SHOT_SECONDS,
    BriefError,
    PlanError,
    detect_lang,
    plan_storyboard,
    planner_description,
    read_brief,
    split_beats,
)
from tools.templates import render

CHAT = "/v1/chat/completions"
CJK = re.compile(r"[\u4e00-\u9fff]")

EN_BRIEF = (
    "A 20-second launch film for wireless noise-cancelling headphones, for Instagram and TikTok. "
    "A commuter steps onto a crowded night train. She puts the headphones on and the noise falls away. "
    "End on the slogan “Hear nothing.” and the price ¥199."
)
ZH_BRIEF = "为新款降噪耳机拍一支20秒的发布短片。夜晚的城市街道，一个年轻人戴上耳机，世界瞬间安静。最后出现口号「静享此刻」和价格¥199。"
SCRIPT = """INT. COFFEE SHOP - NIGHT

Rain streaks the window. MAYA, 30s, stares at her phone.

MAYA
(quietly)
I can't do this anymore.

EXT. STREET - DAWN

She walks out into the first light. The city wakes.
"""
ZH_SCRIPT = """场景一：咖啡馆 夜 内
雨水划过窗户。小美盯着手机。
小美：我不想再这样了。

场景二：街道 清晨
她走进晨光里，城市慢慢苏醒。
"""


def settings(tmp_path, **kw) -> RunSettings:
    return RunSettings(run_dir=str(tmp_path), **kw)


# ---------------------------------------------------------------------------------------------------- read_brief


def test_read_brief_decodes_and_detects_language():
    assert read_brief(EN_BRIEF.encode()).lang == "en"
    brief = read_brief("\ufeff".encode() + ZH_BRIEF.encode("utf-8"), source="brief.md")
    assert brief.lang == "zh" and brief.source == "brief.md" and not brief.text.startswith("\ufeff")
    assert read_brief("  line one\r\nline two  \n").text == "line one\nline two"
    assert detect_lang("A launch film for 小米 headphones, shot at night in Shanghai") == "en"
    assert detect_lang("为 Apple AirPods Pro 拍一支广告") == "zh"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "empty"),
        ("   \n\t  \n", "empty"),
        (b"", "empty"),
        ("x" * (MAX_BRIEF_CHARS + 1), "20,000"),
        (b"a brief\x00with a NUL", "NUL"),
        ("a brief\x00with a NUL", "NUL"),
        (b"caf\xe9 \xff\xfe brief", "UTF-8"),
        ("".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13)) * 4 + "brief", "unprintable"),
    ],
)
def test_bad_briefs_are_rejected_with_a_reason(raw, words):
    with pytest.raises(BriefError, match=words):
        read_brief(raw)


def test_a_brief_at_the_limit_is_accepted():
    assert len(read_brief("a" * MAX_BRIEF_CHARS).text) == MAX_BRIEF_CHARS


# ---------------------------------------------------------------------------------------------------- offline


def test_offline_is_deterministic_and_seeded(tmp_path):
    brief = read_brief(EN_BRIEF)
    one = plan_storyboard(brief, settings(tmp_path, seed=7)).model_dump_json()
    two = plan_storyboard(read_brief(EN_BRIEF), settings(tmp_path, seed=7)).model_dump_json()
    assert one == two
    others = {plan_storyboard(brief, settings(tmp_path, seed=s)).model_dump_json() for s in range(8)}
    assert len(others) > 1, "the seed should vary camera choices"


@pytest.mark.parametrize("text", [EN_BRIEF, ZH_BRIEF, SCRIPT, ZH_SCRIPT])
@pytest.mark.parametrize(
    ("kw", "count", "total"),
    [
        ({"shots": 5}, 5, 12.5),
        ({"duration": 20}, 8, 20.0),
        ({"duration": 7.5}, 3, 7.5),
        ({"shots": 12}, 12, 30.0),
        ({"shots": 1}, 1, 2.5),
        ({"shots": 4, "duration": 30}, 4, 30),
    ],
)
def test_offline_shot_counts_and_durations(tmp_path, text, kw, count, total):
    board = plan_storyboard(read_brief(text), settings(tmp_path, **kw))
    assert board.planner == "offline"
    assert [s.id for s in board.shots] == [f"s{i:02d}" for i in range(1, count + 1)]
    assert [s.index for s in board.shots] == list(range(1, count + 1))
    assert board.duration == pytest.approx(total)
    assert all(s.duration >= MIN_SHOT_SECONDS for s in board.shots)
    assert board.shots[0].kind in ("establishing", "hero")
    assert all(
        s.motion in ("push-in", "pull-out", "pan-left", "pan-right", "drift", "static") for s in board.shots
    )
    assert all(s.prompt and s.negative_prompt and s.camera and s.lighting and s.mood for s in board.shots)
    # The shot grammar never cuts between two shots of the same size.
    kinds = [s.kind for s in board.shots]
    assert all(a != b for a, b in itertools.pairwise(kinds))


def test_too_many_shots_for_the_duration_is_an_error(tmp_path):
    with pytest.raises(PlanError, match="Raise --duration or lower --shots"):
        plan_storyboard(read_brief(EN_BRIEF), settings(tmp_path, shots=10, duration=10))


def test_subtitles_are_in_the_briefs_language(tmp_path):
    zh = plan_storyboard(read_brief(ZH_BRIEF), settings(tmp_path, duration=20))
    assert zh.lang == "zh"
    lines = [s.subtitle for s in zh.shots if s.subtitle]
    # Subtitles are copy (issue 10): the brief's sentences are not burned on screen; the end card carries the copy.
    assert lines and all(CJK.search(line) for line in lines)
    assert "静享此刻" in zh.shots[-1].subtitle and "¥199" in zh.shots[-1].subtitle
    assert not any("20秒" in line or "短片" in line for line in lines)
    en = plan_storyboard(read_brief(SCRIPT), settings(tmp_path, shots=5))
    lines = [s.subtitle for s in en.shots if s.subtitle]
    # Only the dialogue is said; action lines ("Rain streaks the window.") are never subtitles.
    assert lines == ["I can't do this anymore."]
    assert [s.speaker for s in en.shots if s.subtitle] == ["Maya"]


def test_other_subtitle_language_keeps_the_brief_and_says_so(tmp_path):
    notes: list[str] = []
    board = plan_storyboard(read_brief(ZH_BRIEF), settings(tmp_path, duration=10, lang="en"), notes)
    assert board.lang == "zh" and any(CJK.search(s.subtitle) for s in board.shots)
    assert notes and "does not translate" in notes[0]


def test_expected_text_is_detected_and_prompted(tmp_path):
    for text in (EN_BRIEF, ZH_BRIEF):
        board = plan_storyboard(read_brief(text), settings(tmp_path, duration=20))
        with_text = [s for s in board.shots if s.expect_text]
        assert len(with_text) == 1
        shot = with_text[0]
        assert "¥199" in shot.expect_text
        assert ("Hear nothing." if text is EN_BRIEF else "静享此刻") in shot.expect_text
        assert f'"{shot.expect_text}"' in shot.prompt
        # "End on ..." puts the text on the closing hero shot.
        assert shot is board.shots[-1] and shot.kind == "hero"
        assert "random text" in board.shots[0].negative_prompt and "random text" not in shot.negative_prompt


def test_quoted_dialogue_is_not_on_image_text(tmp_path):
    board = plan_storyboard(
        read_brief("“I never wanted this,” she said quietly, and left the room."), settings(tmp_path, shots=2)
    )
    assert not any(s.expect_text for s in board.shots)


def test_scene_headings_split_beats_and_set_the_look(tmp_path):
    beats = split_beats(SCRIPT)
    assert {b.scene for b in beats} == {"COFFEE SHOP - NIGHT", "STREET - DAWN"}
    assert any(b.speaker == "Maya" and b.text == "I can't do this anymore." for b in beats)
    zh = split_beats(ZH_SCRIPT)
    assert [b.scene_index for b in zh] == [0, 0, 0, 1]
    assert zh[2].speaker == "小美" and zh[2].text == "我不想再这样了。"
    board = plan_storyboard(read_brief(SCRIPT), settings(tmp_path, shots=5))
    night = [s for s in board.shots if "night" in s.prompt]
    assert night and "low-key" in board.shots[1].lighting
    assert "sunrise" in board.shots[-2].lighting or "sunrise" in board.shots[-1].lighting
    # The second scene opens with a new establishing shot.
    first_street = next(s for s in board.shots if "street" in s.prompt)
    assert first_street.kind == "establishing"


def test_heading_only_scenes_become_shots_of_the_place():
    beats = split_beats("# A quiet lake at dawn\n\nScene 2: Storm over the hills\nThunder rolls.")
    assert [b.text for b in beats] == ["A quiet lake at dawn", "Thunder rolls."]
    assert beats[1].scene == "Storm over the hills"


def test_style_goes_into_every_prompt(tmp_path):
    board = plan_storyboard(read_brief(EN_BRIEF), settings(tmp_path, shots=4, style="watercolor, pastel"))
    assert board.style == "watercolor, pastel"
    assert all("Style: watercolor, pastel." in s.prompt for s in board.shots)


def test_prompt_templates_are_strict():
    with pytest.raises(jinja2.UndefinedError):
        render("shot_prompt.j2", subject="a lake")


# ---------------------------------------------------------------------------------------------------- LLM


def llm_shot(i: int, **kw) -> dict:
    shot = {
        "kind": "establishing" if i == 0 else "close-up",
        "description": f"shot {i}",
        "camera": "wide, 24mm, slow pan right",
        "lighting": "night, neon",
        "mood": "moody",
        "motion": "pan-right",
        "duration": 3.0,
        "subtitle": f"Line {i}",
        "prompt": f"a prompt for shot {i}",
        "negative_prompt": "blurry",
        "expect_text": None,
    }
    return shot | kw


def llm_answer(n: int, **kw) -> str:
    return json.dumps({"title": "Night Train", "shots": [llm_shot(i, **kw) for i in range(n)]})


def llm_settings(tmp_path, server: FakeOpenAI | None, **kw) -> RunSettings:
    base = server.base_url if server else f"http://127.0.0.1:{free_port()}/v1"
    values = {
        "planner": "llm",
        "llm_base_url": base,
        "llm_model": "fake-planner",
        "llm_timeout": 5.0,
        "llm_retries": 1,
        "shots": 3,
        "duration": 12.0,
    } | kw
    return RunSettings(run_dir=str(tmp_path), **values)


def free_port() -> int:
    """A port nothing listens on: bind, read the number, close."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_llm_valid_answer_gets_program_ids(tmp_path):
    with FakeOpenAI() as server:
        # The model tries to sneak in ids and long durations; ids are not in the schema and durations are rescaled.
        server.script(CHAT, [llm_answer(3, duration=10.0, expect_text="¥199")])
        board = plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server))
    assert board.planner == "llm:fake-planner"
    assert [s.id for s in board.shots] == ["s01", "s02", "s03"]
    assert board.duration == pytest.approx(12.0)
    assert board.shots[0].expect_text == "¥199" and board.title == "Night Train"
    request = server.requests[CHAT][0]
    assert request["model"] == "fake-planner"
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    # Strict json_schema mode: every property is required and no other allowed; optional ones are nullable.
    assert set(schema["required"]) == set(schema["properties"]) == {"title", "shots", "reading", "notes"}
    shot_schema = schema["$defs"]["PlannedShot"]
    assert set(shot_schema["required"]) == set(shot_schema["properties"])
    assert shot_schema["additionalProperties"] is False and schema["additionalProperties"] is False
    assert {"type": "null"} in shot_schema["properties"]["speaker"]["anyOf"]
    assert "id" not in schema["$defs"]["PlannedShot"]["properties"]
    assert "exactly 3 shots" in request["messages"][0]["content"]
    assert EN_BRIEF in request["messages"][1]["content"]


def test_llm_code_fenced_answer_is_accepted(tmp_path):
    with FakeOpenAI() as server:
        server.script(CHAT, ["Here you go:\n```json\n" + llm_answer(3) + "\n```"])
        board = plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server))
    assert len(board.shots) == 3


def test_llm_invalid_then_valid_shows_the_error_to_the_model(tmp_path):
    bad = json.dumps({"title": "x", "shots": [llm_shot(i, motion="zoom-blur") for i in range(3)]})
    with FakeOpenAI() as server:
        server.script(CHAT, [bad, llm_answer(3)])
        board = plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server))
    assert [s.id for s in board.shots] == ["s01", "s02", "s03"]
    first, second = server.requests[CHAT]
    assert len(second["messages"]) == len(first["messages"]) + 2
    assert second["messages"][-2] == {"role": "assistant", "content": bad}
    assert "shots.0.motion" in second["messages"][-1]["content"]
    assert "push-in" in second["messages"][-1]["content"]  # pydantic lists the allowed values


def test_llm_wrong_count_and_language_are_validation_errors(tmp_path):
    with FakeOpenAI() as server:
        server.script(CHAT, [llm_answer(2), llm_answer(3), llm_answer(3, subtitle="静享此刻")])
        board = plan_storyboard(read_brief(ZH_BRIEF), llm_settings(tmp_path, server, llm_retries=2))
    assert board.lang == "zh"
    retries = [r["messages"][-1]["content"] for r in server.requests[CHAT][1:]]
    assert "expected exactly 3 shots, got 2" in retries[0]
    assert "is not in Chinese" in retries[1]


def test_llm_always_invalid_fails_after_bounded_tries(tmp_path):
    with FakeOpenAI() as server:
        server.script(CHAT, ["this is not json"])
        with pytest.raises(PlanError, match=r"no valid storyboard in 3 tries; last error: .*Invalid JSON"):
            plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server, llm_retries=2))
    assert len(server.requests[CHAT]) == 3


def test_llm_refusal_is_a_plan_error(tmp_path):
    refusal = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-planner",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            }
        ],
    }
    with FakeOpenAI() as server:
        server.script(CHAT, [refusal])
        with pytest.raises(PlanError, match="refused the brief: I can't help"):
            plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server))


def test_llm_server_errors_are_retried_then_fail(tmp_path):
    with FakeOpenAI() as server:
        server.script(CHAT, [Status(500)])
        with pytest.raises(PlanError, match=r"did not answer \(HTTP 500.*use --planner offline"):
            plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server, llm_retries=1))
    assert len(server.requests[CHAT]) == 2  # the first try and one client retry, nothing more


def test_llm_timeout_fails_quickly(tmp_path):
    with FakeOpenAI() as server:
        server.script(CHAT, [Delay(5, llm_answer(3))])
        start = time.monotonic()
        with pytest.raises(PlanError, match=r"did not answer \(no answer within 0.5 s"):
            plan_storyboard(
                read_brief(EN_BRIEF), llm_settings(tmp_path, server, llm_timeout=0.5, llm_retries=0)
            )
        assert time.monotonic() - start < 3


def test_llm_dead_endpoint_fails_and_never_falls_back(tmp_path):
    s = llm_settings(tmp_path, None, llm_retries=0, llm_api_key="sk-secret-123")
    with pytest.raises(PlanError, match="did not answer .*check --llm-base-url") as info:
        plan_storyboard(read_brief(EN_BRIEF), s)
    assert "sk-secret-123" not in str(info.value)


def test_llm_not_configured_says_which_flag(tmp_path):
    with pytest.raises(PlanError, match="--llm-base-url"):
        plan_storyboard(read_brief(EN_BRIEF), settings(tmp_path, planner="llm"))
    with pytest.raises(PlanError, match="--llm-model"):
        plan_storyboard(read_brief(EN_BRIEF), settings(tmp_path, planner="llm", llm_base_url="http://x/v1"))


def test_auto_falls_back_to_offline_with_a_reason(tmp_path, caplog):
    notes: list[str] = []
    s = llm_settings(tmp_path, None, planner="auto", llm_retries=0)
    board = plan_storyboard(read_brief(EN_BRIEF), s, notes)
    assert board.planner == "offline" and len(board.shots) == 3
    assert notes and "did not answer" in notes[0] and "planning offline" in notes[0]
    assert "planning offline" in caplog.text
    # Not configured at all: offline, and the reason names the missing flag.
    notes.clear()
    assert (
        plan_storyboard(read_brief(EN_BRIEF), settings(tmp_path, planner="auto"), notes).planner == "offline"
    )
    assert "--llm-base-url" in notes[0]


def test_auto_uses_the_endpoint_when_it_answers(tmp_path):
    with FakeOpenAI() as server:
        server.script(CHAT, [llm_answer(3)])
        board = plan_storyboard(read_brief(EN_BRIEF), llm_settings(tmp_path, server, planner="auto"))
    assert board.planner == "llm:fake-planner"


def test_planner_description(tmp_path):
    assert "offline" in planner_description(settings(tmp_path))
    line = planner_description(llm_settings(tmp_path, None, planner="auto", llm_api_key="sk-secret-123"))
    assert "fake-planner" in line and "falls back to offline" in line and "sk-secret" not in line
    assert "--llm-base-url" in planner_description(settings(tmp_path, planner="auto"))
    assert "--llm-model" in planner_description(settings(tmp_path, planner="llm", llm_base_url="http://x/v1"))
