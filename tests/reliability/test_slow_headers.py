"""An upstream that dribbles its status line and headers cannot hold a delivery (issue 23).

A raw-socket server stands in for CodeArts Build and DataArts: it reads each request, then answers one
byte every 0.25 s -- the status line and headers too, so every socket read the client makes is quick and
httpx's per-read timeouts never fire. With ``STOPLINE_TIMEOUT_S=1`` and one attempt, each target (Flask
and ASGI mode) answers a transient failure, and the server sees the connection closed long before its
last byte. A re-send of the same delivery id, made while the first was in flight, never reaches the
server while the first connection is open. Both are asserted at the server, not with a clock.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..dribbling import ANSWER, SlowHead
from ..functions.harness import SECRET, FunctionProcess, signed_post, start_all

JOB = "7777aaaa2222bbbb3333cccc4444dddd"
TARGETS: dict[str, tuple[str, dict[str, object]]] = {
    "stop_build": ("http", {"job_id": JOB, "build_no": 3}),
    "delete_build_task": ("http", {"job_id": JOB}),
    "stop_dataarts_job": ("http", {"job_name": "slow-etl"}),
    "webhook": ("http", {"action": "stop_build", "job_id": JOB, "build_no": 4}),
    "on_event": ("cloudevent", {"action": "stop_dataarts_job", "job_name": "slow-queue-etl"}),
}


def _send(proc: FunctionProcess, body: dict[str, object], delivery: str) -> httpx.Response:
    if proc.signature == "cloudevent":
        event = {"specversion": "1.0", "id": delivery, "source": "//slow", "type": f"stopline.{body['action']}",
                 "datacontenttype": "application/json", "data": body}
        return httpx.post(proc.url, content=json.dumps(event), timeout=60,
                          headers={"Content-Type": "application/cloudevents+json"})
    return signed_post(proc.url, body, msg_id=delivery, timeout=60)


@pytest.mark.parametrize("asgi", [False, True], ids=["flask", "asgi"])
def test_a_dribbled_status_line_is_abandoned_and_never_overlaps_its_redelivery(tmp_path: Path, asgi: bool) -> None:
    upstream = SlowHead().start()
    env = {"STOPLINE_AUTH_TOKEN": "slow-head-token", "HUAWEICLOUD_SDK_PROJECT_ID": "p" * 32,
           "STOPLINE_CODEARTS_BUILD_ENDPOINT": upstream.url, "STOPLINE_DATAARTS_ENDPOINT": upstream.url,
           "STOPLINE_IAM_ENDPOINT": upstream.url, "STOPLINE_WEBHOOK_SECRETS": SECRET,
           "STOPLINE_TIMEOUT_S": "1", "STOPLINE_MAX_ATTEMPTS": "1"}
    procs = {name: FunctionProcess(name, asgi, env, tmp_path / f"{name}.log", signature=kind)
             for name, (kind, _) in TARGETS.items()}
    start_all(list(procs.values()))
    try:
        with ThreadPoolExecutor(max_workers=2 * len(TARGETS)) as pool:
            firsts = {name: pool.submit(_send, procs[name], body, f"slow-{name}")
                      for name, (_, body) in TARGETS.items()}
            resent = {name: pool.submit(_send, procs[name], body, f"slow-{name}")
                      for name, (_, body) in TARGETS.items()}
            answers = {name: (firsts[name].result(), resent[name].result()) for name in TARGETS}
        for name, pair in answers.items():
            for answer in pair:
                # a transient failure: 503 over HTTP, a redelivery request on the queue target
                assert answer.status_code in (500, 503), (name, answer.status_code, answer.text)
                if procs[name].signature == "http":
                    error = answer.json()["error"]
                    assert error["type"] in ("unavailable", "in_progress"), (name, error)
        assert upstream.requests, "the upstream was never called"
        assert len(upstream.requests) <= 2 * len(TARGETS)
        # every connection was closed by the client long before its last byte
        assert upstream.sent_bytes and max(upstream.sent_bytes) < len(ANSWER) // 4, upstream.sent_bytes
        # and no re-send reached the cloud while the first exchange of the same call was still open
        assert upstream.overlapping == 0
    finally:
        for proc in procs.values():
            proc.stop()
        upstream.stop()
