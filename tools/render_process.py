"""A fresh command's image model in a process of its own, started at the command's first line.

A cold `main.py run` on a GPU waits for its first image on imports: Python, langgraph, torch, then diffusers and
transformers with what they pull in (torch._dynamo, peft, scipy), all holding one interpreter's GIL while the
run plans on the same interpreter. Here a child interpreter imports only what renders (torch, diffusers, the
model classes) and copies the weights to the GPU (tools/weight_stage.py) from the command's first line, while
the parent imports the director and plans on another core. The child is a `ModelManager` and its
`RenderQueue` behind two pipes: the parent's shot branches submit text-to-image requests and edits as before;
the child batches them exactly as the in-process queue does, and sends back each image's pixels and its
`RenderCost` (the perf_counter clock is the machine's monotonic clock, so its times read the same here).

    proc = RenderProcess("/weights/Z-Image-Turbo", ManagerConfig())   # starts loading now
    done = proc.render("/weights/Z-Image-Turbo", "a red chair", 7, height=1024, width=1024)   # a `Rendered`

The command line starts one with `start_early` when its arguments name a local diffusers image model and the
machine has a CUDA GPU (`--render-process auto`); the image backend adopts it with `take` when the run's model
and manager settings are the ones it was started with, and closes it otherwise. A child that dies fails the
requests it held with its exit code; the backend then renders in its own process.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from itertools import count
from multiprocessing.connection import Connection

from tools.render_queue import BatchRecord, RenderCost, Rendered

log = logging.getLogger(__name__)


class RenderProcessError(RuntimeError):
    """The render process failed a request, or ended; the message says which and why."""


class RenderProcess:
    """The child, seen from the parent: `submit`/`render` as the RenderQueue's, `edit` for run_edit's work."""

    def __init__(self, source: str, config, device: str | None = None):
        self.source = source
        self.config = config  # tools.models.ManagerConfig
        self.batches: list[BatchRecord] = []  # every pipeline call the child made, as the queue's
        self.load_report = None  # the child's LoadReport fields, once it has loaded
        self.started = time.perf_counter()
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.render_process", str(from_parent), str(to_parent)],
            pass_fds=(from_parent, to_parent),
            stdin=subprocess.DEVNULL,
        )
        os.close(from_parent)
        os.close(to_parent)
        self._out = Connection(to_child, readable=False)
        self._in = Connection(from_child, writable=False)
        self._send_lock = threading.Lock()
        self._futures: dict[int, Future] = {}
        self._ids = count()
        self.ended: str | None = None  # why the child is gone, once it is
        self._send(("start", source, config.model_dump(), device))
        self._reader = threading.Thread(target=self._read, name="render-process reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.ended is None

    def matches(self, source: str, config) -> bool:
        return self.alive and source == self.source and config.model_dump() == self.config.model_dump()

    def submit(self, source: str, prompt: str, seed: int, task: str = "t2i", negative_prompt=None, **kwargs):
        """Queue one text-to-image request in the child; the future holds a `Rendered` (a PIL image)."""
        if source != self.source or task != "t2i":
            raise ValueError(f"the render process renders {self.source} t2i, not {source} {task}")
        return self._ask("render", prompt, seed, negative_prompt, kwargs)

    def render(self, source: str, prompt: str, seed: int, **kwargs) -> Rendered:
        return self.submit(source, prompt, seed, **kwargs).result()

    def edit(self, edit) -> tuple:
        """tools.edit_image.run_edit in the child: (image, params, RenderCost)."""
        return self._ask("edit", edit.model_dump()).result()

    def close(self) -> None:
        """Let the child finish what it holds and exit (its GPU memory goes with it)."""
        if self.proc.poll() is None:
            try:
                self._send(("close",))
            except RenderProcessError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)

    # ---- the parent's side of the pipes ---------------------------------------------------------------------

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            if self.ended:
                raise RenderProcessError(self.ended)
            try:
                self._out.send(message)
            except OSError as err:
                raise RenderProcessError(f"the render process is gone ({err})") from None

    def _ask(self, kind: str, *args) -> Future:
        future: Future = Future()
        rid = next(self._ids)
        self._futures[rid] = future
        try:
            self._send((kind, rid, *args))
        except RenderProcessError:
            self._futures.pop(rid, None)
            raise
        return future

    def _read(self) -> None:
        try:
            while True:
                message = self._in.recv()
                kind, rid, *rest = message
                if kind == "loaded":
                    self.load_report = rest[0]
                    continue
                future = self._futures.pop(rid)
                if kind == "error":
                    future.set_exception(_error(*rest))
                elif kind == "image":
                    future.set_result(self._rendered(*rest))
                else:  # "edited"
                    image = _pixels(*rest[0])
                    future.set_result((image, rest[1], RenderCost(*rest[2])))
        except (EOFError, OSError):
            pass
        code = self.proc.wait()
        with self._send_lock:
            self.ended = f"the render process ended (exit code {code}) before it answered"
        for future in self._futures.values():
            future.set_exception(RenderProcessError(self.ended))
        self._futures.clear()

    def _rendered(self, pixels: tuple, cost: tuple, batch: tuple) -> Rendered:
        record = BatchRecord(self.source, *batch)
        if not self.batches or self.batches[-1] != record:
            self.batches.append(record)
        return Rendered(_pixels(*pixels), RenderCost(*cost))


def _pixels(mode: str, size: tuple[int, int], data: bytes):
    from PIL import Image

    return Image.frombytes(mode, size, data)


def _error(name: str, text: str) -> Exception:
    if name == "OutOfMemory":
        from tools.models import OutOfMemory

        return OutOfMemory(text)
    return RenderProcessError(f"the render process failed: {name}: {text}")


# ---- started by the command line, taken by the image backend --------------------------------------------------

_early: list[RenderProcess] = []
_early_lock = threading.Lock()


def start_early(source: str, config, device: str | None = None) -> RenderProcess:
    """Start the child for `source` now; `take` hands it to the backend whose settings it fits."""
    proc = RenderProcess(source, config, device)
    with _early_lock:
        _early.append(proc)
    return proc


def take(source: str, config) -> RenderProcess | None:
    """The early child if it renders `source` with `config`; any other is closed (None)."""
    with _early_lock:
        waiting = list(_early)
        _early.clear()
    found = None
    for proc in waiting:
        if found is None and proc.matches(source, config):
            found = proc
        else:
            log.info("render process for %s not used by this run: closed", proc.source)
            proc.close()
    return found


@atexit.register
def _close_untaken() -> None:
    with _early_lock:
        waiting = list(_early)
        _early.clear()
    for proc in waiting:
        proc.close()


def gpu_present() -> bool:
    """Whether this machine shows an NVIDIA GPU, without importing torch."""
    return os.path.exists("/dev/nvidiactl")


# ---- the child --------------------------------------------------------------------------------------------------


def _serve(inbox: Connection, outbox: Connection) -> None:
    _die_with_parent()
    _, source, config, device = inbox.recv()
    from tools.models import ModelManager

    manager = ModelManager(**config, device=device)
    loading = manager.preload(source)
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            outbox.send(message)

    def failed(rid: int, err: BaseException) -> None:
        send(("error", rid, type(err).__name__, " ".join(str(err).split())[:2000]))

    def loaded() -> None:
        loading.join()
        if manager.load_reports:
            send(("loaded", -1, dataclasses.asdict(manager.load_reports[-1])))

    def rendered(rid: int, future: Future) -> None:
        try:
            done = future.result()
        except BaseException as err:
            failed(rid, err)
            return
        c, call = done.cost, done.call
        send(("image", rid, _as_bytes(done.image), (c.queue_wait_s, c.gpu_s, c.run_s, c.batch),
              (call.started, call.ended, call.size)))  # fmt: skip

    def edit(rid: int, request: dict) -> None:
        from tools.edit_image import EditRequest, run_edit

        try:
            image, params = run_edit(manager, source, EditRequest(**request))
            c = manager.last_cost()
            send(("edited", rid, _as_bytes(image), params, (c.queue_wait_s, c.gpu_s, c.run_s, c.batch)))
        except BaseException as err:
            failed(rid, err)

    threading.Thread(target=loaded, name="loaded", daemon=True).start()
    while True:
        try:
            kind, *rest = inbox.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if kind == "close":
            break
        if kind == "render":
            rid, prompt, seed, negative, kwargs = rest
            future = manager.queue.submit(source, prompt, seed, negative_prompt=negative, **kwargs)
            future.add_done_callback(lambda f, rid=rid: rendered(rid, f))
        elif kind == "edit":
            threading.Thread(target=edit, args=tuple(rest), name="edit", daemon=True).start()
    manager.queue.close()


def _as_bytes(image) -> tuple:
    return image.mode, image.size, image.tobytes()


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
