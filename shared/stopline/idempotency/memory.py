"""The per-instance store: a dict with expiry times, bounded in size (oldest entries dropped first)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class MemoryStore:
    remote = False

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def _live(self, key: str, now: float) -> dict[str, Any] | None:
        found = self._data.get(key)
        if found is None:
            return None
        if found[0] <= now:
            del self._data[key]
            return None
        return found[1]

    def _put(self, key: str, record: dict[str, Any], ttl_s: float, now: float) -> None:
        self._data[key] = (now + ttl_s, dict(record))
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            existing = self._live(key, now)
            if existing is not None:
                return dict(existing)
            self._put(key, record, ttl_s, now)
            return None

    def complete(self, key: str, record: dict[str, Any], ttl_s: float) -> None:
        with self._lock:
            self._put(key, record, ttl_s, time.monotonic())

    def release(self, key: str, token: str) -> None:
        with self._lock:
            found = self._data.get(key)
            if found is not None and found[1].get("token") == token:
                del self._data[key]

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._live(key, time.monotonic())
            return dict(found) if found is not None else None

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass
