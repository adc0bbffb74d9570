"""The `github` and `gitlab` targets served by real functions-framework processes (Flask and --asgi) against
the served emulator with seeded running builds, using the payloads of events/ as they are (section 11)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_EVENT_COMMIT, DEMO_JOB_ID, demo_environment
from stopline.entry import get_runtime

from ..conftest import ROOT, configured_secret
from .harness import FunctionProcess, serving

GH_SECRET, GH_OLD = "gh-webhook-secret-current", "gh-webhook-secret-retired"
GL_TOKEN = "gl-hook-token-1234567890"
configured_secret(GH_SECRET, GH_OLD, GL_TOKEN)
RULES = f"""
rules:
  - name: cancel-ci
    when: {{source: any, kind: cancelled}}
    then:
      - {{action: stop_build, job_id: {DEMO_JOB_ID}, commit_id: "{{sha}}"}}
      - {{action: stop_dataarts_job, job_name: daily_etl, scope: instances}}
  - name: supersede
    when: {{source: any, kind: started, branch_not: [main, master, "release/*"]}}
    then:
      - {{action: stop_build, job_id: {DEMO_JOB_ID}, branch: "{{branch}}", except_commit_id: "{{sha}}"}}
"""
MODES = ["flask", "asgi"]


def payload(name: str) -> bytes:
    return (ROOT / "events" / name).read_bytes()


class Stack:
    def __init__(self, emulator: Emulator, server: EmulatorServer, procs: dict[str, FunctionProcess]) -> None:
        self.emulator, self.server, self.procs = emulator, server, procs

    def fresh(self) -> None:
        self.emulator.reset()
        self.emulator.seed("demo")

    def stops(self) -> list[int]:
        return sorted(e["build_no"] for e in self.emulator.effects if e["effect"] == "build_stopped")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    emulator = Emulator().seed("demo")
    server = emulator.serve()
    folder = tmp_path_factory.mktemp("sources")
    rules = folder / "rules.yaml"
    rules.write_text(RULES)
    base = {**demo_environment(server.url), "STOPLINE_RULES": str(rules), "STOPLINE_GITHUB_SECRETS":
            f"{GH_SECRET},{GH_OLD}", "STOPLINE_GITLAB_TOKENS": GL_TOKEN, "STOPLINE_MAX_ATTEMPTS": "2"}
    specs = {f"{t}-{m}": (t, m == "asgi", base) for t in ("github", "gitlab") for m in MODES}
    specs["github-norules"] = ("github", False, {k: v for k, v in base.items() if k != "STOPLINE_RULES"})
    procs = {n: FunctionProcess(t, asgi, env, folder / f"{n}.log") for n, (t, asgi, env) in specs.items()}
    with serving(server, procs):
        yield Stack(emulator, server, procs)


def github(stack: Stack, name: str, event: str, body: bytes, *, secret: str | None = GH_SECRET,
           delivery: str | None = None, extra: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4()), **(extra or {})}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(stack.procs[name].url, content=body, headers=headers, timeout=30)


def gitlab(stack: Stack, name: str, event: str, body: bytes, *, token: str | None = GL_TOKEN,
           key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event, "Idempotency-Key": key or str(uuid.uuid4()),
               "X-Gitlab-Event-UUID": "shared-by-the-chain"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return httpx.post(stack.procs[name].url, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("mode", MODES)
def test_cancelled_github_run_stops_the_builds_of_its_commit(stack: Stack, mode: str) -> None:
    stack.fresh()
    r = github(stack, f"github-{mode}", "workflow_run", payload("github-workflow_run-cancelled.json"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] and body["matched"] == ["cancel-ci"] and body["event"]["sha"] == DEMO_EVENT_COMMIT
    first, second = body["results"]
    assert first["outcome"] == "stopped" and [b["build_no"] for b in first["builds"]] == [24]
    assert second["outcome"] == "stopped" and second["instances"][0]["outcome"] == "stopped"
    assert stack.stops() == [24]


@pytest.mark.parametrize("mode", MODES)
def test_started_feature_run_supersedes_older_builds(stack: Stack, mode: str) -> None:
    """A run started on feature/x at a new commit: the branch's older running builds (20, 21) stop; the new
    commit's own build (23) and main's builds keep running."""
    stack.fresh()
    r = github(stack, f"github-{mode}", "workflow_run", payload("github-workflow_run-requested-feature.json"))
    body = r.json()
    assert body["matched"] == ["supersede"] and [b["build_no"] for b in body["results"][0]["builds"]] == [20, 21]
    assert stack.stops() == [20, 21]


def test_main_excluded_by_branch_not_calls_nothing(stack: Stack) -> None:
    stack.fresh()
    r = github(stack, "github-flask", "workflow_run", payload("github-workflow_run-requested.json"))
    assert (r.status_code, r.json()["matched"], r.json()["results"]) == (200, [], [])
    assert stack.emulator.calls == []


@pytest.mark.parametrize(("event", "file", "reason"), [
    ("ping", "github-ping.json", "ping"),
    ("workflow_run", "github-workflow_run-completed-success.json", "workflow_run completed (success)"),
    ("push", "github-ping.json", "not acted on"),
])
def test_ignored_events_answer_200_and_call_nothing(stack: Stack, event: str, file: str, reason: str) -> None:
    stack.fresh()
    r = github(stack, "github-asgi", event, payload(file))
    assert r.status_code == 200 and r.json()["ok"] is True and reason in r.json()["ignored"]
    assert r.json()["results"] == [] and stack.emulator.calls == []


def test_no_rules_file_matches_nothing(stack: Stack) -> None:
    stack.fresh()
    r = github(stack, "github-norules", "workflow_run", payload("github-workflow_run-cancelled.json"))
    assert (r.status_code, r.json()["matched"]) == (200, []) and stack.emulator.calls == []


@pytest.mark.parametrize("mode", MODES)
def test_redelivery_is_not_a_second_call(stack: Stack, mode: str) -> None:
    stack.fresh()
    delivery = str(uuid.uuid4())
    first = github(stack, f"github-{mode}", "workflow_job", payload("github-workflow_job-cancelled.json"),
                   delivery=delivery).json()
    calls = len(stack.emulator.calls)
    again = github(stack, f"github-{mode}", "workflow_job", payload("github-workflow_job-cancelled.json"),
                   delivery=delivery).json()
    assert [r["outcome"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["results"][0]["builds"] == first["results"][0]["builds"]
    assert len(stack.emulator.calls) == calls


@pytest.mark.parametrize(("secret", "extra", "body_suffix"), [
    (GH_OLD, {}, b""),          # rotation: the retired secret still verifies
    ("wrong-secret-value-x", {}, b""),
    (None, {"X-Hub-Signature": "sha1=0000000000000000000000000000000000000000"}, b""),
    (None, {}, b""),
    (GH_SECRET, {}, b" "),      # tampered after signing
])
def test_github_signature_checks(stack: Stack, secret: str | None, extra: dict[str, str], body_suffix: bytes) -> None:
    stack.fresh()
    body = payload("github-ping.json")
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()),
               **extra}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    r = httpx.post(stack.procs["github-flask"].url, content=body + body_suffix, headers=headers, timeout=30)
    if secret == GH_OLD:
        assert r.status_code == 200
        return
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    warnings = [rec for rec in stack.procs["github-flask"].log_records()
                if rec.get("status") == 401 and rec.get("level") == "WARNING"]
    assert warnings and warnings[-1]["event_id"] == headers["X-GitHub-Delivery"]


@pytest.mark.parametrize("mode", MODES)
def test_gitlab_pipeline_and_job_hooks(stack: Stack, mode: str) -> None:
    stack.fresh()
    r = gitlab(stack, f"gitlab-{mode}", "Pipeline Hook", payload("gitlab-pipeline-canceled.json"))
    assert r.status_code == 200 and r.json()["matched"] == ["cancel-ci"]
    assert [b["build_no"] for b in r.json()["results"][0]["builds"]] == [24]
    job = gitlab(stack, f"gitlab-{mode}", "Job Hook", payload("gitlab-job-canceled.json")).json()
    assert job["matched"] == ["cancel-ci"] and job["results"][0]["outcome"] == "nothing_running"
    running = gitlab(stack, f"gitlab-{mode}", "Pipeline Hook", payload("gitlab-pipeline-running.json")).json()
    assert [b["build_no"] for b in running["results"][0]["builds"]] == [20, 21]
    assert stack.stops() == [20, 21, 24]


def test_gitlab_token_refusals_and_idempotency_key(stack: Stack) -> None:
    stack.fresh()
    for token in ("not-the-token", None):
        r = gitlab(stack, "gitlab-flask", "Pipeline Hook", payload("gitlab-pipeline-canceled.json"), token=token)
        assert r.status_code == 401
    key = str(uuid.uuid4())
    gitlab(stack, "gitlab-flask", "Pipeline Hook", payload("gitlab-pipeline-canceled.json"), key=key)
    calls = len(stack.emulator.calls)
    again = gitlab(stack, "gitlab-flask", "Pipeline Hook", payload("gitlab-pipeline-canceled.json"), key=key).json()
    assert again["results"][0]["outcome"] == "duplicate" and len(stack.emulator.calls) == calls


def test_event_missing_what_a_rule_needs_is_a_warning_not_a_refusal(stack: Stack) -> None:
    """GitLab and GitHub count a 4xx against the hook: the rule that needs the field does not fire, the
    answer is 200 and says why."""
    stack.fresh()
    data: dict[str, Any] = json.loads(payload("github-workflow_run-cancelled.json"))
    del data["workflow_run"]["head_sha"]
    r = github(stack, "github-asgi", "workflow_run", json.dumps(data).encode())
    assert r.status_code == 200 and r.json()["matched"] == [] and r.json()["results"] == []
    assert "workflow_run.head_sha" in r.json()["warnings"][0]
    assert stack.emulator.calls == []


def test_functiongraph_apig_routes_github_events(stack: Stack, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """An APIG event whose headers carry X-GitHub-Event reaches the same logic."""
    from stopline.entry import reset_runtime
    from stopline.triggers.functiongraph import handle

    stack.fresh()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    for k, v in {**demo_environment(stack.server.url), "STOPLINE_RULES": str(rules),
                 "STOPLINE_GITHUB_SECRETS": GH_SECRET}.items():
        monkeypatch.setenv(k, v)
    reset_runtime()
    body = payload("github-workflow_run-cancelled.json")
    event = {"httpMethod": "POST", "path": "/stopline", "requestContext": {"requestId": "r1"}, "isBase64Encoded": False,
             "headers": {"content-type": "application/json", "x-github-event": "workflow_run",
                         "x-github-delivery": str(uuid.uuid4()),
                         "x-hub-signature-256": "sha256=" + hmac.new(GH_SECRET.encode(), body,
                                                                     hashlib.sha256).hexdigest()},
             "body": body.decode()}
    answer = handle(event, None, runtime=get_runtime)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["matched"] == ["cancel-ci"]
    assert stack.stops() == [24]


@pytest.mark.parametrize("mode", MODES)
def test_a_captured_delivery_replayed_with_a_fresh_id_is_a_duplicate(stack: Stack, mode: str) -> None:
    """Keys come from what the signature covers: the same signed GitHub body sent again with a new
    X-GitHub-Delivery, and the same GitLab body with a new Idempotency-Key, run nothing a second time."""
    stack.fresh()
    run = json.loads(payload("github-workflow_run-cancelled.json"))
    run["workflow_run"]["id"] = 7_000_000 + len(mode)  # a run this module's processes have not seen
    body = json.dumps(run).encode()
    first = github(stack, f"github-{mode}", "workflow_run", body, delivery="captured-1").json()
    assert [r["outcome"] for r in first["results"]] == ["stopped", "stopped"]
    calls = len(stack.emulator.calls)
    replay = github(stack, f"github-{mode}", "workflow_run", body, delivery="fresh-id-2").json()
    assert [r["outcome"] for r in replay["results"]] == ["duplicate", "duplicate"]
    assert replay["results"][0]["event_id"].startswith("workflow_run:")  # the key used: the body's identity
    assert len(stack.emulator.calls) == calls
    hook = json.loads(payload("gitlab-pipeline-canceled.json"))
    hook["object_attributes"]["id"] = 8_000_000 + len(mode)
    pipeline = json.dumps(hook).encode()
    fresh = gitlab(stack, f"gitlab-{mode}", "Pipeline Hook", pipeline, key="first-key").json()
    assert fresh["results"] and "duplicate" not in {r["outcome"] for r in fresh["results"]}
    calls = len(stack.emulator.calls)
    again = gitlab(stack, f"gitlab-{mode}", "Pipeline Hook", pipeline, key="another-key").json()
    assert {r["outcome"] for r in again["results"]} == {"duplicate"} and len(stack.emulator.calls) == calls


@pytest.mark.parametrize("mode", MODES)
def test_a_25_mb_gitlab_event_is_taken_with_bounded_memory(stack: Stack, mode: str) -> None:
    """GitLab sends a pipeline's every job, up to 25 MB: the target reads it (one copy of the body, parsed
    once), runs the rule, and the process grows by a small multiple of the body. Prints the figure."""
    from ..reliability.test_load import tree_rss_kb

    stack.fresh()
    hook = json.loads(payload("gitlab-pipeline-canceled.json"))
    hook["object_attributes"]["id"] = 9_000_000 + len(mode)
    job = hook["builds"][0]
    hook["builds"] = [{**job, "id": n, "name": f"job-{n:06d}"} for n in range(43_500)]
    body = json.dumps(hook).encode()
    assert 24 * 1024 * 1024 < len(body) <= 25 * 1024 * 1024
    proc = stack.procs[f"gitlab-{mode}"].proc
    assert proc is not None
    before = tree_rss_kb(proc.pid)
    answer = gitlab(stack, f"gitlab-{mode}", "Pipeline Hook", body)
    after = tree_rss_kb(proc.pid)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["matched"] == ["cancel-ci"] and 24 in stack.stops()
    grown_mb = (after - before) / 1024
    print(f"\n25 MB GitLab event ({mode}): body {len(body) / 2**20:.1f} MiB, process grew {grown_mb:.0f} MiB")
    assert grown_mb < 8 * len(body) / 2**20  # a small multiple of the body, not a copy per step
    too_big = gitlab(stack, f"gitlab-{mode}", "Pipeline Hook", body + b" " * (25 * 1024 * 1024 - len(body) + 1))
    assert too_big.status_code == 413
