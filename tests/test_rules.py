"""Rules files (docs/rules.md): every validation error names the file, rule and field;
globs, branch_not, placeholders, several rules on one event; `stopline rules check` / `explain`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stopline.errors import ConfigurationError
from stopline.rules import Rules, load
from stopline.sources import SourceEvent, normalise

from .conftest import ROOT

JOB = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
EXAMPLE = f"""
rules:
  - name: cancel-shop-ci
    when: {{source: github, kind: cancelled, repository: acme/shop, workflow: "CI*"}}
    then:
      - {{action: stop_build, job_id: {JOB}, commit_id: "{{sha}}"}}
      - {{action: stop_dataarts_job, job_name: shop_etl, scope: instances}}
  - name: supersede-feature-builds
    when: {{source: any, kind: started, branch_not: [main, "release/*"]}}
    then:
      - {{action: stop_build, job_id: {JOB}, branch: "{{branch}}", except_commit_id: "{{sha}}"}}
  - name: any-cancel
    when: {{source: any, kind: cancelled}}
    then:
      - {{action: stop_build, job_id: {JOB}, commit_id: "{{sha}}", idempotency_key: "run-{{run_id}}"}}
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def event(**fields: Any) -> SourceEvent:
    origin = {"sha": "workflow_run.head_sha", "branch": "workflow_run.head_branch",
              "repository": "repository.full_name"}
    base: dict[str, Any] = {"source": "github", "kind": "cancelled", "repository": "acme/shop", "workflow": "CI main",
                            "branch": "feature/x", "sha": "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2", "run_id": "7",
                            "url": None, "origin": origin}
    return SourceEvent(**{**base, **fields})


def test_the_issue_example_loads_and_fires(tmp_path: Path) -> None:
    rules = load(write(tmp_path, EXAMPLE))
    matched = rules.matching(event())
    assert [r.name for r in matched] == ["cancel-shop-ci", "any-cancel"]  # file order, every match
    fired = rules.fire(event(), matched)
    assert [(f.rule, f.index) for f in fired] == [("cancel-shop-ci", 0), ("cancel-shop-ci", 1), ("any-cancel", 0)]
    assert fired[0].command == {"action": "stop_build", "job_id": JOB,
                                "commit_id": "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2",
                                "reason": "github cancelled: acme/shop CI main run 7 (3f2a9c1)"}
    assert fired[2].command["idempotency_key"] == "run-7"


def test_a_rule_gives_each_command_a_reason_unless_it_sets_one(tmp_path: Path) -> None:
    """What happened upstream, in the words a person stopping their build would want: the event by
    default, "superseded by" for a superseding command; a rule's own reason (placeholders filled) wins."""
    rules = load(write(tmp_path, f"""
rules:
  - name: cancel
    when: {{source: github, kind: cancelled}}
    then:
      - {{action: stop_build, job_id: {JOB}, commit_id: "{{sha}}"}}
      - {{action: stop_build, job_id: {JOB}, commit_id: "{{sha}}", reason: "by {{repository}} #{{run_id}}"}}
  - name: supersede
    when: {{source: github, kind: started}}
    then:
      - {{action: stop_build, job_id: {JOB}, branch: "{{branch}}", except_commit_id: "{{sha}}",
          started_before: "{{created_at}}"}}
"""))
    cancelled = [f.command["reason"] for f in rules.evaluate(event()).fired]
    assert cancelled == ["github cancelled: acme/shop CI main run 7 (3f2a9c1)", "by acme/shop #7"]
    started = event(kind="started", created_at="2026-12-07T10:00:00Z", run_id="8", sha="9" * 40)
    assert [f.command["reason"] for f in rules.evaluate(started).fired] == ["superseded by 9999999 (run 8)"]


@pytest.mark.parametrize(("overrides", "names"), [
    ({"repository": "acme/other"}, ["any-cancel"]),
    ({"workflow": "Deploy"}, ["any-cancel"]),
    ({"source": "gitlab", "workflow": None}, ["any-cancel"]),
    ({"kind": "started"}, ["supersede-feature-builds"]),
    ({"kind": "started", "branch": "main"}, []),
    ({"kind": "started", "branch": "release/1.2"}, []),
    ({"kind": "started", "branch": "release-notes"}, ["supersede-feature-builds"]),
])
def test_globs_and_branch_not(tmp_path: Path, overrides: dict[str, Any], names: list[str]) -> None:
    rules = load(write(tmp_path, EXAMPLE))
    assert [r.name for r in rules.matching(event(**overrides))] == names


def test_a_rule_needing_a_missing_field_does_not_fire_and_says_why(tmp_path: Path) -> None:
    """GitLab counts every 4xx against its hook: an event is never refused for what a rule wants of it.
    The rule does not fire, the others still do, and the warning names the payload field."""
    rules = load(write(tmp_path, EXAMPLE))
    evaluation = rules.evaluate(event(sha=None))
    assert [r.name for r in evaluation.matched] == [] and evaluation.fired == []
    assert len(evaluation.warnings) == 2 and all("workflow_run.head_sha" in w for w in evaluation.warnings)
    started = rules.evaluate(event(kind="started", branch=None))
    assert started.matched == [] and "workflow_run.head_branch" in started.warnings[0]
    partly = rules.evaluate(event(workflow=None))  # cancel-shop-ci needs the workflow; any-cancel does not
    assert [r.name for r in partly.matched] == ["any-cancel"] and "cancel-shop-ci" in partly.warnings[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("rules: [{name: 'bad name!', when: {source: github, kind: cancelled}, then: [{action: delete_build_task, "
     f"job_id: {JOB}}}]}}]", "rule 0 'bad name!': name:"),
    ("rules: [{name: r1, when: {source: bitbucket, kind: cancelled}, then: [{action: delete_build_task, "
     f"job_id: {JOB}}}]}}]", "rule 0 'r1': when.source:"),
    ("rules: [{name: r1, when: {source: github, kind: finished}, then: [{action: delete_build_task, "
     f"job_id: {JOB}}}]}}]", "rule 0 'r1': when.kind:"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled, colour: red}, then: [{action: delete_build_task, "
     f"job_id: {JOB}}}]}}]", "rule 0 'r1': when.colour:"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled}, then: []}]", "rule 0 'r1': then:"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled}, then: [{action: stop_build, job_id: short, "
     "commit_id: '{sha}'}]}]", "then.0.job_id"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled}, then: [{action: stop_build, "
     f"job_id: {JOB}, commit_id: '{{commit}}'}}]}}]", "unknown placeholder {commit}"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled}, then: [{job_id: x}]}]", "then.0.action"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled}, then: [{action: reboot}]}]", "then.0.action"),
    ("rules: [{name: r1, when: {source: github, kind: cancelled}, then: [{action: stop_build, "
     f"job_id: {JOB}, build_no: 3, branch: '{{branch}}'}}]}}]", "then.0.branch"),
    (f"rules: [{{name: r1, when: {{source: github, kind: cancelled}}, then: [{{action: delete_build_task, "
     f"job_id: {JOB}}}]}}, {{name: r1, when: {{source: gitlab, kind: cancelled}}, then: [{{action: "
     f"delete_build_task, job_id: {JOB}}}]}}]", "used twice"),
    ("rulez: []", "rulez"),
    ("rules: [a, b", "not valid YAML"),
])
def test_validation_errors_name_file_rule_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load(path)
    assert info.value.message.startswith(f"STOPLINE_RULES ({path}): ") and expected in info.value.message, \
        info.value.message


def test_json_files_and_bad_paths(tmp_path: Path) -> None:
    rules = {"rules": [{"name": "r", "when": {"source": "gitlab", "kind": "cancelled"},
                        "then": [{"action": "delete_build_task", "job_id": JOB}]}]}
    assert isinstance(load(write(tmp_path, json.dumps(rules), "rules.json")), Rules)
    for path, reason in ((str(tmp_path / "nope.yaml"), "no such file"), (write(tmp_path, "{}", "rules.txt"), ".yaml")):
        with pytest.raises(ConfigurationError) as info:
            load(path)
        assert reason in info.value.message


def test_placeholders_in_every_string_field(tmp_path: Path) -> None:
    text = ("rules: [{name: r, when: {source: any, kind: cancelled}, then: [{action: stop_dataarts_job, "
            "job_name: 'etl_{source}_{run_id}', workspace: ws1}]}]")
    rules = load(write(tmp_path, text))
    fired = rules.fire(event(), rules.matching(event()))
    assert fired[0].command == {"action": "stop_dataarts_job", "job_name": "etl_github_7", "workspace": "ws1",
                                "reason": "github cancelled: acme/shop CI main run 7 (3f2a9c1)"}


STOPLINE = [sys.executable, "-m", "stopline.cli"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    return subprocess.run([*STOPLINE, *args], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**clean, **(env or {})})


def test_cli_rules_check_and_explain(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    checked = cli("rules", "check", path)
    assert checked.returncode == 0 and "3 rules, valid" in checked.stdout and "cancel-shop-ci" in checked.stdout
    bad = cli("rules", "check", write(tmp_path, "rules: [{name: r}]", "bad.yaml"))
    assert bad.returncode == 2 and "rule 0 'r': when" in bad.stderr and "Traceback" not in bad.stderr
    spelled = cli("rules", "check", "--rules", path)  # as `rules explain` and `dev` take it
    assert spelled.returncode == 0 and spelled.stdout == checked.stdout
    both = cli("rules", "check", path, "--rules", str(tmp_path / "bad.yaml"))
    assert both.returncode == 2 and "two rules files given" in both.stderr
    explained = cli("rules", "explain", "--source", "github", "--event",
                    str(ROOT / "events" / "github-workflow_run-cancelled.json"), "--event-type", "workflow_run",
                    env={"STOPLINE_RULES": path})
    assert explained.returncode == 0, explained.stderr
    out = json.loads(explained.stdout)
    assert out["event"]["kind"] == "cancelled" and out["matched"] == ["any-cancel"]
    assert out["commands"][0]["command"]["commit_id"] == "5779607b49aab1200488439f02372c57b4f75444"
    guessed = json.loads(cli("rules", "explain", "--source", "gitlab", "--rules", path, "--event",
                             str(ROOT / "events" / "gitlab-pipeline-running.json")).stdout)
    assert guessed["event_type"] == "Pipeline Hook" and guessed["matched"] == ["supersede-feature-builds"]
    demo = cli("rules", "check", str(ROOT / "shared" / "stopline" / "data" / "demo-rules.yaml"))
    assert demo.returncode == 0, demo.stderr


def test_normalised_examples_drive_the_rules(tmp_path: Path) -> None:
    """A real payload through the example rules: the GitLab canceled pipeline of acme/shop fires any-cancel."""
    data = json.loads((ROOT / "events" / "gitlab-pipeline-canceled.json").read_text())
    ev = normalise("gitlab", "Pipeline Hook", data)
    assert isinstance(ev, SourceEvent)
    rules = load(write(tmp_path, EXAMPLE))
    assert [r.name for r in rules.matching(ev)] == ["any-cancel"]


def test_rules_check_warns_about_the_old_superseding_recipe(tmp_path: Path) -> None:
    old = write(tmp_path, f"""rules:
  - name: supersede
    when: {{source: any, kind: started}}
    then:
      - {{action: stop_build, job_id: {JOB}, branch: "{{branch}}", except_commit_id: "{{sha}}"}}
""", "old.yaml")
    done = subprocess.run([*STOPLINE, "rules", "check", old], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "valid" in done.stdout
    assert "started_before" in done.stderr and "'supersede'" in done.stderr
    new = write(tmp_path, Path(old).read_text().replace('except_commit_id: "{sha}"',
                                                          'except_commit_id: "{sha}", started_before: "{created_at}"'),
                "new.yaml")
    done = subprocess.run([*STOPLINE, "rules", "check", new], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""


def test_created_at_fills_started_before(tmp_path: Path) -> None:
    rules = load(write(tmp_path, f"""rules:
  - name: supersede
    when: {{source: any, kind: started}}
    then:
      - {{action: stop_build, job_id: {JOB}, branch: "{{branch}}", except_commit_id: "{{sha}}",
         started_before: "{{created_at}}"}}
"""))
    data = json.loads((ROOT / "events" / "gitlab-pipeline-running.json").read_text())
    started = normalise("gitlab", "Pipeline Hook", data)
    assert isinstance(started, SourceEvent)
    fired = rules.evaluate(started).fired
    assert fired[0].command["started_before"] == "2026-12-02T10:03:09Z"


@pytest.mark.parametrize(("text", "expected"), [
    ("rules:\n  - name: r\n    when: {source: github, kind: cancelled, brnch: main}\n    then: []\n",
     "when.brnch: unknown key; did you mean 'branch'?"),
    ("rules:\n  - name: r\n    wen: {source: github}\n", "wen: unknown key; did you mean 'when'?"),
    ("rules:\n  - name: r\n    when: {source: github\n", "not valid YAML at line 4, column 1"),
])
def test_yaml_mistakes_say_where_and_suggest(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load(write(tmp_path, text))
    assert expected in info.value.message, info.value.message
