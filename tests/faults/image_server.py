"""A loopback OpenAI-compatible image server that misbehaves on cue, for the fault tests of the remote backend.

    with ImageServer() as server:
        server.script([Drip(20), Image(png_bytes)])
        RemoteImageBackend(server.base_url, timeout=1.0)

Each POST to /v1/images/generations or /v1/images/edits takes the next scripted reply (the last one repeats):
- `Image(png)`: a valid answer, `{"data": [{"b64_json": ...}]}`;
- `Json(payload)`: any JSON body with status 200 (e.g. empty data);
- `Status(code, message)`: an HTTP error with an OpenAI-style error body;
- `Garbage(body)`: status 200 with a body that is not JSON;
- `Drip(interval, reply)`: the headers of `reply` (default a valid answer), then its body one byte per interval;
- `Hang()`: reads the request and never answers.
`server.hits` counts the requests; handlers stop when the server is closed. `refused_url()` is a URL on which
nothing listens.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Image:
    png: bytes


@dataclass
class Json:
    payload: object


@dataclass
class Status:
    code: int
    message: str = "scripted error"


@dataclass
class Garbage:
    body: bytes = b"<html>502 Bad Gateway from a proxy</html>"


@dataclass
class Drip:
    interval: float
    reply: object = None


@dataclass
class Hang:
    pass


def refused_url() -> str:
    """A loopback URL where nothing listens: a port just bound and released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _body(reply) -> tuple[int, bytes]:
    if isinstance(reply, Image):
        return 200, json.dumps(
            {"created": 0, "data": [{"b64_json": base64.b64encode(reply.png).decode()}]}
        ).encode()
    if isinstance(reply, Json):
        return 200, json.dumps(reply.payload).encode()
    if isinstance(reply, Status):
        return reply.code, json.dumps({"error": {"message": reply.message, "type": "server_error"}}).encode()
    if isinstance(reply, Garbage):
        return 200, reply.body
    raise TypeError(f"not a reply: {reply!r}")


class ImageServer:
    def __init__(self, default_png: bytes = b""):
        self.replies: list = []
        self.hits = 0
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self.default_png = default_png
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                reply = server._next()
                try:
                    if isinstance(reply, Hang):
                        server.closed.wait()
                    elif isinstance(reply, Drip):
                        self._drip(*_body(reply.reply or Image(server.default_png)), reply.interval)
                    else:
                        self._send(*_body(reply))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what the deadline tests make happen

            def _headers(self, code: int, length: int):
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(length))
                self.end_headers()

            def _send(self, code: int, data: bytes):
                self._headers(code, len(data))
                self.wfile.write(data)

            def _drip(self, code: int, data: bytes, interval: float):
                self._headers(code, len(data))
                self.wfile.flush()
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    if server.closed.wait(interval):
                        return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, replies: list) -> None:
        with self._lock:
            self.replies = list(replies)
            self.hits = 0

    def _next(self):
        with self._lock:
            self.hits += 1
            if not self.replies:
                return Status(404, "no script")
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()
