"""functions-framework targets (interface.md section 3): `functions-framework --target NAME --source functions/main.py`.

Each target is a plain function named as its target and hands its request to stopline; importing
this file loads only functions_framework's decorators and stopline's stdlib-only entry points.
"""

from typing import Any

import functions_framework

from stopline.triggers import cloudevent
from stopline.triggers.frameworks import serve_http


@functions_framework.http
def stop_build(request: Any) -> Any:
    """Stop one CodeArts Build build: ``{"job_id", "build_no"}``."""
    return serve_http("stop_build", request)


@functions_framework.http
def delete_build_task(request: Any) -> Any:
    """Delete one CodeArts Build task: ``{"job_id"}``."""
    return serve_http("delete_build_task", request)


@functions_framework.http
def stop_dataarts_job(request: Any) -> Any:
    """Stop one DataArts Studio job: ``{"job_name", "project_id"?, "workspace"?}``."""
    return serve_http("stop_dataarts_job", request)


@functions_framework.http
def webhook(request: Any) -> Any:
    """One command with ``action``, or ``{"commands": [...]}`` (1..100)."""
    return serve_http("webhook", request)


@functions_framework.cloud_event
def on_event(event: Any) -> None:
    """A CloudEvent carrying a command, or a Pub/Sub push envelope; raises to ask for redelivery."""
    cloudevent.handle(event.get_attributes(), event.get_data())
