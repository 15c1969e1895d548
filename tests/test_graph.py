"""The whole graph, in process: an LLM planner behind a scripted endpoint, offline backends, a real cut."""

from __future__ import annotations

import json

from fakes import FakeOpenAI
from PIL import Image

from agent import director
from agent.settings import RunSettings
from tools.cut import probe
from tools.film import Brief

BRIEF = Brief(text="A short film about a lighthouse keeper's last night.", lang="en")


def planned_shot(i: int, subtitle: str) -> dict:
    return {
        "kind": ["establishing", "close-up", "hero"][i % 3],
        "description": f"The lighthouse keeper, beat {i + 1}",
        "camera": "slow push-in, 35mm",
        "lighting": "low-key moonlight",
        "mood": "quiet, tender",
        "duration": 2.0,
        "subtitle": subtitle,
        "prompt": f"cinematic still of an old lighthouse keeper, beat {i + 1}, moonlight",
        "negative_prompt": "blurry, text artifacts",
        "expect_text": None,
        "motion": "push-in",
    }


SUBTITLES = ["The last night.", "He lights the lamp.", "The sea answers."]


def settings(tmp_path, **kw) -> RunSettings:
    values = {"run_dir": str(tmp_path / "run"), "width": 320, "height": 180, "shots": 3, "duration": 6.0}
    values |= {"max_takes": 2} | kw
    return RunSettings(**values)


def test_full_graph_with_llm_planner(tmp_path):
    with FakeOpenAI() as server:
        answer = {"title": "Last Light", "shots": [planned_shot(i, s) for i, s in enumerate(SUBTITLES)]}
        server.script("/v1/chat/completions", [json.dumps(answer)])
        s = settings(tmp_path, planner="llm", llm_base_url=server.base_url, llm_model="fake-director")
        film = director.start(BRIEF, s)
        assert len(server.requests["/v1/chat/completions"]) == 1

    root = film.run_dir
    board = json.loads((root / "storyboard.json").read_text())
    assert board["planner"] == "llm:fake-director"
    assert [shot["id"] for shot in board["shots"]] == ["s01", "s02", "s03"]
    for shot in board["shots"]:
        for field in ("description", "camera", "lighting", "mood", "duration", "subtitle", "prompt"):
            assert shot[field], field

    manifest = json.loads((root / "manifest.json").read_text())
    assert {t["shot_id"] for t in manifest["takes"]} == {"s01", "s02", "s03"}
    for take in manifest["takes"]:
        assert (root / take["path"]).is_file()
        assert take["backend"] == "draft" and take["model"] and take["prompt"]
        assert isinstance(take["seed"], int) and "wall_s" in take["timings"]
        assert take["critique"]["grade"] in "ABC"
        assert "technical" in [c["name"] for c in take["critique"]["critics"] if c["ran"]]
    assert [c["shot_id"] for c in manifest["clips"]] == ["s01", "s02", "s03"]
    assert manifest["cut"]["path"] == "final.mp4"

    info = probe(root / "final.mp4")
    assert (info["width"], info["height"]) == (320, 180)
    assert abs(info["duration"] - film.state.cut.duration) < 0.15
    kinds = [st["type"] for st in info["streams"]]
    assert "video" in kinds and "subtitle" in kinds
    srt = (root / "final.srt").read_text()
    for line in SUBTITLES:
        assert line in srt

    with Image.open(root / "contact_sheet.png") as sheet:
        assert sheet.width > 300
    report = (root / "report.html").read_text()
    for shot_id in ("s01", "s02", "s03"):
        assert f'id="{shot_id}"' in report
    assert json.loads((root / "run.json").read_text())["status"] == "done"


def test_repair_loop_stops_at_the_cap_and_keeps_the_best(tmp_path):
    # A sharpness bar no image can clear: every take fails, so each shot uses exactly max_takes takes.
    s = settings(tmp_path, shots=2, duration=4.0, max_takes=3, thresholds={"sharpness_fail": 1e9})
    film = director.start(Brief(text="Rain on a window. A cat watches.", lang="en"), s)
    for result in film.state.results:
        assert len(result.takes) == 3
        assert result.flagged and result.best in (1, 2, 3)
        assert result.clip is not None and result.clip.take == result.best
        attempts = {(t.prompt, t.seed, json.dumps(t.parameters, sort_keys=True)) for t in result.takes}
        assert len(attempts) == 3, "an attempt was repeated exactly"
        assert all(t.repair and t.repair.reason for t in result.takes[1:])
    assert "re-shot because" in (film.run_dir / "report.html").read_text()
    assert (film.run_dir / "final.mp4").is_file()


def test_approval_interrupt_then_edit_and_resume(tmp_path):
    s = settings(tmp_path, shots=2, duration=4.0, approve=True)
    film = director.start(Brief(text="Two friends share an umbrella.", lang="en"), s)
    assert film.waiting_for_approval and not (film.run_dir / "shots").exists()
    board = json.loads((film.run_dir / "storyboard.json").read_text())
    board["shots"][1]["subtitle"] = "Edited by a person."
    done = director.resume(film.run_dir, approval={"storyboard": board})
    assert done.state.cut is not None
    assert "Edited by a person." in (film.run_dir / "final.srt").read_text()


def test_failing_clip_is_made_again_with_another_motion(tmp_path):
    # A frozen-clip bar no moving clip can clear: each clip is judged frozen and made once more, differently.
    s = settings(tmp_path, shots=2, duration=4.0, thresholds={"frozen_motion": 10.0})
    film = director.start(Brief(text="Waves at dusk. A gull lands.", lang="en"), s)
    for result in film.state.results:
        clip = result.clip
        assert clip.parameters["attempt"] == 2
        assert "frozen" in clip.parameters["remade_because"]
        assert result.flagged and not clip.critique.passed
    first = film.state.storyboard.shots
    assert any(r.clip.motion != s0.motion for r, s0 in zip(film.state.results, first, strict=True))


def _mean_rgb(path) -> tuple[float, ...]:
    with Image.open(path) as im:
        return im.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))


def test_anchor_shot_first_then_the_others_conditioned_on_its_kept_take(tmp_path):
    """--anchor 2 with a user reference: the anchor is shot alone first, conditioned on the reference; every other
    shot gets the reference and the anchor's kept take, and its panel takes the references' colours."""
    green = tmp_path / "product.jpg"
    Image.new("RGB", (400, 300), (40, 170, 60)).save(green)
    s = settings(tmp_path, shots=3, anchor=2, reference=[str(green)])
    film = director.start(Brief(text="A forest at night. A fox runs. The moon rises.", lang="en"), s)
    root = film.run_dir
    assert (root / "refs" / "ref-1.png").is_file()
    assert json.loads((root / "settings.json").read_text())["reference"] == ["refs/ref-1.png"]

    takes = {t.shot_id: t for r in film.state.results for t in r.takes if t.n == r.best}
    anchor = takes["s02"]
    assert anchor.parameters["references"] == ["refs/ref-1.png"]
    for shot_id in ("s01", "s03"):
        assert takes[shot_id].parameters["references"] == ["refs/ref-1.png", anchor.path]
        # the branch started after the anchor's kept take existed
        assert (root / takes[shot_id].path).stat().st_mtime_ns >= (root / anchor.path).stat().st_mtime_ns
        r, g, b = _mean_rgb(root / takes[shot_id].path)
        assert g > r and g > b, "the reference's green did not carry into the panel"
    assert (root / "final.mp4").is_file()

    plain = director.start(
        Brief(text="A forest at night. A fox runs. The moon rises.", lang="en"),
        settings(tmp_path / "plain", shots=3),
    )
    for r in plain.state.results:
        assert all(t.parameters["references"] == [] for t in r.takes)
        red, green_, blue = _mean_rgb(plain.run_dir / r.takes[0].path)
        assert not (green_ > red and green_ > blue)  # without a reference, night panels are not green


def test_variants_for_other_platforms_are_outpainted_critiqued_and_recorded(tmp_path):
    s = settings(tmp_path, shots=2, duration=4.0, variants=["tiktok", "16:9", "TikTok"])
    assert s.variants == ["tiktok", "16:9"]  # checked, normalised, de-duplicated
    film = director.start(Brief(text="A kettle boils. Tea is poured.", lang="en"), s)
    root = film.run_dir
    manifest = json.loads((root / "manifest.json").read_text())
    assert sorted((v["shot_id"], v["platform"]) for v in manifest["variants"]) == [
        ("s01", "16:9"),
        ("s01", "tiktok"),
        ("s02", "16:9"),
        ("s02", "tiktok"),
    ]
    for result in film.state.results:
        by_platform = {v.platform: v for v in result.variants}
        tiktok, wide = by_platform["tiktok"], by_platform["16:9"]
        assert tiktok.take == wide.take == result.best
        assert (tiktok.mode, wide.mode) == ("outpaint", "resize")  # the film is 16:9 already
        with Image.open(root / tiktok.path) as im:
            assert im.size == (720, 1280)
        with Image.open(root / wide.path) as im:
            assert im.size == (1280, 720)
        assert tiktok.critique is not None and tiktok.critique.grade in "ABC" and tiktok.backend == "draft"
    report = (root / "report.html").read_text()
    assert "shots/s01/variants/tiktok.png" in report and "720×1280" in report

    from agent.rundir import RunDir

    run = RunDir(root)
    best = film.state.results[0].best
    assert run.load_variant("s01", "tiktok", best) is not None
    assert run.load_variant("s01", "tiktok", best + 1) is None  # made from another take: not reused


def test_unknown_variant_platform_is_refused(tmp_path):
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="--variants: unknown 'cinemascope'"):
        settings(tmp_path, variants=["cinemascope"])


def test_redo_one_shot_with_a_note_then_recut(tmp_path):
    film = director.start(
        Brief(text="A kettle boils. Tea is poured. Steam rises.", lang="en"),
        settings(tmp_path, shots=3, duration=6.0),
    )
    root = film.run_dir
    stamps = {p.name + p.parent.name: p.stat().st_mtime_ns for p in root.glob("shots/s0[13]/take-*.png")}
    old = {r.shot_id: r for r in film.state.results}
    cut_before = (root / "final.mp4").stat().st_mtime_ns

    again = director.redo(root, 2, "  make it  rain ")
    new = {r.shot_id: r for r in again.state.results}
    first_new = max(t.n for t in old["s02"].takes) + 1
    assert [t.n for t in new["s02"].takes][0] == first_new  # numbered after the old takes, which stay on disk
    assert new["s02"].takes[0].prompt.endswith("Director's note: make it rain")
    assert new["s02"].clip.take == new["s02"].best >= first_new  # the clip was made again from the new take
    assert (root / "shots/s02/take-1.png").is_file()
    for shot_id in ("s01", "s03"):  # the other shots are reused, not re-rendered
        assert new[shot_id].best == old[shot_id].best
    assert stamps == {
        p.name + p.parent.name: p.stat().st_mtime_ns for p in root.glob("shots/s0[13]/take-*.png")
    }
    assert (root / "final.mp4").stat().st_mtime_ns > cut_before
    assert "make it rain" in json.loads((root / "storyboard.json").read_text())["shots"][1]["prompt"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert {t["n"] for t in manifest["takes"] if t["shot_id"] == "s02"} >= {1, first_new}
    marker = json.loads((root / "run.json").read_text())
    assert marker["status"] == "done" and marker["thread"] == "redo-1" and marker["redos"][0]["shot"] == "s02"

    assert director.resume(root).state.results == again.state.results  # a finished redo resumes to itself
    third = director.redo(root, 2)
    assert third.state.results[1].takes[0].n > new["s02"].best
    assert json.loads((root / "run.json").read_text())["thread"] == "redo-2"


def test_redo_note_is_applied_by_the_chat_model_when_one_is_configured(tmp_path):
    rewritten = (
        "A lighthouse at night in heavy rain, storm clouds, wet rocks, the lamp cutting through the rain"
    )
    with FakeOpenAI() as server:
        answer = {"title": "Last Light", "shots": [planned_shot(i, s) for i, s in enumerate(SUBTITLES)]}
        server.script("/v1/chat/completions", [json.dumps(answer), rewritten])
        s = settings(tmp_path, planner="llm", llm_base_url=server.base_url, llm_model="fake-director")
        film = director.start(BRIEF, s)
        again = director.redo(film.run_dir, 3, "make it rain")
        asked = server.requests["/v1/chat/completions"][-1]["messages"][-1]["content"]
    assert "make it rain" in asked
    s03 = next(r for r in again.state.results if r.shot_id == "s03")
    assert s03.takes[0].prompt == rewritten
    marker = json.loads((film.run_dir / "run.json").read_text())
    assert marker["redos"][-1]["applied"] == "llm"
