"""Computed answers kept for requests that repeat: the encoded JSON body and its result signature.

An answer is a pure function of the request body (the catalog and the library are part of the installed
package), so the same body gets the same bytes; what it costs is charged on every request all the same. Answers
that read this machine's GPUs ("local") are never kept. Bounded by entries and by bytes, least recently used out
first; safe to use from the server's threads.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 4096
MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class Answer:
    body: bytes  # the JSON answer, cost_tokens included, encoded as Starlette's JSONResponse would
    signature: str  # Vram-Result-Signature


def encode(content: dict[str, Any]) -> bytes:
    """The bytes JSONResponse would send for `content`."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class Answers:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: dict[tuple[str, str], Answer] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> Answer | None:
        with self._lock:
            hit = self._items.pop(key, None)
            if hit is None:
                self.misses += 1
                return None
            self._items[key] = hit  # most recently used last
            self.hits += 1
            return hit

    def put(self, key: tuple[str, str], answer: Answer) -> None:
        size = len(answer.body) + len(key[1])
        if size > self.max_bytes // 16:  # one huge answer must not push out everything else
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body) + len(key[1])
            self._items[key] = answer
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                k = next(iter(self._items))
                self._bytes -= len(self._items.pop(k).body) + len(k[1])

    def __len__(self) -> int:
        return len(self._items)
