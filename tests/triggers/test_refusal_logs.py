"""Refused requests are each logged once at WARNING with status, error type, target and event id
(docs/sources.md; a 401 used to leave no trace), while a refused queue message, which nobody
reads the answer of, is logged at ERROR for the operator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stopline import webhooks
from stopline.emulator import mock_huaweicloud
from stopline.emulator.seeds import DEMO_JOB_ID
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import http
from stopline.triggers.functiongraph import handle as fg_handle

from ..conftest import LogCapture, configured_secret

SECRET = "refusal-log-test-secret"
configured_secret(SECRET)


def post(body: bytes, *, method: str = "POST", content_type: str = "application/json", sign: bool = True,
         msg_id: str = "refused-1", target: str = "webhook") -> http.HttpReply:
    headers = {"content-type": content_type, "content-length": str(len(body))}
    if sign:
        headers.update(webhooks.sign(SECRET, msg_id, body))
    return http.handle(target, method, headers, lambda n: body[: n + 1], runtime=get_runtime)


def stop(n: int, **more: Any) -> bytes:
    return json.dumps({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": n, **more}).encode()


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("STOPLINE_ALLOWED_ACTIONS", "stop_build,stop_dataarts_job")
    with mock_huaweicloud("demo") as cloud:
        reset_runtime()
        yield cloud
    reset_runtime()


@pytest.mark.parametrize(("name", "send", "status", "error_type"), [
    ("not JSON", lambda: post(b"{nope", msg_id="r400"), 400, "invalid_json"),
    ("unsigned", lambda: post(stop(1), sign=False), 401, "unauthorized"),
    ("GET", lambda: post(b"", method="GET"), 405, "method_not_allowed"),
    ("too large", lambda: post(b'{"a":"' + b"x" * 300_000 + b'"}'), 413, "payload_too_large"),
    ("text/plain", lambda: post(stop(1), content_type="text/plain"), 415, "unsupported_media_type"),
    ("bad field", lambda: post(stop(0), msg_id="r422"), 422, "invalid"),
    ("not allowed", lambda: post(json.dumps({"action": "delete_build_task", "job_id": DEMO_JOB_ID}).encode(),
                                 msg_id="r403"), 403, "forbidden"),
])
def test_each_refusal_is_one_warning(configured: Any, log_lines: LogCapture, name: str, send: Any, status: int,
                                     error_type: str) -> None:
    before = len(log_lines.lines)
    reply = send()
    assert reply.status == status, (name, reply.body)
    records = log_lines.records[before:]
    assert len(records) == 1, (name, records)
    record = records[0]
    assert record["level"] == "WARNING" and record["status"] == status and record["error_type"] == error_type
    assert record["target"] == "webhook" or record.get("trigger") == "webhook"
    assert configured.calls == []


def test_a_conflict_is_one_warning(configured: Any, log_lines: LogCapture) -> None:
    assert post(stop(20), msg_id="same-id").status == 200
    before = len(log_lines.lines)
    assert post(stop(21), msg_id="same-id").status == 409
    records = log_lines.records[before:]
    assert [(r["level"], r["status"], r["event_id"]) for r in records] == [("WARNING", 409, "same-id")]


def test_a_refused_queue_message_is_an_error_for_the_operator(configured: Any, log_lines: LogCapture) -> None:
    event = {"trigger_type": "KAFKA", "instance_id": "k", "records": [
        {"topic_id": "t", "messages": [json.dumps({"action": "stop_build", "job_id": "short", "build_no": 1})]}]}
    answer = fg_handle(event, object(), runtime=get_runtime)
    assert answer["results"][0]["status"] == 422
    failed = [r for r in log_lines.records if r.get("status") == 422]
    assert [r["level"] for r in failed] == ["ERROR"]


def test_the_first_line_of_a_fresh_process_is_json(tmp_path: Path) -> None:
    """A 405 before anything else (the runtime not built yet): the refusal's line on stderr is JSON."""
    import subprocess
    import sys

    probe = ("from stopline.entry import get_runtime; from stopline.triggers import http; "
             "http.handle('webhook', 'GET', {}, lambda n: b'', runtime=get_runtime)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, done.stderr
    first = json.loads(lines[0])
    assert first["status"] == 405 and first["level"] == "WARNING"


def test_every_entry_point_writes_json_from_its_first_line(tmp_path: Path) -> None:
    """A fresh on_event process (Flask and --asgi) whose first request is a Pub/Sub push with data that is
    not base64, and a fresh FunctionGraph handler whose first event it cannot recognise: both refuse before
    the runtime exists, and the refusal -- every line the process writes -- is JSON, at ERROR."""
    import subprocess
    import sys

    import httpx

    from ..conftest import ROOT
    from ..functions.harness import FunctionProcess, start_all

    procs = start_all([FunctionProcess("on_event", mode == "asgi", {}, tmp_path / f"{mode}.log",
                                       signature="cloudevent") for mode in ("flask", "asgi")])
    try:
        for proc in procs:
            push = {"message": {"data": "!!!", "messageId": "first-1"}, "subscription": "projects/p/subscriptions/s"}
            assert httpx.post(proc.url, json=push, timeout=30).status_code == 200  # acknowledged: a poison message
    finally:
        for proc in procs:
            proc.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    probe = "import functiongraph; functiongraph.handler('not an event', None)"
    fg = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env,
                        cwd=ROOT / "functions")
    for name, text in [(p.log_path.name, p.log_path.read_text()) for p in procs] + [("functiongraph", fg.stderr)]:
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, name
        records = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
        assert records[0]["level"] == "ERROR" and records[0]["message"].startswith("message refused"), (name, text)
