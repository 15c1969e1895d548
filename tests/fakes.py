"""A scripted OpenAI-compatible server on loopback, for driving the real `openai` client in tests.

    with FakeOpenAI() as server:
        server.script("/v1/chat/completions", ['{"shots": []}', Status(500), Delay(5)])
        settings.llm_base_url = server.base_url     # http://127.0.0.1:PORT/v1

Each request to a route takes the next scripted reply (the last one repeats when the script runs out):
- `str`: the assistant message content of a chat completion;
- `dict`: returned as the JSON body as it is (e.g. an images response);
- `Status(code, body)`: an HTTP error;
- `Delay(seconds, reply)`: waits, then answers `reply` (drives client timeouts).
Every request body is recorded in `server.requests[route]`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Status:
    code: int
    body: dict | None = None


@dataclass
class Delay:
    seconds: float
    reply: object = "{}"


def chat_completion(content: str, model: str = "fake") -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeOpenAI:
    def __init__(self):
        self.scripts: dict[str, list] = {}
        self.requests: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("latin-1")}
                route = self.path.split("?")[0]
                reply = fake._next(route, body)
                while isinstance(reply, Delay):
                    time.sleep(reply.seconds)
                    reply = reply.reply
                if isinstance(reply, Status):
                    self._send(reply.code, reply.body or {"error": {"message": f"scripted {reply.code}"}})
                elif isinstance(reply, str):
                    self._send(200, chat_completion(reply, body.get("model", "fake")))
                else:
                    self._send(200, reply)

            def _send(self, code: int, payload: dict):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, route: str, replies: list) -> None:
        with self._lock:
            self.scripts[route] = list(replies)

    def _next(self, route: str, body: dict):
        with self._lock:
            self.requests.setdefault(route, []).append(body)
            replies = self.scripts.get(route)
            if not replies:
                return Status(404, {"error": {"message": f"no script for {route}"}})
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
