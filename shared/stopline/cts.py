"""Huawei Cloud Trace Service (CTS) records as a pipeline source: what FunctionGraph's CTS trigger delivers,
normalised for the rules (``source: cts``).

A CTS trigger invokes a function with ``{"cts": {<one trace record>}}`` whenever an operation the trigger
subscribes to is recorded -- for example CodeArts Pipeline's ``stop`` of a pipeline (service
``CloudPipeline``, resource type ``pipeline``). Nothing is signed: the record comes from the platform,
through the function's own trigger. Its id is ``trace_id``, which keys every command a rule makes of it.

The record's shape varies between what Huawei documents and what tenants have captured (events/README.md):
``time`` is a string like ``2018/06/26 08:54:07 GMT+08:00`` or epoch milliseconds, and ``resource_id`` a
string or an empty object. Both are read; a field that is missing or empty is simply absent, and a rule
that needs it does not match.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from stopline.errors import BadRequest

MATCH_FIELDS = ("service_type", "resource_type", "trace_name", "resource_name", "resource_id", "user",
                "trace_status")
"""What a ``source: cts`` rule's ``when`` may match (globs)."""
PLACEHOLDERS = ("resource_id", "resource_name", "trace_name", "user", "time")
_GMT = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT([+-])(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class CtsEvent:
    """What a ``source: cts`` rule sees of one trace record."""

    service_type: str | None
    resource_type: str | None
    trace_name: str | None
    resource_name: str | None
    resource_id: str | None
    user: str | None
    trace_status: str | None
    time: str | None
    """When the operation happened, as RFC 3339 UTC when the record's time could be read."""
    trace_id: str
    source: Literal["cts"] = "cts"
    kind: str = "recorded"
    origin: Mapping[str, str] = field(default_factory=lambda: {"user": "cts.user.name"})

    def fields(self) -> dict[str, Any]:
        return {"source": self.source, "trace_id": self.trace_id,
                **{name: getattr(self, name) for name in (*MATCH_FIELDS, "time")}}


def _text(value: Any) -> str | None:
    """A string field's value; None for a missing one, an empty string or a non-string (``resource_id: {}``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def _time(value: Any) -> str | None:
    """``2018/06/26 08:54:07 GMT+08:00`` or epoch milliseconds -> RFC 3339 UTC; other strings as they are."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    text = _text(value)
    if text is None:
        return None
    match = _GMT.match(text.strip())
    if match is None:
        return text
    y, mo, d, h, mi, s, sign, zh, zm = match.groups()
    offset = timedelta(hours=int(zh), minutes=int(zm)) * (1 if sign == "+" else -1)
    local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone(offset))
    return local.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record_of(event: Any) -> dict[str, Any]:
    """The trace record of a FunctionGraph CTS event (``{"cts": {...}}``), or of a bare record.

    Raises:
        BadRequest: it is neither.
    """
    record = event.get("cts") if isinstance(event, dict) and "cts" in event else event
    if not isinstance(record, dict):
        raise BadRequest("not a CTS event: expected {\"cts\": {<trace record>}}",
                         details=[{"field": "cts", "message": "expected a JSON object"}])
    return record


def normalise(event: Any) -> CtsEvent:
    """The event a ``source: cts`` rule matches on. Raises BadRequest for something that is not a record."""
    record = record_of(event)
    user = record.get("user")
    trace_id = _text(record.get("trace_id"))
    if trace_id is None:  # a record without its id still gets a stable one: the hash of what it says
        canon = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
        trace_id = "sha256:" + hashlib.sha256(canon.encode()).hexdigest()[:32]
    return CtsEvent(
        service_type=_text(record.get("service_type")), resource_type=_text(record.get("resource_type")),
        trace_name=_text(record.get("trace_name")), resource_name=_text(record.get("resource_name")),
        resource_id=_text(record.get("resource_id")),
        user=_text(user.get("name")) if isinstance(user, dict) else _text(user),
        trace_status=_text(record.get("trace_status")), time=_time(record.get("time")), trace_id=trace_id)
