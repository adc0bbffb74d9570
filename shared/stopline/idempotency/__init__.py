"""Exactly-once bookkeeping: claim a key before calling the cloud, record the result after.

A store keeps, per key, a record ``{"state": "in_progress" | "done", "hash": <command hash>, ...}``.
:meth:`IdempotencyStore.claim` is atomic: it either creates the in-progress record (the caller may go
ahead) or returns the existing one (the caller must not call the cloud). ``complete`` stores the first
result for the TTL; ``release`` drops a claim after a transient failure so a redelivery runs anew.
An in-progress claim lives only ``claim_ttl`` seconds, so a process killed mid-call never blocks its
key for long. Backends: ``memory://`` (per instance) and ``redis://`` (shared), chosen by URL.
"""

from __future__ import annotations

from typing import Any, Protocol


class StoreUnavailable(Exception):
    """The store cannot be reached; the pipeline answers 503 rather than risk a second call."""


class IdempotencyStore(Protocol):
    remote: bool

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        """Create ``record`` under ``key`` unless one exists; return the existing one, or None if created."""
        ...

    def complete(self, key: str, record: dict[str, Any], ttl_s: float) -> None: ...

    def release(self, key: str, token: str) -> None:
        """Delete the claim if it still carries ``token`` (a newer claim is left alone)."""
        ...

    def get(self, key: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def open_store(url: str, *, max_entries: int = 100_000) -> IdempotencyStore:
    """The store for ``STOPLINE_IDEMPOTENCY_URL``; the redis client is imported only when asked for."""
    if url.startswith("memory://"):
        from stopline.idempotency.memory import MemoryStore

        return MemoryStore(max_entries=max_entries)
    from stopline.idempotency.redis import RedisStore

    return RedisStore(url)
