"""Every sample in events/ runs through `stopline invoke` against the in-process emulator."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stopline.cli.invoker import invoke_file

from ..conftest import ROOT

EVENTS = ROOT / "events"
EXPECTED = {
    "http-stop_build.json": ("stop_build", ["stopped"]),
    "http-delete_build_task.json": ("delete_build_task", ["deleted"]),
    "http-stop_dataarts_job.json": ("stop_dataarts_job", ["stopped"]),
    "http-stop_pipeline_run.json": ("stop_pipeline_run", ["stopped"]),
    "http-webhook.json": ("webhook", ["stopped"]),
    "http-webhook-batch.json": ("webhook", ["stopped", "stopped", "stopped", "deleted"]),
    "cloudevent-stop_build.json": ("on_event", ["stopped"]),
    "cloudevent-stop_dataarts_job.json": ("on_event", ["stopped"]),
    "pubsub-push-delete_build_task.json": ("on_event", ["deleted"]),
    "functiongraph-apig.json": ("functiongraph", ["stopped"]),
    "functiongraph-kafka.json": ("functiongraph", ["deleted", "stopped"]),
    "functiongraph-rabbitmq.json": ("functiongraph", ["stopped"]),
    "functiongraph-smn.json": ("functiongraph", ["stopped"]),
    "functiongraph-timer.json": ("functiongraph", ["stopped"]),
    "functiongraph-timer-list.json": ("functiongraph", ["stopped", "deleted"]),
    # CTS records go through the demo rules (--emulate brings them): a stopped pipeline stops the DataArts
    # instance and main's two running builds; FunctionGraph's own template record matches no rule
    "functiongraph-cts-pipeline-stop.json": ("functiongraph", ["stopped", "stopped"]),
    "functiongraph-cts-console-template.json": ("functiongraph", []),
}


def test_every_event_file_is_covered() -> None:
    # github-* and gitlab-* payloads are the pipeline sources' (tests/test_sources.py, tests/functions/)
    commands = [p.name for p in EVENTS.glob("*.json") if not p.name.startswith(("github-", "gitlab-"))]
    assert sorted(commands) == sorted(EXPECTED)


def _outcomes(output: dict[str, object]) -> list[object]:
    body = output.get("body", output)
    if isinstance(body, str):
        body = json.loads(body)
    assert isinstance(body, dict)
    results = body.get("results", [body])
    assert isinstance(results, list)
    return [r.get("outcome") for r in results]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_file_in_process(name: str) -> None:
    target, outcomes = EXPECTED[name]
    code, output = invoke_file(target, EVENTS / name, emulate=True)
    assert code == 0, output
    assert _outcomes(output) == outcomes


@pytest.mark.parametrize("name", ["functiongraph-kafka.json", "pubsub-push-delete_build_task.json"])
def test_stopline_invoke_command(name: str) -> None:
    """The installed command prints the answer as JSON and exits 0."""
    target, outcomes = EXPECTED[name]
    proc = subprocess.run([sys.executable, "-m", "stopline.cli", "invoke", target, "--event", str(EVENTS / name),
                           "--emulate"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert _outcomes(json.loads(proc.stdout)) == outcomes


def test_invoke_without_emulate_and_credentials_is_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "stopline.cli", "invoke", "functiongraph", "--event",
                           str(EVENTS / "functiongraph-timer.json")], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "HUAWEICLOUD_SDK_AK" in proc.stderr
