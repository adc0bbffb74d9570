"""Command field rules (docs/commands.md): every bad field is named, good input normalizes."""

from __future__ import annotations

from typing import Any

import pytest

from stopline.errors import InvalidCommand
from stopline.models import DeleteBuildTask, StopBuild, StopDataArtsJob, parse_command

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"


def test_build_no_numeric_string_is_accepted_and_normalized() -> None:
    """A numeric string build_no is accepted and becomes an integer."""
    command = parse_command({"action": "stop_build", "job_id": JOB, "build_no": "20"})
    assert isinstance(command, StopBuild) and command.build_no == 20


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"action": "stop_build", "job_id": JOB[:-1], "build_no": 1}, "job_id"),
        ({"action": "stop_build", "job_id": JOB + "0", "build_no": 1}, "job_id"),
        ({"action": "stop_build", "job_id": "g9d6c8466d614a9788e9a0acf6c15f4-", "build_no": 1}, "job_id"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 0}, "build_no"),
        ({"action": "stop_build", "job_id": JOB, "build_no": -3}, "build_no"),
        ({"action": "stop_build", "job_id": JOB, "build_no": "2x"}, "build_no"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 1.5}, "build_no"),
        ({"action": "stop_build", "job_id": JOB, "build_no": True}, "build_no"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 3, "commit_id": "3f2a9c1"}, "commit_id"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 3, "branch": "main"}, "branch"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 3, "except_commit_id": "3f2a9c1"}, "except_commit_id"),
        ({"action": "stop_build", "job_id": JOB, "commit_id": "3f2a9c"}, "commit_id"),
        ({"action": "stop_build", "job_id": JOB, "commit_id": "zzzzzzz"}, "commit_id"),
        ({"action": "stop_build", "job_id": JOB, "branch": "a\nb"}, "branch"),
        ({"action": "stop_dataarts_job", "job_name": "x", "scope": "all"}, "scope"),
        ({"action": "stop_dataarts_job", "job_name": "."}, "job_name"),
        ({"action": "stop_dataarts_job", "job_name": ".."}, "job_name"),
        ({"action": "stop_dataarts_job", "job_name": "a\u0085b"}, "job_name"),
        ({"action": "stop_build", "build_no": 3}, "job_id"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 3, "extra": 1}, "extra"),
        ({"action": "delete_build_task", "job_id": 123}, "job_id"),
        ({"action": "stop_dataarts_job"}, "job_name"),
        ({"action": "stop_dataarts_job", "job_name": ""}, "job_name"),
        ({"action": "stop_dataarts_job", "job_name": "a/b"}, "job_name"),
        ({"action": "stop_dataarts_job", "job_name": "x", "workspace": "bad space"}, "workspace"),
        ({"action": "stop_dataarts_job", "job_name": "x", "project_id": "../etc"}, "project_id"),
        ({"action": "stop_build", "job_id": JOB, "build_no": 1, "idempotency_key": "k" * 129}, "idempotency_key"),
        ({"action": "reboot_cloud", "job_id": JOB}, "action"),
        ({"job_id": JOB, "build_no": 1}, "action"),
    ],
)
def test_bad_fields_are_named(payload: dict[str, Any], field: str) -> None:
    """Each invalid field yields InvalidCommand (422) whose details name that field, and say what it must
    be in words -- never as the regular expression it failed."""
    with pytest.raises(InvalidCommand) as info:
        parse_command(payload)
    assert info.value.status == 422
    assert field in [d["field"] for d in info.value.details]
    assert "pattern" not in info.value.message and "[" not in info.value.message, info.value.message


def test_a_malformed_id_says_what_it_should_look_like() -> None:
    with pytest.raises(InvalidCommand) as info:
        parse_command({"action": "stop_dataarts_job", "job_name": "x", "workspace": "bad space"})
    assert info.value.details[0]["message"] == "expected a DataArts workspace id: 1 to 64 letters, digits, '_' or '-'"
    with pytest.raises(InvalidCommand) as info:
        parse_command({"action": "stop_build", "job_id": "0a1b2c"})
    assert "the 32 letters/digits at the end of the task's edit URL" in info.value.details[0]["message"]


def test_every_bad_field_is_reported_at_once() -> None:
    """Two bad fields are both listed, so a sender fixes everything in one round."""
    with pytest.raises(InvalidCommand) as info:
        parse_command({"action": "stop_build", "job_id": "short", "build_no": 0})
    assert {d["field"] for d in info.value.details} == {"job_id", "build_no"}


def test_per_action_target_rejects_mismatched_action() -> None:
    """A per-action target accepts a matching action and rejects a different one, naming `action`."""
    assert isinstance(parse_command({"job_id": JOB}, action="delete_build_task"), DeleteBuildTask)
    assert isinstance(parse_command({"action": "delete_build_task", "job_id": JOB}, action="delete_build_task"),
                      DeleteBuildTask)
    with pytest.raises(InvalidCommand) as info:
        parse_command({"action": "stop_build", "job_id": JOB, "build_no": 1}, action="delete_build_task")
    assert info.value.details[0]["field"] == "action"


def test_non_object_command() -> None:
    with pytest.raises(InvalidCommand):
        parse_command([1, 2], action="stop_build")


def test_fingerprint_ignores_idempotency_key_but_not_fields() -> None:
    """The claim hash covers the normalized command: "20" and 20 match, another build does not."""
    a = parse_command({"action": "stop_build", "job_id": JOB, "build_no": "20", "idempotency_key": "k1"})
    b = parse_command({"action": "stop_build", "job_id": JOB, "build_no": 20})
    c = parse_command({"action": "stop_build", "job_id": JOB, "build_no": 21})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_dataarts_optional_fields() -> None:
    cmd = parse_command({"action": "stop_dataarts_job", "job_name": "daily etl", "workspace": "ws-1"})
    assert isinstance(cmd, StopDataArtsJob) and cmd.project_id is None and cmd.target() == {
        "job_name": "daily etl", "workspace": "ws-1"}
