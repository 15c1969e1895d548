"""A loopback OpenAI-compatible chat server that behaves as real local servers do, for tests of tools/llm.py.

    with ChatServer() as server:
        server.script([Status(400, "response_format json_schema is not supported"), Reply('{"n": 1}')])
        Chat(Endpoint(base_url=server.base_url, model="m"))

Each request to /v1/chat/completions takes the next scripted reply (the last one repeats when the script runs out):
- `str` or `Reply(content, finish_reason, usage)`: a chat completion;
- `Status(code, message)`: an HTTP error with an OpenAI-style error body;
- `Delay(seconds, reply)`: waits, then answers `reply`;
- `Drip(interval)`: sends the headers of a valid answer, then its body one byte every `interval` seconds.
Every request body is recorded in `server.requests`; handlers stop when the server is closed. The server itself
is tests/loopback.py's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from loopback import Http, LoopbackServer


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


class ChatServer(LoopbackServer):
    def no_script(self, route: str):
        return Status(404, "no script")

    def answer(self, http: Http, route: str, body: dict, reply) -> None:
        model = body.get("model", "loopback")
        while isinstance(reply, Delay):
            if http.wait(reply.seconds):
                return
            reply = reply.reply
        if isinstance(reply, Status):
            http.error(reply.code, reply.message)
        elif isinstance(reply, Drip):
            http.drip(200, json.dumps(completion(Reply(reply.content), model)).encode(), reply.interval)
        else:
            http.send_json(200, completion(reply if isinstance(reply, Reply) else Reply(str(reply)), model))
