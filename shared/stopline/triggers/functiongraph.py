"""Huawei FunctionGraph: detect the trigger (APIG, DMS Kafka, DMS RabbitMQ, SMN, timer, CTS) and run the
pipeline on what it carries (event shapes in events/README.md).

APIG requests go through the HTTP target's checks and get APIG's response shape. Queue triggers run
every message, answer per-message results, and fail the invocation only when a message failed
transiently. Kafka and RabbitMQ messages carry no id of their own, so a message without an
``idempotency_key`` is keyed by its source and a hash of its bytes: a redelivered batch re-runs
nothing that already succeeded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from stopline.errors import BadRequest, StoplineError
from stopline.models import Outcome, Result
from stopline.pipeline import Delivery, Pipeline
from stopline.triggers import http
from stopline.triggers.queue import RedeliveryRequested, decode_message, failed, raise_for_redelivery

if TYPE_CHECKING:
    from stopline.auth.credentials import AkSk
    from stopline.entry import Runtime, RuntimeSource

log = logging.getLogger("stopline")


def detect(event: Any) -> str:
    """Which trigger sent ``event`` (events/README.md), or ``direct`` / ``unknown``."""
    if not isinstance(event, dict):
        return "unknown"
    if "httpMethod" in event and "requestContext" in event:
        return "apig"
    kind = str(event.get("trigger_type") or "").upper()
    if kind in ("KAFKA", "OPENSOURCEKAFKA", "ROCKETMQ"):
        return "kafka"
    if kind == "RABBITMQ":
        return "rabbitmq"
    if kind == "TIMER":
        return "timer"
    records = event.get("record")
    if isinstance(records, list) and records and isinstance(records[0], dict) and (
            records[0].get("event_source") == "smn" or "smn" in records[0]):
        return "smn"
    if isinstance(event.get("cts"), dict):
        return "cts"
    if "action" in event or "commands" in event:
        return "direct"
    return "unknown"


def _call(context: Any, name: str) -> str:
    try:
        method = getattr(context, name, None)  # a context's own __getattr__ may raise too
        value = method() if callable(method) else None
    except Exception:  # noqa: BLE001 - a runtime without an agency may raise anything here
        value = None
    return str(value) if value else ""


def deadline_of(context: Any) -> float | None:
    """When FunctionGraph ends this invocation (``time.monotonic()`` seconds), from
    ``getRemainingTimeInMilliSeconds``; None when the context does not say or says nonsense."""
    try:
        method = getattr(context, "getRemainingTimeInMilliSeconds", None)
        remaining = float(method()) if callable(method) else None
    except Exception:  # noqa: BLE001 - a context whose getter raises must not fail the invocation
        return None
    if remaining is None or not 0 < remaining < 86_400_000:  # also rejects NaN
        return None
    return time.monotonic() + remaining / 1000


def agency_credentials(context: Any) -> AkSk | None:
    """The function agency's temporary AK/SK/security token, or None when no agency is configured."""
    from stopline.auth.credentials import AkSk

    ak, sk, token = (_call(context, n) for n in ("getSecurityAccessKey", "getSecuritySecretKey",
                                                "getSecurityToken"))
    if not (ak and sk and token):
        return None
    from stopline import logs

    logs.register_secret(sk, token, temporary=True)
    return AkSk(ak, SecretStr(sk), _call(context, "getProjectID") or None, SecretStr(token), kind="agency")


def _pipeline_chooser(context: Any) -> Callable[[Runtime], Pipeline]:
    def choose(runtime: Runtime) -> Pipeline:
        if runtime.settings.credential_mode() is None:
            agency = agency_credentials(context)
            if agency is not None:
                return runtime.pipeline_for_agency(agency, agency.project_id)
        return runtime.pipeline

    return choose


def _apig(event: dict[str, Any], context: Any, runtime: RuntimeSource) -> dict[str, Any]:
    given = event.get("headers")
    headers = {str(k).lower(): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
    path = str(event.get("path") or "")
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if "x-github-event" in headers:  # a GitHub or GitLab hook pointed at the function's gateway URL
        target = "github"
    elif "x-gitlab-event" in headers:
        target = "gitlab"
    else:
        target = last if last in http.TARGET_ACTIONS else "webhook"
    raw = event.get("body") or ""

    def read_body(limit: int) -> bytes:
        if not isinstance(raw, str):
            return b"\xff"  # not a body APIG would send: fails the JSON check as 400
        if event.get("isBase64Encoded"):
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return b"\xff"
        return raw.encode()

    reply = http.handle(target, str(event.get("httpMethod") or "GET"), headers, read_body, runtime=runtime,
                        pipeline=_pipeline_chooser(context), trigger="functiongraph:apig",
                        platform_ends=deadline_of(context))
    return {"statusCode": reply.status, "isBase64Encoded": False, "headers": reply.all_headers(),
            "body": reply.content().decode()}


def _digest(message: Any) -> str:
    """A message's identity when it has no id of its own: SHA-256 of its text (or canonical JSON)."""
    text = message if isinstance(message, str) else json.dumps(message, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _messages(kind: str, event: dict[str, Any]) -> list[tuple[Any, str | None]]:
    """(message, delivery id) pairs of a queue event."""
    out: list[tuple[Any, str | None]] = []
    if kind in ("kafka", "rabbitmq"):
        for record in _list(event.get("records")):
            if not isinstance(record, dict):
                continue
            source = record.get("topic_id") or record.get("exchange") or ""
            instance = record.get("instance_id") or event.get("instance_id") or ""
            for message in _list(record.get("messages")):
                out.append((message, f"{kind}:{instance}:{source}:{_digest(message)}"))
    elif kind == "smn":
        for record in _list(event.get("record")):
            smn = record.get("smn") if isinstance(record, dict) else None
            if isinstance(smn, dict):
                message, given = smn.get("message"), smn.get("message_id")
                if not isinstance(given, str) or not given:  # a dict, list or number is not an id
                    given = f"smn:{_digest(message)}"
                out.append((message, given))
    elif kind == "timer":
        payload = event.get("user_event")
        if payload in (None, "", {}):  # a timer that only takes the due pending retries
            return out
        commands = decode_message(payload)
        base = f"timer:{event.get('trigger_name', '')}:{event.get('time', '')}"
        items = commands if isinstance(commands, list) else [commands]
        out.extend((c, f"{base}:{i}" if len(items) > 1 else base) for i, c in enumerate(items))
    return out


def initialize(context: Any) -> None:
    """FunctionGraph's initializer: the cold start's set-up, done before the first event arrives (for the
    agency's credentials when no others are configured). Never raises; see :func:`stopline.entry.warm`."""
    from stopline.entry import warm

    try:
        warm(_pipeline_chooser(context))
    except Exception as exc:
        log.error("warm-up failed: %s: %s; the first event does the set-up instead", type(exc).__name__, exc,
                  exc_info=exc, extra={"error_type": "internal"})


MAX_COMMANDS = 1000
"""Commands one FunctionGraph event may carry: a Kafka or RabbitMQ trigger's largest batch. (One HTTP
request body stays at 100.)"""


def handle(event: Any, context: Any, *, runtime: RuntimeSource) -> dict[str, Any]:
    """FunctionGraph entry point behind every supported trigger. Raises only RedeliveryRequested (a
    transient failure: FunctionGraph retries the event); whatever else goes wrong is answered."""
    try:
        return _handle(event, context, runtime)
    except RedeliveryRequested:
        raise
    except Exception as exc:  # a malformed event must never fail the invocation
        log.error("internal error handling a FunctionGraph event: %s", type(exc).__name__, exc_info=exc,
                  extra={"error_type": "internal", "trigger": "functiongraph"})
        error = StoplineError("internal error; see the logs")
        return {"ok": False, "trigger": "unknown",
                "results": [Result(None, Outcome.FAILED, error=error).to_json(with_status=True)]}


def _handle(event: Any, context: Any, runtime: RuntimeSource) -> dict[str, Any]:
    kind = detect(event)
    if kind == "apig":
        return _apig(event, context, runtime)
    if kind == "cts":
        return _cts(event, context, runtime)
    trigger = f"functiongraph:{kind}"
    if kind == "unknown":
        error = BadRequest("unrecognized event: expected an APIG, Kafka, RabbitMQ, SMN, timer or CTS event, "
                           "or a command", details=[{"field": "event", "message": "unknown trigger"}])
        return {"ok": False, "trigger": kind, "results": [failed(Delivery(None, trigger), error)
                                                          .to_json(with_status=True)]}
    try:
        pipeline = _pipeline_chooser(context)(runtime())
        retried = _take_due(pipeline) if kind == "timer" else None
    except StoplineError as exc:
        return _answer(kind, [failed(Delivery(None, trigger), exc)], None)
    try:
        if kind == "direct":
            raws = event["commands"] if isinstance(event.get("commands"), list) else [event]
            pairs: list[tuple[Any, str | None]] = [(raw, None) for raw in raws]
        else:
            pairs = _messages(kind, event)
        if len(pairs) > MAX_COMMANDS:
            raise BadRequest(f"the event carries {len(pairs)} commands; at most {MAX_COMMANDS} per event "
                             f"(set the trigger's batch size to {MAX_COMMANDS} or less)",
                             details=[{"field": "records" if kind != "direct" else "commands",
                                       "message": f"{len(pairs)} commands, over {MAX_COMMANDS}"}])
    except StoplineError as exc:
        return _answer(kind, [failed(Delivery(None, trigger), exc)], retried)
    slots: list[Result | None] = []
    runnable: list[tuple[object, Delivery, int | None]] = []
    deadline = deadline_of(context)
    for message, event_id in pairs:
        delivery = Delivery(event_id, trigger, namespace=f"fg:{kind}", platform_ends=deadline, durable=True)
        try:
            runnable.append((decode_message(message), delivery, None))
            slots.append(None)
        except StoplineError as exc:
            slots.append(failed(delivery, exc))
    ran = iter(pipeline.handle_each(runnable))  # records run concurrently, bounded by STOPLINE_BATCH_CONCURRENCY
    return _answer(kind, [slot if slot is not None else next(ran) for slot in slots], retried)


def _take_due(pipeline: Pipeline) -> list[Result]:
    """A timer event's sweep of the due pending retries, whatever the event carries: a ``user_event`` that
    is no command (a note typed into the console) must not stop the sweep the 1-minute timer is for. A
    store outage leaves the retries where they are for the next tick: a warning, not an internal error."""
    from stopline.errors import Transient

    try:
        return pipeline.retries.run_due(pipeline)
    except Transient as exc:
        log.warning("could not take the due pending retries (%s); the next timer event tries again", exc,
                    extra={"trigger": "functiongraph:timer", "error_type": "unavailable"})
        return []


def _answer(kind: str, results: list[Result], retried: list[Result] | None) -> dict[str, Any]:
    """The invocation's answer; raises first when a result asks the platform to redeliver the event."""
    raise_for_redelivery(results)
    pending = sum(1 for r in results if r.pending)
    return {"ok": all(r.ok for r in results), "trigger": kind,
            "results": [r.to_json(with_status=True) for r in results],
            **({"pending": pending} if pending else {}),
            **({"retried": [r.to_json(with_status=True) for r in retried]} if retried is not None else {})}


def _cts(event: dict[str, Any], context: Any, runtime: RuntimeSource) -> dict[str, Any]:
    """A Cloud Trace Service record: the rules (``source: cts``) decide what it stops. Each command is keyed
    ``cts:<trace_id>:<rule>:<index>``, so a record delivered twice runs nothing twice."""
    from stopline import cts

    trigger = "functiongraph:cts"
    try:
        built = runtime()
        pipeline = _pipeline_chooser(context)(built)
        record = cts.normalise(event)
        rules = built.rules
    except StoplineError as exc:
        results = [failed(Delivery(None, trigger), exc)]
        raise_for_redelivery(results)
        return {"ok": False, "trigger": "cts", "results": [r.to_json(with_status=True) for r in results]}
    delivery = Delivery(record.trace_id, trigger, namespace="cts", platform_ends=deadline_of(context), durable=True)
    results, answer = http.run_rules(pipeline, rules, record, delivery)
    raise_for_redelivery(results)
    return {"trigger": "cts", **answer}
