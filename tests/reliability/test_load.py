"""Bounded load: 64 concurrent signed webhooks against one served instance for a fixed time. No errors, and
memory stays flat (first vs last quarter RSS within 10 %) because the memory:// store is bounded.
CI: 8 s; `pytest --long`: 60 s."""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from stopline import webhooks
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from ..conftest import descendant_pids
from ..functions.harness import SECRET, FunctionProcess, start_all

JOB = "6666aaaa2222bbbb3333cccc4444dddd"


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants (functions-framework serves from a worker)."""
    total = 0
    for member in (pid, *descendant_pids(pid)):
        status = Path(f"/proc/{member}/status")
        if status.exists():
            total += next((int(line.split()[1]) for line in status.read_text().splitlines()
                           if line.startswith("VmRSS:")), 0)
    return total


def test_64_connections_no_errors_and_flat_memory(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    seconds = 60.0 if request.config.getoption("--long") else 8.0
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": 1}]}])
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET, "STOPLINE_LOG_LEVEL": "WARNING",
           # memory:// keeps every result younger than the signature window; a 3 s window lets it evict at
           # this rate, so the store's bound (not the window) is what keeps memory flat
           "STOPLINE_IDEMPOTENCY_MAX_ENTRIES": "5000", "STOPLINE_WEBHOOK_TOLERANCE_S": "3"}
    proc, = start_all([FunctionProcess("webhook", False, env, tmp_path / "load.log")])
    body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": 1}).encode()
    statuses: list[int] = []
    samples: list[int] = []
    lock = threading.Lock()
    warmup_s = 2.0  # the first requests build the runtime, pools and caches: not growth
    started = time.monotonic()
    deadline = started + warmup_s + seconds
    counter = iter(range(10**9))

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter)
                headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, f"load-{n}", body)}
                status = client.post(proc.url, content=body, headers=headers).status_code
                with lock:
                    statuses.append(status)

    try:
        assert proc.proc is not None
        threads = [threading.Thread(target=worker) for _ in range(64)]
        for t in threads:
            t.start()
        while time.monotonic() < deadline:
            if time.monotonic() > started + warmup_s:
                samples.append(tree_rss_kb(proc.proc.pid))
            time.sleep(0.25)
        for t in threads:
            t.join()
    finally:
        proc.stop()
        server.stop()
    quarter = max(1, len(samples) // 4)
    first, last = statistics.mean(samples[:quarter]), statistics.mean(samples[-quarter:])
    errors = sum(1 for s in statuses if s != 200)
    total_s = warmup_s + seconds
    print(f"\nbounded load: {len(statuses)} requests in {total_s:.0f} s over 64 connections "
          f"({len(statuses) / total_s:.0f} req/s), errors={errors}, RSS first quarter {first / 1024:.1f} MB, "
          f"last quarter {last / 1024:.1f} MB ({(last / first - 1) * 100:+.1f} %)")
    assert len(statuses) > 64 and errors == 0
    assert last < first * 1.10
