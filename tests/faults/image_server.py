"""A loopback OpenAI-compatible image server that misbehaves on cue, for the fault tests of the remote backend.

    with ImageServer() as server:
        server.script([Drip(20), Image(png_bytes)])
        RemoteImageBackend(server.base_url, timeout=1.0)

Each POST to /v1/images/generations or /v1/images/edits takes the next scripted reply (the last one repeats):
- `Image(png)`: a valid answer, `{"data": [{"b64_json": ...}]}`;
- `Json(payload)`: any JSON body with status 200 (e.g. empty data);
- `Status(code, message)`: an HTTP error with an OpenAI-style error body;
- `Garbage(body, content_type, encoding)`: status 200 with a body that is not JSON, e.g. `Garbage(LOGIN_PAGE,
  "text/html")`, what a proxy or a login wall in front of the server sends; with `encoding="gzip"` the
  headers also claim a compression the body does not have;
- `Drip(interval, reply)`: the headers of `reply` (default a valid answer), then its body one byte per interval;
- `Hang()`: reads the request and never answers;
- `Refuse(word, reply)`: HTTP 400 (content policy) for a request whose prompt holds `word`, else `reply`.
`server.hits` counts the requests since the last `script`; handlers stop when the server is closed.
`refused_url()` is a URL on which nothing listens. The server itself is tests/loopback.py's.
"""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass

from loopback import Http, LoopbackServer

LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>...</form></body></html>"


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
    content_type: str = "application/json"
    encoding: str | None = None


@dataclass
class Drip:
    interval: float
    reply: object = None


@dataclass
class Hang:
    pass


@dataclass
class Refuse:
    word: str
    reply: object


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
    raise TypeError(f"not a reply with a body: {reply!r}")


class ImageServer(LoopbackServer):
    def __init__(self, default_png: bytes = b""):
        super().__init__()
        self.default_png = default_png

    def no_script(self, route: str):
        return Status(404, "no script")

    def answer(self, http: Http, route: str, body: dict, reply) -> None:
        if isinstance(reply, Refuse):
            asked = json.dumps(body).lower()
            reply = Status(400, "content policy") if reply.word.lower() in asked else reply.reply
        if isinstance(reply, Hang):
            http.wait()
        elif isinstance(reply, Drip):
            http.drip(*_body(reply.reply or Image(self.default_png)), reply.interval)
        elif isinstance(reply, Status):
            http.error(reply.code, reply.message, "server_error")
        elif isinstance(reply, Garbage):
            headers = {"content-type": reply.content_type}
            if reply.encoding:
                headers["content-encoding"] = reply.encoding
            http.send_bytes(200, reply.body, headers)
        else:
            http.send_bytes(*_body(reply))
