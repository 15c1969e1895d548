"""Load on the service: N clients (one API key each) submit a film at once and poll its status until done.

    python evals/bench_server.py --films 20 --shots 2 --workers 2 [--worker-processes 2] [--kill-after 20]

The server runs as a real `main.py serve` process on loopback with the offline backends. With --kill-after S
it is killed with SIGKILL S seconds in and started again on the same state folder; every film must still
complete. Prints: films done, lost, duplicated (a film with more than one start job, or a run made twice),
p50/p95/p99/max latency of GET /v1/films/{id}, wall time, and the machine's load: `uptime` before and after and
the 1-minute load average sampled every second during the run (on a shared machine the load says how much the
figures mean). Each client keeps one HTTP connection open, as a real client's pool does: a new connection (and
a new httpx client with its TLS context) per call would time the client's own set-up, not the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(state: Path, keys: Path, port: int, workers: int, procs: int) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port), "--state", str(state),
           "--api-keys", str(keys), "--workers", str(workers), "--worker-processes", str(procs),
           "--rate-limit", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(state / "server.log", "ab"))
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/films", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start; see " + str(state / "server.log"))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def client(base: str, key: str, shots: int, latencies: list, results: dict, stop: threading.Event) -> None:
    h = {"Authorization": f"Bearer {key}"}
    body = {"brief": f"a short film about {key[-6:]} kites over a harbour", "options": {"shots": shots}}
    with httpx.Client(base_url=base, headers=h, timeout=30) as http:
        while True:
            try:
                film_id = http.post("/v1/films", json=body).json()["id"]
                break
            except (httpx.TransportError, KeyError):
                time.sleep(0.5)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                r = http.get(f"/v1/films/{film_id}")
            except httpx.TransportError:  # the server is being restarted
                time.sleep(0.3)
                continue
            latencies.append(time.perf_counter() - t0)
            status = r.json()["status"]
            if status in ("done", "failed"):
                results[key] = (film_id, status, r.json().get("error"))
                return
            time.sleep(0.25)


def pct(sorted_values: list[float], p: float) -> float:
    """The p-th percentile in ms (nearest rank)."""
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))] * 1000


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--films", type=int, default=20)
    ap.add_argument("--shots", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-processes", type=int, default=1)
    ap.add_argument(
        "--kill-after", type=float, default=None, help="SIGKILL the server after S seconds, restart"
    )
    ap.add_argument("--timeout", type=float, default=1800)
    return ap.parse_args()


def drive(args, state: Path, keys: list[str]) -> tuple[list[float], dict, list[float], float]:
    """Start the server, let every client submit and poll, kill and restart it once if asked; returns the
    status latencies, each client's result, the load samples and the wall time."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(state, state / "keys.txt", port, args.workers, args.worker_processes)
    latencies: list[float] = []
    results: dict = {}
    stop = threading.Event()
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=client, args=(base, k, args.shots, latencies, results, stop)) for k in keys
    ]
    for t in threads:
        t.start()
    killed = False
    loads: list[float] = []
    last_load = 0.0
    while any(t.is_alive() for t in threads) and time.perf_counter() - t0 < args.timeout:
        if time.perf_counter() - last_load >= 1.0:
            last_load = time.perf_counter()
            loads.append(os.getloadavg()[0])
        if args.kill_after and not killed and time.perf_counter() - t0 > args.kill_after:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done_before = len(results)
            proc = start_server(state, state / "keys.txt", port, args.workers, args.worker_processes)
            killed = True
            print(f"killed -9 at {args.kill_after:.0f} s with {done_before} films done; restarted")
        time.sleep(0.2)
    stop.set()
    wall = time.perf_counter() - t0
    proc.terminate()
    proc.wait(30)
    return latencies, results, loads, wall


def report(args, state: Path, latencies: list[float], results: dict, loads: list[float], wall: float) -> None:
    db = sqlite3.connect(state / "jobs.sqlite")
    films = db.execute("SELECT COUNT(*) FROM films").fetchone()[0]
    starts = db.execute(
        "SELECT film_id, COUNT(*), MAX(attempts) FROM jobs WHERE kind='start' GROUP BY film_id"
    ).fetchall()
    dup = sum(1 for _, n, _ in starts if n > 1)
    retried = sum(1 for *_, a in starts if a > 1)
    done = sum(1 for _, s, _ in results.values() if s == "done")
    failed = [(k[-6:], e) for k, (_, s, e) in results.items() if s != "done"]
    runs = sum(1 for p in (state / "runs").iterdir() if (p / "final.mp4").exists())
    lat = sorted(latencies)
    print(f"films submitted {args.films}, in the queue {films}, done {done}, failed {len(failed)}, "
          f"lost {args.films - len(results)}, duplicated {dup}, runs with final.mp4 {runs}, jobs retried after kill {retried}")  # fmt: skip
    print(f"status GET: {len(lat)} calls, p50 {pct(lat, 0.5):.1f} ms, p95 {pct(lat, 0.95):.1f} ms, "
          f"p99 {pct(lat, 0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms; wall {wall:.1f} s ({args.workers} workers "
          f"in {args.worker_processes} process(es), {args.shots} shots each)")  # fmt: skip
    if loads:
        print(f"load average (1 min) during the run: min {min(loads):.1f}, mean {statistics.fmean(loads):.1f}, "
              f"max {max(loads):.1f}")  # fmt: skip
    if failed:
        print("failures:", failed[:5])


def main() -> None:
    args = parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-server-"))
    keys = [f"bench-key-{i:02d}-" + os.urandom(8).hex() for i in range(args.films)]
    (state / "keys.txt").write_text("\n".join(keys))
    load_before = uptime()
    latencies, results, loads, wall = drive(args, state, keys)
    report(args, state, latencies, results, loads, wall)
    print(f"{os.cpu_count()} CPUs; uptime before: {load_before}; after: {uptime()}")
    print(f"state: {state}")


if __name__ == "__main__":
    main()
