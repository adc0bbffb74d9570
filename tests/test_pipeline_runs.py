"""CodeArts Pipeline runs (issue 27): every outcome over real HTTP against the served emulator, resolution
over three pages, out-of-order superseding, the allowlist, and the official SDK as an oracle of the
requests stopline sends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from stopline.api import Client
from stopline.emulator import Emulator
from stopline.emulator.seeds import (
    DEMO_AK,
    DEMO_CODEARTS_PROJECT_ID,
    DEMO_OLD_RUN_ID,
    DEMO_PIPELINE_ID,
    DEMO_PROJECT_ID,
    DEMO_RUN_ID,
    DEMO_SK,
)
from stopline.emulator.server import EmulatorServer

PIPELINE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def run_id(n: int) -> str:
    return f"r{n:031d}"


@pytest.fixture
def client(demo_env: Emulator) -> Iterator[Client]:
    with Client.from_env(max_attempts=1) as made:
        yield made


def seed_pipeline(emulator: Emulator, runs: list[dict[str, Any]], pipeline: str = PIPELINE) -> None:
    emulator.seed(pipelines=[{"codearts_project_id": DEMO_CODEARTS_PROJECT_ID, "pipeline_id": pipeline,
                              "runs": runs}])


def run_status(emulator: Emulator, pipeline: str, run: str) -> str:
    for found in emulator.state.snapshot()["pipelines"]:
        if found["pipeline_id"] == pipeline:
            return str(next(r["status"] for r in found["runs"] if r["pipeline_run_id"] == run))
    raise AssertionError(f"no pipeline {pipeline}")


def test_stop_one_run_then_again(client: Client, demo_env: Emulator) -> None:
    first = client.stop_pipeline_run(DEMO_PIPELINE_ID, DEMO_RUN_ID)
    assert first.ok and str(first.outcome) == "stopped" and first.target["pipeline_run_id"] == DEMO_RUN_ID
    assert run_status(demo_env, DEMO_PIPELINE_ID, DEMO_RUN_ID) == "CANCELED"
    again = client.stop_pipeline_run(DEMO_PIPELINE_ID, DEMO_RUN_ID)
    # the cloud documents no answer for a run that is not running: its detail settles it
    assert again.ok and str(again.outcome) == "already_stopped"
    stops = [c for c in demo_env.calls if c["path"].endswith("/stop") and "pipeline-runs" in c["path"]]
    assert len(stops) == 2 and [e["effect"] for e in demo_env.effects] == ["pipeline_run_stopped"]


def test_unknown_run_and_unknown_pipeline_are_not_found(client: Client, demo_env: Emulator) -> None:
    missing = client.stop_pipeline_run(DEMO_PIPELINE_ID, "f" * 32)
    assert missing.status == 404 and missing.error is not None and missing.error.type == "not_found"
    assert missing.error.details[0]["field"] == "pipeline_run_id"
    no_pipeline = client.stop_pipeline_run("e" * 32, "f" * 32)
    assert no_pipeline.status == 404 and no_pipeline.error is not None
    assert no_pipeline.error.details[0]["field"] == "pipeline_id"
    wrong_project = client.stop_pipeline_run(DEMO_PIPELINE_ID, DEMO_RUN_ID, codearts_project_id="d" * 32)
    assert wrong_project.status == 404 and wrong_project.error is not None
    assert wrong_project.error.details[0]["field"] == "codearts_project_id"
    assert demo_env.effects == []


def test_resolution_stops_the_running_runs_that_match(client: Client, demo_env: Emulator) -> None:
    old_commit = "3f2a9c1"
    result = client.stop_pipeline_run(DEMO_PIPELINE_ID, commit_id=old_commit)
    assert str(result.outcome) == "stopped" and result.resolved is not None
    assert result.resolved == ("runs", [{"pipeline_run_id": DEMO_OLD_RUN_ID, "outcome": "stopped",
                                         "upstream_request_id": result.resolved[1][0]["upstream_request_id"]}])
    assert run_status(demo_env, DEMO_PIPELINE_ID, DEMO_RUN_ID) == "RUNNING"  # another commit: left running
    nothing = client.stop_pipeline_run(DEMO_PIPELINE_ID, commit_id=old_commit)
    assert nothing.ok and str(nothing.outcome) == "nothing_running" and nothing.resolved == ("runs", [])


def test_everything_running_needs_all_running(client: Client, demo_env: Emulator) -> None:
    refused = client.stop_pipeline_run(DEMO_PIPELINE_ID)
    assert refused.status == 422 and refused.error is not None
    assert refused.error.details[0]["field"] == "pipeline_run_id" and demo_env.calls == []
    stopped = client.stop_pipeline_run(DEMO_PIPELINE_ID, all_running=True)
    assert str(stopped.outcome) == "stopped" and stopped.resolved is not None
    assert {e["pipeline_run_id"] for e in stopped.resolved[1]} == {DEMO_OLD_RUN_ID, DEMO_RUN_ID}


def test_resolution_reads_every_page(client: Client, demo_env: Emulator) -> None:
    seed_pipeline(demo_env, [{"pipeline_run_id": run_id(n), "status": "RUNNING", "branch": "main",
                              "age_s": 1000 - n} for n in range(250)]
                  + [{"pipeline_run_id": run_id(900), "status": "COMPLETED", "branch": "main"}])
    result = client.stop_pipeline_run(PIPELINE, branch="main")
    assert str(result.outcome) == "stopped" and result.resolved is not None
    assert sorted(e["pipeline_run_id"] for e in result.resolved[1]) == [run_id(n) for n in range(250)]
    lists = [c for c in demo_env.calls if c["path"].endswith("/pipeline-runs/list")]
    assert len(lists) == 3  # 100 + 100 + 50
    assert [json.loads(c["body"]) for c in lists] == [{"status": ["RUNNING"], "offset": o, "limit": 100}
                                                      for o in (0, 100, 200)]
    assert len([e for e in demo_env.effects if e["effect"] == "pipeline_run_stopped"]) == 250


def test_superseding_out_of_order_never_stops_the_newer_run(client: Client, demo_env: Emulator) -> None:
    """Run A (older commit) and run B (newer) on main. A's late "started" event arrives after B's: with
    ``started_before`` A's creation time it stops nothing of B's; B's event stops A."""
    now = time.time()
    a_created, b_created = now - 120, now - 20
    seed_pipeline(demo_env, [
        {"pipeline_run_id": run_id(1), "status": "RUNNING", "branch": "main", "commit_id": "a" * 40,
         "start_time": int((a_created + 2) * 1000)},
        {"pipeline_run_id": run_id(2), "status": "RUNNING", "branch": "main", "commit_id": "b" * 40,
         "start_time": int((b_created + 2) * 1000)},
    ])

    def supersede(commit: str, created: float) -> Any:
        return client.stop_pipeline_run(PIPELINE, branch="main", except_commit_id=commit,
                                        started_before=datetime.fromtimestamp(created, UTC))

    late_a = supersede("a" * 40, a_created)  # arrives last in real life; here first, as the order does not matter
    assert str(late_a.outcome) == "nothing_running"
    assert run_status(demo_env, PIPELINE, run_id(2)) == "RUNNING"
    by_b = supersede("b" * 40, b_created)
    assert str(by_b.outcome) == "stopped" and by_b.resolved is not None
    assert [e["pipeline_run_id"] for e in by_b.resolved[1]] == [run_id(1)]
    assert supersede("a" * 40, a_created).outcome == late_a.outcome  # and again, in the other order
    assert run_status(demo_env, PIPELINE, run_id(2)) == "RUNNING"


def test_a_run_that_names_no_commit_is_spared_by_except_commit_id(client: Client, demo_env: Emulator) -> None:
    seed_pipeline(demo_env, [
        {"pipeline_run_id": run_id(1), "status": "RUNNING", "branch": "main", "commit_id": "a" * 40},
        {"pipeline_run_id": run_id(2), "status": "RUNNING", "branch": "main", "commit_id": ""}])
    result = client.stop_pipeline_run(PIPELINE, branch="main", except_commit_id="b" * 40)
    assert str(result.outcome) == "stopped" and result.resolved is not None
    assert [e["pipeline_run_id"] for e in result.resolved[1]] == [run_id(1)]
    assert run_status(demo_env, PIPELINE, run_id(2)) == "RUNNING"


def test_filters_cannot_be_empty_or_combined_with_a_run_id(client: Client, demo_env: Emulator) -> None:
    cases: tuple[tuple[dict[str, Any], str], ...] = (
        ({"branch": ""}, "branch"), ({"pipeline_run_id": DEMO_RUN_ID, "branch": "main"}, "branch"),
        ({"started_before": "2026-12-07T10:00:00"}, "started_before"))
    for kwargs, field in cases:
        result = client.stop_pipeline_run(DEMO_PIPELINE_ID, **kwargs)
        assert result.status == 422 and result.error is not None, kwargs
        assert result.error.details[0]["field"] == field
    bad_id = client.stop_pipeline_run("not-an-id", DEMO_RUN_ID)
    assert bad_id.status == 422 and bad_id.error is not None and bad_id.error.details[0]["field"] == "pipeline_id"
    assert demo_env.calls == []


def test_no_codearts_project_is_422_naming_it(demo_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOPLINE_CODEARTS_PROJECT_ID")
    with Client.from_env() as client:
        result = client.stop_pipeline_run(DEMO_PIPELINE_ID, DEMO_RUN_ID)
    assert result.status == 422 and result.error is not None
    assert result.error.details[0]["field"] == "codearts_project_id" and demo_env.calls == []


def test_the_allowlist_is_403(demo_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_ALLOWED_PIPELINE_IDS", PIPELINE)
    with Client.from_env() as client:
        result = client.stop_pipeline_run(DEMO_PIPELINE_ID, DEMO_RUN_ID)
    assert result.status == 403 and result.error is not None
    assert result.error.details[0]["field"] == "pipeline_id" and demo_env.calls == []


def test_running_runs_lists_them(client: Client, demo_env: Emulator) -> None:
    rows = client.running_runs(DEMO_PIPELINE_ID)
    assert [r["pipeline_run_id"] for r in rows] == [DEMO_OLD_RUN_ID, DEMO_RUN_ID]  # oldest first
    assert rows[1]["branch"] == "main" and rows[1]["state"] == "RUNNING"


def test_the_official_sdk_sends_what_stopline_sends(served: tuple[Emulator, EmulatorServer]) -> None:
    """The SDK (huaweicloudsdkcodeartspipeline, a test dependency only) and stopline, both AK/SK-signed
    against the served emulator, which verifies both signatures: the same method, path, query and body."""
    from huaweicloudsdkcodeartspipeline.v2 import (
        CodeArtsPipelineClient,
        ListPipelineRunsQuery,
        ListPipelineRunsRequest,
        ShowPipelineRunDetailRequest,
        StopPipelineRunRequest,
    )
    from huaweicloudsdkcore.auth.credentials import BasicCredentials

    emulator, server = served
    sdk = (CodeArtsPipelineClient.new_builder()
           .with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, DEMO_PROJECT_ID))
           .with_endpoints([server.url]).build())
    sdk.list_pipeline_runs(ListPipelineRunsRequest(
        project_id=DEMO_CODEARTS_PROJECT_ID, pipeline_id=DEMO_PIPELINE_ID,
        body=ListPipelineRunsQuery(status=["RUNNING"], offset=0, limit=100)))
    sdk.show_pipeline_run_detail(ShowPipelineRunDetailRequest(
        project_id=DEMO_CODEARTS_PROJECT_ID, pipeline_id=DEMO_PIPELINE_ID, pipeline_run_id=DEMO_OLD_RUN_ID))
    sdk.stop_pipeline_run(StopPipelineRunRequest(
        project_id=DEMO_CODEARTS_PROJECT_ID, pipeline_id=DEMO_PIPELINE_ID, pipeline_run_id=DEMO_OLD_RUN_ID))
    by_sdk = list(emulator.calls)
    emulator.reset()
    emulator.seed("demo")
    with Client(_settings(server.url)) as client:
        assert str(client.stop_pipeline_run(DEMO_PIPELINE_ID, commit_id="3f2a9c1").outcome) == "stopped"
        assert str(client.stop_pipeline_run(DEMO_PIPELINE_ID, DEMO_OLD_RUN_ID).outcome) == "already_stopped"
    by_stopline = list(emulator.calls)
    assert all(c["auth"] == "aksk" for c in by_sdk + by_stopline)  # both signatures verified
    assert [c["status"] for c in by_sdk] == [200, 200, 200]
    assert [c["status"] for c in by_stopline] == [200, 200, 400, 200]  # the second stop is refused: not running

    def shape(call: dict[str, Any]) -> tuple[Any, ...]:
        return call["method"], call["path"], call["query"], json.loads(call["body"]) if call["body"] else None

    sdk_list, sdk_detail, sdk_stop = (shape(c) for c in by_sdk)
    ours_list, ours_stop, ours_stop_again, ours_detail = (shape(c) for c in by_stopline)
    assert ours_list == sdk_list and ours_stop == sdk_stop == ours_stop_again
    assert ours_detail == sdk_detail


def _settings(url: str) -> Any:
    from stopline.settings import load_settings

    return load_settings(ak=DEMO_AK, sk=DEMO_SK, project_id=DEMO_PROJECT_ID, codearts_pipeline_endpoint=url,
                         codearts_build_endpoint=url, dataarts_endpoint=url, iam_endpoint=url,
                         codearts_project_id=DEMO_CODEARTS_PROJECT_ID, max_attempts=1)
