"""JSON-lines logging on stderr (docs/operations.md), with secrets scrubbed as a last line of defence.

stopline never passes a secret to a logger; :func:`register_secret` still lets the runtime name its
secrets so that any value that slips into a message or field is replaced by ``***`` before writing.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "stopline"
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_secrets: tuple[str, ...] = ()
"""Every form to scrub; replaced whole (never mutated) so a formatter on another thread iterates a
snapshot. Configured secrets stay for the process; temporary ones (agency keys, which rotate every few
minutes) are kept only while they are among the newest MAX_TEMPORARY."""
_configured_secrets: dict[str, None] = {}
_temporary: dict[str, None] = {}
MAX_TEMPORARY = 32
_lock = threading.Lock()
_configured = False


def _forms(value: str) -> list[str]:
    """The value and its JSON-escaped form (a quote, backslash or control character changes it)."""
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    return [value] if escaped == value else [value, escaped]


def register_secret(*values: str | None, temporary: bool = False) -> None:
    """Never write these values (SK, passwords, tokens, webhook secrets) in any log line."""
    global _secrets
    with _lock:
        target = _temporary if temporary else _configured_secrets
        fresh = False
        for value in values:
            if value and len(value) >= 4:
                fresh = fresh or value not in target
                target.pop(value, None)
                target[value] = None  # newest last: eviction drops the oldest temporary one
        if not fresh:  # the same agency keys on every invocation: nothing to rebuild
            return
        while len(_temporary) > MAX_TEMPORARY:
            _temporary.pop(next(iter(_temporary)))
        # longest first, so a secret that contains another is replaced whole
        _secrets = tuple(sorted({f for v in (*_configured_secrets, *_temporary) for f in _forms(v)},
                                key=len, reverse=True))


def scrub(text: str) -> str:
    for secret in _secrets:  # a snapshot: registration replaces the tuple, never changes it
        if secret in text:
            text = text.replace(secret, "***")
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, logger, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            # the whole traceback, as one JSON string: the line stays one line, and "see the logs" finds it
            entry["exc_info"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str, ensure_ascii=False))


def ensure_configured() -> None:
    """Before the runtime (and its settings) exist -- a request refused on its method or size -- the line
    is still JSON: the handler is attached at ``STOPLINE_LOG_LEVEL`` (or INFO), once."""
    if _configured:
        return
    import os

    level = os.environ.get("STOPLINE_LOG_LEVEL", "INFO").strip().upper()
    configure(level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO")


def configure(level: str = "INFO") -> logging.Logger:
    """Attach the JSON handler to the ``stopline`` logger once; later calls only change the level."""
    global _configured
    logger = logging.getLogger(LOGGER_NAME)
    with _lock:
        if not _configured:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
            logger.addHandler(handler)
            logger.propagate = False
            _configured = True
    logger.setLevel(level)
    return logger
