"""What the idempotency tests share: a command that counts its runs, and running it through
:class:`Idempotency` with a claim of a given length."""

from __future__ import annotations

import threading
import time
from typing import Any

from stopline.deadline import CLAIM_MARGIN_S, Deadline
from stopline.errors import Transient
from stopline.idempotency.handler import Idempotency
from stopline.models import Outcome, Result


# -- the protocol ----------------------------------------------------------------------------------------
class Calls:
    """The command being made exactly once: counts its runs, keeps the deadlines it ran with, can be
    slowed, can fail transiently."""

    def __init__(self, *, sleep_s: float = 0.0, outcome: str = "stopped") -> None:
        self.runs = 0
        self.deadlines: list[Deadline] = []
        self.sleep_s = sleep_s
        self.outcome = outcome
        self.lock = threading.Lock()

    def __call__(self, deadline: Deadline) -> Result:
        with self.lock:
            self.runs += 1
            self.deadlines.append(deadline)
        time.sleep(self.sleep_s)
        if self.outcome == "transient":
            return Result("stop_build", Outcome.FAILED, error=Transient("the cloud is down"))
        return Result("stop_build", Outcome(self.outcome))


def summary(result: Result) -> dict[str, Any]:
    """What these tests compare: the outcome ("transient" for a transient failure) and a duplicate's first."""
    outcome = "transient" if result.error is not None and result.error.transient else str(result.outcome)
    return {"outcome": outcome, "first": result.first_outcome} if result.replayed else {"outcome": outcome}


def run(idem: Idempotency, call: Any, *, key: str = "k", fingerprint: str = "h", lease_s: float = 10) -> Any:
    """Run with a claim that expires ``lease_s`` from now (the deadline is 5 s before that)."""
    return summary(idem.run(key, fingerprint, Deadline.after(lease_s - CLAIM_MARGIN_S), call))
