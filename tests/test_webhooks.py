"""The Standard Webhooks verifier against signatures made by the independent `standardwebhooks` library,
and one test per way a request can fail verification."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from stopline import webhooks
from stopline.errors import Unauthorized

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEY = webhooks.secret_key(SECRET)
BODY = b'{"action":"stop_build","job_id":"f9d6c8466d614a9788e9a0acf6c15f46","build_no":20}'


def peer_headers(msg_id: str = "msg_1", at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = int(time.time()) if at is None else at
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), BODY.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_peer_signature_verifies_and_returns_the_id() -> None:
    assert webhooks.verify([KEY], peer_headers("msg_peer"), BODY, tolerance_s=300) == "msg_peer"


def test_our_signature_verifies_with_the_peer() -> None:
    headers = webhooks.sign(SECRET, "msg_ours", BODY)
    Webhook(SECRET).verify(BODY.decode(), headers)  # raises on mismatch


def test_rotation_any_configured_secret_and_any_listed_signature() -> None:
    other = "whsec_" + base64.b64encode(b"another-key-another-key-another!").decode()
    headers = peer_headers(secret=other)
    assert webhooks.verify([KEY, webhooks.secret_key(other)], headers, BODY, tolerance_s=300)
    headers["webhook-signature"] = "v1a,ignored v1,AAAA " + headers["webhook-signature"]
    assert webhooks.verify([webhooks.secret_key(other)], headers, BODY, tolerance_s=300)


def test_plain_secret_uses_its_utf8_bytes() -> None:
    headers = webhooks.sign("plain-secret-value-x", "m", BODY)
    assert webhooks.verify([b"plain-secret-value-x"], headers, BODY, tolerance_s=300) == "m"


@pytest.mark.parametrize(("change", "reason"), [
    (lambda h, b: (h, b + b" "), "no matching"),
    (lambda h, b: ({**h, "webhook-id": "other"}, b), "no matching"),
    (lambda h, b: (peer_headers(secret="whsec_" + base64.b64encode(b"wrong-wrong-wrong-wrong-wrong-32").decode()),
                   b), "no matching"),
    (lambda h, b: (peer_headers(at=int(time.time()) - 310), b), "too old"),
    (lambda h, b: (peer_headers(at=int(time.time()) + 310), b), "future"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b), "missing"),
    (lambda h, b: ({**h, "webhook-timestamp": "yesterday"}, b), "unix time"),
    (lambda h, b: ({**h, "webhook-signature": "v1,not-base64!!"}, b), "no matching"),
])
def test_each_failure_is_a_401_with_a_reason(change: object, reason: str) -> None:
    headers, body = change(peer_headers(), BODY)  # type: ignore[operator]
    with pytest.raises(Unauthorized) as info:
        webhooks.verify([KEY], headers, body, tolerance_s=300)
    assert info.value.status == 401 and reason in info.value.message
    assert SECRET not in repr(info.value) and headers.get("webhook-signature", "x") not in info.value.message


def test_bad_whsec_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        webhooks.secret_key("whsec_***")
