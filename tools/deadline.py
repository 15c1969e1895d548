"""Total deadlines for HTTP requests: connect, first byte and the whole body, whatever the server does.

    client = httpx2.Client(transport=deadline_transport())
    with deadline(30):            # this thread's requests inside the block end by then, or raise a timeout
        client.post(...)

httpx's timeouts bound each socket operation, so a server that sends one byte within every read timeout holds
a request forever. The transport's network backend sees every read and write; there each wait is cut to the
time left before the deadline of the current context, and a wait past it raises httpx's timeout error
(`openai.APITimeoutError` behind the openai client). Outside a `deadline` block only httpx's own timeouts apply.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_DEADLINE: ContextVar[float | None] = ContextVar("cd_request_deadline", default=None)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The socket timeout for one read/write: never past the request's total deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


def deadline_transport():
    """An httpx2 transport whose every socket wait stops at the deadline of the request in progress.

    httpx's own timeouts bound each read, so a server sending one byte within each read timeout never times out;
    the pool's network backend is where every read and write passes, so the deadline is checked there.
    """
    import httpcore2
    import httpx2

    class DeadlineStream(httpcore2.NetworkStream):
        def __init__(self, inner):
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _left(timeout, httpcore2.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _left(timeout, httpcore2.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            inner = self._inner.start_tls(
                ssl_context, server_hostname, _left(timeout, httpcore2.ConnectTimeout)
            )
            return DeadlineStream(inner)

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class DeadlineBackend(httpcore2.NetworkBackend):
        def __init__(self):
            self._inner = httpcore2.SyncBackend()

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            timeout = _left(timeout, httpcore2.ConnectTimeout)
            return DeadlineStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            timeout = _left(timeout, httpcore2.ConnectTimeout)
            return DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    transport = httpx2.HTTPTransport()
    transport._pool.close()
    # HTTPTransport takes no network backend; its pool does, so the pool is rebuilt with ours.
    transport._pool = httpcore2.ConnectionPool(
        ssl_context=httpx2.create_ssl_context(), network_backend=DeadlineBackend()
    )
    return transport


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Requests made in this context (thread) through a `deadline_transport` end within `seconds`."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
