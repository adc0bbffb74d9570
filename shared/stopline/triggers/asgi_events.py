"""``--asgi`` mode's CloudEvent endpoint (the ``on_event`` target), answering in JSON like Flask mode.

functions-framework's ASGI CloudEvent endpoint answers an unreadable event with a plain-text 400, does not
convert a raw Pub/Sub push as its Flask mode does, and turns a redelivery request into a plain-text 500
with a traceback. It builds that endpoint through one module-level factory, ``_cloudevent_func_wrapper``,
looked up when the app is created -- after the function source is imported -- so the source replaces it
(``adopt_asgi_mode``); the app's class is replaced the same way, so that the router's own 404 and 405 are
JSON too. Nothing here imports pydantic or httpx until a request arrives.
"""

from __future__ import annotations

from typing import Any

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def _raw_pubsub_push(body: bytes) -> dict[str, Any] | None:
    """A Pub/Sub push envelope sent as plain JSON (a push subscription pointed straight at the function),
    which Flask mode converts to a CloudEvent itself; None for anything else."""
    from stopline.errors import StoplineError
    from stopline.jsonin import loads

    try:
        envelope = loads(body)
    except StoplineError:
        return None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if isinstance(envelope, dict) and isinstance(message, dict) and "subscription" in envelope and "data" in message:
        return dict(envelope)
    return None


def asgi_cloud_event_handler(function: Any, is_async: bool, enable_id_logging: bool = False) -> Any:
    """``--asgi`` mode's CloudEvent endpoint, in place of functions-framework's own: every answer is
    JSON, as in Flask mode -- an unreadable event a 400 naming why, a raw Pub/Sub push read as Flask mode
    reads it, a redelivery request a 503 with Retry-After (logged once, no traceback), a bug a 500
    ``internal`` -- where the framework answers plain text and logs a traceback for a redelivery."""
    from cloudevents.http import CloudEvent, from_http
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    from stopline.triggers.frameworks import answer_raised, refuse_too_deep, refuse_unreadable_event

    def answer(reply: tuple[bytes, int, dict[str, str]]) -> Response:
        content, status, headers = reply
        return Response(content, status_code=status, headers=headers)

    async def handler(request: Any) -> Response:
        body = await request.body()
        try:
            event = from_http(dict(request.headers), body)
        except Exception as exc:  # noqa: BLE001 - the cloudevents SDK raises several unrelated types
            envelope = _raw_pubsub_push(body)
            if envelope is None:
                too_deep = isinstance(exc, RecursionError) or "RecursionError" in repr(exc)
                return answer(refuse_too_deep() if too_deep else refuse_unreadable_event(exc))
            message_id = envelope["message"].get("messageId") or ""
            event = CloudEvent({"type": PUBSUB_PUBLISHED, "source": "//pubsub.googleapis.com/",
                                "id": str(message_id) or "-"}, envelope)
        try:
            if is_async:
                await function(event)
            else:
                await run_in_threadpool(function, event)
        except Exception as exc:  # noqa: BLE001 - answered in JSON and logged once, like Flask mode
            return answer(answer_raised(exc))
        return Response("OK")

    try:
        from functions_framework import execution_id

        return execution_id.set_execution_context_async(enable_id_logging)(handler)  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError):  # an older framework without execution ids
        return handler


def _answering_in_json(starlette: type[Any]) -> type[Any]:
    """functions-framework's Starlette app, answering the router's own refusals in JSON: a method the
    route does not take (every one but POST on ``on_event``) is a plain-text 405 there, and /robots.txt and
    /favicon.ico a plain-text 404. Both reach the app as ``HTTPException``; its ``exception_handlers`` are
    the documented place to answer them."""
    from starlette.exceptions import HTTPException
    from starlette.responses import Response

    from stopline.triggers.frameworks import framework_refusal

    async def refusal(request: Any, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        content, status, headers = framework_refusal(exc.status_code, exc.detail,
                                                     (exc.headers or {}).get("Allow"))
        return Response(content, status_code=status, headers=headers)

    class JsonRefusals(starlette):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["exception_handlers"] = {HTTPException: refusal, **(kwargs.get("exception_handlers") or {})}
            super().__init__(*args, **kwargs)

    return JsonRefusals


def adopt_asgi_mode() -> None:
    """When functions-framework runs in ``--asgi`` mode (its ``aio`` module is loaded before the function
    source), serve CloudEvents with ``asgi_cloud_event_handler`` and answer the router's own refusals in JSON.
    It builds the app through module-level names looked up when the app is created -- after the source is
    imported -- so replacing them is the one seam it has; in Flask mode nothing changes."""
    import sys

    aio: Any = sys.modules.get("functions_framework.aio")
    factory = "_cloudevent_func_wrapper"
    if aio is None or not hasattr(aio, factory):
        return
    setattr(aio, factory, asgi_cloud_event_handler)
    app_class = getattr(aio, "Starlette", None)
    if app_class is not None and app_class.__module__ != __name__:  # not wrapped yet (a source loaded twice)
        aio.Starlette = _answering_in_json(app_class)
