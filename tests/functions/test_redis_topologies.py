"""Exactly once on every Redis deployment stopline supports (docs/exactly-once.md): TLS, a 3-master
cluster, a master behind Sentinel. Two functions-framework processes (Flask and ASGI) share the store;
20 + 20 concurrent deliveries of one event make one upstream call. A restart of the store mid-run (a
persistent single server, every master of the cluster in turn) loses nothing and calls nothing twice."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from stopline import webhooks
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from ..conftest import LogCapture
from ..redis_topologies import TOPOLOGIES, Topology
from .harness import SECRET, FunctionProcess, start_all

JOB = "5555aaaa2222bbbb3333cccc4444dddd"
EVENTS = 16


@pytest.fixture
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    made = TOPOLOGIES[request.param](tmp_path / "redis")
    yield made
    made.stop()


def stack(url: str, tmp_path: Path) -> tuple[Emulator, object, list[FunctionProcess]]:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                "builds": [{"build_no": n} for n in range(1, EVENTS + 1)]}])
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET, "STOPLINE_IDEMPOTENCY_URL": url,
           "STOPLINE_TIMEOUT_S": "2", "STOPLINE_MAX_ATTEMPTS": "2"}
    procs = start_all([FunctionProcess("webhook", False, env, tmp_path / "flask.log"),
                       FunctionProcess("webhook", True, env, tmp_path / "asgi.log")])
    return emulator, server, procs


def deliver(url: str, build_no: int, event_id: str) -> httpx.Response:
    body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": build_no}).encode()
    headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, event_id, body)}
    return httpx.post(url, content=body, headers=headers, timeout=60)


def redeliver(url: str, build_no: int, event_id: str) -> str:
    """A sender that redelivers on 503 (quicker than Retry-After, to keep the test short): the outcome."""
    for _ in range(150):
        reply = deliver(url, build_no, event_id)
        if reply.status_code != 503:
            assert reply.status_code == 200, reply.text
            return str(reply.json()["outcome"])
        time.sleep(0.2)
    raise AssertionError(f"event {event_id} still answered 503 after 30 s")


@pytest.mark.parametrize("topology", ["tls", "cluster", "sentinel"], indirect=True)
def test_forty_concurrent_deliveries_make_one_call(topology: Topology, tmp_path: Path) -> None:
    emulator, server, procs = stack(topology.url, tmp_path)
    try:
        emulator.inject(r"^/v3/jobs/stop$", "hold", delay_ms=400, count=1)  # the deliveries overlap for sure
        with ThreadPoolExecutor(max_workers=40) as pool:
            answers = list(pool.map(lambda u: deliver(u, 1, f"{topology.name}-event"),
                                    [p.url for p in procs for _ in range(20)]))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        assert sorted(a.json()["outcome"] for a in answers) == ["duplicate"] * 39 + ["stopped"]
        assert [c["path"] for c in emulator.calls] == ["/v3/jobs/stop"] and len(emulator.effects) == 1
    finally:
        for p in procs:
            p.stop()
        server.stop()  # type: ignore[attr-defined]


@pytest.mark.parametrize("topology", ["persistent", "cluster"], indirect=True)
def test_a_store_restart_mid_run_loses_nothing_and_calls_nothing_twice(topology: Topology, tmp_path: Path) -> None:
    """16 events, each delivered to both processes by a redelivering sender, while the store restarts;
    afterwards every event is a duplicate: the records survived the restart (AOF)."""
    emulator, server, procs = stack(topology.url, tmp_path)
    try:
        emulator.inject(r"^/v3/jobs/stop$", "latency", delay_ms=250)  # a run long enough to restart within
        window: list[float] = []
        restarted = threading.Event()

        def restart_soon() -> None:
            time.sleep(0.3)
            window.append(time.monotonic())
            topology.restart()
            window.append(time.monotonic())
            restarted.set()

        restarter = threading.Thread(target=restart_soon)
        restarter.start()
        jobs = [(p.url, n, f"restart-{n}") for n in range(1, EVENTS + 1) for p in procs]
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(lambda job: redeliver(*job), jobs))
        finished = time.monotonic()
        restarter.join()
        assert restarted.is_set() and finished > window[1]  # the store restarted while deliveries ran
        assert Counter(outcomes) == {"stopped": EVENTS, "duplicate": EVENTS}, Counter(outcomes)
        emulator.clear_faults()
        after = [redeliver(procs[n % 2].url, n, f"restart-{n}") for n in range(1, EVENTS + 1)]
        assert after == ["duplicate"] * EVENTS  # the records survived the restart
        stops = Counter(c["build_no"] for c in emulator.calls if c["path"] == "/v3/jobs/stop")
        assert stops == {n: 1 for n in range(1, EVENTS + 1)}  # one call per event, none twice
        assert len(emulator.effects) == EVENTS
    finally:
        for p in procs:
            p.stop()
        server.stop()  # type: ignore[attr-defined]


@pytest.mark.parametrize("topology", ["cluster", "sentinel"], indirect=True)
def test_an_evicting_node_is_named_whatever_the_topology(topology: Topology, log_lines: LogCapture) -> None:
    """One data node set to evict (a cluster's last master, the Sentinel's master): the store reads every
    node's policy through its own client and warns once, naming it."""
    import redis

    from stopline.idempotency import open_store

    node = redis.Redis(port=topology.data[-1].port)  # that node alone, not through the cluster's client
    node.config_set("maxmemory-policy", "volatile-ttl")
    node.close()
    store = open_store(topology.url)
    try:
        assert store.get("stopline:nothing") is None
        for thread in [t for t in threading.enumerate() if t.name == "stopline-redis-policy"]:
            thread.join(timeout=30)
    finally:
        store.close()
    warned = [str(r["message"]) for r in log_lines.records if "maxmemory-policy" in str(r["message"])]
    assert len(warned) == 1 and warned[0].startswith("Redis maxmemory-policy is volatile-ttl: "), warned
