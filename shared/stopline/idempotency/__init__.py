"""Exactly-once bookkeeping (docs/exactly-once.md), owned by one component.

:class:`~stopline.idempotency.handler.Idempotency` holds the whole protocol -- claim, wait for a twin,
replay, release, complete -- and the stores only keep records: ``memory://`` per instance, and Redis
(single server, TLS, Cluster, Sentinel) shared. A record (:class:`~stopline.idempotency.handler.Record`)
is ``{"state": "in_progress" | "done", "hash": <command hash>, "token": <the claiming delivery's token>,
"expires": <epoch s>, "result": {...}}``.

Every write after the claim is *fenced*: ``complete`` and ``release`` change a key only while it still
holds the caller's token, so a delivery whose lease ran out (and was taken over) changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from stopline.errors import ConfigurationError

MAX_PLAIN_KEY = 200
"""Longer keys are stored by their SHA-256, so one key costs a bounded amount of memory."""


class StoreUnavailable(Exception):
    """The store cannot be reached; the pipeline answers 503 rather than risk a second call."""


class StoreFull(StoreUnavailable):
    """``memory://`` holds only live claims and no room is left: 503, never an evicted claim."""


class IdempotencyStore(Protocol):
    remote: bool

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        """Create ``record`` under ``key`` unless one exists; return the existing one, or None if created."""
        ...

    def get(self, key: str) -> dict[str, Any] | None: ...

    def complete(self, key: str, token: str, record: dict[str, Any], ttl_s: float) -> bool:
        """Store the finished ``record`` if the key still holds ``token``; False when the lease was lost."""
        ...

    def release(self, key: str, token: str) -> bool:
        """Delete the claim if it still carries ``token`` (a newer claim is left alone); True if deleted."""
        ...

    def takeover(self, key: str, state: str, record: dict[str, Any], ttl_s: float) -> bool:
        """Replace the record under ``key`` with ``record`` if its state is ``state`` (a pending command's
        retry claims it this way); False when it is gone or in another state."""
        ...

    # -- pending retries: one queue per store, ordered by when each is due --
    def add_retry(self, item_id: str, item: dict[str, Any], due: float) -> None:
        """Keep ``item`` until dropped, due at ``due`` (epoch seconds); the same id replaces it."""
        ...

    def take_retries(self, now: float, limit: int, hold_s: float) -> list[dict[str, Any]]:
        """Up to ``limit`` items due by ``now``, atomically held for ``hold_s`` (made due again only then), so
        two takers never take one item at once."""
        ...

    def drop_retry(self, item_id: str) -> None: ...

    def list_retries(self) -> list[tuple[float, dict[str, Any]]]:
        """Every pending item and when it is due, soonest first."""
        ...

    def close(self) -> None: ...


def store_key(prefix: str, parts: tuple[str, ...]) -> str:
    """The store key for a namespaced id: JSON-encoded parts (so no id can imitate another's separator),
    by SHA-256 when long."""
    body = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    if len(body) > MAX_PLAIN_KEY:
        body = "sha256:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
    return prefix + body


def open_store(url: str, *, max_entries: int = 100_000, protect_s: float = 0.0,
               prefix: str = "stopline:") -> IdempotencyStore:
    """The store for ``STOPLINE_IDEMPOTENCY_URL``; redis-py is imported only when asked for.

    Raises:
        ConfigurationError: the URL cannot be used; the message names the variable, never the value
            (it may hold a password).
    """
    if url.startswith("memory://"):
        from stopline.idempotency.memory import MemoryStore

        return MemoryStore(max_entries=max_entries, protect_s=protect_s)
    from stopline.idempotency.redis import RedisStore

    try:
        return RedisStore(url, prefix=prefix)
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigurationError(
            f"STOPLINE_IDEMPOTENCY_URL is not a usable store URL ({type(exc).__name__}); expected memory://, "
            "redis://[:password@]host:port/db, rediss://..., redis+cluster://host:port[,host:port], "
            "rediss+cluster://... or redis+sentinel://host:port[,host:port]/service[/db]") from None
