"""One cold start, run in a fresh process by bench/run.py: import a target and handle its first request.

    python bench/cold_probe.py KIND [BUILD_NO]  ->  prints {"handler_ms", "init_ms", "rss_mb"}
    python bench/cold_probe.py breakdown BUILD_NO MODULE,...  ->  prints {"modules_ms", "first_request_ms"}

The served emulator's address and credentials come in the environment (bench/run.py sets them).

KIND:
  echo           a bare functions-framework echo target, first request
  stopline       functions/main.py `webhook`, first signed request, against the in-process emulator
                 (the emulator is imported before the clock starts; no sockets, so no httpcore and no TLS
                 trust store either)
  stopline-http  the same against the emulator served by another process: the production path
  prewarm        stopline-http with STOPLINE_PREWARM=1: the import does the set-up (init_ms), then the first
                 request (handler_ms)
  fg-init        functions/functiongraph.py: the initializer, then the first APIG event (handler_ms is the
                 event alone, init_ms the initializer)
  floor          bench/floor.py: functions-framework + one pydantic model + one plain httpx request, no
                 stopline code (the chosen stack's own floor), first request against the served emulator
  floor-msgspec, floor-httpcore, floor-msgspec-httpcore
                 the same floor with msgspec for pydantic and/or httpcore for httpx: what a swap would buy
  floor-gchold   the floor holding the garbage collector off its cold start as stopline's entry points do
  sdk-http       bench/sdk_target.py: a functions-framework target using the official SDK, first request
                 (builds its client and stops one build over HTTP)
  breakdown      the floor's first request, then the given stopline modules one at a time (in the order the
                 production path loads them, so each is timed without what it imports), then the
                 production path's first request: where stopline's share over the floor goes
"""

from __future__ import annotations

import base64
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JOB = "f9d6c8466d614a9788e9a0acf6c15f46"


def _peak_rss_mb() -> float:
    # VmHWM is this program's own peak; ru_maxrss would carry the forking parent's over exec.
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


def _load(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _signed_body(build_no: int) -> tuple[bytes, dict[str, str]]:
    from stopline import webhooks

    body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": build_no}).encode()
    signed = webhooks.sign("cold-start-webhook-secret", f"cold-{build_no}", body)
    return body, {**signed, "Content-Type": "application/json"}


def _webhook_app() -> Any:
    from functions_framework import create_app

    return create_app("webhook", str(ROOT / "functions" / "main.py")).test_client()  # type: ignore[no-untyped-call]


def _webhook(build_no: int, app: Any = None) -> None:
    app = app or _webhook_app()
    body, headers = _signed_body(build_no)
    answer = app.post("/", data=body, headers=headers)
    assert answer.get_json()["outcome"] == "stopped", answer.get_data()


def breakdown(build_no: int, modules: list[str]) -> dict[str, Any]:
    """Each step's own time once the floor's work is done (its imports, its model, its HTTP client and request):
    the milliseconds stopline adds, module by module, then its target's first request."""
    import importlib

    from functions_framework import create_app

    floor = create_app("floor", str(ROOT / "bench" / "floor.py")).test_client()  # type: ignore[no-untyped-call]
    assert floor.post("/", json={"job_id": JOB, "build_no": build_no}).status_code == 200
    steps: dict[str, float] = {}
    # In production these modules load after functions/main.py has held the garbage collector off
    # (stopline.entry.hold_gc), so they are timed with it held too; main.py then holds it itself.
    default = gc.get_threshold()
    gc.set_threshold(200_000, *default[1:])
    for name in modules:
        start = time.perf_counter()
        importlib.import_module(name)
        steps[name] = (time.perf_counter() - start) * 1000
    gc.set_threshold(*default)
    start = time.perf_counter()
    _webhook(build_no)
    return {"modules_ms": steps, "first_request_ms": (time.perf_counter() - start) * 1000}


def main(kind: str, build_no: int) -> None:
    init_ms = 0.0
    if kind == "stopline":
        from stopline.emulator import mock_huaweicloud

        with mock_huaweicloud("demo"):
            start = time.perf_counter()
            _webhook(20)
            handled = time.perf_counter()
    else:
        start = time.perf_counter()
        if kind == "echo":
            from functions_framework import create_app

            app = create_app("echo", str(ROOT / "bench" / "echo.py")).test_client()  # type: ignore[no-untyped-call]
            app.post("/", data=b"{}", headers={"Content-Type": "application/json"})
        elif kind == "stopline-http":
            _webhook(build_no)
        elif kind == "prewarm":
            os.environ["STOPLINE_PREWARM"] = "1"
            app = _webhook_app()
            init_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            _webhook(build_no, app)
        elif kind == "fg-init":
            module = _load(ROOT / "functions" / "functiongraph.py")
            module.initializer(object())
            init_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            body, headers = _signed_body(build_no)
            event = {"httpMethod": "POST", "path": "/", "headers": {k.lower(): v for k, v in headers.items()},
                     "body": base64.b64encode(body).decode(), "isBase64Encoded": True, "requestContext": {}}
            answer = module.handler(event, object())
            assert answer["statusCode"] == 200, answer
        elif kind.startswith("floor"):
            swapped = kind.split("-")[1:]
            os.environ["STOPLINE_BENCH_FLOOR"] = ("msgspec" if "msgspec" in swapped else "pydantic") + "+" + (
                "httpcore" if "httpcore" in swapped else "httpx")
            os.environ["STOPLINE_BENCH_FLOOR_GC"] = "hold" if "gchold" in swapped else ""
            from functions_framework import create_app

            app = create_app("floor", str(ROOT / "bench" / "floor.py")).test_client()  # type: ignore[no-untyped-call]
            answer = app.post("/", json={"job_id": JOB, "build_no": build_no})
            assert answer.status_code == 200, answer.get_data()
        elif kind == "sdk-http":
            from functions_framework import create_app

            app = create_app("sdk_stop", str(ROOT / "bench" / "sdk_target.py")).test_client()  # type: ignore[no-untyped-call]
            answer = app.post("/", json={"job_id": JOB, "build_no": build_no})
            assert answer.status_code == 200, answer.get_data()
        else:
            raise SystemExit(f"unknown kind {kind!r}")
        handled = time.perf_counter()
    print(json.dumps({"handler_ms": (handled - start) * 1000, "init_ms": init_ms, "rss_mb": _peak_rss_mb()}))


if __name__ == "__main__":
    if sys.argv[1] == "breakdown":
        print(json.dumps(breakdown(int(sys.argv[2]), sys.argv[3].split(","))))
    else:
        main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20)
