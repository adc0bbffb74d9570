"""Durable retries (issue 24): a cancel from a sender that never redelivers is never lost.

The cloud fails while a GitHub or GitLab cancel (or a FunctionGraph queue event) is handled: the answer is
200 with the command ``pending``, a duplicate delivery answers it as pending without a call, and each taker
-- the worker thread of a serving process, a FunctionGraph timer event, the ``retries`` target, the CLI --
stops the build exactly once. On ``memory://`` and on a real redis-server; two processes sharing one Redis
never double a stop; past STOPLINE_RETRY_FOR_S a retry is abandoned, loudly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_EVENT_COMMIT, DEMO_JOB_ID, demo_environment
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import http
from stopline.triggers.functiongraph import handle as fg_handle
from stopline.triggers.queue import RedeliveryRequested

from .conftest import ROOT, LogCapture, RedisServer, configured_secret
from .functions.harness import SECRET, FunctionProcess, start_all, wait_until
from .in_process import EndingContext, post_reply
from .served_cloud import CANCELLED, GH_SECRET, RULES, STOP_24, WHY, github_cancel, serve_cloud, stops

cloud = pytest.fixture(params=["memory", "redis"])(serve_cloud)
"""The served cloud, on each store (tests/served_cloud.py)."""


def test_a_failing_cloud_makes_the_cancel_pending_not_lost(cloud: Emulator) -> None:
    cloud.inject(r"build-info-records", "error", status=503, count=1)
    answer = github_cancel()
    assert answer["ok"] is False and answer["pending"] == 1
    pending = answer["results"][0]
    assert pending["outcome"] == "pending" and pending["retry_at"].endswith("Z") and pending["attempts"] == 1
    assert pending["error"]["type"] == "unavailable" and stops(cloud) == [] and pending["reason"] == WHY
    calls = len(cloud.calls)
    again = github_cancel(delivery="d-2")  # GitHub's redeliver button, or a replay: pending, no new call
    assert again["results"][0]["outcome"] == "pending" and len(cloud.calls) == calls
    listed = get_runtime().pipeline.retries.pending()
    assert len(listed) == 1 and listed[0]["command"]["job_id"] == DEMO_JOB_ID


def test_the_timer_taker_stops_it_exactly_once(cloud: Emulator) -> None:
    cloud.inject(r"build-info-records", "error", status=503, count=1)
    github_cancel()
    timer = {"version": "v1.0", "time": "2026-12-07T10:00:00+08:00", "trigger_type": "TIMER",
             "trigger_name": "stopline-retries", "user_event": ""}
    early = fg_handle(timer, None, runtime=get_runtime)
    assert early["retried"] == [] and early["results"] == [] and stops(cloud) == []  # not due yet (2 s)
    time.sleep(2.1)
    noted = {**timer, "user_event": "sweep stopline's retries"}  # a note typed into the console, not a command
    answer = fg_handle(noted, None, runtime=get_runtime)
    assert [(r["outcome"], r["reason"]) for r in answer["retried"]] == [("stopped", WHY)] and stops(cloud) == [STOP_24]
    assert [r["error"]["type"] for r in answer["results"]] == ["invalid_json"]  # the note itself is refused
    assert get_runtime().pipeline.retries.pending() == []
    after = github_cancel(delivery="d-3")  # the key now holds the finished result
    assert after["results"][0]["outcome"] == "duplicate" and after["results"][0]["first_outcome"] == "stopped"
    assert fg_handle(timer, None, runtime=get_runtime)["retried"] == [] and stops(cloud) == [STOP_24]


def test_a_timer_during_a_store_outage_leaves_the_retries_for_the_next_tick(
        log_lines: LogCapture, monkeypatch: pytest.MonkeyPatch, served: tuple[Emulator, EmulatorServer]) -> None:
    """Redis unreachable when the 1-minute timer fires: answered (the invocation does not fail on an event
    that carried nothing), one WARNING naming the store, no 'internal error' and no traceback."""
    from .conftest import free_port

    for name, value in {**demo_environment(served[1].url),
                        "STOPLINE_IDEMPOTENCY_URL": f"redis://127.0.0.1:{free_port()}/0"}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    timer = {"version": "v1.0", "time": "2026-12-07T10:00:00+08:00", "trigger_type": "TIMER",
             "trigger_name": "stopline-retries", "user_event": ""}
    try:
        answer = fg_handle(timer, None, runtime=get_runtime)
    finally:
        reset_runtime()
    assert answer == {"ok": True, "trigger": "timer", "results": [], "retried": []}
    records = log_lines.records
    assert [str(r["message"]) for r in records if r["level"] == "WARNING"][-1].startswith(
        "could not take the due pending retries (idempotency store unreachable")
    assert not [r for r in records if r["level"] == "ERROR" or "exc_info" in r]


def test_every_other_taker_answers_a_store_outage_without_a_traceback(
        log_lines: LogCapture, monkeypatch: pytest.MonkeyPatch, served: tuple[Emulator, EmulatorServer]) -> None:
    """Redis unreachable: the `retries` target answers 503 with Retry-After (its scheduler comes back),
    logged once at WARNING; `stopline retries list` and `retries run` exit 1 with one line naming the store.
    None of them writes a traceback; the retries stay in the store for the next taker."""
    from stopline import webhooks

    from .conftest import free_port

    env = {**demo_environment(served[1].url), "STOPLINE_IDEMPOTENCY_URL": f"redis://127.0.0.1:{free_port()}/0",
           "STOPLINE_WEBHOOK_SECRETS": SECRET}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    body = b"{}"
    headers = {"content-type": "application/json", **webhooks.sign(SECRET, "sweep-down", body)}
    try:
        reply = http.handle("retries", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
    finally:
        reset_runtime()
    assert reply.status == 503 and reply.body["error"]["type"] == "unavailable" and "Retry-After" in reply.headers
    assert "idempotency store unreachable" in reply.body["error"]["message"]
    assert [r["level"] for r in log_lines.records if r.get("target") == "retries"] == ["WARNING"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    for args in (["retries", "list"], ["retries", "run"]):
        done = subprocess.run([sys.executable, "-m", "stopline.cli", *args], env={**clean, **env},
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "store unreachable" in done.stderr


def test_the_retries_target_runs_everything_pending(cloud: Emulator) -> None:
    from stopline import webhooks

    cloud.inject(r"build-info-records", "error", status=503, count=1)
    github_cancel()
    body = json.dumps({"all": True}).encode()
    headers = {"content-type": "application/json", **webhooks.sign(SECRET, "sweep-1", body)}
    reply = http.handle("retries", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
    assert reply.status == 200 and reply.body["ran"] == 1 and reply.body["pending"] == 0
    assert reply.body["results"][0]["outcome"] == "stopped" and stops(cloud) == [STOP_24]
    unsigned = http.handle("retries", "POST", {"content-type": "application/json"}, lambda n: b"{}",
                           runtime=get_runtime)
    assert unsigned.status == 401  # signed like the webhook target


def test_a_retry_that_keeps_failing_is_rescheduled_then_abandoned(cloud: Emulator, log_lines: LogCapture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_RETRY_FOR_S", "1")
    reset_runtime()
    cloud.inject(r"build-info-records", "error", status=503)  # for good
    github_cancel()
    retries = get_runtime().pipeline.retries
    again = retries.run_due(get_runtime().pipeline, everything=True)
    assert [r.outcome for r in again] == ["pending"] and len(retries.pending()) == 1  # first retry: too early
    time.sleep(1.1)
    gave_up = retries.run_due(get_runtime().pipeline, everything=True)
    assert [r.to_json()["error"]["type"] for r in gave_up] == ["unavailable"]
    assert "abandoned after 2 retries" in gave_up[0].to_json()["error"]["message"]
    assert retries.pending() == [] and stops(cloud) == []
    records = log_lines.records
    assert any(r["level"] == "ERROR" and "abandoned" in str(r["message"]) for r in records)
    audit = [r["audit"] for r in records if "audit" in r]
    assert len(audit) == 1 and audit[0]["type"] == "com.stopline.retry.abandoned"  # type: ignore[index]
    assert audit[0]["data"]["reason"] == WHY  # type: ignore[index]


def test_a_kafka_batch_of_1000_never_drops_what_it_could_not_finish(cloud: Emulator) -> None:
    """1,000 records with 150 transient failures among them, and a poison record: every good record ends
    stopped or pending (none dropped, the invocation is not failed), the poison one refused; the timer
    then finishes the pending ones, each stop exactly once."""
    job = "b" * 32
    cloud.seed(build_tasks=[{"job_id": job, "project_id": "b384b9e9ab9b4ee8994c8633aabc9505",
                             "builds": [{"build_no": n} for n in range(1, 1001)]}])
    cloud.inject(r"^/v3/jobs/stop$", "error", status=503, count=150)
    messages = [json.dumps({"action": "stop_build", "job_id": job, "build_no": n}) for n in range(1, 1000)]
    messages.insert(500, "{not json")
    event = {"event_version": "v1.0", "trigger_type": "KAFKA", "region": "cn-north-4", "instance_id": "k1",
             "records": [{"messages": messages, "topic_id": "stops"}]}
    answer = fg_handle(event, None, runtime=get_runtime)
    outcomes = [r.get("outcome") for r in answer["results"]]
    assert len(outcomes) == 1000 and outcomes.count("stopped") == 849 and outcomes.count("pending") == 150
    assert answer["results"][500]["status"] == 400 and answer["pending"] == 150
    pipeline = get_runtime().pipeline
    finished = pipeline.retries.run_due(pipeline, everything=True, limit=1000)
    assert len(finished) == 150 and {str(r.outcome) for r in finished} == {"stopped"}
    effects = [e["build_no"] for e in cloud.effects if e["effect"] == "build_stopped"]
    assert sorted(effects) == list(range(1, 1000)) and len(set(effects)) == len(effects)


def test_a_rabbitmq_batch_of_150_cut_by_its_deadline_leaves_the_rest_pending(
        cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """150 records (once refused whole for being over 100), a slow cloud and an invocation with 2.5 s left:
    what ran is stopped, what the deadline cut is pending (none dropped, none failed); the taker finishes
    them -- each build stopped exactly once, even one whose stop landed but answered too late."""
    for name, value in {"STOPLINE_TIMEOUT_S": "0.5", "STOPLINE_BATCH_CONCURRENCY": "4"}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    job = "d" * 32
    cloud.seed(build_tasks=[{"job_id": job, "project_id": "b384b9e9ab9b4ee8994c8633aabc9505",
                             "builds": [{"build_no": n} for n in range(1, 151)]}])
    cloud.inject(r"^/v3/jobs/stop$", "latency", delay_ms=1200, count=1)  # lands; answers after the timeout
    cloud.inject(r"^/v3/jobs/stop$", "latency", delay_ms=200)
    event = {"event_version": "v1.0", "trigger_type": "RABBITMQ", "region": "cn-north-4",
             "records": [{"messages": [json.dumps({"action": "stop_build", "job_id": job, "build_no": n})
                                       for n in range(1, 151)],
                          "instance_id": "r1", "exchange": "stops"}]}
    answer = fg_handle(event, EndingContext(2500), runtime=get_runtime)
    outcomes = [r.get("outcome") for r in answer["results"]]
    assert len(outcomes) == 150 and set(outcomes) == {"stopped", "pending"}, set(outcomes)
    assert 0 < outcomes.count("stopped") < 150 and answer["pending"] == outcomes.count("pending")
    cloud.clear_faults()
    landed = {e["build_no"] for e in cloud.effects if e["effect"] == "build_stopped"}
    pipeline = get_runtime().pipeline
    finished = pipeline.retries.run_due(pipeline, everything=True, limit=1000)
    assert len(finished) == answer["pending"]
    outcomes = [str(r.outcome) for r in finished]  # a stop that landed but answered too late: not running now
    assert outcomes == ["already_stopped" if r.target["build_no"] in landed else "stopped" for r in finished]
    assert outcomes.count("already_stopped") >= 1
    effects = [e["build_no"] for e in cloud.effects if e["effect"] == "build_stopped"]
    assert sorted(effects) == list(range(1, 151))  # each exactly once
    assert pipeline.retries.run_due(pipeline, everything=True, limit=1000) == []  # nothing left


def test_an_unreachable_store_fails_the_invocation(cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is acknowledged that is not safely kept: with the store down, a transient failure cannot
    become pending, so the FunctionGraph invocation raises (for whatever async retry is configured)."""
    monkeypatch.setenv("STOPLINE_IDEMPOTENCY_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_runtime()
    event = {"event_version": "v1.0", "trigger_type": "KAFKA", "region": "cn-north-4", "instance_id": "k1",
             "records": [{"messages": [json.dumps({"action": "stop_build", "job_id": DEMO_JOB_ID,
                                                   "build_no": 20})], "topic_id": "stops"}]}
    with pytest.raises(RedeliveryRequested):
        fg_handle(event, None, runtime=get_runtime)
    assert stops(cloud) == []


def test_two_processes_sharing_redis_never_double_a_stop(redis_server: RedisServer,
                                                        served: tuple[Emulator, EmulatorServer],
                                                        tmp_path: Path) -> None:
    """Twenty pending cancels in one Redis; two `stopline retries run --all` processes at once: each build
    is stopped exactly once, whichever process took it."""
    emulator, server = served
    job = "c" * 32
    emulator.seed(build_tasks=[{"job_id": job, "project_id": "b384b9e9ab9b4ee8994c8633aabc9505",
                                "builds": [{"build_no": n} for n in range(1, 21)]}])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))},
           **demo_environment(server.url), "STOPLINE_IDEMPOTENCY_URL": redis_server.url,
           "STOPLINE_MAX_ATTEMPTS": "1"}
    emulator.inject(r"^/v3/jobs/stop$", "error", status=503, count=20)
    event = {"event_version": "v1.0", "trigger_type": "KAFKA", "region": "cn-north-4", "instance_id": "k1",
             "records": [{"messages": [json.dumps({"action": "stop_build", "job_id": job, "build_no": n})
                                       for n in range(1, 21)], "topic_id": "stops"}]}
    path = tmp_path / "kafka.json"
    path.write_text(json.dumps(event))
    queued = subprocess.run([sys.executable, "-m", "stopline.cli", "invoke", "functiongraph", "--event", str(path)],
                            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert json.loads(queued.stdout)["pending"] == 20, queued.stdout + queued.stderr
    # listing reads the store only: an operator's shell without cloud credentials sees all twenty
    bare = {k: v for k, v in env.items() if not k.startswith("HUAWEICLOUD_")}
    shown = subprocess.run([sys.executable, "-m", "stopline.cli", "retries", "list", "--json"], env=bare,
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert sorted(p["command"]["build_no"] for p in json.loads(shown.stdout)["pending"]) == list(range(1, 21))
    takers = [subprocess.Popen([sys.executable, "-m", "stopline.cli", "retries", "run", "--all", "--json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
              for _ in range(2)]
    outputs = [json.loads(t.communicate(timeout=120)[0]) for t in takers]
    assert sum(len(o["ran"]) for o in outputs) == 20  # between them; neither took what the other held
    effects = [e["build_no"] for e in emulator.effects if e["effect"] == "build_stopped"]
    assert sorted(effects) == list(range(1, 21))  # each once
    listed = subprocess.run([sys.executable, "-m", "stopline.cli", "retries", "list"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert listed.returncode == 0 and listed.stdout.strip() == "nothing pending"


def test_listing_a_memory_store_says_it_cannot_see_the_functions_retries() -> None:
    """`stopline retries list` in a shell whose store is memory:// would read its own empty store: it says
    so on stderr rather than let "nothing pending" pass for the functions' state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    listed = subprocess.run([sys.executable, "-m", "stopline.cli", "retries", "list", "--json"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"pending": []}
    assert "STOPLINE_IDEMPOTENCY_URL is memory://" in listed.stderr and "Redis" in listed.stderr


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_the_worker_thread_of_a_serving_process_stops_it(served: tuple[Emulator, EmulatorServer],
                                                         tmp_path: Path, store: str,
                                                         request: pytest.FixtureRequest) -> None:
    """A real functions-framework github target, no taker but its own worker thread: the cancel answered
    as pending (the cloud failed three times) is stopped a few seconds later without anyone sending
    anything again -- with the retry kept in the process (memory://) or in a real redis-server."""
    emulator, server = served
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {**demo_environment(server.url), "STOPLINE_RULES": str(rules), "STOPLINE_GITHUB_SECRETS": GH_SECRET,
           "STOPLINE_MAX_ATTEMPTS": "1"}
    if store == "redis":
        env["STOPLINE_IDEMPOTENCY_URL"] = request.getfixturevalue("redis_server").url
    emulator.inject(r"build-info-records", "error", status=503, count=3)
    (proc,) = start_all([FunctionProcess("github", True, env, tmp_path / "github.log")])
    try:
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "w-1",
                   "X-Hub-Signature-256": "sha256=" + hmac.new(GH_SECRET.encode(), CANCELLED,
                                                               hashlib.sha256).hexdigest()}
        answer = httpx.post(proc.url, content=CANCELLED, headers=headers, timeout=30).json()
        assert answer["pending"] == 1 and stops(emulator) == []
        assert wait_until(lambda: stops(emulator) == [STOP_24], timeout=60)
        time.sleep(1.5)  # and nothing more happens
        assert stops(emulator) == [STOP_24]
        assert [r["sha"] for r in [answer["event"]]] == [DEMO_EVENT_COMMIT]
    finally:
        proc.stop()


def test_a_signed_webhook_sender_still_gets_503(cloud: Emulator) -> None:
    """Standard Webhooks senders redeliver on 5xx: the webhook target keeps answering 503, nothing parked."""
    cloud.inject(r"^/v3/jobs/stop$", "error", status=503, count=1)
    reply = post_reply({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "hook-1")
    assert reply.status == 503 and get_runtime().pipeline.retries.pending() == []


def test_a_gitlab_cancel_is_pending_then_stopped_once(cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for GitLab (secret token): the cloud fails three times, the hook is answered 200 with the
    command pending, a resend of the hook with a fresh Idempotency-Key is pending too, and the taker stops
    the build once."""
    token = "gl-retry-token-0123456789"
    configured_secret(token)
    monkeypatch.setenv("STOPLINE_GITLAB_TOKENS", token)
    reset_runtime()
    cloud.inject(r"build-info-records", "error", status=503, count=3)
    body = (ROOT / "events" / "gitlab-pipeline-canceled.json").read_bytes()

    def send(key: str) -> dict[str, Any]:
        headers = {"content-type": "application/json", "x-gitlab-event": "Pipeline Hook", "x-gitlab-token": token,
                   "idempotency-key": key}
        reply = http.handle("gitlab", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
        assert reply.status == 200
        return reply.body

    assert send("k-1")["results"][0]["outcome"] == "pending"
    assert send("k-2")["results"][0]["outcome"] == "pending"  # GitLab's manual resend: no call
    pipeline = get_runtime().pipeline
    assert [str(r.outcome) for r in pipeline.retries.run_due(pipeline, everything=True)] == ["pending"]  # 2nd failure
    assert [str(r.outcome) for r in pipeline.retries.run_due(pipeline, everything=True)] == ["pending"]  # 3rd
    assert [str(r.outcome) for r in pipeline.retries.run_due(pipeline, everything=True)] == ["stopped"]
    assert stops(cloud) == [STOP_24] and pipeline.retries.pending() == []


def test_a_scheduler_that_cannot_sign_reaches_a_platform_authenticated_retries_target(
        served: tuple[Emulator, EmulatorServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cloud Scheduler sends a fixed body with an OIDC token that Cloud Run checks; it cannot sign each
    request. With STOPLINE_RETRIES_AUTH=platform a real `retries` process (Flask and --asgi) runs its sweep
    for that unsigned POST; without it the same POST is refused 401; and the setting opens no other target."""
    _, server = served
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET}
    procs = start_all([FunctionProcess("retries", asgi, {**env, "STOPLINE_RETRIES_AUTH": "platform"},
                                       tmp_path / f"platform-{asgi}.log") for asgi in (False, True)]
                      + [FunctionProcess("retries", False, env, tmp_path / "signature.log")])
    try:
        *platform, signature = procs
        for proc in platform:
            swept = httpx.post(proc.url, json={}, headers={"Authorization": "Bearer a-token-cloud-run-checked"},
                               timeout=30)
            assert swept.status_code == 200 and swept.json()["ok"] is True, swept.text
            assert {"ran", "pending"} <= set(swept.json())
            refused = httpx.post(proc.url, json={"all": "yes"}, timeout=30)
            assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "all"
        unsigned = httpx.post(signature.url, json={}, timeout=30)
        assert unsigned.status_code == 401 and unsigned.json()["error"]["type"] == "unauthorized"
    finally:
        for proc in procs:
            proc.stop()
    for name, value in {**env, "STOPLINE_RETRIES_AUTH": "platform"}.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    try:
        body = json.dumps({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}).encode()
        other = http.handle("webhook", "POST", {"content-type": "application/json"}, lambda n: body[: n + 1],
                            runtime=get_runtime)
        assert other.status == 401  # the webhook target still wants its signature
    finally:
        reset_runtime()
