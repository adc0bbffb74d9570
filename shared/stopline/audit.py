"""Audit events (docs/operations.md, "Audit trail"): one CloudEvent 1.0 per effective change -- a build
stopped, a task deleted, a DataArts job or instance stopped, a pipeline run stopped -- and per abandoned
retry, so another system can answer "who stopped my build, and why?".

An event's ``id`` is derived from the command's idempotency key and the thing changed, so a retry of the
same delivery names the same change with the same id and a sink can drop what it has seen; a duplicate
delivery changes nothing and emits nothing. Events are written as one ``{"audit": ...}`` log line each.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

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
    tail = _member(item) if item is not None else {k: target[k] for k in ("build_no", "pipeline_run_id")
                                                   if k in target}
    return "/".join([str(head), *(str(v) for v in tail.values())])


def emit(events: list[dict[str, Any]]) -> None:
    """Write each event as one ``{"audit": ...}`` log line."""
    for one in events:
        log.info("audit %s %s", one["type"], one["subject"], extra={"audit": one})
