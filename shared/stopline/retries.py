"""Durable retries for senders that never redeliver: GitHub, GitLab and FunctionGraph's asynchronous
triggers (Kafka, RabbitMQ, SMN, CTS, timer).

A command from such a sender that fails transiently is not answered "try again" -- nobody would. It is
*parked*: kept as a pending retry in the idempotency store (the ``memory://`` dict, or a Redis sorted
set), its idempotency key marked ``pending`` so a duplicate delivery answers it as pending instead of
calling again, and it is retried with exponential backoff (2 s, doubling, at most 5 minutes apart)
until it succeeds, fails for good, or ``STOPLINE_RETRY_FOR_S`` has passed since it first failed -- then it
is *abandoned*, with one ERROR line and an audit line naming the command, the attempts and the last error.

Takers run what is due: a daemon thread in every long-lived serving process, FunctionGraph's timer
trigger, the ``retries`` HTTP target and ``stopline retries run``. Taking is atomic in the store, so two
takers never run one item at once, and the command's idempotency key still guards its call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stopline import audit
from stopline.errors import StoplineError, Transient
from stopline.idempotency import IdempotencyStore, StoreUnavailable
from stopline.result import Outcome, Result

if TYPE_CHECKING:
    from stopline.audit import Auditor
    from stopline.pipeline import Pipeline, Work

log = logging.getLogger("stopline")
FIRST_WAIT_S = 2.0
MAX_WAIT_S = 300.0
PASS_LIMIT = 16
"""Items one pass of a taker runs at most (a thread pass, a timer event): bounded work per pass."""
WORKER_INTERVAL_S = 1.0


def wait_s(retries: int) -> float:
    """The pause before retry number ``retries + 1``: 2 s doubling, at most 5 minutes."""
    return float(min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** max(0, retries)))


class Retries:
    """The pending-retry queue of one store, with the policy around it."""

    def __init__(self, store: IdempotencyStore, *, retry_for_s: float, hold_s: float) -> None:
        self.store = store
        self.retry_for_s = retry_for_s
        self.hold_s = hold_s
        """How long a taken item is held before it is due again (the longest one run may take)."""
        self.publish: Callable[[list[dict[str, Any]]], None] = audit.emit
        """Where the abandoned-retry event goes (the pipeline's Auditor)."""

    # -- parking ------------------------------------------------------------------------------------------
    def park(self, work: Work, result: Result) -> Result:
        """A transient failure of a delivery whose sender never redelivers: kept as a pending retry; its
        pending result. If the store cannot take it, the transient failure itself (the caller then fails
        the invocation or answers 503, so nothing is acknowledged that is not safely kept)."""
        now = time.time()
        item_id = work.key or f"unkeyed:{uuid.uuid4().hex}"
        item: dict[str, Any] = {"id": item_id, "key": work.key,
                "command": work.command.model_dump(mode="json", exclude_none=True),
                "event_id": work.delivery.event_id, "trigger": work.delivery.trigger,
                "namespace": work.delivery.namespace, "sender_id": work.delivery.sender_id,
                "first_failed": now, "retries": 0, "attempts": result.attempts,
                "last_error": result.error.to_json() if result.error else None}
        due = now + wait_s(0)
        try:
            self.store.add_retry(item_id, item, due)
        except StoreUnavailable as exc:
            log.error("could not keep a pending retry (%s); the failure is answered as it is", exc,
                      extra={"event_id": work.delivery.event_id, "action": work.command.action})
            return result
        return self._pending(result, due)

    @staticmethod
    def _pending(result: Result, due: float) -> Result:
        return replace(result, outcome=Outcome.PENDING, retry_at=due)

    def again(self, item: dict[str, Any], result: Result) -> Result:
        """A retry failed transiently: pending again with the next wait, or abandoned past RETRY_FOR_S."""
        now = time.time()
        retries = int(item.get("retries", 0)) + 1
        attempts = int(item.get("attempts", 0)) + result.attempts
        if self._expired(item, now):
            return self.abandon(item, result, retries, attempts)
        due = self._reschedule(item, now, attempts=attempts,
                               last_error=result.error.to_json() if result.error else None)
        return self._pending(result, due)

    def _expired(self, item: dict[str, Any], now: float) -> bool:
        return now - float(item.get("first_failed", now)) >= self.retry_for_s

    def _reschedule(self, item: dict[str, Any], now: float, **changes: Any) -> float:
        """Back in the queue with the next wait (one more retry counted); when the store cannot take it,
        the item stays held and is due again when the hold ends. Returns when it is due."""
        retries = int(item.get("retries", 0)) + 1
        due = now + wait_s(retries)
        try:
            self.store.add_retry(item["id"], {**item, "retries": retries, **changes}, due)
        except StoreUnavailable as exc:
            log.warning("could not reschedule a pending retry (%s); it is due again in %.0f s", exc, self.hold_s,
                        extra={"event_id": item.get("event_id")})
            due = now + self.hold_s
        return due

    def abandon(self, item: dict[str, Any], result: Result, retries: int, attempts: int) -> Result:
        """Given up: one ERROR line and one audit line; the item leaves the queue (its taker drops it)."""
        error = result.error
        message = error.message if error is not None else str(result.outcome)
        log.error("pending retry abandoned after %d retries (STOPLINE_RETRY_FOR_S=%g): %s", retries,
                  self.retry_for_s, message,
                  extra={"event_id": item.get("event_id"), "action": result.action, "target": result.target,
                         "attempts": attempts, "outcome": "abandoned", "trigger": item.get("trigger")})
        data = {"command": item.get("command"), "attempts": attempts, "retries": retries,
                "event_id": item.get("event_id"), "trigger": item.get("trigger"), "reason": result.reason,
                "error": error.to_json() if error is not None else None}
        self.publish([audit.event("retry", "abandoned", json.dumps(result.target, sort_keys=True), data,
                                source=str(item.get("trigger")), key=str(item["id"]))])
        gave_up = Transient(f"abandoned after {retries} retries over {self.retry_for_s:g} s; last: {message}",
                            upstream=error.upstream if error is not None else None)
        return replace(result, outcome=Outcome.FAILED, attempts=attempts, error=gave_up, retry_at=None)

    # -- taking ---------------------------------------------------------------------------------------------
    def run_due(self, pipeline: Pipeline, *, limit: int = PASS_LIMIT, everything: bool = False,
                concurrency: int = 16) -> list[Result]:
        """Take what is due (or, ``everything``, what is pending at all), run each through ``pipeline``
        concurrently, and keep, reschedule or drop it by its result. Raises Transient when the store cannot
        be read: the retries stay where they are for the next taker."""
        now = time.time() + (self.retry_for_s + MAX_WAIT_S if everything else 0)
        try:
            items = self.store.take_retries(now, limit, self.hold_s)
        except StoreUnavailable as exc:
            raise Transient(str(exc)) from None
        if not items:
            return []
        from concurrent.futures import ThreadPoolExecutor  # only a sweep with work loads it

        with ThreadPoolExecutor(max_workers=min(concurrency, len(items)),
                                thread_name_prefix="stopline-retry") as pool:
            return [r for r in pool.map(lambda item: self._run_one(pipeline, item), items) if r is not None]

    def park_audit(self, event: dict[str, Any]) -> bool:
        """An audit event the receiver did not take: kept to be sent again; False if the store cannot."""
        now = time.time()
        item_id = f"audit:{event['id']}"
        item = {"id": item_id, "kind": "audit", "event": event, "first_failed": now, "retries": 0,
                "event_id": (event.get("data") or {}).get("event_id"), "trigger": "audit"}
        try:
            self.store.add_retry(item_id, item, now + wait_s(0))
        except StoreUnavailable:
            return False
        return True

    def _resend(self, auditor: Auditor, item: dict[str, Any]) -> None:
        """Send a kept audit event again: dropped once taken, kept with the next wait, or given up (its
        full text in an ERROR line) past STOPLINE_RETRY_FOR_S or on a permanent refusal."""
        event = item["event"]
        failure = auditor.send(event)
        now = time.time()
        retries = int(item.get("retries", 0)) + 1
        if failure is not None and failure.transient and not self._expired(item, now):
            self._reschedule(item, now, last_error=failure.to_json())
            return
        try:
            self.store.drop_retry(item["id"])
        except StoreUnavailable as exc:  # held, then due again: at least once
            log.warning("audit retry not settled (%s)", exc)
            return
        if failure is None:
            log.info("audit event %s delivered after %d retries", event["id"], retries)
        else:
            log.error("audit event %s given up after %d retries: %s", event["id"], retries, failure.message,
                      extra={"audit": event})

    def _run_one(self, pipeline: Pipeline, item: dict[str, Any]) -> Result | None:
        if item.get("kind") == "audit":
            self._resend(pipeline.auditor, item)
            return None
        try:
            result = pipeline.retry(item, self)
        except StoplineError as exc:  # the store did not answer: the item stays held, then due again
            log.warning("pending retry not run: %s", exc.message, extra={"event_id": item.get("event_id")})
            return None
        if result is None or not result.pending:  # done, failed for good, abandoned, or settled elsewhere
            try:
                self.store.drop_retry(item["id"])
            except StoreUnavailable as exc:
                log.warning("could not drop a finished retry (%s); its key keeps it from running twice", exc)
        return result

    def pending(self) -> list[dict[str, Any]]:
        """What is pending, soonest first: the item and when it is due (``retry_at``). Raises Transient when
        the store cannot be read."""
        try:
            listed = self.store.list_retries()
        except StoreUnavailable as exc:
            raise Transient(str(exc)) from None
        return [{**item, "retry_at": audit.iso(due)} for due, item in listed]


class Worker:
    """The daemon thread of a long-lived serving process: about once a second, a bounded pass."""

    def __init__(self, run: Callable[[], list[Result]]) -> None:
        self._run = run
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="stopline-retries", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(WORKER_INTERVAL_S)
            try:
                self._run()
            except StoplineError as exc:
                log.warning("pending retries not taken this pass: %s", exc.message)
            except Exception as exc:
                log.error("internal error taking pending retries: %s: %s", type(exc).__name__, exc, exc_info=exc)
