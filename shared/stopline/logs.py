"""JSON-lines logging on stderr (interface.md section 6), with secrets scrubbed as a last line of defence.

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
_secrets: set[str] = set()
_lock = threading.Lock()
_configured = False


def register_secret(*values: str | None) -> None:
    """Never write these values (SK, passwords, tokens, webhook secrets) in any log line."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def scrub(text: str) -> str:
    for secret in _secrets:
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
        return scrub(json.dumps(entry, default=str, ensure_ascii=False))


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
