"""functions-framework targets (docs/commands.md): `functions-framework --target NAME --source functions/main.py`.

Each target is a plain function named as its target and hands its request to stopline. Importing this
file loads functions_framework and stopline's stdlib-only entry module; the first request imports the
rest (pydantic, httpx), unless STOPLINE_PREWARM=1 asks for that set-up at import (instance start).
"""

from typing import Any

import functions_framework
from cloudevents.exceptions import GenericException  # functions-framework's own dependency, already loaded

from stopline.entry import hold_gc, release_gc, warm_if_asked
from stopline.logs import ensure_configured
from stopline.triggers.asgi_events import adopt_asgi_mode

hold_gc()  # until the first invocation is answered: a cold start allocates much and leaves little garbage
ensure_configured()  # every line on stderr is JSON from the first, even one logged before the runtime exists


def _serve(target: str, request: Any) -> Any:
    from stopline.entry import serving
    from stopline.triggers.frameworks import serve_http  # on the first request: pydantic, httpx

    try:
        return serve_http(target, request, serving)
    finally:
        release_gc()


@functions_framework.http
def stop_build(request: Any) -> Any:
    """Stop one CodeArts Build build: ``{"job_id", "build_no"}``."""
    return _serve("stop_build", request)


@functions_framework.http
def delete_build_task(request: Any) -> Any:
    """Delete one CodeArts Build task: ``{"job_id"}``."""
    return _serve("delete_build_task", request)


@functions_framework.http
def stop_dataarts_job(request: Any) -> Any:
    """Stop one DataArts Studio job: ``{"job_name", "project_id"?, "workspace"?}``."""
    return _serve("stop_dataarts_job", request)


@functions_framework.http
def stop_pipeline_run(request: Any) -> Any:
    """Stop CodeArts Pipeline runs: ``{"pipeline_id", "pipeline_run_id"?, "codearts_project_id"?, filters?}``."""
    return _serve("stop_pipeline_run", request)


@functions_framework.http
def retries(request: Any) -> Any:
    """Run the pending retries that are due (``{}``), or all of them (``{"all": true}``); for a scheduler."""
    return _serve("retries", request)


@functions_framework.http
def webhook(request: Any) -> Any:
    """One command with ``action``, or ``{"commands": [...]}`` (1..100)."""
    return _serve("webhook", request)


@functions_framework.http
def github(request: Any) -> Any:
    """GitHub webhooks (``workflow_run``, ``workflow_job``, ``ping``), mapped to commands by STOPLINE_RULES."""
    return _serve("github", request)


@functions_framework.http
def gitlab(request: Any) -> Any:
    """GitLab webhooks (``Pipeline Hook``, ``Job Hook``), mapped to commands by STOPLINE_RULES."""
    return _serve("gitlab", request)


@functions_framework.errorhandler(RecursionError)  # type: ignore[untyped-decorator]
def _nested_too_deep(error: RecursionError) -> Any:
    """Flask mode parses a CloudEvent body before `on_event` runs; nesting deep enough to overflow its
    JSON parser must still be a 400 JSON answer, not an HTML 500 that a pusher retries forever."""
    from stopline.triggers.frameworks import refuse_too_deep

    return refuse_too_deep()


@functions_framework.errorhandler(GenericException)  # type: ignore[untyped-decorator]
def _not_a_cloud_event(error: GenericException) -> Any:
    """Flask mode parses a CloudEvent before `on_event` runs; one it cannot read (malformed, or data nested
    too deep for its JSON parser) is a 400 JSON answer naming why, not an HTML 500 and a traceback."""
    from stopline.triggers.frameworks import refuse_unreadable_event

    return refuse_unreadable_event(error)


@functions_framework.errorhandler(400)  # type: ignore[untyped-decorator]
def _framework_refusal(error: Any) -> Any:
    """functions-framework's own 400 (a CloudEvent or Pub/Sub push it cannot convert) as JSON, like every
    other answer: its HTML page would be read by nobody and retried forever by a pusher."""
    from stopline.triggers.frameworks import refuse_unreadable_event

    return refuse_unreadable_event(error)


@functions_framework.errorhandler(Exception)  # type: ignore[untyped-decorator]
def _raised(error: Exception) -> Any:
    """Whatever else escapes a target in Flask mode, answered in JSON and logged as one JSON line: a
    redelivery request (on_event) is a 503 the pusher retries; a bug is a 500 ``internal``."""
    from stopline.triggers.frameworks import answer_raised

    return answer_raised(error)


@functions_framework.cloud_event
def on_event(event: Any) -> None:
    """A CloudEvent carrying a command, or a Pub/Sub push envelope; raises to ask for redelivery."""
    from stopline.entry import serving
    from stopline.triggers import cloudevent

    try:
        cloudevent.handle(event.get_attributes(), event.get_data(), runtime=serving)
    finally:
        release_gc()


adopt_asgi_mode()  # --asgi mode: on_event and the router's refusals answer in JSON too
warm_if_asked()  # STOPLINE_PREWARM=1: set up now, at instance start, instead of in the first request
