"""docs/commands.md over real HTTP: `stop_build` without a build number, DataArts scopes, and the
look-up APIs of the served emulator -- filters, paging, the time window, partial failure and redelivery,
duplicates that replay the `builds` list."""

from __future__ import annotations

from typing import Any

import pytest

from stopline.emulator import Emulator
from stopline.emulator.seeds import (
    DEMO_COMMIT,
    DEMO_DATAARTS_JOB,
    DEMO_INSTANCE_ID,
    DEMO_JOB_ID,
    DEMO_NEW_COMMIT,
    DEMO_PROJECT_ID,
)
from stopline.entry import get_runtime
from stopline.pipeline import Delivery

PAGED_JOB = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"


def run(command: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return get_runtime().pipeline.handle(command, Delivery(event_id, "test")).to_json(with_status=True)


def stopped(cloud: Emulator, job_id: str = DEMO_JOB_ID) -> list[int]:
    return sorted(e["build_no"] for e in cloud.effects if e["effect"] == "build_stopped" and e["job_id"] == job_id)


def stop_calls(cloud: Emulator) -> list[dict[str, Any]]:
    return [c for c in cloud.calls if c["path"] in ("/v3/jobs/stop",) or (c["path"].endswith("/stop")
            and c["path"].startswith("/v1/job/"))]


def test_by_commit_stops_every_running_build_of_it(demo_env: Emulator) -> None:
    """A 7-character prefix, any case: builds 20 and 21 (running, that commit) stop; 19 (stopped), 22 (other
    commit) and 23 (other commit) are untouched. One look-up, then one stop per build."""
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT[:7].upper()})
    assert out["ok"] and out["outcome"] == "stopped"
    assert [(b["build_no"], b["outcome"]) for b in out["builds"]] == [(20, "stopped"), (21, "stopped")]
    assert stopped(demo_env) == [20, 21]
    lookups = [c for c in demo_env.calls if c["path"].endswith("/build-info-records")]
    assert len(lookups) == 1 and "page_index=0" in lookups[0]["query"] and "page_size=100" in lookups[0]["query"]


def test_superseded_builds_of_a_branch(demo_env: Emulator) -> None:
    """branch + except_commit_id: the older running builds of feature/x stop, the new commit's queued build
    and the other branch's build keep running."""
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "branch": "feature/x",
               "except_commit_id": DEMO_NEW_COMMIT})
    assert out["outcome"] == "stopped" and [b["build_no"] for b in out["builds"]] == [20, 21]
    assert stopped(demo_env) == [20, 21]


def test_a_build_whose_record_names_no_commit_is_spared_by_except_commit_id(demo_env: Emulator) -> None:
    """A build whose record names no commit could be of the very commit ``except_commit_id`` spares (a
    superseding run must not stop its own build): it keeps running, while the other commit's build stops."""
    job = "4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c"
    demo_env.seed(build_tasks=[{"job_id": job, "project_id": DEMO_PROJECT_ID, "builds": [
        {"build_no": 1, "branch": "dev", "commit_id": "a" * 40},
        {"build_no": 2, "branch": "dev", "commit_id": ""},
        {"build_no": 3, "branch": "dev", "commit_id": "b" * 40}]}])
    out = run({"action": "stop_build", "job_id": job, "branch": "dev", "except_commit_id": "b" * 40})
    assert [b["build_no"] for b in out["builds"]] == [1] and stopped(demo_env, job) == [1]
    out = run({"action": "stop_build", "job_id": job, "branch": "dev"})  # named by the branch alone: stopped
    assert [b["build_no"] for b in out["builds"]] == [2, 3] and stopped(demo_env, job) == [1, 2, 3]


def test_queued_builds_count_as_running(demo_env: Emulator) -> None:
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_NEW_COMMIT})
    assert [(b["build_no"], b["outcome"]) for b in out["builds"]] == [(23, "stopped")]


def test_no_filter_stops_all_running_and_queued(demo_env: Emulator) -> None:
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID})
    assert [b["build_no"] for b in out["builds"]] == [20, 21, 22, 23, 24] and stopped(demo_env) == [20, 21, 22, 23, 24]


def test_nothing_running_is_a_success(demo_env: Emulator) -> None:
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "branch": "no-such-branch"})
    assert (out["ok"], out["outcome"], out["builds"], out["status"]) == (True, "nothing_running", [], 200)
    assert not stop_calls(demo_env)


def test_missing_task_is_not_found(demo_env: Emulator) -> None:
    out = run({"action": "stop_build", "job_id": "0" * 32})
    assert (out["status"], out["error"]["type"]) == (404, "not_found")
    assert out["error"]["upstream"]["error_code"] == "CB.00031006"


def test_every_page_is_read_and_the_window_applies(demo_env: Emulator) -> None:
    """250 builds in the window (3 pages of 100), running ones on every page; one running build 3 days old
    lies outside the 24-hour window and is left alone."""
    builds = [{"build_no": n, "state": "running" if n in (3, 120, 249) else "finished", "age_s": 10 + (250 - n)}
              for n in range(1, 251)]
    builds.append({"build_no": 300, "state": "running", "age_s": 3 * 86400})
    demo_env.seed(build_tasks=[{"job_id": PAGED_JOB, "project_id": DEMO_PROJECT_ID, "builds": builds}])
    out = run({"action": "stop_build", "job_id": PAGED_JOB})
    assert [b["build_no"] for b in out["builds"]] == [3, 120, 249]
    pages = [c["query"] for c in demo_env.calls if c["path"].endswith("/build-info-records")]
    assert [next(p for p in q.split("&") if p.startswith("page_index")) for q in pages] == [
        "page_index=0", "page_index=1", "page_index=2"]
    assert stopped(demo_env, PAGED_JOB) == [3, 120, 249]


def test_v1_record_route_when_v3_lists_nothing(demo_env: Emulator) -> None:
    """In some tenants only the v1 record route lists builds (docs/cloud-answers.md)."""
    demo_env.inject(r"/build-info-records$", "respond", status=200)  # no body rule: an empty 200
    demo_env.faults.rules[-1].body = {"result": {"total_page": "0", "total_record": "0", "job_build_states": []}}
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT})
    assert [b["build_no"] for b in out["builds"]] == [20, 21]
    assert [c["path"] for c in demo_env.calls][:2] == [f"/v3/jobs/{DEMO_JOB_ID}/build-info-records",
                                                       f"/v1/record/{DEMO_JOB_ID}/list"]


def test_one_idle_task_does_not_send_every_look_up_to_v1(demo_env: Emulator) -> None:
    """The v1 fallback is per task and per call: after an idle task's empty v3 answer sent its look-up to v1,
    a busy task's builds that only v3 lists are still found (not answered `nothing_running`)."""
    idle = "1dle0000000000000000000000000000"
    demo_env.seed(build_tasks=[{"job_id": idle, "project_id": DEMO_PROJECT_ID, "builds": []}])
    assert run({"action": "stop_build", "job_id": idle, "branch": "main"})["outcome"] == "nothing_running"
    demo_env.inject(r"^/v1/record/", "respond", status=200)  # v1 would now list nothing for any task
    demo_env.faults.rules[-1].body = {"result": {"total_page": "0", "job_build_states": []}}
    busy = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT})
    assert busy["outcome"] == "stopped" and [b["build_no"] for b in busy["builds"]] == [20, 21]


def test_partial_failure_then_redelivery_never_stops_twice(demo_env: Emulator,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two of five stops fail transiently: the command answers 503 with every build's own outcome and releases
    its claim; the redelivery resolves again and stops only what still runs."""
    monkeypatch.setenv("STOPLINE_MAX_ATTEMPTS", "1")
    demo_env.inject(r"^/v3/jobs/stop$", "error", status=503, count=2)
    first = run({"action": "stop_build", "job_id": DEMO_JOB_ID}, event_id="evt-partial")
    assert first["status"] == 503 and first["error"]["type"] == "unavailable"
    outcomes = sorted(b["outcome"] for b in first["builds"])
    assert outcomes == ["failed", "failed", "stopped", "stopped", "stopped"]
    failed = [b for b in first["builds"] if b["outcome"] == "failed"]
    assert all(b["status"] == 503 and b["error"]["type"] == "unavailable" for b in failed)
    again = run({"action": "stop_build", "job_id": DEMO_JOB_ID}, event_id="evt-partial")
    assert again["ok"] and again["outcome"] == "stopped"
    assert sorted(b["build_no"] for b in again["builds"]) == sorted(b["build_no"] for b in failed)
    assert stopped(demo_env) == [20, 21, 22, 23, 24]  # each exactly once
    effects = [e["build_no"] for e in demo_env.effects if e["effect"] == "build_stopped"]
    assert len(effects) == len(set(effects)) == 5


def test_duplicate_of_a_resolution_replays_its_builds(demo_env: Emulator) -> None:
    command = {"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT, "idempotency_key": "k-r1"}
    first = run(command)
    calls = len(demo_env.calls)
    dup = run(command)
    assert dup["outcome"] == "duplicate" and dup["first_outcome"] == "stopped"
    assert dup["builds"] == first["builds"] and len(demo_env.calls) == calls


def test_permanent_member_failure_takes_its_status(demo_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_MAX_ATTEMPTS", "1")
    demo_env.inject(r"^/v3/jobs/stop$", "error", status=400, count=1, error_code="CB.00060200", retry_after=None)
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT})
    assert (out["status"], out["error"]["type"]) == (422, "upstream_rejected")
    assert sorted(b["outcome"] for b in out["builds"]) == ["failed", "stopped"]


def test_dataarts_instances_scope_leaves_the_schedule(demo_env: Emulator) -> None:
    """scope instances: the running instance stops (204), the finished one is not touched, the job's schedule
    keeps running."""
    out = run({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "instances"})
    assert out["outcome"] == "stopped" and out["instances"] == [
        {"instance_id": DEMO_INSTANCE_ID, "outcome": "stopped", "upstream_request_id": out["instances"][0][
            "upstream_request_id"]}]
    effects = [e["effect"] for e in demo_env.effects]
    assert effects == ["instance_stopped"]
    listing = next(c for c in demo_env.calls if c["path"].endswith("/jobs/instances/detail"))
    assert f"jobName={DEMO_DATAARTS_JOB}" in listing["query"] and "preciseQuery=jobName" in listing["query"]
    again = run({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "instances"})
    assert (again["outcome"], again["instances"]) == ("nothing_running", [])


def test_dataarts_both_scope(demo_env: Emulator) -> None:
    out = run({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "both"})
    assert out["outcome"] == "stopped" and [i["instance_id"] for i in out["instances"]] == [DEMO_INSTANCE_ID]
    assert [e["effect"] for e in demo_env.effects] == ["instance_stopped", "job_stopped"]


def test_dataarts_instance_gone_is_already_stopped(demo_env: Emulator) -> None:
    """An instance stop answered DLF.0137 / DLF.30137 (the instance does not exist) counts as already_stopped."""
    for code in ("DLF.0137", "DLF.30137"):
        demo_env.reset()
        demo_env.seed("demo")
        demo_env.inject(r"/instances/\d+/stop$", "respond", status=400, count=1, error_code=code)
        out = run({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "instances"})
        assert out["ok"] and out["instances"][0]["outcome"] == "already_stopped", code
        assert out["outcome"] == "already_stopped"


def test_dataarts_instances_paging_and_window(demo_env: Emulator) -> None:
    """Every page of instances is read (offset paging); an instance planned 8 days ago is outside the window."""
    instances = [{"instance_id": 1000 + i, "status": "running" if i % 50 == 0 else "success", "age_s": 60 + i}
                 for i in range(230)]
    instances.append({"instance_id": 5, "status": "running", "age_s": 8 * 86400})
    demo_env.seed(dataarts_jobs=[{"project_id": DEMO_PROJECT_ID, "job_name": "paged", "state": "running",
                                  "instances": instances}])
    out = run({"action": "stop_dataarts_job", "job_name": "paged", "scope": "instances"})
    assert [i["instance_id"] for i in out["instances"]] == [1000, 1050, 1100, 1150, 1200]
    offsets = [c["query"] for c in demo_env.calls if c["path"].endswith("/instances/detail")]
    assert len(offsets) == 3 and "offset=200" in offsets[2]


def test_result_shape(demo_env: Emulator) -> None:
    """The result carries the section-3 keys plus `builds`; the target echoes the filters, normalised."""
    out = run({"action": "stop_build", "job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT[:10].upper()}, event_id="wh-1")
    assert out["event_id"] == "wh-1" and {"ok", "action", "outcome", "target", "builds"} <= set(out)
    assert out["target"] == {"job_id": DEMO_JOB_ID, "commit_id": DEMO_COMMIT[:10]}
