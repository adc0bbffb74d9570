"""The emulator's own check of ``SDK-HMAC-SHA256`` signatures, as the API gateway does it on receipt.

Written from the gateway's side, separately from stopline's signer (``stopline.auth.signer``), so that a
bug in the client's signer cannot pass the client's own fake: this module rebuilds the canonical request
from what arrived on the wire -- the path as sent, the query as received, the headers the
``Authorization`` header names -- and compares HMACs in constant time. Both are checked against the
official SDK in the tests (tests/auth/test_signer.py for the signer, tests/test_emulator.py for this).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]+)$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def parse(authorization: str) -> tuple[str, list[str], str] | None:
    """(access key, signed header names, signature) of an ``Authorization`` header; None if it is not ours."""
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        return None
    return match["ak"], match["headers"].split(";"), match["sig"]


def _encode(text: str) -> str:
    """RFC 3986 percent-encoding with only the unreserved characters left alone."""
    return quote(text, safe="-_.~")


def _canonical_path(path: str) -> str:
    segments = [_encode(unquote(segment)) for segment in path.split("/")]
    joined = "/".join(segments)
    return joined if joined.endswith("/") else joined + "/"


def _canonical_query(query: list[tuple[str, str]]) -> str:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query))


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    if not body:
        return _EMPTY_SHA256
    declared = headers.get("x-sdk-content-sha256")
    return declared if declared else hashlib.sha256(body).hexdigest()


def verify(*, secret_key: str, method: str, path: str, query: list[tuple[str, str]], headers: Mapping[str, str],
           body: bytes) -> bool:
    """Whether the request's ``Authorization`` signature is the one ``secret_key`` makes of what arrived.

    ``headers`` are the received headers with lower-case names; every header the signature names must be
    among them (a missing one fails), and ``host`` and ``x-sdk-date`` must be signed."""
    parsed = parse(headers.get("authorization", ""))
    if parsed is None:
        return False
    _, names, offered = parsed
    if "host" not in names or "x-sdk-date" not in names or any(n not in headers for n in names):
        return False
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    canonical = "\n".join([method.upper(), _canonical_path(path), _canonical_query(query), canonical_headers,
                           ";".join(names), _payload_hash(headers, body)])
    string_to_sign = f"{ALGORITHM}\n{headers['x-sdk-date']}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, offered)
