"""What one studio review decision costs on a big catalogue: `POST /v1/review/{id}/images` (approve) through the
real app and its records, timed end to end, then the review queue the studio reloads after it.

The catalogue is synthetic but has the real shape: `--units` units (SKU × scene) × 2 platforms of records in
records.db, graded A/B/C about 50/40/10, with the exports (catalogue.jsonl/.csv, review.jsonl) and qc_report.html
written by the run's own code; the images its contact sheets show are real PNGs at `--side`.

    python -m evals.bench_review                  # 3,600 units, 7,200 images, 5 decisions
    python -m evals.bench_review --units 360 --decisions 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

KEY = "k" * 24
PLATFORMS = ("instagram", "amazon")
SCENES = ("studio", "lifestyle", "white")


def _records(n: int, slug: str, sku: str, scene: str):
    from agent.catalogue_unit import UnitRecord

    grade = "A" if n % 10 < 5 else "B" if n % 10 < 9 else "C"
    issues = [] if grade == "A" else ["sharpness: edge strength 0.18 is soft", "clip: 0.21 below 0.24"]
    return [
        UnitRecord(
            unit=f"{slug}/{scene}/0",
            sku=sku,
            slug=slug,
            scene=scene,
            platform=p,
            path=f"{p}/{slug}/{scene}.png",
            grade=grade,
            scores={"clip": 0.27, "sharpness": 0.4},
            issues=issues,
            prompt=f"a product photo of {sku}, {scene} scene, soft light, 50mm",
            seed=1000 + n,
            model="draft:panel",
            takes=1 + (grade != "A"),
            attempts=[
                {
                    "n": 1,
                    "grade": grade,
                    "seed": 1000 + n,
                    "prompt": sku,
                    "actions": [],
                    "reason": "",
                    "issues": issues,
                }
            ],
            notes=[],
            wall_s=0.8,
            gpu_s=0.0,
        )  # fmt: skip
        for p in PLATFORMS
    ]


def build(root: Path, units: int, side: int) -> None:
    """records.db with `units` units, the images the QC sheets show, the exports and the report."""
    from PIL import Image, ImageDraw

    from agent.catalogue_records import Records
    from agent.catalogue_report import SHEET_MAX
    from agent.review import publish

    with Records(root) as records:
        for n in range(units):
            sku = f"SKU-{n // len(SCENES):05d}"
            slug = sku.lower()
            records.add_product(sku, slug, n // len(SCENES))
            records.add(_records(n, slug, sku, SCENES[n % len(SCENES)]))
        for grade in ("A", "B", "C"):
            for row in list(records.rows("where grade = ? and path != ''", (grade,)))[:SHEET_MAX]:
                im = Image.new("RGB", (side, side), (230, 228, 224))
                ImageDraw.Draw(im).ellipse(
                    (side // 4, side // 4, 3 * side // 4, 3 * side // 4), (40, 90, 160)
                )
                (root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
                im.save(root / row["path"], compress_level=3)
        publish(records, root)


def _app(state: Path, root: Path):
    """The server (no workers) with the catalogue as a finished job of KEY's owner."""
    from fastapi.testclient import TestClient

    from agent.server import ServerConfig, create_app

    app = create_app(ServerConfig(state_dir=str(state), keys=[KEY], workers=0))
    client = TestClient(app)
    client.__enter__()
    store = app.state.service.store
    options = {"catalogue": {"platforms": list(PLATFORMS)}, "upload": str(root)}
    store.create_film("bench", app.state.keys.owner(KEY), str(root), "catalogue: bench", options, "catalogue")
    store.finish(store.jobs("bench")[0].id)
    store.update_film("bench", status="done", progress=1.0)
    return client


def measure(units: int, decisions: int, side: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cd-bench-review-"))
    root = tmp / "catalogue"
    root.mkdir()
    t0 = time.perf_counter()
    build(root, units, side)
    print(f"built {units} units, {units * len(PLATFORMS)} images in {time.perf_counter() - t0:.1f} s")
    client = _app(tmp / "state", root)
    h = {"Authorization": f"Bearer {KEY}"}
    t0 = time.perf_counter()
    queue = [i for i in client.get("/v1/review", headers=h).json() if i["kind"] == "image"]
    print(f"review queue: {len(queue)} images, first read {1000 * (time.perf_counter() - t0):.0f} ms")
    posts, reloads = [], []
    for item in queue[:decisions]:
        body = {k: item[k] for k in ("sku", "scene", "platform")} | {"action": "approve", "note": "fine"}
        t0 = time.perf_counter()
        r = client.post("/v1/review/bench/images", json=body, headers=h)
        posts.append(1000 * (time.perf_counter() - t0))
        assert r.status_code == 200 and r.json()["decision"] == "approved", r.text
        t0 = time.perf_counter()
        client.get("/v1/review", headers=h).raise_for_status()  # what the studio reads after a decision
        reloads.append(1000 * (time.perf_counter() - t0))
    print(
        "decision (POST) ms: "
        + ", ".join(f"{t:.0f}" for t in posts)
        + f"; median {statistics.median(posts):.0f}"
    )
    print("queue reload (GET /v1/review) ms: " + ", ".join(f"{t:.0f}" for t in reloads)
          + f"; median {statistics.median(reloads):.0f}")  # fmt: skip
    t0 = time.perf_counter()
    report = client.get("/v1/catalogues/bench/files/qc_report.html", headers=h)
    print(
        f"qc_report.html read after them: {1000 * (time.perf_counter() - t0):.0f} ms, status {report.status_code}"
    )
    pending = (root / "review.jsonl").read_text().count("\n")
    print(f"review.jsonl: {pending} lines (queue {len(queue)} less {decisions} decided)")
    client.__exit__(None, None, None)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} (1 min)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=3600)
    p.add_argument("--decisions", type=int, default=5)
    p.add_argument("--side", type=int, default=1024, help="side of the images the QC sheets show")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    measure(args.units, args.decisions, args.side)


if __name__ == "__main__":
    main()
