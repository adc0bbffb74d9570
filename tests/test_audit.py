"""The audit trail: each effective change is one CloudEvent 1.0 log line ``{"audit": ...}`` -- type, subject,
the reason and the delivery -- with an id that stays the same when the delivery is run again, and nothing
new for a duplicate or for a command that changed nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stopline import webhooks
from stopline.emulator import Emulator
from stopline.emulator.seeds import (
    DEMO_DATAARTS_JOB,
    DEMO_INSTANCE_ID,
    DEMO_JOB_ID,
    DEMO_PIPELINE_ID,
    DEMO_RUN_ID,
    DEMO_TASK_ID,
)
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import http

from .conftest import LogCapture
from .functions.harness import SECRET


@pytest.fixture
def cloud(demo_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", SECRET)
    return demo_env


def post(command: dict[str, Any], msg_id: str) -> dict[str, Any]:
    body = json.dumps(command).encode()
    headers = {"content-type": "application/json", **webhooks.sign(SECRET, msg_id, body)}
    reply = http.handle("webhook", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
    assert reply.status == 200, reply.body
    return reply.body


def audits(log_lines: LogCapture) -> list[dict[str, Any]]:
    return [r["audit"] for r in log_lines.records if "audit" in r]  # type: ignore[misc]


def test_a_stopped_build_is_one_cloudevent_and_its_duplicate_none(cloud: Emulator, log_lines: LogCapture) -> None:
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


def test_the_id_is_the_same_when_the_delivery_runs_again(cloud: Emulator, log_lines: LogCapture) -> None:
    """A store that forgot the delivery (memory:// in a new instance) runs it again: the change is named
    with the same id, so a sink drops the second event."""
    command = {"action": "stop_build", "job_id": DEMO_JOB_ID, "branch": "feature/x", "commit_id": "3f2a9c1"}
    post(command, "again-1")
    first = audits(log_lines)
    cloud.reset()
    cloud.seed("demo")
    reset_runtime()  # a new instance: memory:// starts empty
    post(command, "again-1")
    second = audits(log_lines)[len(first):]
    assert [e["subject"] for e in first] == [f"{DEMO_JOB_ID}/20", f"{DEMO_JOB_ID}/21"]
    assert [e["id"] for e in second] == [e["id"] for e in first] and len({e["id"] for e in first}) == 2


def test_each_kind_of_change_has_its_type(cloud: Emulator, log_lines: LogCapture) -> None:
    post({"action": "delete_build_task", "job_id": DEMO_TASK_ID}, "k-1")
    post({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "instances"}, "k-2")
    post({"action": "stop_dataarts_job", "job_name": "nightly"}, "k-4")  # the schedule
    post({"action": "stop_pipeline_run", "pipeline_id": DEMO_PIPELINE_ID, "pipeline_run_id": DEMO_RUN_ID}, "k-3")
    kinds = [(e["type"], e["subject"]) for e in audits(log_lines)]
    assert kinds == [("com.stopline.task.deleted", DEMO_TASK_ID),
                     ("com.stopline.dataarts_instance.stopped", f"{DEMO_DATAARTS_JOB}/{DEMO_INSTANCE_ID}"),
                     ("com.stopline.dataarts_job.stopped", "nightly"),
                     ("com.stopline.pipeline_run.stopped", f"{DEMO_PIPELINE_ID}/{DEMO_RUN_ID}")]
