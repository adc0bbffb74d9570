"""The one pipeline every trigger feeds: validate -> allow -> dedupe -> dry run or call -> outcome -> log.

Trigger adapters only turn their input into ``(raw command, Delivery)`` and a :class:`Result` back
into their answer. The steps before and after the cloud call (:meth:`Pipeline.prepare`,
:meth:`Pipeline.begin`, :meth:`Pipeline.finish`) are plain functions of the store and settings, so
the driver (:meth:`Pipeline.handle`) only waits and calls the cloud. There is no async driver: ASGI
mode runs this one on a worker thread, because httpx's async connection pool slows down sharply with
concurrent requests (README "Performance": 0.55x of the peer's req/s at 16 connections that way, 0.99x
on threads).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from stopline.client import Client, Reply
from stopline.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    InProgress,
    StoplineError,
    Transient,
    UpstreamInfo,
    error_class,
)
from stopline.idempotency import IdempotencyStore, StoreUnavailable
from stopline.models import Command, Outcome, Result, StopDataArtsJob, parse_command
from stopline.settings import Settings
from stopline.wire import RETRY_AFTER_CAP_S

log = logging.getLogger("stopline")
WAIT_POLL_S = 0.05
Member = int | str | None
"""Which part of a delivery a command is: its batch index, ``<rule>:<index>`` for a rule's command, or
None for a delivery of one command. The idempotency key falls back to ``<delivery id>:<member>``."""
CLAIM_MARGIN_S = 5.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a command came from: the delivery id (idempotency fallback) and the trigger's name."""

    event_id: str | None
    trigger: str
    action: str | None = None


@dataclass(slots=True)
class Work:
    """A validated, allowed command on its way through dedupe and the call."""

    command: Command
    delivery: Delivery
    key: str | None
    started: float
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    claimed: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    """The same key is being handled right now; poll the store until it is done or released."""

    work: Work
    deadline: float


class Pipeline:
    """One instance per runtime (and per FunctionGraph agency key); shares its idempotency store.

    The client factories are called lazily, so a missing credential surfaces as a `configuration` failure of
    the command that needed it -- after validation, so bad input is still reported as such.
    """

    def __init__(
        self,
        settings: Settings,
        store: IdempotencyStore,
        *,
        client: Callable[[], Client],
    ) -> None:
        self.settings = settings
        self.store = store
        self._client = client
        # An in-progress claim outlives the longest possible first delivery (every attempt timing out,
        # every wait at the Retry-After cap) by a few seconds, and no more: a process killed mid-call
        # blocks its key only that long.
        self.claim_ttl_s = (settings.timeout_s * settings.max_attempts
                            + RETRY_AFTER_CAP_S * (settings.max_attempts - 1) + CLAIM_MARGIN_S)
        self._pool: ThreadPoolExecutor | None = None

    # -- shared steps (no I/O but the store) ------------------------------------------------------------
    def prepare(self, raw: object, delivery: Delivery, *, index: Member = None) -> Work | Result:
        """Validate and apply the allowlists; a failure becomes a finished Result."""
        started = time.perf_counter()
        where = "" if index is None else f"commands.{index}." if isinstance(index, int) else \
            "rules.{}.then.{}.".format(*index.rsplit(":", 1))
        try:
            command = parse_command(raw, action=delivery.action, where=where)
            self._allow(command, where)
        except StoplineError as exc:
            action = raw.get("action") if isinstance(raw, dict) else None
            result = Result(action if isinstance(action, str) else delivery.action, Outcome.FAILED,
                            event_id=delivery.event_id, error=exc)
            return self._log(result, delivery, started)
        key = command.idempotency_key
        if key is None and delivery.event_id is not None:
            key = delivery.event_id if index is None else f"{delivery.event_id}:{index}"
        return Work(command, delivery, key, started)

    def _allow(self, command: Command, where: str) -> None:
        s = self.settings
        if command.action not in s.allowed_actions:
            raise Forbidden(f"action {command.action!r} is not allowed here (STOPLINE_ALLOWED_ACTIONS)",
                            details=[{"field": f"{where}action", "message": "not in STOPLINE_ALLOWED_ACTIONS"}])
        if isinstance(command, StopDataArtsJob):
            project = command.project_id or s.project_id
            if s.allowed_project_ids and project not in s.allowed_project_ids:
                raise Forbidden(f"project {project!r} is not allowed here (STOPLINE_ALLOWED_PROJECT_IDS)",
                                details=[{"field": f"{where}project_id",
                                          "message": "not in STOPLINE_ALLOWED_PROJECT_IDS"}])
        elif s.allowed_job_ids and command.job_id not in s.allowed_job_ids:
            raise Forbidden(f"build task {command.job_id} is not allowed here (STOPLINE_ALLOWED_JOB_IDS)",
                            details=[{"field": f"{where}job_id", "message": "not in STOPLINE_ALLOWED_JOB_IDS"}])

    def begin(self, work: Work) -> Work | Wait | Result:
        """Claim the idempotency key: go ahead (Work), wait for a running twin (Wait), or answer (Result)."""
        if work.key is None:
            return work
        record = {"state": "in_progress", "hash": work.command.fingerprint(), "token": work.token,
                  "at": time.time()}
        try:
            existing = self.store.claim(work.key, record, self.claim_ttl_s)
        except StoreUnavailable as exc:
            return self._fail(work, Transient(f"{exc}; not calling the cloud without a claim", retry_after=1))
        if existing is None:
            work.claimed = True
            return work
        if existing.get("hash") != record["hash"]:
            return self._fail(work, Conflict(
                f"idempotency key {work.key!r} was already used for a different command",
                details=[{"field": "idempotency_key" if work.command.idempotency_key else "event_id",
                          "message": "reused with a different command"}]))
        if existing.get("state") == "done":
            return self._replay(work, existing)
        return Wait(work, time.monotonic() + self.settings.timeout_s)

    def poll(self, wait: Wait) -> Work | Wait | Result:
        """Look again at a key another delivery holds."""
        try:
            existing = self.store.get(wait.work.key or "")
        except StoreUnavailable as exc:
            return self._fail(wait.work, Transient(str(exc), retry_after=1))
        if existing is None:  # released after a transient failure: this delivery may run it
            return self.begin(wait.work)
        if existing.get("state") == "done":
            return self._replay(wait.work, existing)
        if time.monotonic() >= wait.deadline:
            return self._fail(wait.work, InProgress(
                "the same event is still being handled by another delivery; retry shortly", retry_after=1))
        return wait

    def finish(self, work: Work, reply: Reply | None, error: StoplineError | None) -> Result:
        """Record the outcome (or release the claim after a transient failure) and log it."""
        command = work.command
        if error is not None:
            result = Result(command.action, Outcome.FAILED, command.target(), work.delivery.event_id,
                            error.upstream.request_id if error.upstream else None, error.attempts, error=error,
                            resolved=error.resolved)
        elif reply is None:
            result = Result(command.action, Outcome.DRY_RUN, command.target(), work.delivery.event_id)
        else:
            result = Result(command.action, reply.outcome, command.target(), work.delivery.event_id,
                            reply.request_id, reply.attempts, api=reply.api, resolved=reply.resolved)
        if work.claimed and work.key is not None:
            try:
                if error is not None and (error.transient or error.type == ConfigurationError.type):
                    self.store.release(work.key, work.token)
                else:
                    self.store.complete(work.key, self._record(work, result), self.settings.idempotency_ttl_s)
            except StoreUnavailable as exc:
                log.error("could not record the outcome in the idempotency store: %s", exc,
                          extra={"event_id": work.delivery.event_id})
        return self._log(result, work.delivery, work.started)

    def warm(self) -> None:
        """Build the client now: httpx's transport imports httpcore and loads the TLS trust store, about
        110 ms that would otherwise land on the first command. Raises ConfigurationError."""
        self._client()

    # -- drivers -------------------------------------------------------------------------------------------
    def handle(self, raw: object, delivery: Delivery, *, index: Member = None) -> Result:
        prepared = self.prepare(raw, delivery, index=index)
        if isinstance(prepared, Result):
            return prepared
        if not self.settings.dry_run:
            try:
                client = self._client()
            except ConfigurationError as exc:
                return self._fail(prepared, exc)
        step = self.begin(prepared)
        while isinstance(step, Wait):
            time.sleep(WAIT_POLL_S)
            step = self.poll(step)
        if isinstance(step, Result):
            return step
        if self.settings.dry_run:
            return self.finish(step, None, None)
        try:
            return self.finish(step, client.execute(step.command), None)
        except StoplineError as exc:
            return self.finish(step, None, exc)

    def handle_batch(self, raws: Sequence[object], delivery: Delivery) -> list[Result]:
        """A webhook batch: member i is keyed ``<delivery id>:i`` unless it has its own key."""
        return self.handle_each([(raw, delivery, i) for i, raw in enumerate(raws)])

    def handle_each(self, items: Sequence[tuple[object, Delivery, Member]]) -> list[Result]:
        """Run commands concurrently (bounded by STOPLINE_BATCH_CONCURRENCY); results in input order; one
        slow or failing command never stops the rest."""
        if not items:
            return []
        if len(items) == 1:
            raw, delivery, index = items[0]
            return [self.handle(raw, delivery, index=index)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.settings.batch_concurrency,
                                            thread_name_prefix="stopline-batch")
        futures = [self._pool.submit(self.handle, raw, delivery, index=index) for raw, delivery, index in items]
        return [f.result() for f in futures]

    # -- helpers ------------------------------------------------------------------------------------------
    def _fail(self, work: Work, error: StoplineError) -> Result:
        result = Result(work.command.action, Outcome.FAILED, work.command.target(), work.delivery.event_id,
                        error=error)
        return self._log(result, work.delivery, work.started)

    def _record(self, work: Work, result: Result) -> dict[str, Any]:
        record: dict[str, Any] = {
            "state": "done", "hash": work.command.fingerprint(), "token": work.token, "ok": result.ok,
            "action": result.action, "outcome": str(result.outcome), "target": result.target,
            "event_id": result.event_id, "upstream_request_id": result.upstream_request_id,
            "attempts": result.attempts, "api": result.api,
            "resolved": list(result.resolved) if result.resolved is not None else None,
        }
        if result.error is not None:
            err = result.error
            record["error"] = {"type": err.type, "status": err.status, "message": err.message, "details": err.details,
                               "upstream": err.upstream.to_json() if err.upstream else None}
        return record

    def _replay(self, work: Work, record: dict[str, Any]) -> Result:
        """A duplicate: the first result, without calling the cloud again (interface.md section 9)."""
        first = record.get("error")
        error: StoplineError | None = None
        if first is not None:
            cls = error_class(first.get("type", ""), first.get("status"))
            up = first.get("upstream")
            error = cls(first.get("message", ""), details=first.get("details") or [],
                        upstream=UpstreamInfo(up["status"], up.get("error_code"), up.get("error_msg"))
                        if up else None)
        result = Result(
            record.get("action"), Outcome.DUPLICATE if error is None else Outcome.FAILED,
            record.get("target") or work.command.target(), record.get("event_id"),
            record.get("upstream_request_id"), 0, api=record.get("api"),
            first_outcome=record.get("outcome") if error is None else None, error=error,
            resolved=(stored[0], stored[1]) if isinstance(stored := record.get("resolved"), list) else None,
        )
        return self._log(result, work.delivery, work.started, duplicate_of=record.get("outcome"))

    def _log(self, result: Result, delivery: Delivery, started: float, **more: Any) -> Result:
        result.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        fields: dict[str, Any] = {
            "action": result.action, "target": result.target, "outcome": str(result.outcome),
            "attempts": result.attempts, "duration_ms": result.duration_ms, "event_id": result.event_id,
            "upstream_request_id": result.upstream_request_id, "trigger": delivery.trigger,
            **({"api": result.api} if result.api else {}), **more,
        }
        if result.error is None or "duplicate_of" in more:
            log.info("%s %s", result.action, result.outcome, extra=fields)
            return result
        err = result.error
        fields.update(status=err.status, error_type=err.type,
                      upstream_status=err.upstream.status if err.upstream else None,
                      upstream_error_code=err.upstream.error_code if err.upstream else None)
        level = logging.WARNING if err.transient else logging.ERROR
        log.log(level, "%s failed: %s", result.action or "command", err.message, extra=fields)
        return result

    def shutdown(self) -> None:
        """Stop the batch threads; the store stays open (others may share it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def close(self) -> None:
        self.shutdown()
        self.store.close()
