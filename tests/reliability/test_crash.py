"""Crash mid-call: a function process is killed (SIGKILL) after the cloud accepted a stop but before it
answered. The redelivered event ends as `already_stopped` on another instance, no second stop happens,
and the dead process's claim does not outlive its TTL."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import cast

import httpx
import redis

from stopline import webhooks
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment
from stopline.idempotency import store_key

from ..conftest import RedisServer, descendant_pids
from ..functions.harness import SECRET, FunctionProcess, start_all, wait_until

JOB = "8888aaaa2222bbbb3333cccc4444dddd"
TIMEOUT_S, MAX_ATTEMPTS = 3, 1
CLAIM_TTL_S = TIMEOUT_S * MAX_ATTEMPTS + 5 + 5  # the delivery's deadline (its overall bound) + 5 s
KEY = store_key("stopline:", ("delivery", "webhook", "crash-1"))


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its children, children first (functions-framework serves from a worker)."""
    for member in reversed([pid, *descendant_pids(pid)]):
        os.kill(member, signal.SIGKILL)


def test_kill_9_mid_call_then_redelivery(redis_server: RedisServer, tmp_path: Path) -> None:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": 1}]}])
    emulator.inject(r"^/v3/jobs/stop$", "hold", delay_ms=2500, count=1)  # the stop is done; the answer waits
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET,
           "STOPLINE_IDEMPOTENCY_URL": redis_server.url, "STOPLINE_TIMEOUT_S": str(TIMEOUT_S),
           "STOPLINE_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    first, = start_all([FunctionProcess("webhook", False, env, tmp_path / "first.log")])
    second = FunctionProcess("webhook", True, env, tmp_path / "second.log")
    body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": 1}).encode()

    def post(url: str) -> httpx.Response:
        headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, "crash-1", body)}
        return httpx.post(url, content=body, headers=headers, timeout=30)

    errors: list[BaseException] = []

    def doomed() -> None:
        try:
            post(first.url)
        except httpx.HTTPError as exc:  # the process dies under the request
            errors.append(exc)

    sender = threading.Thread(target=doomed)
    try:
        sender.start()
        assert wait_until(lambda: len(emulator.effects) == 1, timeout=10)  # the cloud stopped the build
        assert first.proc is not None
        kill_tree(first.proc.pid)  # ... and the function (gunicorn master and worker) never answers
        sender.join(timeout=10)
        assert errors, "the first delivery must not have been answered"
        store = redis.Redis.from_url(redis_server.url)
        ttl_ms = cast(int, store.pttl(KEY))
        assert 0 < ttl_ms <= CLAIM_TTL_S * 1000  # the orphaned claim expires on its own
        assert json.loads(cast(bytes, store.get(KEY)) or b"{}")["state"] == "in_progress"

        start_all([second])
        answers = []
        for _ in range(20):  # the sender redelivers, honouring Retry-After
            reply = post(second.url)
            answers.append(reply.status_code)
            if reply.status_code == 200:
                break
            assert reply.status_code == 503 and reply.json()["error"]["type"] == "in_progress"
            time.sleep(float(reply.headers["Retry-After"]))
        assert answers[-1] == 200 and reply.json()["outcome"] == "already_stopped"
        assert len(emulator.effects) == 1  # never stopped twice
        assert json.loads(cast(bytes, store.get(KEY)) or b"{}")["state"] == "done"
        store.close()
    finally:
        first.stop()
        second.stop()
        server.stop()
