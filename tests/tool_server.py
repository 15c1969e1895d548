"""A loopback OpenAI-compatible chat server that answers with scripted tool calls, for the chat agent's tests.

    with ToolServer() as server:
        server.script([Calls(("revise_shot", {"shots": [3], "kind": "close-up"})), "Done."])

Each request to /v1/chat/completions takes the next scripted reply (the last one repeats when the script runs out):
- `str`: an assistant message in words;
- `Calls((name, arguments), ...)`: an assistant message with tool calls; `arguments` is a dict (sent as JSON) or
  a str sent as it is (to send malformed JSON);
- `Status(code, message)`: an HTTP error with an OpenAI-style error body.
Every request body is recorded in `server.requests`. `close()` stops it as a crashed server stops: nothing listens, kept-alive connections are dropped.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Calls:
    def __init__(self, *calls: tuple[str, dict | str]):
        self.calls = calls


@dataclass
class Status:
    code: int
    message: str = "scripted error"


def _message(reply) -> dict:
    if isinstance(reply, Calls):
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                    },
                }
                for i, (name, args) in enumerate(reply.calls)
            ],
        }
    return {"role": "assistant", "content": str(reply)}


class ToolServer:
    def __init__(self):
        self.replies: list = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self.closed = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                if server.closed.is_set():  # a kept-alive connection of a server that went down
                    self.close_connection = True
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                reply = server._next(body)
                if isinstance(reply, Status):
                    self._send(reply.code, {"error": {"message": reply.message, "type": "invalid_request"}})
                    return
                message = _message(reply)
                self._send(
                    200,
                    {
                        "id": "chatcmpl-tools",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "loopback"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                                "message": message,
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )

            def _send(self, code: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._open = False

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

    def __enter__(self) -> ToolServer:
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
