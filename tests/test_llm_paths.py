"""Every LLM and VLM path of the product (planner, VLM critic, repair rewrite, `redo --note`) through tools/llm.py,
behind the real openai client, against the loopback server that acts as local servers do (tests/llm_server.py).

Each test runs under small endpoint timeouts and asserts how long it took, so a hang is a failure, not a stall.
"""

from __future__ import annotations

import contextlib
import json
import re
import time

import pytest
from llm_server import ChatServer, Delay, Reply, Status
from PIL import Image

from tools.critics.inputs import CritiqueConfig, CritiqueRequest
from tools.critics.vlm import vlm_critic
from tools.film import Shot
from tools.plan import PlanError, PlannerConfig, plan_storyboard, read_brief
from tools.repair import apply_note

BRIEF = (
    "A 12-second launch film for the Aria wireless headphones. A commuter steps onto a crowded night train. "
    "She puts the headphones on and the noise falls away. End on the slogan “Hear nothing.” and the price ¥899."
)
SCENES = [
    ("establishing", "A crowded night train pulls into a neon-lit platform", "Every night, the same noise."),
    ("medium", "A commuter squeezes into the packed carriage, eyes tired", "Crowds. Brakes. Voices."),
    ("close-up", "Her hands lift matte black Aria headphones over her ears", "Then, Aria."),
    ("hero", "The Aria headphones rest on a seat, the carriage calm and blurred", "Hear nothing."),
]


def shot(i: int, **kw) -> dict:
    kind, description, subtitle = SCENES[i % len(SCENES)]
    return {
        "kind": kind,
        "description": description,
        "camera": "35mm, eye level, slow push-in",
        "lighting": "cool neon with warm practicals",
        "mood": "tired, then calm",
        "motion": "push-in",
        "duration": 3.0,
        "subtitle": subtitle,
        "prompt": f"{description}, cinematic night photography, 35mm film still, shallow depth of field",
        "negative_prompt": "blurry, text artifacts",
        "expect_text": None,
        "speaker": None,
        "subject_kind": "headphones",
    } | kw


def board(shots: list[dict]) -> str:
    return json.dumps({"title": "Hear Nothing", "shots": shots, "reading": None, "notes": []})


def good(n: int = 4) -> str:
    return board([shot(i) for i in range(n)])


def config(server: ChatServer | None, **kw) -> PlannerConfig:
    values = {
        "planner": "llm",
        "llm_base_url": server.base_url if server else "http://127.0.0.1:9/v1",
        "llm_model": "tiny-local",
        "llm_timeout": 5.0,
        "llm_retries": 1,
        "shots": 4,
        "duration": 12.0,
    }
    return PlannerConfig(**(values | kw))


@contextlib.contextmanager
def within(seconds: float):
    started = time.monotonic()
    yield
    assert time.monotonic() - started < seconds, f"took {time.monotonic() - started:.1f} s"


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def last_ask(request: dict) -> str:
    return request["messages"][-1]["content"]


# ---------------------------------------------------------------------------------------------------- planner


@pytest.mark.parametrize("planner", ["llm", "auto"])
def test_json_schema_refusal_plans_through_json_object(server, planner):
    server.script([Status(400, "response_format type json_schema is not supported"), good()])
    notes: list[str] = []
    with within(5):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server, planner=planner), notes)
    # auto does not quietly plan offline: the refusal is negotiated, and the model plans.
    assert storyboard.planner == "llm:tiny-local" and not notes
    first, second = server.requests
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["properties"]["shots"]["maxItems"] == 4
    assert second["response_format"] == {"type": "json_object"}


def test_fenced_answer_from_a_server_that_ignores_the_format(server):
    server.script(["Sure! Here is the storyboard:\n```json\n" + good() + "\n```\nEnjoy."])
    with within(5):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server))
    assert [s.subtitle for s in storyboard.shots][-1] == "Hear nothing." and len(server.requests) == 1


def test_a_short_count_is_fixed_by_rules_not_rejected(server):
    server.script([board([shot(0), shot(1), shot(3)])])  # the close-up of the headphones left out
    notes: list[str] = []
    with within(5):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    assert len(server.requests) == 1  # nothing asked again
    assert len(storyboard.shots) == 4 and storyboard.duration == pytest.approx(12.0)
    assert [s.id for s in storyboard.shots] == ["s01", "s02", "s03", "s04"]
    assert any("gave 3 shots for 4: added the offline planner's shot" in n for n in notes)
    assert len({s.description for s in storyboard.shots}) == 4


def test_one_shot_too_many_is_merged(server):
    doors = shot(
        3, description="The train doors close", prompt="train doors sliding shut, night platform, 35mm"
    )
    server.script([board([shot(0), shot(1), shot(2), doors, shot(3)])])
    notes: list[str] = []
    storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    assert len(server.requests) == 1 and len(storyboard.shots) == 4
    assert any("gave 5 shots for 4: merged shots" in n for n in notes)


def test_a_far_count_is_asked_again_whole(server):
    server.script([good(1), good()])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server))
    assert len(storyboard.shots) == 4
    assert "expected exactly 4 shots, got 1" in last_ask(server.requests[1])


def test_slow_answer_passes_with_a_longer_llm_timeout(server):
    server.script([Delay(1.2, good())])
    with within(2), pytest.raises(PlanError, match=r"no answer within 0.5 s.*raise --llm-timeout"):
        plan_storyboard(read_brief(BRIEF), config(server, llm_timeout=0.5, llm_retries=0))
    with within(6):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server, llm_timeout=4.0, llm_retries=0))
    assert len(storyboard.shots) == 4


def test_finish_reason_length_gets_a_shorter_request(server):
    looping = '{"title": "Hear", "shots": [{"kind": "establishing", "description": "a train a train a train'
    server.script([Reply(looping, finish_reason="length"), good()])
    with within(5):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server))
    first, second = server.requests
    assert first["max_tokens"] >= 4 * 200  # sized to four shots, not unbounded
    assert "shorter" in last_ask(second) and all(looping not in str(m["content"]) for m in second["messages"])
    assert len(storyboard.shots) == 4


def test_llm_max_tokens_caps_every_request(server):
    server.script([good()])
    plan_storyboard(read_brief(BRIEF), config(server, llm_max_tokens=3000, llm_temperature=0.2))
    assert server.requests[0]["max_tokens"] == 3000 and server.requests[0]["temperature"] == 0.2


# ------------------------------------------------------------------------------------------- degenerate plans


def test_eight_identical_shots_are_asked_again_whole(server):
    same = board([shot(0) for _ in range(8)])
    beats = [f"{SCENES[i % 4][1]}, beat {i + 1}" for i in range(8)]
    distinct = board(
        [shot(i, description=b, prompt=f"{b}, cinematic night photography") for i, b in enumerate(beats)]
    )
    server.script([same, distinct])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server, shots=8, duration=20.0))
    assert len(server.requests) == 2 and "same description" in last_ask(server.requests[1])
    assert len({s.description for s in storyboard.shots}) == 8


def test_rule_word_prompts_are_rebuilt_from_the_shot(server):
    rules = "subject, setting, framing, lens, lighting, mood"
    server.script([board([shot(i, prompt=rules) for i in range(4)])])
    notes: list[str] = []
    storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    assert len(server.requests) == 1
    for s, (_, description, _) in zip(storyboard.shots, SCENES, strict=True):
        assert s.prompt != rules and description in s.prompt and "35mm" in s.prompt
    assert sum("only restated the rules" in n for n in notes) == 4


def test_the_system_prompts_example_price_becomes_the_briefs(server):
    end = shot(3, subtitle="Hear nothing. ¥199", expect_text="¥199", prompt="Aria headphones, the price ¥199")
    server.script([board([shot(0), shot(1), shot(2), end])])
    notes: list[str] = []
    storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    last = storyboard.shots[-1]
    assert len(server.requests) == 1
    assert last.expect_text == "¥899" and "¥899" in last.prompt and last.subtitle == "Hear nothing. ¥899"
    assert "¥199" not in storyboard.model_dump_json(exclude={"notes"})
    assert any("the brief's price is ¥899" in n for n in notes)


def test_on_screen_text_not_in_the_brief_is_dropped(server):
    server.script([board([shot(0), shot(1), shot(2), shot(3, expect_text="50% OFF TODAY")])])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server))
    assert storyboard.shots[-1].expect_text is None


def test_a_chinese_prompt_is_asked_again_for_that_shot_alone(server):
    chinese = shot(1, prompt="拥挤的夜班地铁车厢，疲惫的通勤者，霓虹灯光，电影感")
    fixed = shot(1, prompt="A tired commuter in a packed night train carriage, neon light, cinematic")
    server.script([board([shot(0), chinese, shot(2), shot(3)]), json.dumps({"shots": [fixed]})])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server))
    assert len(server.requests) == 2
    again = server.requests[1]
    assert "shot 2: prompt is in Chinese" in last_ask(again) and "Write only shot(s) 2 again" in last_ask(
        again
    )
    assert again["response_format"]["json_schema"]["schema"]["properties"]["shots"]["maxItems"] == 1
    assert storyboard.shots[1].prompt == fixed["prompt"]
    assert [s.prompt for s in storyboard.shots[2:]] == [shot(2)["prompt"], shot(3)["prompt"]]


def test_a_subtitle_in_the_wrong_language_answered_with_the_whole_board(server):
    # A small model asked for one shot often writes the whole storyboard again: the shot is taken by position.
    wrong = shot(2, subtitle="然后，Aria。")
    server.script([board([shot(0), shot(1), wrong, shot(3)]), good()])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server))
    assert "is not in English" in last_ask(server.requests[1])
    assert storyboard.shots[2].subtitle == "Then, Aria."


def test_a_shot_the_model_cannot_fix_comes_from_the_offline_planner(server):
    wrong = shot(2, subtitle="A 12-second launch film for Instagram")
    server.script([board([shot(0), shot(1), wrong, shot(3)]), "not json at all"])
    notes: list[str] = []
    with within(8):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    assert (
        "deliverable" not in storyboard.shots[2].subtitle and "Instagram" not in storyboard.shots[2].subtitle
    )
    assert any("shot(s) 3 from the offline planner" in n for n in notes)
    assert storyboard.planner == "llm:tiny-local"


def test_auto_fallback_says_why_in_one_line():
    notes: list[str] = []
    with within(5):
        storyboard = plan_storyboard(read_brief(BRIEF), config(None, planner="auto", llm_retries=0), notes)
    assert storyboard.planner == "offline"
    assert len(notes) >= 1 and "\n" not in notes[0] and notes[0].startswith("planner auto: ")
    assert "did not answer" in notes[0] and "planning offline instead" in notes[0]


def test_advice_names_only_flags_that_exist(server):
    import argparse

    from main import build_parser  # the real CLI: every flag an error names must parse

    server.script(["nothing to see"])
    with pytest.raises(PlanError) as err:
        plan_storyboard(read_brief(BRIEF), config(server))
    named = set(re.findall(r"--[a-z][a-z-]+", str(err.value)))
    assert named >= {"--llm-retries", "--planner"}
    known: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            known |= set(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(action.choices.values())
    assert named <= known, named - known


# ----------------------------------------------------------------------------------------- rewrites and VLM

SHOT = Shot(
    id="s03",
    index=3,
    kind="close-up",
    description="Her hands lift the headphones",
    camera="85mm close-up",
    lighting="neon",
    mood="calm",
    duration=3.0,
    prompt="close-up of hands lifting matte black headphones, neon light",
)


def test_redo_note_echo_is_rejected_then_the_rewrite_stored(server):
    echo = (
        "Shot: Her hands lift the headphones\nCamera: 85mm close-up\nPrompt: close-up of hands\n"
        "Problems:\n- the director's note: make it rain"
    )
    rewritten = (
        "close-up of hands lifting matte black headphones, rain streaking the train window, neon light"
    )
    server.script([echo, f"Prompt: {rewritten}"])
    cfg = CritiqueConfig(planner="llm", llm_base_url=server.base_url, llm_model="tiny-local", llm_timeout=5)
    with within(5):
        prompt, how = apply_note(SHOT, "make it rain", cfg)
    assert (prompt, how) == (rewritten, "llm")
    assert "repeats the request" in last_ask(server.requests[1])
    assert "Problems:" not in prompt and "Shot:" not in prompt


def test_redo_note_always_echoing_fails_loudly_under_planner_llm(server):
    server.script(["Shot: x\nCamera: y\nProblems: - the director's note: make it rain"])
    cfg = CritiqueConfig(
        planner="llm", llm_base_url=server.base_url, llm_model="tiny-local", llm_timeout=5, llm_retries=1
    )
    with pytest.raises(ValueError, match="could not apply the note"):
        apply_note(SHOT, "make it rain", cfg)
    assert len(server.requests) == 2
    auto = cfg.model_copy(update={"planner": "auto"})
    assert apply_note(SHOT, "make it rain", auto) == (
        f"{SHOT.prompt} Director's note: make it rain",
        "appended",
    )


def vlm_config(base_url: str, **kw) -> CritiqueConfig:
    return CritiqueConfig(vlm_base_url=base_url, vlm_model="tiny-vl", llm_timeout=5, **kw)


def request_for(tmp_path) -> tuple[Image.Image, CritiqueRequest]:
    img = Image.new("RGB", (64, 48), "navy")
    path = tmp_path / "take.png"
    img.save(path)
    return img, CritiqueRequest(
        image_path=str(path), prompt="headphones on a train seat", width=64, height=48
    )


def test_vlm_critic_through_the_same_module(server, tmp_path):
    verdict = {"verdict": "fail", "issues": [{"category": "subject", "reason": "no headphones"}]}
    server.script([Status(400, "json_schema response_format unsupported"), json.dumps(verdict)])
    img, req = request_for(tmp_path)
    with within(5):
        result = vlm_critic(img, req, vlm_config(server.base_url))
    assert result.ran and result.passed is False and result.issues[0].reason == "no headphones"
    first, second = server.requests
    assert first["model"] == "tiny-vl" and first["response_format"]["json_schema"]["strict"] is True
    assert second["response_format"] == {"type": "json_object"}
    assert second["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_vlm_invalid_answer_is_asked_again_within_bounds(server, tmp_path):
    server.script(['{"verdict": "probably fine"}'])
    img, req = request_for(tmp_path)
    result = vlm_critic(img, req, vlm_config(server.base_url, llm_retries=5))
    assert not result.ran and result.passed is None and "malformed" in result.not_run_reason
    assert len(server.requests) == 2  # one retry, whatever the planner's retries


def test_vlm_down_or_refusing_is_not_run_with_the_reason(server, tmp_path):
    img, req = request_for(tmp_path)
    with within(5):
        down = vlm_critic(img, req, vlm_config("http://127.0.0.1:9/v1", llm_retries=0))
    assert not down.ran and down.passed is None and "VLM endpoint failed" in down.not_run_reason
    assert "connection failed" in down.not_run_reason
    server.script(["I'm sorry, I can't help with evaluating this image."])
    refused = vlm_critic(img, req, vlm_config(server.base_url))
    assert not refused.ran and refused.not_run_reason.startswith("VLM refused: I'm sorry")
    assert len(server.requests) == 1  # a refusal is not asked again


def test_vlm_critic_keeps_one_chat_across_takes(server, tmp_path):
    """The second take goes straight to the format the first one negotiated: the Chat is the run's, not the take's."""
    from tools.llm import endpoint_from
    from tools.llm_pool import CHATS

    verdict = json.dumps({"verdict": "pass", "issues": []})
    server.script([Status(400, "json_schema response_format unsupported"), verdict])
    img, req = request_for(tmp_path)
    config = vlm_config(server.base_url)
    assert vlm_critic(img, req, config).passed is True
    assert vlm_critic(img, req, config).passed is True
    assert [r["response_format"]["type"] for r in server.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]
    endpoint = endpoint_from(config, "vlm").model_copy(update={"retries": 1})
    assert CHATS.get(endpoint, flags="vlm") is CHATS.get(endpoint, flags="vlm")
    other = endpoint.model_copy(update={"timeout": 9.0})
    assert CHATS.get(other, flags="vlm") is not CHATS.get(endpoint, flags="vlm")
