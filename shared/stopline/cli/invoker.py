"""``stopline invoke``: run one function target in-process on an event file, as the platform would.

HTTP targets get the file as their body, signed with the first configured webhook secret (or, with
none configured, a one-off secret set for this process only), so the signature check runs as in
production; the ``github`` and ``gitlab`` targets get it as their sender would send it (GitHub's
signature, GitLab's token, the event header given or read from the payload). ``--emulate`` runs inside
:func:`stopline.emulator.mock_huaweicloud` with the demo state (and the demo rules).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from stopline.entry import get_runtime

HTTP_TARGETS = ("stop_build", "delete_build_task", "stop_dataarts_job", "stop_pipeline_run", "webhook", "retries")
SOURCE_TARGETS = ("github", "gitlab")


class LocalContext:
    """A FunctionGraph context for local runs: request id and project, no agency keys."""

    def __init__(self) -> None:
        self._request_id = uuid.uuid4().hex

    def getRequestID(self) -> str:
        return self._request_id

    def getProjectID(self) -> str:
        return os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID", "")

    def getRemainingTimeInMilliSeconds(self) -> int:
        return 30_000

    def getSecurityAccessKey(self) -> str:
        return ""

    def getSecuritySecretKey(self) -> str:
        return ""

    def getSecurityToken(self) -> str:
        return ""

    def getUserData(self, key: str, default: str = "") -> str:
        return os.environ.get(key, default)


def _signing_secret(variable: str = "STOPLINE_WEBHOOK_SECRETS") -> str:
    """The first configured secret of ``variable``, or a one-off one set for this process."""
    from stopline.entry import reset_runtime

    configured = [s.strip() for s in os.environ.get(variable, "").split(",") if s.strip()]
    if configured:
        return configured[0]
    os.environ[variable] = ("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
                            if variable == "STOPLINE_WEBHOOK_SECRETS" else secrets.token_urlsafe(24))
    reset_runtime()
    return os.environ[variable]


def _source_headers(target: str, body: bytes, event_type: str | None) -> dict[str, str]:
    """What GitHub or GitLab sends with the payload (``stopline send``'s headers): its event header -- given,
    or read from the payload -- and its proof of origin, with the configured (or a one-off) secret."""
    from stopline.cli.sender import source_headers
    from stopline.sources import guess_event_type

    source: Literal["github", "gitlab"] = "github" if target == "github" else "gitlab"
    try:
        data = json.loads(body)
    except ValueError:  # not JSON: sent as it is, and refused by the target as it would be in production
        data = None
    kind = event_type or (guess_event_type(source, data) if isinstance(data, dict) else "")
    secret = _signing_secret("STOPLINE_GITHUB_SECRETS" if source == "github" else "STOPLINE_GITLAB_TOKENS")
    return {name.lower(): value for name, value in source_headers(source, kind, body, secret=secret).items()}


def _http(target: str, body: bytes, event_type: str | None = None) -> tuple[int, Any]:
    from stopline.triggers import http
    from stopline.webhooks import sign

    proof = _source_headers(target, body, event_type) if target in SOURCE_TARGETS else \
        sign(_signing_secret(), f"invoke_{uuid.uuid4().hex}", body)
    headers = {"content-type": "application/json", "content-length": str(len(body)), **proof}
    reply = http.handle(target, "POST", headers, lambda limit: body[: limit + 1], runtime=get_runtime)
    ok = 200 <= reply.status < 300 and bool(reply.body.get("ok"))
    return (0 if ok else 1), {"status": reply.status, "headers": reply.all_headers(), "body": reply.body}


def _on_event(event: dict[str, Any]) -> tuple[int, Any]:
    from stopline.triggers import cloudevent
    from stopline.triggers.queue import RedeliveryRequested

    if "specversion" in event:
        attributes = {k: v for k, v in event.items() if k not in ("data", "data_base64")}
        data = event.get("data")
        if data is None and "data_base64" in event:
            try:
                data = base64.b64decode(event["data_base64"], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("the CloudEvent's data_base64 is not valid base64") from None
    else:  # a Pub/Sub push body, as the push subscription posts it
        message = event.get("message") or {}
        attributes = {"id": message.get("messageId") or message.get("message_id"),
                      "type": "google.cloud.pubsub.topic.v1.messagePublished"}
        data = event
    try:
        result = cloudevent.handle(attributes, data, runtime=get_runtime)
    except RedeliveryRequested as exc:
        return 1, {"acknowledged": False, "redeliver": True, "reason": str(exc)}
    return (0 if result.ok else 1), {"acknowledged": True, **result.to_json(with_status=True)}


def _resign_apig(event: dict[str, Any]) -> dict[str, Any]:
    """Sign an APIG event's body afresh (sample files carry stale signatures), keeping its webhook-id. A
    body that is not valid base64 has nothing to sign: its headers stay, and the handler refuses it as it
    would in the cloud."""
    from stopline.webhooks import sign

    secret = _signing_secret()
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else str(raw).encode()
    except (binascii.Error, ValueError):
        return event
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    msg_id = headers.get("webhook-id") or f"invoke_{uuid.uuid4().hex}"
    return {**event, "headers": {**headers, **sign(secret, msg_id, body)}}


def _functiongraph(event: Any) -> tuple[int, Any]:
    from stopline.triggers.functiongraph import detect, handle
    from stopline.triggers.queue import RedeliveryRequested

    if detect(event) == "apig":
        event = _resign_apig(event)
    try:
        answer = handle(event, LocalContext(), runtime=get_runtime)
    except RedeliveryRequested as exc:
        return 1, {"invocation_failed": True, "reason": str(exc)}
    if "statusCode" in answer:
        return (0 if 200 <= answer["statusCode"] < 300 else 1), answer
    return (0 if answer.get("ok") else 1), answer


def invoke_file(target: str, path: Path, *, emulate: bool = False, event_type: str | None = None) -> tuple[int, Any]:
    """(exit code, printed answer) of running ``target`` on the event in ``path``."""
    raw = path.read_bytes()
    try:
        event = json.loads(raw)
    except ValueError as exc:
        if target not in HTTP_TARGETS and target not in SOURCE_TARGETS:  # an HTTP target answers it itself
            raise ValueError(f"{path}: not JSON ({exc})") from None
        event = None
    manager: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if emulate:
        from stopline.emulator import mock_huaweicloud

        manager = mock_huaweicloud("demo")
    with manager, _demo_rules(emulate):
        if not emulate:
            from stopline.entry import get_runtime

            get_runtime().client()  # missing credentials: a usage error (exit 2), not a failed invocation
        if target in HTTP_TARGETS or target in SOURCE_TARGETS:
            return _http(target, raw, event_type)
        if target == "on_event":
            if not isinstance(event, dict):
                raise ValueError(f"{path}: a CloudEvent or Pub/Sub envelope must be a JSON object")
            return _on_event(event)
        return _functiongraph(event)


@contextlib.contextmanager
def _demo_rules(emulate: bool) -> Iterator[None]:
    """With ``--emulate`` and no STOPLINE_RULES, the demo state comes with the demo rules (a GitHub, GitLab
    or CTS event then stops what the dev stack would); the environment is restored afterwards."""
    from stopline.entry import reset_runtime

    if not emulate or os.environ.get("STOPLINE_RULES"):
        yield
        return
    from stopline.cli.devstack import DEMO_RULES

    os.environ["STOPLINE_RULES"] = str(DEMO_RULES)
    reset_runtime()
    try:
        yield
    finally:
        os.environ.pop("STOPLINE_RULES", None)
        reset_runtime()
