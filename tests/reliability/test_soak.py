"""Fault soak with redelivery: 30 % injected faults across all three APIs, commands delivered through the
webhook target and through on_event as a queue would (redelivering on non-2xx, honouring Retry-After, up to
10 times). Every command must end in exactly one success and one effective state change.
CI: 200 commands; `pytest --long`: 1,000."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from stopline import webhooks
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from ..functions.harness import SECRET, FunctionProcess, start_all

SOAK_JOB = "7777aaaa2222bbbb3333cccc4444dddd"
SUCCESS = {"stopped", "already_stopped", "deleted", "already_deleted", "duplicate"}
FAULTS = [  # kind, rate, extra; first matching rule that fires wins, ~30 % of calls in all
    ("throttle", 0.07, {"retry_after": 1}),
    ("error", 0.04, {"status": 500, "retry_after": None}),
    ("error", 0.04, {"status": 502, "retry_after": None}),
    ("error", 0.04, {"status": 503, "retry_after": None}),
    ("drop", 0.06, {}),
    ("latency", 0.06, {"delay_ms": 2000}),
]


def task_id(i: int) -> str:
    return f"a{i:031d}"


def command(i: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The i-th command and the key of the state change it should cause."""
    if i % 3 == 0:
        return {"action": "stop_build", "job_id": SOAK_JOB, "build_no": i + 1}, ("build_stopped", SOAK_JOB, str(i + 1))
    if i % 3 == 1:
        return {"action": "delete_build_task", "job_id": task_id(i)}, ("task_deleted", task_id(i))
    return {"action": "stop_dataarts_job", "job_name": f"soak-{i}"}, ("job_stopped", f"soak-{i}")


def effect_key(effect: dict[str, Any]) -> tuple[str, ...]:
    if effect["effect"] == "build_stopped":
        return ("build_stopped", effect["job_id"], str(effect["build_no"]))
    if effect["effect"] == "task_deleted":
        return ("task_deleted", effect["job_id"])
    return ("job_stopped", effect["job_name"])


def test_fault_soak_with_redelivery(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    n = 1000 if request.config.getoption("--long") else 200
    emulator = Emulator().seed("demo")
    emulator.seed(
        build_tasks=[{"job_id": SOAK_JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": b} for b in
                                                                                      range(1, n + 1)]}]
        + [{"job_id": task_id(i), "project_id": DEMO_PROJECT_ID, "builds": []} for i in range(1, n, 3)],
        dataarts_jobs=[{"project_id": DEMO_PROJECT_ID, "job_name": f"soak-{i}"} for i in range(2, n, 3)])
    for seed, (kind, rate, extra) in enumerate(FAULTS):
        emulator.inject(r"^/v[13]/", kind, rate=rate, seed=1000 + seed, **extra)  # type: ignore[arg-type]
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET, "STOPLINE_TIMEOUT_S": "0.5",
           "STOPLINE_MAX_ATTEMPTS": "3"}
    hook = FunctionProcess("webhook", False, env, tmp_path / "webhook.log")
    queue = FunctionProcess("on_event", True, env, tmp_path / "on_event.log", signature="cloudevent")
    start_all([hook, queue])
    redeliveries = Counter[str]()
    lock = threading.Lock()
    finals: dict[int, Any] = {}

    def via_webhook(i: int, cmd: dict[str, Any]) -> Any:
        body = json.dumps(cmd).encode()
        for _ in range(10):
            headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, f"soak-{i}", body)}
            r = httpx.post(hook.url, content=body, headers=headers, timeout=60)
            if r.status_code == 200:
                return r.json()["outcome"]
            if r.status_code != 503:
                return f"refused {r.status_code}: {r.text}"
            with lock:
                redeliveries["webhook"] += 1
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return "lost"

    def via_queue(i: int, cmd: dict[str, Any]) -> Any:
        event = {"specversion": "1.0", "id": f"soak-{i}", "source": "//soak", "type": "soak.command",
                 "datacontenttype": "application/json", "data": cmd}
        for _ in range(10):
            r = httpx.post(queue.url, content=json.dumps(event),
                           headers={"Content-Type": "application/cloudevents+json"}, timeout=60)
            if r.status_code == 200:
                return "acknowledged"
            with lock:
                redeliveries["on_event"] += 1
            time.sleep(0.2)
        return "lost"

    def deliver(i: int) -> None:
        cmd, _ = command(i)
        finals[i] = (via_webhook if i % 2 == 0 else via_queue)(i, cmd)

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(deliver, range(n)))
        state = httpx.get(f"{server.url}/_emulator/state").json()
    finally:
        hook.stop()
        queue.stop()
        server.stop()

    queue_outcomes: dict[str, list[str]] = {}
    retries = 0
    for proc in (hook, queue):
        for line in proc.log_records():
            retries += line.get("message", "").startswith("retrying")
            if proc is queue and line.get("outcome") in SUCCESS and line.get("event_id"):
                queue_outcomes.setdefault(line["event_id"], []).append(line["outcome"])
    effects = Counter(effect_key(e) for e in state["effects"])
    lost = [i for i, f in finals.items() if f == "lost" or str(f).startswith("refused")]
    not_once = [i for i in range(n) if effects[command(i)[1]] != 1]
    queue_not_once = [i for i in range(1, n, 2) if len(queue_outcomes.get(f"soak-{i}", [])) != 1]
    webhook_bad = [i for i in range(0, n, 2) if finals[i] not in SUCCESS]
    doubles = sum(1 for count in effects.values() if count > 1)
    print(f"\nfault soak: commands={n} faults_injected={sum(state['faults_injected'].values())} "
          f"({dict(state['faults_injected'])}) retries={retries} redeliveries={dict(redeliveries)} "
          f"lost={len(lost)} doubles={doubles}")
    assert sum(state["faults_injected"].values()) > n * 0.15
    assert lost == [] and webhook_bad == [] and queue_not_once == []
    assert not_once == [] and doubles == 0 and len(state["effects"]) == n
