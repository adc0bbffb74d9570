"""GitHub and GitLab verification and normalisation (docs/sources.md), in process: the documented
test vector, rotation, every refusal, GitLab tokens and signing tokens (signed by the `standardwebhooks`
library), delivery ids, and each event kind of events/ read as it is."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from stopline.errors import InvalidCommand, Unauthorized
from stopline.senders import GitHub, GitLab, Source, StandardWebhooks
from stopline.sources import Ignored, SourceEvent, normalise, verify_github, verify_gitlab
from stopline.triggers.http import parse

from .conftest import ROOT

EVENTS = ROOT / "events"
GITHUB_SECRET = b"It's a Secret to Everybody"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def test_github_documented_test_vector() -> None:
    """GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!"."""
    headers = {"x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    verify_github((GITHUB_SECRET,), headers, b"Hello, World!")


@pytest.mark.parametrize(("headers", "body", "reason"), [
    ({"x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
     b"Hello, World?", "does not match"),
    ({"x-hub-signature-256": "sha256=" + "0" * 64}, b"Hello, World!", "does not match"),
    ({"x-hub-signature": "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"}, b"Hello, World!", "sha1"),
    ({}, b"Hello, World!", "missing"),
    ({"x-hub-signature-256": "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, b"Hello, World!",
     "does not match"),
])
def test_github_refusals(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(Unauthorized) as info:
        verify_github((GITHUB_SECRET,), headers, body)
    assert reason in info.value.message and "Everybody" not in info.value.message


def test_github_rotation_accepts_either_secret() -> None:
    import hashlib
    import hmac

    body = b'{"zen": "x"}'
    for secret in (b"old-secret-value", b"new-secret-value"):
        sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        verify_github((b"new-secret-value", b"old-secret-value"), {"x-hub-signature-256": sig}, body)
    with pytest.raises(Unauthorized):
        sig = "sha256=" + hmac.new(b"retired-secret", body, hashlib.sha256).hexdigest()
        verify_github((b"new-secret-value", b"old-secret-value"), {"x-hub-signature-256": sig}, body)


def test_gitlab_token_right_wrong_missing() -> None:
    verify_gitlab((b"tok-1", b"tok-2"), (), {"x-gitlab-token": "tok-2"}, b"{}", tolerance_s=300)
    for headers in ({"x-gitlab-token": "tok-3"}, {}):
        with pytest.raises(Unauthorized):
            verify_gitlab((b"tok-1",), (), headers, b"{}", tolerance_s=300)


def test_gitlab_signing_token_with_the_standardwebhooks_library() -> None:
    """A hook with a signing token: Standard Webhooks headers made by the reference library verify; once a
    signature header is there it must verify, whatever X-Gitlab-Token says."""
    secret = "whsec_" + base64.b64encode(b"gitlab-signing-token-32-bytes!!!").decode()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    body = json.dumps(load("gitlab-pipeline-canceled.json")).encode()
    now = int(time.time())
    signature = Webhook(secret).sign("msg_gl_1", _dt(now), body.decode())
    headers = {"webhook-id": "msg_gl_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    verify_gitlab((), (key,), headers, body, tolerance_s=300)
    with pytest.raises(Unauthorized):
        verify_gitlab((b"tok",), (key,), {**headers, "x-gitlab-token": "tok"}, body + b" ", tolerance_s=300)
    with pytest.raises(Unauthorized):  # a signature but no signing secret configured: never falls back
        verify_gitlab((b"tok",), (), {**headers, "x-gitlab-token": "tok"}, body, tolerance_s=300)


def _dt(ts: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def test_sender_delivery_ids_are_logged_never_keyed() -> None:
    """The ids in unsigned headers are for the log; keys come from what the signature covers."""
    assert GitHub.logged_id({"x-github-delivery": "72d3162e"}) == "72d3162e"
    gl = {"idempotency-key": "idem", "webhook-id": "wid", "x-gitlab-webhook-uuid": "hook", "x-gitlab-event-uuid": "ev"}
    assert GitLab.logged_id(gl) == "idem"
    assert GitLab.logged_id({k: v for k, v in gl.items() if k != "idempotency-key"}) == "wid"
    assert GitLab.logged_id({"x-gitlab-webhook-uuid": "hook", "x-gitlab-event-uuid": "ev"}) == "hook"
    assert GitLab.logged_id({"x-gitlab-event-uuid": "ev"}) is None
    run = json.loads((EVENTS / "github-workflow_run-cancelled.json").read_text())
    key = GitHub(()).key(None, run)
    wr = run["workflow_run"]
    assert key == f"workflow_run:{wr['id']}:{wr['run_attempt']}:completed:cancelled"
    pipeline = json.loads((EVENTS / "gitlab-pipeline-canceled.json").read_text())
    attrs = pipeline["object_attributes"]
    assert GitLab(()).key(None, pipeline) == f"pipeline:{attrs['id']}:{attrs['status']}"
    assert GitLab(()).key("msg_signed", pipeline) == "msg_signed"  # a signing token signs webhook-id


@pytest.mark.parametrize(("source", "event_type", "file", "expected"), [
    ("github", "workflow_run", "github-workflow_run-cancelled.json",
     {"kind": "cancelled", "repository": "Codertocat/Hello-World", "workflow": "Manually triggered workflow",
      "branch": "main", "sha": "5779607b49aab1200488439f02372c57b4f75444", "run_id": "1589141559"}),
    ("github", "workflow_run", "github-workflow_run-requested.json",
     {"kind": "started", "repository": "octo-org/octo-repo", "workflow": "test", "branch": "master"}),
    ("github", "workflow_job", "github-workflow_job-cancelled.json",
     {"kind": "cancelled", "repository": "Codertocat/Hello-World", "workflow": "CodeQL", "branch": "main",
      "run_id": "2202229078"}),
    ("gitlab", "Pipeline Hook", "gitlab-pipeline-canceled.json",
     {"kind": "cancelled", "repository": "acme/shop", "workflow": None, "branch": "main", "run_id": "31",
      "url": "https://gitlab.example.com/acme/shop/-/pipelines/31"}),
    ("gitlab", "Pipeline Hook", "gitlab-pipeline-running.json",
     {"kind": "started", "branch": "feature/x", "sha": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"}),
    ("gitlab", "Job Hook", "gitlab-job-canceled.json",
     {"kind": "cancelled", "repository": "acme/shop", "branch": "main", "run_id": "31"}),
])
def test_events_normalise(source: str, event_type: str, file: str, expected: dict[str, Any]) -> None:
    event = normalise(source, event_type, load(file))  # type: ignore[arg-type]
    assert isinstance(event, SourceEvent)
    fields = event.fields()
    assert fields["source"] == source and {k: fields[k] for k in expected} == expected


@pytest.mark.parametrize(("source", "event_type", "file", "reason"), [
    ("github", "ping", "github-ping.json", "ping"),
    ("github", "workflow_run", "github-workflow_run-completed-success.json", "workflow_run completed (success)"),
    ("github", "push", "github-ping.json", "is not acted on"),
    ("gitlab", "Push Hook", "gitlab-pipeline-canceled.json", "is not acted on"),
])
def test_events_ignored(source: str, event_type: str, file: str, reason: str) -> None:
    event = normalise(source, event_type, load(file))  # type: ignore[arg-type]
    assert isinstance(event, Ignored) and reason in event.reason


def test_gitlab_canceling_and_job_statuses() -> None:
    data = load("gitlab-pipeline-canceled.json")
    data["object_attributes"]["status"] = "canceling"
    assert isinstance(normalise("gitlab", "Pipeline Hook", data), SourceEvent)
    for status, kind in (("created", "started"), ("pending", "started"), ("success", None)):
        data["object_attributes"]["status"] = status
        event = normalise("gitlab", "Pipeline Hook", data)
        assert (event.kind if isinstance(event, SourceEvent) else None) == kind


def test_a_gitlab_job_hook_without_project_names_its_repository_from_what_it_has() -> None:
    """Older GitLab (and some gitlab.com deliveries) send Job Hooks without ``project``: the repository is
    the homepage less the instance's URL (which may have a path of its own), else the project's id."""
    data = load("gitlab-job-canceled.json")
    del data["project"]

    def repository(event: dict[str, Any], instance: str | None) -> Any:
        found = normalise("gitlab", "Job Hook", event, instance=instance)
        assert isinstance(found, SourceEvent)
        return found.fields()["repository"]

    assert repository(data, "https://gitlab.example.com") == "acme/shop"
    assert repository(data, None) == "acme/shop"  # no instance header: the homepage's path
    data["repository"]["homepage"] = "https://example.com/gitlab/acme/shop"
    assert repository(data, "https://example.com/gitlab") == "acme/shop"  # not "gitlab/acme/shop"
    del data["repository"]["homepage"]
    assert repository(data, "https://example.com/gitlab") == "15"  # the project id, as the payload gives it


def test_malformed_supported_event_names_the_field() -> None:
    with pytest.raises(InvalidCommand) as info:
        normalise("github", "workflow_run", {"action": "completed"})
    assert info.value.details[0]["field"] == "workflow_run"


def test_parse_checks_in_the_contract_order(tmp_path: Path) -> None:
    """415 before 401 before 400, for the source targets too."""
    from stopline.errors import BadRequest, UnsupportedMediaType

    verifier: dict[str, Source] = {"github": GitHub((GITHUB_SECRET,)), "gitlab": GitLab(()),
                                   "webhook": StandardWebhooks(())}
    with pytest.raises(UnsupportedMediaType, match="GitHub webhook's Content type to application/json"):
        parse("github", {"content-type": "application/x-www-form-urlencoded"}, b"payload=1", sources=verifier)
    with pytest.raises(UnsupportedMediaType) as plain:  # the hint is GitHub's default, on GitHub's target only
        parse("webhook", {"content-type": "application/x-www-form-urlencoded"}, b"payload=1", sources=verifier)
    assert "GitHub" not in plain.value.message
    with pytest.raises(Unauthorized):
        parse("github", {"content-type": "application/json"}, b"not json", sources=verifier)
    import hashlib
    import hmac

    sig = "sha256=" + hmac.new(GITHUB_SECRET, b"not json", hashlib.sha256).hexdigest()
    with pytest.raises(BadRequest):
        parse("github", {"content-type": "application/json", "x-hub-signature-256": sig}, b"not json",
              sources=verifier)
    with pytest.raises(Unauthorized):  # nothing configured and unsigned not allowed
        parse("gitlab", {"content-type": "application/json"}, b"{}", sources=verifier)
