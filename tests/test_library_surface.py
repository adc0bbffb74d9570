"""The library surface: what ``import stopline`` offers, pinned, and the Client's promises about it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stopline
from stopline.emulator import mock_huaweicloud
from stopline.emulator.seeds import DEMO_JOB_ID

PUBLIC = ["Client", "ConfigurationError", "Conflict", "Forbidden", "InProgress", "InvalidCommand", "NotFound",
          "Outcome", "RequestError", "Result", "Settings", "StoplineError", "Transient", "UpstreamAuth",
          "UpstreamError", "UpstreamMisconfigured", "UpstreamRejected", "UpstreamUnexpected"]


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert stopline.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(stopline, name).__name__ == name
    assert issubclass(stopline.Transient, stopline.StoplineError)
    assert {n for n in dir(stopline) if not n.startswith("_")} == set(PUBLIC)


def test_importing_stopline_loads_nothing_heavy() -> None:
    probe = "import sys, stopline; print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'httpx')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_every_client_method_returns_a_result_and_everything_needs_all_running() -> None:
    with mock_huaweicloud("demo") as cloud, stopline.Client.from_env() as client:
        refused = client.stop_build(DEMO_JOB_ID)  # no number, no filter: it would stop every running build
        assert isinstance(refused, stopline.Result) and refused.status == 422 and cloud.calls == []
        assert refused.error is not None and refused.error.details[0]["field"] == "build_no"
        everything = client.stop_build(DEMO_JOB_ID, all_running=True)
        assert isinstance(everything, stopline.Result) and everything.outcome is stopline.Outcome.STOPPED
        assert everything.resolved is not None and [b["build_no"] for b in everything.resolved[1]] == [20, 21, 22,
                                                                                                        23, 24]
        for result in (client.delete_build_task(DEMO_JOB_ID), client.stop_dataarts_job("nope"),
                       client.stop_pipeline_run("0" * 32, "1" * 32)):
            assert isinstance(result, stopline.Result)  # a cloud answer, success or not, is never raised


def test_a_client_built_without_arguments_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stopline.Client()` is `Client.from_env()`: the functions' variables, and a bad one named."""
    with mock_huaweicloud("demo") as cloud, stopline.Client() as client:
        assert client.stop_build(DEMO_JOB_ID, 20).outcome == stopline.Outcome.STOPPED
        assert [c["path"] for c in cloud.calls] == ["/v3/jobs/stop"]
    monkeypatch.setenv("STOPLINE_TIMEOUT_S", "-1")
    with pytest.raises(stopline.ConfigurationError, match="STOPLINE_TIMEOUT_S"):
        stopline.Client()
