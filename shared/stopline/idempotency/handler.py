"""The exactly-once protocol, in one place (interface.md sections 9 and 12).

``Idempotency.run`` is what the pipeline calls between "allowed" and "log": claim the key with a lease,
or wait for the twin that holds it (checking the command hash on every read), or replay a finished
result; then run the command, and record its result (fenced on the claim token) or release the claim.
The shape follows Powertools' ``IdempotencyHandler`` over a persistence layer; the rules are stopline's:

- a lease is never longer than the delivery may live, and the command runs against that deadline;
- a delivery that lost its lease changes nothing (``lease lost`` at WARNING);
- any exception releases the claim, so a bug never blocks a key until its lease runs out;
- a claim whose store reply was lost (a timeout) is a *ghost*: its own process knows the token and
  releases it as soon as the store answers again, so a redelivery soon after runs the command.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from stopline.errors import Conflict, InProgress, Transient
from stopline.idempotency import IdempotencyStore, StoreFull, StoreUnavailable

log = logging.getLogger("stopline")
T = TypeVar("T")
POLL_S = 0.05
MAX_GHOSTS = 10_000
GHOST_RETRY_S = 0.5
COMPLETE_RETRY_S = 3.0


def _persist(write: Callable[[], bool], deadline: float) -> bool:
    """Run a fenced write, retrying a store that does not answer (a Redis restart, a cluster failover) for
    up to COMPLETE_RETRY_S, never past the lease: recording an outcome is worth a short wait, because a
    lost record makes redeliveries wait out the lease."""
    ends = min(deadline, time.monotonic() + COMPLETE_RETRY_S)
    pause = 0.05
    while True:
        try:
            return write()
        except StoreUnavailable:
            if time.monotonic() + pause >= ends:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _conflict(field: str) -> Conflict:
    """The key holds another command's record. The message names the sender's field (``event_id`` or
    ``idempotency_key``), not the namespaced store key."""
    return Conflict(f"this {field.replace('_', ' ')} was already used for a different command",
                    details=[{"field": field, "message": "reused with a different command"}])


class Idempotency:
    """Owns a store and the protocol over it; one per runtime, shared by its pipelines."""

    def __init__(self, store: IdempotencyStore, *, ttl_s: float, wait_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self._ghosts: dict[str, str] = {}
        self._ghost_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    def run(self, key: str | None, fingerprint: str, lease_s: float, call: Callable[[float], T], *,
            settle: Callable[[T], dict[str, Any] | None], replay: Callable[[dict[str, Any]], T],
            field: str = "event_id") -> T:
        """Run ``call(deadline)`` at most once per ``key`` while its record lives.

        Args:
            key: the store key (None: no idempotency, just run).
            fingerprint: the normalized command's hash; a different one under the same key is a conflict.
            lease_s: how long the claim may live: the delivery's deadline is ``now + lease_s``.
            call: runs the command; receives the deadline (``time.monotonic()`` seconds).
            settle: the result to store as done, or None to release the claim (transient failures).
            replay: rebuilds a result from a stored one (a duplicate).
            field: what a conflict names in ``details`` (``idempotency_key`` or ``event_id``).

        Raises:
            Conflict: the key holds another command.
            InProgress: a twin holds the key past the time this delivery can wait.
            Transient: the store is unreachable or full of live claims.
        """
        if key is None:
            return call(time.monotonic() + lease_s)
        self._sweep()
        token = uuid.uuid4().hex
        waited_until = time.monotonic() + min(self.wait_s, lease_s)
        while True:
            started = time.monotonic()
            record = {"state": "in_progress", "hash": fingerprint, "token": token,
                      "lease_until": time.time() + lease_s}
            try:
                existing = self.store.claim(key, record, lease_s)
            except StoreFull as exc:
                raise Transient(str(exc), retry_after=1) from None
            except StoreUnavailable as exc:
                self._ghost(key, token)  # the SET may have reached the store after our timeout
                raise Transient(f"{exc}; not calling the cloud without a claim", retry_after=1) from None
            if existing is None:
                return self._claimed(key, token, fingerprint, started + lease_s, call, settle)
            if existing.get("hash") != fingerprint:
                raise _conflict(field)
            if existing.get("state") == "done":
                return replay(existing.get("result") or {})
            if self._owns_ghost(key, existing):
                continue  # our own lost claim, now released: claim again
            found = self._wait(key, fingerprint, waited_until, field)
            if found is not None:
                return replay(found)
            # released by its holder (a transient failure): this delivery may run it

    def _claimed(self, key: str, token: str, fingerprint: str, deadline: float, call: Callable[[float], T],
                 settle: Callable[[T], dict[str, Any] | None]) -> T:
        try:
            result = call(deadline)
        except BaseException:
            self._release(key, token)
            raise
        stored = settle(result)
        if stored is None:
            self._release(key, token)
            return result
        done = {"state": "done", "hash": fingerprint, "token": token, "result": stored}
        try:
            if not _persist(lambda: self.store.complete(key, token, done, self.ttl_s), deadline):
                log.warning("lease lost: another delivery took over %s before this one finished; its result "
                            "was not recorded", key, extra={"idempotency_key": key, "outcome": stored.get("outcome")})
        except StoreUnavailable as exc:
            # The call happened; its claim stays until its lease ends, so a redelivery meanwhile is 503,
            # never a second call.
            log.error("could not record the outcome in the idempotency store: %s", exc,
                      extra={"idempotency_key": key})
        return result

    def _release(self, key: str, token: str) -> None:
        try:
            if not _persist(lambda: self.store.release(key, token), time.monotonic() + COMPLETE_RETRY_S):
                log.warning("lease lost: the claim on %s had expired or been taken over before its release",
                            key, extra={"idempotency_key": key})
        except StoreUnavailable as exc:
            self._ghost(key, token)
            log.error("could not release the claim in the idempotency store (%s); retrying in the background",
                      exc, extra={"idempotency_key": key})

    def _wait(self, key: str, fingerprint: str, until: float, field: str) -> dict[str, Any] | None:
        """Poll a key a twin holds: its stored result, or None once released. Raises as :meth:`run`."""
        while True:
            if time.monotonic() >= until:
                raise InProgress("the same event is still being handled by another delivery; retry shortly",
                                 retry_after=1)
            time.sleep(POLL_S)
            try:
                existing = self.store.get(key)
            except StoreUnavailable as exc:
                raise Transient(str(exc), retry_after=1) from None
            if existing is None:
                return None
            if existing.get("hash") != fingerprint:
                raise _conflict(field)
            if existing.get("state") == "done":
                return existing.get("result") or {}

    # -- ghost claims ------------------------------------------------------------------------------------
    def _ghost(self, key: str, token: str) -> None:
        with self._ghost_lock:
            if len(self._ghosts) < MAX_GHOSTS:
                self._ghosts[key] = token
            if self._sweeper is None or not self._sweeper.is_alive():
                self._sweeper = threading.Thread(target=self._sweep_until_empty, name="stopline-ghosts",
                                                 daemon=True)
                self._sweeper.start()

    def _owns_ghost(self, key: str, existing: dict[str, Any]) -> bool:
        """The in-progress record under ``key`` is a ghost of this process: release it (True)."""
        with self._ghost_lock:
            token = self._ghosts.get(key)
        if token is None or existing.get("token") != token:
            return False
        try:
            self.store.release(key, token)
        except StoreUnavailable:
            return False
        with self._ghost_lock:
            self._ghosts.pop(key, None)
        return True

    def _sweep(self) -> None:
        """Release the ghosts the store now answers for (cheap when there are none)."""
        if not self._ghosts:
            return
        with self._ghost_lock:
            pending = list(self._ghosts.items())
        for key, token in pending:
            try:
                self.store.release(key, token)
            except StoreUnavailable:
                return
            with self._ghost_lock:
                if self._ghosts.get(key) == token:
                    del self._ghosts[key]

    def _sweep_until_empty(self) -> None:
        while self._ghosts:
            time.sleep(GHOST_RETRY_S)
            self._sweep()

    def close(self) -> None:
        self.store.close()
