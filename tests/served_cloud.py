"""The served cloud of the retries and superseding tests: the demo emulator over HTTP, the environment
pointing at it with a GitHub cancel rule, and the store under test (``memory://`` or a real redis-server);
plus a signed GitHub delivery to the ``github`` target, in process."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_JOB_ID, demo_environment
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers import http

from .conftest import ROOT, RedisServer, configured_secret
from .functions.harness import SECRET

GH_SECRET = "gh-retry-secret-0123456789"
configured_secret(GH_SECRET)
RULES = f"""
rules:
  - name: cancel-ci
    when: {{source: any, kind: cancelled}}
    then:
      - {{action: stop_build, job_id: {DEMO_JOB_ID}, commit_id: "{{sha}}"}}
"""
CANCELLED = (ROOT / "events" / "github-workflow_run-cancelled.json").read_bytes()
STOP_24 = ("build_stopped", DEMO_JOB_ID, 24)
WHY = "github cancelled: Codertocat/Hello-World Manually triggered workflow run 1589141559 (5779607)"
"""The reason the rule gives the cancel of events/github-workflow_run-cancelled.json (it sets none)."""


def stops(emulator: Emulator) -> list[tuple[str, str, int]]:
    return [(e["effect"], e["job_id"], e["build_no"]) for e in emulator.effects if e["effect"] == "build_stopped"]


def serve_cloud(request: pytest.FixtureRequest, served: tuple[Emulator, EmulatorServer], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The served demo emulator, the environment pointing at it (one attempt per try, so every failure is
    a transient one at once), a rules file, and the store under test."""
    emulator, server = served
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {**demo_environment(server.url), "STOPLINE_RULES": str(rules), "STOPLINE_GITHUB_SECRETS": GH_SECRET,
           "STOPLINE_MAX_ATTEMPTS": "1", "STOPLINE_WEBHOOK_SECRETS": SECRET}
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        env["STOPLINE_IDEMPOTENCY_URL"] = redis_server.url
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    yield emulator
    reset_runtime()


def github_cancel(body: bytes = CANCELLED, delivery: str = "d-1") -> dict[str, Any]:
    headers = {"content-type": "application/json", "x-github-event": "workflow_run", "x-github-delivery": delivery,
               "x-hub-signature-256": "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()}
    reply = http.handle("github", "POST", headers, lambda n: body[: n + 1], runtime=get_runtime)
    assert reply.status == 200, reply.body
    return reply.body
