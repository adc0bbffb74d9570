"""Fault soak with redelivery: 30 % injected faults across all three APIs, commands delivered through the
webhook target and through on_event as a queue would (redelivering on non-2xx, honouring Retry-After, up to
20 times). Every command must end in exactly one success and one effective state change.
CI: 200 commands; `pytest --long`: 1,000. The slow-cloud phase adds answers dribbled past the timeout and
a restart of the shared Redis (CI: 90 commands; `--long`: 300)."""

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
from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from ..functions.harness import SECRET, FunctionProcess, start_all

SOAK_JOB = "7777aaaa2222bbbb3333cccc4444dddd"
SUCCESS = {"stopped", "already_stopped", "deleted", "already_deleted", "duplicate"}
Faults = list[tuple[str, float, dict[str, Any]]]
FAULTS: Faults = [  # kind, rate, extra; first matching rule that fires wins, ~30 % of calls in all
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


def _soak_cloud(n: int, faults: Faults) -> EmulatorServer:
    """The served emulator with the soak's builds, tasks and jobs, and the faults injected on every API."""
    emulator = Emulator().seed("demo")
    emulator.seed(
        build_tasks=[{"job_id": SOAK_JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": b} for b in
                                                                                      range(1, n + 1)]}]
        + [{"job_id": task_id(i), "project_id": DEMO_PROJECT_ID, "builds": []} for i in range(1, n, 3)],
        dataarts_jobs=[{"project_id": DEMO_PROJECT_ID, "job_name": f"soak-{i}"} for i in range(2, n, 3)])
    for seed, (kind, rate, extra) in enumerate(faults):
        emulator.inject(r"^/v[13]/", kind, rate=rate, seed=1000 + seed, **extra)  # type: ignore[arg-type]
    return emulator.serve()


class Senders:
    """Delivers each command as its sender would: even ones signed to the webhook target, redelivered on 503
    after Retry-After; odd ones as CloudEvents to on_event, redelivered on any non-2xx. Gives up (``lost``)
    after 20 tries."""

    def __init__(self, hook: FunctionProcess, queue: FunctionProcess) -> None:
        self.hook, self.queue = hook, queue
        self.redeliveries = Counter[str]()
        self.finals: dict[int, Any] = {}
        self._lock = threading.Lock()

    def deliver(self, i: int) -> None:
        cmd, _ = command(i)
        self.finals[i] = (self._webhook if i % 2 == 0 else self._queue)(i, cmd)

    def _redelivered(self, target: str) -> None:
        with self._lock:
            self.redeliveries[target] += 1

    def _webhook(self, i: int, cmd: dict[str, Any]) -> Any:
        body = json.dumps(cmd).encode()
        for _ in range(20):
            headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, f"soak-{i}", body)}
            r = httpx.post(self.hook.url, content=body, headers=headers, timeout=60)
            if r.status_code == 200:
                return r.json()["outcome"]
            if r.status_code != 503:
                return f"refused {r.status_code}: {r.text}"
            self._redelivered("webhook")
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return "lost"

    def _queue(self, i: int, cmd: dict[str, Any]) -> Any:
        event = {"specversion": "1.0", "id": f"soak-{i}", "source": "//soak", "type": "soak.command",
                 "datacontenttype": "application/json", "data": cmd}
        for _ in range(20):
            r = httpx.post(self.queue.url, content=json.dumps(event),
                           headers={"Content-Type": "application/cloudevents+json"}, timeout=60)
            if r.status_code == 200:
                return "acknowledged"
            self._redelivered("on_event")
            time.sleep(0.2)
        return "lost"


def soak(n: int, faults: Faults, tmp_path: Path, *, name: str, env_extra: dict[str, str] | None = None,
         during: Any = None) -> float:
    """Deliver n commands (half by webhook, half by on_event) under ``faults``; ``during`` runs in a thread
    meanwhile (a store restart). Prints the figures; asserts 0 lost and 0 doubles. Returns when the last
    delivery ended (``time.monotonic()``)."""
    server = _soak_cloud(n, faults)
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET, "STOPLINE_TIMEOUT_S": "0.5",
           "STOPLINE_MAX_ATTEMPTS": "3", **(env_extra or {})}
    hook = FunctionProcess("webhook", False, env, tmp_path / "webhook.log")
    queue = FunctionProcess("on_event", True, env, tmp_path / "on_event.log", signature="cloudevent")
    start_all([hook, queue])
    senders = Senders(hook, queue)
    side = threading.Thread(target=during) if during is not None else None
    try:
        if side is not None:
            side.start()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(senders.deliver, range(n)))
        finished = time.monotonic()
        if side is not None:
            side.join()
        state = httpx.get(f"{server.url}/_emulator/state").json()
    finally:
        hook.stop()
        queue.stop()
        server.stop()
    _check(name, n, senders, state)
    return finished


def _check(name: str, n: int, senders: Senders, state: dict[str, Any]) -> None:
    """Every command ended in one success and caused exactly one state change; the faults really fired."""
    queue_outcomes: dict[str, list[str]] = {}
    retries = 0
    for proc in (senders.hook, senders.queue):
        for line in proc.log_records():
            retries += line.get("message", "").startswith("retrying")
            if proc is senders.queue and line.get("outcome") in SUCCESS and line.get("event_id"):
                queue_outcomes.setdefault(line["event_id"], []).append(line["outcome"])
    finals = senders.finals
    effects = Counter(effect_key(e) for e in state["effects"])
    lost = [i for i, f in finals.items() if f == "lost" or str(f).startswith("refused")]
    not_once = [i for i in range(n) if effects[command(i)[1]] != 1]
    queue_not_once = [i for i in range(1, n, 2) if len(queue_outcomes.get(f"soak-{i}", [])) != 1]
    webhook_bad = [i for i in range(0, n, 2) if finals[i] not in SUCCESS]
    doubles = sum(1 for count in effects.values() if count > 1)
    print(f"\n{name}: commands={n} faults_injected={sum(state['faults_injected'].values())} "
          f"({dict(state['faults_injected'])}) retries={retries} redeliveries={dict(senders.redeliveries)} "
          f"lost={len(lost)} doubles={doubles}")
    assert sum(state["faults_injected"].values()) > n * 0.15
    assert lost == [] and webhook_bad == [] and queue_not_once == []
    assert not_once == [] and doubles == 0 and len(state["effects"]) == n


def test_fault_soak_with_redelivery(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    soak(1000 if request.config.getoption("--long") else 200, FAULTS, tmp_path, name="fault soak")


SLOW_CLOUD: Faults = [  # answers dribbled far past the 0.5 s timeout (a byte every 150 ms), plus the usual faults
    ("dribble", 0.2, {"delay_ms": 150}),
    ("throttle", 0.05, {"retry_after": 1}),
    ("drop", 0.05, {}),
]


def test_slow_cloud_and_a_redis_restart(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The "slow cloud" phase (issue 11): dribbled answers abandoned at their deadline, and the shared
    Redis (persistent) restarted mid-run, with both senders redelivering: 0 lost, 0 doubles."""
    from ..redis_topologies import persistent

    store = persistent(tmp_path / "redis")
    restarted: list[float] = []

    def restart() -> None:
        time.sleep(2.0)
        store.restart()
        restarted.append(time.monotonic())

    try:
        finished = soak(300 if request.config.getoption("--long") else 90, SLOW_CLOUD, tmp_path, name="slow cloud soak",
             env_extra={"STOPLINE_IDEMPOTENCY_URL": store.url}, during=restart)
        assert restarted and restarted[0] < finished  # Redis restarted while deliveries were running
    finally:
        store.stop()
