"""evals/startup_trace.py: a script run under the tracer keeps its argv and exit code, its imports and its busy
functions become labelled spans, and --set changes a module's constant before the script runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_traced_script_shows_its_import_and_its_busy_function(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "import sys, time\n"
        "import sympy  # an installed package agent.director does not import\n"
        "import agent.director\n"
        "def spin(seconds):\n"
        "    end = time.perf_counter() + seconds\n"
        "    while time.perf_counter() < end:\n"
        "        pass\n"
        "spin(0.6)\n"
        "print(sys.argv[1:], agent.director.PRELOAD)\n"
        "sys.exit(3)\n"
    )
    out = tmp_path / "trace.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "evals" / "startup_trace.py"), "--out", str(out), "--every", "0.02",
         "--set", "agent.director.PRELOAD=0", "--", str(script), "a", "b"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.split() == ["['a',", "'b']", "0"]  # its own argv; the constant set before it ran
    trace = json.loads(out.read_text())
    main = [s for s in trace["spans"] if s["thread"] == "MainThread"]
    labels = [s["label"] for s in main]
    assert "import sympy" in labels
    spin = [s for s in main if s["label"] == "other"]  # job.py is outside the project: no project frame
    assert spin and max(s["end"] - s["start"] for s in spin) >= 0.4
    assert trace["seconds"]["MainThread"]["import sympy"] > 0
