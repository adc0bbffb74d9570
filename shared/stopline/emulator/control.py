"""The emulator's control API, under ``/_emulator/``: health, reset, seed, calls, state, faults and the
dashboard's delivery feed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from stopline.emulator.faults import FaultRule
from stopline.emulator.replies import EmuReply, EmuRequest, json_reply

if TYPE_CHECKING:
    from stopline.emulator.routes import Router


def handle(router: Router, request: EmuRequest) -> EmuReply:
    """One ``/_emulator/`` call (docs/cloud-answers.md lists them)."""
    route = (request.method, request.path.rstrip("/"))
    try:
        body = json.loads(request.body) if request.body else {}
    except ValueError:
        return json_reply(400, {"ok": False, "error": "body is not JSON"})
    if not isinstance(body, dict):
        return json_reply(400, {"ok": False, "error": f"body must be a JSON object, not a {type(body).__name__}"})
    try:
        if route == ("GET", "/_emulator/health"):
            return json_reply(200, {"ok": True})
        if route == ("POST", "/_emulator/reset"):
            router.reset()
            if body.get("seed") is not None:  # {"seed": "demo"}: start over with the demo state
                from stopline.emulator.seeds import demo

                if body["seed"] != "demo":
                    raise ValueError('seed must be "demo"')
                router.state.seed(demo())
            return json_reply(200, {"ok": True})
        if route == ("POST", "/_emulator/seed"):
            router.state.seed(body)
            return json_reply(200, {"ok": True})
        if route == ("GET", "/_emulator/calls"):
            with router.state.lock:
                return json_reply(200, {"calls": list(router.calls)})
        if route == ("GET", "/_emulator/deliveries"):
            return json_reply(200, {"deliveries": router.deliveries.items()})
        if route == ("POST", "/_emulator/deliveries"):  # one of stopline's JSON log lines, and whose
            function = str(body.pop("function", "") or "")
            return json_reply(200, {"ok": True, "kept": router.deliveries.record(function, body)})
        if route == ("GET", "/_emulator/state"):
            return json_reply(200, {**router.state.snapshot(), "faults_injected": dict(router.faults.injected),
                               "max_in_flight": router.max_in_flight})
        if route == ("POST", "/_emulator/faults"):
            router.faults.add(FaultRule.from_json(body))
            return json_reply(200, {"ok": True, "faults": [r.to_json() for r in router.faults.rules]})
        if route == ("DELETE", "/_emulator/faults"):
            router.faults.clear()
            return json_reply(200, {"ok": True})
        if route == ("GET", "/_emulator/faults"):
            return json_reply(200, {"faults": [r.to_json() for r in router.faults.rules]})
    except (ValueError, KeyError, TypeError) as exc:
        return json_reply(400, {"ok": False, "error": str(exc)})
    return json_reply(404, {"ok": False, "error": f"no control route {request.method} {request.path}"})
