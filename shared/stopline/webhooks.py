"""Standard Webhooks signing and verification (docs/sources.md), standard library only.

``sign`` and ``verify`` share :func:`_signature`, so the ``stopline send`` side cannot drift from the
receiving side. Verification runs over the raw body before it is parsed, accepts any of several
secrets (rotation) and any of several ``v1,`` entries, compares in constant time, and reports a short
reason that never includes a key or signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from stopline.errors import Unauthorized

MIN_KEY_BYTES = 16
"""Shorter keys are refused (docs/sources.md): an empty ``whsec_`` would verify signatures
anyone can make. The spec recommends 24 to 64 bytes."""


def secret_key(secret: str) -> bytes:
    """``whsec_<base64>`` secrets use the decoded bytes; any other secret its UTF-8 bytes.

    Raises:
        ValueError: not base64 after ``whsec_``, or a key under 16 bytes (the message never shows it).
    """
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    else:
        key = secret.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the key is {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                         "(stopline secret new makes one)")
    return key


def secret_keys(secrets: Iterable[str], variable: str) -> tuple[bytes, ...]:
    """Every key of a comma-separated secrets variable; ValueError names the variable and the position."""
    keys = []
    for position, secret in enumerate(secrets, start=1):
        try:
            keys.append(secret_key(secret))
        except ValueError as exc:
            raise ValueError(f"{variable}: secret {position}: {exc}") from None
    return tuple(keys)


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def sign(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers for sending ``body`` signed with ``secret``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + _signature(secret_key(secret), msg_id, ts, body),
    }


def verify(keys: Iterable[bytes], headers: Mapping[str, str], body: bytes, *, tolerance_s: int,
           now: float | None = None) -> str:
    """Check the signature headers against ``body``; return the webhook-id or raise Unauthorized."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    missing = [name for name, value in (("webhook-id", msg_id), ("webhook-timestamp", timestamp),
                                        ("webhook-signature", signatures)) if not value]
    if missing:
        raise Unauthorized("missing signature headers: " + ", ".join(missing),
                           details=[{"field": name, "message": "required"} for name in missing])
    assert msg_id is not None and timestamp is not None and signatures is not None
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthorized("webhook-timestamp is not a unix time in seconds",
                           details=[{"field": "webhook-timestamp", "message": "not an integer"}]) from None
    current = time.time() if now is None else now
    if sent_at < current - tolerance_s:
        raise Unauthorized("webhook-timestamp is too old",
                           details=[{"field": "webhook-timestamp", "message": f"older than {tolerance_s} s"}])
    if sent_at > current + tolerance_s:
        raise Unauthorized("webhook-timestamp is in the future",
                           details=[{"field": "webhook-timestamp", "message": f"ahead by over {tolerance_s} s"}])
    offered = [entry.partition(",")[2] for entry in signatures.split() if entry.startswith("v1,")]
    matched = False
    for key in keys:
        expected = _signature(key, msg_id, timestamp, body)
        for candidate in offered:
            # no early exit on a match: every comparison is constant-time and all of them run
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise Unauthorized("no matching webhook signature",
                           details=[{"field": "webhook-signature", "message": "no v1 entry matches"}])
    return msg_id
