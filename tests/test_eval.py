"""The evaluation harness: prompt sets, strategies, the llm rewrite, resume, summaries and an offline run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jinja2
import pytest
from fakes import FakeOpenAI, Status

from agent.settings import RunSettings
from evals import harness, report, strategies
from evals.prompts import (
    EvalPrompt,
    PromptSetError,
    filter_prompts,
    load_prompt_set,
    sample_prompts,
)
from evals.strategies import STRATEGIES, RewriteFailed, StrategyError, get_strategies, register
from tools.llm import LLMError
from tools.templates import render


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    harness.add_eval_arguments(parser)
    return parser.parse_args(list(argv))


def run(*argv: str) -> int:
    return harness.run_eval(parse(*argv))


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


# --- prompt sets --------------------------------------------------------------------------------------------


def test_tsv_quoted_fields_and_bad_rows(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text(
        "id\tPrompt\tcategory\n"
        'a\t"a cat,\tsitting\non a mat"\tAnimals\n'  # tab and newline inside quotes: one row over two lines
        "b\t\tAnimals\n"  # line 4: empty prompt
        "c\ta dog\tAnimals\textra\n"  # line 5: too many fields
        "a\ta duplicate\tAnimals\n"  # line 6: duplicate id
        "d\ta bird\t\n",
        encoding="utf-8",
    )
    loaded = load_prompt_set(str(f))
    assert [p.id for p in loaded.prompts] == ["a", "d"]
    assert loaded.prompts[0].prompt == "a cat,\tsitting\non a mat"
    assert loaded.prompts[0].line == 2
    assert loaded.prompts[1].category == "unspecified"
    assert [p.split(":")[0] for p in loaded.problems] == ["p.tsv line 4", "p.tsv line 5", "p.tsv line 6"]
    assert "expected 3 fields, got 4" in loaded.problems[1]
    assert "first on line 2" in loaded.problems[2]


def test_csv_quoted_commas_and_default_ids(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(
        '\ufeffprompt,challenge\n"red, green and ""blue"" cubes",Quantity\n"two lines\nof prompt",Basic\n',
        encoding="utf-8",
    )
    loaded = load_prompt_set(str(f))
    assert [p.prompt for p in loaded.prompts] == ['red, green and "blue" cubes', "two lines\nof prompt"]
    assert [p.id for p in loaded.prompts] == ["row-2", "row-3"]  # default id: the line the row starts on
    assert loaded.prompts[0].challenge == "Quantity"


def test_jsonl_bad_lines_reported(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        '{"prompt": "a fox", "id": 7, "category": "Animals"}\n'
        "\n"
        "{not json\n"
        '["a list"]\n'
        '{"id": "x"}\n'
        '{"prompt": "ok", "id": {"nested": 1}}\n'
        '{"prompt": "an owl at night"}\n',
        encoding="utf-8",
    )
    loaded = load_prompt_set(str(f))
    assert [(p.id, p.prompt) for p in loaded.prompts] == [("7", "a fox"), ("row-7", "an owl at night")]
    lines = [int(p.split(" line ")[1].split(":")[0]) for p in loaded.problems]
    assert lines == [3, 4, 5, 6]
    assert "not valid JSON" in loaded.problems[0] and "expected a JSON object" in loaded.problems[1]


def test_unusable_prompt_files(tmp_path):
    with pytest.raises(PromptSetError, match="not found"):
        load_prompt_set(str(tmp_path / "missing.tsv"))
    (tmp_path / "p.txt").write_text("prompt\nx\n")
    with pytest.raises(PromptSetError, match="unknown type"):
        load_prompt_set(str(tmp_path / "p.txt"))
    (tmp_path / "nocol.csv").write_text("text,id\nx,1\n")
    with pytest.raises(PromptSetError, match="no 'prompt' column"):
        load_prompt_set(str(tmp_path / "nocol.csv"))
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\nnope\n')
    with pytest.raises(PromptSetError, match="no valid rows"):
        load_prompt_set(str(tmp_path / "bad.jsonl"))
    (tmp_path / "bin.csv").write_bytes(b"prompt\n\xff\xfe\x00junk")
    with pytest.raises(PromptSetError, match="not UTF-8"):
        load_prompt_set(str(tmp_path / "bin.csv"))


def test_bad_prompt_file_exits_2(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    assert run("--prompts", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "no valid rows" in err and "line 1" in err and "Traceback" not in err
    assert run("--prompts", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "o")) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unsafe_ids_get_safe_file_names():
    assert EvalPrompt(id="cat_01", prompt="x").slug == "cat_01"
    slug = EvalPrompt(id="../../etc/passwd", prompt="x").slug
    assert "/" not in slug and ".." not in slug
    assert slug.startswith("etc_passwd-") and len(slug) == len("etc_passwd-") + 8


def test_parti_filters_and_sampling():
    parti = load_prompt_set("parti").prompts
    assert len(parti) == 1632
    assert parti[0].id == "parti-0001" and parti[0].prompt == "bond" and parti[0].category == "Abstract"
    animals = filter_prompts(parti, ["ANIMALS"], ["basic", "Quantity"])
    assert animals and all(p.category == "Animals" and p.challenge in {"Basic", "Quantity"} for p in animals)
    with pytest.raises(PromptSetError, match="unknown category 'Cats'.*Animals.*World Knowledge"):
        filter_prompts(parti, ["Cats"])
    with pytest.raises(PromptSetError, match="unknown challenge"):
        filter_prompts(parti, None, ["hard"])
    a, b = sample_prompts(parti, 10, seed=3), sample_prompts(parti, 10, seed=3)
    assert a == b and len(a) == 10
    assert a != sample_prompts(parti, 10, seed=4)
    assert [p.line for p in a] == sorted(p.line for p in a)  # kept in file order
    assert set(a) <= set(sample_prompts(parti, 25, seed=3))  # a larger limit extends the smaller sample
    assert sample_prompts(parti[:5], 10) == parti[:5]


def test_unknown_category_exits_2(capsys, tmp_path):
    assert run("--prompts", "parti", "--category", "Cats", "--out", str(tmp_path / "o")) == 2
    assert "Food & Beverage" in capsys.readouterr().err


# --- strategies ---------------------------------------------------------------------------------------------


def test_registry_and_unknown_strategy(capsys, tmp_path):
    assert {"raw", "template", "llm", "llm+critique"} <= set(STRATEGIES)
    assert STRATEGIES["llm+critique"].slug == "llm-critique" and STRATEGIES["llm+critique"].repair_loop
    with pytest.raises(StrategyError, match="registered: raw, template, llm, llm\\+critique"):
        get_strategies(["raw", "fancy"])
    assert run("--prompts", "parti", "--strategies", "raw,fancy", "--out", str(tmp_path / "o")) == 2
    assert "unknown strategy 'fancy'" in capsys.readouterr().err


def test_templates_render_strictly():
    with pytest.raises(jinja2.UndefinedError):
        render("strategies/template.j2", subject="a cat")
    with pytest.raises(jinja2.UndefinedError):
        render("strategies/llm.j2", image_model="m")
    settings = RunSettings(run_dir="/tmp/unused")
    item = EvalPrompt(id="x", prompt='A green sign that says "Very Deep Learning".', category="Artifacts")
    out = STRATEGIES["template"].rewrite(item, 0, settings)
    assert out.startswith("A green sign that says")
    assert 'the text "Very Deep Learning" in clean, legible' in out
    assert "photograph" in out and "clean background" in out
    sketch = EvalPrompt(id="y", prompt="a sketch of three camels", category="Animals", challenge="Quantity")
    out = STRATEGIES["template"].rewrite(sketch, 0, settings)
    assert (
        "drawing" in out and "photograph" not in out and "countable" not in out and "clearly separate" in out
    )
    assert STRATEGIES["raw"].rewrite(item, 0, settings) == item.prompt


def test_custom_strategy_registers_and_runs():
    @register("test-upper", template="strategies/raw.j2")
    def upper(item, seed, settings, render):
        """All capitals."""
        return render(prompt=item.prompt.upper())

    try:
        (s,) = get_strategies(["test-upper"])
        assert s.description == "All capitals."
        assert s.rewrite(EvalPrompt(id="a", prompt="a cat"), 0, RunSettings(run_dir="x")) == "A CAT"
        with pytest.raises(ValueError, match="twice"):
            register("test-upper", template="strategies/raw.j2")(upper)
    finally:
        del STRATEGIES["test-upper"]


def test_llm_strategy_needs_an_endpoint_before_any_work(capsys, tmp_path):
    assert run("--prompts", "parti", "--strategies", "raw,llm", "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "--llm-base-url" in err and "--llm-model" in err
    assert not (tmp_path / "o").exists()


def test_llm_rewrite_through_fake_endpoint():
    item = EvalPrompt(id="p1", prompt="a red cube", category="Abstract", challenge="Basic")
    with FakeOpenAI() as server:
        settings = RunSettings(run_dir="x", llm_base_url=server.base_url, llm_model="m", llm_retries=0)
        server.script(
            "/v1/chat/completions", ['```\nPrompt: "A glossy red cube on white, studio light."\n```']
        )
        assert STRATEGIES["llm"].rewrite(item, 5, settings) == "A glossy red cube on white, studio light."
        body = server.requests["/v1/chat/completions"][0]
        assert body["model"] == "m" and body["seed"] == 5
        assert body["messages"][1] == {"role": "user", "content": "a red cube"}
        assert (
            '"Abstract"' in body["messages"][0]["content"]
            and "at most 80 words" in body["messages"][0]["content"]
        )

        server.script("/v1/chat/completions", ["   "])
        with pytest.raises(RewriteFailed, match="empty"):
            STRATEGIES["llm"].rewrite(item, 0, settings)
        server.script("/v1/chat/completions", [Status(400, {"error": {"message": "content policy"}})])
        with pytest.raises(RewriteFailed, match="content policy"):
            STRATEGIES["llm"].rewrite(item, 0, settings)
        server.script("/v1/chat/completions", [Status(503)])
        # An outage is not this prompt's fault: it must raise, not be recorded as the prompt's failure.
        with pytest.raises(LLMError, match="HTTP 503"):
            STRATEGIES["llm"].rewrite(item, 0, settings)


# --- statistics over rows -----------------------------------------------------------------------------------


def _row(strategy, pid, seed, passed, seconds, width=512.0, category="A"):
    scores = {"passed": passed, "seconds": seconds, "takes": 1.0, "tech.width": width}
    return {
        "strategy": strategy,
        "prompt_id": pid,
        "seed": seed,
        "category": category,
        "challenge": "Basic",
        "passed": bool(passed),
        "scores": scores,
    }


def test_summary_numbers_by_hand():
    rows = [
        _row("raw", "p1", 0, 1.0, 2.0),
        _row("raw", "p2", 0, 0.0, 4.0),
        _row("raw", "p3", 0, 1.0, 6.0, category="B"),
        _row("t", "p1", 0, 1.0, 1.0),
        _row("t", "p2", 0, 1.0, 4.0),
        _row("t", "p3", 0, 0.0, 9.0, category="B"),
    ]
    s = report.summarise(rows, ["raw", "t"])
    raw = s["strategies"]["raw"]
    assert raw["n"] == 3 and raw["metrics"]["passed"]["mean"] == pytest.approx(2 / 3)
    assert raw["metrics"]["seconds"]["std"] == pytest.approx(2.0)  # 2, 4, 6
    assert raw["cost"] == {
        "accepted": 2,
        "acceptance_rate": pytest.approx(2 / 3),
        "takes_per_accepted": 1.5,
        "seconds_per_accepted": 6.0,
    }
    assert raw["by_category"]["A"]["n"] == 2 and raw["by_category"]["B"]["metrics"]["passed"]["mean"] == 1.0
    c = s["comparisons"]["t"]
    # seconds, t - raw: -1, 0, +3 -> mean 2/3; lower is better: one win, one tie, one loss -> 0.5
    assert c["seconds"]["mean_diff"] == pytest.approx(2 / 3) and c["seconds"]["win_rate"] == 0.5
    assert c["seconds"]["higher_is_better"] is False
    # passed: 0, +1, -1 -> mean 0, one win one tie one loss
    assert c["passed"]["mean_diff"] == 0.0 and c["passed"]["win_rate"] == 0.5 and c["passed"]["n_pairs"] == 3
    assert c["tech.width"]["win_rate"] is None and c["tech.width"]["higher_is_better"] is None
    assert report.verdict({"higher_is_better": False, "ci95": [-3.0, -1.0]}) == "better"
    assert report.verdict({"higher_is_better": True, "ci95": [-3.0, 1.0]}) == ""


# --- runs ---------------------------------------------------------------------------------------------------


@pytest.fixture
def prompt_file(tmp_path) -> Path:
    f = tmp_path / "prompts.tsv"
    f.write_text(
        "id\tprompt\tcategory\tchallenge\n"
        "cube\ta red cube on a table\tArtifacts\tBasic\n"
        "fox/1\ta fox in a snowy forest at dawn\tAnimals\tSimple Detail\n"
        "owls\tthree owls on a branch\tAnimals\tQuantity\n"
    )
    return f


def test_offline_run_writes_results_summary_and_report(tmp_path, prompt_file):
    out = tmp_path / "eval"
    args = (
        "--prompts",
        str(prompt_file),
        "--strategies",
        "raw,template",
        "--seeds",
        "2",
        "--size",
        "320x320",
        "--image-backend",
        "draft",
        "--out",
        str(out),
    )
    assert run(*args) == 0
    rows = rows_of(out)
    assert len(rows) == 3 * 2 * 2
    assert {(r["strategy"], r["prompt_id"], r["seed"]) for r in rows} == {
        (s, p, seed) for s in ("raw", "template") for p in ("cube", "fox/1", "owls") for seed in (0, 1)
    }
    for r in rows:
        assert {
            "strategy",
            "prompt_id",
            "seed",
            "category",
            "challenge",
            "final_prompt",
            "image",
            "scores",
            "critics_run",
            "critics_not_run",
            "grade",
            "passed",
        } <= set(r)
        assert r["image"].startswith("images/") and (out / r["image"]).is_file()
        assert "technical" in r["critics_run"] and "technical.pass" in r["scores"]
        assert all(isinstance(v, float) for v in r["scores"].values())
        assert r["scores"]["takes"] == 1.0 and r["scores"]["seconds"] > 0
    fox = next(
        r for r in rows if r["prompt_id"] == "fox/1" and r["strategy"] == "template" and r["seed"] == 1
    )
    assert fox["image"] == f"images/template/{EvalPrompt(id='fox/1', prompt='').slug}-s1.png"
    assert fox["final_prompt"].startswith("a fox in a snowy forest at dawn, ")

    summary = json.loads((out / "summary.json").read_text())
    for name in ("raw", "template"):
        st = summary["strategies"][name]
        assert st["n"] == 6
        m = st["metrics"]["passed"]
        assert set(m) == {"mean", "ci95", "std", "n"} and m["ci95"][0] <= m["mean"] <= m["ci95"][1]
        assert set(st["by_category"]) == {"Artifacts", "Animals"} and st["by_category"]["Animals"]["n"] == 4
        assert set(st["by_challenge"]) == {"Basic", "Simple Detail", "Quantity"}
        assert {"takes_per_accepted", "seconds_per_accepted"} <= set(st["cost"])
    comp = summary["comparisons"]["template"]["passed"]
    assert set(comp) >= {"mean_diff", "ci95", "win_rate", "n_pairs"} and comp["n_pairs"] == 6
    assert "raw" not in summary["comparisons"]

    html = (out / "report.html").read_text()
    assert html.count('<img src="images/') == 12 and "plot-metrics.png" in html
    assert "draft backend draws storyboard panels" in html
    for png in ("plot-metrics.png", "plot-by-category.png", "plot-by-challenge.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_skips_done_units_and_redoes_a_cut_line(tmp_path, prompt_file, capsys):
    out = tmp_path / "eval"
    args = (
        "--prompts",
        str(prompt_file),
        "--strategies",
        "raw,template",
        "--size",
        "256x256",
        "--image-backend",
        "draft",
        "--out",
        str(out),
    )
    assert run(*args) == 0
    first = (out / "results.jsonl").read_text()
    assert len(first.splitlines()) == 6

    assert run(*args) == 0  # nothing to do: nothing appended
    assert (out / "results.jsonl").read_text() == first
    assert "6 already in results.jsonl, 0 to make" in capsys.readouterr().err

    # A kill during a write leaves half a line at the end: it is dropped and its unit made again, once.
    lines = first.splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    assert run(*args) == 0
    assert "unfinished last line" in capsys.readouterr().err
    again = rows_of(out)
    assert len(again) == 6
    assert sorted(map(harness.row_key, again)) == sorted(map(harness.row_key, (json.loads(x) for x in lines)))

    # More seeds into the same folder: only the new units are made.
    assert run(*args, "--seeds", "2") == 0
    assert len(rows_of(out)) == 12 and "6 already in results.jsonl, 6 to make" in capsys.readouterr().err


def test_interrupted_run_continues(tmp_path, prompt_file, monkeypatch):
    out = tmp_path / "eval"
    args = (
        "--prompts",
        str(prompt_file),
        "--strategies",
        "raw,template",
        "--size",
        "256x256",
        "--image-backend",
        "draft",
        "--out",
        str(out),
    )
    real = harness.run_unit
    calls = {"n": 0}

    def dies_after_three(unit, settings):
        if "eval" in settings.run_dir:  # not the throwaway warm-up render
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
        return real(unit, settings)

    monkeypatch.setattr(harness, "run_unit", dies_after_three)
    assert run(*args) == 130
    assert len(rows_of(out)) == 3
    monkeypatch.setattr(harness, "run_unit", real)
    assert run(*args) == 0
    rows = rows_of(out)
    assert len(rows) == 6 and len({harness.row_key(r) for r in rows}) == 6


def test_rerun_with_other_settings_is_refused(tmp_path, prompt_file, capsys):
    out = tmp_path / "eval"
    base = (
        "--prompts",
        str(prompt_file),
        "--strategies",
        "raw",
        "--image-backend",
        "draft",
        "--out",
        str(out),
    )
    assert run(*base, "--size", "256x256", "--limit", "1") == 0
    assert run(*base, "--size", "320x320") == 2
    assert "width: 256 then, 320 now" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert run("--prompts", str(prompt_file), "--out", str(tmp_path / "other")) == 2
    assert "holds no eval run" in capsys.readouterr().err


def test_repair_loop_strategy_keeps_best_take(tmp_path):
    # Every take fails the technical critic (a sharpness bar no image clears): the loop runs to its
    # cap, each repair differs from the attempt before, and the record says so.
    register("test-loop", template="strategies/raw.j2", repair_loop=True)(strategies.raw)
    try:
        settings = RunSettings(
            run_dir=str(tmp_path),
            width=256,
            height=256,
            image_backend="draft",
            max_takes=3,
            thresholds={"sharpness_fail": 1e9},
        )
        item = EvalPrompt(id="p", prompt="a lighthouse on a cliff")
        row = harness.run_unit(harness.Unit("test-loop", item, 7), settings)
    finally:
        del STRATEGIES["test-loop"]
    assert row["scores"]["takes"] == 3.0 and row["passed"] is False and row["grade"] == "C"
    attempts = row["attempts"]
    assert [a["n"] for a in attempts] == [1, 2, 3] and attempts[0]["seed"] == 7
    assert attempts[1]["actions"] and len({(a["seed"], a["prompt"]) for a in attempts}) == 3
    assert row["image"] in {a["image"] for a in attempts} and (tmp_path / row["image"]).is_file()
    assert row["image"].startswith("images/test-loop/p-s7")


def test_llm_strategies_end_to_end_with_fake_endpoint(tmp_path, prompt_file):
    out = tmp_path / "eval"
    with FakeOpenAI() as server:
        server.script("/v1/chat/completions", ["A crisp studio photograph of the subject, soft light."])
        args = (
            "--prompts",
            str(prompt_file),
            "--strategies",
            "raw,llm,llm+critique",
            "--limit",
            "2",
            "--size",
            "256x256",
            "--image-backend",
            "draft",
            "--llm-base-url",
            server.base_url,
            "--llm-model",
            "fake",
            "--out",
            str(out),
        )
        assert run(*args) == 0
        rows = rows_of(out)
        assert len(rows) == 6
        for r in rows:
            if r["strategy"] != "raw":
                assert r["final_prompt"] == "A crisp studio photograph of the subject, soft light."
                assert r["prompt"] != r["final_prompt"]
        assert any(r["image"].startswith("images/llm-critique/") for r in rows)
        summary = json.loads((out / "summary.json").read_text())
        assert set(summary["comparisons"]) == {"llm", "llm+critique"}

        # The endpoint goes down mid-run: a clear error, exit 1, finished units kept for the rerun.
        server.script("/v1/chat/completions", [Status(503)])
        code = run(*args[:-1], str(tmp_path / "eval2"), "--seeds", "1")
    assert code == 1
    assert len(rows_of(tmp_path / "eval2")) == 1  # raw on the first prompt, before the first rewrite


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--seeds", "0"), "--seeds must be at least 1"),
        (("--limit", "0"), "--limit must be at least 1"),
        (("--max-takes", "11"), "--max-takes must be between 1 and 10"),
        (("--size", "7x0"), "out of range"),
        (("--strategies", "raw,raw"), "named twice"),
    ],
)
def test_bad_flags_exit_2(tmp_path, capsys, flags, message):
    assert run("--prompts", "parti", "--out", str(tmp_path / "o"), *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
