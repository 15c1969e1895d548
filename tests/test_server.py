"""The service: REST API over the durable queue (TestClient and real HTTP with the openai client), auth, limits,
ownership, path traversal, uploads and restart recovery. Offline backends: no GPU, no network."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from agent.jobs import JobStore
from agent.server import ServerConfig, create_app

KEY_A, KEY_B = "a" * 24, "b" * 24
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
BRIEF = "a 6-second film about a red bicycle at dawn"


def app_for(tmp_path, **kw):
    config = {"state_dir": str(tmp_path / "state"), "keys": [KEY_A, KEY_B], "workers": 1, **kw}
    return create_app(ServerConfig(**config))


def wait_for(client, film_id, statuses, headers=A, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        film = client.get(f"/v1/films/{film_id}", headers=headers).json()
        if film["status"] in statuses:
            return film
        time.sleep(0.2)
    raise AssertionError(f"film {film_id} stayed {film['status']}")


def png_b64(size=(64, 48), color=(200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def client(tmp_path):
    with TestClient(app_for(tmp_path)) as c:
        yield c


def test_auth_is_required_everywhere_and_keys_are_checked(client):
    for method, path in [
        ("get", "/v1/films"),
        ("post", "/v1/films"),
        ("get", "/v1/films/x"),
        ("get", "/v1/models"),
        ("post", "/v1/images/generations"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
        ("get", "/studio/app.js"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong-key-wrong-key"}, {"Authorization": KEY_A}):
            r = getattr(client, method)(path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "film" not in r.text.lower() or "key" in r.text.lower()
    page = client.get("/")
    assert page.status_code == 401 and "API key" in page.text and "/v1/films" not in page.text
    assert client.get("/openapi.json", headers=A).json()["paths"]["/v1/films"]["post"]
    docs = client.get("/docs", headers=A).text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js", headers=A).status_code == 200
    # The studio's sign-in sets an HttpOnly cookie that the page, stream and player then use.
    assert client.post("/v1/session", json={"key": "nope-nope-nope-nope"}).status_code == 401
    r = client.post("/v1/session", json={"key": KEY_A})
    assert r.status_code == 204 and "httponly" in r.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200 and "studio" in client.get("/").text
    assert (
        "access-control-allow-origin"
        not in client.get("/v1/films", headers={**A, "Origin": "http://evil"}).headers
    )


def test_no_auth_only_on_loopback_and_keys_must_exist():
    from agent.auth import check_auth_choice, read_keys
    from tools.errors import SettingsError

    with pytest.raises(SettingsError, match="loopback"):
        check_auth_choice("0.0.0.0", [], no_auth=True)
    with pytest.raises(SettingsError, match="--api-keys"):
        check_auth_choice("127.0.0.1", [], no_auth=False)
    check_auth_choice("127.0.0.1", [], no_auth=True)
    with pytest.raises(SettingsError, match="shorter than 16"):
        read_keys(None, env="short")


def test_film_lifecycle_edit_approve_chat_takes_files_and_ownership(client):
    r = client.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 2}, "approve": True}, headers=A)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    fid = r.json()["id"]
    film = wait_for(client, fid, {"waiting_approval", "failed"})
    assert film["status"] == "waiting_approval", film["error"]
    assert len(film["storyboard"]["shots"]) == 2 and "storyboard.json" in film["files"]
    # Another key sees nothing of it: not in its list, 404 on every route.
    assert client.get("/v1/films", headers=B).json() == []
    for method, path in [
        ("get", ""),
        ("post", "/approve"),
        ("get", "/files/storyboard.json"),
        ("get", "/events"),
    ]:
        assert getattr(client, method)(f"/v1/films/{fid}{path}", headers=B).status_code == 404
    assert client.patch(f"/v1/films/{fid}/shots/1", json={"look": "night"}, headers=B).status_code == 404
    # Edit shot 2 in place, then by chat.
    r = client.patch(f"/v1/films/{fid}/shots/2", json={"look": "night", "subtitle": "After dark"}, headers=A)
    assert r.status_code == 200, r.text
    shot2 = r.json()["storyboard"]["shots"][1]
    assert shot2["subtitle"] == "After dark" and "night" in shot2["lighting"].lower()
    assert client.patch(f"/v1/films/{fid}/shots/9", json={"look": "night"}, headers=A).status_code == 400
    assert client.patch(f"/v1/films/{fid}/shots/1", json={"bogus": 1}, headers=A).status_code == 422
    reply = client.post(
        f"/v1/films/{fid}/messages", json={"text": "make shot 1 a close-up"}, headers=A
    ).json()
    assert "close-up" in reply["reply"].lower() and reply["status"] == "waiting_approval"
    assert client.get(f"/v1/films/{fid}", headers=A).json()["storyboard"]["shots"][0]["kind"] == "close-up"
    # Approve: a job; a second approve while it is queued is refused.
    assert client.post(f"/v1/films/{fid}/approve", headers=A).status_code == 202
    assert client.post(f"/v1/films/{fid}/approve", headers=A).status_code == 409
    events = []
    with client.stream("GET", f"/v1/films/{fid}/events", headers=A) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
    assert events[-1] == "end" and "progress" in events
    film = client.get(f"/v1/films/{fid}", headers=A).json()
    assert film["status"] == "done" and film["progress"] == 1.0 and film["film"] == "final.mp4", film["error"]
    assert "final.srt" in film["files"] and not any(f.startswith("checkpoints") for f in film["files"])
    assert "run.lock" not in film["files"]  # the director holds it in the run directory; not a download
    mp4 = client.get(f"/v1/films/{fid}/files/final.mp4", headers=A)
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
    takes = client.get(f"/v1/films/{fid}/shots/1/takes", headers=A).json()
    assert (
        takes["takes"] and sum(t["kept"] for t in takes["takes"]) == 1 and takes["takes"][0]["grade"] in "ABC"
    )
    # The film's edited storyboard is what was shot.
    assert (
        client.get(f"/v1/films/{fid}/files/storyboard.json", headers=A).json()["shots"][1]["subtitle"]
        == "After dark"
    )
    # After the shoot: no more storyboard edits; a redo is a job.
    assert client.patch(f"/v1/films/{fid}/shots/1", json={"look": "dawn"}, headers=A).status_code == 409
    assert client.post(f"/v1/films/{fid}/shots/5/redo", json={"note": "x"}, headers=A).status_code == 409
    assert (
        client.post(f"/v1/films/{fid}/shots/2/redo", json={"note": "more rain"}, headers=A).status_code == 202
    )
    film = wait_for(client, fid, {"done", "failed"})
    assert film["status"] == "done", film["error"]
    assert len(client.get(f"/v1/films/{fid}/shots/2/takes", headers=A).json()["takes"]) >= 2


def test_downloads_never_leave_the_run(client, tmp_path):
    fid = client.post(
        "/v1/films", json={"brief": BRIEF, "options": {"shots": 1}, "approve": True}, headers=A
    ).json()["id"]
    wait_for(client, fid, {"waiting_approval"})
    run = tmp_path / "state" / "runs" / fid
    (tmp_path / "secret.txt").write_text("TOPSECRET-CONTENT")
    (run / "link.txt").symlink_to(tmp_path / "secret.txt")
    for bad in [
        "../../secret.txt",
        "..%2F..%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "link.txt",
        "shots/../../jobs.sqlite",
        "checkpoints.sqlite",
        "nope.png",
        "..\\..\\secret.txt",
    ]:
        r = client.get(f"/v1/films/{fid}/files/{bad}", headers=A)
        assert r.status_code == 404, (bad, r.status_code)
        assert "TOPSECRET" not in r.text
    assert client.get(f"/v1/films/{fid}/files/storyboard.json", headers=A).status_code == 200


def test_limits_body_rate_queue_and_uploads(tmp_path):
    with TestClient(app_for(tmp_path, workers=0, rate_limit=30, max_queued=2, max_body=200_000)) as c:
        assert c.post("/v1/films", json={"brief": "x" * 20_001}, headers=A).status_code == 413
        assert (
            c.post(
                "/v1/films",
                content=b"{" + b" " * 300_000 + b"}",
                headers={**A, "Content-Type": "application/json"},
            ).status_code
            == 413
        )
        assert (
            c.post(
                "/v1/films", json={"brief": BRIEF, "options": {"platform": "nowhere"}}, headers=A
            ).status_code
            == 422
        )
        assert (
            c.post(
                "/v1/films", json={"brief": BRIEF, "options": {"image_model": "/etc"}}, headers=A
            ).status_code
            == 422
        )
        bad = base64.b64encode(b"GIF89a not really an image").decode()
        r = c.post("/v1/films", json={"brief": BRIEF, "references": [bad]}, headers=A)
        assert r.status_code == 422 and "references[0]" in r.json()["detail"]
        huge = png_b64((5000, 10))
        assert c.post("/v1/films", json={"brief": BRIEF, "references": [huge]}, headers=A).status_code == 413
        ok = c.post("/v1/films", json={"brief": BRIEF, "references": [png_b64()]}, headers=A)
        assert ok.status_code == 202
        saved = tmp_path / "state" / "uploads" / ok.json()["id"] / "ref-1.png"
        assert Image.open(saved).size == (64, 48)
        assert c.post("/v1/films", json={"brief": BRIEF}, headers=A).status_code == 202
        capped = c.post("/v1/films", json={"brief": BRIEF}, headers=A)
        assert capped.status_code == 429 and int(capped.headers["retry-after"]) >= 1
        assert c.post("/v1/films", json={"brief": BRIEF}, headers=B).status_code == 202  # per key
        codes = [c.get("/v1/films", headers=B).status_code for _ in range(40)]
        assert codes.count(429) > 0 and codes[0] == 200
        limited = next(c.get("/v1/films", headers=B) for _ in range(1))
        assert limited.status_code == 429 and "retry-after" in limited.headers


def test_restart_continues_queued_and_running_jobs(tmp_path):
    state = tmp_path / "state"
    with TestClient(app_for(tmp_path, workers=0)) as c:
        ids = [
            c.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 1}}, headers=A).json()["id"]
            for _ in range(2)
        ]
    # As a kill -9 leaves it: one job claimed (running) that no worker will finish, one still queued.
    store = JobStore(state / "jobs.sqlite")
    running = store.claim()
    assert running.film_id == ids[0]
    store.close()
    with TestClient(app_for(tmp_path, workers=2)) as c:
        for fid in ids:
            film = wait_for(c, fid, {"done", "failed"})
            assert film["status"] == "done" and film["film"] == "final.mp4", film["error"]
        jobs = c.app.state.service.store
        assert [j.state for fid in ids for j in jobs.jobs(fid)] == ["done", "done"]
        assert jobs.jobs(ids[0])[0].attempts == 2
        assert c.app.state.service.loads == 1  # one Backends for both films: the models stay warm


def test_a_failed_job_records_why_and_others_go_on(tmp_path, monkeypatch):
    from agent import director

    real = director.start

    def start(brief, settings, on_event=None):
        if "explode" in brief.text:
            raise OSError(28, "No space left on device")
        return real(brief, settings, on_event=on_event)

    monkeypatch.setattr(director, "start", start)
    # Workers as threads of this process, so that they see the patched director.
    with TestClient(app_for(tmp_path, worker_processes=0)) as c:
        bad = c.post("/v1/films", json={"brief": "a film that will explode the disk"}, headers=A).json()["id"]
        good = c.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 1}}, headers=A).json()["id"]
        failed = wait_for(c, bad, {"failed", "done"})
        assert failed["status"] == "failed" and "No space left on device" in failed["error"]
        assert wait_for(c, good, {"done", "failed"})["status"] == "done"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_client_images_and_models_over_real_http(tmp_path):
    import uvicorn
    from openai import AuthenticationError, OpenAI

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app_for(tmp_path), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY_A, max_retries=0)
        models = [m.id for m in client.models.list()]
        assert "draft-panel-v1" in models
        result = client.images.generate(
            model=models[0], prompt="a red kite over a green hill", size="320x192", response_format="b64_json"
        )
        img = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
        assert img.size == (320, 192)
        assert result.data[0].model_extra["critique"]["grade"] in ("A", "B", "C")
        with pytest.raises(AuthenticationError):
            OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong-wrong-wrong-wrong", max_retries=0
            ).models.list()
    finally:
        server.should_exit = True
        thread.join(10)


# --- worker processes, cancel and resume, zip, review queue, chat history -------------------------------------


def _job_running(store, film_id, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        jobs = store.jobs(film_id)
        if jobs and jobs[-1].state == "running":
            return jobs[-1]
        time.sleep(0.02)
    raise AssertionError(f"no job of {film_id} ever ran: {store.jobs(film_id)}")


def test_jobs_run_in_a_worker_process_that_is_replaced_when_killed(tmp_path):
    import os
    import signal

    with TestClient(app_for(tmp_path, workers=1, worker_processes=1)) as c:
        svc = c.app.state.service
        fid = c.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 3}}, headers=A).json()["id"]
        job = _job_running(svc.store, fid)
        ((name, pid),) = svc.worker_pids().items()
        assert pid != os.getpid() and job.worker == name  # the job runs in the worker, not the web process
        os.kill(pid, signal.SIGKILL)
        film = wait_for(c, fid, {"done", "failed"})
        assert film["status"] == "done" and film["film"] == "final.mp4", film["error"]
        (job,) = svc.store.jobs(fid)
        assert job.state == "done" and job.attempts == 2 and svc.restarts == 1
        assert svc.worker_pids()[name] != pid
        # Its events were streamed from the queue's file, across the worker's death, in order.
        seqs = [e["seq"] for e in svc.events_after(fid, -1)]
        assert seqs == sorted(seqs) and any(e["node"] == "animate" for e in svc.events_after(fid, -1))
        # The run was continued, not made twice: one take-1 per shot, each made once.
        takes = sorted((tmp_path / "state" / "runs" / fid / "shots").glob("s*/take-*.png"))
        assert len({t.parent.name for t in takes}) == 3


def test_cancel_stops_a_shoot_and_resume_continues_it(tmp_path):
    with TestClient(app_for(tmp_path, workers=1, worker_processes=1)) as c:
        svc = c.app.state.service
        fid = c.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 3}}, headers=A).json()["id"]
        _job_running(svc.store, fid)
        r = c.post(f"/v1/films/{fid}/cancel", headers=A)
        assert r.status_code == 200, r.text
        film = wait_for(c, fid, {"failed", "done"})
        if film["status"] == "done":
            pytest.skip("the film finished before the cancel reached it (an unusually fast machine)")
        assert "cancelled" in film["error"] and svc.store.jobs(fid)[-1].state == "cancelled"
        assert not svc.busy(fid)
        assert c.post(f"/v1/films/{fid}/cancel", headers=A).status_code == 409
        listed = next(f for f in c.get("/v1/films", headers=A).json() if f["id"] == fid)
        assert listed["resumable"] is True
        assert c.post(f"/v1/films/{fid}/resume", headers=B).status_code == 404
        assert c.post(f"/v1/films/{fid}/resume", headers=A).status_code == 202
        film = wait_for(c, fid, {"done", "failed"})
        assert film["status"] == "done" and film["film"] == "final.mp4", film["error"]
        assert c.post(f"/v1/films/{fid}/resume", headers=A).status_code == 409  # done: nothing to resume


def test_cancel_a_queued_job(tmp_path):
    with TestClient(app_for(tmp_path, workers=0)) as c:
        fid = c.post("/v1/films", json={"brief": BRIEF}, headers=A).json()["id"]
        assert c.post(f"/v1/films/{fid}/cancel", headers=B).status_code == 404
        assert c.post(f"/v1/films/{fid}/cancel", headers=A).json()["status"] == "failed"
        store = c.app.state.service.store
        assert [j.state for j in store.jobs(fid)] == ["cancelled"] and store.claim("w") is None


def test_zip_of_the_run_holds_its_files_and_nothing_outside(client, tmp_path):
    import zipfile

    fid = client.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 1}}, headers=A).json()["id"]
    film = wait_for(client, fid, {"done", "failed"})
    assert film["status"] == "done", film["error"]
    run = tmp_path / "state" / "runs" / fid
    (tmp_path / "secret.txt").write_text("TOPSECRET-CONTENT")
    (tmp_path / "secret-dir").mkdir()
    (tmp_path / "secret-dir" / "x.txt").write_text("TOPSECRET-CONTENT")
    (run / "link.txt").symlink_to(tmp_path / "secret.txt")
    (run / "linkdir").symlink_to(tmp_path / "secret-dir")
    r = client.get(f"/v1/films/{fid}/zip", headers=A)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert f'filename="film-{fid}.zip"' in r.headers["content-disposition"]
    assert b"TOPSECRET" not in r.content
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.testzip() is None  # every member's CRC checks
    names = {n.split("/", 1)[1] for n in archive.namelist()}
    assert {"final.mp4", "final.srt", "storyboard.json", "manifest.json", "report.html"} <= names
    assert not any(n.startswith(("checkpoints", "link")) for n in names)
    assert names == set(film["files"])
    assert archive.read(f"film-{fid}/final.mp4") == (run / "final.mp4").read_bytes()
    assert client.get(f"/v1/films/{fid}/zip", headers=B).status_code == 404


def test_review_queue_across_runs_with_decisions(client, tmp_path):
    from agent import review_queue as review
    from agent.api_models import ReviewItem
    from tools.files import write_json

    ids = [
        client.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 1}}, headers=A).json()["id"]
        for _ in range(2)
    ]
    for fid in ids:
        assert wait_for(client, fid, {"done", "failed"})["status"] == "done"
    store = client.app.state.service.store
    # Mark each kept take grade B, as the critique does for a borderline take.
    for fid in ids:
        for rec in (tmp_path / "state" / "runs" / fid / "shots").glob("s*/take-*.json"):
            take = json.loads(rec.read_text())
            take["critique"]["grade"] = "B"
            write_json(rec, take)
        store.update_film(fid)
    queue = client.get("/v1/review", headers=A).json()
    assert {i["film_id"] for i in queue} == set(ids) and all(i["grade"] == "B" for i in queue)
    assert client.get("/v1/review", headers=B).json() == []
    r = client.post(f"/v1/review/{ids[0]}/shots/1", json={"action": "reject", "note": "too dark"}, headers=A)
    assert r.status_code == 200 and r.json()["decision"] == "reject"
    assert (
        client.post(f"/v1/review/{ids[0]}/shots/1", json={"action": "reject"}, headers=B).status_code == 404
    )
    decided = {i["film_id"]: i["decision"] for i in client.get("/v1/review", headers=A).json()}
    assert decided == {ids[0]: "reject", ids[1]: None}
    # A catalogue adds its images as another source of the same queue.
    extra = ReviewItem(kind="image", film_id="cat", shot=1, shot_id="p1", take=1, path="x.png", grade="B",
                       issues=[], decision=None)  # fmt: skip
    review.SOURCES.append(lambda store, owner: [extra])
    try:
        kinds = [i["kind"] for i in client.get("/v1/review", headers=A).json()]
        assert kinds.count("image") == 1 and kinds.count("take") == 2
    finally:
        review.SOURCES.pop()


def test_chat_history_and_the_studio_font(client):
    from fontTools.ttLib import TTFont

    fid = client.post(
        "/v1/films", json={"brief": BRIEF, "options": {"shots": 2}, "approve": True}, headers=A
    ).json()["id"]
    wait_for(client, fid, {"waiting_approval"})
    assert client.get(f"/v1/films/{fid}/messages", headers=A).json() == []
    client.post(f"/v1/films/{fid}/messages", json={"text": "make shot 2 a close-up"}, headers=A)
    history = client.get(f"/v1/films/{fid}/messages", headers=A).json()
    assert [m["role"] for m in history] == ["user", "director"] and "close-up" in history[1]["text"].lower()
    assert client.get(f"/v1/films/{fid}/messages", headers=B).status_code == 404
    assert next(f for f in client.get("/v1/films", headers=A).json() if f["id"] == fid)["chat"] is True
    # The studio's CJK font: a WOFF with a glyph for every Chinese character of the interface.
    assert client.get("/studio/cjk-ui.woff").status_code == 401
    r = client.get("/studio/cjk-ui.woff", headers=A)
    assert r.status_code == 200 and r.content[:4] == b"wOFF"
    cmap = TTFont(io.BytesIO(r.content)).getBestCmap()
    from agent.studio import studio_chinese

    assert len(studio_chinese()) > 50 and all(ord(ch) in cmap for ch in studio_chinese() + "创意导演")


def test_operations_approve_and_redo_use_the_settings_given(tmp_path):
    from agent import director, operations
    from agent.backends import Backends
    from agent.operation_args import RedoArgs
    from agent.worker import film_settings
    from tools.plan import read_brief

    root = tmp_path / "run"
    brief = read_brief(BRIEF, "test")
    director.start(brief, film_settings({}, root, brief.reading, {"shots": 1, "approve": True}))
    loaded = director.load_settings(root)
    backends = Backends.for_settings(loaded)
    calls = []
    real = backends.image.generate

    def counted(req):
        calls.append(req.output_path)
        return real(req)

    backends.image.generate = counted
    warm = loaded.attach(backends)
    operations.approve(root, settings=warm)
    assert calls and director.status(root) == "done"
    before = len(calls)
    operations.redo(root, RedoArgs(shot=1, note="more light"), settings=warm)
    assert len(calls) > before


def test_a_chat_deliver_in_the_service_uses_the_workers_warm_models(tmp_path, monkeypatch):
    from agent.backends import Backends

    built = []
    real = Backends.for_settings

    def counted(cls, settings, manager=None):
        built.append(settings.run_dir)
        return real(settings, manager)

    # Worker threads in this process (worker_processes=0), so the count sees every Backends built.
    monkeypatch.setattr(Backends, "for_settings", classmethod(counted))
    with TestClient(app_for(tmp_path, worker_processes=0)) as c:
        fid = c.post("/v1/films", json={"brief": BRIEF, "options": {"shots": 1}}, headers=A).json()["id"]
        assert wait_for(c, fid, {"done", "failed"})["status"] == "done"
        assert len(built) == 1  # the worker's warm set, built once for the server's model settings
        for platform, cut in (("tiktok", "final-tiktok.mp4"), ("instagram", "final-instagram.mp4")):
            reply = c.post(f"/v1/films/{fid}/messages", json={"text": f"deliver for {platform}"}, headers=A)
            assert reply.status_code == 200 and "shooting now" in reply.json()["reply"].lower(), reply.text
            film = wait_for(c, fid, {"done", "failed"})
            assert film["status"] == "done" and cut in film["files"], film["error"]
    assert len(built) == 1, built  # neither deliver built a model of its own
