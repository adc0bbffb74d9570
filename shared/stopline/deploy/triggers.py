"""A function's triggers as ``serverless.yml`` gives them and as FunctionGraph's trigger API takes them.

The file uses the Huawei plugin's shape (``triggerTypeCode``, ``status``, ``eventData`` in camelCase or
snake_case); this module turns one into the API's create body, checks the fields each type requires,
and says whether a trigger the cloud already has is the same one. The API cannot edit a trigger in
place, so one that differs is deleted and created again by the planner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stopline.settings import SMN_TOPIC

SYNC_TYPES = frozenset({"APIG", "DEDICATEDGATEWAY"})
"""Triggers that invoke synchronously; every other kind invokes asynchronously (a queue function)."""
SECRET_FIELDS = frozenset({"kafka_password", "access_password", "db_password"})
"""Never printed, and not compared: whether the API returns them is not documented."""
DISABLEABLE = frozenset({"TIMER", "DDS", "DMS", "KAFKA", "LTS"})
_REQUIRED: dict[str, tuple[str, ...]] = {
    "TIMER": ("name", "schedule_type", "schedule"),
    "APIG": ("name", "path", "protocol", "req_method", "group_id", "match_mode", "env_name", "env_id", "auth"),
    "DEDICATEDGATEWAY": ("name", "path", "protocol", "req_method", "group_id", "match_mode", "env_name", "env_id",
                         "auth", "instance_id"),
    "CTS": ("name", "operations"),
    "KAFKA": ("instance_id", "topic_ids", "batch_size"),
    "RABBITMQ": ("instance_id", "batch_size", "access_password", "exchange_name"),
    "SMN": ("topic_urn",),
    "OBS": ("bucket", "events"),
}
_LABEL = {"TIMER": "name", "APIG": "path", "DEDICATEDGATEWAY": "path", "CTS": "name", "KAFKA": "topic_ids",
          "RABBITMQ": "exchange_name", "SMN": "topic_urn", "OBS": "bucket"}
_INTEGERS = frozenset({"batch_size", "type", "polling_interval", "max_fetch_bytes"})
_BOOLEANS = frozenset({"kafka_ssl_enable", "ssl_enable", "is_serial"})
_UPPER = frozenset({"protocol", "match_mode", "req_method", "auth"})
_RATE = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[mhd])$")
_RATE_MAX = {"m": 60, "h": 24, "d": 30}
_OPERATION = re.compile(r"^[^:\s]+:[^:\s]+:[^:\s]+$")


class DeployFileError(Exception):
    """What is wrong with ``serverless.yml``, key by key; nothing was called."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [message]


def label(type_code: str, event_data: dict[str, Any]) -> str:
    """How a trigger is named in what is printed: its type and the field that tells it apart."""
    value = event_data.get(_LABEL.get(type_code, "name"), "")
    return f"{type_code} {','.join(value) if isinstance(value, list) else value}".strip()


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Trigger:
    type_code: str
    status: str
    event_data: dict[str, Any]
    origin: str
    """Where the file says it, for errors: ``functions.kafka.events[0]``."""

    @property
    def asynchronous(self) -> bool:
        return self.type_code not in SYNC_TYPES

    @property
    def label(self) -> str:
        return label(self.type_code, self.event_data)

    def body(self) -> dict[str, Any]:
        """The create-trigger body (``event_type_code`` equals the type, as the console and plugin send)."""
        return {"trigger_type_code": self.type_code, "trigger_status": self.status,
                "event_type_code": self.type_code, "event_data": self.event_data}

    def differences(self, current: dict[str, Any]) -> list[str]:
        """What differs from a trigger the cloud lists (empty: the same trigger). Only fields the answer
        carries are compared, and never a secret."""
        if current.get("trigger_type_code") != self.type_code:
            return ["type"]
        found = []
        if str(current.get("trigger_status") or "ACTIVE") != self.status:
            found.append(f"status {current.get('trigger_status')} -> {self.status}")
        theirs = current.get("event_data") or {}
        for key, value in self.event_data.items():
            if key in SECRET_FIELDS or key not in theirs:
                continue
            mine, old = (value, theirs[key])
            if isinstance(value, dict) and isinstance(old, dict):
                if any(old.get(k) != v for k, v in value.items() if k in old):
                    found.append(key)
            elif _comparable(mine) != _comparable(old):
                found.append(f"{key} {_shown(old)} -> {_shown(mine)}")
        return found


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _shown(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse(event: Any, origin: str) -> Trigger:
    """One entry of a function's ``events``; :class:`DeployFileError` names each bad field."""
    if not isinstance(event, dict):
        raise DeployFileError(f"{origin}: must be a mapping with triggerTypeCode and eventData")
    type_code = str(event.get("triggerTypeCode") or event.get("trigger_type_code") or "").upper()
    if type_code not in _REQUIRED:
        raise DeployFileError(f"{origin}.triggerTypeCode: {type_code or 'unset'} is not one stopline deploy creates "
                              f"({', '.join(sorted(_REQUIRED))})")
    status = str(event.get("status") or event.get("trigger_status") or "ACTIVE").upper()
    problems = []
    if status not in ("ACTIVE", "DISABLED"):
        problems.append(f"{origin}.status: {status} is not ACTIVE or DISABLED")
    elif status == "DISABLED" and type_code not in DISABLEABLE:
        problems.append(f"{origin}.status: a {type_code} trigger cannot be DISABLED (only "
                        f"{', '.join(sorted(DISABLEABLE))})")
    raw = event.get("eventData") or event.get("event_data") or {}
    if not isinstance(raw, dict):
        raise DeployFileError(f"{origin}.eventData: must be a mapping")
    data, func_info = _event_data(type_code, raw, origin, problems)
    if func_info:
        data["func_info"] = func_info
    missing = [name for name in _REQUIRED[type_code] if data.get(name) in (None, "", [])]
    problems += [f"{origin}.eventData.{_camel(name)}: required for a {type_code} trigger" for name in missing]
    problems += _checks(type_code, data, origin)
    if problems:
        raise DeployFileError("; ".join(problems), problems)
    return Trigger(type_code, status, data, origin)


def _event_data(type_code: str, raw: dict[str, Any], origin: str,
                problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    data: dict[str, Any] = {}
    func_info: dict[str, Any] = {}
    for key, value in raw.items():
        name = snake(str(key))
        if type_code in SYNC_TYPES and name in ("timeout", "invocation_type"):
            if name == "timeout":
                value = whole_number(value, f"{origin}.eventData.{key}", problems)
            func_info[name] = value
            continue
        if name in _INTEGERS:
            value = whole_number(value, f"{origin}.eventData.{key}", problems)
        elif name in _BOOLEANS:
            value = str(value).lower() in ("true", "1", "yes")
        elif name in _UPPER and isinstance(value, str):
            value = value.upper()
        data[name] = value
    if type_code in SYNC_TYPES:
        data.setdefault("type", 1)
        data.setdefault("backend_type", "FUNCTION")
        func_info.setdefault("timeout", 5000)
    return data, func_info


def _checks(type_code: str, data: dict[str, Any], origin: str) -> list[str]:
    """The documented bounds of the fields that have them."""
    problems = []
    batch = data.get("batch_size")
    if isinstance(batch, int) and not 1 <= batch <= 1000:
        problems.append(f"{origin}.eventData.batchSize: {batch} is outside 1..1000")
    if type_code == "TIMER" and data.get("schedule_type") not in (None, "Rate", "Cron"):
        problems.append(f"{origin}.eventData.scheduleType: {data['schedule_type']} is not Rate or Cron")
    if type_code == "TIMER" and data.get("schedule_type") == "Rate":
        rate = _RATE.match(str(data.get("schedule", "")))
        if rate is None or int(rate["n"]) > _RATE_MAX[rate["unit"]]:
            problems.append(f"{origin}.eventData.schedule: {data.get('schedule')!r} is not a rate FunctionGraph takes "
                            "(minutes 1m..60m, hours 1h..24h or days 1d..30d)")
    if type_code == "SMN" and data.get("topic_urn") and not re.fullmatch(SMN_TOPIC, str(data["topic_urn"])):
        problems.append(f"{origin}.eventData.topicUrn: {data['topic_urn']!r} is not an SMN topic URN")
    if type_code == "CTS" and data.get("operations"):
        operations = data["operations"]
        if not isinstance(operations, list) or not all(_OPERATION.match(str(op)) for op in operations):
            problems.append(f"{origin}.eventData.operations: a list of service:resource:trace names, e.g. "
                            "CloudPipeline:pipeline:stop")
        elif len(operations) > 100:
            problems.append(f"{origin}.eventData.operations: {len(operations)} is over FunctionGraph's 100")
    if type_code == "KAFKA" and data.get("topic_ids") and not isinstance(data["topic_ids"], list):
        problems.append(f"{origin}.eventData.topicIds: a list of topic names")
    return problems


def whole_number(value: Any, key: str, problems: list[str]) -> int | None:
    """``value`` as an int, or None after noting the problem under ``key``."""
    try:
        return int(value)
    except (TypeError, ValueError):
        problems.append(f"{key}: {value!r} is not a whole number")
        return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
