"""Chats kept per endpoint, for a call a run makes many times (the VLM critic judges every take): one client and
the structured mode the endpoint was found to take, instead of a new client, and a new negotiation, per take.

    chat = CHATS.get(endpoint, flags="vlm")      # the same Chat for the same endpoint config

Keyed by the whole endpoint config (the key by its hash, never its text), so a run with another timeout, model or
key gets its own Chat. A Chat dropped from a full pool is not closed: another thread may be using it, and its
client closes when it is collected.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from tools.llm import Chat, Endpoint


class ChatPool:
    """At most `size` Chats, the least recently used dropped first."""

    def __init__(self, size: int = 8):
        self.size = size
        self._chats: OrderedDict[str, Chat] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(endpoint: Endpoint, flags: str) -> str:
        secret = endpoint.api_key.get_secret_value() if endpoint.api_key else ""
        digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
        return f"{flags}|{digest}|{endpoint.model_dump_json(exclude={'api_key'})}"

    def get(self, endpoint: Endpoint, *, flags: str = "llm") -> Chat:
        key = self.key(endpoint, flags)
        with self._lock:
            chat = self._chats.pop(key, None) or Chat(endpoint, flags=flags)
            self._chats[key] = chat
            while len(self._chats) > self.size:
                self._chats.popitem(last=False)
            return chat


CHATS = ChatPool()
