"""The on_event target in real functions-framework processes (Flask and --asgi): structured and binary
CloudEvents, Pub/Sub push, redelivery on transient failure, acknowledgement of permanent ones."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from .harness import FunctionProcess, serving

JOB = "2222aaaa2222bbbb3333cccc4444dddd"
MODES = ["flask", "asgi"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict[str, FunctionProcess]]]:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                "builds": [{"build_no": n} for n in range(1, 200)]}])
    server: EmulatorServer = emulator.serve()
    logs = tmp_path_factory.mktemp("oelogs")
    env = {**demo_environment(server.url), "STOPLINE_MAX_ATTEMPTS": "2"}
    procs = {m: FunctionProcess("on_event", m == "asgi", env, logs / f"{m}.log", signature="cloudevent")
             for m in MODES}
    with serving(server, procs):
        yield emulator, procs


_builds = iter(range(1, 200))


def structured(data: object, *, event_type: str = "com.example.cancelled",
               event_id: str | None = None) -> dict[str, object]:
    return {"specversion": "1.0", "id": event_id or uuid.uuid4().hex, "source": "//tests", "type": event_type,
            "datacontenttype": "application/json", "data": data}


def post_structured(url: str, event: dict[str, object]) -> httpx.Response:
    return httpx.post(url, content=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"},
                      timeout=30)


def effects(emulator: Emulator, n: int) -> int:
    return sum(1 for e in emulator.effects if e.get("job_id") == JOB and e.get("build_no") == n)


@pytest.mark.parametrize("mode", MODES)
def test_structured_cloudevent_with_type_supplying_the_action(stack: tuple[Emulator, dict[str, FunctionProcess]],
                                                             mode: str) -> None:
    emulator, procs = stack
    n = next(_builds)
    event = structured({"job_id": JOB, "build_no": n}, event_type="stopline.stop_build", event_id=f"ce-{mode}")
    assert post_structured(procs[mode].url, event).status_code == 200
    assert post_structured(procs[mode].url, event).status_code == 200  # a redelivery: acknowledged, not re-run
    assert effects(emulator, n) == 1
    lines = [r for r in procs[mode].log_records() if r.get("event_id") == f"ce-{mode}"]
    assert [r["outcome"] for r in lines] == ["stopped", "duplicate"]


@pytest.mark.parametrize("mode", MODES)
def test_binary_cloudevent_carrying_a_pubsub_message(stack: tuple[Emulator, dict[str, FunctionProcess]],
                                                     mode: str) -> None:
    """Eventarc's Pub/Sub CloudEvent: the messageId is the delivery id, the command is base64 JSON."""
    emulator, procs = stack
    n = next(_builds)
    command = {"action": "stop_build", "job_id": JOB, "build_no": n}
    data = {"message": {"data": base64.b64encode(json.dumps(command).encode()).decode(), "messageId": f"m-{mode}"},
            "subscription": "projects/p/subscriptions/s"}
    headers = {"ce-specversion": "1.0", "ce-id": uuid.uuid4().hex, "ce-source": "//pubsub.googleapis.com/t",
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "Content-Type": "application/json"}
    assert httpx.post(procs[mode].url, json=data, headers=headers).status_code == 200
    assert effects(emulator, n) == 1
    assert any(r.get("event_id") == f"m-{mode}" and r.get("outcome") == "stopped"
               for r in procs[mode].log_records())


@pytest.mark.parametrize("mode", MODES)
def test_raw_pubsub_push_body(stack: tuple[Emulator, dict[str, FunctionProcess]], mode: str) -> None:
    """A push subscription posting its envelope as a plain HTTP body (Flask mode: functions-framework
    converts it; --asgi: stopline's own endpoint does), the same push twice stopping the build once."""
    emulator, procs = stack
    n = next(_builds)
    command = {"action": "stop_build", "job_id": JOB, "build_no": n}
    body = {"message": {"data": base64.b64encode(json.dumps(command).encode()).decode(),
                        "messageId": f"push-{mode}", "publishTime": "2026-11-23T08:30:00Z"},
            "subscription": "projects/p/subscriptions/s"}
    assert httpx.post(procs[mode].url, json=body).status_code == 200
    assert httpx.post(procs[mode].url, json=body).status_code == 200  # Pub/Sub's at-least-once redelivery
    assert effects(emulator, n) == 1
    assert [r.get("outcome") for r in procs[mode].log_records() if r.get("event_id") == f"push-{mode}"] \
        == ["stopped", "duplicate"]


@pytest.mark.parametrize("mode", MODES)
def test_transient_failure_asks_for_redelivery(stack: tuple[Emulator, dict[str, FunctionProcess]],
                                               mode: str) -> None:
    emulator, procs = stack
    n = next(_builds)
    emulator.inject(r"^/v3/jobs/stop$", "error", status=503, count=2, retry_after=None)
    event = structured({"action": "stop_build", "job_id": JOB, "build_no": n}, event_id=f"tr-{mode}")
    first = post_structured(procs[mode].url, event)
    # non-2xx: Pub/Sub and Eventarc deliver the event again -- a JSON 503 with Retry-After in both modes
    assert first.status_code == 503
    assert first.json()["error"]["type"] == "unavailable" and first.headers["Retry-After"] == "1"
    assert post_structured(procs[mode].url, event).status_code == 200  # the platform's redelivery
    assert effects(emulator, n) == 1


@pytest.mark.parametrize("mode", MODES)
def test_permanent_failures_are_acknowledged_and_logged_once(stack: tuple[Emulator, dict[str, FunctionProcess]],
                                                             mode: str) -> None:
    _, procs = stack
    bad_id = f"bad-{mode}"
    assert post_structured(procs[mode].url, structured({"action": "stop_dataarts_job", "job_name": "noSuchJob"},
                                                       event_id=bad_id)).status_code == 200
    assert post_structured(procs[mode].url, structured({"job_id": "nope"}, event_id=f"inv-{mode}")).status_code == 200
    bad_b64 = {"message": {"data": "%%%not-base64", "messageId": f"b64-{mode}"}}
    assert post_structured(procs[mode].url, structured(bad_b64)).status_code == 200
    records = procs[mode].log_records()
    assert [r["level"] for r in records if r.get("event_id") == bad_id] == ["ERROR"]
    assert any(r["level"] == "ERROR" and r.get("event_id") == f"b64-{mode}" for r in records)


@pytest.mark.parametrize("mode", MODES)
def test_a_poison_cloudevent_is_refused_in_json(stack: tuple[Emulator, dict[str, FunctionProcess]],
                                                mode: str) -> None:
    """Issue 12: ~1,000 levels of nesting in the CloudEvent body itself (parsed by functions-framework
    before stopline sees it) answer 400 (JSON in Flask mode), not an HTML 500 that a pusher would retry
    forever; 100 levels inside `data` are stopline's to refuse: acknowledged, never called."""
    emulator, procs = stack
    before = len(emulator.calls)
    deep = '{"specversion": "1.0", "id": "deep-1", "source": "//t", "type": "x", "data": ' + "[" * 1000 \
        + "]" * 1000 + "}"
    reply = httpx.post(procs[mode].url, content=deep, headers={"Content-Type": "application/cloudevents+json"},
                       timeout=30)
    assert reply.status_code == 400, reply.text[:300]
    assert reply.json()["error"]["type"] == "invalid_json"
    nested = post_structured(procs[mode].url, structured({"action": "stop_build", "x": json.loads("[" * 100
                                                                                                   + "]" * 100)}))
    assert nested.status_code in (200, 204)  # acknowledged: a poison message is not redelivered
    assert len(emulator.calls) == before


@pytest.mark.parametrize("mode", MODES)
def test_what_the_framework_cannot_read_is_answered_in_json(stack: tuple[Emulator, dict[str, FunctionProcess]],
                                                           mode: str) -> None:
    """A binary CloudEvent whose data nests too deep for functions-framework's parser, and a structured one
    missing its required attributes, answer 400 in JSON (never an HTML page or plain text), and the
    process writes no traceback about them -- nor about the redelivery requests of the tests above."""
    _, procs = stack
    url = procs[mode].url
    deep = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    binary = httpx.post(url, content=deep, timeout=30, headers={
        "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "deep-binary", "ce-source": "//t",
        "ce-type": "stopline.stop_build"})
    assert binary.status_code == 400 and binary.json()["error"]["type"] == "invalid_json"
    partial = httpx.post(url, content=b'{"specversion": "1.0"}', timeout=30,
                         headers={"Content-Type": "application/cloudevents+json"})
    assert partial.status_code == 400 and partial.json()["error"]["type"] == "invalid_json"
    assert "Missing required attributes" in partial.json()["error"]["message"]
    for method in ("GET", "PUT"):  # the framework routes only POST here: its own 405, in JSON, naming POST
        refused = httpx.request(method, url, timeout=30)
        assert refused.status_code == 405 and refused.json()["error"]["type"] == "method_not_allowed", method
        assert "POST" in refused.headers["allow"].split(", "), method
    text = procs[mode].log_path.read_text(errors="replace")
    assert "Traceback" not in text and "DataUnmarshallerError" not in text
    refusals = [json.loads(line) for line in text.splitlines() if '"status": 405' in line]
    assert [(r["level"], r["error_type"]) for r in refusals] == [("WARNING", "method_not_allowed")] * 2
