"""Queue scenarios: a FunctionGraph Kafka event of 1,000 records, and draining due pending retries.

Each is printed beside its ideal (what the work would take at the given concurrency if every upstream
call took exactly the injected latency and nothing else cost anything), as a ratio.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LATENCY_MS = 50
JOB = "4444aaaa2222bbbb3333cccc4444dddd"
PROJECT = "b384b9e9ab9b4ee8994c8633aabc9505"


def _kafka(commands: list[dict[str, Any]]) -> dict[str, Any]:
    return {"event_version": "v1.0", "trigger_type": "KAFKA", "region": "cn-north-4", "instance_id": "bench",
            "records": [{"messages": [json.dumps(c) for c in commands], "topic_id": "stops"}]}


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _redis(folder: Path) -> Iterator[str | None]:
    """A throwaway redis-server on 127.0.0.1 when the machine has one (stopped by pid), else None."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    from tests.conftest import free_port, wait_port

    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30, process=proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def kafka_batch(reps: int, records: int, concurrency: int = 16) -> tuple[str, dict[str, Any]]:
    """One Kafka event of ``records`` stop commands, each upstream stop taking 50 ms."""
    from stopline.emulator import mock_huaweicloud
    from stopline.entry import get_runtime, reset_runtime
    from stopline.triggers.functiongraph import handle

    ideal_ms = records / concurrency * LATENCY_MS
    took: list[float] = []
    with _environment(STOPLINE_BATCH_CONCURRENCY=str(concurrency), STOPLINE_LOG_LEVEL="WARNING"), \
            mock_huaweicloud("demo") as cloud:
        cloud.seed(build_tasks=[{"job_id": JOB, "project_id": PROJECT,
                                 "builds": [{"build_no": n} for n in range(1, records * (reps + 1) + 1)]}])
        cloud.inject(r"^/v3/jobs/stop$", "latency", delay_ms=LATENCY_MS)
        reset_runtime()
        numbers = iter(range(1, 10**9))
        for _ in range(reps):
            event = _kafka([{"action": "stop_build", "job_id": JOB, "build_no": next(numbers)} for _ in range(records)])
            t0 = time.perf_counter()
            answer = handle(event, None, runtime=get_runtime)
            took.append((time.perf_counter() - t0) * 1000)
            assert answer["ok"], [r for r in answer["results"] if not r["ok"]][:1]
        reset_runtime()
    median = sorted(took)[len(took) // 2]
    text = "\n".join([
        f"### Kafka event of {records:,} records, {LATENCY_MS} ms upstream latency, concurrency {concurrency}", "",
        "| measure | ms |", "|---|---|",
        f"| ideal ({records:,} / {concurrency} x {LATENCY_MS} ms) | {ideal_ms:,.0f} |",
        f"| stopline, median of {reps} ({min(took):,.0f}-{max(took):,.0f}) | {median:,.0f} |", "",
        f"**{median / ideal_ms:.2f}x the ideal** (goal <= 1.3x)",
    ])
    return text, {"ideal_ms": ideal_ms, "ms": took}


def drain(reps: int, items: int, folder: Path, concurrency: int = 16) -> tuple[str, dict[str, Any]]:
    """``items`` due pending retries in a Redis store, each retry's stop taking 50 ms."""
    from stopline.emulator import mock_huaweicloud
    from stopline.entry import get_runtime, reset_runtime
    from stopline.triggers.functiongraph import handle

    ideal_ms = items / concurrency * LATENCY_MS
    took: list[float] = []
    with _redis(folder) as url:
        store = url or "memory://"
        with _environment(STOPLINE_IDEMPOTENCY_URL=store, STOPLINE_MAX_ATTEMPTS="1", STOPLINE_LOG_LEVEL="ERROR"), \
                mock_huaweicloud("demo") as cloud:
            cloud.seed(build_tasks=[{"job_id": JOB, "project_id": PROJECT,
                                     "builds": [{"build_no": n} for n in range(1, items * (reps + 1) + 1)]}])
            reset_runtime()
            numbers = iter(range(1, 10**9))
            for _ in range(reps):
                cloud.clear_faults()
                cloud.inject(r"^/v3/jobs/stop$", "error", status=503, count=items)
                event = _kafka([{"action": "stop_build", "job_id": JOB, "build_no": next(numbers)}
                                for _ in range(items)])
                assert handle(event, None, runtime=get_runtime).get("pending") == items
                cloud.clear_faults()
                cloud.inject(r"^/v3/jobs/stop$", "latency", delay_ms=LATENCY_MS)
                pipeline = get_runtime().pipeline
                t0 = time.perf_counter()
                done = pipeline.retries.run_due(pipeline, everything=True, limit=items, concurrency=concurrency)
                took.append((time.perf_counter() - t0) * 1000)
                assert len(done) == items and all(r.ok for r in done)
            reset_runtime()
    median = sorted(took)[len(took) // 2]
    where = "Redis" if url else "memory:// (no redis-server on this machine)"
    text = "\n".join([
        f"### Draining {items} due pending retries from {where}, {LATENCY_MS} ms upstream latency, "
        f"concurrency {concurrency}", "",
        "| measure | ms |", "|---|---|",
        f"| ideal ({items} / {concurrency} x {LATENCY_MS} ms; at least {math.ceil(items / concurrency)} waves) "
        f"| {ideal_ms:,.0f} |",
        f"| stopline, median of {reps} ({min(took):,.0f}-{max(took):,.0f}) | {median:,.0f} |", "",
        f"**{median / ideal_ms:.2f}x the ideal** (goal <= 2x)",
    ])
    return text, {"ideal_ms": ideal_ms, "ms": took, "store": where}
