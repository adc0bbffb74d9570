"""The per-instance store: a dict with expiry times, bounded in size.

When full it drops the oldest *finished* records first and never a live claim: evicting one would let a
duplicate through while the first delivery is still calling the cloud. A store full of live claims
refuses new ones (:class:`StoreFull`, answered 503) until some finish or expire.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from stopline.idempotency import StoreFull


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

    def _make_room(self, now: float) -> None:
        """Drop expired or finished entries, oldest first, until one more fits; never a live claim."""
        if len(self._data) < self.max_entries:
            return
        victims = []
        for key, (expires, record) in self._data.items():
            if expires <= now or record.get("state") == "done":
                victims.append(key)
                if len(self._data) - len(victims) < self.max_entries:
                    break
        for key in victims:
            del self._data[key]
        if len(self._data) >= self.max_entries:
            raise StoreFull(f"the memory:// store holds {len(self._data)} claims still in progress "
                            "(STOPLINE_IDEMPOTENCY_MAX_ENTRIES); not calling the cloud without a claim")

    def _put(self, key: str, record: dict[str, Any], ttl_s: float, now: float) -> None:
        if key not in self._data:
            self._make_room(now)
        self._data[key] = (now + ttl_s, dict(record))
        self._data.move_to_end(key)

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            existing = self._live(key, now)
            if existing is not None:
                return dict(existing)
            self._put(key, record, ttl_s, now)
            return None

    def complete(self, key: str, token: str, record: dict[str, Any], ttl_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            existing = self._live(key, now)
            if existing is None or existing.get("token") != token:
                return False
            self._put(key, record, ttl_s, now)
            return True

    def release(self, key: str, token: str) -> bool:
        with self._lock:
            existing = self._live(key, time.monotonic())
            if existing is not None and existing.get("token") == token:
                del self._data[key]
                return True
            return False

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._live(key, time.monotonic())
            return dict(found) if found is not None else None

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass
