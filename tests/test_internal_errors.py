"""A bug is answered as 500 ``internal`` and logged once with its traceback (issue 23)."""

from __future__ import annotations

from typing import Any

from stopline.deadline import Deadline
from stopline.idempotency.handler import Idempotency
from stopline.idempotency.memory import MemoryStore
from stopline.pipeline import Delivery, Pipeline
from stopline.settings import load_settings

from .conftest import LogCapture

JOB = "8888aaaa2222bbbb3333cccc4444dddd"


class BrokenDriver:
    """A driver with a bug in it."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, command: Any, *, deadline: Deadline | None = None) -> Any:
        self.calls += 1
        raise KeyError("a bug in the driver")


def test_an_unexpected_exception_is_500_internal_and_one_line_with_its_traceback(log_lines: LogCapture) -> None:
    driver = BrokenDriver()
    settings = load_settings(auth_token="unused-token")
    pipeline = Pipeline(settings, Idempotency(MemoryStore(), ttl_s=3600, wait_s=1),
                        client=lambda: driver)  # type: ignore[arg-type,return-value]
    command = {"action": "stop_build", "job_id": JOB, "build_no": 1}
    result = pipeline.handle(command, Delivery("bug-1", "test"))
    assert result.status == 500 and result.error is not None and result.error.type == "internal"
    assert result.to_json()["error"]["message"] == "internal error; see the logs"
    traced = [r for r in log_lines.records if "exc_info" in r]
    assert len(traced) == 1 and traced[0]["level"] == "ERROR"
    trace = str(traced[0]["exc_info"])
    assert trace.startswith("Traceback") and "KeyError: 'a bug in the driver'" in trace
    assert "\n" not in log_lines.lines[-1]  # still one JSON line
    # the claim was released: the same delivery runs again rather than waiting out a lease
    pipeline.handle(command, Delivery("bug-1", "test"))
    assert driver.calls == 2
