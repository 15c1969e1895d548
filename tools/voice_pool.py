"""Warm Piper voices: one Piper child process per voice model, kept loaded across lines and films.

Piper (GPL-3.0) runs in a child Python process, never imported here. Starting one costs its imports and the voice
model's load, which is most of a short line's time; a long-lived process (the service's worker) keeps one child
per voice open instead of starting it for every film:

    with warm_voices():          # the worker, around its job loop
        ...                      # every speak_piper() in the process uses the warm children

Outside `warm_voices()` each `speak_piper` call starts its own child and stops it afterwards (a CLI film speaks
all its lines in one call). A warm child's lifetime is bounded: it is closed when the last `warm_voices()` ends,
after IDLE_CLOSE seconds without a line, and it ends by itself when its stdin closes (its parent died). A child
that died is started again on the next call (once more within a call, if it died during it); one that does not
answer in time is killed, and the call raises PiperFailed, so the caller falls back as for any other failure.

Protocol (one line of JSON each way): the child says {"ready": true} once the voice is loaded; each request is a
list of [text, wav_path] jobs and is answered {"done": true} or {"error": "..."}. The text travels inside JSON on
stdin, never on a command line.
"""

from __future__ import annotations

import collections
import contextlib
import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOAD_TIMEOUT = 90.0  # seconds for a new child to import Piper and load the voice (slow on a loaded box)
LINE_TIMEOUT = 20.0  # seconds per line on top of BASE_TIMEOUT before a child counts as hung
BASE_TIMEOUT = 10.0
IDLE_CLOSE = 900.0  # a warm child unused this long is closed; the next line starts a new one

# The child. Replies go to a copy of the original stdout; anything Piper or onnxruntime prints lands on stderr.
# Piper's noise comes from onnxruntime's random kernels, seeded when a session is made and advanced by every run:
# a warm session would speak a film's lines differently from a new one. So each request gets a new session made
# with SEED, and a request's audio depends only on its lines, the voice and the seed, warm or cold. The graph is
# optimised once and kept in memory, so a session of it takes about a fifth of the first load's time (0.24 s
# against 1.2 s on a quiet 2-core machine); the next request's is made after each answer, while the child waits. (A new session per line would
# make each line's audio independent of the others too, but cost as much CPU as starting Piper cold.)
_CHILD = """
import json, os, sys, tempfile, wave
from concurrent.futures import ThreadPoolExecutor
replies = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
import onnxruntime as ort
from piper import PiperVoice
from piper.config import PiperConfig
model, seed, ahead_of_time = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "ahead"
Level = ort.GraphOptimizationLevel
def options(level):
    so = ort.SessionOptions()
    so.graph_optimization_level, so.log_severity_level = level, 3
    # Threads that spin between operators burn the cores the renders need (a film's lines took 3.4 CPU s with
    # spinning, 2.5 without, at the same wall time): they sleep instead.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so
with tempfile.TemporaryDirectory() as tmp:
    so = options(Level.ORT_ENABLE_ALL)
    so.optimized_model_filepath = os.path.join(tmp, "voice.onnx")
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    with open(so.optimized_model_filepath, "rb") as f:
        graph = f.read()
def session():
    ort.set_seed(seed)
    return ort.InferenceSession(graph, options(Level.ORT_DISABLE_ALL), providers=["CPUExecutionProvider"])
with open(model + ".json", encoding="utf-8") as f:
    config = PiperConfig.from_dict(json.load(f))
maker = ThreadPoolExecutor(1)
ahead = maker.submit(session)
ahead.result()  # a voice that cannot load fails here, before it says it is ready
voice = PiperVoice(config=config, session=None)
replies.write('{"ready": true}\\n')
for request in sys.stdin:
    voice.session = ahead.result()
    try:
        for text, path in json.loads(request):
            with wave.open(path, "wb") as wf:
                voice.synthesize_wav(text, wf)
    except Exception as err:
        replies.write(json.dumps({"error": f"{type(err).__name__}: {err}"[:500]}) + "\\n")
    else:
        replies.write('{"done": true}\\n')
    ahead = maker.submit(session) if ahead_of_time else None
    if ahead is None:
        break  # a child of one request: nothing to keep warm
"""
SEED = 0  # the noise seed of every request's new session


class PiperFailed(RuntimeError):
    """Piper could not speak the lines: it would not start, it died twice, it hung, or it reported an error."""


class _Died(PiperFailed):
    """The child was gone before it answered (killed, crashed): worth one fresh start."""


class PiperProcess:
    """One Piper child with one voice loaded. Not thread-safe: the pool serialises calls per voice."""

    def __init__(self, model: str, warm: bool = True):
        self.model = model
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, model, str(SEED), "ahead" if warm else "once"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1,
            encoding="utf-8", errors="replace",
        )  # fmt: skip
        # Drained all the time, so a chatty child never blocks on a full stderr pipe; the tail names a failure.
        self._drainer = threading.Thread(target=self._drain, name="piper-stderr", daemon=True)
        self._drainer.start()
        try:
            self._reply(LOAD_TIMEOUT, "load the voice")
        except PiperFailed:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def speak(self, jobs: list[tuple[str, str]]) -> None:
        """Write every (text, wav_path) job; returns when all are written, raises PiperFailed otherwise."""
        try:
            self.proc.stdin.write(json.dumps(jobs) + "\n")  # ASCII on the wire, whatever the locale
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _Died(f"piper (pid {self.pid}) was gone before the lines were sent{self._tail()}") from None
        reply = self._reply(BASE_TIMEOUT + LINE_TIMEOUT * len(jobs), f"speak {len(jobs)} line(s)")
        if "error" in reply:
            raise PiperFailed(f"piper: {reply['error']}")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()  # the child's loop ends on EOF
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                pipe.close()

    def _reply(self, timeout: float, doing: str) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else None
        if line is None:
            self.proc.kill()
            self.proc.wait()
            raise PiperFailed(f"piper did not {doing} within {timeout:.0f} s; it was stopped")
        if not line:
            self.proc.wait()
            raise _Died(f"piper exited {self.proc.returncode} before it could {doing}{self._tail()}")
        try:
            return json.loads(line)
        except ValueError:
            raise PiperFailed(f"piper answered {line[:80]!r} instead of its reply") from None

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip())

    def _tail(self) -> str:
        if self.proc.poll() is not None:
            self._drainer.join(1.0)  # a dead child's last words are still in the pipe
        said = " | ".join(x for x in self._stderr if x)[-300:]
        return f": {said}" if said else ""


class VoicePool:
    """Warm Piper children, one per voice model; `starts` counts the children started."""

    def __init__(self, idle_close: float = IDLE_CLOSE, warm: bool = True):
        self.idle_close, self.warm = idle_close, warm
        self.starts = 0
        self._procs: dict[str, PiperProcess] = {}
        self._locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None

    def speak(self, model: str, jobs: list[tuple[str, str]]) -> None:
        """Speak (text, wav_path) jobs with `model`'s warm child; raises PiperFailed."""
        with self._lock:
            voice_lock = self._locks[model]
        with voice_lock:
            for attempt in (1, 2):
                proc = self._procs.get(model)
                if proc is None or not proc.alive():
                    if proc is not None:
                        proc.close()
                    proc = self._start(model)
                try:
                    proc.speak(jobs)
                    break
                except PiperFailed as err:
                    self._procs.pop(model, None)
                    proc.close()
                    if attempt == 2 or not isinstance(err, _Died):
                        raise
            self._used[model] = time.monotonic()
        self._watch_idle()

    def pids(self) -> dict[str, int]:
        """Voice model → the pid of its live child."""
        return {m: p.pid for m, p in list(self._procs.items()) if p.alive()}

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            locks = dict(self._locks)
        for model, lock in locks.items():
            with lock:
                if (proc := self._procs.pop(model, None)) is not None:
                    proc.close()

    def _start(self, model: str) -> PiperProcess:
        if self._closed.is_set():
            raise PiperFailed("the voice pool was closed")
        with self._lock:
            self.starts += 1
        proc = PiperProcess(model, self.warm)
        self._procs[model] = proc
        return proc

    def _watch_idle(self) -> None:
        with self._lock:
            if self._reaper is None and self.idle_close > 0:
                self._reaper = threading.Thread(target=self._reap, name="voice-pool-idle", daemon=True)
                self._reaper.start()

    def _reap(self) -> None:
        while not self._closed.wait(min(60.0, self.idle_close / 4)):
            for model in list(self._procs):
                with self._lock:
                    lock = self._locks[model]
                if not lock.acquire(blocking=False):
                    continue  # speaking now: not idle
                try:
                    if time.monotonic() - self._used.get(model, 0.0) >= self.idle_close:
                        if (proc := self._procs.pop(model, None)) is not None:
                            proc.close()
                finally:
                    lock.release()


_active: VoicePool | None = None
_users = 0
_active_lock = threading.Lock()


@contextlib.contextmanager
def warm_voices(idle_close: float = IDLE_CLOSE) -> Iterator[VoicePool]:
    """Keep Piper warm in this process while inside; nested uses share the one pool, the last out closes it."""
    global _active, _users
    with _active_lock:
        if _active is None:
            _active = VoicePool(idle_close)
        pool = _active
        _users += 1
    try:
        yield pool
    finally:
        with _active_lock:
            _users -= 1
            if _users == 0:
                _active = None
                pool.close()


def active_pool() -> VoicePool | None:
    """The process's warm pool, or None outside warm_voices()."""
    return _active


def speak_piper(model: str, jobs: list[tuple[str, str | Path]]) -> None:
    """Speak (text, wav_path) jobs with Piper: the warm child if the process keeps one, else a child of its own."""
    jobs = [(text, str(Path(path).resolve())) for text, path in jobs]  # a warm child may have another cwd
    pool = _active
    if pool is not None:
        pool.speak(model, jobs)
        return
    cold = VoicePool(idle_close=0, warm=False)
    try:
        cold.speak(model, jobs)
    finally:
        cold.close()
