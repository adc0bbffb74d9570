"""Fuzzing every adapter with hypothesis: HTTP targets, on_event and the FunctionGraph handler.

Invariants for any input: no uncaught exception and no 500; a 5xx is either 503 (transient trouble) or
502 carrying the cloud's own refusal (a project the credentials do not cover); every 4xx names a field or
a reason, and an input that is refused never reaches the cloud. CI runs 1,000 examples per
adapter; `pytest --long` runs 10,000.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stopline import webhooks
from stopline.emulator import Emulator, mock_huaweicloud
from stopline.emulator.seeds import DEMO_JOB_ID
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import cloudevent, http
from stopline.triggers.functiongraph import handle as fg_handle
from stopline.triggers.queue import RedeliveryRequested

from .conftest import configured_secret

SECRET = "fuzz-webhook-secret"
configured_secret(SECRET)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                    max_leaves=10)
FIELDS = st.sampled_from(["action", "job_id", "build_no", "job_name", "project_id", "workspace",
                          "idempotency_key", "commands", "extra"])
VALUES = st.one_of(st.sampled_from(["stop_build", "delete_build_task", "stop_dataarts_job", DEMO_JOB_ID, "20",
                                    "myJob", "a/b", "", "0"]), st.integers(-5, 30), JSON)
COMMANDS = st.dictionaries(FIELDS, VALUES, max_size=5)
BATCHES = st.builds(lambda cs: json.dumps({"commands": cs}).encode(), st.lists(COMMANDS, max_size=3))
DEEP = st.builds(lambda depth: b'{"action": "stop_build", "x": ' + b"[" * depth + b"]" * depth + b"}",
                 st.integers(1, 3000))
"""Nesting from 1 to 3,000 levels: past 64 a 400 `invalid_json`; past about 1,000 json.loads itself fails."""
HEADER_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(["\u00b2", "9" * 5000, "-1", "1e3", " 12 ", "0x10"]))
EVENTS = Path(__file__).parents[1] / "events"


def examples(request: pytest.FixtureRequest) -> int:
    return 10_000 if request.config.getoption("--long") else 1_000


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("STOPLINE_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("STOPLINE_LOG_LEVEL", "CRITICAL")
    with mock_huaweicloud("demo") as emulator:
        emulator.seed(build_tasks=[{"job_id": DEMO_JOB_ID, "project_id": "x",
                                    "builds": [{"build_no": n} for n in range(1, 40)]}])
        reset_runtime()
        yield emulator
    reset_runtime()


def contract_status(status: int, error: dict[str, Any] | None) -> bool:
    """Below 500, or 503, or 502 reporting the cloud's 401/403 (docs/commands.md)."""
    if status < 500 or status == 503:
        return True
    upstream = (error or {}).get("upstream") or {}
    return status == 502 and (error or {}).get("type") == "upstream_auth" and upstream.get("status") in (401, 403)


def check_reply(status: int, body: dict[str, Any], calls_before: int, cloud: Emulator) -> None:
    assert contract_status(status, body.get("error")), (status, body)
    if status >= 400 and "results" not in body:
        error = body["error"]
        assert error["message"] and isinstance(error["details"], list)
        if status in (400, 401, 403, 405, 409, 413, 415) or (status == 422 and "upstream" not in error):
            assert len(cloud.calls) == calls_before, "a refused request reached the cloud"


@pytest.mark.parametrize("target", ["webhook", "stop_build", "stop_dataarts_job"])
def test_http_targets(target: str, cloud: Emulator, request: pytest.FixtureRequest) -> None:
    @settings(max_examples=examples(request), deadline=None, suppress_health_check=list(HealthCheck))
    @given(method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
           content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                         "application/cloudevents+json", ""]),
           payload=st.one_of(COMMANDS.map(lambda c: json.dumps(c).encode()), st.binary(max_size=64), BATCHES,
                             DEEP, st.integers(256 * 1024 - 12, 256 * 1024 + 8)),  # a size: built below
           declare_length=st.sampled_from(["yes", "yes", "no", "garbage"]),
           length_value=HEADER_VALUES,
           signing=st.sampled_from(["good", "good", "none", "wrong", "stale"]),
           msg_id=st.text(min_size=1, max_size=12))
    def run(method: str, content_type: str, payload: bytes | int, declare_length: str, length_value: str,
            signing: str, msg_id: str) -> None:
        if isinstance(payload, int):
            payload = b'{"a":"' + b"x" * payload + b'"}'
        headers = {"content-type": content_type} if content_type else {}
        if declare_length == "yes":
            headers["content-length"] = str(len(payload))
        elif declare_length == "garbage":
            headers["content-length"] = length_value
        if signing != "none":
            ts = 1 if signing == "stale" else None
            key = "other-wrong-secret-value" if signing == "wrong" else SECRET
            headers.update(webhooks.sign(key, msg_id, payload, ts))
        before = len(cloud.calls)
        reply = http.handle(target, method, {k.lower(): v for k, v in headers.items()}, lambda n: payload[: n + 1],
            runtime=get_runtime)
        check_reply(reply.status, reply.body, before, cloud)
        json.dumps(reply.body)  # every answer is JSON, whatever the input echoed
        declared = length_value.strip()
        if declare_length == "garbage" and method == "POST" and not (declared.isascii() and declared.isdigit()
                                                                  and len(declared) <= 18):
            assert reply.status == 400 and len(cloud.calls) == before
        elif declare_length == "garbage" and method == "POST":
            pass  # a plausible number of bytes, true or not: any contract answer will do
        elif len(payload) > http.MAX_BODY and method == "POST":
            assert reply.status == 413 and len(cloud.calls) == before
        elif signing != "good":
            assert reply.status in (401, 405, 415) and len(cloud.calls) == before

    run()


def test_on_event(cloud: Emulator, request: pytest.FixtureRequest) -> None:
    envelope = st.builds(lambda data, mid: {"message": {"data": data, "messageId": mid}},
                         st.one_of(COMMANDS.map(lambda c: base64.b64encode(json.dumps(c).encode()).decode()),
                                   st.text(max_size=20), JSON), st.text(max_size=8))

    @settings(max_examples=examples(request), deadline=None, suppress_health_check=list(HealthCheck))
    @given(event_type=st.sampled_from(["stopline.stop_build", "stopline.nope", "x", ""]),
           event_id=st.text(max_size=8), data=st.one_of(COMMANDS, envelope, JSON, st.binary(max_size=32)))
    def run(event_type: str, event_id: str, data: Any) -> None:
        before = len(cloud.calls)
        try:
            result = cloudevent.handle({"type": event_type, "id": event_id}, data, runtime=get_runtime)
        except RedeliveryRequested:
            return  # transient: the platform redelivers
        if result.error is not None and result.error.upstream is None:
            assert result.error.message and len(cloud.calls) == before

    run()


def test_functiongraph_handler(cloud: Emulator, request: pytest.FixtureRequest) -> None:
    samples = [json.loads(p.read_text()) for p in sorted(EVENTS.glob("functiongraph-*"))]

    def mutate(event: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(event))
        out[key] = value
        return out

    events = st.one_of(
        st.builds(mutate, st.sampled_from(samples), st.sampled_from(["body", "records", "record", "user_event",
                                                                     "trigger_type", "headers", "httpMethod",
                                                                     "isBase64Encoded"]), JSON),
        st.sampled_from(samples), JSON, COMMANDS)

    @settings(max_examples=examples(request), deadline=None, suppress_health_check=list(HealthCheck))
    @given(event=events)
    def run(event: Any) -> None:
        try:
            answer = fg_handle(event, object(), runtime=get_runtime)
        except RedeliveryRequested:
            return
        if "statusCode" in answer:
            assert contract_status(answer["statusCode"], json.loads(answer["body"]).get("error"))
            assert isinstance(answer["body"], str)
        else:
            for result in answer["results"]:
                assert contract_status(result["status"], result.get("error")), result
                if not result["ok"]:
                    assert result["error"]["message"]

    run()


@pytest.mark.parametrize("source", ["github", "gitlab"])
def test_source_targets(source: str, cloud: Emulator, monkeypatch: pytest.MonkeyPatch,
                        request: pytest.FixtureRequest) -> None:
    """GitHub and GitLab deliveries, correctly signed, with every field of the sample payloads mutated:
    no 5xx but 503, every refusal names a reason, and a refused delivery reaches no cloud."""
    import hashlib
    import hmac

    monkeypatch.setenv("STOPLINE_GITHUB_SECRETS", SECRET)
    monkeypatch.setenv("STOPLINE_GITLAB_TOKENS", SECRET)
    monkeypatch.setenv("STOPLINE_RULES", str(Path(__file__).parents[1] / "shared" / "stopline" / "data"
                                             / "demo-rules.yaml"))
    reset_runtime()
    samples = [json.loads(p.read_text()) for p in sorted(EVENTS.glob(f"{source}-*.json"))]
    kinds = (["workflow_run", "workflow_job", "ping", "push", ""] if source == "github"
             else ["Pipeline Hook", "Job Hook", "Push Hook", ""])

    def mutate(event: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(event))
        node = out
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                return out
            node = child
        node[path[-1]] = value
        return out

    keys = st.lists(st.sampled_from(["action", "workflow_run", "workflow_job", "conclusion", "status",
                                     "head_branch", "head_sha", "repository", "full_name", "object_attributes",
                                     "ref", "sha", "project", "path_with_namespace", "id", "name"]),
                    min_size=1, max_size=3)

    @settings(max_examples=examples(request) // 2, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event=st.builds(mutate, st.sampled_from(samples), keys, JSON), kind=st.sampled_from(kinds),
           delivery=st.text(min_size=1, max_size=12))
    def run(event: dict[str, Any], kind: str, delivery: str) -> None:
        body = json.dumps(event).encode()
        if source == "github":
            headers = {"x-github-event": kind, "x-github-delivery": delivery, "x-hub-signature-256":
                       "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
        else:
            headers = {"x-gitlab-event": kind, "x-gitlab-token": SECRET, "idempotency-key": delivery}
        headers["content-type"] = "application/json"
        before = len(cloud.calls)
        reply = http.handle(source, "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
        json.dumps(reply.body)
        check_reply(reply.status, reply.body, before, cloud)
        assert reply.status in (200, 400, 422, 503) or reply.status == 502, (reply.status, reply.body)
        if reply.status in (400, 422):
            assert len(cloud.calls) == before

    run()
