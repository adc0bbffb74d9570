"""What goes over the wire, as plain values: a planned call, a raw reply, cloud error bodies.

No I/O here; both the client drivers and (separately written) the emulator's HTTP layer read
these shapes.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from stopline.auth.signer import canonical_query
from stopline.errors import UpstreamInfo


@lru_cache(maxsize=16)
def _split_base(base_url: str) -> tuple[str, str, str]:
    """(scheme, authority, path prefix) of an endpoint; the few endpoints a process uses are cached."""
    parts = urlsplit(base_url)
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


class Call(NamedTuple):
    """One HTTP request to the cloud, before authentication headers are added."""

    method: str
    scheme: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes
    api: str = ""

    def __repr__(self) -> str:
        # Headers and body are left out: once authorised they hold a token or a signature.
        return (f"Call(method={self.method!r}, scheme={self.scheme!r}, host={self.host!r}, path={self.path!r}, "
                f"query={self.query!r}, api={self.api!r})")

    @classmethod
    def build(
        cls,
        method: str,
        base_url: str,
        path: str,
        *,
        api: str,
        query: tuple[tuple[str, str], ...] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> "Call":
        scheme, netloc, prefix = _split_base(base_url)
        return cls(method, scheme, netloc, prefix + path, query, headers or {}, body, api)

    @property
    def url(self) -> str:
        query = canonical_query(self.query)
        return f"{self.scheme}://{self.host}{self.path}" + (f"?{query}" if query else "")


NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class RawReply(NamedTuple):
    """A cloud answer: status, headers (looked up by lower-case name) and body bytes."""

    status: int
    headers: Mapping[str, str] = NO_HEADERS
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def upstream(self) -> UpstreamInfo:
        """What a refusal said, for an error's ``upstream``: the status, the cloud's error code and message
        (wherever the service puts them), and the request id."""
        code, msg = parse_error_body(self.body)
        return UpstreamInfo(self.status, code, msg, self.header("x-request-id"))


def _find_code(node: Any, depth: int = 0) -> tuple[str | None, str | None]:
    if isinstance(node, str) and depth <= 3 and node.lstrip().startswith(("{", '"')):
        # CodeArts sometimes sends the error object as a JSON string holding JSON (docs/cloud-answers.md)
        try:
            return _find_code(json.loads(node), depth + 1)
        except (ValueError, RecursionError):
            return None, None
    if not isinstance(node, dict) or depth > 3:
        return None, None
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
        if code_key in node or msg_key in node:
            code, msg = node.get(code_key), node.get(msg_key)
            return (str(code) if code not in (None, "") else None), (str(msg) if msg not in (None, "") else None)
    for value in node.values():
        code, msg = _find_code(value, depth + 1)
        if code is not None or msg is not None:
            return code, msg
    return None, None


def decode_body(body: bytes) -> Any:
    """The JSON value of a cloud body (a JSON string holding JSON is unwrapped once); None when not JSON."""
    if not body:
        return None
    try:
        data = json.loads(body)
        if isinstance(data, str) and data.lstrip().startswith(("{", "[")):
            data = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return data


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """(error_code, error_msg) from any of the cloud's error shapes (docs/cloud-answers.md):
    ``error_code``/``errorCode``/``code`` with their messages, a nested ``error`` object, or a JSON string
    holding one of these. A body that is not JSON yields its text as the message."""
    if not body:
        return None, None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        text = body[:300].decode("utf-8", "replace").strip()
        return None, text or None
    return _find_code(data)


def success_error_code(data: Any) -> tuple[str | None, str | None]:
    """The error a 2xx body carries (CodeArts answers ``200`` with ``error_code`` at times), else (None, None).

    Only the unambiguous keys count here -- ``error_code``/``errorCode`` at the top or inside ``error`` --
    since ``code``/``message`` is also how some success envelopes look."""
    if isinstance(data, dict):
        for node in (data, data.get("error")):
            if isinstance(node, dict):
                for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
                    code = node.get(code_key)
                    if code_key == "code" and node is data:
                        continue
                    if code not in (None, "", 0, "0"):
                        msg = node.get(msg_key)
                        return str(code), (str(msg) if msg not in (None, "") else None)
    return None, None


RETRY_AFTER_CAP_S = 30.0
"""The longest Retry-After stopline honours between two attempts."""


def parse_retry_after(value: str | None, *, cap: float = RETRY_AFTER_CAP_S) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, cap))


def epoch_ms(value: Any) -> int | None:
    """A record's start time in epoch milliseconds: the cloud documents integers (milliseconds by the look
    of them); seconds, digit strings and ``yyyy-MM-dd HH:mm:ss`` (UTC) strings are tolerated. None when
    there is none."""
    if isinstance(value, bool) or value in (None, "", 0):
        return None
    if isinstance(value, int | float):
        return int(value if value > 10**11 else value * 1000)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return epoch_ms(int(text))
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            return None
        return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)
    return None
