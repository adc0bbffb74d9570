"""One absolute deadline per delivery, the spine every part of handling a delivery works against.

A delivery's work must be over at the earliest of: the platform's end of the invocation (FunctionGraph
tells it), what the HTTP sender waits for an answer (``STOPLINE_SENDER_WAIT_S``), each less
:data:`ANSWER_MARGIN_S` to write the answer, and arrival + the longest a delivery may take at all (every
attempt timing out, every wait at the Retry-After cap, plus a margin). Batch members, rule commands and
resolved builds share it. The idempotency claim expires :data:`CLAIM_MARGIN_S` after it, fixed when
claimed; exchanges and retry waits are cut at it.

Two ends are kept, because they differ in kind. The platform's end and the overall bound are *hard*:
past them the process may be killed mid-call, so no attempt starts with less than one
``STOPLINE_TIMEOUT_S`` left of them. The sender's wait is *soft*: when it passes, stopline abandons the
exchange in flight (closing its connection), releases the claim and answers, so an attempt may start
inside it and be cut there. With the defaults (a 10 s timeout, a 10 s sender wait) that is what lets an
HTTP delivery make its first attempt at all.
"""

import time
from typing import NamedTuple

ANSWER_MARGIN_S = 0.5
"""Kept back from the platform's and the sender's ends to write the answer."""
CLAIM_MARGIN_S = 5.0
"""A claim outlives its delivery's deadline by this much: a process killed mid-call blocks its key that
long, and no longer."""


class Deadline(NamedTuple):
    """``at``: when the work is over (``time.monotonic()`` seconds); ``hard``: the end past which the
    process may not be there to finish an attempt (``hard >= at``)."""

    at: float
    hard: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        """A deadline ``seconds`` from now, hard and soft alike (tests, the library, the CLI)."""
        at = time.monotonic() + seconds
        return cls(at, at)

    @classmethod
    def of_delivery(cls, arrived: float, bound_s: float, *, platform_ends: float | None = None,
                    sender_wait_s: float | None = None) -> "Deadline":
        """The deadline of a delivery that arrived at ``arrived`` (``time.monotonic()`` seconds)."""
        hard = arrived + bound_s
        if platform_ends is not None:
            hard = min(hard, platform_ends - ANSWER_MARGIN_S)
        at = hard if sender_wait_s is None else min(hard, arrived + sender_wait_s - ANSWER_MARGIN_S)
        return cls(at, hard)

    def left(self) -> float:
        """Seconds until the work must be over (negative once past)."""
        return self.at - time.monotonic()

    def claim_expires_in(self) -> float:
        """The claim's time to live from now: it ends CLAIM_MARGIN_S after the deadline, however late the
        claim is made (a duplicate that waited for its twin keeps its own delivery's deadline)."""
        return max(0.05, self.at + CLAIM_MARGIN_S - time.monotonic())

    def room_for_attempt(self, timeout_s: float) -> float:
        """Seconds an attempt starting now may take: 0 when none may start (less than one timeout left
        before the hard end, or the deadline passed), else up to ``timeout_s`` cut at the deadline."""
        now = time.monotonic()
        if self.hard - now < timeout_s:
            return 0.0
        return max(0.0, min(timeout_s, self.at - now))
