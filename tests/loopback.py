"""The machinery every loopback fake server in tests/ shares: a scripted HTTP server on 127.0.0.1.

    class MyServer(LoopbackServer):
        def answer(self, http, route, body, reply):      # what one scripted reply sends
            http.send_json(200, {...})

    with MyServer() as server:
        server.script(["first reply", "second, repeated"])
        client(base_url=server.base_url)                   # http://127.0.0.1:PORT/v1

Each POST takes the next scripted reply of its route (the last one repeats when the script runs out; a route
without a script gets a 404 from `no_script`). Every request body is recorded (`requests`), and `hits` counts
the requests since the last `script`. `closed` is set when the server stops, so a handler that waits (a hang,
a delay, a drip) ends with it. `close()` stops it as a crashed server stops: nothing listens any more and
kept-alive connections are dropped. A client that gives up mid-answer is not an error here.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANY_ROUTE = "*"


class Http:
    """What an `answer` uses to send: JSON, raw bytes (any headers), or a body dripped byte by byte."""

    def __init__(self, handler: BaseHTTPRequestHandler, closed: threading.Event):
        self.handler, self.closed = handler, closed

    def _headers(self, code: int, length: int, headers: dict[str, str]) -> None:
        h = self.handler
        h.send_response(code)
        for name, value in {"content-type": "application/json", **headers}.items():
            h.send_header(name, value)
        h.send_header("content-length", str(length))
        h.end_headers()

    def send_bytes(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self._headers(code, len(data), headers or {})
        self.handler.wfile.write(data)

    def send_json(self, code: int, payload: object) -> None:
        self.send_bytes(code, json.dumps(payload).encode())

    def error(self, code: int, message: str, kind: str = "invalid_request") -> None:
        """An OpenAI-style error body."""
        self.send_json(code, {"error": {"message": message, "type": kind}})

    def drip(self, code: int, data: bytes, interval: float) -> None:
        """The headers, then the body one byte every `interval` seconds (until the server closes)."""
        self._headers(code, len(data), {})
        self.handler.wfile.flush()
        for i in range(len(data)):
            self.handler.wfile.write(data[i : i + 1])
            self.handler.wfile.flush()
            if self.closed.wait(interval):
                return

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep `seconds` (None: until the server closes); True when the server closed meanwhile."""
        return self.closed.wait(seconds)


class LoopbackServer:
    """Base of the fake servers: subclasses define `answer` (and may set `protocol_version`)."""

    protocol_version = "HTTP/1.1"

    def __init__(self):
        self.scripts: dict[str, list] = {}
        self.requests: list[dict] = []
        self.hits = 0
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._open = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = server.protocol_version

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                if server.closed.is_set():  # a kept-alive connection of a server that went down
                    self.close_connection = True
                    return
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                route = self.path.split("?")[0]
                body = server.parse(raw)
                reply = server._next(route, body)
                try:
                    server.answer(Http(self, server.closed), route, body, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what the timeout and deadline tests make happen

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def parse(self, raw: bytes) -> dict:
        """The request body as recorded: JSON, or `{"_raw": text}` for anything else (multipart uploads)."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {"_raw": raw.decode("latin-1")}
        return body if isinstance(body, dict) else {"_json": body}

    def script(self, replies: list, route: str = ANY_ROUTE) -> None:
        with self._lock:
            self.scripts[route] = list(replies)
            self.hits = 0

    def no_script(self, route: str):
        """The reply when `route` has no script: subclasses give their own 404."""
        raise NotImplementedError

    def record(self, route: str, body: dict) -> None:
        self.requests.append(body)

    def _next(self, route: str, body: dict):
        with self._lock:
            self.hits += 1
            self.record(route, body)
            replies = self.scripts.get(route) or self.scripts.get(ANY_ROUTE)
            if not replies:
                return self.no_script(route)
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def answer(self, http: Http, route: str, body: dict, reply) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        self._open = True
        return self

    def close(self) -> None:
        if self._open:
            self._open = False
            self.closed.set()
            self._server.shutdown()
            self._server.server_close()

    def __exit__(self, *exc) -> None:
        self.close()
