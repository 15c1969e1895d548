"""Planning in short calls (issue 18): an outline, then a few shots a call, each batch with its count in the schema,
validated and asked again alone; chosen by `--llm-plan batches`, or by `auto` when the whole answer fails. Behind
the real openai client, against the loopback server that acts as local servers do (tests/llm_server.py)."""

from __future__ import annotations

import json

import pytest
from llm_server import ChatServer, Delay, Reply
from test_llm_paths import BRIEF, board, config, last_ask, shot, within

from tools.plan import PlanError, plan_storyboard, read_brief

OUTLINE = json.dumps(
    {
        "title": "Hear Nothing",
        "beats": [
            "A crowded night train pulls into a neon platform",
            "A tired commuter squeezes into the carriage",
            "Her hands lift the Aria headphones over her ears",
            "The headphones on a seat, the carriage calm",
        ],
    }
)


def shots(*indices: int, **kw) -> str:
    return json.dumps({"shots": [shot(i, **kw) for i in indices]})


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def schema_of(request: dict) -> dict:
    return request["response_format"]["json_schema"]["schema"]


def test_batches_plan_an_outline_then_a_few_shots_a_call(server):
    server.script([OUTLINE, shots(0, 1), shots(2, 3)])
    lines: list[str] = []
    with within(5):
        storyboard = plan_storyboard(
            read_brief(BRIEF), config(server, llm_plan="batches", llm_batch=2), on_progress=lines.append
        )
    assert storyboard.planner == "llm:tiny-local" and len(storyboard.shots) == 4
    assert [s.subtitle for s in storyboard.shots] == [shot(i)["subtitle"] for i in range(4)]
    outline, first, second = server.requests
    assert (
        schema_of(outline)["properties"]["beats"]["minItems"]
        == 4
        == schema_of(outline)["properties"]["beats"]["maxItems"]
    )
    for request in (first, second):
        assert schema_of(request)["properties"]["shots"]["minItems"] == 2
        assert schema_of(request)["properties"]["shots"]["maxItems"] == 2
    # Each answer is short: sized to what it asks, far under the whole storyboard's cap.
    assert outline["max_tokens"] < 300 and first["max_tokens"] < 800
    # The outline is in every batch's prompt; the second batch also sees what the first one wrote.
    assert "Her hands lift the Aria headphones" in first["messages"][0]["content"]
    assert first["messages"][0]["content"] == second["messages"][0]["content"]  # one prefix for the cache
    assert "Write shot(s) 1, 2 of 4" in last_ask(first) and "Write shot(s) 3, 4 of 4" in last_ask(second)
    assert shot(0)["description"] in last_ask(second)
    assert any("outline of 4 shots" in line for line in lines)
    assert any("shots 3, 4 of 4 (batch 2 of 2)" in line for line in lines)


def test_a_bad_batch_is_asked_again_alone(server):
    chinese = shots(2, 3, prompt="拥挤的夜班地铁车厢，疲惫的通勤者，霓虹灯光")
    server.script([OUTLINE, shots(0, 1), chinese, shots(2, 3)])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server, llm_plan="batches", llm_batch=2))
    assert len(server.requests) == 4  # the outline and the first batch are not asked again
    again = server.requests[3]
    assert "prompt is in Chinese" in last_ask(again) and "shot 3" in last_ask(again)
    assert schema_of(again)["properties"]["shots"]["maxItems"] == 2
    assert storyboard.shots[2].prompt == shot(2)["prompt"]


def test_a_batch_that_stays_wrong_comes_from_the_offline_planner(server):
    server.script([OUTLINE, shots(0, 1), "not json", "still not json"])
    notes: list[str] = []
    storyboard = plan_storyboard(read_brief(BRIEF), config(server, llm_plan="batches", llm_batch=2), notes)
    assert len(storyboard.shots) == 4 and storyboard.shots[0].subtitle == shot(0)["subtitle"]
    assert any("shot(s) 3, 4 from the offline planner" in n for n in notes)
    assert storyboard.shots[3].subtitle != ""  # the offline end card: the brief's copy


def test_auto_plans_in_short_calls_when_the_whole_answer_is_cut_off(server):
    looping = '{"title": "Hear", "shots": [{"kind": "establishing", "description": "a train a train'
    cut = Reply(looping, finish_reason="length")
    server.script([cut, cut, OUTLINE, shots(0, 1, 2), shots(3)])
    notes: list[str] = []
    with within(5):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server, llm_plan="auto"), notes)
    assert len(server.requests) == 5 and len(storyboard.shots) == 4
    assert "beats" in schema_of(server.requests[2])["properties"]
    assert schema_of(server.requests[3])["properties"]["shots"]["maxItems"] == 3  # the default batch
    assert any(
        n.startswith("planned in short calls: the whole storyboard in one answer failed") for n in notes
    )


def test_whole_keeps_one_call_and_fails_as_before(server):
    server.script(["nothing to see"])
    with pytest.raises(PlanError, match="gave no valid storyboard"):
        plan_storyboard(read_brief(BRIEF), config(server, llm_plan="whole"))
    assert all("beats" not in schema_of(r)["properties"] for r in server.requests if "json_schema" in str(r))


def test_an_outline_that_times_out_ends_the_planning(server):
    server.script([Delay(1.5, OUTLINE)])
    with within(3), pytest.raises(PlanError, match=r"no answer within 0.5 s"):
        plan_storyboard(read_brief(BRIEF), config(server, llm_plan="batches", llm_timeout=0.5))
    assert len(server.requests) == 1


def test_the_settings_are_flags_and_environment(monkeypatch, tmp_path):
    from agent.flags import settings_from_args
    from main import build_parser

    args = build_parser().parse_args(["run", "a brief", "--llm-plan", "batches", "--llm-batch", "2"])
    settings, _ = settings_from_args(args, str(tmp_path / "run"))
    assert (settings.llm_plan, settings.llm_batch) == ("batches", 2)
    monkeypatch.setenv("CD_LLM_PLAN", "whole")
    args = build_parser().parse_args(["run", "a brief"])
    assert settings_from_args(args, str(tmp_path / "run"))[0].llm_plan == "whole"


def test_the_whole_board_answer_still_works_in_batches_mode(server):
    # A small model asked for two shots often writes the whole storyboard: the two asked are taken by position.
    server.script([OUTLINE, shots(0, 1), board([shot(i) for i in range(4)])])
    storyboard = plan_storyboard(read_brief(BRIEF), config(server, llm_plan="batches", llm_batch=2))
    assert len(server.requests) == 3
    assert [s.subtitle for s in storyboard.shots] == [shot(i)["subtitle"] for i in range(4)]


def test_the_director_shows_the_planners_progress(server, tmp_path):
    """Long LLM planning is not silent: the planner's lines reach the run's progress while the plan node runs."""
    from test_llm_paths import good

    from agent import director
    from agent.settings import RunSettings

    server.script([good()])
    settings = RunSettings(
        run_dir=str(tmp_path / "run"),
        planner="llm",
        llm_base_url=server.base_url,
        llm_model="tiny-local",
        llm_timeout=5,
        shots=4,
        duration=12,
        approve=True,
    )
    events: list[tuple[str, dict]] = []
    film = director.start(
        read_brief(BRIEF), settings, on_event=lambda node, update: events.append((node, update))
    )
    assert film.waiting_for_approval
    lines = [update["planner"] for node, update in events if node == "progress"]
    assert any(line.startswith("asking tiny-local for storyboard") for line in lines), lines
    plan_at = next(i for i, (node, _) in enumerate(events) if node == "plan")
    assert all(i < plan_at for i, (node, _) in enumerate(events) if node == "progress")
