"""Unexpected exceptions (issue 11): a bug, a KeyError, a RuntimeError from a backend, raised in one shot's
branch (render, critique, clip) or in a step of the film (planning, cut, report).

Whatever raises, the run folder stays and says why: a shot that raised is recorded as failed with the
exception's type and message (run.json, manifest.json, report.html, its traceback in shots/<id>/error.log), the
other shots go on, the exit is 1 with one line naming the shot and what to do, and `--resume` of the folder,
once the cause is gone, finishes the film making again only what failed. Driven in-process through
`main.main`, with the fault monkeypatched into a backend or a tool; offline, tiny frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY = ["--shots", "2", "--duration", "4", "--size", "160x96"]
BRIEF = "Tea leaves unfurl in a glass. Steam rises by the window."


def run_main(capsys, *args: str) -> tuple[int, list[str]]:
    """Exit code and the `error:` lines of `python main.py ARGS`, run in this process; never a traceback."""
    import main

    code = main.main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


def marker(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def records(out: Path) -> dict[str, tuple[str, tuple[int, int] | None]]:
    """Every take and clip record with its media's (inode, mtime): a record or medium made again changes them."""
    found = {}
    for rec in sorted([*out.glob("shots/s*/take-*.json"), *out.glob("clips/s*.json")]):
        media = rec.with_suffix(".png" if rec.parent.parent.name == "shots" else ".mp4")
        st = media.stat() if media.exists() else None
        found[rec.relative_to(out).as_posix()] = (rec.read_text(), st and (st.st_ino, st.st_mtime_ns))
    return found


# --- faults in one shot's branch ---------------------------------------------------------------------------


def fail_render(monkeypatch, shot: str | None) -> None:
    """The image backend raises a RuntimeError (not a BackendError) for `shot` (None: every shot)."""
    from tools.generate_image import DraftBackend

    real = DraftBackend.generate

    def generate(self, req):
        if shot is None or req.shot.id == shot:
            raise RuntimeError("the image backend lost its context")
        return real(self, req)

    monkeypatch.setattr(DraftBackend, "generate", generate)


def fail_critique(monkeypatch, shot: str) -> None:
    """A critic's bug: a KeyError while judging `shot`'s take (recorded before it was judged)."""
    from tools import critique

    real = critique.critique_image

    def critique_image(req, config):
        if f"/{shot}/" in req.image_path:
            raise KeyError("sharpness_threshold")
        return real(req, config)

    monkeypatch.setattr(critique, "critique_image", critique_image)


def fail_clip(monkeypatch, shot: str) -> None:
    """The video backend raises while animating `shot`'s kept take."""
    from tools.animate import MotionBackend

    real = MotionBackend.animate

    def animate(self, req):
        if req.output_path.endswith(f"/clips/{shot}.mp4"):
            raise RuntimeError("the encoder lost its frames")
        return real(self, req)

    monkeypatch.setattr(MotionBackend, "animate", animate)


@pytest.mark.parametrize(
    "inject, node, words",
    [
        (fail_render, "render", ["RuntimeError", "the image backend lost its context"]),
        (fail_critique, "critique", ["KeyError", "sharpness_threshold"]),
        (fail_clip, "animate", ["RuntimeError", "the encoder lost its frames"]),
    ],
    ids=["render", "critique", "clip"],
)
def test_an_exception_in_one_shot_fails_only_that_shot(tmp_path, monkeypatch, capsys, inject, node, words):
    out = tmp_path / "run"
    inject(monkeypatch, "s02")
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--out", str(out))
    assert code == 1 and len(errors) == 1, errors
    line = errors[0]
    for w in ["s02", f"{node} raised", *words, f"--resume {out}"]:
        assert w in line, (w, line)
    assert "s01" not in line  # the other shot is in the film

    assert marker(out)["status"] == "incomplete"
    assert list(marker(out)["missing"]) == ["s02"] and words[0] in marker(out)["missing"]["s02"]
    assert (out / "clips" / "s01.mp4").exists() and not (out / "clips" / "s02.mp4").exists()
    assert (out / "final.mp4").exists()  # cut without the failed shot
    failed = json.loads((out / "manifest.json").read_text())["failed_shots"]
    assert list(failed) == ["s02"] and words[0] in failed["s02"] and words[1] in failed["s02"]
    assert "shots/s02/error.log" in failed["s02"]
    log = (out / "shots" / "s02" / "error.log").read_text()
    assert log.startswith("Traceback") and words[0] in log and words[1] in log
    report = (out / "report.html").read_text()
    assert "the shot failed" in report and words[1] in report

    before = records(out)
    monkeypatch.undo()  # the cause is gone
    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0, errors
    assert marker(out)["status"] == "done" and (out / "clips" / "s02.mp4").exists()
    assert "failed_shots" in (manifest := json.loads((out / "manifest.json").read_text()))
    assert manifest["failed_shots"] == {}
    assert not (out / "shots" / "s02" / "error.log").exists()  # no stale error once the shot is made
    after = records(out)
    assert {k: after[k] for k in before} == before  # nothing recorded was made again
    assert all(k.startswith(("shots/s02/", "clips/s02")) for k in set(after) - set(before))


def test_an_exception_in_every_shot_keeps_the_folder(tmp_path, monkeypatch, capsys):
    """Nothing was recorded (every render raised before its take was saved): the folder is kept all the same,
    since the error line tells the user to --resume it."""
    out = tmp_path / "run"
    fail_render(monkeypatch, None)
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--out", str(out))
    assert code == 1 and len(errors) == 1, errors
    for w in ["every shot failed", "s01", "s02", "RuntimeError", f"--resume {out}"]:
        assert w in errors[0], (w, errors[0])
    assert out.is_dir(), "the run folder named in the error was deleted"
    assert marker(out)["status"] == "failed" and sorted(marker(out)["missing"]) == ["s01", "s02"]
    assert not list(out.glob("shots/*/take-*.json"))
    assert all((out / "shots" / s / "error.log").exists() for s in ("s01", "s02"))
    assert "the image backend lost its context" in (out / "report.html").read_text()
    failed = json.loads((out / "manifest.json").read_text())["failed_shots"]
    assert sorted(failed) == ["s01", "s02"]

    monkeypatch.undo()
    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0, errors
    assert marker(out)["status"] == "done" and (out / "final.mp4").exists()


# --- faults in a step of the film ----------------------------------------------------------------------------


def test_an_exception_while_planning_keeps_the_folder(tmp_path, monkeypatch, capsys):
    """A planner bug (not the brief's fault): exit 1, the folder and its error.log stay, --resume plans again."""
    from tools import plan

    def broken(*args, **kwargs):
        raise KeyError("beats")

    monkeypatch.setattr(plan, "plan_storyboard", broken)
    out = tmp_path / "run"
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--out", str(out))
    assert code == 1 and len(errors) == 1, errors
    for w in ["KeyError", "beats", str(out / "error.log"), f"--resume {out}"]:
        assert w in errors[0], (w, errors[0])
    assert "KeyError" in (out / "error.log").read_text()
    assert marker(out)["status"] == "failed"

    monkeypatch.undo()
    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0, errors
    assert marker(out)["status"] == "done" and (out / "final.mp4").exists()


def fail_cut(monkeypatch) -> str:
    from tools import cut

    def cut_film(*args, **kwargs):
        raise RuntimeError("the muxer lost a stream")

    monkeypatch.setattr(cut, "cut_film", cut_film)
    return "the muxer lost a stream"


def fail_report(monkeypatch) -> str:
    from agent import report

    def write_report(*args, **kwargs):
        raise ValueError("a template lost a variable")

    monkeypatch.setattr(report, "write_report", write_report)
    return "a template lost a variable"


@pytest.mark.parametrize("inject", [fail_cut, fail_report], ids=["cut", "report"])
def test_an_exception_in_the_cut_or_report_resumes_without_shooting_again(
    tmp_path, monkeypatch, capsys, inject
):
    out = tmp_path / "run"
    said = inject(monkeypatch)
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--out", str(out))
    assert code == 1 and len(errors) == 1, errors
    for w in [said, str(out / "error.log"), f"--resume {out}"]:
        assert w in errors[0], (w, errors[0])
    assert marker(out)["status"] == "failed"
    assert (out / "clips" / "s01.mp4").exists() and (out / "clips" / "s02.mp4").exists()
    before = records(out)

    monkeypatch.undo()
    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0, errors
    assert marker(out)["status"] == "done"
    assert (out / "final.mp4").exists() and (out / "report.html").exists()
    assert records(out) == before  # no take, no clip made again: only the step that raised ran again


def test_an_exception_in_a_variant_keeps_the_shot_in_the_film_and_exits_1(tmp_path, monkeypatch, capsys):
    """`adapt` (the --variants stills) raises for s02 after its clip was made: the shot stays in the cut, flagged,
    with the exception in the manifest and the report; but a deliverable asked for is missing, so the exit is 1
    with one line naming the shot, the variant and --resume, and the resume makes only that variant."""
    from agent import nodes

    real = nodes.make_variant

    def make_variant(shot, kept, platform, *args, **kwargs):
        if shot.id == "s02" and platform == "tiktok":
            raise RuntimeError("the outpainter lost its mask")
        return real(shot, kept, platform, *args, **kwargs)

    monkeypatch.setattr(nodes, "make_variant", make_variant)
    out = tmp_path / "run"
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--variants", "4:5,tiktok", "--out", str(out))
    assert code == 1 and len(errors) == 1, errors
    for w in ["s02", "the tiktok variant", "the outpainter lost its mask", f"--resume {out}"]:
        assert w in errors[0], (w, errors[0])
    assert "s01" not in errors[0]
    assert marker(out)["status"] == "incomplete" and list(marker(out)["failed_variants"]) == ["s02"]
    assert (out / "clips" / "s02.mp4").exists() and (out / "final.mp4").exists()
    failed = json.loads((out / "manifest.json").read_text())["failed_shots"]
    assert (
        list(failed) == ["s02"] and "adapt raised RuntimeError: the outpainter lost its mask" in failed["s02"]
    )
    assert "the outpainter lost its mask" in (out / "report.html").read_text()
    assert (out / "shots" / "s01" / "variants" / "tiktok.png").exists()
    made = out / "shots" / "s02" / "variants" / "4x5.png"
    assert made.exists()  # made before the tiktok variant raised: kept
    made_stat = (made.stat().st_ino, made.stat().st_mtime_ns)
    before = records(out)

    monkeypatch.undo()
    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0 and errors == [], errors
    assert marker(out)["status"] == "done" and "failed_variants" not in marker(out)
    assert (out / "shots" / "s02" / "variants" / "tiktok.png").exists()
    assert (made.stat().st_ino, made.stat().st_mtime_ns) == made_stat  # not made again
    assert records(out) == before  # no take and no clip made again
    assert json.loads((out / "manifest.json").read_text())["failed_shots"] == {}
    assert not (out / "shots" / "s02" / "error.log").exists()
    assert "the outpainter lost its mask" not in (out / "report.html").read_text()


def test_a_clip_failure_resumes_by_animating_the_kept_take(tmp_path, monkeypatch, capsys):
    """The clip step raised for s02 after its take was kept: --resume animates that take again, renders
    nothing, writes no new take, and the shot's stale error.log is gone once the shot is made."""
    out = tmp_path / "run"
    fail_clip(monkeypatch, "s02")
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--out", str(out))
    assert code == 1 and "animate raised" in errors[0], errors
    takes = sorted(p.name for p in (out / "shots" / "s02").glob("take-*"))
    assert takes and (out / "shots" / "s02" / "error.log").exists()
    before = records(out)
    kept = max(json.loads(v[0])["n"] for k, v in before.items() if k.startswith("shots/s02/"))

    monkeypatch.undo()
    from tools.generate_image import DraftBackend

    def no_render(self, req):
        raise AssertionError(f"take {req.take} of {req.shot.id} rendered again")

    monkeypatch.setattr(DraftBackend, "generate", no_render)
    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0, errors
    assert marker(out)["status"] == "done" and marker(out)["retries"][-1]["shots"] == ["s02"]
    assert "animate raised" in marker(out)["retries"][-1]["failed"]["s02"]  # the failure, kept as history
    assert sorted(p.name for p in (out / "shots" / "s02").glob("take-*")) == takes  # no extra take file
    assert {k: v for k, v in records(out).items() if k.startswith("shots/")} == {
        k: v for k, v in before.items() if k.startswith("shots/")
    }
    clip = json.loads((out / "clips" / "s02.json").read_text())
    assert clip["take"] == kept
    assert not (out / "shots" / "s02" / "error.log").exists()
    assert not (out / "error.log").exists()
    assert "encoder lost its frames" not in (out / "report.html").read_text()


def test_killed_right_after_the_first_checkpoint_resumes(tmp_path, capsys):
    """Found by the soak (evals/results/soak_run3_seed13.log, film-035): a kill between the graph's first
    checkpoint (its input, step -1) and the next leaves a snapshot whose values are only the reducers' defaults
    ({"results": []}, no brief). --resume raised a pydantic traceback on it at every try; it must start the run's
    graph from its input again."""
    from agent.graph import build_graph
    from agent.run_graph import checkpointer
    from agent.state import FilmState
    from tools.film import Brief

    out = tmp_path / "run"
    code, errors = run_main(capsys, "run", BRIEF, *TINY, "--approve", "--out", str(out))
    assert code == 0, errors
    for name in ("checkpoints.sqlite", "checkpoints.sqlite-wal", "checkpoints.sqlite-shm", "storyboard.json"):
        (out / name).unlink(missing_ok=True)
    brief = Brief.model_validate_json((out / "brief.json").read_text())
    with checkpointer(out) as saver:
        graph = build_graph(saver)
        config = {"configurable": {"thread_id": "film"}}
        for _ in graph.stream(FilmState(brief=brief), config, stream_mode="checkpoints", durability="sync"):
            break  # the process dies here: only the input's checkpoint is saved
        assert graph.get_state(config).values == {"results": []}

    code, errors = run_main(capsys, "run", "--resume", str(out))
    assert code == 0, errors
    assert marker(out)["status"] == "waiting-for-approval" and (out / "storyboard.json").exists()
