"""Who is calling: Bearer API keys (hashed in memory, compared in constant time) and per-key rate limits.

A key is read from `Authorization: Bearer KEY` (what OpenAI clients send) or, for the studio in a browser, from
the `cd_key` cookie that `POST /v1/session` sets (an EventSource and a <video> cannot send headers). The owner of
a film is the key's hash prefix: the key itself is never stored. Without keys the server runs only on loopback
with an explicit `--no-auth`; every caller is then the owner "local".
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import threading
import time
from pathlib import Path

from fastapi import HTTPException, Request

from tools.errors import SettingsError

COOKIE = "cd_key"
LOCAL = "local"
MAX_KEY = 512


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def read_keys(path: str | None, env: str | None = None) -> list[str]:
    """Keys from a file (one per line; blank lines and # comments skipped) and CD_API_KEYS (comma separated)."""
    keys: list[str] = []
    if path:
        p = Path(path)
        if not p.is_file():
            raise SettingsError(f"--api-keys {path}: no such file; give a file with one key per line")
        keys += [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    env = os.environ.get("CD_API_KEYS", "") if env is None else env
    keys += [k.strip() for k in env.split(",")]
    keys = [k for k in keys if k and not k.startswith("#")]
    short = [k for k in keys if len(k) < 16]
    if short:
        raise SettingsError(f"{len(short)} API key(s) shorter than 16 characters; use long random keys")
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_auth_choice(host: str, keys: list[str], no_auth: bool) -> None:
    """The server refuses to start open to the network, or with no way in."""
    if no_auth and not is_loopback(host):
        raise SettingsError(f"--no-auth is only allowed on a loopback host (127.0.0.1), not {host}")
    if not no_auth and not keys:
        raise SettingsError(
            "no API keys: give --api-keys FILE (one key per line) or CD_API_KEYS, or --no-auth on 127.0.0.1"
        )


class Keys:
    """The hashes of the accepted keys; `owner(key)` is the caller's identity, or None."""

    def __init__(self, keys: list[str], enabled: bool = True):
        self._hashes = [_hash(k) for k in keys]
        self.enabled = enabled

    def owner(self, key: str | None) -> str | None:
        if not key or len(key) > MAX_KEY:
            return None
        h = _hash(key)
        found = None
        for known in self._hashes:  # every hash is compared, so the time does not say which one matched
            if hmac.compare_digest(h, known):
                found = known
        return found.hex()[:24] if found else None


class RateLimit:
    """A token bucket per owner: `per_minute` requests, bursts up to the same number."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, owner: str) -> float:
        """0 when the request may go on; else seconds until it may (the Retry-After)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(owner, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[owner] = (tokens - 1, now)
                return 0.0
            self._buckets[owner] = (tokens, now)
            return (1 - tokens) / self.rate


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE)


def too_many(seconds: float, what: str) -> HTTPException:
    return HTTPException(
        status_code=429,
        detail=f"{what}; try again in {math.ceil(seconds)} s",
        headers={"Retry-After": str(max(1, math.ceil(seconds)))},
    )


async def caller(request: Request) -> str:
    """The FastAPI dependency on every route: the owner, or 401; then the owner's rate limit, or 429.

    A coroutine on purpose: a few microseconds of hashing on the event loop, where a plain function would be
    sent to the thread pool and back (a thread wake-up each way, which on a loaded machine waits for a CPU)."""
    return identify(request)


def identify(request: Request) -> str:
    """`caller` as a plain function, for code that is not a dependency."""
    keys: Keys = request.app.state.keys
    if not keys.enabled:
        owner = LOCAL
    else:
        owner = keys.owner(bearer(request))
        if owner is None:
            raise HTTPException(
                status_code=401,
                detail="missing or wrong API key: send Authorization: Bearer KEY",
                headers={"WWW-Authenticate": "Bearer"},
            )
    wait = request.app.state.rate.take(owner)
    if wait:
        raise too_many(wait, "too many requests for this key")
    return owner
