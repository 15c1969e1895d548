"""Where a long first call spends its time: every thread's Python stack sampled on a timer.

A first `--compile --quantize fp8` render took 116 s in a process whose FX-graph and AOTAutograd caches all hit
(sixth session), so the time was not Inductor's code generation, and nothing said what it was. This samples
`sys._current_frames()` every `every` seconds (every thread but its own: the render runs on the render queue's
thread) and counts, per sample and thread, the phase the innermost torch-side frame belongs to (Dynamo tracing,
AOTAutograd, Inductor, its caches, Triton's compiler, autotuning, torchao, running kernels) and the innermost
function. Cheap enough to leave on for a whole benchmark step; the counts, not wall times, are its output.

    sampler = StackSampler(every=0.2).start(); ...; sampler.stop(); json.dumps(sampler.summary())
"""

from __future__ import annotations

import collections
import sys
import threading

# The first match from the inside of a stack names its phase. Order matters: triton's compiler is called from
# Inductor, Inductor from AOTAutograd, AOTAutograd from Dynamo.
PHASES = (
    ("autotune", ("autotune", "benchmark", "select_algorithm")),
    ("triton compile", ("triton/compiler", "triton/backends", "triton/runtime/build")),
    ("inductor cache", ("_inductor/codecache", "_inductor/remote_cache", "compiler/_cache", "precompile")),
    ("inductor", ("torch/_inductor/",)),
    ("aot autograd", ("torch/_functorch/",)),
    ("fake tensors", ("torch/_subclasses/", "torch/fx/experimental/symbolic_shapes")),
    ("dynamo guards", ("_dynamo/guards",)),
    ("dynamo", ("torch/_dynamo/",)),
    ("torchao", ("torchao/",)),
    ("diffusers", ("diffusers/",)),
)


def phase_of(files: list[str]) -> str:
    """The phase of a stack given its frames' file names, innermost first."""
    for f in files:
        for name, marks in PHASES:
            if any(m in f for m in marks):
                return name
    return "other"


def short(filename: str, func: str, line: int) -> str:
    for root in ("site-packages/", "/tmp/code/", "/tmp/site/"):
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    return f"{filename}:{func}:{line}"


class StackSampler:
    def __init__(self, every: float = 0.2):
        self.every = every
        self.samples = 0
        self.phases: collections.Counter = collections.Counter()
        self.leaves: collections.Counter = collections.Counter()
        self.boundary: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StackSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="stack-sampler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _loop(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.every):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                f = frame
                while f is not None and len(stack) < 400:
                    stack.append(f)
                    f = f.f_back
                files = [s.f_code.co_filename for s in stack]
                if not any("torch" in x or "triton" in x for x in files):
                    continue  # an idle thread, the sampler of GPU use, the CLI
                phase = phase_of(files)
                self.phases[phase] += 1
                leaf = stack[0]
                self.leaves[
                    f"{phase} | {short(leaf.f_code.co_filename, leaf.f_code.co_name, leaf.f_lineno)}"
                ] += 1
                # The outermost frame of the innermost phase's run: which call of that phase the time is in.
                outer = None
                for s in stack:
                    if phase_of([s.f_code.co_filename]) == phase:
                        outer = s
                    elif outer is not None:
                        break
                if outer is not None:
                    where = short(outer.f_code.co_filename, outer.f_code.co_name, outer.f_lineno)
                    self.boundary[f"{phase} | {where}"] += 1

    def summary(self, top: int = 25) -> dict:
        return {
            "every_s": self.every,
            "samples": self.samples,
            "phases": dict(self.phases.most_common()),
            "innermost": dict(self.leaves.most_common(top)),
            "phase_entry": dict(self.boundary.most_common(top)),
        }
