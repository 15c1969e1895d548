"""The director's operations on a run directory: versions, prompts written again, ids, settings, undo, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from agent import operations as op
from agent import reference_image
from agent.settings import RunSettings

BRIEF = "A 20-second launch film for wireless headphones. A runner at dawn. The slogan 'Hear the city'."


@pytest.fixture()
def root(tmp_path) -> Path:
    root = tmp_path / "run"
    change = op.plan(root, op.PlanArgs(brief=BRIEF), RunSettings(run_dir=str(root)))
    assert change.version == 1 and len(change.shots) == 8
    return root


def shots(root: Path) -> list[dict]:
    return json.loads((root / "storyboard.json").read_text())["shots"]


def settings(root: Path) -> dict:
    return json.loads((root / "settings.json").read_text())


def test_revise_writes_the_prompt_again_and_a_new_version(root):
    old = shots(root)[2]
    change = op.revise_shot(root, op.ReviseShot(shots=[3], kind="close-up", look="night"))
    new = shots(root)[2]
    assert change.shots == ["s03"] and change.version == 2
    assert new["kind"] == "close-up" and new["camera"].startswith("close-up, 85mm")
    assert "night" in new["lighting"] and new["mood"] == "moody, nocturnal"
    assert (
        new["prompt"] != old["prompt"] and new["prompt"].startswith("Close-up:") and "night" in new["prompt"]
    )
    assert json.loads((root / "storyboards" / "v2.json").read_text())["shots"][2] == new
    assert json.loads((root / "storyboards" / "v1.json").read_text())["shots"][2] == old


def test_a_prompt_set_by_hand_wins(root):
    op.revise_shot(root, op.ReviseShot(shots=[2], kind="wide", prompt="my own prompt"))
    assert shots(root)[1]["prompt"] == "my own prompt"


def test_add_remove_move_swap_keep_program_ids(root):
    op.add_shot(root, op.AddShot(description="the logo on the ear cup", after=2))
    s = shots(root)
    assert len(s) == 9 and s[2]["description"] == "the logo on the ear cup" and s[2]["kind"] == "detail"
    assert "logo on the ear cup" in s[2]["prompt"]
    op.remove_shot(root, op.ShotRef(shot=9))
    op.move_shot(root, op.MoveShot(shot=5, to=1))
    op.swap_shots(root, op.SwapShots(a=2, b=4))
    s = shots(root)
    assert [x["id"] for x in s] == [f"s{i:02d}" for i in range(1, 9)]
    assert [x["index"] for x in s] == list(range(1, 9))
    assert len(list((root / "storyboards").glob("v*.json"))) == 5


def test_shot_numbers_are_checked(root):
    with pytest.raises(op.OperationError, match="no shot 99.*1 to 8"):
        op.remove_shot(root, op.ShotRef(shot=99))
    with pytest.raises(op.OperationError, match="no shot 0"):
        op.move_shot(root, op.MoveShot(shot=0, to=2))


def test_platform_changes_settings_and_undo_brings_them_back(root):
    op.set_film(root, op.SetFilm(platforms=["tiktok"], style="warm color grade"))
    assert (settings(root)["width"], settings(root)["height"]) == (720, 1280)
    s = shots(root)
    assert all(x["prompt"].count("Vertical composition") == 1 for x in s)
    assert all("Style: warm color grade." in x["prompt"] for x in s)
    op.undo(root)
    assert (settings(root)["width"], settings(root)["height"], settings(root)["style"]) == (1280, 720, "")
    assert all("Horizontal composition" in x["prompt"] for x in shots(root))
    with pytest.raises(op.OperationError, match="nothing to undo"):
        op.undo(root)


def test_duration_scales_or_replans(root):
    op.set_film(root, op.SetFilm(duration=15))
    assert round(sum(x["duration"] for x in shots(root)), 1) == 15.0 and len(shots(root)) == 8
    change = op.set_film(root, op.SetFilm(duration=6))
    assert "re-planned" in change.message
    assert round(sum(x["duration"] for x in shots(root)), 1) == 6.0 and len(shots(root)) < 8


def test_slogan_goes_on_the_last_shot_as_line_and_on_image_text(root):
    op.set_line(root, op.SetLine(text="Slow mornings"))
    last = shots(root)[-1]
    assert last["subtitle"] == "Slow mornings" and last["expect_text"] == "Slow mornings"
    assert 'The image shows the text "Slow mornings"' in last["prompt"]
    op.set_line(root, op.SetLine(shot=2, text="Hear more"))
    assert shots(root)[1]["subtitle"] == "Hear more"


def test_reference_image_is_checked_and_copied(root, tmp_path, monkeypatch):
    photo = tmp_path / "kettle.jpg"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photo)
    op.set_film(root, op.SetFilm(reference=str(photo)))
    assert settings(root)["reference"] == ["refs/ref-1.png"]
    with Image.open(root / "refs" / "ref-1.png") as im:
        assert im.size == (64, 48)
    with pytest.raises(op.OperationError, match="no such file"):
        op.set_film(root, op.SetFilm(reference=str(tmp_path / "nope.png")))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really")
    with pytest.raises(op.OperationError, match="not an image"):
        op.set_film(root, op.SetFilm(reference=str(junk)))
    monkeypatch.setattr(reference_image, "MAX_REFERENCE_PIXELS", 1000)
    with pytest.raises(op.OperationError, match="megapixels"):
        op.set_film(root, op.SetFilm(reference=str(photo)))
    assert settings(root)["reference"] == ["refs/ref-1.png"]


def test_nothing_changes_while_shooting(root):
    marker = root / "run.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "status": "running"}))
    before = (root / "storyboard.json").read_text()
    for call in (
        lambda: op.revise_shot(root, op.ReviseShot(shots=[1], kind="wide")),
        lambda: op.add_shot(root, op.AddShot(description="x y")),
        lambda: op.set_film(root, op.SetFilm(duration=10)),
        lambda: op.undo(root),
        lambda: op.approve(root),
    ):
        with pytest.raises(op.OperationError, match="shooting|running"):
            call()
    assert (root / "storyboard.json").read_text() == before
    assert "shooting" in op.status(root).message


def test_approve_shoots_the_edited_storyboard_then_takes_and_deliver(root):
    op.revise_shot(root, op.ReviseShot(shots=[1], description="A lighthouse on a cliff at dusk"))
    events = []
    change = op.approve(root, on_event=lambda node, update: events.append(node))
    assert change.paths["film"] == "final.mp4" and (root / "final.mp4").exists()
    assert "cut" in events
    take = json.loads((root / "shots" / "s01" / "take-1.json").read_text())
    assert "lighthouse" in take["prompt"].lower()
    takes = op.takes(root, op.ShotRef(shot=1))
    assert "take 1 is kept" in takes.message and takes.after[0].endswith("← kept")
    assert op.deliver(root, op.DeliverArgs(platform="youtube")).paths["film"] == "final.mp4"
    with pytest.raises(op.OperationError, match="unknown platform .myspace."):
        op.deliver(root, op.DeliverArgs(platform="myspace"))
    # a cut for a platform the film was not made for: tests/test_chat_agent.py (it takes a while)
    with pytest.raises(op.OperationError, match="already shot"):
        op.approve(root)
