"""The brief set (tests/data/briefs/briefs.jsonl): the planner obeys each brief, offline and through the LLM
planner behind the real openai client talking to a scripted loopback endpoint (tests/fakes.py)."""

from __future__ import annotations

import json

import pytest
from fakes import FakeOpenAI

from evals.bench_briefs import CHECKS, check, config_for, load_cases
from tools.brief import read_brief
from tools.plan import plan_storyboard

CASES = load_cases()
CHAT = "/v1/chat/completions"


def test_the_set_is_large_and_mixed():
    assert len(CASES) >= 30
    kinds = {(c["kind"], c["lang"]) for c in CASES}
    assert kinds >= {(k, lang) for k in ("product", "story", "screenplay") for lang in ("en", "zh")}
    assert any(c["dialogue"] for c in CASES) and any(not c["duration"] for c in CASES)
    assert any(c["platforms"] for c in CASES) and any(not c["platforms"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reading(case):
    reading = read_brief(case["text"]).reading
    assert reading.duration == case["duration"]
    assert reading.platforms == case["platforms"]
    if case["aspect"]:
        assert reading.aspect == case["aspect"]
    assert reading.lang == case["lang"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_offline_planner_obeys_the_brief(case):
    board = plan_storyboard(read_brief(case["text"]), config_for(case))
    result = check(board, case)
    assert [name for name in CHECKS if not result[name]] == []
    if read_brief(case["text"]).reading.subject_kind:
        assert all(s.subject_kind for s in board.shots)


def _answer(board, **shot0) -> str:
    """The storyboard as a model would write it (no ids), with `shot0` changes on the first shot."""
    shots = []
    for s in board.shots:
        shots.append(
            {
                k: getattr(s, k)
                for k in ("kind", "description", "camera", "lighting", "mood", "motion", "duration")
            }
            | {"subtitle": s.subtitle, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
            | {"expect_text": s.expect_text, "speaker": s.speaker, "subject_kind": s.subject_kind}
        )
    shots[0] |= shot0
    reading = read_brief(board.title).reading.model_dump(exclude={"lang"}) | {"subject_kind": "person"}
    return json.dumps({"title": board.title, "shots": shots, "reading": reading, "notes": board.notes})


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_llm_planner_is_held_to_the_brief(case, server):
    """A model answer that breaks the brief is shown its fault and asked again; the kept answer passes."""
    brief = read_brief(case["text"])
    good = plan_storyboard(brief, config_for(case))
    # What a careless model does: burn the brief (or a stage direction) as a subtitle, or drop a line.
    if case["meta"]:
        bad, fault = _answer(good, subtitle=case["meta"][0]), "deliverable"
    elif case["directions"] and len(case["directions"][0]) > 12:
        bad, fault = _answer(good, subtitle=case["directions"][0]), "stage direction"
    elif case["dialogue"]:
        said = next(s for s in good.shots if case["dialogue"][0] in s.subtitle)
        shots = json.loads(_answer(good))
        shots["shots"][said.index - 1]["subtitle"] = ""
        bad, fault = json.dumps(shots), "dialogue line"
    else:
        bad, fault = _answer(good, prompt=good.shots[1].prompt), "same prompt"
    server.script(CHAT, [bad, _answer(good)])
    before = len(server.requests.get(CHAT, []))
    config = config_for(
        case, planner="llm", llm_base_url=server.base_url, llm_model="fake", llm_retries=1, llm_timeout=5
    )
    board = plan_storyboard(brief, config)
    requests = server.requests[CHAT][before:]
    assert len(requests) == 2
    assert fault in requests[1]["messages"][-1]["content"]
    shots_schema = requests[0]["response_format"]["json_schema"]["schema"]["properties"]["shots"]
    assert shots_schema["minItems"] == shots_schema["maxItems"] == len(good.shots)
    assert board.planner == "llm:fake"
    result = check(board, case)
    assert [name for name in CHECKS if not result[name]] == []
