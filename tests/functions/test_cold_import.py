"""Keeping the function path light: loading functions/main.py pulls in neither the CLI, the emulator,
Redis, pydantic nor httpx -- unless STOPLINE_PREWARM=1 asks for the set-up at import; the FunctionGraph
entry does not load functions_framework; the garbage collector stays out of a cold start and is back
after the first invocation, whatever it answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from stopline.entry import COLD_START_GC_THRESHOLD

from ..conftest import ROOT

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def _import(path: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    return subprocess.run([sys.executable, "-c", PROBE, str(ROOT / path)], capture_output=True, text=True,
                          check=True, timeout=60, env={**clean, **(env or {})})


def _modules(path: str, env: dict[str, str] | None = None) -> set[str]:
    return set(json.loads(_import(path, env).stdout))


def test_functions_main_imports_only_what_targets_need() -> None:
    loaded = _modules("functions/main.py")
    for heavy in ("stopline.cli", "stopline.emulator", "redis", "httpx", "stopline.idempotency.redis",
                  "huaweicloudsdkcore", "pydantic", "stopline.models", "stopline.pipeline"):
        assert heavy not in loaded, heavy
    assert "functions_framework" in loaded


def test_functiongraph_entry_does_not_load_functions_framework() -> None:
    loaded = _modules("functions/functiongraph.py")
    assert "functions_framework" not in loaded and "flask" not in loaded and "stopline.emulator" not in loaded


def test_prewarm_does_the_set_up_at_import() -> None:
    env = {"STOPLINE_PREWARM": "1", "STOPLINE_WEBHOOK_SECRETS": "prewarm-test-secret",
           "HUAWEICLOUD_SDK_AK": "PREWARMAK", "HUAWEICLOUD_SDK_SK": "prewarm-test-sk",
           "HUAWEICLOUD_SDK_PROJECT_ID": "0123456789abcdef0123456789abcdef"}
    done = _import("functions/main.py", env)
    assert {"httpx", "httpcore", "pydantic", "stopline.models"} <= set(json.loads(done.stdout))
    ready = [json.loads(line) for line in done.stderr.splitlines() if "warm-up done" in line]
    assert len(ready) == 1 and ready[0]["level"] == "INFO"
    assert "prewarm-test-sk" not in done.stderr and "prewarm-test-secret" not in done.stderr


def test_prewarm_with_bad_configuration_logs_it_and_still_loads() -> None:
    done = _import("functions/main.py", {"STOPLINE_PREWARM": "1", "STOPLINE_MAX_ATTEMPTS": "many"})
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert errors and errors[0]["level"] == "ERROR" and "STOPLINE_MAX_ATTEMPTS" in errors[0]["message"]


def test_misspelt_prewarm_value_is_reported_not_ignored() -> None:
    done = _import("functions/main.py", {"STOPLINE_PREWARM": "ture", "STOPLINE_WEBHOOK_SECRETS": "s3cr3t-value"})
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert errors and "STOPLINE_PREWARM" in errors[0]["message"]


def test_prewarm_with_a_malformed_store_url_logs_a_configuration_error_without_the_password() -> None:
    """Defect 10: a bad STOPLINE_IDEMPOTENCY_URL was an uncaught ValueError printing part of the password."""
    for url in ("redis://:pa/ss@127.0.0.1:6379/0", "redis://:s3cret-pw@127.0.0.1:99999/0", "redis://[::1/0"):
        done = _import("functions/main.py", {"STOPLINE_PREWARM": "1", "STOPLINE_IDEMPOTENCY_URL": url,
                                             "STOPLINE_WEBHOOK_SECRETS": "prewarm-test-secret-value"})
        assert done.returncode == 0, done.stderr
        errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
        assert errors and errors[0]["level"] == "ERROR" and "STOPLINE_IDEMPOTENCY_URL" in errors[0]["message"]
        assert "Traceback" not in done.stderr
        assert "pa/ss" not in done.stderr and "s3cret-pw" not in done.stderr and "ss@" not in done.stderr


GC_PROBE = """
import gc, json, sys
from pathlib import Path

root, entry, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
collections = []
gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "stop" else None)
default = gc.get_threshold()
if entry == "functiongraph":
    import importlib.util
    spec = importlib.util.spec_from_file_location("functiongraph", root / "functions" / "functiongraph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    held = gc.get_threshold()
    collections.clear()
    if target == "kafka-1000":  # a first event of 1,000 commands: the freeze after it must pin no garbage of it
        messages = [json.dumps({"action": "stop_build", "job_id": "f9d6c8466d614a9788e9a0acf6c15f46", "build_no": n})
                    for n in range(1, 1001)]
        event = {"event_version": "v1.0", "trigger_type": "KAFKA", "region": "cn-north-4",
                 "records": [{"topic_id": "topic-stopline", "messages": messages}]}
    else:
        event = json.loads((root / "events" / "functiongraph-timer.json").read_text())
    answer = module.handler(event, object())
    outcomes = [r.get("outcome") for r in answer.get("results", [])]
    ran = len(outcomes) == (1000 if target == "kafka-1000" else 1) and set(outcomes) == {"dry_run"}
    status = 200 if answer.get("ok") and ran else 500
else:
    from functions_framework import create_app
    app = create_app(target, str(root / "functions" / "main.py")).test_client()
    held = gc.get_threshold()
    collections.clear()
    body = json.dumps({"action": "stop_build", "job_id": "f9d6c8466d614a9788e9a0acf6c15f46", "build_no": 7})
    if target == "on_event":
        headers = {"ce-specversion": "1.0", "ce-id": "gc-1", "ce-source": "tests", "ce-type": "stopline.stop_build",
                   "Content-Type": "application/json"}
    else:
        from stopline import webhooks
        headers = {**webhooks.sign("gc-probe-webhook-secret", "gc-1", body.encode()),
                   "Content-Type": "application/json"}
    status = app.post("/", data=body, headers=headers).status_code
seen = {"default": default, "held": held, "after": gc.get_threshold(), "status": status,
        "collections_during_first": list(collections), "frozen": gc.get_freeze_count()}
gc.unfreeze()
seen["pinned_garbage"] = gc.collect()  # what the freeze kept that nothing refers to any more
print(json.dumps(seen))
"""


def _first_invocation(entry: str, target: str, env: dict[str, str]) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    done = subprocess.run([sys.executable, "-c", GC_PROBE, str(ROOT), entry, target], capture_output=True,
                          text=True, timeout=60, env={**clean, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


DRY = {"STOPLINE_DRY_RUN": "1", "STOPLINE_WEBHOOK_SECRETS": "gc-probe-webhook-secret",
       "HUAWEICLOUD_SDK_AK": "GCPROBEAK", "HUAWEICLOUD_SDK_SK": "gc-probe-sk",
       "HUAWEICLOUD_SDK_PROJECT_ID": "0123456789abcdef0123456789abcdef"}


@pytest.mark.parametrize(("entry", "target", "env", "status"), [
    ("main", "webhook", DRY, 200),  # the whole set-up: settings, pydantic, the command's validator
    ("main", "on_event", DRY, 200),
    ("main", "webhook", {**DRY, "STOPLINE_MAX_ATTEMPTS": "many"}, 500),  # a first invocation that fails
    ("functiongraph", "handler", DRY, 200),
    ("functiongraph", "kafka-1000", DRY, 200),
], ids=["webhook", "on_event", "bad-configuration", "functiongraph", "functiongraph-1000-records"])
def test_no_collection_runs_during_a_cold_start_and_the_collector_is_back_after_it(
        entry: str, target: str, env: dict[str, str], status: int) -> None:
    """Importing an entry point holds CPython's collector off (its threshold raised, so memory stays bounded
    even if nothing ever releases it); the first invocation -- set-up included -- runs without one
    collection, and once it is answered the thresholds are the defaults again and what the set-up built
    is frozen out of later collections' way. The freeze pins next to no garbage, even after a first event
    of 1,000 commands."""
    seen = _first_invocation(entry, target, env)
    assert seen["status"] == status
    assert seen["held"][0] == COLD_START_GC_THRESHOLD and seen["held"][1:] == seen["default"][1:]
    assert seen["collections_during_first"] == []
    assert seen["after"] == seen["default"] and seen["frozen"] > 10_000
    assert seen["pinned_garbage"] < 1_000

