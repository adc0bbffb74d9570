"""The one pipeline every trigger feeds: validate -> allow -> idempotency.run(call) -> log.

Trigger adapters only turn their input into ``(raw command, Delivery)`` and a :class:`Result` back into
their answer. Exactly-once lives in :class:`~stopline.idempotency.handler.Idempotency`; this module keys
a command, gives it its delivery's deadline (:mod:`stopline.deadline`), and turns what happened into a
result and a log line. There
is no async driver: ASGI mode runs this one on a worker thread, because httpx's async connection pool
slows down sharply with concurrent requests (bench/README.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from stopline import audit
from stopline.deadline import Deadline
from stopline.driver import Client
from stopline.errors import ConfigurationError, Forbidden, RequestError, StoplineError
from stopline.idempotency import store_key
from stopline.idempotency.handler import Idempotency
from stopline.models import Command, Outcome, Result, StopDataArtsJob, StopPipelineRun, parse_command
from stopline.settings import Settings
from stopline.wire import RETRY_AFTER_CAP_S

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from stopline.operations import Reply
    from stopline.retries import Retries

log = logging.getLogger("stopline")
LEASE_MARGIN_S = 5.0
Member = int | str | None
"""Which part of a delivery a command is: its batch index, ``<rule>:<index>`` for a rule's command, or
None for a delivery of one command. The idempotency key falls back to ``<delivery id>:<member>``."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a command came from.

    ``namespace`` scopes the delivery id (docs/exactly-once.md): Standard Webhooks ids, CloudEvent
    ``source``+``id``, Pub/Sub message ids, GitHub and GitLab deliveries and FunctionGraph record ids are
    separate, so equal ids from different senders never collide. ``platform_ends`` is when the platform
    stops the invocation (``time.monotonic()`` seconds; FunctionGraph tells), or None; ``arrived`` is when
    the delivery was read. With the settings they fix the delivery's deadline (:meth:`Pipeline.deadline`).
    """

    event_id: str | None
    trigger: str
    action: str | None = None
    namespace: str = "webhook"
    platform_ends: float | None = None
    answered: bool = False
    """The sender reads the answer (HTTP) and waits for it only so long (``STOPLINE_SENDER_WAIT_S``): a
    refusal is its mistake, logged at WARNING; on a queue nobody reads it, so a refused message is logged
    at ERROR for the operator."""
    arrived: float = field(default_factory=time.monotonic)
    durable: bool = False
    """The sender never redelivers (GitHub, GitLab, FunctionGraph's asynchronous triggers): a transient
    failure becomes a pending retry (stopline.retries) instead of an answer asking for redelivery."""
    sender_id: str | None = None
    """The sender's own delivery id when it does not key the delivery (``X-GitHub-Delivery``, GitLab's
    ``Idempotency-Key``): logged, so a delivery can be found in the sender's log, never keyed on."""


class Work(NamedTuple):
    """A validated, allowed command on its way through idempotency and the call."""

    command: Command
    delivery: Delivery
    key: str | None
    started: float


def internal_error() -> StoplineError:
    """The failure a bug turns into: 500 ``internal``, details in the log only."""
    return StoplineError("internal error; see the logs")


class Pipeline:
    """One instance per runtime (and per FunctionGraph agency key); shares the runtime's idempotency.

    The client factory is called lazily, so a missing credential surfaces as a `configuration` failure of
    the command that needed it -- after validation, so bad input is still reported as such.
    """

    def __init__(self, settings: Settings, idempotency: Idempotency, *, client: Callable[[], Client]) -> None:
        self.settings = settings
        self.idempotency = idempotency
        self._client = client
        # The longest a delivery may take at all (every attempt timing out, every wait at the Retry-After
        # cap) plus a margin: one of the bounds of its deadline.
        self.bound_s = (settings.timeout_s * settings.max_attempts
                              + RETRY_AFTER_CAP_S * (settings.max_attempts - 1) + LEASE_MARGIN_S)
        self._pool: ThreadPoolExecutor | None = None
        from stopline.retries import Retries

        self.retries = Retries(idempotency.store, retry_for_s=settings.retry_for_s, hold_s=self.bound_s + 5)
        secret = settings.audit_secret.get_secret_value() if settings.audit_secret is not None else None
        self.auditor = audit.Auditor(settings.audit_url, secret, timeout_s=min(settings.timeout_s, 5.0),
                                     park=self.retries.park_audit, cloud=client)
        self.retries.publish = self.auditor.publish

    # -- steps ----------------------------------------------------------------------------------------------
    def prepare(self, raw: object, delivery: Delivery, *, index: Member = None) -> Work | Result:
        """Validate and apply the allowlists; a failure becomes a finished (logged) Result."""
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
        return Work(command, delivery, self.key(command, delivery, index), started)

    def key(self, command: Command, delivery: Delivery, index: Member) -> str | None:
        """The store key (section 12): an explicit key is one namespace for every trigger; a delivery id is
        scoped by its source; a batch member or rule command adds its place in the delivery."""
        prefix = self.settings.idempotency_prefix
        if command.idempotency_key is not None:
            return store_key(prefix, ("key", command.idempotency_key))
        if delivery.event_id is None:
            return None
        member = () if index is None else (str(index),)
        return store_key(prefix, ("delivery", delivery.namespace, delivery.event_id, *member))

    def deadline(self, delivery: Delivery) -> Deadline:
        """The delivery's deadline: the earliest of the platform's end, the sender's wait (HTTP senders)
        and the overall bound; every command of the delivery works against the same one."""
        return Deadline.of_delivery(
            delivery.arrived, self.bound_s, platform_ends=delivery.platform_ends,
            sender_wait_s=self.settings.sender_wait_s if delivery.answered else None)

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
        elif isinstance(command, StopPipelineRun):
            if s.allowed_pipeline_ids and command.pipeline_id not in s.allowed_pipeline_ids:
                raise Forbidden(f"pipeline {command.pipeline_id} is not allowed here (STOPLINE_ALLOWED_PIPELINE_IDS)",
                                details=[{"field": f"{where}pipeline_id",
                                          "message": "not in STOPLINE_ALLOWED_PIPELINE_IDS"}])
        elif s.allowed_job_ids and command.job_id not in s.allowed_job_ids:
            raise Forbidden(f"build task {command.job_id} is not allowed here (STOPLINE_ALLOWED_JOB_IDS)",
                            details=[{"field": f"{where}job_id", "message": "not in STOPLINE_ALLOWED_JOB_IDS"}])

    def warm(self) -> None:
        """Build the client now: httpx's transport imports httpcore and, for https endpoints, loads the TLS
        trust store, work that would otherwise land on the first command (bench/README.md, "Cold start").
        Raises ConfigurationError."""
        self._client()

    # -- drivers -------------------------------------------------------------------------------------------
    def handle(self, raw: object, delivery: Delivery, *, index: Member = None) -> Result:
        prepared = self.prepare(raw, delivery, index=index)
        if isinstance(prepared, Result):
            return prepared
        work = prepared
        client: Client | None = None
        if not self.settings.dry_run:
            try:
                client = self._client()
            except ConfigurationError as exc:
                return self._log(self._failed(work, exc), delivery, work.started)
        def call(deadline: Deadline) -> Result:
            result = self._call(work, client, deadline)
            if delivery.durable and result.error is not None and result.error.transient:
                return self.retries.park(work, result)  # inside the claim: the key is marked pending with it
            return result

        try:
            result = self.idempotency.run(
                work.key, work.command.fingerprint(), self.deadline(delivery), call,
                field="idempotency_key" if work.command.idempotency_key else "event_id")
        except StoplineError as exc:
            result = self._failed(work, exc)
        except Exception as exc:
            log.error("internal error handling %s: %s: %s", work.command.action, type(exc).__name__, exc, exc_info=exc,
                      extra={"event_id": delivery.event_id, "error_type": "internal"})
            result = self._failed(work, internal_error())
        if not result.replayed:
            self._audit(result, delivery, work)
            return self._log(result, delivery, work.started)
        result.target = result.target or work.command.target()
        result.event_id = result.event_id or delivery.event_id
        first = result.first_outcome or str(result.outcome)
        return self._log(result, delivery, work.started, duplicate_of=first)

    def _call(self, work: Work, client: Client | None, deadline: Deadline) -> Result:
        command = work.command
        if client is None:  # dry run: validated, allowed, deduplicated, nothing called
            return Result(command.action, Outcome.DRY_RUN, command.target(), work.delivery.event_id,
                          reason=command.reason)
        reply = client.execute(command, deadline=deadline)
        if reply.outcome is Outcome.STOPPED and (command.verify if command.verify is not None
                                                 else self.settings.verify):
            reply = self._verified(client, work, reply, deadline)
        return Result(command.action, reply.outcome, command.target(), work.delivery.event_id, reply.request_id,
                      reply.attempts, api=reply.api or None, resolved=reply.resolved, error=reply.error,
                      reason=command.reason, verified=reply.verified, state_after=reply.state_after,
                      verify_calls=reply.verify_calls, schedule=reply.schedule)

    def _verified(self, client: Client, work: Work, reply: Reply, deadline: Deadline) -> Reply:
        """The stop, read back until seen stopped (stopline.verify); an unconfirmed one is a WARNING."""
        from stopline.verify import verify

        checked = verify(client, work.command, reply, deadline, self.settings.verify_s)
        if checked.verified is False:
            log.warning("%s accepted but not seen stopped within %g s (STOPLINE_VERIFY_S)",
                        work.command.action, self.settings.verify_s,
                        extra={"event_id": work.delivery.event_id, "target": work.command.target(),
                               "state_after": checked.state_after, "verify_calls": checked.verify_calls})
        return checked

    def retry(self, item: dict[str, Any], retries: Retries) -> Result | None:
        """Run a pending retry again, under its own key; None when its key is no longer pending (a duplicate
        delivery or another taker settled it). A transient failure is pending again, or abandoned."""
        delivery = Delivery(item.get("event_id"), str(item.get("trigger") or "retry"), None,
                            namespace=str(item.get("namespace") or "retry"), sender_id=item.get("sender_id"))
        prepared = self.prepare(item.get("command"), delivery)
        if isinstance(prepared, Result):  # refused now (an allowlist changed): a final answer
            return prepared
        work = Work(prepared.command, delivery, item.get("key"), prepared.started)
        client = None if self.settings.dry_run else self._client()

        def call(deadline: Deadline) -> Result:
            result = self._call(work, client, deadline)
            if result.error is not None and result.error.transient:
                return retries.again(item, result)
            return result

        deadline = Deadline.of_delivery(time.monotonic(), self.bound_s)
        if work.key is None:
            result: Result | None = call(deadline)
        else:
            result = self.idempotency.retake(work.key, work.command.fingerprint(), deadline, call)
        if result is None:
            return None
        self._audit(result, delivery, work)
        return self._log(result, delivery, work.started, retry=int(item.get("retries", 0)) + 1)

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
            from concurrent.futures import ThreadPoolExecutor  # loaded by the first batch, not every cold start

            self._pool = ThreadPoolExecutor(max_workers=self.settings.batch_concurrency,
                                            thread_name_prefix="stopline-batch")
        futures = [self._pool.submit(self.handle, raw, delivery, index=index) for raw, delivery, index in items]
        return [f.result() for f in futures]

    def _audit(self, result: Result, delivery: Delivery, work: Work) -> None:
        """Report what the command changed (stopline.audit); a failure here never touches the answer."""
        try:
            self.auditor.publish(audit.changes(result, trigger=delivery.trigger, key=work.key),
                                 budget_s=self.deadline(delivery).left())
        except Exception as exc:
            log.error("internal error reporting audit events: %s: %s", type(exc).__name__, exc, exc_info=exc,
                      extra={"event_id": delivery.event_id, "error_type": "internal"})

    # -- results --------------------------------------------------------------------------------------------
    def _failed(self, work: Work, error: StoplineError) -> Result:
        return Result(work.command.action, Outcome.FAILED, work.command.target(), work.delivery.event_id,
                      error=error, reason=work.command.reason)

    def _log(self, result: Result, delivery: Delivery, started: float, **more: Any) -> Result:
        result.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        fields: dict[str, Any] = {
            "action": result.action, "target": result.target, "outcome": str(result.outcome),
            "attempts": result.attempts, "duration_ms": result.duration_ms, "event_id": result.event_id,
            "upstream_request_id": result.upstream_request_id, "trigger": delivery.trigger,
            **({"sender_delivery_id": delivery.sender_id} if delivery.sender_id else {}),
            **({"api": result.api} if result.api else {}),
            **({"reason": result.reason} if result.reason else {}),
            **({"retry_at": round(result.retry_at, 3)} if result.retry_at else {}),
            **({"verified": result.verified, "verify_calls": result.verify_calls}
               if result.verify_calls is not None else {}), **more,
        }
        if result.error is None or "duplicate_of" in more:
            log.info("%s %s", result.action, result.outcome, extra=fields)
            return result
        err = result.error
        fields.update(status=err.status, error_type=err.type,
                      upstream_status=err.upstream.status if err.upstream else None,
                      upstream_error_code=err.upstream.error_code if err.upstream else None)
        level = logging.WARNING if err.transient or (delivery.answered and isinstance(err, RequestError)) \
            else logging.ERROR
        log.log(level, "%s failed: %s", result.action or "command", err.message, extra=fields)
        return result

    def shutdown(self) -> None:
        """Stop the batch threads; the store stays open (others may share it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def close(self) -> None:
        self.shutdown()
        self.auditor.close()
        self.idempotency.close()
