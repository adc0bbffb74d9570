"""Superseding (contract section 17): events of two runs on one branch that arrive out of order never stop
the newer build -- GitHub's workflow_run and GitLab's Pipeline Hook, on the served cloud of the retries tests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from stopline.emulator import Emulator
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import http

from .conftest import ROOT, configured_secret
from .served_cloud import github_cancel, serve_cloud, stops

cloud = pytest.fixture(params=["memory", "redis"])(serve_cloud)
"""The served cloud, on each store (tests/served_cloud.py)."""
JOB_S = "5555bbbb2222bbbb3333cccc4444dddd"
"""The task of the superseding tests (two running builds on one branch)."""


def two_runs_on_a_branch(cloud: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> int:
    """The superseding recipe for ``source`` as the rules, and two running builds on feature/y: build 1 of
    commit a...a started 100 s ago, build 2 of b...b 20 s ago. Returns now (epoch seconds)."""
    rules = tmp_path / "supersede.yaml"
    rules.write_text(f"""rules:
  - name: supersede
    when: {{source: {source}, kind: started}}
    then:
      - {{action: stop_build, job_id: {JOB_S}, branch: "{{branch}}", except_commit_id: "{{sha}}",
         started_before: "{{created_at}}"}}
""")
    monkeypatch.setenv("STOPLINE_RULES", str(rules))
    reset_runtime()
    now = int(time.time())
    cloud.seed(build_tasks=[{"job_id": JOB_S, "project_id": "b384b9e9ab9b4ee8994c8633aabc9505", "builds": [
        {"build_no": 1, "branch": "feature/y", "commit_id": "a" * 40, "start_time": (now - 100) * 1000},
        {"build_no": 2, "branch": "feature/y", "commit_id": "b" * 40, "start_time": (now - 20) * 1000}]}])
    return now


def test_superseding_events_out_of_order_never_stop_the_newer_build(cloud: Emulator, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs A (older commit) and B (newer) on one branch, each with its running build. B's `requested`
    arrives, then A's late `in_progress`: with the recipe (started_before: "{created_at}"), A's event stops
    nothing of B's, and B's stops A's build."""
    now = two_runs_on_a_branch(cloud, tmp_path, monkeypatch, "github")
    template = json.loads((ROOT / "events" / "github-workflow_run-requested.json").read_text())

    def started(run_id: int, sha: str, created: int, action: str) -> bytes:
        event = json.loads(json.dumps(template))
        run = event["workflow_run"]
        run.update(id=run_id, head_sha=sha, head_branch="feature/y", created_at=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)))
        event["action"] = action
        return json.dumps(event).encode()

    by_b = github_cancel(started(2, "b" * 40, now - 22, "requested"), delivery="b")
    assert by_b["matched"] == ["supersede"] and by_b["results"][0]["builds"] == [
        {"build_no": 1, "outcome": "stopped", "upstream_request_id": by_b["results"][0]["builds"][0][
            "upstream_request_id"]}]
    assert by_b["results"][0]["reason"] == "superseded by bbbbbbb (run 2)"
    late_a = github_cancel(started(1, "a" * 40, now - 102, "in_progress"), delivery="a")
    assert late_a["results"][0]["outcome"] == "nothing_running"  # B's build started after A was created
    assert stops(cloud) == [("build_stopped", JOB_S, 1)]


def test_gitlab_superseding_out_of_order_never_stops_the_newer_build(cloud: Emulator, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with GitLab's documented Pipeline Hook (status running): pipeline B (newer) arrives, then
    A's late one; B's stops A's build, A's stops nothing."""
    token = "gl-supersede-token-0123456789"
    configured_secret(token)
    monkeypatch.setenv("STOPLINE_GITLAB_TOKENS", token)
    now = two_runs_on_a_branch(cloud, tmp_path, monkeypatch, "gitlab")
    template = json.loads((ROOT / "events" / "gitlab-pipeline-running.json").read_text())

    def running(pipeline_id: int, sha: str, created: int) -> dict[str, Any]:
        event = json.loads(json.dumps(template))
        event["object_attributes"].update(id=pipeline_id, sha=sha, ref="feature/y", created_at=time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(created)))
        body = json.dumps(event).encode()
        headers = {"content-type": "application/json", "x-gitlab-event": "Pipeline Hook", "x-gitlab-token": token}
        reply = http.handle("gitlab", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
        assert reply.status == 200, reply.body
        return reply.body

    by_b = running(2, "b" * 40, now - 22)
    assert [b["build_no"] for b in by_b["results"][0]["builds"]] == [1]
    late_a = running(1, "a" * 40, now - 102)
    assert late_a["results"][0]["outcome"] == "nothing_running"
    assert stops(cloud) == [("build_stopped", JOB_S, 1)]
