"""The served scenario's peer target: one raw httpx call per request (the bare echo is bench/echo.py)."""

from __future__ import annotations

import os
from typing import Any

import functions_framework
import httpx

from stopline.auth import signer

_client: httpx.Client | None = None


@functions_framework.http
def raw_call(request: Any) -> Any:
    """One raw httpx call to the emulator, AK/SK-signed like stopline's; no validation or bookkeeping."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10)
    base = os.environ["STOPLINE_CODEARTS_BUILD_ENDPOINT"]
    body = request.get_data()
    headers = signer.sign(access_key=os.environ["HUAWEICLOUD_SDK_AK"], secret_key=os.environ["HUAWEICLOUD_SDK_SK"],
                          method="POST", host=base.removeprefix("http://"), path="/v3/jobs/stop",
                          headers={"Content-Type": "application/json",
                                   "X-Project-Id": os.environ["HUAWEICLOUD_SDK_PROJECT_ID"]}, body=body)
    reply = _client.post(f"{base}/v3/jobs/stop", content=body, headers=headers)
    return reply.content, reply.status_code, {"Content-Type": "application/json"}
