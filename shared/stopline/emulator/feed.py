"""The dev dashboard's feed of deliveries: what stopline's functions did with each event, as their log
lines say, kept beside the fake cloud so one page shows both.

Not cloud state: nothing the emulator answers depends on it. ``stopline dev`` relays each target's JSON
log lines here as they are written (the targets' stderr passes through it); anything else can POST a
log line to ``/_emulator/deliveries``. Only the last :data:`KEEP` are kept.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

KEEP = 200
FIELDS = ("action", "target", "outcome", "reason", "verified", "verify_calls", "event_id", "trigger", "attempts",
          "duration_ms", "retry_at", "error_type", "upstream_error_code", "message", "level", "sender_delivery_id",
          "duplicate_of")


class Deliveries:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[dict[str, Any]] = deque(maxlen=KEEP)

    def record(self, function: str, line: dict[str, Any]) -> bool:
        """Keep one log line of ``function`` if it reports a command's outcome; whether it did."""
        if not isinstance(line.get("outcome"), str):
            return False
        item = {k: line[k] for k in FIELDS if line.get(k) is not None}
        item.update(function=function, time=time.time())
        with self._lock:
            self._items.append(item)
        return True

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
