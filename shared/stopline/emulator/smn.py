"""The emulator's SMN publish call: the ``smn://`` audit sink's one request, kept for tests and the
control API (``GET /_emulator/state``, ``smn_messages``).

Written from the documented request and answer (docs/cloud-answers.md): ``{"subject", "message"}`` in,
``{"request_id", "message_id"}`` out. Topics are not seeded: any well-formed topic URN whose project is
the path's is accepted. Refusals use stand-in codes that say so (``SMN.EMULATOR.*``, HTTP 400): the
cloud's own codes for these cases are not documented.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import unquote

from stopline.emulator.replies import EmuReply, EmuRequest, cloud_error, json_reply
from stopline.emulator.state import CloudState

CODE_BAD_TOPIC = "SMN.EMULATOR.BAD_TOPIC"
CODE_BAD_BODY = "SMN.EMULATOR.BAD_BODY"
_TOPIC = re.compile(r"^urn:smn:[a-z0-9-]+:(?P<project>[A-Za-z0-9]{1,64}):[A-Za-z0-9_-]{1,255}$")

ROUTES = (
    ("POST", re.compile(r"^/v2/(?P<project_id>[^/]+)/notifications/topics/(?P<topic_urn>[^/]+)/publish$"),
     "publish"),
)


def publish(state: CloudState, request: EmuRequest, project_id: str, topic_urn: str) -> EmuReply:
    topic = unquote(topic_urn)
    found = _TOPIC.match(topic)
    if found is None or found.group("project") != project_id:
        return cloud_error(400, CODE_BAD_TOPIC, "stand-in: the topic URN is malformed or of another project.")
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = None
    subject = body.get("subject") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message or (subject is not None and (
            not isinstance(subject, str) or len(subject.encode()) > 512)):
        return cloud_error(400, CODE_BAD_BODY, "stand-in: message is required; subject is at most 512 bytes.")
    message_id = uuid.uuid4().hex
    state.publish(topic, subject, message, message_id)
    return json_reply(200, {"request_id": uuid.uuid4().hex, "message_id": message_id})
