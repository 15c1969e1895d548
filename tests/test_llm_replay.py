"""The real answers of a small local model, replayed (issue 18): Qwen2.5-Coder-0.5B-Instruct Q4_K_M behind
llama.cpp's llama-server, recorded by evals/bench_llm_plan.py (tests/data/llm_replay/). Main's planner threw every
one of these storyboards away; the director's own rules now mend them, and the storyboard is the model's.

Each reply is the model's text as it came, served by the loopback server behind the real openai client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_server import ChatServer, Delay, Reply
from test_llm_batches import OUTLINE, shots
from test_llm_paths import BRIEF, config, good, last_ask, within

from tools.plan import plan_storyboard, read_brief
from tools.plan_review import rebuilt_by_rule, same_key
from tools.plan_schema import outline_schema, planner_schema, shots_schema

ANSWERS = Path(__file__).parent / "data" / "llm_replay" / "qwen05b_answers.jsonl"
BRIEFS = {
    "headphones-en": "A 20-second launch film for wireless noise-cancelling headphones, for Instagram. A commuter "
    'on a loud train puts them on and the city goes quiet. Slogan: "Silence, redesigned."',
    "mug-en": "A 12-second Xiaohongshu clip for a handmade ceramic coffee mug, slogan 'Slow mornings'. Steam at "
    "dawn, hands around the mug, the glaze up close.",
    "ev-zh": "半分钟的电动汽车广告：城市夜景，汽车驶过雨后的街道，车内安静，充电十分钟续航两百公里。",
}
# Session 5's quiet benchmark: whole answers with one description on every shot (call 1), and the same server's
# answers to the beats call for them (call 2).
SESSION5 = Path(__file__).parent / "data" / "llm_replay" / "qwen05b_session5_answers.jsonl"


def recorded(brief: str, call: int) -> dict:
    for line in ANSWERS.read_text().splitlines():
        row = json.loads(line)
        if row["brief"] == brief and row["call"] == call:
            return row
    raise KeyError((brief, call))


def replay(brief: str, call: int) -> Reply:
    row = recorded(brief, call)
    return Reply(row["content"], finish_reason=row["finish_reason"])


def offline_shots(notes: list[str]) -> list[str]:
    """Notes of shots the offline planner wrote instead of the model (what the benchmark counts)."""
    return [n for n in notes if n.startswith("shot(s) ") and "from the offline planner" in n]


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def plan(server, brief: str, **kw):
    notes: list[str] = []
    with within(8):
        board = plan_storyboard(read_brief(BRIEFS[brief]), config(server, duration=None, **kw), notes)
    return board, notes


def assert_a_usable_board(board, notes: list[str]) -> None:
    assert board.planner == "llm:tiny-local" and len(board.shots) == 4
    assert not offline_shots(notes), offline_shots(notes)
    for name in ("description", "prompt"):
        values = [getattr(s, name) for s in board.shots]
        assert len({v.casefold() for v in values}) == 4, values
    for s in board.shots:
        assert "second" not in s.prompt and "Xiaohongshu" not in s.prompt and "Instagram" not in s.prompt
        assert "second" not in s.description and s.speaker is None


def test_the_recorded_whole_answers_are_used_with_rule_repairs(server):
    """Try 1 looped in `reading.slogans` until the token limit; try 2 (the shorter request, without `reading`)
    gave the same prompt on every shot, a description about the film and two shots alike."""
    assert recorded("headphones-en", 1)["finish_reason"] == "length"
    server.script([replay("headphones-en", 1), replay("headphones-en", 2)])
    board, notes = plan(server, "headphones-en")
    assert len(server.requests) == 2
    shorter = server.requests[1]
    assert "reading" not in shorter["response_format"]["json_schema"]["schema"]["properties"]
    assert "shorter" in last_ask(shorter) and "Write only these keys: title, shots, notes" in last_ask(
        shorter
    )
    assert_a_usable_board(board, notes)
    assert not any("Subject: commuter" in s.prompt for s in board.shots)
    assert sum("rebuilt from the shot's fields" in n for n in notes) == 4
    assert any("shot 1: the description speaks about the film" in n for n in notes)
    # The copy is said once, on the end card; the model's chatter in `notes` is not the director's.
    assert [s.subtitle for s in board.shots] == ["", "", "", "Silence, redesigned"]
    assert not any("The price is 1000" in n for n in notes + board.notes)


def test_the_slogan_as_every_prompt_is_rebuilt_from_each_shot(server):
    """Try 1's four shots as written before the loop: every prompt the slogan, every duration 20 s, shots 2 and 4
    alike."""
    content = recorded("headphones-en", 1)["content"]
    written = content[: content.index(',\n  "reading"')] + "}"
    server.script([written])
    board, notes = plan(server, "headphones-en")
    assert len(server.requests) == 1
    assert_a_usable_board(board, notes)
    assert all(s.prompt != "Silence, redesigned." for s in board.shots)
    # Each prompt is built from that shot's own description, camera, lighting and mood.
    assert "Commuter on a loud train puts headphones on" in board.shots[0].prompt
    assert all("soft window light" in s.prompt for s in board.shots)
    assert any("shot 4: the description repeats an earlier shot's" in n for n in notes)
    assert sum(s.duration for s in board.shots) == pytest.approx(10.0)  # 4 x 20 s rescaled to the film
    assert "shot durations added up to 80 s for a 10 s film; rescaled" in notes


@pytest.mark.parametrize("brief", ["headphones-en", "mug-en"])
def test_the_recorded_short_calls_are_used_with_rule_repairs(server, brief):
    """The outline's first beat was the brief's sentence about the film; batch 1 put one prompt (the brief
    itself) on every shot; batch 2's shot repeated shot 1's description, with the prompt 'a mug' (headphones)."""
    server.script([replay(brief, 3), replay(brief, 5), replay(brief, 7)])
    board, notes = plan(server, brief, llm_plan="batches", llm_batch=3)
    assert len(server.requests) == 3  # nothing asked again: the rules mend what the model got wrong
    assert_a_usable_board(board, notes)
    assert any(n.startswith("outline beat 1 speaks about the film") for n in notes)
    assert any(
        "shot 4: the description repeats an earlier shot's; took the outline's beat" in n for n in notes
    )
    assert board.shots[3].expect_text is None or board.shots[3].expect_text in BRIEFS[brief]


def test_every_schema_sent_bounds_its_arrays_and_strings():
    def walk(node, path="$"):
        if isinstance(node, dict):
            if node.get("type") == "array":
                assert "maxItems" in node, path
            if node.get("type") == "string" and "enum" not in node:
                assert "maxLength" in node, path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for schema in (planner_schema(4), planner_schema(6, reading=False), shots_schema(2), outline_schema(4)):
        walk(schema)


def test_auto_gives_the_whole_storyboard_half_the_timeout_then_short_calls(server):
    """A server too slow for the whole storyboard in half of --llm-timeout is asked in short calls, each with
    the whole timeout, instead of waiting for the whole answer and asking again."""
    server.script([Delay(1.4, good()), OUTLINE, shots(0, 1, 2), shots(3)])
    notes: list[str] = []
    with within(6):
        board = plan_storyboard(read_brief(BRIEF), config(server, llm_timeout=2.0), notes)
    assert len(server.requests) == 4 and len(board.shots) == 4
    assert any(
        n.startswith("planned in short calls: the whole storyboard in one answer failed") for n in notes
    )


def test_a_shot_whose_copy_stays_wrong_keeps_its_picture(server):
    """Asked again and still wrong only in its subtitle: the offline planner gives the copy, the model keeps
    the picture (description, camera, prompt) it wrote."""
    from test_llm_paths import board, shot

    wrong = shot(2, subtitle="A 12-second launch film for Instagram")
    server.script([board([shot(0), shot(1), wrong, shot(3)]), "not json"])
    notes: list[str] = []
    with within(8):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    third = storyboard.shots[2]
    assert (third.description, third.prompt) == (wrong["description"], wrong["prompt"])
    assert "Instagram" not in third.subtitle
    assert any(n.startswith("shot(s) 3 from the offline planner: subtitle only") for n in notes)


def test_short_calls_take_the_offline_copy_for_a_wrong_subtitle_without_asking_again(server):
    server.script([OUTLINE, shots(0, 1), shots(2, 3, subtitle="然后，Aria。")])
    notes: list[str] = []
    with within(6):
        storyboard = plan_storyboard(
            read_brief(BRIEF), config(server, llm_plan="batches", llm_batch=2), notes
        )
    assert len(server.requests) == 3
    assert all("然后" not in s.subtitle for s in storyboard.shots)
    assert any(
        n.startswith("shot 3: subtitle '然后，Aria。' is not in English; took the offline") for n in notes
    )


def test_a_storyboard_still_wrong_after_its_tries_is_mended_shot_by_shot(server):
    """Every prompt in Chinese, twice: the last storyboard is kept and its shots asked again one at a time,
    rather than the whole planning failing."""
    from test_llm_paths import board, shot

    chinese = board([shot(i, prompt=f"第{i + 1}个镜头，夜班地铁，霓虹灯光，电影感") for i in range(4)])
    server.script([chinese, chinese, shots(0), shots(1), shots(2), shots(3)])
    notes: list[str] = []
    with within(8):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server, llm_plan="whole"), notes)
    assert len(server.requests) == 6 and storyboard.planner == "llm:tiny-local"
    assert any(n.startswith("the planning model's last storyboard, mended shot by shot") for n in notes)
    assert [s.prompt for s in storyboard.shots] == [
        json.loads(shots(i))["shots"][0]["prompt"] for i in range(4)
    ]
    for i, request in enumerate(server.requests[2:]):
        assert f"Write only shot(s) {i + 1} again" in last_ask(request)


def test_a_batch_still_wrong_after_its_tries_keeps_what_is_usable(server):
    chinese = shots(2, 3, prompt="拥挤的夜班地铁车厢，疲惫的通勤者，霓虹灯光")
    server.script([OUTLINE, shots(0, 1), chinese, chinese])
    notes: list[str] = []
    with within(6):
        storyboard = plan_storyboard(
            read_brief(BRIEF), config(server, llm_plan="batches", llm_batch=2), notes
        )
    assert len(server.requests) == 4 and not offline_shots(notes)
    from test_llm_paths import SCENES

    for s, (_, description, _) in zip(storyboard.shots[2:], SCENES[2:], strict=True):
        assert description in s.prompt and "35mm" in s.prompt  # built from the shot's own fields
    assert sum("prompt is in Chinese" in n and "rebuilt from the shot's fields" in n for n in notes) == 2


def test_a_shot_whose_prompt_stays_wrong_gets_one_from_its_own_fields(server):
    from test_llm_paths import board, shot

    chinese = shot(1, prompt="拥挤的夜班地铁车厢，疲惫的通勤者，霓虹灯光，电影感")
    server.script([board([shot(0), chinese, shot(2), shot(3)]), json.dumps({"shots": [chinese]})])
    notes: list[str] = []
    with within(8):
        storyboard = plan_storyboard(read_brief(BRIEF), config(server), notes)
    second = storyboard.shots[1]
    assert second.description == chinese["description"] and chinese["description"] in second.prompt
    assert "35mm" in second.prompt and "拥挤" not in second.prompt and not offline_shots(notes)
    assert any(
        n.startswith("shot 2: prompt is in Chinese") and n.endswith("rebuilt from the shot's fields")
        for n in notes
    )


@pytest.mark.parametrize(
    ("brief", "n", "descriptions"),
    [
        # The beats the model gave repeat its description and slogan: the offline planner's beats stand in.
        ("headphones-en", 4, {"the offline planner's beat": 3}),
        # Four of its beats are usable; the fifth is the copy it put in every subtitle.
        ("ev-zh", 6, {"the outline's beat": 4, "the offline planner's beat": 1}),
    ],
)
def test_one_description_on_every_shot_keeps_the_models_shots(server, brief, n, descriptions):
    """Session 5: the model wrote one description on every shot (ev-zh: the brief's own sentence), and every
    shot ended up the offline planner's after single-shot re-asks that repeated it. Now one short call asks for
    the beats, and each shot keeps what the model wrote for it."""
    rows = [json.loads(line) for line in SESSION5.read_text().splitlines()]
    rows = [r for r in rows if r["brief"] == brief]
    whole = json.loads(rows[0]["content"])["shots"]
    assert len({w["description"] for w in whole}) == 1
    server.script([Reply(r["content"], finish_reason=r["finish_reason"]) for r in rows])
    board, notes = plan(server, brief, shots=n, llm_retries=0)
    assert len(server.requests) == 2  # the whole storyboard, then the beats; no shot asked again
    assert server.requests[1]["response_format"]["json_schema"]["name"] == "beats"
    assert not offline_shots(notes), offline_shots(notes)
    assert board.shots[0].description == whole[0]["description"].strip()  # the first use keeps the model's
    assert len({same_key(s.description) for s in board.shots}) == n
    assert [(s.mood, s.motion) for s in board.shots] == [(w["mood"], w["motion"]) for w in whole]
    prompts = [s.prompt for s in board.shots]
    assert len(set(prompts)) == n and all(s.description.rstrip("。.") in s.prompt for s in board.shots)
    rebuilt = rebuilt_by_rule(notes)
    assert rebuilt["description"] == descriptions
    assert rebuilt["prompt"] == {"the shot's fields": n}
    # The copy is said once, on the end card.
    assert [bool(s.subtitle) for s in board.shots] == [False] * (n - 1) + [True]


def test_the_benchmark_counts_what_the_rules_rebuilt_and_from_what(server):
    """evals/bench_llm_plan.py's row for the replayed headphones-en: no offline shot, and the three descriptions
    that came from the offline planner's beats are counted as such, so the storyboard is not called the model's
    own picture for picture."""
    import argparse

    from evals.bench_llm_plan import _totals, plan_one

    rows = [json.loads(line) for line in SESSION5.read_text().splitlines()]
    server.script([Reply(r["content"]) for r in rows if r["brief"] == "headphones-en"])
    args = argparse.Namespace(
        llm_base_url=server.base_url, llm_model="tiny-local", llm_timeout=5.0, llm_retries=0,
        llm_max_tokens=None, llm_temperature=None, llm_plan="auto", llm_batch=3,
    )  # fmt: skip
    with within(8):
        row, answers = plan_one("headphones-en", BRIEFS["headphones-en"], 4, args)
    assert row["ok"] and row["offline_shots"] == 0 and len(answers) == 2
    assert row["rebuilt"]["description"] == {"the offline planner's beat": 3}
    totals = _totals([{"brief": "headphones-en", **row}])
    assert (totals["all_shots_by_the_model"], totals["all_pictures_from_the_model"]) == (1, 0)


QUIET5 = (
    Path(__file__).resolve().parents[1] / "evals/results/bench_llm_plan_qwen05b_session5_quiet_answers.jsonl"
)


@pytest.mark.parametrize("beats", ["not json", "echo"])
def test_every_session5_storyboard_keeps_every_shot_even_when_the_beats_call_fails(server, beats):
    """All ten of session 5's quiet-run conversations replayed in order (the whole answer, then the model's
    later answers for the shots asked again), with the beats call answered by junk or by the whole storyboard
    again: no shot is wholly the offline planner's, and every storyboard's descriptions are distinct."""
    from evals.bench_llm_plan import BRIEFS as BENCH
    from evals.bench_llm_plan import _offline_count

    rows = [json.loads(line) for line in QUIET5.read_text().splitlines()]
    for name, text, n in BENCH:
        mine = [r for r in rows if r["brief"] == name and r.get("content")]
        first = Reply(mine[0]["content"], finish_reason=mine[0]["finish_reason"])
        rest = [Reply(r["content"], finish_reason=r["finish_reason"]) for r in mine[1:]]
        server.script([first, first if beats == "echo" else Reply(beats), *rest])
        notes: list[str] = []
        with within(8):
            board = plan_storyboard(
                read_brief(text), config(server, duration=None, shots=n, llm_retries=0, llm_timeout=20), notes
            )
        assert sum(_offline_count(note) for note in notes) == 0, (name, notes)
        assert len({same_key(s.description) for s in board.shots}) == n, name
        assert "the offline planner's prompt" not in rebuilt_by_rule(notes)["prompt"], name


QUIET6 = QUIET5.with_name("bench_llm_plan_qwen05b_session6_quiet_answers.jsonl")


@pytest.mark.parametrize("brief", ["headphones-en", "bottle-en", "script-zh"])
def test_beats_that_echo_the_instructions_or_label_copy_are_not_taken(server, brief):
    """Session 6's quiet run: the beats call answered its own instructions ("The first shot establishes the
    place; the last closes the film", "Close the film on the product.") or labelled copy ("Claim: …",
    "字幕：…"), and those became descriptions. Replayed, none is a description and no shot is offline."""
    from evals.bench_llm_plan import BRIEFS as BENCH
    from evals.bench_llm_plan import _offline_count

    text, n = next((t, k) for name, t, k in BENCH if name == brief)
    rows = [json.loads(line) for line in QUIET6.read_text().splitlines()]
    mine = [r for r in rows if r["brief"] == brief and r.get("content")]
    server.script([Reply(r["content"], finish_reason=r["finish_reason"]) for r in mine])
    notes: list[str] = []
    with within(8):
        board = plan_storyboard(
            read_brief(text), config(server, duration=None, shots=n, llm_retries=0, llm_timeout=20), notes
        )
    for s in board.shots:
        assert not s.description.startswith(("The first shot", "Close the film", "Claim:", "字幕")), (
            s.description
        )
    assert sum(_offline_count(note) for note in notes) == 0
    assert len({same_key(s.description) for s in board.shots}) == n
