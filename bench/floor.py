"""The chosen stack's own cold-start floor: a functions-framework target that validates its body with one
pydantic model and sends one plain httpx request, with none of stopline's code.

No handler built on functions-framework + pydantic + httpx can start faster than this, so the gap
between it and stopline's production path is what stopline itself costs, and the ratio of it to the
official SDK's target is the best the chosen stack allows (bench/README.md, "Cold start")."""

from __future__ import annotations

import os
from typing import Any

import functions_framework
import httpx
from pydantic import BaseModel


class _Stop(BaseModel):
    job_id: str
    build_no: int


_client: httpx.Client | None = None


@functions_framework.http
def floor(request: Any) -> Any:
    """Validate the body, send it upstream unsigned (the emulator answers 401), answer with its status."""
    global _client
    command = _Stop.model_validate_json(request.get_data())
    endpoint = os.environ["STOPLINE_CODEARTS_BUILD_ENDPOINT"]
    if _client is None:  # a trust store only for https, as stopline does: plain HTTP to the emulator needs none
        _client = httpx.Client(verify=endpoint.startswith("https://"))
    answer = _client.post(f"{endpoint}/v3/jobs/stop",
                          json={"job_id": command.job_id, "build_no": str(command.build_no)})
    return answer.content, 200, {"Content-Type": "application/json"}
