"""The exactly-once protocol, in one place.

``Idempotency.run(key, fingerprint, deadline, call)`` is what the pipeline calls between "allowed" and
"log": claim the key until the delivery's deadline + 5 s, or wait for the twin that holds it (checking
the command hash on every read), or replay a finished result; then run the command and record its
result (fenced on the claim token) or release the claim. The pipeline passes no callbacks: what to keep
and how to rebuild it are :meth:`Result.to_record` and :meth:`Result.from_record`. The shape follows
Powertools' ``IdempotencyHandler`` over a persistence layer; the rules are stopline's:

- the claim's expiry is fixed when it is made, from the delivery's own deadline: a duplicate that waited
  for its twin never buys a fresh lease;
- a delivery that lost its claim changes nothing (``lease lost`` at WARNING);
- any exception releases the claim, so a bug never blocks a key until it expires;
- a claim whose store reply was lost (a timeout) is a *ghost*: one background sweeper per process
  releases it as soon as the store answers again -- never the request threads, which after an outage
  would all sweep the same ghosts at once.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from stopline.deadline import Deadline
from stopline.errors import Conflict, InProgress, Transient
from stopline.idempotency import IdempotencyStore, StoreFull, StoreUnavailable
from stopline.models import Result

log = logging.getLogger("stopline")
POLL_S = 0.05
MAX_GHOSTS = 10_000
GHOST_RETRY_S = 0.5
COMPLETE_RETRY_S = 3.0


State = Literal["in_progress", "done", "pending"]


class Record(NamedTuple):
    """What the store keeps under a key: a claim in progress, a finished command's result, or a pending
    one's (its retries are under way; a duplicate answers it as pending)."""

    state: State
    hash: str
    token: str
    expires: float
    """Wall-clock (epoch) second the record stops counting: a claim's deadline + 5 s, a result's TTL."""
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state, "hash": self.hash, "token": self.token,
                                "expires": self.expires}
        if self.result is not None:
            body["result"] = self.result
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Record":
        """Read a stored record; one written by an earlier version (``lease_until``) reads the same."""
        raw = data.get("state")
        state: State = raw if raw in ("done", "pending") else "in_progress"
        result = data.get("result")
        return cls(state, str(data.get("hash", "")), str(data.get("token", "")),
                   float(data.get("expires", data.get("lease_until", 0)) or 0),
                   result if isinstance(result, dict) else None)


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

    def __init__(self, store: IdempotencyStore, *, ttl_s: float, wait_s: float, pending_ttl_s: float = 0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.pending_ttl_s = max(ttl_s, pending_ttl_s)
        """How long a ``pending`` record lives: as long as its retries may go on, and then some."""
        self.wait_s = wait_s
        self._ghosts: dict[str, str] = {}
        self._ghost_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    def run(self, key: str | None, fingerprint: str, deadline: Deadline, call: Callable[[Deadline], Result], *,
            field: str = "event_id") -> Result:
        """Run ``call(deadline)`` at most once per ``key`` while its record lives.

        Args:
            key: the store key (None: no idempotency, just run).
            fingerprint: the normalized command's hash; a different one under the same key is a conflict.
            deadline: the delivery's; the claim expires 5 s after it, and a twin is waited for until it.
            call: runs the command against the deadline.
            field: what a conflict names in ``details`` (``idempotency_key`` or ``event_id``).

        Returns:
            The command's result, or the first delivery's (``replayed``) for a duplicate.

        Raises:
            Conflict: the key holds another command.
            InProgress: a twin holds the key past the time this delivery can wait.
            Transient: the store is unreachable or full of live claims.
        """
        if key is None:
            return call(deadline)
        token = uuid.uuid4().hex
        waited_until = min(time.monotonic() + self.wait_s, deadline.at)
        while True:
            ttl_s = deadline.claim_expires_in()
            claim = Record("in_progress", fingerprint, token, time.time() + ttl_s)
            try:
                existing = self.store.claim(key, claim.to_json(), ttl_s)
            except StoreFull as exc:
                raise Transient(str(exc), retry_after=1) from None
            except StoreUnavailable as exc:
                self._ghost(key, token)  # the SET may have reached the store after our timeout
                raise Transient(f"{exc}; not calling the cloud without a claim", retry_after=1) from None
            if existing is None:
                return self._claimed(key, token, fingerprint, deadline, call)
            found = Record.from_json(existing)
            if found.hash != fingerprint:
                raise _conflict(field)
            if found.state in ("done", "pending"):  # a pending one answers as pending: no second call
                return Result.from_record(found.result or {})
            if self._owns_ghost(key, found):
                continue  # our own lost claim, now released: claim again
            finished = self._wait(key, fingerprint, waited_until, field)
            if finished is not None:
                return Result.from_record(finished)
            # released by its holder (a transient failure): this delivery may run it, by its own deadline

    def _claimed(self, key: str, token: str, fingerprint: str, deadline: Deadline,
                 call: Callable[[Deadline], Result]) -> Result:
        try:
            result = call(deadline)
        except BaseException:
            self._release(key, token)
            raise
        stored = result.to_record()
        if stored is None:
            self._release(key, token)
            return result
        keep_s = self.pending_ttl_s if result.pending else self.ttl_s
        done = Record("pending" if result.pending else "done", fingerprint, token, time.time() + keep_s, stored)
        ends = time.monotonic() + deadline.claim_expires_in()
        try:
            if not _persist(lambda: self.store.complete(key, token, done.to_json(), keep_s), ends):
                log.warning("lease lost: another delivery took over %s before this one finished; its result "
                            "was not recorded", key, extra={"idempotency_key": key, "outcome": stored.get("outcome")})
        except StoreUnavailable as exc:
            # The call happened; its claim stays until it expires, so a redelivery meanwhile is 503, never
            # a second call.
            log.error("could not record the outcome in the idempotency store: %s", exc,
                      extra={"idempotency_key": key})
        return result

    def retake(self, key: str, fingerprint: str, deadline: Deadline,
               call: Callable[[Deadline], Result]) -> Result | None:
        """Run a pending command again, under its key: claimed only while the key is still ``pending``
        (another taker, or a duplicate delivery, may have settled it: then None, and nothing runs).

        Raises:
            Transient: the store is unreachable.
        """
        token = uuid.uuid4().hex
        ttl_s = deadline.claim_expires_in()
        claim = Record("in_progress", fingerprint, token, time.time() + ttl_s)
        try:
            taken = self.store.takeover(key, "pending", claim.to_json(), ttl_s)
        except StoreUnavailable as exc:
            raise Transient(f"{exc}; the pending retry waits", retry_after=1) from None
        return self._claimed(key, token, fingerprint, deadline, call) if taken else None

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
            found = Record.from_json(existing)
            if found.hash != fingerprint:
                raise _conflict(field)
            if found.state in ("done", "pending"):
                return found.result or {}

    # -- ghost claims ------------------------------------------------------------------------------------
    def _ghost(self, key: str, token: str) -> None:
        with self._ghost_lock:
            if len(self._ghosts) < MAX_GHOSTS:
                self._ghosts[key] = token
            if self._sweeper is None or not self._sweeper.is_alive():
                self._sweeper = threading.Thread(target=self._sweep_until_empty, name="stopline-ghosts",
                                                 daemon=True)
                self._sweeper.start()

    def _owns_ghost(self, key: str, existing: Record) -> bool:
        """The in-progress record under ``key`` is a ghost of this process: release it (True)."""
        with self._ghost_lock:
            token = self._ghosts.get(key)
        if token is None or existing.token != token:
            return False
        try:
            self.store.release(key, token)
        except StoreUnavailable:
            return False
        with self._ghost_lock:
            self._ghosts.pop(key, None)
        return True

    def _sweep(self) -> None:
        """Release the ghosts the store now answers for; run by the sweeper thread only."""
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
