"""A loopback OpenAI-compatible chat server that behaves as real local servers do, for tests of tools/llm.py.

    with ChatServer() as server:
        server.script([Status(400, "response_format json_schema is not supported"), Reply('{"n": 1}')])
        Chat(Endpoint(base_url=server.base_url, model="m"))

Each request to /v1/chat/completions takes the next scripted reply (the last one repeats when the script runs out):
- `str` or `Reply(content, finish_reason, usage)`: a chat completion;
- `Status(code, message)`: an HTTP error with an OpenAI-style error body;
- `Delay(seconds, reply)`: waits, then answers `reply`;
- `Drip(interval)`: sends the headers of a valid answer, then its body one byte every `interval` seconds.
Every request body is recorded in `server.requests`; handlers stop when the server is closed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str
    finish_reason: str = "stop"
    usage: dict | None = field(
        default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    )


@dataclass
class Status:
    code: int
    message: str = "scripted error"


@dataclass
class Delay:
    seconds: float
    reply: object = "{}"


@dataclass
class Drip:
    interval: float
    content: str = '{"n": 1}'


def completion(reply: Reply, model: str) -> dict:
    body = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": reply.finish_reason,
                "message": {"role": "assistant", "content": reply.content},
            }
        ],
    }
    if reply.usage is not None:
        body["usage"] = reply.usage
    return body


class ChatServer:
    def __init__(self):
        self.replies: list = []
        self.requests: list[dict] = []
        self.closed = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                body = json.loads(raw or b"{}")
                reply = server._next(body)
                model = body.get("model", "loopback")
                while isinstance(reply, Delay):
                    if server.closed.wait(reply.seconds):
                        return
                    reply = reply.reply
                try:
                    if isinstance(reply, Status):
                        self._send(
                            reply.code, {"error": {"message": reply.message, "type": "invalid_request"}}
                        )
                    elif isinstance(reply, Drip):
                        self._drip(
                            json.dumps(completion(Reply(reply.content), model)).encode(), reply.interval
                        )
                    else:
                        reply = reply if isinstance(reply, Reply) else Reply(str(reply))
                        self._send(200, completion(reply, model))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what timeout tests make happen

            def _send(self, code: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, data: bytes, interval: float):
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
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

    def _next(self, body: dict):
        with self._lock:
            self.requests.append(body)
            if not self.replies:
                return Status(404, "no script")
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()
