"""Leases are bounds, not guesses (docs/exactly-once.md, issue 11 defects 1 and 5).

A served emulator that sends its headers at once and then one byte every 0.5 s keeps every httpx read
short, so only an overall deadline per request stops the client. With STOPLINE_TIMEOUT_S=1 the delivery
answers 503 well inside its lease and the redelivery completes: one effective stop. The same through
the FunctionGraph handler, whose context has 2 s left. And a failing IAM login does not serialise a
batch: 50 concurrent commands fail together, then one token request serves them all."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment
from stopline.entry import get_runtime, reset_runtime
from stopline.pipeline import Delivery

from ..functions.harness import SECRET, FunctionProcess, signed_post, start_all

JOB = "6666aaaa2222bbbb3333cccc4444dddd"
TIMEOUT_S, ATTEMPTS = 1, 3
LEASE_S = TIMEOUT_S * ATTEMPTS + 30 * (ATTEMPTS - 1) + 5  # section 12's bound for these settings


def seeded(builds: int = 1) -> Emulator:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                "builds": [{"build_no": n} for n in range(1, builds + 1)]}])
    return emulator


def test_a_dribbled_answer_cannot_hold_a_delivery_past_its_lease(tmp_path: Path) -> None:
    emulator = seeded()
    # every attempt of the first delivery dribbles: ~60 bytes at 0.5 s each is 30 s per answer
    emulator.inject(r"^/v3/jobs/stop$", "dribble", delay_ms=500, count=ATTEMPTS)
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET,
           "STOPLINE_TIMEOUT_S": str(TIMEOUT_S), "STOPLINE_MAX_ATTEMPTS": str(ATTEMPTS)}
    (proc,) = start_all([FunctionProcess("webhook", False, env, tmp_path / "flask.log")])
    try:
        command = {"action": "stop_build", "job_id": JOB, "build_no": 1}
        # Each dribbled answer would take ~30 s; three of them read to the end would outlast the lease.
        first = signed_post(proc.url, command, msg_id="dribble-1", timeout=LEASE_S)
        assert first.status_code == 503, first.text
        assert first.json()["error"]["type"] == "unavailable" and "abandoned" in first.json()["error"]["message"]
        assert first.json()["attempts"] == ATTEMPTS  # every attempt abandoned at its budget, none read out
        assert len(emulator.effects) == 1  # the first attempt's stop took effect; its answer never came
        again = signed_post(proc.url, command, msg_id="dribble-1")
        assert again.status_code == 200 and again.json()["outcome"] == "already_stopped"
        assert signed_post(proc.url, command, msg_id="dribble-1").json()["outcome"] == "duplicate"
        assert len(emulator.effects) == 1
    finally:
        proc.stop()
        server.stop()


class TwoSecondsLeft:
    """A FunctionGraph context whose invocation ends in 2 s."""

    def __init__(self) -> None:
        self.ends = time.monotonic() + 2.0

    def getRemainingTimeInMilliSeconds(self) -> int:
        return int((self.ends - time.monotonic()) * 1000)


def kafka_event(command: dict[str, Any]) -> dict[str, Any]:
    return {"event_version": "v1.0", "trigger_type": "KAFKA", "region": "cn-north-4",
            "instance_id": "kafka-1", "records": [{"messages": [json.dumps(command)], "topic_id": "stops"}]}


def test_functiongraph_ends_before_its_context_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from stopline.triggers.functiongraph import handle

    emulator = seeded()
    emulator.inject(r"^/v3/jobs/stop$", "dribble", delay_ms=500, count=1)
    server = emulator.serve()
    for name, value in {**demo_environment(server.url), "STOPLINE_TIMEOUT_S": str(TIMEOUT_S),
                        "STOPLINE_MAX_ATTEMPTS": str(ATTEMPTS)}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    event = kafka_event({"action": "stop_build", "job_id": JOB, "build_no": 1})
    try:
        context = TwoSecondsLeft()
        first = handle(event, context, runtime=get_runtime)  # ended by stopline, not by the platform
        assert first["results"][0]["outcome"] == "pending" and "abandoned" in first["results"][0]["error"]["message"]
        stops = [c for c in emulator.calls if c["path"] == "/v3/jobs/stop"]
        assert len(stops) == 1  # no retry was started that could not finish in time
        pipeline = get_runtime().pipeline
        retried = pipeline.retries.run_due(pipeline, everything=True)
        assert [str(r.outcome) for r in retried] == ["already_stopped"]  # the first stop had taken effect
        assert len(emulator.effects) == 1
    finally:
        server.stop()


def test_no_request_is_sent_with_less_than_one_timeout_left(monkeypatch: pytest.MonkeyPatch) -> None:
    from stopline.triggers.functiongraph import handle

    emulator = seeded()
    server = emulator.serve()
    for name, value in {**demo_environment(server.url), "STOPLINE_TIMEOUT_S": "5"}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    answer = handle(kafka_event({"action": "stop_build", "job_id": JOB, "build_no": 1}), TwoSecondsLeft(),
                    runtime=get_runtime)
    assert answer["results"][0]["outcome"] == "pending"  # kept for a retry, never lost
    assert "less than one request timeout" in answer["results"][0]["error"]["message"]
    assert emulator.calls == [] and emulator.effects == []
    server.stop()


def test_a_failing_iam_login_fails_a_batch_together_then_one_token_serves_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 5: 50 commands against an IAM that fails after 0.5 s share one or two logins and their
    failure (not 50 logins in turn); once IAM recovers, exactly one token request serves them all."""
    emulator = seeded(builds=100)
    emulator.inject(r"^/v3/auth/tokens$", "error", status=500, retry_after=None, delay_ms=500)
    server = emulator.serve()
    env = demo_environment(server.url)
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"):
        monkeypatch.delenv(name, raising=False)
        env.pop(name, None)
    for name, value in {**env, "STOPLINE_IAM_USERNAME": "demo-user", "STOPLINE_IAM_DOMAIN": "demo-domain",
                        "STOPLINE_IAM_PASSWORD": "demo-password", "STOPLINE_TIMEOUT_S": "2",
                        "STOPLINE_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    pipeline = get_runtime().pipeline
    go = threading.Barrier(50)

    def one(n: int) -> str:
        go.wait()
        result = pipeline.handle({"action": "stop_build", "job_id": JOB, "build_no": n},
                                 Delivery(f"iam-{n}", "test"))
        return result.error.type if result.error is not None else str(result.outcome)

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            failed = list(pool.map(one, range(1, 51)))
        assert set(failed) == {"unavailable"}
        logins = [c for c in emulator.calls if c["path"] == "/v3/auth/tokens"]
        assert len(logins) <= 2  # shared, not 50 logins in turn: the one in flight, at most one more
        emulator.clear_faults()
        time.sleep(3.1)  # the remembered failure (FAILURE_MEMORY_S) has lapsed
        with ThreadPoolExecutor(max_workers=50) as pool:
            go.reset()
            stopped = list(pool.map(one, range(51, 101)))
        assert set(stopped) == {"stopped"}
        logins_after = [c for c in emulator.calls if c["path"] == "/v3/auth/tokens"][len(logins):]
        assert len(logins_after) == 1
    finally:
        server.stop()


class LongContext:
    """A FunctionGraph context with a minute left."""

    def getRemainingTimeInMilliSeconds(self) -> int:
        return 60_000


def test_a_waiting_duplicate_keeps_its_own_short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A duplicate with a short invocation waits for its twin and never calls past its own deadline: the
    first delivery holds the key, fails transiently and parks the command as pending; the duplicate,
    whose invocation ends 2 s after it arrived, answers it as pending and calls nothing. (That waiting never
    buys a fresh lease is pinned in tests/test_idempotency.py.)"""
    from stopline.triggers.functiongraph import handle

    emulator = seeded()
    emulator.inject(r"^/v3/jobs/stop$", "error", status=503, delay_ms=1500, count=1)
    server = emulator.serve()
    for name, value in {**demo_environment(server.url), "STOPLINE_TIMEOUT_S": "1",
                        "STOPLINE_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    event = kafka_event({"action": "stop_build", "job_id": JOB, "build_no": 1})
    outcomes: list[str] = []

    def first() -> None:
        outcomes.append(handle(event, LongContext(), runtime=get_runtime)["results"][0]["outcome"])

    try:
        starter = threading.Thread(target=first)
        starter.start()
        time.sleep(0.2)  # the first delivery holds the key now
        duplicate = handle(event, TwoSecondsLeft(), runtime=get_runtime)
        starter.join()
        assert duplicate["results"][0]["outcome"] == "pending" and outcomes == ["pending"]
        stops = [c for c in emulator.calls if c["path"] == "/v3/jobs/stop"]
        assert len(stops) == 1 and stops[0]["fault"] == "error"  # only the first delivery's call
        assert emulator.effects == [] and len(outcomes) == 1
    finally:
        server.stop()
