"""Audit events (docs/operations.md, "Audit trail"): one CloudEvent 1.0 per effective change -- a build
stopped, a task deleted, a DataArts job or instance stopped, a pipeline run stopped -- and per abandoned
retry, so another system can answer "who stopped my build, and why?".

An event's ``id`` is derived from the command's idempotency key and the thing changed, so a retry of the
same delivery names the same change with the same id and a sink can drop what it has seen; a duplicate
delivery changes nothing and emits nothing. Events are written as one ``{"audit": ...}`` log line each,
or sent to ``STOPLINE_AUDIT_URL`` (:class:`Auditor`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stopline.errors import StoplineError, Transient, UpstreamRejected
from stopline.result import Outcome, Result

log = logging.getLogger("stopline")

_KINDS = {"stop_build": "build", "delete_build_task": "task", "stop_pipeline_run": "pipeline_run"}
_EFFECTIVE = {str(Outcome.STOPPED), str(Outcome.DELETED)}


def iso(epoch: float) -> str:
    """RFC 3339 UTC, seconds: the CloudEvent ``time``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def event(kind: str, verb: str, subject: str, data: dict[str, Any], *, source: str, key: str | None) -> dict[str, Any]:
    """One CloudEvent; ``key`` (stable for a change) makes its id, else the id is random."""
    ident = hashlib.sha256(f"{key}|{kind}|{subject}".encode()).hexdigest()[:32] if key else uuid.uuid4().hex
    return {"specversion": "1.0", "id": ident, "source": f"stopline/{source}",
            "type": f"com.stopline.{kind}.{verb}", "subject": subject, "time": iso(time.time()),
            "datacontenttype": "application/json", "data": data}


def changes(result: Result, *, trigger: str, key: str | None) -> list[dict[str, Any]]:
    """The events of one command's result: one per thing it stopped or deleted, none for anything else."""
    if result.replayed or result.error is not None or str(result.outcome) not in _EFFECTIVE:
        return []
    target = result.target
    base = {"action": result.action, "outcome": str(result.outcome), "target": target, "reason": result.reason,
            "event_id": result.event_id, "trigger": trigger, "upstream_request_id": result.upstream_request_id,
            "verified": result.verified}
    items = result.resolved[1] if result.resolved is not None else None
    if items is None:
        kind = _KINDS.get(str(result.action), "dataarts_job")
        subject = _subject(target, None)
        verb = "deleted" if result.outcome is Outcome.DELETED else "stopped"
        return [event(kind, verb, subject, {**base, "state_after": result.state_after}, source=trigger, key=key)]
    out = []
    if result.schedule is Outcome.STOPPED:  # scope both: the job's schedule changed too
        out.append(event("dataarts_job", "stopped", str(target.get("job_name", "")), base, source=trigger, key=key))
    for item in items:
        if item.get("outcome") != str(Outcome.STOPPED):
            continue
        kind = ("build" if "build_no" in item else "pipeline_run" if "pipeline_run_id" in item
                else "dataarts_instance")
        data = {**base, "target": {**_identity(target), **_member(item)}, "verified": item.get("verified"),
                "state_after": item.get("state_after"), "upstream_request_id": item.get("upstream_request_id")}
        out.append(event(kind, "stopped", _subject(target, item), data, source=trigger, key=key))
    return out


def _identity(target: dict[str, Any]) -> dict[str, Any]:
    return {k: target[k] for k in ("job_id", "job_name", "project_id", "workspace", "pipeline_id") if k in target}


def _member(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("build_no", "instance_id", "pipeline_run_id") if k in item}


def _subject(target: dict[str, Any], item: dict[str, Any] | None) -> str:
    """``<job id>/<build>``, ``<job name>/<instance>``, ``<pipeline id>/<run>``, or the thing alone."""
    head = target.get("job_id") or target.get("pipeline_id") or target.get("job_name") or ""
    tail = _member(item if item is not None else target)
    return "/".join([str(head), *(str(v) for v in tail.values())])


def emit(events: list[dict[str, Any]]) -> None:
    """Write each event as one ``{"audit": ...}`` log line."""
    for one in events:
        log.info("audit %s %s", one["type"], one["subject"], extra={"audit": one})


class Auditor:
    """Where the events go: log lines, or (``STOPLINE_AUDIT_URL``) a receiver that gets each one POSTed as a
    structured CloudEvent signed with Standard Webhooks headers. A send that fails transiently is kept as
    a pending retry (stopline.retries) and sent again by whatever takes retries; the stop it reports is
    never held up or failed by it -- one attempt, bounded by ``timeout_s``."""

    def __init__(self, url: str | None, secret: str | None, *, timeout_s: float, park: Callable[[dict[str, Any]], bool],
                 cloud: Callable[[], Any] | None = None, transport: Any = None) -> None:
        self.url, self._secret, self.timeout_s = url, secret, timeout_s
        self._park, self._transport, self._cloud = park, transport, cloud
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the secret never shows
        return f"Auditor(url={self.url!r})"

    def publish(self, events: list[dict[str, Any]], *, budget_s: float | None = None) -> None:
        """Log or send ``events``; ``budget_s`` is what the delivery's deadline leaves: sends share it, and
        what it cannot cover waits as a pending retry instead of holding the answer up."""
        if self.url is None:
            emit(events)
            return
        ends = None if budget_s is None else time.monotonic() + budget_s
        for one in events:
            left = self.timeout_s if ends is None else min(self.timeout_s, ends - time.monotonic())
            failure = self.send(one, timeout_s=left) if left >= 0.1 else Transient("no time left to send it")
            if failure is None:
                continue
            if failure.transient and self._park(one):
                log.warning("audit event %s not delivered (%s); kept as a pending retry", one["id"], failure.message)
            else:  # written out in full, so it is not lost
                log.error("audit event %s not delivered: %s", one["id"], failure.message, extra={"audit": one})

    def send(self, one: dict[str, Any], *, timeout_s: float | None = None) -> StoplineError | None:
        """POST one event; None when the receiver took it (any 2xx), else the failure (5xx, 429 and
        transport failures transient; any other answer permanent)."""
        if self.url is not None and self.url.startswith("smn://"):
            return self._publish(self.url[len("smn://"):], one, timeout_s or self.timeout_s)
        import httpx

        from stopline.webhooks import sign

        if self.url is None or self._secret is None:  # settings refuse an http(s) sink without a secret
            return StoplineError("no audit receiver or secret configured")
        from stopline.bounded import bounded_exchange

        body = json.dumps(one, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/cloudevents+json", "User-Agent": "stopline-audit",
                   **sign(self._secret, str(one["id"]), body)}
        budget = timeout_s or self.timeout_s
        with bounded_exchange(budget) as ends:  # a receiver that dribbles its answer is cut off at the bound
            try:
                answer = self._http().post(self.url, content=body, headers=headers, timeout=budget)
            except httpx.HTTPError as exc:
                if time.monotonic() >= ends:
                    return Transient(f"audit receiver did not answer within {budget:.1f} s")
                return Transient(f"audit receiver unreachable: {type(exc).__name__}")
        if 200 <= answer.status_code < 300:
            return None
        said = f"audit receiver answered HTTP {answer.status_code}"
        return Transient(said) if answer.status_code >= 500 or answer.status_code == 429 else \
            UpstreamRejected(said)

    def _publish(self, topic_urn: str, one: dict[str, Any], timeout_s: float) -> StoplineError | None:
        """One signed publish to the SMN topic through the cloud client (``stopline.smn``)."""
        from stopline.deadline import Deadline
        from stopline.smn import publish_flow

        if self._cloud is None:
            return StoplineError("no cloud client to publish to SMN with")
        try:
            client = self._cloud()
        except StoplineError as exc:
            return exc
        now = time.monotonic()  # soft end: this send's share; hard end: room for one whole attempt
        bound = Deadline(now + timeout_s, now + max(timeout_s, client.core.timeout_s) + 1)
        found = client.read(f"SMN topic {topic_urn}", publish_flow(client.core, topic_urn, one), bound)
        return found if isinstance(found, StoplineError) else None

    def _http(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                from stopline.bounded import bound_client

                self._client = httpx.Client(timeout=self.timeout_s, transport=self._transport)
                bound_client(self._client)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
