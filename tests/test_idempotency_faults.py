"""The exactly-once protocol when the store misbehaves, on memory:// and a real redis-server: claims whose
reply was lost (ghosts, released by their own process), a Redis that stalls, an outage with concurrent
deliveries, a full memory store inside the signature window, and a duplicate that waited keeping its own
deadline."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from stopline.deadline import CLAIM_MARGIN_S, Deadline
from stopline.errors import Transient
from stopline.idempotency import IdempotencyStore, StoreUnavailable, open_store
from stopline.idempotency.handler import Idempotency
from stopline.idempotency.memory import MemoryStore
from stopline.models import Outcome, Result

from .conftest import RedisServer
from .functions.harness import wait_until
from .idempotency_support import Calls, run


class Forwarding:
    """The pending-retry queue of a wrapped store, passed through untouched."""

    inner: IdempotencyStore

    def takeover(self, key: str, state: str, record: dict[str, Any], ttl_s: float) -> bool:
        return self.inner.takeover(key, state, record, ttl_s)

    def add_retry(self, item_id: str, item: dict[str, Any], due: float) -> None:
        self.inner.add_retry(item_id, item, due)

    def take_retries(self, now: float, limit: int, hold_s: float) -> list[dict[str, Any]]:
        return self.inner.take_retries(now, limit, hold_s)

    def drop_retry(self, item_id: str) -> None:
        self.inner.drop_retry(item_id)

    def list_retries(self) -> list[tuple[float, dict[str, Any]]]:
        return self.inner.list_retries()


class LostReplies(Forwarding):
    """A real store whose next ``n`` claims are written but whose replies are lost, like a Redis that
    ran the SET NX after the client's socket timed out."""

    def __init__(self, inner: IdempotencyStore, n: int) -> None:
        self.inner, self.n, self.remote = inner, n, inner.remote

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        found = self.inner.claim(key, record, ttl_s)
        if self.n > 0:
            self.n -= 1
            raise StoreUnavailable("idempotency store unreachable (TimeoutError)")
        return found

    def get(self, key: str) -> dict[str, Any] | None:
        return self.inner.get(key)

    def complete(self, key: str, token: str, record: dict[str, Any], ttl_s: float) -> bool:
        return self.inner.complete(key, token, record, ttl_s)

    def release(self, key: str, token: str) -> bool:
        return self.inner.release(key, token)

    def close(self) -> None:
        self.inner.close()


def test_a_ghost_claim_is_released_by_its_own_process(store: IdempotencyStore) -> None:
    """Defect 8: the claim landed but its reply was lost. The delivery answers 503; the process that knows
    the token releases the ghost in the background, so another instance's redelivery runs at once."""
    idem = Idempotency(LostReplies(store, 1), ttl_s=60, wait_s=5)
    calls = Calls()
    with pytest.raises(Transient):
        run(idem, calls, lease_s=120)
    assert wait_until(lambda: store.get("k") is None, timeout=30)  # released long before the 120 s lease
    elsewhere = Idempotency(store, ttl_s=60, wait_s=5)
    assert run(elsewhere, calls)["outcome"] == "stopped" and calls.runs == 1


def test_a_redelivery_to_the_same_process_reclaims_its_ghost(store: IdempotencyStore) -> None:
    lossy = LostReplies(store, 1)
    idem = Idempotency(lossy, ttl_s=60, wait_s=5)
    with pytest.raises(Transient):
        run(idem, Calls(), lease_s=120)
    calls = Calls()
    assert run(idem, calls)["outcome"] == "stopped" and calls.runs == 1


def test_redis_debug_sleep_leaves_no_ghost(redis_server: RedisServer) -> None:
    """The defect as found: a Redis stall longer than the socket timeout (2 s) answers 503, then Redis runs
    the queued SET NX. The ghost is released once Redis answers again, not after the lease."""
    store = open_store(redis_server.url)
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    stalled = redis.Redis.from_url(redis_server.url)
    sleeper = threading.Thread(target=lambda: stalled.execute_command("DEBUG", "SLEEP", "3"))  # type: ignore[no-untyped-call]
    sleeper.start()
    time.sleep(0.2)
    calls = Calls()
    with pytest.raises(Transient):
        run(idem, calls, lease_s=135)
    sleeper.join()
    probe = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: bool(probe.exists("k")), timeout=2)  # the stalled SET NX lands (or was already released)
    assert wait_until(lambda: not probe.exists("k"), timeout=30)  # released long before the 135 s lease
    assert run(Idempotency(open_store(redis_server.url), ttl_s=60, wait_s=5), calls)["outcome"] == "stopped"
    assert calls.runs == 1
    probe.close()
    store.close()


def test_a_duplicate_that_waited_keeps_its_own_deadline(store: IdempotencyStore) -> None:
    """Waiting never buys a fresh lease: the twin's delivery fails transiently after 0.6 s; the duplicate,
    whose own deadline is 1 s from its arrival, then runs with that deadline, and its claim expires 5 s
    after it -- not 5 s after the moment it claimed."""
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    flaky = Calls(sleep_s=0.6, outcome="transient")
    starter = threading.Thread(target=lambda: run(idem, flaky, lease_s=60))
    starter.start()
    time.sleep(0.1)
    own = Deadline.after(1.0)
    seen: list[dict[str, Any] | None] = []

    def second(deadline: Deadline) -> Result:
        seen.append(store.get("k"))
        return Calls()(deadline)

    result = idem.run("k", "h", own, second)
    starter.join()
    assert result.outcome is Outcome.STOPPED and not result.replayed
    assert flaky.runs == 1 and len(seen) == 1
    claim = seen[0]
    assert claim is not None and claim["state"] == "in_progress"
    # the claim's expiry, in wall-clock seconds, is the duplicate's own deadline + 5 s
    expected = time.time() + (own.at - time.monotonic()) + CLAIM_MARGIN_S
    assert abs(claim["expires"] - expected) < 0.25


class Outage(Forwarding):
    """A real store behind a switch: while ``down``, claims land but their replies are lost and every
    other call fails, as during a Redis failover. Counts calls per thread."""

    def __init__(self, inner: IdempotencyStore) -> None:
        self.inner, self.remote, self.down = inner, inner.remote, False
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def _count(self) -> None:
        name = threading.current_thread().name
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        if self.down:
            raise StoreUnavailable("idempotency store unreachable (ConnectionError)")

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        if self.down:
            self.inner.claim(key, record, ttl_s)
        self._count()
        return self.inner.claim(key, record, ttl_s)

    def get(self, key: str) -> dict[str, Any] | None:
        self._count()
        return self.inner.get(key)

    def complete(self, key: str, token: str, record: dict[str, Any], ttl_s: float) -> bool:
        self._count()
        return self.inner.complete(key, token, record, ttl_s)

    def release(self, key: str, token: str) -> bool:
        self._count()
        return self.inner.release(key, token)

    def close(self) -> None:
        self.inner.close()


def test_after_an_outage_only_the_sweeper_releases_ghosts(store: IdempotencyStore) -> None:
    """200 deliveries during an outage leave 200 ghost claims. When the store recovers, 16 concurrent
    requests make only their own calls (claim and complete): releasing the ghosts is the one background
    sweeper's work, not every request thread's."""
    outage = Outage(store)
    idem = Idempotency(outage, ttl_s=60, wait_s=5)
    outage.down = True
    for n in range(200):
        with pytest.raises(Transient):
            run(idem, Calls(), key=f"ghost-{n}", lease_s=300)
    outage.down = False
    outage.calls.clear()
    go = threading.Barrier(16)

    def request(n: int) -> Any:
        go.wait()
        return run(idem, Calls(), key=f"fresh-{n}")

    threads = [threading.Thread(target=request, args=(n,), name=f"request-{n}") for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_requests = sum(count for name, count in outage.calls.items() if name.startswith("request-"))
    assert by_requests == 16 * 2  # one claim and one complete each
    assert wait_until(lambda: all(store.get(f"ghost-{n}") is None for n in range(200)), timeout=30)


def test_a_full_memory_store_keeps_results_inside_the_signature_window() -> None:
    """At its cap, memory:// evicts no finished record younger than the signature window: a replay of a
    request whose signature is still valid is a duplicate, and a new delivery gets 503 instead."""
    store = MemoryStore(max_entries=100, protect_s=300)
    idem = Idempotency(store, ttl_s=3600, wait_s=5)
    calls = Calls()
    for n in range(100):
        run(idem, calls, key=f"k{n}")
    with pytest.raises(Transient, match="full"):
        run(idem, calls, key="one-more")
    assert run(idem, calls, key="k0") == {"outcome": "duplicate", "first": "stopped"}
    assert calls.runs == 100
    old = MemoryStore(max_entries=100, protect_s=0.05)
    aged = Idempotency(old, ttl_s=3600, wait_s=5)
    for n in range(100):
        run(aged, calls, key=f"k{n}")
    time.sleep(0.1)  # outside the window now: the oldest finished record makes room
    assert run(aged, calls, key="one-more")["outcome"] == "stopped"
