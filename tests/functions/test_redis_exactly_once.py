"""Exactly once across instances: two functions-framework processes (Flask and ASGI) share a real
redis-server; 20 concurrent deliveries of one event to each make exactly one upstream call."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from stopline import webhooks
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from ..conftest import RedisServer
from .harness import SECRET, FunctionProcess, signed_post, start_all

JOB = "3333aaaa2222bbbb3333cccc4444dddd"


def test_forty_concurrent_deliveries_make_one_call(redis_server: RedisServer, tmp_path: Path) -> None:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                "builds": [{"build_no": n} for n in range(1, 20)]}])
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET,
           "STOPLINE_IDEMPOTENCY_URL": redis_server.url}
    procs = start_all([FunctionProcess("webhook", False, env, tmp_path / "a.log"),
                       FunctionProcess("webhook", True, env, tmp_path / "b.log")])
    try:
        # hold the cloud's answer so the deliveries overlap the first call for certain
        emulator.inject(r"^/v3/jobs/stop$", "hold", delay_ms=400, count=1)
        body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": 1}).encode()
        headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, "shared-event-1", body)}

        def deliver(url: str) -> httpx.Response:
            return httpx.post(url, content=body, headers=headers, timeout=30)

        with ThreadPoolExecutor(max_workers=40) as pool:
            answers = list(pool.map(deliver, [p.url for p in procs for _ in range(20)]))
        outcomes = sorted(a.json()["outcome"] for a in answers)
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        assert outcomes == ["duplicate"] * 39 + ["stopped"]
        assert [c["path"] for c in emulator.calls] == ["/v3/jobs/stop"]
        assert len(emulator.effects) == 1
    finally:
        for p in procs:
            p.stop()
        server.stop()


def test_redis_outage_is_503_then_redelivery_completes(redis_server: RedisServer, tmp_path: Path) -> None:
    """Without the store, no call is made (503 + Retry-After); once Redis is back the redelivery runs once."""
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": 1}]}])
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET,
           "STOPLINE_IDEMPOTENCY_URL": redis_server.url}
    (proc,) = start_all([FunctionProcess("webhook", True, env, tmp_path / "c.log")])
    try:
        command = {"action": "stop_build", "job_id": JOB, "build_no": 1}
        msg = f"outage-{uuid.uuid4().hex}"
        redis_server.stop()
        down = signed_post(proc.url, command, msg_id=msg)
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert emulator.calls == []
        redis_server.start()
        assert signed_post(proc.url, command, msg_id=msg).json()["outcome"] == "stopped"
        assert signed_post(proc.url, command, msg_id=msg).json()["outcome"] == "duplicate"
        assert len(emulator.effects) == 1
    finally:
        proc.stop()
        server.stop()
