"""What the emulator's HTTP layer reads and answers, as plain values, and the cloud's error body shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EmuRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class EmuReply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0
    drop: bool = False
    dribble_s: float = 0.0
    """Send the headers now and then the body one byte per ``dribble_s`` (the ``dribble`` fault)."""
    dribble_head: bool = False
    """With ``dribble_s``: the status line and headers trickle out too (the ``dribble_head`` fault)."""


def json_reply(status: int, data: Any, **headers: str) -> EmuReply:
    return EmuReply(status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode())


def cloud_error(status: int, code: str, msg: str, **headers: str) -> EmuReply:
    return json_reply(status, {"error_code": code, "error_msg": msg}, **headers)


def gateway_error(status: int, code: str, msg: str, request_id: str, **headers: str) -> EmuReply:
    return json_reply(status, {"error_code": code, "error_msg": msg, "request_id": request_id}, **headers)
