"""The graph's routers and loop helpers, one decision at a time: each returns one of the names it declares."""

from __future__ import annotations

import typing

import pytest
from langgraph.runtime import Runtime
from langgraph.types import Send

from agent import nodes
from agent.retry import retry
from agent.settings import RunSettings
from agent.state import FilmState, ShotState, TakeState
from tools.film import Brief, Critique, Shot, ShotResult, Storyboard, Take


def shot(i: int) -> Shot:
    return Shot(
        id=f"s{i:02d}",
        index=i,
        kind="medium",
        description=f"beat {i}",
        camera="35mm",
        lighting="soft",
        mood="calm",
        duration=2.0,
        prompt=f"beat {i}",
    )


def take(n: int, grade: str | None, error: str | None = None) -> Take:
    critique = None if grade is None else Critique(passed=grade != "C", grade=grade)
    return Take(
        shot_id="s01",
        n=n,
        path=f"shots/s01/take-{n}.png",
        backend="draft",
        model="m",
        seed=n,
        prompt="p",
        critique=critique,
        error=error,
    )


def runtime(tmp_path, **kw) -> Runtime[RunSettings]:
    return Runtime(context=RunSettings(run_dir=str(tmp_path), **kw))


def declared(router) -> set[str]:
    """The names a router's return annotation allows (Literal members, through a union with list[Send])."""
    hint = typing.get_type_hints(router)["return"]
    literals = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal] or [hint]
    return {v for lit in literals for v in typing.get_args(lit)}


# --- after_critique: the take loop's cap ------------------------------------------------------------------------


def test_after_critique_declares_its_names():
    assert declared(nodes.after_critique) == {"keep", "repair"}


@pytest.mark.parametrize(
    "grades,max_takes,state_cap,expected",
    [
        (["A"], 3, None, "keep"),  # passed at once
        (["B"], 3, None, "keep"),  # B passes: usable, flagged for review
        (["C"], 3, None, "repair"),  # failed, takes left
        (["C", "C"], 3, None, "repair"),
        (["C", "C", "C"], 3, None, "keep"),  # the run's cap: keep the best of three
        (["C", "A"], 3, None, "keep"),
        (["C"], 1, None, "keep"),  # a cap of one never repairs
        (
            ["C"],
            3,
            1,
            "keep",
        ),  # the loop's own cap wins over the run's (the harness's single-render strategies)
        (["C", "C"], 1, 3, "repair"),
    ],
)
def test_after_critique(tmp_path, grades, max_takes, state_cap, expected):
    state = TakeState(shot=shot(1), takes=[take(n, g) for n, g in enumerate(grades, 1)], max_takes=state_cap)
    assert nodes.after_critique(state, runtime(tmp_path, max_takes=max_takes)) == expected


def test_after_critique_repairs_a_backend_error_and_counts_only_this_loops_takes(tmp_path):
    failed = TakeState(shot=shot(1), takes=[take(1, "C", error="server said 503")])
    assert nodes.after_critique(failed, runtime(tmp_path, max_takes=2)) == "repair"
    # After a redo the loop starts at take 4: three old takes on disk do not use up its cap.
    redo = ShotState(shot=shot(1), first_take=4, takes=[take(4, "C")])
    assert nodes.after_critique(redo, runtime(tmp_path, max_takes=2)) == "repair"


def test_best_take_prefers_grade_then_fewer_issues_then_earlier():
    takes = [take(1, "C"), take(2, "B"), take(3, "B"), take(4, None, error="boom")]
    assert nodes.best_take(takes).n == 2
    assert nodes.best_take([take(1, None, error="boom")]) is None


# --- fan_out: one branch per shot, the anchor first ---------------------------------------------------------


def film(n_shots: int, done: list[int] = ()) -> FilmState:
    shots = [shot(i) for i in range(1, n_shots + 1)]
    board = Storyboard(title="t", lang="en", width=320, height=180, planner="offline", shots=shots)
    results = [
        ShotResult(
            shot_id=f"s{i:02d}",
            takes=[take(1, "A").model_copy(update={"shot_id": f"s{i:02d}"})],
            best=1,
            flagged=False,
        )
        for i in done
    ]
    return FilmState(brief=Brief(text="x", lang="en"), storyboard=board, approved=True, results=results)


def sends(out) -> list[tuple[str, str, list[str]]]:
    assert isinstance(out, list) and all(isinstance(s, Send) for s in out)
    return [(s.node, s.arg.shot.id, s.arg.references) for s in out]


def test_fan_out_declares_cut():
    assert declared(nodes.fan_out) == {"cut"}


def test_fan_out_sends_every_shot_without_a_result(tmp_path):
    assert sends(nodes.fan_out(film(3), runtime(tmp_path))) == [
        ("shoot", "s01", []),
        ("shoot", "s02", []),
        ("shoot", "s03", []),
    ]
    # A redo keeps the other shots' results: only the re-shot shot is sent.
    assert sends(nodes.fan_out(film(3, done=[1, 3]), runtime(tmp_path))) == [("shoot", "s02", [])]
    assert nodes.fan_out(film(3, done=[1, 2, 3]), runtime(tmp_path)) == "cut"


def test_fan_out_tail_and_redo_numbering(tmp_path):
    state = film(2).model_copy(update={"redo": {"s02": 5}})
    first, last = nodes.fan_out(state, runtime(tmp_path, crossfade=0.5))
    assert (first.arg.tail, last.arg.tail) == (0.5, 0.0)  # the last clip has nothing to fade into
    assert (first.arg.first_take, last.arg.first_take) == (1, 5)


def test_fan_out_with_an_anchor(tmp_path):
    rt = runtime(tmp_path, anchor=2, reference=["refs/ref-1.png"])
    assert sends(nodes.fan_out(film(3), rt)) == [("anchor", "s02", ["refs/ref-1.png"])]
    after = sends(nodes.fan_out(film(3, done=[2]), rt))
    kept = "shots/s01/take-1.png"  # the anchor's kept take (take() records it under shots/s01)
    assert after == [
        ("shoot", "s01", ["refs/ref-1.png", kept]),
        ("shoot", "s03", ["refs/ref-1.png", kept]),
    ]
    assert nodes.fan_out(film(3, done=[1, 2, 3]), rt) == "cut"
    # An anchor past the last shot is the last shot.
    assert sends(nodes.fan_out(film(2), runtime(tmp_path, anchor=7)))[0][:2] == ("anchor", "s02")


# --- retry: the loop of clips and variants ------------------------------------------------------------------


def test_retry_stops_at_the_first_accepted_and_caps_the_rest():
    made = []

    def attempt(k, before):
        made.append((k, before))
        return k

    assert retry(3, attempt, lambda k: k == 2) == 2
    assert made == [(1, None), (2, 1)]  # each attempt sees the one before it
    made.clear()
    assert retry(3, attempt, lambda k: False) == 3  # none accepted: the last one, after exactly `tries`
    assert [k for k, _ in made] == [1, 2, 3]
