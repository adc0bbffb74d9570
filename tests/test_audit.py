"""The audit trail: each effective change is one CloudEvent 1.0 log line ``{"audit": ...}`` -- type, subject,
the reason and the delivery -- with an id that stays the same when the delivery is run again, and nothing
new for a duplicate or for a command that changed nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stopline.emulator import Emulator
from stopline.emulator.seeds import (
    DEMO_AK,
    DEMO_DATAARTS_JOB,
    DEMO_INSTANCE_ID,
    DEMO_JOB_ID,
    DEMO_PIPELINE_ID,
    DEMO_PROJECT_ID,
    DEMO_RUN_ID,
    DEMO_SK,
    DEMO_TASK_ID,
)
from stopline.entry import get_runtime, reset_runtime

from .conftest import LogCapture
from .in_process import post


def audits(log_lines: LogCapture) -> list[dict[str, Any]]:
    return [r["audit"] for r in log_lines.records if "audit" in r]  # type: ignore[misc]


def test_a_stopped_build_is_one_cloudevent_and_its_duplicate_none(signed_cloud: Emulator,
                                                                   log_lines: LogCapture) -> None:
    post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20, "reason": "release freeze"}, "a-1")
    post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20, "reason": "release freeze"}, "a-1")
    post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 19}, "a-2")  # already stopped: no change
    (one,) = audits(log_lines)
    assert {k: one[k] for k in ("specversion", "source", "type", "subject", "datacontenttype")} == {
        "specversion": "1.0", "source": "stopline/webhook", "type": "com.stopline.build.stopped",
        "subject": f"{DEMO_JOB_ID}/20", "datacontenttype": "application/json"}
    assert one["time"].endswith("Z") and len(one["id"]) == 32
    data = one["data"]
    assert (data["reason"], data["event_id"], data["trigger"], data["outcome"]) == \
        ("release freeze", "a-1", "webhook", "stopped")
    assert data["target"] == {"job_id": DEMO_JOB_ID, "build_no": 20} and data["upstream_request_id"]


def test_the_id_is_the_same_when_the_delivery_runs_again(signed_cloud: Emulator, log_lines: LogCapture) -> None:
    """A store that forgot the delivery (memory:// in a new instance) runs it again: the change is named
    with the same id, so a sink drops the second event."""
    command = {"action": "stop_build", "job_id": DEMO_JOB_ID, "branch": "feature/x", "commit_id": "3f2a9c1"}
    post(command, "again-1")
    first = audits(log_lines)
    signed_cloud.reset()
    signed_cloud.seed("demo")
    reset_runtime()  # a new instance: memory:// starts empty
    post(command, "again-1")
    second = audits(log_lines)[len(first):]
    assert [e["subject"] for e in first] == [f"{DEMO_JOB_ID}/20", f"{DEMO_JOB_ID}/21"]
    assert [e["id"] for e in second] == [e["id"] for e in first] and len({e["id"] for e in first}) == 2


def test_each_kind_of_change_has_its_type(signed_cloud: Emulator, log_lines: LogCapture) -> None:
    post({"action": "delete_build_task", "job_id": DEMO_TASK_ID}, "k-1")
    post({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "both"}, "k-2")
    post({"action": "stop_dataarts_job", "job_name": "nightly"}, "k-4")  # the schedule alone
    post({"action": "stop_pipeline_run", "pipeline_id": DEMO_PIPELINE_ID, "pipeline_run_id": DEMO_RUN_ID}, "k-3")
    kinds = [(e["type"], e["subject"]) for e in audits(log_lines)]
    assert kinds == [("com.stopline.task.deleted", DEMO_TASK_ID),
                     ("com.stopline.dataarts_job.stopped", DEMO_DATAARTS_JOB),  # scope both: the schedule,
                     ("com.stopline.dataarts_instance.stopped", f"{DEMO_DATAARTS_JOB}/{DEMO_INSTANCE_ID}"),
                     ("com.stopline.dataarts_job.stopped", "nightly"),
                     ("com.stopline.pipeline_run.stopped", f"{DEMO_PIPELINE_ID}/{DEMO_RUN_ID}")]


class Receiver:
    """A real HTTP receiver on 127.0.0.1 that checks each event with the ``standardwebhooks`` library and
    answers 503 to the first ``failures`` requests."""

    def __init__(self, secret: str, failures: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from standardwebhooks import Webhook

        self.accepted: list[dict[str, Any]] = []
        self.refused = 0
        hook, outer = Webhook(secret), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.refused < failures:
                    outer.refused += 1
                    self.send_response(503)
                else:
                    hook.verify(body, {k.lower(): v for k, v in self.headers.items()})  # raises if forged
                    assert self.headers["Content-Type"] == "application/cloudevents+json"
                    outer.accepted.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/audit"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


AUDIT_SECRET = "whsec_" + "QXVkaXQgc2VjcmV0IGZvciB0ZXN0cyAwMTIzNDU2Nzg5"


def test_a_receiver_that_fails_three_times_gets_each_change_exactly_once(
        signed_cloud: Emulator, monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    from .conftest import configured_secret

    configured_secret(AUDIT_SECRET)
    receiver = Receiver(AUDIT_SECRET, failures=3)
    try:
        monkeypatch.setenv("STOPLINE_AUDIT_URL", receiver.url)
        monkeypatch.setenv("STOPLINE_AUDIT_SECRET", AUDIT_SECRET)
        reset_runtime()
        command = {"action": "stop_build", "job_id": DEMO_JOB_ID, "branch": "feature/x", "reason": "superseded"}
        answer = post(command, "sink-1")
        assert answer["outcome"] == "stopped"  # the receiver's failures never fail the stop
        post(command, "sink-1")  # a duplicate: nothing new to send
        pipeline = get_runtime().pipeline
        for _ in range(4):  # the retries' takers, pass after pass
            pipeline.retries.run_due(pipeline, everything=True)
        ids = [e["id"] for e in receiver.accepted]
        assert sorted(e["subject"] for e in receiver.accepted) == [f"{DEMO_JOB_ID}/{n}" for n in (20, 21, 23)]
        assert len(ids) == len(set(ids)) == 3 and receiver.refused == 3
        assert {e["data"]["reason"] for e in receiver.accepted} == {"superseded"}
        assert pipeline.retries.pending() == [] and audits(log_lines) == []  # sent, not logged
    finally:
        receiver.close()


def test_an_audit_url_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from stopline.errors import ConfigurationError
    from stopline.settings import load_settings

    monkeypatch.setenv("STOPLINE_AUDIT_URL", "https://audit.example.com/hook")
    with pytest.raises(ConfigurationError, match="STOPLINE_AUDIT_SECRET"):
        load_settings()
    monkeypatch.setenv("STOPLINE_AUDIT_SECRET", "whsec_dG9vIHNob3J0")  # 9 bytes: too short a key
    with pytest.raises(ConfigurationError, match="STOPLINE_AUDIT_SECRET") as info:
        load_settings()
    assert "dG9vIHNob3J0" not in info.value.message  # the secret itself never shows
    monkeypatch.setenv("STOPLINE_AUDIT_URL", "ftp://audit.example.com")
    with pytest.raises(ConfigurationError, match="STOPLINE_AUDIT_URL"):
        load_settings()


TOPIC = f"urn:smn:cn-north-4:{DEMO_PROJECT_ID}:stopline-audit"


def test_an_smn_topic_gets_each_change_published_as_the_sdk_would(
        signed_cloud: Emulator, served: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``smn://<topic urn>``: each change is published, signed with the cloud credentials (the served
    emulator verifies the signature), subject ``<type> <subject>`` and the CloudEvent as the message; the
    official SDK (huaweicloudsdksmn, a test dependency only) sends the same method, path and body keys."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdksmn.v2 import PublishMessageRequest, PublishMessageRequestBody, SmnClient

    monkeypatch.setenv("STOPLINE_AUDIT_URL", f"smn://{TOPIC}")
    reset_runtime()
    answer = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20, "reason": "freeze"}, "smn-1")
    assert answer["outcome"] == "stopped"
    (published,) = signed_cloud.smn_messages
    event = json.loads(published["message"])
    assert published["topic_urn"] == TOPIC and event["type"] == "com.stopline.build.stopped"
    assert published["subject"] == f"com.stopline.build.stopped {DEMO_JOB_ID}/20"
    assert event["data"]["reason"] == "freeze"
    ours = [c for c in signed_cloud.calls if "/notifications/" in c["path"]]
    assert [c["status"] for c in ours] == [200] and ours[0]["auth"] == "aksk"

    _, server = served
    sdk = (SmnClient.new_builder().with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, DEMO_PROJECT_ID))
           .with_endpoints([server.url]).build())
    sdk.publish_message(PublishMessageRequest(topic_urn=TOPIC, body=PublishMessageRequestBody(
        subject="s", message="m")))
    theirs = [c for c in signed_cloud.calls if "/notifications/" in c["path"]][1]
    assert (theirs["method"], theirs["path"], theirs["status"]) == (ours[0]["method"], ours[0]["path"], 200)
    assert (signed_cloud.smn_messages[1]["subject"], signed_cloud.smn_messages[1]["message"]) == ("s", "m")


def test_an_smn_topic_that_fails_keeps_the_event_pending(signed_cloud: Emulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_AUDIT_URL", f"smn://{TOPIC}")
    reset_runtime()
    signed_cloud.inject(r"/notifications/", "error", status=503, count=1)
    assert post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 21}, "smn-2")["outcome"] == "stopped"
    pipeline = get_runtime().pipeline
    assert signed_cloud.smn_messages == [] and len(pipeline.retries.pending()) == 1
    pipeline.retries.run_due(pipeline, everything=True)
    assert [json.loads(m["message"])["subject"] for m in signed_cloud.smn_messages] == [f"{DEMO_JOB_ID}/21"]
    assert pipeline.retries.pending() == []


def test_a_receiver_that_dribbles_its_answer_cannot_hold_the_stop(
        signed_cloud: Emulator, monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    """A receiver that answers one byte every 0.25 s, status line included (each read quick, so httpx's own
    timeouts never fire): with STOPLINE_TIMEOUT_S=1 the stop is answered, the receiver sees its connection
    closed long before its last byte (asserted at the receiver, not with a clock), and the event waits as a
    pending retry."""
    import time

    from .conftest import configured_secret
    from .dribbling import ANSWER, SlowHead

    configured_secret(AUDIT_SECRET)
    receiver = SlowHead().start()
    try:
        for name, value in {"STOPLINE_AUDIT_URL": receiver.url, "STOPLINE_AUDIT_SECRET": AUDIT_SECRET,
                            "STOPLINE_TIMEOUT_S": "1"}.items():
            monkeypatch.setenv(name, value)
        reset_runtime()
        answer = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "slow-sink-1")
        assert answer["outcome"] == "stopped"
        waited = time.monotonic() + 30
        while not receiver.sent_bytes and time.monotonic() < waited:  # the receiver notes the close
            time.sleep(0.05)
        assert receiver.requests and receiver.sent_bytes and max(receiver.sent_bytes) < len(ANSWER) // 4
        pending = get_runtime().pipeline.retries.pending()
        assert [p["event"]["subject"] for p in pending] == [f"{DEMO_JOB_ID}/20"]
        assert any("did not answer within 1.0 s" in str(r["message"]) for r in log_lines.records)
    finally:
        receiver.stop()
