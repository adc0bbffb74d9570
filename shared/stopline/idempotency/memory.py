"""The per-instance store: a dict with expiry times, bounded in size.

When full it drops the oldest *finished* records first, and never a live claim nor a record younger than
``protect_s`` (the signature window, ``STOPLINE_WEBHOOK_TOLERANCE_S``): evicting either would let a
duplicate -- or a replay of a request whose signature is still valid -- call the cloud a second time. A
store with no room left refuses new claims (:class:`StoreFull`, answered 503) until some expire.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from stopline.idempotency import StoreFull


class MemoryStore:
    remote = False

    def __init__(self, *, max_entries: int = 100_000, protect_s: float = 0.0) -> None:
        self._data: OrderedDict[str, tuple[float, dict[str, Any], float]] = OrderedDict()
        """key -> (expires, record, written); oldest write first."""
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.protect_s = protect_s
        self._retries: dict[str, tuple[float, dict[str, Any]]] = {}
        """Pending retries, never evicted: they live as long as the process (docs/operations.md)."""

    def _live(self, key: str, now: float) -> dict[str, Any] | None:
        found = self._data.get(key)
        if found is None:
            return None
        if found[0] <= now:
            del self._data[key]
            return None
        return found[1]

    def _make_room(self, now: float) -> None:
        """Drop expired entries, then finished ones written before the protected window, oldest first,
        until one more fits; never a live claim."""
        if len(self._data) < self.max_entries:
            return
        victims = []
        protected_since = now - self.protect_s
        for key, (expires, record, written) in self._data.items():
            if expires <= now or (record.get("state") == "done" and written <= protected_since):
                victims.append(key)
                if len(self._data) - len(victims) < self.max_entries:
                    break
        for key in victims:
            del self._data[key]
        if len(self._data) >= self.max_entries:
            raise StoreFull(f"the memory:// store is full ({len(self._data)} claims in progress or results "
                            f"younger than the {self.protect_s:g} s signature window; "
                            "STOPLINE_IDEMPOTENCY_MAX_ENTRIES); not calling the cloud without a claim")

    def _put(self, key: str, record: dict[str, Any], ttl_s: float, now: float) -> None:
        if key not in self._data:
            self._make_room(now)
        self._data[key] = (now + ttl_s, dict(record), now)
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

    def takeover(self, key: str, state: str, record: dict[str, Any], ttl_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            existing = self._live(key, now)
            if existing is None or existing.get("state") != state:
                return False
            self._put(key, record, ttl_s, now)
            return True

    def add_retry(self, item_id: str, item: dict[str, Any], due: float) -> None:
        with self._lock:
            self._retries[item_id] = (due, dict(item))

    def take_retries(self, now: float, limit: int, hold_s: float) -> list[dict[str, Any]]:
        with self._lock:
            due = sorted((at, item_id) for item_id, (at, _) in self._retries.items() if at <= now)[:limit]
            taken = []
            for _, item_id in due:
                _, item = self._retries[item_id]
                self._retries[item_id] = (now + hold_s, item)
                taken.append(dict(item))
            return taken

    def drop_retry(self, item_id: str) -> None:
        with self._lock:
            self._retries.pop(item_id, None)

    def list_retries(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return sorted(((at, dict(item)) for at, item in self._retries.values()), key=lambda pair: pair[0])

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._live(key, time.monotonic())
            return dict(found) if found is not None else None

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass
