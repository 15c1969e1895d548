"""Soak test: kill `main.py run` with SIGKILL at random moments, `--resume` after each kill, and count.

    python evals/soak.py --kills 200 --out /tmp/soak

Each film (offline backends, 4 shots, tiny frames) is started, killed at a random moment one to three times
(the start and the resumes alike), then resumed to the end. Printed at the end:

- complete films: finished with exit 0, final.mp4 present, every shot with a clip;
- re-rendered takes: a take image whose record existed before a kill and that was written again afterwards;
- leftover temp files: temporary files in a run folder once its film finished (the next run on a folder
  cleans what a kill left), and cut work folders left in the temp folder at the end;
- kills per phase (what the folder held at the kill: start-up, plan, takes, clips, cut).

The children get their own TMPDIR, so other programs' temp folders are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRIEF = (
    "Morning in a small bakery. The baker shapes the dough. Bread comes out of the oven. A customer smiles."
)
FILM = ["--shots", "4", "--duration", "8", "--size", "160x96"]
TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.(tmp|mp4)")


def phase(out: Path) -> str:
    if not (out / "run.json").exists():
        return "start-up"
    if (out / "final.mp4").exists():
        return "cut"
    if any(out.glob("clips/s*.json")):
        return "clips"
    if any(out.glob("shots/s*/take-*.json")):
        return "takes"
    return "plan"


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    """The image of every recorded take, by inode and modification time (a rewrite changes them)."""
    found = {}
    for rec in out.glob("shots/s*/take-*.json"):
        png = rec.with_suffix(".png")
        if png.exists():
            st = png.stat()
            found[png.relative_to(out).as_posix()] = (st.st_ino, st.st_mtime_ns)
    return found


def leftovers(out: Path) -> list[str]:
    return [p.as_posix() for p in out.rglob(".*") if p.is_file() and TEMP_NAME.fullmatch(p.name)]


def command(out: Path, first: bool) -> list[str]:
    args = ["run", BRIEF, *FILM, "--out", str(out)] if first else ["run", "--resume", str(out)]
    return [sys.executable, str(ROOT / "main.py"), *args]


def complete(out: Path) -> bool:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        marker = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (out / "final.mp4").exists() and len(manifest.get("clips", [])) == 4 and marker["status"] == "done"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--out", default="/tmp/cd-soak")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    base = Path(args.out)
    shutil.rmtree(base, ignore_errors=True)
    tmp = base / "tmp"
    tmp.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    env.update(TMPDIR=str(tmp), HF_HUB_OFFLINE="1")

    # One clean film first: how long a run takes here sets the window the kills fall in.
    t0 = time.perf_counter()
    subprocess.run(command(base / "clean", True), env=env, capture_output=True, check=True)
    window = time.perf_counter() - t0
    shutil.rmtree(base / "clean")

    kills, films, complete_films, rerendered, left = 0, 0, 0, 0, 0
    phases: Counter[str] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    while kills < args.kills:
        films += 1
        out = base / f"film-{films:03d}"
        seen: dict[str, tuple[int, int]] = {}
        first = True
        for _ in range(rng.randint(1, 3)):
            if kills >= args.kills:
                break
            proc = subprocess.Popen(
                command(out, first), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(rng.uniform(0.0, 1.1 * window))
            if proc.poll() is None:
                phases[phase(out)] += 1
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            first = first and not (out / "run.json").exists() and not (out / "settings.json").exists()
            now = stamps(out)
            rerendered += sum(1 for k, v in seen.items() if k in now and now[k] != v)
            seen.update(now)
        final = subprocess.run(command(out, first), env=env, capture_output=True)
        now = stamps(out)
        rerendered += sum(1 for k, v in seen.items() if k in now and now[k] != v)
        if final.returncode == 0 and complete(out):
            complete_films += 1
        else:
            tail = final.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            failures.append(f"{out.name}: exit {final.returncode}: {tail[0]}")
        left += len(leftovers(out))
        print(
            f"film {films}: kills so far {kills}, complete {complete_films}, re-rendered {rerendered}, "
            f"leftover {left}",
            flush=True,
        )
        shutil.rmtree(out, ignore_errors=True)  # keep the disk small over 200 kills

    print(
        f"kills: {kills} over {films} films in {time.perf_counter() - started:.0f} s (a clean run: {window:.1f} s)"
    )
    print("kills per phase: " + ", ".join(f"{p} {n}" for p, n in sorted(phases.items())))
    print(f"complete films: {complete_films}/{films}")
    print(f"re-rendered takes: {rerendered}")
    # Cut folders live in the shared temp folder: any later run cleans those of killed cuts, so they are counted
    # once, after the last film (a kill in the last film's cut can leave one that no run came after).
    cut_folders = len(list(tmp.glob("cd-cut-*")))
    print(
        f"leftover temp files: {left} in run folders after their film finished; cut folders at the end: {cut_folders}"
    )
    for line in failures:
        print(f"  not complete: {line}")
    return 0 if complete_films == films and rerendered == 0 and left == 0 and cut_folders <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
