"""Cloud Trace Service records as a source (issue 27): a FunctionGraph CTS event fires a rule once, its
duplicate fires nothing; record variants; rules validation for ``source: cts``; ``rules explain``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stopline import cts
from stopline.cli.devstack import DEMO_RULES
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_INSTANCE_ID, DEMO_JOB_ID
from stopline.entry import get_runtime, reset_runtime
from stopline.errors import ConfigurationError
from stopline.rules import load

from .conftest import ROOT

EVENT = ROOT / "events" / "functiongraph-cts-pipeline-stop.json"


def cts_event(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EVENT.read_text())
    data["cts"].update(changes)
    return data


@pytest.fixture
def with_rules(demo_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("STOPLINE_RULES", str(DEMO_RULES))
    reset_runtime()
    return demo_env


def test_a_stopped_pipeline_fires_its_rule_once(with_rules: Emulator) -> None:
    from stopline.triggers.functiongraph import handle

    answer = handle(cts_event(), None, runtime=get_runtime)
    assert answer["ok"] and answer["trigger"] == "cts" and answer["matched"] == ["pipeline-stopped"]
    assert answer["event"]["resource_id"] == "794514e0a3184e5db0a4740112deee0f"
    assert answer["event"]["time"] == "2026-12-07T10:02:11Z"  # GMT+08:00 read and given as UTC
    assert [r["outcome"] for r in answer["results"]] == ["stopped", "stopped"]
    effects = {(e["effect"], e.get("build_no") or e.get("instance_id")) for e in with_rules.effects}
    assert effects == {("instance_stopped", DEMO_INSTANCE_ID), ("build_stopped", 22), ("build_stopped", 24)}
    assert all(e.get("job_id") in (None, DEMO_JOB_ID) for e in with_rules.effects)
    calls = len(with_rules.calls)
    again = handle(cts_event(), None, runtime=get_runtime)  # the platform delivers the same record again
    assert [r["outcome"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert len(with_rules.calls) == calls


def test_a_record_of_another_operation_fires_nothing(with_rules: Emulator) -> None:
    from stopline.triggers.functiongraph import handle

    for changes in ({"trace_name": "run"}, {"resource_id": "0" * 32}, {"service_type": "CodeArtsBuild"}):
        answer = handle(cts_event(trace_id=f"other-{len(changes)}-{next(iter(changes.values()))}", **changes), None,
            runtime=get_runtime)
        assert answer["ok"] and answer["matched"] == [] and answer["results"] == [], changes
    assert with_rules.calls == []


def test_a_record_without_the_field_a_rule_needs_is_a_warning(with_rules: Emulator) -> None:
    """``resource_id`` as an empty object (seen in a documented sample): the rule that names a resource does
    not fire, and says why; nothing is refused."""
    from stopline.triggers.functiongraph import handle

    answer = handle(cts_event(resource_id={}, trace_id="no-resource-id"), None, runtime=get_runtime)
    assert answer["ok"] and answer["matched"] == [] and answer["results"] == []
    assert "pipeline-stopped" in answer["warnings"][0] and "resource_id" in answer["warnings"][0]


def test_record_variants_are_read() -> None:
    """Epoch-millisecond times and a missing trace id (then a stable hash of the record) are read."""
    captured = {"cts": {"time": 1765788999507, "trace_name": "createFunction", "resource_id": "test4",
                        "user": {"name": "user"}, "service_type": "FunctionGraph"}}
    event = cts.normalise(captured)
    assert event.time == "2025-12-15T08:56:39.507000Z" and event.user == "user"
    assert event.trace_id.startswith("sha256:") and cts.normalise(captured).trace_id == event.trace_id
    template = cts.normalise(json.loads((ROOT / "events" / "functiongraph-cts-console-template.json").read_text()))
    assert template.trace_name == "deleteGraph" and template.time == "2018-06-26T00:54:07Z"


@pytest.mark.parametrize(("when", "expected"), [
    ("{source: cts, kind: cancelled}", "kind: not for source cts"),
    ("{source: cts, branch: main}", "branch: not for source cts"),
    ("{source: github, kind: cancelled, trace_name: stop}", "trace_name: only for source cts"),
    ("{source: github}", "kind: required"),
])
def test_rules_for_cts_are_validated(tmp_path: Path, when: str, expected: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules: [{{name: r, when: {when}, then: [{{action: delete_build_task, "
                    f"job_id: {DEMO_JOB_ID}}}]}}]")
    with pytest.raises(ConfigurationError, match=expected):
        load(str(path))


def test_cts_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [{name: r, when: {source: cts, trace_name: stop}, then: [{action: stop_pipeline_run, "
                    "pipeline_id: '{resource_id}', started_before: '{time}'}]}]")
    fired = load(str(path)).evaluate(cts.normalise(cts_event()))
    assert fired.fired[0].command == {"action": "stop_pipeline_run", "pipeline_id": "794514e0a3184e5db0a4740112deee0f",
                                      "started_before": "2026-12-07T10:02:11Z",
                                      "reason": "cts: stop demo-pipeline by devuser"}  # the record, in one line
    path.write_text("rules: [{name: r, when: {source: cts}, then: [{action: delete_build_task, job_id: '{sha}'}]}]")
    with pytest.raises(ConfigurationError, match=r"unknown placeholder \{sha\}"):
        load(str(path))


def test_rules_explain_source_cts() -> None:
    done = subprocess.run([sys.executable, "-m", "stopline.cli", "rules", "explain", "--source", "cts", "--event",
                           str(EVENT), "--rules", str(DEMO_RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["event_type"] == "cts" and shown["matched"] == ["pipeline-stopped"]
    assert shown["event"]["trace_name"] == "stop"
    assert [c["command"]["action"] for c in shown["commands"]] == ["stop_dataarts_job", "stop_build"]
