"""The chosen stack's own cold-start floor: a functions-framework target that validates its body with one
model and sends one plain request upstream, with none of stopline's code.

No handler built on functions-framework + pydantic + httpx can start faster than this, so the gap
between it and stopline's production path is what stopline itself costs, and the ratio of it to the
official SDK's target is the best the chosen stack allows (bench/README.md, "Cold start").

``STOPLINE_BENCH_FLOOR`` (``pydantic+httpx`` by default) swaps either half -- ``msgspec`` for the
validation, ``httpcore`` for the HTTP client -- to measure what a stack swap would buy. Each library is
imported on the first request, inside the timed window, and only the chosen one.

``STOPLINE_BENCH_FLOOR_GC=hold`` keeps the garbage collector out of the floor's cold start the way
stopline's entry points do (``stopline.entry.hold_gc``, written out here so the floor loads no stopline
code), so that stopline's share can also be read without that gain."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from typing import Any

import functions_framework

VALIDATION, HTTP = os.environ.get("STOPLINE_BENCH_FLOOR", "pydantic+httpx").split("+")
_ready: tuple[Callable[[bytes], tuple[str, int]], Callable[[str, bytes], int]] | None = None
_HELD = gc.get_threshold() if os.environ.get("STOPLINE_BENCH_FLOOR_GC") == "hold" else None
if _HELD is not None:
    gc.set_threshold(200_000, *_HELD[1:])


def _validator() -> Callable[[bytes], tuple[str, int]]:
    if VALIDATION == "msgspec":
        import msgspec

        class Stop(msgspec.Struct, forbid_unknown_fields=True):
            job_id: str
            build_no: int

        def decode(body: bytes) -> tuple[str, int]:
            command = msgspec.json.decode(body, type=Stop)
            return command.job_id, command.build_no
        return decode
    from pydantic import BaseModel, ConfigDict

    class StopModel(BaseModel):
        model_config = ConfigDict(extra="forbid")
        job_id: str
        build_no: int

    def validate(body: bytes) -> tuple[str, int]:
        command = StopModel.model_validate_json(body)
        return command.job_id, command.build_no
    return validate


def _sender(endpoint: str) -> Callable[[str, bytes], int]:
    # A trust store only for https, as stopline does: plain HTTP to the emulator needs none.
    verify = endpoint.startswith("https://")
    if HTTP == "httpcore":
        import ssl

        import httpcore

        context = ssl.create_default_context() if verify else None
        pool = httpcore.ConnectionPool(ssl_context=context)
        return lambda url, body: pool.request("POST", url, content=body,
                                              headers={"Content-Type": "application/json"}).status
    import httpx

    client = httpx.Client(verify=verify)
    return lambda url, body: client.post(url, content=body, headers={"Content-Type": "application/json"}).status_code


@functions_framework.http
def floor(request: Any) -> Any:
    """Validate the body, send it upstream unsigned (the emulator answers 401), answer with its status."""
    global _ready
    endpoint = os.environ["STOPLINE_CODEARTS_BUILD_ENDPOINT"]
    if _ready is None:
        _ready = _validator(), _sender(endpoint)
    validate, send = _ready
    job_id, build_no = validate(request.get_data())
    status = send(f"{endpoint}/v3/jobs/stop", json.dumps({"job_id": job_id, "build_no": str(build_no)}).encode())
    global _HELD
    if _HELD is not None:
        gc.freeze()
        gc.set_threshold(*_HELD)
        _HELD = None
    return json.dumps({"upstream_status": status}), 200, {"Content-Type": "application/json"}
