"""How one command ended: the :class:`Outcome` and the :class:`Result` every trigger answers with, and the
form a result is kept in for duplicates (:meth:`Result.to_record` / :meth:`Result.from_record`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from stopline.errors import StoplineError


class Outcome(StrEnum):
    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"
    DELETED = "deleted"
    ALREADY_DELETED = "already_deleted"
    NOTHING_RUNNING = "nothing_running"
    DUPLICATE = "duplicate"
    DRY_RUN = "dry_run"
    PENDING = "pending"
    """A command whose sender never redelivers failed transiently: kept as a pending retry (docs/operations.md)."""
    FAILED = "failed"



@dataclass(slots=True)
class Result:
    """How one command ended: an outcome, or a failure carrying its error.

    ``to_json`` renders the response object of docs/commands.md.
    """

    action: str | None
    outcome: Outcome
    target: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    upstream_request_id: str | None = None
    attempts: int = 0
    api: str | None = None
    first_outcome: str | None = None
    error: StoplineError | None = None
    duration_ms: float = 0.0
    resolved: tuple[str, list[dict[str, Any]]] | None = None
    """What a resolving command found and did: ``("builds", [...])`` or ``("instances", [...])``."""
    replayed: bool = False
    """Rebuilt from the idempotency store (a duplicate): nothing was called for it."""
    retry_at: float | None = None
    """A pending command's next try (epoch seconds)."""
    reason: str | None = None
    """Why the command was sent (its ``reason`` field, or the default its rule gave it)."""
    verified: bool | None = None
    """After ``verify``: whether every stopped item was seen stopped (None: nothing to read)."""
    state_after: str | None = None
    """After ``verify`` of one build or run: the cloud's last state string for it."""
    verify_calls: int | None = None
    """After ``verify``: the cloud calls the polls made (None: not verified)."""
    schedule: Outcome | None = None
    """A DataArts ``scope: both`` command: its schedule's own outcome (for the audit event; not answered)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.outcome is not Outcome.PENDING

    @property
    def pending(self) -> bool:
        return self.outcome is Outcome.PENDING

    @property
    def status(self) -> int:
        return 200 if self.error is None or self.pending else self.error.status

    def to_record(self) -> dict[str, Any] | None:
        """What a duplicate of this command will get back, as stored; None when it must not be remembered:
        after a transient failure (the redelivery runs anew) or a configuration problem (fixing it must not
        need a new event id)."""
        err = self.error
        if err is not None and not self.pending and (err.transient or err.type == "configuration"):
            return None
        stored: dict[str, Any] = {
            "ok": self.ok, "action": self.action, "outcome": str(self.outcome), "target": self.target,
            # A long delivery id is not kept (the key already stands for it by its hash): memory per key
            # stays bounded; a duplicate then reports its own delivery's id.
            "event_id": self.event_id if self.event_id is None or len(self.event_id) <= 200 else None,
            "upstream_request_id": self.upstream_request_id,
            "attempts": self.attempts, "api": self.api,
            "resolved": list(self.resolved) if self.resolved is not None else None,
        }
        if self.retry_at is not None:
            stored["retry_at"] = self.retry_at
        if self.reason is not None:
            stored["reason"] = self.reason
        if self.verify_calls is not None:
            stored.update(verified=self.verified, state_after=self.state_after, verify_calls=self.verify_calls)
        if err is not None:
            stored["error"] = {"type": err.type, "status": err.status, "message": err.message,
                               "details": err.details, "upstream": err.upstream.to_json() if err.upstream else None}
        return stored

    @classmethod
    def from_record(cls, stored: dict[str, Any]) -> Result:
        """A duplicate's result: the first one's, marked ``replayed``; a success becomes ``duplicate`` with
        ``first_outcome``, a failure is the same failure again."""
        from stopline.errors import UpstreamInfo, error_class

        first = stored.get("error")
        error: StoplineError | None = None
        if isinstance(first, dict):
            kind = error_class(str(first.get("type", "")), first.get("status"))
            up = first.get("upstream")
            error = kind(str(first.get("message", "")), details=first.get("details") or [],
                         upstream=UpstreamInfo(up["status"], up.get("error_code"), up.get("error_msg"))
                         if isinstance(up, dict) else None)
        resolved = stored.get("resolved")
        pending = stored.get("outcome") == Outcome.PENDING
        outcome = Outcome.PENDING if pending else Outcome.DUPLICATE if error is None else Outcome.FAILED
        return cls(
            stored.get("action"), outcome,
            stored.get("target") or {}, stored.get("event_id"), stored.get("upstream_request_id"), 0,
            api=stored.get("api"), first_outcome=stored.get("outcome") if error is None else None, error=error,
            resolved=(resolved[0], resolved[1]) if isinstance(resolved, list) and len(resolved) == 2 else None,
            replayed=True, retry_at=stored.get("retry_at") if pending else None,
            reason=stored.get("reason") if isinstance(stored.get("reason"), str) else None,
            verified=stored.get("verified"), state_after=stored.get("state_after"),
            verify_calls=stored.get("verify_calls"),
        )

    def to_json(self, *, with_status: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "action": self.action}
        if self.error is None or self.pending:
            body["outcome"] = str(self.outcome)
            if self.first_outcome is not None and not self.pending:
                body["first_outcome"] = self.first_outcome
        if self.error is not None:
            body["error"] = self.error.to_json()
        if self.retry_at is not None:
            body["retry_at"] = datetime.fromtimestamp(self.retry_at, UTC).isoformat(timespec="seconds").replace(
                "+00:00", "Z")
        body["target"] = self.target
        if self.reason is not None:
            body["reason"] = self.reason
        if self.verify_calls is not None:
            body["verified"] = self.verified
            if self.state_after is not None:
                body["state_after"] = self.state_after
            body["verify_calls"] = self.verify_calls
        body["event_id"] = self.event_id
        body["upstream_request_id"] = self.upstream_request_id
        body["attempts"] = self.attempts
        if self.api is not None:
            body["api"] = self.api
        if self.resolved is not None:
            body[self.resolved[0]] = self.resolved[1]
        if with_status:
            body["status"] = self.status
        return body
