"""A scripted OpenAI-compatible server on loopback, for driving the real `openai` client in tests.

    with FakeOpenAI() as server:
        server.script("/v1/chat/completions", ['{"shots": []}', Status(500), Delay(5)])
        settings.llm_base_url = server.base_url     # http://127.0.0.1:PORT/v1

Each request to a route takes the next scripted reply (the last one repeats when the script runs out):
- `str`: the assistant message content of a chat completion;
- `dict`: returned as the JSON body as it is (e.g. an images response);
- `Status(code, body)`: an HTTP error;
- `Delay(seconds, reply)`: waits, then answers `reply` (drives client timeouts).
Every request body is recorded in `server.requests[route]`. The server itself is tests/loopback.py's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from loopback import Http, LoopbackServer


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


class FakeOpenAI(LoopbackServer):
    protocol_version = "HTTP/1.0"

    def __init__(self):
        super().__init__()
        self.requests: dict[str, list[dict]] = {}

    def script(self, route: str, replies: list) -> None:  # type: ignore[override]
        super().script(replies, route)

    def record(self, route: str, body: dict) -> None:
        self.requests.setdefault(route, []).append(body)

    def no_script(self, route: str):
        return Status(404, {"error": {"message": f"no script for {route}"}})

    def answer(self, http: Http, route: str, body: dict, reply) -> None:
        while isinstance(reply, Delay):
            if http.wait(reply.seconds):
                return
            reply = reply.reply
        if isinstance(reply, Status):
            http.send_json(reply.code, reply.body or {"error": {"message": f"scripted {reply.code}"}})
        elif isinstance(reply, str):
            http.send_json(200, chat_completion(reply, body.get("model", "fake")))
        else:
            http.send_json(200, reply)
