"""Fault rules: latency, 429 with Retry-After, 5xx (or any coded error), dropped connections, and
``respond`` -- any status with any body (the cloud's odd shapes: 200 with an error code, an empty body,
a JSON string holding JSON), so tests can pin each of the client's readings over real HTTP, and
``dribble`` -- the real answer, its headers at once and then its body one byte every ``delay_ms``: each
read is quick, so only an overall deadline per request stops a client from waiting for it; and
``dribble_head`` -- the status line and headers too arrive one byte every ``delay_ms``, so not even the
first line of the answer comes in one read.

Each rule matches request paths by regex and fires on every request (neither ``rate`` nor ``count``),
on the first ``count`` matches, or with probability ``rate`` drawn from its own ``random.Random(seed)``
so runs repeat exactly.
"""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["latency", "throttle", "error", "drop", "hold", "respond", "dribble", "dribble_head"]
KINDS = ("latency", "throttle", "error", "drop", "hold", "respond", "dribble", "dribble_head")
_UNSET = object()


@dataclass
class FaultRule:
    path: str
    kind: FaultKind
    rate: float | None = None
    count: int | None = None
    status: int = 503
    retry_after: float | None = 1
    delay_ms: int | None = None
    """latency/hold: how late the answer comes (default 2000); dribble, dribble_head: the pause before each byte
    (default 2000); error/throttle/respond: how long before the coded answer (default none)."""
    error_code: str | None = None
    error_msg: str | None = None
    seed: int | None = None
    body: Any = _UNSET
    """``respond``: the JSON value to answer with (a string is sent as a JSON string, which is how the
    cloud sometimes wraps an error object)."""
    raw: str | None = None
    """``respond``: the exact body text instead (``""`` = an empty body)."""
    fired: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"path: not a regular expression ({exc})") from None
        self._random = random.Random(self.seed)

    @classmethod
    def from_json(cls, data: object) -> FaultRule:
        """A rule from the control API's JSON; raises ValueError naming each bad field."""
        from stopline.emulator.control_schema import checked_fault

        return cls(**checked_fault(data))

    @property
    def delay_s(self) -> float:
        if self.delay_ms is not None:
            return self.delay_ms / 1000
        return 2.0 if self.kind in ("latency", "hold", "dribble", "dribble_head") else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "rate": self.rate, "count": self.count,
                "status": self.status, "retry_after": self.retry_after, "delay_ms": self.delay_ms,
                "error_code": self.error_code, "seed": self.seed, "fired": self.fired,
                **({"body": self.body} if self.body is not _UNSET else {}),
                **({"raw": self.raw} if self.raw is not None else {})}

    def payload(self) -> bytes | None:
        """The canned body of a ``respond`` rule; None when the rule gives none."""
        if self.raw is not None:
            return self.raw.encode()
        if self.body is not _UNSET:
            return json.dumps(self.body).encode()
        return None

    def fires(self, path: str) -> bool:
        if not self._pattern.search(path):
            return False
        if self.count is not None:
            if self.fired >= self.count:
                return False
        elif self.rate is not None and self._random.random() >= self.rate:
            return False
        self.fired += 1
        return True


class Faults:
    """An ordered set of rules; the first that fires decides."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []
        self.injected: dict[str, int] = {}

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.injected = {}

    def pick(self, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.fires(path):
                    self.injected[rule.kind] = self.injected.get(rule.kind, 0) + 1
                    return rule
            return None
