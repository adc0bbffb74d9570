"""Publishing an audit event to a Huawei SMN topic (``STOPLINE_AUDIT_URL=smn://<topic urn>``).

SMN fans a message out to whatever the topic's subscriptions name (HTTP(S), email, SMS, FunctionGraph,
IM integrations), so one topic routes audit events anywhere. The publish call is signed like every other
cloud call (the same credentials, signer and driver); its answer is read here because it shares nothing
with the build and job answers: a 2xx with a ``message_id`` is taken, 429/5xx and no answer are worth
another try, anything else is a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stopline.errors import ConfigurationError, StoplineError, Transient, UpstreamAuth, UpstreamRejected
from stopline.wire import Call, decode_body

if TYPE_CHECKING:
    from stopline.client import ClientCore
    from stopline.operations import Step

SUBJECT_BYTES = 512


def subject_of(event: dict[str, Any]) -> str:
    """``<type> <subject>``, cut to SMN's 512 bytes without splitting a character."""
    text = f"{event.get('type', '')} {event.get('subject', '')}".strip()
    return text.encode()[:SUBJECT_BYTES].decode(errors="ignore")


def plan(core: ClientCore, topic_urn: str, event: dict[str, Any]) -> Call:
    if not core.project_id:
        raise ConfigurationError("publishing audit events to SMN needs the IAM project id: set "
                                 "HUAWEICLOUD_SDK_PROJECT_ID")
    body = json.dumps({"subject": subject_of(event), "message": json.dumps(event, separators=(",", ":"))},
                      separators=(",", ":")).encode()
    # The URN's colons are percent-encoded in the path, as the official SDK sends them.
    return Call.build("POST", core.endpoints.smn,
                      f"/v2/{core.project_id}/notifications/topics/{quote(topic_urn, safe='')}/publish",
                      api="smn", headers={"Content-Type": "application/json;charset=UTF-8"}, body=body)


def publish_flow(core: ClientCore, topic_urn: str, event: dict[str, Any]) -> Generator[Step, Any, str]:
    """One attempt at publishing ``event``: SMN's message id, or the failure raised."""
    reply = yield from core.exchange(plan(core, topic_urn, event))
    data = decode_body(reply.body)
    if 200 <= reply.status < 300 and isinstance(data, dict) and data.get("message_id"):
        return str(data["message_id"])
    info = reply.upstream()
    said = (f"SMN answered HTTP {reply.status}" + (f" {info.error_code}" if info.error_code else "")
            + (f": {info.error_msg}" if info.error_msg else ""))
    error: StoplineError
    if reply.status in (401, 403):
        error = UpstreamAuth(f"{said} (the credentials need SMN publish permission on the topic)", upstream=info)
    elif reply.status == 429 or reply.status >= 500 or 200 <= reply.status < 300:
        error = Transient(said, upstream=info)
    else:
        error = UpstreamRejected(said, upstream=info)
    raise error
