"""What a fresh process does from its start to its first image: every thread's Python stack on a timer, as spans.

`python evals/startup_trace.py --out T.json [--set MODULE.NAME=VALUE] -- main.py run BRIEF ...` runs the script
after `--` as `__main__` (sys.argv as it would see it) and samples each thread's stack every `--every` seconds
(50 ms). Each sample gets a label: `import <package>` while a module is being imported (the outermost package
of the import chain), else the innermost project function with the library it is inside (`tools/model_load.py:
load_pipeline [transformers]`); threads that only wait (a lock, a queue, a pool's idle worker) are left out.
Runs of one label on one thread become spans; the JSON (written at exit, also on an error or a SystemExit) has
the spans of at least `--min-span` seconds in order, and per thread the seconds of each label. Times are from
this process's start (`started`, epoch seconds, is in the JSON, so a parent can line them up with file times).

`--set agent.director.PRELOAD=0` sets a module's constant before the script runs (an A/B switch for
benchmarks; the module is imported for it).

The counts are samples, not exact times: a label seen in n samples took about n x every seconds.
"""

from __future__ import annotations

import time

STARTED = time.time()

import argparse  # noqa: E402
import atexit  # noqa: E402
import collections  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Innermost frames that mean the thread is idle: waiting on a lock, a queue or a pool, or sleeping.
IDLE = {
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("selectors.py", "select"),
    ("thread.py", "_worker"),
    ("threading.py", "join"),
}


def library_of(filename: str) -> str | None:
    """The top-level package of a file under site-packages (or a carried /tmp/site), else None."""
    for root in ("site-packages/", "dist-packages/", "/tmp/site/"):
        if root in filename:
            head = filename.split(root, 1)[1].split("/", 1)[0]
            return head.removesuffix(".py")
    return None


def project_file(filename: str) -> str | None:
    """The path of a project file relative to the repository root, else None (this script is not one)."""
    if library_of(filename) or filename.startswith("<"):
        return None  # an installed package (a virtual environment may sit inside the checkout) or a frozen module
    try:
        rel = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return None if rel.name == Path(__file__).name else str(rel)


def label_of(stack: list) -> str | None:
    """A sample's label from its frames (innermost first); None for an idle thread."""
    leaf = stack[0].f_code
    if (Path(leaf.co_filename).name, leaf.co_name) in IDLE:
        return None
    importing = any("importlib._bootstrap" in f.f_code.co_filename for f in stack)
    if importing:
        # The outermost module being executed by an import: the package a user's import statement asked for.
        for f in reversed(stack):
            if f.f_code.co_name == "<module>":
                lib = library_of(f.f_code.co_filename)
                if lib:
                    return f"import {lib}"
        return "import (project)"
    lib = next((library_of(f.f_code.co_filename) for f in stack if library_of(f.f_code.co_filename)), None)
    for f in stack:
        rel = project_file(f.f_code.co_filename)
        if rel:
            return f"{rel}:{f.f_code.co_name}" + (f" [{lib}]" if lib else "")
    return f"[{lib}]" if lib else "other"


class Trace:
    def __init__(self, every: float):
        self.every = every
        self.current: dict[str, list] = {}  # thread name -> [label, start, last seen]
        self.spans: list[dict] = []
        self.totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._stop = threading.Event()

    def start(self) -> Trace:
        threading.Thread(target=self._loop, daemon=True, name="startup-trace").start()
        return self

    def _loop(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.every):
            now = round(time.time() - STARTED, 3)
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack, f = [], frame
                while f is not None and len(stack) < 300:
                    stack.append(f)
                    f = f.f_back
                name = names.get(ident, str(ident))
                label = label_of(stack)
                if label is not None:
                    self.totals[name][label] += 1
                self._advance(name, label, now)

    def _advance(self, thread: str, label: str | None, now: float) -> None:
        open_span = self.current.get(thread)
        if open_span and open_span[0] == label:
            open_span[2] = now
            return
        if open_span and open_span[0] is not None:
            self.spans.append(
                {"thread": thread, "label": open_span[0], "start": open_span[1], "end": open_span[2]}
            )
        self.current[thread] = [label, now, now]

    def result(self, min_span: float) -> dict:
        self._stop.set()
        spans = self.spans + [
            {"thread": t, "label": s[0], "start": s[1], "end": s[2]} for t, s in self.current.items() if s[0]
        ]
        spans = [s for s in spans if s["end"] - s["start"] >= min_span]
        spans.sort(key=lambda s: s["start"])
        return {
            "started": STARTED,
            "every_s": self.every,
            "spans": spans,
            "seconds": {
                t: {k: round(v * self.every, 2) for k, v in c.most_common(20)} for t, c in self.totals.items()
            },
        }


def apply_set(item: str) -> None:
    """`module.NAME=VALUE`: import the module and set its constant (ints and floats as numbers)."""
    target, _, raw = item.partition("=")
    module, _, name = target.rpartition(".")
    if not module or not name:
        raise SystemExit(f"--set {item!r}: write module.NAME=VALUE")
    value: object = raw
    for kind in (int, float):
        try:
            value = kind(raw)
            break
        except ValueError:
            pass
    setattr(importlib.import_module(module), name, value)


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv:
        raise SystemExit("usage: startup_trace.py [--out T.json] [--set M.NAME=V] -- SCRIPT ARGS...")
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--every", type=float, default=0.05)
    ap.add_argument("--min-span", type=float, default=0.1)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv[:cut])
    script, *rest = argv[cut + 1 :]
    trace = Trace(args.every).start()
    atexit.register(lambda: Path(args.out).write_text(json.dumps(trace.result(args.min_span), indent=1)))
    # The script's folder first, as `python SCRIPT` would have it, and not this one's: evals/ holds modules
    # (tokenizers.py) that would shadow installed packages.
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(Path(script).resolve().parent)] + [
        p for p in sys.path if Path(p or ".").resolve() != here
    ]
    for item in args.set:
        apply_set(item)
    sys.argv = [script, *rest]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
