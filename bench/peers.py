"""The served scenario's peer targets: one raw httpx call per request, in Flask mode and in ASGI mode (the bare
echo is bench/echo.py)."""

from __future__ import annotations

import os
from typing import Any

import functions_framework
import functions_framework.aio
import httpx

from stopline.auth import signer

_client: httpx.Client | None = None


def _call(body: bytes) -> tuple[bytes, int]:
    """One raw httpx call to the emulator, AK/SK-signed like stopline's; no validation or bookkeeping."""
    global _client
    if _client is None:
        _client = httpx.Client(timeout=10)
    base = os.environ["STOPLINE_CODEARTS_BUILD_ENDPOINT"]
    headers = signer.sign(access_key=os.environ["HUAWEICLOUD_SDK_AK"], secret_key=os.environ["HUAWEICLOUD_SDK_SK"],
                          method="POST", host=base.removeprefix("http://"), path="/v3/jobs/stop",
                          headers={"Content-Type": "application/json",
                                   "X-Project-Id": os.environ["HUAWEICLOUD_SDK_PROJECT_ID"]}, body=body)
    reply = _client.post(f"{base}/v3/jobs/stop", content=body, headers=headers)
    return reply.content, reply.status_code


@functions_framework.http
def raw_call(request: Any) -> Any:
    """Flask mode: the call on the request's thread."""
    content, status = _call(request.get_data())
    return content, status, {"Content-Type": "application/json"}


@functions_framework.aio.http
async def raw_call_asgi(request: Any) -> Any:
    """ASGI mode, as stopline's webhook runs there: the body read on the event loop, the (sync) call on a
    worker thread -- but one hop, where a sync target of functions-framework makes two (its own thread for the
    target, then the pipeline's)."""
    from anyio import to_thread
    from starlette.responses import Response

    content, status = await to_thread.run_sync(_call, await request.body())
    return Response(content, status_code=status, media_type="application/json")
