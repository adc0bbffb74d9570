"""Function targets used as benchmark peers (a bare echo, and one raw httpx call per request)."""

from __future__ import annotations

import os
from typing import Any

import functions_framework
import httpx

_client: httpx.Client | None = None


@functions_framework.http
def echo(request: Any) -> Any:
    """The bare functions-framework floor: read the body, answer it."""
    return request.get_data(), 200, {"Content-Type": "application/json"}


@functions_framework.http
def raw_call(request: Any) -> Any:
    """One raw httpx call to the emulator with a ready token, no validation or bookkeeping."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10)
    base = os.environ["STOPLINE_CODEARTS_BUILD_ENDPOINT"]
    reply = _client.post(f"{base}/v3/jobs/stop", content=request.get_data(),
                         headers={"Content-Type": "application/json", "X-Auth-Token": os.environ["BENCH_TOKEN"]})
    return reply.content, reply.status_code, {"Content-Type": "application/json"}
