"""The per-film cap on remote calls (`--budget-remote-calls`): every request the image server and the vision
critic saw is counted from the run's records, and the cap stops re-shoots, keeping the best take.

The film runs the real RemoteImageBackend and the real VLM critic (the openai client) against one loopback
server: the image route answers flat grey images (the technical critic fails them, so the loop re-shoots), the
first one after an HTTP 500 (a retry is a request too), and the vision model fails every take.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from fakes import FakeOpenAI, Status
from PIL import Image

IMAGES, CHAT = "/v1/images/generations", "/v1/chat/completions"
FAIL = json.dumps({"verdict": "fail", "issues": [{"category": "subject", "reason": "no cup"}]})


def _grey(size=(64, 64)) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buf, format="PNG")
    return {"created": 0, "data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()}]}


def _film(tmp_path, server: FakeOpenAI, budget: int | None):
    from agent import director
    from agent.settings import RunSettings
    from tools.plan import read_brief

    server.script(IMAGES, [Status(500), _grey()])
    server.script(CHAT, [FAIL])
    settings = RunSettings(
        run_dir=str(tmp_path / "run"), shots=1, duration=3.0, width=64, height=64, max_takes=5,
        image_backend="remote", image_server=server.base_url, image_server_retries=1, image_server_timeout=10,
        vlm_base_url=server.base_url, vlm_model="fake-vl", llm_timeout=10,
        video_backend="motion", clip_model="none", voice=False, budget_remote_calls=budget,
    )  # fmt: skip
    film = director.start(read_brief("a cup on a window sill", "argument"), settings)
    return film, json.loads((tmp_path / "run" / "manifest.json").read_text())


def _requests(server: FakeOpenAI) -> int:
    return sum(len(server.requests.get(route, [])) for route in (IMAGES, CHAT))


def test_every_remote_request_of_the_film_is_counted(tmp_path):
    from tools.budget import calls_spent

    with FakeOpenAI() as server:
        film, manifest = _film(tmp_path, server, None)
        assert len(manifest["takes"]) == 5, "without a cap a failing shot gets all its takes"
        total, per_take = calls_spent(tmp_path / "run")
        assert total == _requests(server) and total > 0
        # The first take's image took two requests (the 500, then the image); the vision critic ran on each.
        assert per_take[0] == per_take[1] + 1
        assert len(server.requests[CHAT]) >= 5


def test_the_call_budget_stops_reshoots_keeps_the_best_take_and_says_so(tmp_path, capsys):
    from tools.budget import calls_spent

    with FakeOpenAI() as server:
        film, manifest = _film(tmp_path, server, 7)
        takes = manifest["takes"]
        total, per_take = calls_spent(tmp_path / "run")
        assert total == _requests(server) and total <= 7
        assert 1 < len(takes) < 5, [t["n"] for t in takes]
        # Stopped because one more take (at the film's mean) would pass the cap.
        assert total + total / len(takes) > 7
    assert film.state.cut is not None and all(r.best is not None for r in film.state.results)
    record = json.loads((tmp_path / "run" / "budget.json").read_text())
    assert record["budget_remote_calls"] == 7 and record["stopped"][0]["budget"] == "calls"
    assert "remote calls spent" in capsys.readouterr().out
    report = (tmp_path / "run" / "report.html").read_text()
    assert "remote-call budget of 7 calls stopped the re-shoots" in report


def test_a_call_budget_must_be_a_positive_count(tmp_path):
    from pydantic import ValidationError

    from agent.settings import RunSettings

    for bad in (0, -3, 1.5):
        with pytest.raises(ValidationError, match="budget_remote_calls"):
            RunSettings(run_dir=str(tmp_path), budget_remote_calls=bad)


def test_the_flag_reaches_the_run_settings(tmp_path):
    import main

    args = main.build_parser().parse_args(["run", "a cup", "--budget-remote-calls", "12"])
    assert args.budget_remote_calls == 12
