"""The brief set (tests/data/briefs/briefs.jsonl): the planner obeys each brief, offline and through the LLM
planner behind the real openai client talking to a scripted loopback endpoint (tests/fakes.py)."""

from __future__ import annotations

import json
import re

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


# A meta brief names the film and what it is about in one sentence (issue 10): the sentence is never a shot or a
# subtitle; its subject is drawn as what it is and its setting is every shot's scene.
META_BRIEFS = [
    ("a 6-second film about a paper boat on a rainy street", "paper boat", "rainy street", "boat"),
    ("A 10-second video about a red bicycle in a snowy park.", "red bicycle", "snowy park", "vehicle"),
    ("An 8-second clip of an old fisherman at dawn.", "old fisherman", "dawn", "person"),
    ("A 12-second film: a kayak on a misty lake.", "kayak", "misty lake", "boat"),
    ("一部6秒的短片，讲雨中街道上的一只纸船", "纸船", "雨中街道", "boat"),
    ("15秒的短片：清晨海边的一只小狗", "小狗", "清晨海边", "animal"),
    ("拍一支10秒的视频，关于一只在雪地里奔跑的狐狸", "狐狸", "雪地", "animal"),
]
META_WORDS = re.compile(
    r"\d+\s*-?\s*(?:second|s\b)|\b(?:film|video|clip)\b|秒|短片|视频|拍一支|讲|关于", re.IGNORECASE
)


@pytest.mark.parametrize(("text", "subject", "setting", "kind"), META_BRIEFS, ids=[b[1] for b in META_BRIEFS])
def test_a_meta_brief_is_read_for_its_subject_and_setting(text, subject, setting, kind, tmp_path):
    from tools.draft_panel import render_panel
    from tools.plan import PlannerConfig
    from tools.silhouettes import subject_kind

    brief = read_brief(text)
    assert (brief.reading.product, brief.reading.setting) == (subject, setting)
    board = plan_storyboard(brief, PlannerConfig(shots=4))
    assert len(board.shots) == 4
    descriptions = [s.description for s in board.shots]
    assert len(set(descriptions)) == 4 and len({s.prompt for s in board.shots}) == 4
    for shot in board.shots:
        # Nothing of the sentence that asked for the film: not whole, not its length or its words for a film.
        assert text.strip(" .") not in shot.description and text.strip(" .") not in shot.prompt
        assert not META_WORDS.search(shot.description), shot.description
        assert not shot.subtitle and not shot.voiceover  # nothing to say: no subtitle rather than the brief
        assert subject in shot.description and subject in shot.prompt
        assert shot.scene == setting
        assert shot.subject_kind == kind
        assert subject_kind(shot.subject_kind, shot.description, shot.kind) == kind
    assert board.title.lower() == subject.lower()
    _, drawn = render_panel(width=320, height=180, seed=1, prompt=board.shots[1].prompt, shot=board.shots[1])
    assert drawn["drawn"] == kind


def test_a_boat_is_drawn_as_a_boat_not_a_box():
    """The boat silhouette has its own outline: a hull wider at the top than at the keel and a peaked sail."""
    import numpy as np

    from tools.silhouettes import draw_subject

    boat = np.asarray(draw_subject("boat", 200, (40, 40, 60), (230, 230, 240), (0, 0, 0)))[..., 3] > 0
    box = np.asarray(draw_subject("product", 200, (40, 40, 60), (230, 230, 240), (0, 0, 0)))[..., 3] > 0
    width = lambda mask, row: int(mask[row].sum())  # noqa: E731
    h = boat.shape[0]
    assert width(boat, int(h * 0.1)) < width(boat, int(h * 0.6)) * 0.4  # the sail's peak is narrow
    assert width(boat, int(h * 0.97)) < width(boat, int(h * 0.6)) * 0.8  # the keel is narrower than the deck
    assert boat.shape != box.shape or (boat != box).mean() > 0.2


END_CARDS = [
    (
        "A 15-second launch film for the Aura noise-cancelling headphones. A commuter boards a loud train. "
        "Slogan 'Hear less. Feel more.' Price $199.",
        "Hear less. Feel more.",
        "Aura noise-cancelling headphones. Hear less. Feel more. $199.",
    ),
    (
        'A 10-second ad for the Nimbus mug. Steam over a cup at dawn. Tagline: "Slow mornings." '
        "Order now at nimbus.com.",
        "Slow mornings.",
        "Nimbus mug. Slow mornings. Order now at nimbus.com.",
    ),
    (
        "为新款降噪耳机拍一支15秒的抖音广告。地铁里人声嘈杂。口号“静享此刻”，售价¥899，立即购买。",
        "静享此刻",
        "新款降噪耳机。静享此刻。899元。立即购买。",
    ),
]


@pytest.mark.parametrize(("text", "slogan", "spoken"), END_CARDS, ids=["en-price", "en-cta", "zh"])
def test_the_end_card_reads_and_sounds_as_a_person_would_say_it(text, slogan, spoken):
    from tools.plan import PlannerConfig

    board = plan_storyboard(read_brief(text), PlannerConfig(shots=4))
    card = board.shots[-1]
    # The slogan stays whole, even when it holds two sentences; no separator follows a piece's own full stop.
    assert slogan in card.subtitle and slogan in card.expect_text
    assert not re.search(r"[.。!?]\s*[·｜]", card.subtitle)
    assert not card.subtitle.startswith(("'", '"', "“"))
    # The voice-over is sentences, not the card's layout: no separators, no stray quotes, each piece ended.
    assert card.voiceover == spoken
    assert not re.search(r"[·｜'\"“”]", card.voiceover)
