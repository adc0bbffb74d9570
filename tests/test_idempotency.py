"""The exactly-once protocol (docs/exactly-once.md) on both stores: memory:// and a real
redis-server. Store contract first (atomic claim, fenced complete/release, expiry, bounded memory), then
the protocol of :class:`Idempotency` (twins, conflicts while waiting, release on transient failures and
on exceptions, lease takeover), then the URL errors. Lost replies, ghost claims and outages:
tests/test_idempotency_faults.py."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from stopline.deadline import Deadline
from stopline.errors import ConfigurationError, Conflict, InProgress
from stopline.idempotency import IdempotencyStore, StoreFull, StoreUnavailable, open_store, store_key
from stopline.idempotency.handler import Idempotency
from stopline.idempotency.memory import MemoryStore
from stopline.models import Outcome, Result

from .conftest import LogCapture, RedisServer
from .idempotency_support import Calls, run


def in_progress(token: str, fingerprint: str = "h") -> dict[str, Any]:
    return {"state": "in_progress", "hash": fingerprint, "token": token}


# -- the store contract ----------------------------------------------------------------------------------
def test_claim_is_atomic_under_contention(store: IdempotencyStore) -> None:
    """32 threads claim one key: exactly one wins, everyone else sees its record."""
    wins: list[str] = []
    barrier = threading.Barrier(32)

    def claim(n: int) -> None:
        barrier.wait()
        if store.claim("k1", in_progress(f"t{n}"), 10) is None:
            wins.append(f"t{n}")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get("k1") == in_progress(wins[0])


def test_complete_and_release_are_fenced_by_the_token(store: IdempotencyStore) -> None:
    assert store.claim("k2", in_progress("a"), 10) is None
    assert store.release("k2", "someone-else") is False  # a stale holder cannot drop a newer claim
    assert store.complete("k2", "someone-else", {"state": "done", "token": "someone-else"}, 10) is False
    assert store.get("k2") == in_progress("a")
    assert store.complete("k2", "a", {"state": "done", "hash": "h", "token": "a", "result": {"n": 1}}, 10)
    assert store.claim("k2", in_progress("c"), 10) == {"state": "done", "hash": "h", "token": "a",
                                                        "result": {"n": 1}}
    assert store.claim("k3", in_progress("x"), 10) is None
    assert store.release("k3", "x") is True and store.get("k3") is None


def test_a_late_complete_after_expiry_and_takeover_changes_nothing(store: IdempotencyStore) -> None:
    assert store.claim("short", in_progress("old"), 0.2) is None
    time.sleep(0.3)
    assert store.complete("short", "old", {"state": "done", "token": "old"}, 10) is False  # nothing to fence
    assert store.claim("short", in_progress("new"), 10) is None  # the old claim expired: taken over
    assert store.complete("short", "old", {"state": "done", "token": "old"}, 10) is False
    assert store.release("short", "old") is False
    assert store.get("short") == in_progress("new")


def test_memory_store_never_evicts_a_live_claim() -> None:
    store = MemoryStore(max_entries=100)
    for n in range(100):
        assert store.claim(f"live{n}", in_progress(f"t{n}"), 60) is None
    with pytest.raises(StoreFull):
        store.claim("one-more", in_progress("x"), 60)
    assert all(store.get(f"live{n}") is not None for n in range(100))
    # finished records make room, oldest first; live claims stay
    store.complete("live0", "t0", {"state": "done", "token": "t0"}, 60)
    store.complete("live1", "t1", {"state": "done", "token": "t1"}, 60)
    assert store.claim("one-more", in_progress("x"), 60) is None
    assert store.get("live0") is None and store.get("live1") is not None and store.get("live99") is not None
    assert len(store) == 100


def test_memory_store_of_finished_records_stays_bounded() -> None:
    store = MemoryStore(max_entries=100)
    for n in range(1000):
        assert store.claim(f"k{n}", in_progress("t"), 60) is None
        store.complete(f"k{n}", "t", {"state": "done", "token": "t"}, 60)
    assert len(store) == 100 and store.get("k999") is not None and store.get("k0") is None


def test_keys_are_namespaced_and_bounded() -> None:
    """Separators inside ids cannot imitate another key; a 90 KB id costs a fixed-size key."""
    assert store_key("p:", ("delivery", "webhook", "X:0")) != store_key("p:", ("delivery", "webhook", "X", "0"))
    assert store_key("p:", ("delivery", "webhook", "abc")) != store_key("p:", ("delivery", "cloudevent:s", "abc"))
    assert store_key("p:", ("key", "abc")) != store_key("p:", ("delivery", "webhook", "abc"))
    huge = store_key("p:", ("delivery", "webhook", "x" * 90_000))
    assert huge.startswith("p:sha256:") and len(huge) < 80
    assert huge != store_key("p:", ("delivery", "webhook", "x" * 89_999))
    assert store_key("p:", ("delivery", "webhook", "\ud800")).startswith("p:")  # a lone surrogate is keyable


def test_redis_down_is_store_unavailable(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url)
    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        store.claim("k", in_progress("t"), 10)
    store.close()


@pytest.mark.parametrize("policy", ["volatile-lru", "allkeys-lru", "noeviction"])
def test_a_redis_that_may_evict_keys_is_named_once(redis_server: RedisServer, log_lines: LogCapture,
                                                   policy: str) -> None:
    """A Redis that may evict keys (managed services often run an evicting policy, and under a volatile-*
    one every stopline key is a candidate, since all expire) could drop a claim or a result and let a
    redelivery run twice: the first use of the store says so in one WARNING naming the policy; with
    noeviction it says nothing."""
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    admin.config_set("maxmemory-policy", policy)
    admin.close()
    store = open_store(redis_server.url)
    assert store.get("k") is None  # the first use makes the client, and starts the check beside it
    for thread in [t for t in threading.enumerate() if t.name == "stopline-redis-policy"]:
        thread.join(timeout=10)
    store.close()
    warned = [str(r["message"]) for r in log_lines.records if "maxmemory-policy" in str(r["message"])]
    if policy == "noeviction":
        assert warned == []
    else:
        assert len(warned) == 1 and warned[0].startswith(f"Redis maxmemory-policy is {policy}: ")
        assert "set maxmemory-policy to noeviction" in warned[0]


@pytest.mark.parametrize("url", [
    "redis://:pa/ss@127.0.0.1:6379/0", "redis://:s3cret@127.0.0.1:99999/0", "redis://[::1/0",
    "redis+cluster://:s3cret@127.0.0.1", "redis+sentinel://:s3cret@127.0.0.1:26379", "rediss://:s3cret@/0",
])
def test_a_malformed_store_url_is_a_configuration_error_without_the_value(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "STOPLINE_IDEMPOTENCY_URL" in message
    assert "s3cret" not in message and "pa/ss" not in message and "ss@" not in message


def test_claim_then_complete_then_replay(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    calls = Calls()
    first = run(idem, calls)
    assert first["outcome"] == "stopped" and calls.deadlines[0].at > time.monotonic() + 4  # the deadline given
    assert run(idem, calls) == {"outcome": "duplicate", "first": "stopped"}
    assert calls.runs == 1
    assert run(idem, calls, key="other")["outcome"] == "stopped" and calls.runs == 2


def test_a_twin_waits_for_the_first_result(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    calls = Calls(sleep_s=0.4)
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(run(idem, calls))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls.runs == 1
    assert sorted(a["outcome"] for a in answers) == ["duplicate"] * 7 + ["stopped"]


def test_a_twin_with_another_command_is_a_conflict(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    run(idem, Calls())
    with pytest.raises(Conflict) as caught:
        run(idem, Calls(), fingerprint="other")
    assert caught.value.status == 409 and caught.value.details[0]["field"] == "event_id"


def test_the_hash_is_checked_on_every_poll(store: IdempotencyStore) -> None:
    """A duplicate waiting on a twin whose key ends up holding another command's result gets 409, not
    that command's result (defect 3)."""
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    waiting = threading.Event()

    def first(deadline: Deadline) -> Result:
        waiting.wait(5)
        time.sleep(0.2)  # the twin is polling now
        held = store.get("k")
        assert held is not None
        store.release("k", held["token"])
        store.claim("k", {"state": "in_progress", "hash": "other", "token": "x"}, 10)
        store.complete("k", "x", {"state": "done", "hash": "other", "token": "x",
                                  "result": {"outcome": "deleted"}}, 10)
        return Result("stop_build", Outcome.STOPPED)

    starter = threading.Thread(target=lambda: run(idem, first))
    starter.start()
    time.sleep(0.1)
    waiting.set()
    with pytest.raises(Conflict):
        run(idem, Calls())
    starter.join()


def test_a_twin_waits_at_most_wait_s(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=0.3)
    calls = Calls(sleep_s=3.0)
    starter = threading.Thread(target=lambda: run(idem, calls))
    starter.start()
    time.sleep(0.1)
    with pytest.raises(InProgress) as caught:
        run(idem, calls)
    assert starter.is_alive()  # gave up while the twin was still running, rather than waiting it out
    assert caught.value.status == 503 and caught.value.retry_after == 1
    starter.join()
    assert calls.runs == 1


def test_a_transient_failure_releases_the_claim_and_the_redelivery_runs(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    flaky = Calls(outcome="transient")
    assert run(idem, flaky)["outcome"] == "transient"
    assert store.get("k") is None
    calls = Calls()
    assert run(idem, calls)["outcome"] == "stopped" and calls.runs == 1


def test_a_twin_waiting_on_a_transient_failure_runs_the_command_itself(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    flaky = Calls(sleep_s=0.3, outcome="transient")
    starter = threading.Thread(target=lambda: run(idem, flaky))
    starter.start()
    time.sleep(0.1)
    calls = Calls()
    assert run(idem, calls)["outcome"] == "stopped"
    starter.join()
    assert flaky.runs == 1 and calls.runs == 1


def test_an_exception_releases_the_claim(store: IdempotencyStore) -> None:
    """A bug inside the call must not block the key until its lease runs out (defect 4)."""
    idem = Idempotency(store, ttl_s=60, wait_s=5)

    def broken(deadline: Deadline) -> Result:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run(idem, broken, lease_s=3600)
    assert store.get("k") is None
    assert run(idem, Calls())["outcome"] == "stopped"


def test_a_delivery_that_lost_its_lease_changes_nothing(store: IdempotencyStore, log_lines: LogCapture) -> None:
    """Lease expiry -> takeover -> the late complete is refused and logged as `lease lost` (defect 2)."""
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    slow = Calls(sleep_s=0.6, outcome="stopped")
    late: list[Any] = []
    starter = threading.Thread(target=lambda: late.append(run(idem, slow, lease_s=0.3)))
    starter.start()
    time.sleep(0.4)  # the first lease has run out
    taker = Calls(outcome="already_stopped")
    assert run(idem, taker)["outcome"] == "already_stopped"
    starter.join()
    assert late[0]["outcome"] == "stopped"
    held = store.get("k")
    assert held is not None and held["result"]["outcome"] == "already_stopped"  # the takeover's record
    assert run(idem, Calls()) == {"outcome": "duplicate", "first": "already_stopped"}
    lost = [r for r in log_lines.records if "lease lost" in str(r["message"])]
    assert len(lost) == 1 and lost[0]["level"] == "WARNING"


def test_no_key_means_no_idempotency(store: IdempotencyStore) -> None:
    idem = Idempotency(store, ttl_s=60, wait_s=5)
    calls = Calls()
    idem.run(None, "h", Deadline.after(5), calls)
    idem.run(None, "h", Deadline.after(5), calls)
    assert calls.runs == 2


def test_rediss_against_a_plain_redis_names_tls(redis_server: RedisServer) -> None:
    """A TLS URL pointed at a server without TLS: the 503's reason says TLS, not a bare TimeoutError."""
    store = open_store(redis_server.url.replace("redis://", "rediss://") + "?ssl_cert_reqs=none")
    with pytest.raises(StoreUnavailable, match="TLS handshake"):
        store.get("k")
    store.close()
