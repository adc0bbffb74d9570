"""HTTP targets, independent of the web framework (docs/commands.md).

Checks run in the contract's order: 405 method -> 413 size (before the body is read) -> 415 content
type -> 401 signature over the raw body -> 400 JSON -> 422 fields -> 403 allowlists -> dedupe -> call.
Flask and Starlette adapters (``triggers.frameworks``) only supply the method, headers and a way to
read at most N bytes of body; FunctionGraph's APIG adapter supplies the same from its event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from stopline import jsonin
from stopline.errors import (
    BadRequest,
    InvalidCommand,
    MethodNotAllowed,
    PayloadTooLarge,
    StoplineError,
    Transient,
    UnsupportedEncoding,
    UnsupportedMediaType,
)
from stopline.models import Result
from stopline.pipeline import Delivery, Pipeline

if TYPE_CHECKING:
    from stopline.cts import CtsEvent
    from stopline.entry import Runtime, RuntimeSource
    from stopline.rules import Rules
    from stopline.senders import Source
    from stopline.sources import Ignored, SourceEvent

log = logging.getLogger("stopline")
MAX_BODY = 256 * 1024
SOURCE_MAX_BODY = 25 * 1024 * 1024
"""GitHub and GitLab send up to 25 MB (a GitLab pipeline event lists every job): their targets take that."""
DRAIN_LIMIT = 4 * 1024 * 1024
"""A refused body up to this size is read and discarded after deciding 413, so the sender (still writing)
sees the answer instead of a reset connection; a larger one is not read at all."""
MAX_BATCH = 100
TARGET_ACTIONS: dict[str, str | None] = {
    "stop_build": "stop_build",
    "delete_build_task": "delete_build_task",
    "stop_dataarts_job": "stop_dataarts_job",
    "stop_pipeline_run": "stop_pipeline_run",
    "webhook": None,
    "retries": None,
    "github": None,
    "gitlab": None,
}
SOURCE_TARGETS = ("github", "gitlab")
"""Pipeline sources (docs/sources.md): their own verification, and rules instead of commands."""


class HttpReply(NamedTuple):
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = MappingProxyType({})
    body_unread: bool = False
    """Refused before the request's body was read (and too large to drain): the server should not read
    it after answering, nor keep the connection for another request."""

    def content(self) -> bytes:
        # ASCII escapes: whatever a refusal echoes (even a lone surrogate) always encodes.
        return json.dumps(self.body, separators=(",", ":")).encode()

    def all_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


class Parsed(NamedTuple):
    delivery: Delivery
    commands: list[Any] | None  # a batch
    command: Any = None  # a single command
    event: SourceEvent | Ignored | None = None  # a pipeline source's event
    sweep: bool | None = None  # the retries target: run what is due (False) or everything pending (True)


def source_for(target: str, sources: Mapping[str, Source]) -> Source:
    """The sender behind a target: GitHub and GitLab have their own, and so has ``retries`` when the
    platform authenticates its callers; every other target takes Standard Webhooks."""
    return sources.get(target) or sources["webhook"]


def error_reply(error: StoplineError) -> HttpReply:
    headers = {}
    if error.transient:
        headers["Retry-After"] = str(max(1, round(error.retry_after or 1)))
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = "POST"  # a 405 must say what the target accepts (RFC 9110, section 15.5.6)
    if isinstance(error, UnsupportedEncoding):
        headers["Accept-Encoding"] = "identity"
    return HttpReply(error.status, {"ok": False, "error": error.to_json()}, headers)


def result_reply(result: Result) -> HttpReply:
    if result.error is not None:
        return error_reply(result.error)._replace(body=result.to_json())
    return HttpReply(200, result.to_json())


def batch_reply(results: list[Result]) -> HttpReply:
    return HttpReply(200, {"ok": all(r.ok for r in results),
                           "results": [r.to_json(with_status=True) for r in results]})


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _not_json(content_type: str | None, source: Source) -> str:
    """The 415's message, with the sender's own advice when its body came form-encoded (GitHub's default)."""
    message = f"content type {content_type or '(none)'!r} is not JSON; send application/json"
    if source.form_hint and (content_type or "").lower().startswith("application/x-www-form-urlencoded"):
        message += f" ({source.form_hint})"
    return message


def precheck(method: str, headers: Mapping[str, str], target: str) -> None:
    """The checks before the body is read: method, then the declared size."""
    if target not in TARGET_ACTIONS:
        raise BadRequest(f"unknown target {target!r}")
    if method.upper() != "POST":
        raise MethodNotAllowed(f"{method.upper()} is not allowed; send a POST")
    length = declared_length(headers)
    limit = max_body(target)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body is {length} bytes; the limit is {limit} bytes ({_size(limit)})")


def max_body(target: str) -> int:
    """The largest body ``target`` reads: 25 MB for GitHub and GitLab (their senders' limit), 256 KiB else."""
    return SOURCE_MAX_BODY if target in SOURCE_TARGETS else MAX_BODY


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` a request declares, or None. Only ASCII digits count (``"²"`` passes
    ``str.isdigit`` but not ``int``), and 5,000 digits are refused before ``int`` refuses them."""
    value = headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadRequest("Content-Length is not a number of bytes",
                         details=[{"field": "content-length", "message": "expected ASCII digits"}])
    return int(value)


def parse(target: str, headers: Mapping[str, str], body: bytes, *, sources: Mapping[str, Source]) -> Parsed:
    """Size of what was read (a body sent without Content-Length), content type, signature, JSON and the
    request's shape -- in the contract's order; the pipeline does the rest."""
    limit = max_body(target)
    if len(body) > limit:
        raise PayloadTooLarge(f"body is over the limit of {limit} bytes ({_size(limit)})")
    source = source_for(target, sources)
    if not _is_json(headers.get("content-type")):
        raise UnsupportedMediaType(_not_json(headers.get("content-type"), source))
    encoding = (headers.get("content-encoding") or "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedEncoding(f"content encoding {encoding!r} is not accepted; send the body uncompressed "
                                  "(the signature covers the uncompressed bytes)",
                                  details=[{"field": "content-encoding", "message": "only identity"}])
    signed_id = source.verify(headers, body)
    data = jsonin.loads(body)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object",
                         details=[{"field": "body", "message": f"got a JSON {type(data).__name__}"}])
    delivery = Delivery(source.key(signed_id, data), target, TARGET_ACTIONS[target], namespace=source.name,
                        answered=True, sender_id=source.logged_id(headers), durable=source.pipeline_source)
    if source.pipeline_source:
        from stopline.sources import EVENT_HEADER, normalise

        event_header = headers.get(EVENT_HEADER[target])
        event = normalise("github" if target == "github" else "gitlab", event_header, data,
                          instance=headers.get("x-gitlab-instance"))
        return Parsed(delivery, None, None, event)
    if target == "retries":
        everything = data.get("all", False)
        if not isinstance(everything, bool) or set(data) - {"all"}:
            raise InvalidCommand('the retries target takes {} or {"all": true}',
                                 details=[{"field": "all", "message": "a boolean, the only field"}])
        return Parsed(delivery, None, sweep=everything)
    if target == "webhook" and "commands" not in data and "action" not in data:
        raise InvalidCommand("send one command with an action, or a batch {\"commands\": [...]}", details=[
            {"field": "action", "message": "required for a single command"},
            {"field": "commands", "message": "required for a batch (a list of 1 to 100 commands)"}])
    if target == "webhook" and "commands" in data:
        commands = data["commands"]
        extra = sorted(set(data) - {"commands"})
        if not isinstance(commands, list) or not 1 <= len(commands) <= MAX_BATCH or extra:
            problem = ("must be a list of 1 to 100 commands" if not extra
                       else f"a batch body has only 'commands' (also got {', '.join(extra)})")
            raise InvalidCommand(f"commands {problem}", details=[{"field": "commands", "message": problem}])
        return Parsed(delivery, commands)
    return Parsed(delivery, None, data)


def _has_body(headers: Mapping[str, str]) -> bool:
    return headers.get("content-length", "").strip() not in ("", "0") or "transfer-encoding" in headers


def _drain_size(exc: StoplineError, headers: Mapping[str, str]) -> int:
    """How much of a refused body to read and discard (0: none)."""
    if not isinstance(exc, PayloadTooLarge):
        return 0
    length = declared_length(headers)  # valid: PayloadTooLarge came from it
    return length if length is not None and length <= DRAIN_LIMIT else 0


def internal_error(exc: Exception) -> HttpReply:
    """An unexpected failure (a bug): logged with its type, answered as a JSON 500 without details."""
    log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc, extra={"error_type": "internal"})
    return HttpReply(500, {"ok": False, "error": {"type": "internal", "message": "internal error; see the logs",
                                                  "details": []}})


def refusal(exc: StoplineError, target: str, event_id: str | None = None) -> HttpReply:
    """A request refused before the pipeline: logged once -- configuration problems at ERROR for the
    operator, refused requests at WARNING with the reason (docs/sources.md)."""
    from stopline import logs

    logs.ensure_configured()  # the first line of a fresh process is JSON too, even before the runtime exists
    fields = {"status": exc.status, "error_type": exc.type, "target": target, "event_id": event_id}
    if exc.status >= 500:
        log.error("configuration error: %s", exc.message, extra=fields)
    else:
        log.warning("request refused (%s): %s", exc.status, exc.message, extra=fields)
    return error_reply(exc)


def _known_id(target: str, headers: Mapping[str, str]) -> str | None:
    """The delivery id a refused request claims (for its log line; it may not be verified)."""
    from stopline.senders import GitHub, GitLab, StandardWebhooks

    return {"github": GitHub.logged_id, "gitlab": GitLab.logged_id}.get(target, StandardWebhooks.logged_id)(headers)


def _runtime_for(target: str, method: str, headers: Mapping[str, str], runtime: RuntimeSource) -> Runtime:
    """The checks before the body is read, then the runtime (whose settings the parse needs)."""
    precheck(method, headers, target)
    return runtime()


def _parse_with(runtime: Runtime, target: str, headers: Mapping[str, str], body: bytes) -> Parsed:
    return parse(target, headers, body, sources=runtime.sources)


def source_reply(pipeline: Pipeline, rules: Rules | None, event: SourceEvent | Ignored,
                 delivery: Delivery) -> HttpReply:
    """A pipeline source's answer (section 11.1): ignored, or the event, the matched rules and one result
    per generated command, run like a batch keyed ``<delivery id>:<rule>:<index>``."""
    from stopline.sources import Ignored

    if isinstance(event, Ignored):
        log.info("%s event ignored: %s", delivery.trigger, event.reason,
                 extra={"target": delivery.trigger, "event_id": delivery.event_id, "outcome": "ignored"})
        return HttpReply(200, {"ok": True, "ignored": event.reason, "results": []})
    return HttpReply(200, run_rules(pipeline, rules, event, delivery)[1])


def run_rules(pipeline: Pipeline, rules: Rules | None, event: SourceEvent | CtsEvent,
              delivery: Delivery) -> tuple[list[Result], dict[str, Any]]:
    """Evaluate the rules on a source's event and run what they make, like a batch keyed
    ``<delivery id>:<rule>:<index>``: the results, and the answer with ``event``, ``matched``, ``results``
    (and ``warnings``)."""
    evaluation = rules.evaluate(event) if rules is not None else None
    matched, fired = (evaluation.matched, evaluation.fired) if evaluation is not None else ([], [])
    warnings = evaluation.warnings if evaluation is not None else []
    for warning in warnings:
        log.info("%s", warning, extra={"target": delivery.trigger, "event_id": delivery.event_id})
    if not fired:
        log.info("%s %s event matched no rule", event.source, event.kind,
                 extra={"target": delivery.trigger, "event_id": delivery.event_id, "outcome": "no_rule",
                        "rules_loaded": rules is not None})
    results = pipeline.handle_each([(f.command, delivery, f"{f.rule}:{f.index}") for f in fired])
    pending = sum(1 for r in results if r.pending)
    return results, {"ok": all(r.ok for r in results), "event": event.fields(), "matched": [r.name for r in matched],
                     "results": [r.to_json(with_status=True) for r in results],
                     **({"pending": pending} if pending else {}), **({"warnings": warnings} if warnings else {})}


def _sweep(pipeline: Pipeline, everything: bool) -> HttpReply:
    """The ``retries`` target: run what is due (or everything pending). A store that cannot be read is a 503
    the scheduler retries, logged once at WARNING; the retries stay where they are."""
    try:
        ran = pipeline.retries.run_due(pipeline, everything=everything, limit=1000 if everything else 100)
        left = len(pipeline.retries.pending())
    except Transient as exc:
        log.warning("could not take the pending retries: %s", exc.message,
                    extra={"status": exc.status, "error_type": exc.type, "target": "retries"})
        return error_reply(exc)
    return HttpReply(200, {"ok": all(r.ok for r in ran), "ran": len(ran),
                           "results": [r.to_json(with_status=True) for r in ran], "pending": left})


def _dispatch(pipeline: Pipeline, parsed: Parsed, delivery: Delivery, rules: Rules | None) -> HttpReply:
    """Run the parsed command (or batch) and render its answer; both drivers end here."""
    try:
        if parsed.event is not None:
            return source_reply(pipeline, rules, parsed.event, delivery)
        if parsed.sweep is not None:
            return _sweep(pipeline, parsed.sweep)
        if parsed.commands is not None:
            return batch_reply(pipeline.handle_batch(parsed.commands, delivery))
        return result_reply(pipeline.handle(parsed.command, delivery))
    except StoplineError as exc:  # an event that lacks what a matching rule needs (422)
        return refusal(exc, delivery.trigger, delivery.event_id)
    except Exception as exc:  # noqa: BLE001 - a bug must still answer in the contract's shape
        return internal_error(exc)


def handle(target: str, method: str, headers: Mapping[str, str], read_body: Callable[[int], bytes],
           *, runtime: RuntimeSource, pipeline: Callable[[Runtime], Pipeline] | None = None,
           trigger: str | None = None, platform_ends: float | None = None) -> HttpReply:
    """Synchronous HTTP target (Flask mode, FunctionGraph APIG, which may bring its own pipeline, its
    trigger name and when the platform ends the invocation)."""
    reading = False
    try:
        built = _runtime_for(target, method, headers, runtime)
        reading = True
        parsed = _parse_with(built, target, headers, read_body(max_body(target)))
        chosen = pipeline(built) if pipeline is not None else built.pipeline
    except StoplineError as exc:
        reply = refusal(exc, target, _known_id(target, headers))
        if drain := _drain_size(exc, headers):
            read_body(drain)
        elif not reading:  # refused on its headers (method, size): the body was never touched
            reply = reply._replace(body_unread=_has_body(headers))
        return reply
    delivery = parsed.delivery if trigger is None else replace(parsed.delivery, trigger=trigger,
                                                                          platform_ends=platform_ends)
    return _dispatch(chosen, parsed, delivery, built.rules)


async def ahandle(target: str, method: str, headers: Mapping[str, str],
                  read_body: Callable[[int], Awaitable[bytes]], *, runtime: RuntimeSource) -> HttpReply:
    """Asynchronous HTTP target (ASGI mode): the same checks; the body is read on the event loop, then the
    pipeline runs on a worker thread (see :mod:`stopline.pipeline` for why not httpx's async client)."""
    try:
        built = _runtime_for(target, method, headers, runtime)
        parsed = _parse_with(built, target, headers, await read_body(max_body(target)))
    except StoplineError as exc:
        if drain := _drain_size(exc, headers):
            await read_body(drain)
        return refusal(exc, target, _known_id(target, headers))
    from anyio import to_thread

    return await to_thread.run_sync(_dispatch, built.pipeline, parsed, parsed.delivery, built.rules)
