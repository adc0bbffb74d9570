"""The FunctionGraph handler in process: trigger detection, APIG answers, per-record results,
redelivery only for transient failures, and agency credentials from the context."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stopline import webhooks
from stopline.emulator import mock_huaweicloud
from stopline.emulator.seeds import DEMO_JOB_ID, DEMO_PROJECT_ID
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers.functiongraph import detect
from stopline.triggers.queue import RedeliveryRequested

from ..conftest import ROOT, LogCapture, configured_secret

SECRET = "fg-test-secret-value"
configured_secret(SECRET, "agency-sk-value", "agency-sts-token")
EVENTS = ROOT / "events"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def entry_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("functiongraph", ROOT / "functions" / "functiongraph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    return dict(entry_module().handler(event, context or object()))


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", SECRET)


def apig(body: bytes, *, method: str = "POST", content_type: str = "application/json", sign: bool = True,
         msg_id: str = "apig-1") -> dict[str, Any]:
    event = load("functiongraph-apig.json")
    headers = {"content-type": content_type}
    if sign:
        headers.update(webhooks.sign(SECRET, msg_id, body))
    event.update(httpMethod=method, headers=headers, body=base64.b64encode(body).decode())
    return event


@pytest.mark.parametrize(("name", "kind"), [
    ("functiongraph-apig.json", "apig"), ("functiongraph-kafka.json", "kafka"),
    ("functiongraph-rabbitmq.json", "rabbitmq"), ("functiongraph-smn.json", "smn"),
    ("functiongraph-timer.json", "timer"), ("functiongraph-timer-list.json", "timer"),
])
def test_detection(name: str, kind: str) -> None:
    assert detect(load(name)) == kind


def test_apig_answers_in_apig_shape_with_http_statuses() -> None:
    good = json.dumps({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}).encode()
    with mock_huaweicloud("demo") as cloud:
        answer = handler(apig(good))
        assert answer["statusCode"] == 200 and answer["isBase64Encoded"] is False
        assert answer["headers"]["Content-Type"] == "application/json"
        assert json.loads(answer["body"])["outcome"] == "stopped"
        assert handler(apig(good, sign=False))["statusCode"] == 401
        refused = handler(apig(good, method="GET"))
        assert refused["statusCode"] == 405 and refused["headers"]["Allow"] == "POST"
        assert handler(apig(good, content_type="text/plain"))["statusCode"] == 415
        assert handler(apig(b"x" * 300_000))["statusCode"] == 413
        assert handler(apig(b"[1]"))["statusCode"] == 400
        bad = handler(apig(b'{"action":"stop_build","job_id":"x","build_no":1}', msg_id="apig-2"))
        assert bad["statusCode"] == 422 and "job_id" in bad["body"]
        assert json.loads(handler(apig(good))["body"])["outcome"] == "duplicate"
        assert len(cloud.calls) == 1


def test_queue_records_each_get_a_result_and_bad_ones_are_acknowledged(log_lines: LogCapture) -> None:
    event = load("functiongraph-kafka.json")
    event["records"][0]["messages"].extend(["kafka message2", json.dumps({"action": "stop_build"})])
    with mock_huaweicloud("demo"):
        answer = handler(event)
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == [200, 200, 400, 422] and answer["ok"] is False
    assert sum(1 for r in log_lines.records if r["level"] == "ERROR") == 2


def test_a_transient_failure_is_pending_not_a_failed_invocation() -> None:
    """FunctionGraph does not retry an asynchronous invocation's error by default: a transient failure
    becomes a pending retry (the invocation succeeds), a redelivery repeats nothing, the retry stops it."""
    event = load("functiongraph-kafka.json")  # delete task, then stop build 21
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$", "error", status=503, count=4)
        answer = handler(event)
        assert [r["outcome"] for r in answer["results"]] == ["deleted", "pending"] and answer["pending"] == 1
        again = handler(event)  # a redelivery of the same batch: the pending one answers as pending
        assert [r["outcome"] for r in again["results"]] == ["duplicate", "pending"]
        pipeline = get_runtime().pipeline
        assert [str(r.outcome) for r in pipeline.retries.run_due(pipeline, everything=True)] == ["stopped"]
        assert [e["effect"] for e in cloud.effects] == ["task_deleted", "build_stopped"]


def test_smn_message_id_is_the_idempotency_key() -> None:
    with mock_huaweicloud("demo") as cloud:
        first = handler(load("functiongraph-smn.json"))
        second = handler(load("functiongraph-smn.json"))
        assert first["results"][0]["event_id"] == "a51671f77d4a479cacb09e2cd591a983"
        assert second["results"][0]["outcome"] == "duplicate" and len(cloud.calls) == 1


class AgencyContext:
    def __init__(self, ak: str, sk: str, token: str) -> None:
        self.values = {"getSecurityAccessKey": ak, "getSecuritySecretKey": sk, "getSecurityToken": token,
                       "getProjectID": DEMO_PROJECT_ID}

    def __getattr__(self, name: str) -> Any:
        if name in self.values:
            return lambda: self.values[name]
        raise AttributeError(name)


def test_agency_credentials_from_the_context(monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    """With no credentials configured, the context's temporary AK/SK/token sign the call."""
    with mock_huaweicloud("demo", fake_credentials=False) as cloud:
        cloud.seed(credentials=[{"ak": "AGENCYAK", "sk": "agency-sk-value", "project_id": DEMO_PROJECT_ID,
                                 "security_token": "agency-sts-token"}])
        answer = handler(load("functiongraph-timer.json"), AgencyContext("AGENCYAK", "agency-sk-value",
                                                                          "agency-sts-token"))
        assert answer["results"][0]["outcome"] == "stopped"
        assert cloud.calls[-1]["auth"] == "aksk"
        handler(load("functiongraph-smn.json"), AgencyContext("AGENCYAK", "agency-sk-value", "agency-sts-token"))
        from stopline.entry import get_runtime

        assert len(get_runtime()._agency) == 1  # one client and pipeline per temporary key, reused
        with pytest.raises(RedeliveryRequested, match="configuration"):
            handler(load("functiongraph-rabbitmq.json"), object())  # no agency, no credentials
    text = "\n".join(log_lines.lines)
    assert "agency-sk-value" not in text and "agency-sts-token" not in text


def test_configured_credentials_win_over_the_agency(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_huaweicloud("demo") as cloud:
        reset_runtime()
        answer = handler(load("functiongraph-timer.json"), AgencyContext("NOPE", "nope", "nope"))
        assert answer["ok"] and cloud.calls[-1]["auth"] == "aksk"


def test_queue_records_run_concurrently() -> None:
    """A Kafka batch's records overlap upstream, as a webhook batch's members do."""
    event = load("functiongraph-kafka.json")
    event["records"][0]["messages"] = [json.dumps({"action": "stop_build", "job_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                                                   "build_no": n}) for n in range(1, 11)]
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$", "latency", delay_ms=100)
        answer = handler(event)
        assert [r["outcome"] for r in answer["results"]] == ["stopped"] * 10
        assert cloud.router.max_in_flight > 1


def test_a_bug_still_answers_json_500(monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    """An unexpected exception inside the pipeline becomes the contract's error shape, logged at ERROR."""
    from stopline.pipeline import Pipeline

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Pipeline, "handle", broken)
    body = json.dumps({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}).encode()
    with mock_huaweicloud("demo"):
        answer = handler(apig(body))
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"]["type"] == "internal"
    assert any(r["level"] == "ERROR" and r.get("error_type") == "internal" for r in log_lines.records)


def test_unknown_event_is_acknowledged_with_a_reason(tmp_path: Path) -> None:
    answer = handler({"Records": [{"eventName": "ObjectCreated:Post"}]})
    assert answer["ok"] is False and answer["results"][0]["status"] == 400


def test_initializer_does_the_setup_before_the_first_event() -> None:
    from stopline.entry import get_runtime
    from stopline.models import COMMAND_TYPES

    with mock_huaweicloud("demo") as cloud:
        reset_runtime()
        entry_module().initializer(object())
        runtime = get_runtime()
        assert runtime._client is not None, "the HTTP client is built by the initializer"
        assert all(model.__pydantic_complete__ for model in COMMAND_TYPES.values())
        assert cloud.calls == []  # setup only: nothing is sent
        answer = handler(load("functiongraph-timer.json"))
        assert answer["results"][0]["outcome"] == "stopped"
        assert get_runtime() is runtime


def test_initializer_logs_that_it_is_ready(log_lines: LogCapture) -> None:
    with mock_huaweicloud("demo"):
        reset_runtime()
        entry_module().initializer(object())
    ready = [json.loads(line) for line in log_lines.lines if "warm-up done" in line]
    assert len(ready) == 1 and ready[0]["level"] == "INFO" and "duration_ms" in ready[0]


def test_initializer_builds_the_agency_client() -> None:
    from stopline.entry import get_runtime

    with mock_huaweicloud("demo", fake_credentials=False):
        reset_runtime()
        entry_module().initializer(AgencyContext("AGENCYAK", "agency-sk-value", "agency-sts-token"))
        assert len(get_runtime()._agency) == 1


def test_initializer_logs_bad_configuration_and_invocations_report_it(
        monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    monkeypatch.setenv("STOPLINE_TIMEOUT_S", "soon")
    reset_runtime()
    entry_module().initializer(object())  # does not raise: FunctionGraph would only say "init failed"
    assert any("warm-up: " in line and "STOPLINE_TIMEOUT_S" in line and '"level": "ERROR"' in line
               for line in log_lines.lines)
    answer = handler(apig(b'{"action": "stop_build", "job_id": "%s", "build_no": 1}' % DEMO_JOB_ID.encode()))
    assert answer["statusCode"] == 500
    assert "STOPLINE_TIMEOUT_S" in json.loads(answer["body"])["error"]["message"]


def test_initializer_never_raises_on_a_malformed_store_url(monkeypatch: pytest.MonkeyPatch,
                                                            log_lines: LogCapture) -> None:
    monkeypatch.setenv("STOPLINE_IDEMPOTENCY_URL", "redis://:pa/ss@127.0.0.1:6379/0")
    reset_runtime()
    entry_module().initializer(object())  # logs, never fails the instance
    errors = [r for r in log_lines.records if r["level"] == "ERROR"]
    assert errors and "STOPLINE_IDEMPOTENCY_URL" in str(errors[0]["message"])
    with pytest.raises(RedeliveryRequested, match="configuration: STOPLINE_IDEMPOTENCY_URL") as caught:
        handler(load("functiongraph-timer.json"))  # kept for redelivery once the setting is fixed
    assert "pa/ss" not in "\n".join(log_lines.lines) + str(caught.value)


def test_rotating_agency_keys_under_load_never_closes_a_pipeline_in_use() -> None:
    """Defect 11: 200 concurrent invocations, each with fresh temporary keys, all succeed (an evicted
    cached pipeline used to be closed under a running invocation)."""
    from concurrent.futures import ThreadPoolExecutor

    with mock_huaweicloud("demo", fake_credentials=False) as cloud:
        keys = [f"AGENCYAK{n:04d}" for n in range(200)]
        cloud.seed(credentials=[{"ak": ak, "sk": "agency-sk-value", "project_id": DEMO_PROJECT_ID,
                                 "security_token": "agency-sts-token"} for ak in keys])
        cloud.seed(build_tasks=[{"job_id": "7777aaaa2222bbbb3333cccc4444dddd", "project_id": DEMO_PROJECT_ID,
                                 "builds": [{"build_no": n} for n in range(1, 201)]}])

        def invoke(n: int) -> dict[str, Any]:
            event = {"action": "stop_build", "job_id": "7777aaaa2222bbbb3333cccc4444dddd", "build_no": n + 1}
            return handler(event, AgencyContext(keys[n], "agency-sk-value", "agency-sts-token"))

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(invoke, range(200)))
        assert [a["results"][0]["outcome"] for a in answers] == ["stopped"] * 200
        assert len(cloud.effects) == 200


DEEP = "[" * 1000 + "]" * 1000


def test_a_poison_message_fails_alone_and_is_acknowledged(log_lines: LogCapture) -> None:
    """Issue 12: ~2 KB of nesting raised RecursionError, failing the whole Kafka batch forever. Now that
    message alone is an acknowledged failure, logged at ERROR; the good messages run."""
    event = load("functiongraph-kafka.json")
    event["records"][0]["messages"].insert(1, '{"action": "stop_build", "x": ' + DEEP + "}")
    event["records"][0]["messages"].append('{"action": "stop_build", "action": "delete_build_task"}')
    with mock_huaweicloud("demo") as cloud:
        answer = handler(event)  # no RedeliveryRequested: nothing here is transient
        outcomes = [r["outcome"] if r["ok"] else "failed" for r in answer["results"]]
        assert outcomes == ["deleted", "failed", "stopped", "failed"]
        assert answer["results"][1]["error"]["type"] == "invalid_json"
        assert "twice" in answer["results"][3]["error"]["message"]
        assert len(cloud.calls) == 2
    refused = [r for r in log_lines.records if str(r["message"]).startswith("message refused")]
    assert len(refused) == 2 and {r["level"] for r in refused} == {"ERROR"}


def test_a_deep_apig_body_is_400() -> None:
    body = ('{"action": "stop_build", "x": ' + DEEP + "}").encode()
    answer = handler(apig(body))
    assert answer["statusCode"] == 400 and json.loads(answer["body"])["error"]["type"] == "invalid_json"


@pytest.mark.parametrize("length", ["\u00b2", "9" * 5000, "-1", "1e3"])
def test_apig_content_length_garbage_is_400(length: str) -> None:
    event = apig(json.dumps({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 1}).encode())
    event["headers"]["content-length"] = length
    answer = handler(event)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["details"][0]["field"] == "content-length"


@pytest.mark.parametrize("message_id", [{"a": 1}, [1, 2], 42, None, ""])
def test_an_smn_message_id_that_is_not_a_string_is_keyed_by_the_message(message_id: Any) -> None:
    event = load("functiongraph-smn.json")
    event["record"][0]["smn"]["message_id"] = message_id
    with mock_huaweicloud("demo") as cloud:
        first = handler(event)
        again = handler(event)
        assert first["results"][0]["outcome"] == "stopped"
        assert str(first["results"][0]["event_id"]).startswith("smn:")
        assert again["results"][0]["outcome"] == "duplicate" and len(cloud.calls) == 1


class RaisingContext:
    """Every getter raises, as a broken or foreign runtime might."""

    def __getattr__(self, name: str) -> Any:
        def boom() -> Any:
            raise RuntimeError(f"{name} is unavailable")

        return boom


def test_a_context_whose_getters_raise_changes_nothing() -> None:
    with mock_huaweicloud("demo"):
        answer = handler(load("functiongraph-timer.json"), RaisingContext())
        assert answer["results"][0]["outcome"] == "stopped"


def test_more_than_1000_commands_in_one_event_are_refused_not_truncated() -> None:
    event = load("functiongraph-kafka.json")
    event["records"][0]["messages"] = [json.dumps({"action": "delete_build_task", "job_id": f"{n:032d}"})
                                       for n in range(1, 1002)]
    with mock_huaweicloud("demo") as cloud:
        answer = handler(event)
        assert answer["ok"] is False and answer["results"][0]["error"]["type"] == "bad_request"
        assert answer["results"][0]["error"]["details"][0]["field"] == "records"
        assert cloud.calls == []
        event["records"][0]["messages"] = event["records"][0]["messages"][:1000]
        assert len(handler(event)["results"]) == 1000  # exactly 1,000 (a trigger's largest batch) is fine


def mutations(value: Any) -> Iterator[Any]:
    """Every way to break one field of an event at a time: each leaf and container replaced by the
    values that crashed the handler before (wrong types, "²", 5,000 digits, deep nesting, surrogates)."""
    bad: list[Any] = [None, 0, -1, 1.5, True, "", "\u00b2", "9" * 5000, "\ud800", {"a": {}}, [[]], [None],
                      json.loads(DEEP[:200] + DEEP[-200:]), "{" * 50]
    if isinstance(value, dict):
        for key in list(value):
            for replacement in bad:
                yield {**value, key: replacement}
            for child in mutations(value[key]):
                yield {**value, key: child}
    elif isinstance(value, list):
        for i in range(len(value)):
            for child in mutations(value[i]):
                yield [*value[:i], child, *value[i + 1:]]
        yield []


@pytest.mark.parametrize("name", ["functiongraph-apig.json", "functiongraph-kafka.json",
                                  "functiongraph-rabbitmq.json", "functiongraph-smn.json",
                                  "functiongraph-timer.json", "functiongraph-timer-list.json"])
def test_mutated_events_never_crash_the_handler(name: str) -> None:
    """Issue 12: 19 of 116 mutated events crashed the handler. Every mutation now gets an answer (or
    RedeliveryRequested, for a transient failure), for plain and raising contexts alike."""
    with mock_huaweicloud("demo"):
        count = 0
        for event in mutations(load(name)):
            for context in (object(), RaisingContext()):
                count += 1
                try:
                    answer = handler(event, context)
                except RedeliveryRequested:
                    continue
                assert isinstance(answer, dict) and ("results" in answer or "statusCode" in answer)
                json.dumps(answer)  # and the answer is serialisable
        assert count > 100


def test_the_initializer_never_raises_even_when_the_context_does() -> None:
    """A context whose every attribute raises (getters and all): the initializer logs and returns, so the
    instance starts and each event answers for itself."""

    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"no {name} here")

    from stopline.triggers.functiongraph import initialize

    reset_runtime()
    initialize(Exploding())  # must not raise
    reset_runtime()
