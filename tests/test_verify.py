"""Verified stops: with ``verify`` the answer says whether the work was *seen* stopped, with the cloud's
last state and the calls it took -- one look-up per poll for everything a command stopped; a build that
keeps running past STOPLINE_VERIFY_S stays ``stopped`` with ``verified: false`` and a WARNING."""

from __future__ import annotations

import json
import time

import pytest

from stopline.emulator import Emulator
from stopline.emulator.seeds import (
    DEMO_DATAARTS_JOB,
    DEMO_INSTANCE_ID,
    DEMO_JOB_ID,
    DEMO_PIPELINE_ID,
    DEMO_PROJECT_ID,
    DEMO_RUN_ID,
)
from stopline.entry import get_runtime, reset_runtime
from stopline.triggers.functiongraph import handle as fg_handle

from .conftest import LogCapture
from .in_process import EndingContext, post

MANY = "e" * 32


def listings(emulator: Emulator) -> int:
    return sum(1 for c in emulator.calls if "build-info-records" in str(c))


def test_one_build_is_read_back_stopped(signed_cloud: Emulator) -> None:
    answer = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20, "verify": True}, "v-1")
    assert (answer["outcome"], answer["verified"], answer["state_after"]) == ("stopped", True, "ABORTED")
    assert answer["verify_calls"] == 1 == listings(signed_cloud)
    plain = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 21}, "v-2")
    assert "verified" not in plain and listings(signed_cloud) == 1  # not asked: nothing read


def test_a_resolution_of_20_builds_costs_one_look_up_per_poll(signed_cloud: Emulator) -> None:
    signed_cloud.seed(build_tasks=[{"job_id": MANY, "project_id": DEMO_PROJECT_ID,
                             "builds": [{"build_no": n, "branch": "feature/z"} for n in range(1, 21)]}])
    started = time.perf_counter()
    answer = post({"action": "stop_build", "job_id": MANY, "branch": "feature/z", "verify": True}, "v-20")
    took = time.perf_counter() - started
    assert answer["outcome"] == "stopped" and answer["verified"] is True
    assert [(b["build_no"], b["verified"], b["state_after"]) for b in answer["builds"]] == \
        [(n, True, "ABORTED") for n in range(1, 21)]
    assert answer["verify_calls"] == 1 and listings(signed_cloud) == 2  # the resolution's listing, then one poll
    print(f"verified resolution of 20 builds: {answer['verify_calls']} look-up(s), {took * 1000:.0f} ms")


def test_a_build_still_running_past_the_limit_is_stopped_but_not_verified(
        signed_cloud: Emulator, monkeypatch: pytest.MonkeyPatch, log_lines: LogCapture) -> None:
    monkeypatch.setenv("STOPLINE_VERIFY", "true")  # the default for every command
    monkeypatch.setenv("STOPLINE_VERIFY_S", "1.2")
    reset_runtime()
    signed_cloud.seed(build_tasks=[{"job_id": MANY, "project_id": DEMO_PROJECT_ID,
                             "builds": [{"build_no": 7, "stop_takes_s": 60}]}])
    answer = post({"action": "stop_build", "job_id": MANY, "build_no": 7}, "v-slow")
    assert (answer["outcome"], answer["verified"], answer["state_after"]) == ("stopped", False, "Running")
    assert answer["verify_calls"] >= 3  # at once, after 0.5 s, and at the limit
    warned = [r for r in log_lines.records if r["level"] == "WARNING" and r.get("event_id") == "v-slow"]
    assert len(warned) == 1 and "not seen stopped" in str(warned[0]["message"])
    skipped = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 22, "verify": False}, "v-off")
    assert "verified" not in skipped  # a command's own verify: false wins over STOPLINE_VERIFY


def test_reading_back_never_outlives_the_invocation(signed_cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FunctionGraph invocation with 3 s left and STOPLINE_VERIFY_S=30: a build that keeps running is read
    back only until the delivery's deadline (a few looks, not thirty seconds of them), then answered
    ``stopped`` and not verified, while the platform still waits for the answer."""
    monkeypatch.setenv("STOPLINE_VERIFY_S", "30")
    monkeypatch.setenv("STOPLINE_TIMEOUT_S", "1")  # an attempt needs one timeout left to start
    reset_runtime()
    signed_cloud.seed(build_tasks=[{"job_id": MANY, "project_id": DEMO_PROJECT_ID,
                                    "builds": [{"build_no": 9, "stop_takes_s": 120}]}])
    command = {"action": "stop_build", "job_id": MANY, "build_no": 9, "verify": True}
    event = {"record": [{"event_source": "smn", "smn": {"message_id": "v-deadline", "type": "notification",
                                                        "message": json.dumps(command)}}]}
    context = EndingContext(remaining_ms=3000)
    answer = fg_handle(event, context, runtime=get_runtime)
    (result,) = answer["results"]
    assert (result["outcome"], result["verified"], result["state_after"]) == ("stopped", False, "Running")
    assert 2 <= result["verify_calls"] <= 5  # at once, then 0.5, 1 and 2 s apart, cut at the deadline
    assert context.getRemainingTimeInMilliSeconds() > 0


def test_dataarts_instances_are_read_back_and_a_schedule_has_nothing_to_read(signed_cloud: Emulator) -> None:
    answer = post({"action": "stop_dataarts_job", "job_name": DEMO_DATAARTS_JOB, "scope": "instances",
                   "verify": True}, "v-dlf")
    assert answer["outcome"] == "stopped" and answer["verified"] is True and answer["verify_calls"] == 1
    assert [(i["instance_id"], i["state_after"]) for i in answer["instances"]] == [(DEMO_INSTANCE_ID, "manual-stop")]
    schedule = post({"action": "stop_dataarts_job", "job_name": "nightly", "verify": True}, "v-job")
    assert schedule["outcome"] == "stopped"  # the schedule has no documented state to read:
    assert (schedule["verified"], schedule["verify_calls"]) == (None, 0) and "state_after" not in schedule


def test_a_pipeline_run_is_read_back_canceled(signed_cloud: Emulator) -> None:
    answer = post({"action": "stop_pipeline_run", "pipeline_id": DEMO_PIPELINE_ID, "pipeline_run_id": DEMO_RUN_ID,
                   "verify": True}, "v-run")
    assert (answer["outcome"], answer["verified"], answer["state_after"]) == ("stopped", True, "CANCELED")
    assert answer["verify_calls"] == 1
