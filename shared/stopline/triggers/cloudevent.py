"""The ``on_event`` target: a CloudEvent whose data is a command, or a Pub/Sub push envelope.

The event ``id`` (or the Pub/Sub ``messageId``) is the delivery id. A ``type`` of
``stopline.<action>`` supplies a missing ``action``. Envelopes are read leniently.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stopline.errors import BadRequest, StoplineError
from stopline.models import Result
from stopline.pipeline import Delivery
from stopline.triggers.queue import decode_message, failed, raise_for_redelivery

if TYPE_CHECKING:
    from stopline.entry import RuntimeSource

TYPE_PREFIX = "stopline."


def _envelope(data: Any) -> dict[str, Any] | None:
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, dict) else None


def delivery_of(attributes: Mapping[str, Any], data: Any) -> Delivery:
    """The delivery id (Pub/Sub messageId, else the CloudEvent id) and the action ``type`` implies."""
    event_type = str(attributes.get("type") or "")
    action = event_type[len(TYPE_PREFIX):] if event_type.startswith(TYPE_PREFIX) else None
    message = _envelope(data)
    message_id = message.get("messageId") or message.get("message_id") if message else None
    if message_id:  # Pub/Sub ids are unique per project: one namespace (docs/exactly-once.md)
        return Delivery(str(message_id), "on_event", action, namespace="pubsub")
    event_id = attributes.get("id")
    # CloudEvent ids are unique per source only (CloudEvents spec), so the source is part of the namespace.
    return Delivery(str(event_id) if event_id else None, "on_event", action,
                    namespace=f"cloudevent:{attributes.get('source') or ''}")


def unwrap(data: Any) -> Any:
    """The raw command inside a CloudEvent's data (or its Pub/Sub envelope); raises BadRequest."""
    if isinstance(data, bytes | str) and data:
        data = decode_message(data)
    message = _envelope(data)
    if message is not None:
        encoded = message.get("data")
        if not isinstance(encoded, str):
            raise BadRequest("Pub/Sub message has no data",
                             details=[{"field": "message.data", "message": "required (base64 JSON)"}])
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Pub/Sub message data is not base64",
                             details=[{"field": "message.data", "message": "invalid base64"}]) from None
        return decode_message(decoded)
    if not isinstance(data, dict):
        raise BadRequest("CloudEvent data must be a JSON object (a command)",
                         details=[{"field": "data", "message": "expected a JSON object"}])
    return decode_message(data)  # depth and text checks on what functions-framework decoded


def handle(attributes: Mapping[str, Any], data: Any, *, runtime: RuntimeSource) -> Result:
    """Run one event; raise RedeliveryRequested on transient failure, return the Result otherwise."""
    delivery = delivery_of(attributes, data)
    try:
        raw = unwrap(data)
    except StoplineError as exc:
        return failed(delivery, exc)
    try:
        built = runtime()
    except StoplineError as exc:
        result = failed(delivery, exc)
    else:
        result = built.pipeline.handle(raw, delivery)
    raise_for_redelivery([result])
    return result
