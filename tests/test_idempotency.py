"""One contract for both idempotency stores: atomic claim, completion, token-checked release, expiry;
memory:// is bounded; redis:// runs against a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from stopline.idempotency import IdempotencyStore, StoreUnavailable, open_store
from stopline.idempotency.memory import MemoryStore

from .conftest import RedisServer


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[IdempotencyStore]:
    if request.param == "memory":
        made = open_store("memory://")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = open_store(server.url)
    yield made
    made.close()


def test_claim_is_atomic_under_contention(store: IdempotencyStore) -> None:
    """32 threads claim one key: exactly one wins, everyone else sees its record."""
    wins: list[str] = []
    barrier = threading.Barrier(32)

    def claim(n: int) -> None:
        barrier.wait()
        if store.claim("k1", {"state": "in_progress", "token": f"t{n}"}, 10) is None:
            wins.append(f"t{n}")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get("k1") == {"state": "in_progress", "token": wins[0]}


def test_complete_release_and_expiry(store: IdempotencyStore) -> None:
    assert store.claim("k2", {"state": "in_progress", "token": "a"}, 10) is None
    store.release("k2", "someone-else")  # a stale holder cannot drop a newer claim
    assert store.get("k2") is not None
    store.release("k2", "a")
    assert store.get("k2") is None
    assert store.claim("k2", {"state": "in_progress", "token": "b"}, 10) is None
    store.complete("k2", {"state": "done", "token": "b", "outcome": "stopped"}, 10)
    assert store.claim("k2", {"state": "in_progress", "token": "c"}, 10) == {
        "state": "done", "token": "b", "outcome": "stopped"}
    assert store.claim("short", {"state": "in_progress", "token": "x"}, 0.2) is None
    time.sleep(0.3)
    assert store.claim("short", {"state": "in_progress", "token": "y"}, 10) is None  # the old claim expired


def test_memory_store_is_bounded() -> None:
    store = MemoryStore(max_entries=100)
    for n in range(1000):
        store.complete(f"k{n}", {"state": "done"}, 60)
    assert len(store) == 100 and store.get("k999") is not None and store.get("k0") is None


def test_redis_down_is_store_unavailable(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url)
    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        store.claim("k", {"state": "in_progress", "token": "t"}, 10)
    store.close()
