"""The ``on_event`` target: a CloudEvent whose data is a command, or a Pub/Sub push envelope.

The event ``id`` (or the Pub/Sub ``messageId``) is the delivery id. A ``type`` of
``stopline.<action>`` supplies a missing ``action``. Envelopes are read leniently (section 1).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from stopline.errors import BadRequest, StoplineError
from stopline.models import Result
from stopline.pipeline import Delivery
from stopline.triggers.queue import decode_message, failed, raise_for_redelivery

TYPE_PREFIX = "stopline."


def unwrap(attributes: Mapping[str, Any], data: Any) -> tuple[Any, Delivery]:
    """(raw command, delivery) from a CloudEvent's attributes and data; raises BadRequest."""
    event_type = str(attributes.get("type") or "")
    action = event_type[len(TYPE_PREFIX):] if event_type.startswith(TYPE_PREFIX) else None
    event_id = attributes.get("id")
    if isinstance(data, bytes | str) and data:
        data = decode_message(data)
    if isinstance(data, dict) and isinstance(data.get("message"), dict):
        message = data["message"]
        event_id = message.get("messageId") or message.get("message_id") or event_id
        delivery = Delivery(str(event_id) if event_id else None, "on_event", action)
        encoded = message.get("data")
        if not isinstance(encoded, str):
            raise BadRequest("Pub/Sub message has no data",
                             details=[{"field": "message.data", "message": "required (base64 JSON)"}])
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Pub/Sub message data is not base64",
                             details=[{"field": "message.data", "message": "invalid base64"}]) from None
        return decode_message(decoded), delivery
    delivery = Delivery(str(event_id) if event_id else None, "on_event", action)
    if not isinstance(data, dict):
        raise BadRequest("CloudEvent data must be a JSON object (a command)",
                         details=[{"field": "data", "message": "expected a JSON object"}])
    return data, delivery


def handle(attributes: Mapping[str, Any], data: Any) -> Result:
    """Run one event; raise RedeliveryRequested on transient failure, return the Result otherwise."""
    from stopline.entry import get_runtime

    try:
        raw, delivery = unwrap(attributes, data)
    except StoplineError as exc:
        return failed(Delivery(str(attributes.get("id") or "") or None, "on_event"), exc)
    try:
        runtime = get_runtime()
    except StoplineError as exc:
        result = failed(delivery, exc)
    else:
        result = runtime.pipeline.handle(raw, delivery)
    raise_for_redelivery([result])
    return result
