"""Why a build was stopped travels with it: a command's ``reason`` is in its answer, its log line, a
duplicate's answer and a given-up retry's audit event; rules give each command one when it has none; a
reason that is not one printable line is refused before anything is called."""

from __future__ import annotations

import pytest

from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_JOB_ID

from .conftest import LogCapture
from .in_process import post_reply as post


def stopped(emulator: Emulator) -> list[int]:
    return [e["build_no"] for e in emulator.effects if e["effect"] == "build_stopped"]


def test_the_reason_is_in_the_answer_the_log_line_and_a_duplicates_answer(signed_cloud: Emulator,
                                                                          log_lines: LogCapture) -> None:
    command = {"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20, "reason": "release freeze (ops-142)"}
    first = post(command, "why-1")
    assert first.status == 200 and first.body["outcome"] == "stopped", first.body
    assert first.body["reason"] == "release freeze (ops-142)" and "reason" not in first.body["target"]
    again = post({**command, "reason": "worded anew by a later rule"}, "why-1")  # same delivery: same command
    assert again.body["outcome"] == "duplicate" and again.body["reason"] == "release freeze (ops-142)"
    assert stopped(signed_cloud) == [20]
    logged = [r for r in log_lines.records if r.get("event_id") == "why-1"]
    assert [(r["outcome"], r.get("reason")) for r in logged] == [("stopped", "release freeze (ops-142)"),
                                                                ("duplicate", "release freeze (ops-142)")]


@pytest.mark.parametrize("reason", ["two\nlines", "tab\there", "", "x" * 257])
def test_a_reason_that_is_not_one_printable_line_is_refused(signed_cloud: Emulator, reason: str) -> None:
    reply = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 21, "reason": reason}, "why-bad")
    assert reply.status == 422 and [d["field"] for d in reply.body["error"]["details"]] == ["reason"]
    assert signed_cloud.calls == []  # refused before the cloud
    assert stopped(signed_cloud) == []
