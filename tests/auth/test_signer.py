"""The hand-written SDK-HMAC-SHA256 signer equals the official SDK's: published vectors, then random
requests signed by both (huaweicloudsdkcore is a dev dependency only)."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

from stopline.auth import signer

AK = "HPUAEXAMPLEAK0000001"
SK = "exampleSecretKey0000000000000000000000sk"
DATE = "20240102T030405Z"
PROJECT = "b384b9e9ab9b4ee8994c8633aabc9505"
WS = "0833a5737480d53b2f25c010dc1a7b88"
TOKEN = "gQpjbi1ub3J0aC00EXAMPLETOKEN"
CB = "cloudbuild-ext.cn-north-4.myhuaweicloud.com"
DLF = "dayu-dlf.cn-north-4.myhuaweicloud.com"

# (method, host, path, query, extra headers, body, security token, expected SignedHeaders, expected signature)
VECTORS: dict[str, tuple[Any, ...]] = {
    "a": ("POST", CB, "/v3/jobs/stop", [], {}, b'{"job_id":"f9d6c8466d614a9788e9a0acf6c15f46","build_no":"20"}',
          None, "content-type;host;x-project-id;x-sdk-date",
          "1a8a1bb84f647ccfe61b5b2ea384d3b8786c8697e396239b593d9ae4edf8504f"),
    "b": ("POST", CB, "/v3/jobs/cb5fa20de5fd4cf8be681d4bd6fdd2f6/delete", [], {}, b"", None,
          "content-type;host;x-project-id;x-sdk-date",
          "4f9e317878085f24119e3a3e53bf03bf9277ea8fd970f36d04e95aa584413dfc"),
    "c": ("POST", DLF, f"/v1/{PROJECT}/jobs/myJob/stop", [], {"workspace": WS}, b"", None,
          "content-type;host;workspace;x-project-id;x-sdk-date",
          "1950b53abac597b33895375d182054bea72e940bd517626825be63f181df5b08"),
    "d": ("POST", CB, "/v1/job/f9d6c8466d614a9788e9a0acf6c15f46/stop", [("build_no", "20")], {}, b"", TOKEN,
          "content-type;host;x-project-id;x-sdk-date;x-security-token",
          "49e0c39d97a761565b256d2aba89cb74216ad20943978e0c6a5ccc8222995e07"),
    "e": ("GET", DLF, f"/v1/{PROJECT}/jobs/instances/detail",
          [("status", "running"), ("jobName", "daily etl"), ("limit", "10"), ("offset", "0")], {"workspace": WS},
          b"", TOKEN, "content-type;host;workspace;x-project-id;x-sdk-date;x-security-token",
          "a377d80de5e5372e7712dbb551208b89859b1b223dc93c862e8e9d4bfddbb9cd"),
    "f": ("POST", CB, "/v3/jobs/stop", [], {"Content-Type": "text/plain"}, b"hello", None,
          "content-type;host;x-project-id;x-sdk-content-sha256;x-sdk-date",
          "79bf67d5c10f4f220efff80da578483ea4f12f54a3c60ffc2ae14a80b1a26532"),
    "g": ("POST", "127.0.0.1:8765", f"/v1/{PROJECT}/jobs/daily%20etl/stop", [], {}, b"", None,
          "content-type;host;x-project-id;x-sdk-date",
          "aa22130a2a4d23ab7391dd43686a086f7990ef51779689c015552a537ca2e600"),
}


def _ours(method: str, host: str, path: str, query: list[tuple[str, str]], extra: dict[str, str], body: bytes,
          token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **extra, "X-Sdk-Date": DATE, "X-Project-Id": PROJECT}
    if token:
        headers["X-Security-Token"] = token
    return signer.sign(access_key=AK, secret_key=SK, method=method, host=host, path=path, query=query,
                       headers=headers, body=body)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_published_vectors(name: str) -> None:
    """Each vector, computed with huaweicloudsdkcore 3.1.219, gives the published Authorization header."""
    method, host, path, query, extra, body, token, signed, sig = VECTORS[name]
    headers = _ours(method, host, path, query, extra, body, token)
    assert headers["Authorization"] == (
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={signed}, Signature={sig}")


def test_vector_e_query_is_sent_sorted() -> None:
    assert signer.canonical_query([("status", "running"), ("jobName", "daily etl"), ("limit", "10"),
                                   ("offset", "0")]) == "jobName=daily%20etl&limit=10&offset=0&status=running"


def _sdk(method: str, host: str, path: str, query: list[tuple[str, str]], extra: dict[str, str], body: bytes,
         token: str | None) -> str:
    request = SdkRequest(method=method, schema="https", host=host, resource_path=path, query_params=list(query),
                         header_params={"Content-Type": "application/json", **extra, "X-Sdk-Date": DATE},
                         body=body)
    credentials = BasicCredentials(AK, SK, PROJECT)
    if token:
        credentials = credentials.with_security_token(token)
    signed = credentials.sign_request(request)
    return str(signed.header_params["Authorization"])


def _word(rng: random.Random, alphabet: str, low: int = 1, high: int = 12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def test_random_requests_match_the_official_sdk() -> None:
    """500 random requests (paths with spaces and symbols, queries, headers, bodies) sign identically."""
    rng = random.Random(20261123)
    safe = string.ascii_letters + string.digits + "-_.~"
    odd = safe + " !$'()*+,;=@:é中"
    for _ in range(500):
        method = rng.choice(["GET", "POST", "DELETE", "PUT"])
        segments = [_word(rng, rng.choice([safe, odd])) for _ in range(rng.randint(1, 4))]
        path = "/" + "/".join(segments)
        from urllib.parse import quote

        wire_path = "/".join(quote(s, safe="") for s in path.split("/"))
        query = [(_word(rng, safe, 1, 6), _word(rng, odd, 0, 8)) for _ in range(rng.randint(0, 3))]
        extra = {}
        if rng.random() < 0.5:
            extra["workspace"] = _word(rng, safe, 4, 32)
        if rng.random() < 0.3:
            extra["User-Agent"] = "stopline/" + _word(rng, safe)
        body = rng.choice([b"", b"{}", ('{"k":"' + _word(rng, odd) + '"}').encode()])
        token = rng.choice([None, _word(rng, safe, 20, 40)])
        host = rng.choice([CB, DLF, f"127.0.0.1:{rng.randint(1024, 65535)}"])
        ours = _ours(method, host, wire_path, query, extra, body, token)["Authorization"]
        assert ours == _sdk(method, host, wire_path, query, extra, body, token), (method, wire_path, query)


def test_verify_accepts_own_signature_and_rejects_tampering() -> None:
    headers = _ours("POST", CB, "/v3/jobs/stop", [], {}, b'{"a":1}', None)
    lower = {k.lower(): v for k, v in headers.items()}
    assert signer.verify(secret_key=SK, method="POST", path="/v3/jobs/stop", query=[], headers=lower,
                         body=b'{"a":1}')
    assert not signer.verify(secret_key=SK, method="POST", path="/v3/jobs/stop", query=[], headers=lower,
                             body=b'{"a":2}')
    assert not signer.verify(secret_key="wrong", method="POST", path="/v3/jobs/stop", query=[], headers=lower,
                             body=b'{"a":1}')
