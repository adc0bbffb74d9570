"""No secret, token or signature appears in any log line or response, across the status matrix."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from functions_framework import create_app

from stopline import webhooks
from stopline.emulator import mock_huaweicloud
from stopline.emulator.seeds import DEMO_IAM, DEMO_JOB_ID, DEMO_PROJECT_ID
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import cloudevent
from stopline.triggers.functiongraph import handle as fg_handle

from .conftest import ROOT, LogCapture, configured_secret

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"very-secret-webhook-key-material").decode()
PLAIN_SECRET = "plain-webhook-secret-value-42"
configured_secret(WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_"), PLAIN_SECRET)


def test_secret_scan_across_the_matrix(monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    responses: list[str] = []
    signatures: list[str] = []
    with mock_huaweicloud("demo", fake_credentials=False) as cloud:
        for name, value in {"STOPLINE_IAM_USERNAME": DEMO_IAM["username"], "STOPLINE_IAM_PASSWORD":
                            DEMO_IAM["password"], "STOPLINE_IAM_DOMAIN": DEMO_IAM["domain"],
                            "HUAWEICLOUD_SDK_PROJECT_ID": DEMO_PROJECT_ID, "STOPLINE_MAX_ATTEMPTS": "2",
                            "STOPLINE_WEBHOOK_SECRETS": f"{WEBHOOK_SECRET},{PLAIN_SECRET}"}.items():
            monkeypatch.setenv(name, value)
        reset_runtime()
        app = create_app("webhook", str(ROOT / "functions" / "main.py")).test_client()  # type: ignore[no-untyped-call]

        def send(body: Any, msg_id: str, secret: str = WEBHOOK_SECRET) -> None:
            raw = json.dumps(body).encode()
            headers = webhooks.sign(secret, msg_id, raw)
            signatures.append(headers["webhook-signature"].removeprefix("v1,"))
            r = app.post("/", data=raw, headers={**headers, "Content-Type": "application/json"})
            responses.append(r.get_data(as_text=True) + json.dumps(dict(r.headers)))

        cloud.inject(r"busy", "throttle", retry_after=0)
        cloud.inject(r"denied", "error", status=403, error_code="APIGW.0302", retry_after=None)
        send({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "m1")            # 200
        send({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "m1")            # duplicate
        send({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 21}, "m1")            # 409
        send({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 21}, "m2", "wrong-secret-value")  # 401
        send({"action": "stop_build", "job_id": "x", "build_no": 0}, "m3", PLAIN_SECRET)     # 422
        send({"action": "stop_dataarts_job", "job_name": "nope"}, "m4")                      # 404
        send({"action": "stop_dataarts_job", "job_name": "busy"}, "m5")                      # 503
        send({"action": "stop_dataarts_job", "job_name": "denied"}, "m6")                    # 502
        first_tokens = list(cloud.state.tokens)
        cloud.state.revoke_tokens()
        send({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 22}, "m7")            # refresh on 401
        event = {"message": {"data": base64.b64encode(b'{"action":"stop_dataarts_job","job_name":"nightly"}')
                             .decode(), "messageId": "p1"}}
        responses.append(json.dumps(cloudevent.handle({"id": "x", "type": "t"}, event, runtime=get_runtime).to_json()))
        responses.append(json.dumps(fg_handle(json.loads((ROOT / "events/functiongraph-timer.json").read_text()),
                                              object(), runtime=get_runtime)))
        tokens = first_tokens + list(cloud.state.tokens)
        assert cloud.state.token_requests == 2 and len(tokens) == 3  # the demo token + two issued
    statuses = [json.loads(r.split("}{")[0] + "}").get("ok") for r in responses[:1]]
    assert statuses == [True]
    haystack = "\n".join(log_lines.lines + responses)
    assert len(log_lines.lines) >= 10
    needles = [WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_"), PLAIN_SECRET, DEMO_IAM["password"],
               *tokens, *signatures]
    leaks = [n for n in needles if n in haystack]
    assert leaks == []


def test_the_scrubber_catches_json_escaped_secrets_and_stays_bounded(log_lines: LogCapture) -> None:
    """A secret with a quote or backslash is written JSON-escaped, which a plain search misses; rotated
    agency keys do not grow the registry forever; registering while formatting is safe."""
    import logging
    import threading

    from stopline import logs

    tricky = 'pa"ss\\word-for-scrubbing'
    configured_secret(tricky)
    logs.register_secret(tricky)
    logging.getLogger("stopline").warning("leak %s", tricky, extra={"field": tricky})
    assert "pa" + "\\\"ss" not in log_lines.lines[-1] and log_lines.lines[-1].count("***") == 2
    for n in range(500):
        logs.register_secret(f"agency-temporary-sk-{n:04d}", temporary=True)
    assert len(logs._secrets) < 100
    assert logs.scrub("agency-temporary-sk-0499") == "***" and logs.scrub(tricky) == "***"
    stop = threading.Event()

    def register() -> None:
        n = 0
        while not stop.is_set():
            logs.register_secret(f"racing-temporary-sk-{n:06d}", temporary=True)
            n += 1

    racer = threading.Thread(target=register)
    racer.start()
    try:
        for _ in range(2000):
            logs.scrub("nothing secret here, just a line to scan")  # a set changing size would raise
    finally:
        stop.set()
        racer.join()


def test_an_authorised_request_prints_no_credentials() -> None:
    from stopline.wire import Call

    call = Call("POST", "https", "cloudbuild-ext.cn-north-4.myhuaweicloud.com", "/v3/jobs/stop", (),
                {"X-Auth-Token": "MIIZ-token-that-must-not-print", "Authorization": "SDK-HMAC-SHA256 Signature=ab"},
                b'{"job_id": "x"}', "v3")
    assert "MIIZ" not in repr(call) and "Signature" not in repr(call) and "/v3/jobs/stop" in repr(call)


def test_a_runtime_prints_no_webhook_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The senders hold the raw keys; printing the runtime's senders (a debugger, an error report) shows how
    many there are, never their bytes."""
    from stopline.entry import Runtime
    from stopline.settings import load_settings

    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", "whsec_" + base64.b64encode(b"webhook-key-never-printed").decode())
    monkeypatch.setenv("STOPLINE_GITHUB_SECRETS", "github-secret-never-printed")
    monkeypatch.setenv("STOPLINE_GITLAB_TOKENS", "gitlab-token-never-printed")
    monkeypatch.setenv("STOPLINE_GITLAB_SIGNING_SECRETS",
                       "whsec_" + base64.b64encode(b"gitlab-key-never-printed").decode())
    shown = repr(Runtime(load_settings()).sources)
    assert "never-printed" not in shown and b"never-printed".hex() not in shown
    assert "StandardWebhooks(allow_unsigned=False, keys=<1 secret(s)>" in shown
    assert "GitHub(allow_unsigned=False, keys=<1 secret(s)>)" in shown
    assert "signing_keys=<1 secret(s)>" in shown and "tokens=<1 secret(s)>" in shown


RETRY_SCRIPT = """
from stopline.emulator import mock_huaweicloud
from stopline.emulator.seeds import DEMO_JOB_ID
from stopline.entry import get_runtime
from stopline.pipeline import Delivery

with mock_huaweicloud("demo") as cloud:
    cloud.inject(r"^/v3/jobs/stop$", "error", status=503, count=1, retry_after=None)
    result = get_runtime().pipeline.handle({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20},
                                           Delivery(None, "test"))
    assert str(result.outcome) == "stopped" and result.attempts == 2, result
"""


def test_retries_write_only_json_lines() -> None:
    """stamina's own hook printed a bare `stamina.retry_scheduled` line; every stderr line is JSON."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", RETRY_SCRIPT], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any("retrying" in line for line in lines), lines
    assert all(line.startswith("{") and json.loads(line) for line in lines), lines
    assert "retry_scheduled" not in done.stderr


def test_mock_huaweicloud_nests_and_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "REAL-USER-AK")
    mock = mock_huaweicloud("demo")
    with mock as outer:
        with mock_huaweicloud() as inner:
            assert os.environ["HUAWEICLOUD_SDK_AK"] != "REAL-USER-AK" and inner is not outer
        with mock as again:  # the same object entered inside itself
            assert mock.emulator is again
        assert mock.emulator is outer and os.environ["HUAWEICLOUD_SDK_AK"] != "REAL-USER-AK"
    assert os.environ["HUAWEICLOUD_SDK_AK"] == "REAL-USER-AK"
    with pytest.raises(Exception), mock_huaweicloud({"build_tasks": "not a list"}):  # noqa: B017
        pass
    assert os.environ["HUAWEICLOUD_SDK_AK"] == "REAL-USER-AK"  # restored although entering failed
