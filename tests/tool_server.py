"""A loopback OpenAI-compatible chat server that answers with scripted tool calls, for the chat agent's tests.

    with ToolServer() as server:
        server.script([Calls(("revise_shot", {"shots": [3], "kind": "close-up"})), "Done."])

Each request to /v1/chat/completions takes the next scripted reply (the last one repeats when the script runs out):
- `str`: an assistant message in words;
- `Calls((name, arguments), ...)`: an assistant message with tool calls; `arguments` is a dict (sent as JSON) or
  a str sent as it is (to send malformed JSON);
- `Status(code, message)`: an HTTP error with an OpenAI-style error body.
Every request body is recorded in `server.requests`. `close()` stops it as a crashed server stops: nothing
listens, kept-alive connections are dropped. The server itself is tests/loopback.py's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from loopback import Http, LoopbackServer


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


class ToolServer(LoopbackServer):
    def no_script(self, route: str):
        return Status(404, "no script")

    def answer(self, http: Http, route: str, body: dict, reply) -> None:
        if isinstance(reply, Status):
            http.error(reply.code, reply.message)
            return
        message = _message(reply)
        http.send_json(
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
