"""Soak test: SIGKILL `main.py run` in every phase of a film, `--resume` after each kill, and count.

    python evals/soak.py --kills 200 --out /tmp/soak            # or --minutes 25: as many kills as fit

Each film (offline backends, 4 shots with a voice-over, tiny frames) is started and killed two to eight times
(the start and the resumes alike), then resumed to the end. A kill is aimed at a phase, not at a wall-clock
moment: the soak watches the run folder (every few milliseconds) to know which phase the run is in, waits for
the phase it aims at, then kills at a random point of that phase's usual length (measured on a clean film
first). It aims at the phase with the fewest kills so far among those still ahead of the run, so the kills
spread over all of them. Phases, in order:

- start-up: the process has not yet marked the run as its own (run.json absent or not yet rewritten);
- planning: no storyboard.json yet;
- rendering: a shot without its clip is drawing a take (or planning its repair);
- critique: a shot's newest take is recorded without its verdict yet;
- clips: a shot's clip is being animated or checked;
- sound: every clip is made, the voice and the mix are being made (before the cut's encode);
- cut: the film is being encoded (a .final.* file exists, no final.mp4 yet);
- report: final.mp4 exists, report.html not yet.

Shots run in parallel, so several phases can be under way at once; a kill is counted in the phase that was
under way at that moment and is rarest to hit (critique, then rendering, then clips). Printed at the end:

- complete films: finished with exit 0, final.mp4 present, every shot with a clip, status done;
- re-rendered takes: a take image whose record existed before a kill and that was written again afterwards;
- leftover temp files: temporary files in a run folder once its film finished (the next run on a folder
  cleans what a kill left), and cut work folders left in the temp folder at the end;
- kills per phase (where each kill landed, as above).

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
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRIEF = (
    "Morning in a small bakery. The baker shapes the dough. Bread comes out of the oven. A customer smiles. "
    'Voice-over: "Fresh bread, every morning."'
)
SHOTS = 4
FILM = ["--shots", str(SHOTS), "--duration", "8", "--size", "160x96"]
PHASES = ["start-up", "planning", "rendering", "critique", "clips", "sound", "cut", "report"]
# Temporary names: write_atomic's `.name.XXXXXXXX.tmp`, ffmpeg targets `.s01.XXXXXXXX.mp4`, `.final.XXXXXXXX.mp4`,
# the sound's `.voice-XXXXXXXX.wav` and `.mix-XXXXXXXX.m4a`, the report's `contact_sheet.tmp.png`.
TEMP_NAME = re.compile(r"\..+[.-][a-z0-9_]{8}\.(tmp|mp4|wav|m4a)|.+\.tmp\.png")
POLL_S = 0.003


class Watch:
    """The phase of the run in `out`, read from its folder by the process started at `since` (ns)."""

    def __init__(self, out: Path):
        self.out = out
        self.marker = self._marker_stamp()

    def _marker_stamp(self):
        try:
            st = (self.out / "run.json").stat()
            return (st.st_ino, st.st_mtime_ns)
        except OSError:
            return None

    def phase(self) -> str:
        out = self.out
        stamp = self._marker_stamp()
        if stamp is None or stamp == self.marker:
            return "start-up"
        self.marker = None  # once rewritten, the run is this process's
        if not (out / "storyboard.json").exists():
            return "planning"
        under_way = set()
        for shot in _shot_ids(out):
            if (out / "clips" / f"{shot}.json").exists():
                continue
            under_way.add(_shot_phase(out, shot))
        for p in ("critique", "rendering", "clips"):
            if p in under_way:
                return p
        if (out / "final.mp4").exists():
            return "report"
        if any(out.glob(".final.*")):
            return "cut"
        return "sound"


def _shot_ids(out: Path) -> list[str]:
    try:
        return [s["id"] for s in json.loads((out / "storyboard.json").read_text())["shots"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"s{i:02d}" for i in range(1, SHOTS + 1)]


def _shot_phase(out: Path, shot: str) -> str:
    if any((out / "clips").glob(f".{shot}.*")) or (out / "clips" / f"{shot}.mp4").exists():
        return "clips"
    takes = sorted(
        (out / "shots" / shot).glob("take-*.json"), key=lambda p: int(p.stem.split("-")[1]), reverse=True
    )
    if takes:
        try:
            if json.loads(takes[0].read_text()).get("critique") is None:
                return "critique"
        except (OSError, ValueError):
            pass  # being replaced this instant
    return "rendering"


def typical_lengths(env: dict, base: Path) -> tuple[float, dict[str, float]]:
    """One clean film, watched: its wall time and how long each phase lasted (the kill window per phase)."""
    out = base / "clean"
    start = time.perf_counter()
    proc = subprocess.Popen(command(out, True), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watch, lengths = Watch(out), Counter()
    last, t = "start-up", start
    while proc.poll() is None:
        now_phase = watch.phase()
        now = time.perf_counter()
        lengths[last] += now - t
        last, t = now_phase, now
        time.sleep(POLL_S)
    if proc.returncode != 0 or not complete(out):
        raise SystemExit(
            f"the clean film failed (exit {proc.returncode}); run it by hand: {command(out, True)}"
        )
    shutil.rmtree(out)
    return time.perf_counter() - start, dict(lengths)


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
    return [p.as_posix() for p in out.rglob("*") if p.is_file() and TEMP_NAME.fullmatch(p.name)]


def command(out: Path, first: bool) -> list[str]:
    args = ["run", BRIEF, *FILM, "--out", str(out)] if first else ["run", "--resume", str(out)]
    return [sys.executable, str(ROOT / "main.py"), *args]


def complete(out: Path) -> bool:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        marker = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        (out / "final.mp4").exists()
        and len(manifest.get("clips", [])) == SHOTS
        and marker["status"] == "done"
    )


def ahead(out: Path) -> list[str]:
    """The phases a process started now on `out` can still go through."""
    if not (out / "storyboard.json").exists():
        return PHASES
    if (out / "final.mp4").exists():
        return ["start-up", "report"]
    if all((out / "clips" / f"{s}.json").exists() for s in _shot_ids(out)):
        return ["start-up", "sound", "cut", "report"]
    return ["start-up", *PHASES[2:]]


def kill_in(proc: subprocess.Popen, out: Path, aim: str, window: float, rng: random.Random) -> str | None:
    """Kill `proc` at a random point of phase `aim` (or as soon as it is past it); the phase it landed in, or
    None when the process ended first."""
    watch, order = Watch(out), PHASES.index(aim)
    at = None
    while proc.poll() is None:
        now_phase = watch.phase()
        if at is None and PHASES.index(now_phase) >= order:
            at = time.perf_counter() + rng.uniform(0.0, window)
        if at is not None and time.perf_counter() >= at:
            landed = watch.phase()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return landed
        time.sleep(POLL_S)
    return None


class Soak:
    """The counts, shared by the films that run at once (--jobs); each film is soaked by one thread."""

    def __init__(self, args, env: dict, lengths: dict[str, float], base: Path):
        self.args, self.env, self.lengths, self.base = args, env, lengths, base
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.kills = self.films = self.complete = self.rerendered = self.left = self.missed = 0
        self.phases: Counter[str] = Counter()
        self.failures: list[str] = []
        self.started = time.perf_counter()

    def more(self) -> bool:
        spent = time.perf_counter() - self.started
        return self.kills < self.args.kills and (self.args.minutes is None or spent < self.args.minutes * 60)

    def worker(self) -> None:
        while True:
            with self.lock:
                if not self.more():
                    return
                self.films += 1
                out = self.base / f"film-{self.films:03d}"
                rounds = self.rng.randint(2, 8)
                seed = self.rng.randrange(2**32)
            self.film(out, rounds, random.Random(seed))

    def _aim(self, out: Path, rng: random.Random) -> str | None:
        with self.lock:
            if not self.more():
                return None
            choices = ahead(out)
            fewest = min(self.phases[p] for p in choices)
            return rng.choice([p for p in choices if self.phases[p] == fewest])

    def film(self, out: Path, rounds: int, rng: random.Random) -> None:
        seen: dict[str, tuple[int, int]] = {}
        first, rerendered = True, 0
        for _ in range(rounds):
            aim = self._aim(out, rng)
            if aim is None:
                break
            proc = subprocess.Popen(
                command(out, first), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            landed = kill_in(proc, out, aim, self.lengths.get(aim, 0.0), rng)
            with self.lock:
                if landed is None:
                    self.missed += 1
                else:
                    self.phases[landed] += 1
                    self.kills += 1
            if self.args.verbose:
                print(
                    f"  {out.name}: aimed at {aim}, killed in {landed or '(it finished first)'}", flush=True
                )
            first = first and not (out / "run.json").exists() and not (out / "settings.json").exists()
            now = stamps(out)
            rerendered += sum(1 for k, v in seen.items() if k in now and now[k] != v)
            seen.update(now)
            if landed is None:
                break
        final = subprocess.run(command(out, first), env=self.env, capture_output=True)
        now = stamps(out)
        rerendered += sum(1 for k, v in seen.items() if k in now and now[k] != v)
        found = leftovers(out)
        with self.lock:
            self.rerendered += rerendered
            self.left += len(found)
            if final.returncode == 0 and complete(out):
                self.complete += 1
            else:
                tail = final.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                self.failures.append(f"{out.name}: exit {final.returncode}: {tail[0]}")
            for name in found:
                print(f"  leftover: {name}", flush=True)
            print(
                f"{out.name} done: kills so far {self.kills} ("
                + ", ".join(f"{p} {self.phases[p]}" for p in PHASES)
                + f"), complete {self.complete}, re-rendered {self.rerendered}, leftover {self.left}, "
                f"{time.perf_counter() - self.started:.0f} s",
                flush=True,
            )
        shutil.rmtree(out, ignore_errors=True)  # keep the disk small over 200 kills


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=None, help="stop starting films after this long")
    parser.add_argument("--jobs", type=int, default=1, help="films soaked at once")
    parser.add_argument("--out", default="/tmp/cd-soak")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="say where each kill was aimed and landed")
    args = parser.parse_args(argv)
    base = Path(args.out)
    shutil.rmtree(base, ignore_errors=True)
    tmp = base / "tmp"
    tmp.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CD_")}
    env.update(TMPDIR=str(tmp), HF_HUB_OFFLINE="1")

    clean_s, lengths = typical_lengths(env, base)
    print(
        f"a clean film: {clean_s:.1f} s; phases: "
        + ", ".join(f"{p} {lengths.get(p, 0.0):.2f} s" for p in PHASES),
        flush=True,
    )
    soak = Soak(args, env, lengths, base)
    workers = [threading.Thread(target=soak.worker) for _ in range(max(1, args.jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    took = time.perf_counter() - soak.started
    print(
        f"kills: {soak.kills} over {soak.films} films in {took:.0f} s, {args.jobs} at once (a clean film: {clean_s:.1f} s)"
    )
    print("kills per phase: " + ", ".join(f"{p} {soak.phases[p]}" for p in PHASES))
    print(f"aimed kills that came too late (the process had finished): {soak.missed}")
    print(f"complete films: {soak.complete}/{soak.films}")
    print(f"re-rendered takes: {soak.rerendered}")
    # Cut folders live in the shared temp folder: any later run cleans those of killed cuts, so they are counted
    # once, after the last film (a kill in the last film's cut can leave one that no run came after).
    cut_folders = len(list(tmp.glob("cd-cut-*")))
    print(
        f"leftover temp files: {soak.left} in run folders after their film finished; "
        f"cut folders at the end: {cut_folders}"
    )
    for line in soak.failures:
        print(f"  not complete: {line}")
    ok = soak.complete == soak.films and soak.rerendered == 0 and soak.left == 0 and cut_folders <= args.jobs
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
