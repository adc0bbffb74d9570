"""Signed webhook commands sent to the in-process ``webhook`` target (the ``signed_cloud`` fixture in
conftest.py points stopline at the served demo emulator): the tests that look at one answer at a time
(reasons, verification, audit) share these; and a FunctionGraph context whose invocation is about to end,
for the tests that hand an event to the FunctionGraph handler in process."""

from __future__ import annotations

import json
import time
from typing import Any

from stopline import webhooks
from stopline.entry import get_runtime
from stopline.triggers import http

from .functions.harness import SECRET


def post_reply(command: dict[str, Any], msg_id: str) -> http.HttpReply:
    """Sign ``command`` as a Standard Webhooks sender does and hand it to the webhook target."""
    body = json.dumps(command).encode()
    headers = {"content-type": "application/json", **webhooks.sign(SECRET, msg_id, body)}
    return http.handle("webhook", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)


def post(command: dict[str, Any], msg_id: str) -> dict[str, Any]:
    """The answer's body, which must be a 200."""
    reply = post_reply(command, msg_id)
    assert reply.status == 200, reply.body
    return dict(reply.body)


class EndingContext:
    """A FunctionGraph context whose invocation ends ``remaining_ms`` after it is made."""

    def __init__(self, remaining_ms: float) -> None:
        self.ends = time.monotonic() + remaining_ms / 1000

    def getRemainingTimeInMilliSeconds(self) -> float:
        return (self.ends - time.monotonic()) * 1000
