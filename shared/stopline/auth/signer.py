"""SDK-HMAC-SHA256 request signing, as huaweicloudsdkcore 3.1.219 (the official SDK) does it.

Written by hand, standard library only, so the function path does not pay for the official SDK at
cold start. Pure functions, no I/O: the client signs with :func:`sign`; the emulator checks with
:func:`verify`. Because both sides share the canonicalization, it is pinned independently by the
published test vectors and by comparing against the SDK's own signer on random requests
(tests/auth/test_signer.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Decode, re-encode each segment with only unreserved characters kept, and end with '/'."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Pairs sorted by key then value, both percent-encoded; this is also the query string to send."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query))


def payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    if not body:
        return EMPTY_SHA256
    for name, value in headers.items():
        if name.lower() == "x-sdk-content-sha256":
            return value
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
    signed_headers: list[str], body: bytes,
) -> str:
    lower = {name.lower(): value for name, value in headers.items()}
    header_block = "".join(f"{name}:{lower[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_block,
            ";".join(signed_headers),
            payload_hash(headers, body),
        )
    )


def string_to_sign(canonical: str, date: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _get(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def sign(
    *,
    access_key: str,
    secret_key: str,
    method: str,
    host: str,
    path: str,
    query: Iterable[tuple[str, str]] = (),
    headers: Mapping[str, str],
    body: bytes = b"",
    now: datetime | None = None,
) -> dict[str, str]:
    """Return ``headers`` plus what signing adds: X-Sdk-Date, Host, Authorization (and UNSIGNED-PAYLOAD).

    Args:
        host: the URL authority as it goes on the wire (with a non-default port, e.g. ``127.0.0.1:8790``).
        headers: every header that will be sent and signed (X-Project-Id, X-Security-Token included).
    """
    out = dict(headers)
    content_type = _get(out, "content-type")
    if content_type is not None and not content_type.startswith(("application/json", "application/bson")):
        out["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD
    date = _get(out, "x-sdk-date")
    if date is None:
        date = (now or datetime.now(UTC)).strftime(DATE_FORMAT)
        out["X-Sdk-Date"] = date
    if _get(out, "host") is None:
        out["Host"] = host
    signed = sorted(name.lower() for name in out if "_" not in name)
    query = list(query)
    canonical = canonical_request(method, path, query, out, signed, body)
    sig = signature(secret_key, string_to_sign(canonical, date))
    out["Authorization"] = f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    return out


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """Split an Authorization header into (access key, signed header names, signature), or None."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1 :].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        return None


def verify(
    *,
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> bool:
    """Check a received request's Authorization header against ``secret_key`` in constant time."""
    parsed = parse_authorization(_get(headers, "authorization") or "")
    date = _get(headers, "x-sdk-date")
    if parsed is None or date is None:
        return False
    _, signed, received = parsed
    lower = {k.lower(): v for k, v in headers.items()}
    if any(name not in lower for name in signed):
        return False
    canonical = canonical_request(method, path, query, headers, signed, body)
    expected = signature(secret_key, string_to_sign(canonical, date))
    return hmac.compare_digest(expected, received)
