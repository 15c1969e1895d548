"""The director's rules for a small model's shots (issue 18): what they rebuild, from what, and the accounting.

Pure functions of tools/plan_review.py and tools/plan_fields.py, no server: a shot the model could not fix keeps
every field it got right; a rebuilt description or prompt says where its words came from.
"""

from __future__ import annotations

import pytest

from tools.film import Shot, Storyboard
from tools.plan_fields import from_what_it_wrote
from tools.plan_review import PlanContext, mend, rebuilt_by_rule, review, wants_beats
from tools.plan_schema import PlannedShot, PlannedStoryboard

BRIEF = "A 12-second film for a thermos. A nurse on a night train opens it; steam rises. Slogan: 'Warm all shift.'"
OFFLINE = [
    ("establishing", "A night train crosses the sleeping city", "wide city night light"),
    ("medium", "A tired nurse slumps in a train seat", "cool carriage light"),
    ("close-up", "Steam rises from the open thermos", "warm practical glow"),
    ("hero", "The thermos stands on the seat, the end card", "clean studio light"),
]


def offline() -> Storyboard:
    shots = [
        Shot(id=f"s{i:02d}", index=i, kind=k, description=d, camera="medium shot, 35mm lens", lighting=light,
             mood="quiet", duration=3.0, prompt=f"offline prompt {i}: {d}")
        for i, (k, d, light) in enumerate(OFFLINE, start=1)
    ]  # fmt: skip
    return Storyboard(title="t", lang="en", width=1280, height=720, planner="offline", shots=shots)


def planned(**kw) -> PlannedShot:
    values = {
        "kind": "medium",
        "description": "A nurse on a night train opens a thermos",
        "camera": "medium shot, 50mm lens, slow push-in",
        "lighting": "cool fluorescent carriage light",
        "mood": "weary",
        "motion": "push-in",
        "duration": 3.0,
        "subtitle": "",
        "prompt": "A nurse on a night train opens a thermos, 50mm film still, cool fluorescent light",
        "negative_prompt": "",
        "expect_text": None,
        "speaker": None,
        "subject_kind": None,
    }
    return PlannedShot.model_validate(values | kw)


def ctx(**kw) -> PlanContext:
    return PlanContext(**({"shots": 4, "lang": "en", "brief": BRIEF, "copy": ["Warm all shift."]} | kw))


def board(shots) -> PlannedStoryboard:
    return PlannedStoryboard(title="t", shots=shots, reading=None, notes=[])


def test_one_description_on_every_shot_takes_the_outline_beats_and_keeps_the_rest():
    same = board([planned(mood=f"mood {i}", prompt="Close-up, 85mm, slow push-in") for i in range(4)])
    beats = [
        "A dark train window",
        "A nurse yawns in her seat",
        "Steam curls from the thermos",
        "The thermos, lid up",
    ]
    assert wants_beats(same, ctx())
    mended, notes = mend(same, ctx(outline=beats, fill_repeats=True), offline)
    descriptions = [s.description for s in mended.shots]
    # The first use keeps the model's words; the repeats take their own beat.
    assert descriptions == ["A nurse on a night train opens a thermos", *beats[1:]]
    assert [s.mood for s in mended.shots] == [f"mood {i}" for i in range(4)]
    assert all(s.lighting == "cool fluorescent carriage light" for s in mended.shots)
    # A prompt that only names the camera shows nothing: each is built from that shot's own fields.
    for s in mended.shots:
        assert s.description in s.prompt and "cool fluorescent carriage light" in s.prompt
    assert not review(mended, ctx()).shots
    assert rebuilt_by_rule(notes) == {
        "description": {"the outline's beat": 3},
        "prompt": {"the shot's fields": 4},
        "outline": {},
    }


def test_without_an_outline_the_repeats_are_asked_again_whole_until_the_last_word():
    same = board([planned() for _ in range(4)])
    judged, _ = mend(same, ctx(), offline)
    assert review(judged, ctx()).needs_whole(4)  # asked again whole while there is time
    last, notes = mend(same, ctx(fill_repeats=True), offline)
    assert len({s.description for s in last.shots}) == 4 and not review(last, ctx()).shots
    assert rebuilt_by_rule(notes)["description"] == {"the offline planner's beat": 3}


def test_a_chinese_description_gets_its_english_prompt_from_its_outline_beat_or_its_own_words():
    prompt = "城市夜景，汽车驶过雨后的街道，车内安静"
    zh = board([planned(description=f"城市夜景，汽车驶过街道，镜头{i}", prompt=prompt) for i in range(4)])
    beats = ["A city street at night", "Rain on the car's windscreen", "A quiet cabin", "The car under neon"]
    for outline, subjects, source in (
        (beats, beats, "the outline's beat and the shot's fields"),
        # No English beat: the Chinese description in the English frame, as the offline planner writes them.
        ([], [s.description for s in zh.shots], "the shot's fields"),
    ):
        notes: list[str] = []
        part = ctx(lang="zh", outline=outline)
        fixed = from_what_it_wrote(
            zh, [0, 1, 2, 3], review(zh, part).shots, part, offline, notes, "asked again"
        )
        for s, subject in zip(fixed.shots, subjects, strict=True):
            assert subject in s.prompt and "cool fluorescent carriage light" in s.prompt
        assert all(not review(fixed, part).shots.get(i) for i in range(4))
        assert rebuilt_by_rule(notes)["prompt"] == {source: 4}


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [("camera", "1280x720 (横)", "medium shot, 35mm lens"), ("lighting", "无", "cool carriage light")],
)
def test_a_field_that_names_only_the_frame_or_nothing_takes_the_shot_grammars(field, value, expect):
    shots = [planned(description=d) for _, d, _ in OFFLINE]
    shots[1] = shots[1].model_copy(update={field: value})
    mended, notes = mend(board(shots), ctx(), offline)
    assert getattr(mended.shots[1], field) == expect
    assert getattr(mended.shots[0], field) == getattr(shots[0], field)
    assert any(n.startswith(f"shot 2: {field} {value!r}") for n in notes)


def test_a_shot_still_wrong_is_mended_field_by_field_not_replaced():
    shots = [planned(description=d, prompt=f"{d}, film still, 50mm") for _, d, _ in OFFLINE]
    shots[2] = shots[2].model_copy(
        update={"subtitle": "A 12-second film for Instagram", "prompt": shots[1].prompt, "mood": "hopeful"}
    )
    bad = review(board(shots), ctx()).shots
    notes: list[str] = []
    fixed = from_what_it_wrote(board(shots), [2], bad, ctx(), offline, notes, "asked again")
    third = fixed.shots[2]
    assert (third.description, third.mood, third.camera) == (OFFLINE[2][1], "hopeful", shots[2].camera)
    assert "Instagram" not in third.subtitle and OFFLINE[2][1] in third.prompt
    assert not [n for n in notes if n.startswith("shot(s) 3 from the offline planner: the planning model")]


def test_a_fault_no_rule_mends_is_still_the_offline_planners_shot():
    shots = [planned(description=d) for _, d, _ in OFFLINE]
    notes: list[str] = []
    fixed = from_what_it_wrote(
        board(shots), [1], {1: ["shot 2: something unknown"]}, ctx(), offline, notes, "x"
    )
    assert fixed.shots[1].description == OFFLINE[1][1]
    assert notes == ["shot(s) 2 from the offline planner: the planning model could not fix them (x)"]


def test_no_rule_fires_on_the_offline_planners_storyboards_of_the_brief_set():
    """A good answer is left as it is: the offline planner's own storyboards of the 33-brief set, given back as
    a model's answer, need no repair and no beats call."""
    from evals.bench_briefs import config_for, load_cases
    from tools.brief import read_brief
    from tools.plan import plan_storyboard
    from tools.plan_llm import script_context
    from tools.plan_offline import orientation
    from tools.plan_schema import offline_shot

    cases = load_cases()
    assert len(cases) >= 33
    for case in cases:
        brief, config = read_brief(case["text"]), config_for(case)
        good = plan_storyboard(brief, config)
        answer = board([offline_shot(s) for s in good.shots])
        frame = orientation(config.width, config.height)
        part = PlanContext(
            shots=len(good.shots), lang=good.lang, brief=brief.text, style=config.style, orientation=frame,
            fill_repeats=True, **script_context(brief),
        )  # fmt: skip
        mended, notes = mend(answer, part, lambda good=good: good)
        assert (notes, wants_beats(answer, part)) == ([], False), case["id"]
        assert mended.shots == answer.shots


@pytest.mark.parametrize(
    "beat",
    [
        # Seen in the session-6 quiet benchmark: the beats call echoing its own instructions, or labelled copy.
        "The first shot establishes the place; the last closes the film on the product",
        "Close the film on the product.",
        "Claim: cold for 24 hours. Price $39.00",
        "字幕：今天，慢一点",
        "广告内容简洁明了，简洁，清晰。",
        "使用清晰的字体，清晰，清晰。",
    ],
)
def test_a_beat_that_restates_the_instructions_or_is_labelled_copy_is_not_a_picture(beat):
    same = board([planned() for _ in range(4)])
    beats = ["A dark train window", beat, "Steam curls from the thermos", "The thermos, lid up"]
    mended, notes = mend(same, ctx(outline=beats, fill_repeats=True), offline)
    assert mended.shots[1].description == OFFLINE[1][1]  # the offline planner's beat for that place
    assert rebuilt_by_rule(notes)["description"] == {"the outline's beat": 2, "the offline planner's beat": 1}
