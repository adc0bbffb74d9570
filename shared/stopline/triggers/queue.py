"""What every queue-like trigger shares: decode a message into a command, run it, decide ack or redeliver.

A message that is not JSON, or not an object, is a permanent failure (acknowledged, logged once at
ERROR): redelivering it cannot help. Transient failures -- and missing credentials, which an operator
can fix -- make the invocation fail so the platform redelivers; idempotency keeps the successes of
the same batch from running twice.
"""

from __future__ import annotations

import logging
from typing import Any

from stopline.errors import BadRequest, ConfigurationError, StoplineError
from stopline.models import Outcome, Result
from stopline.pipeline import Delivery

log = logging.getLogger("stopline")


class RedeliveryRequested(Exception):
    """Raised to fail an invocation so the platform delivers the event again.

    Its message is shown by functions-framework in the 500 body, so it names the failure only.
    """


def decode_message(payload: str | bytes | dict[str, Any] | Any) -> Any:
    """A queue message's command: a JSON object, or JSON text of one."""
    if isinstance(payload, dict):  # already decoded by the platform: still held to the same rules
        from stopline import jsonin

        jsonin.check(payload, "message")
        return payload
    if isinstance(payload, bytes | str):
        from stopline import jsonin

        return jsonin.loads(payload, field="message")
    raise BadRequest("message must be a JSON object",
                     details=[{"field": "message", "message": f"got {type(payload).__name__}"}])


def failed(delivery: Delivery, error: StoplineError) -> Result:
    """A message refused before the pipeline (undecodable): logged once at ERROR, then acknowledged."""
    log.error("message refused: %s", error.message,
              extra={"event_id": delivery.event_id, "trigger": delivery.trigger, "status": error.status,
                     "error_type": error.type, "outcome": "failed"})
    return Result(delivery.action, Outcome.FAILED, event_id=delivery.event_id, error=error)


def needs_redelivery(result: Result) -> bool:
    """A transient failure (or missing configuration) that is not safely pending in the store."""
    error = result.error
    return error is not None and not result.pending and (error.transient or isinstance(error, ConfigurationError))


def raise_for_redelivery(results: list[Result]) -> None:
    retry = [r for r in results if needs_redelivery(r)]
    if retry:
        first = retry[0].error
        assert first is not None
        raise RedeliveryRequested(
            f"{len(retry)} of {len(results)} command(s) failed transiently ({first.type}: {first.message}); "
            "redeliver the event")
