"""functions-framework request objects -> the framework-free HTTP target.

Flask mode hands a target a ``flask.Request``; ``--asgi`` mode hands it a Starlette ``Request`` and
runs the (sync) target in a thread. For ASGI we return a Starlette ``Response`` whose ``__call__``
runs on the event loop: it reads the body (stopping at the size limit), then hands the command to the
pipeline on a worker thread. Starlette is imported only in that mode.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from stopline.errors import BadRequest
from stopline.triggers import http

if TYPE_CHECKING:
    from stopline.entry import RuntimeSource


def _flask_reply(reply: http.HttpReply) -> tuple[bytes, int, dict[str, str]]:
    return reply.content(), reply.status, reply.all_headers()


def serve_http(target: str, request: Any, runtime: RuntimeSource) -> Any:
    """Answer one HTTP request for ``target`` in whichever mode functions-framework runs."""
    if hasattr(request, "scope"):  # Starlette (ASGI mode)
        return _pipeline_response_class()(target, request, runtime)
    headers = {k.lower(): v for k, v in request.headers.items()}

    def read_body(limit: int) -> bytes:
        # Flask: read at most limit + 1 bytes, so a body without Content-Length is still bounded.
        try:
            return bytes(request.stream.read(limit + 1))
        except Exception:  # noqa: BLE001 - the server's reader: malformed chunked body, client gone
            raise BadRequest("the request body could not be read (malformed chunked encoding?)",
                             details=[{"field": "body", "message": "unreadable"}]) from None

    reply = http.handle(target, request.method, headers, read_body, runtime=runtime)
    return _closing(reply) if reply.body_unread else _flask_reply(reply)


def _closing(reply: http.HttpReply) -> Any:
    """A refusal whose body stays unread: streamed, so functions-framework's after-request hook does
    not read the rest of it (all 64 MiB of a declared 64 MiB body), and ``Connection: close``, so the
    connection is not reused with the unread bytes still in it."""
    import flask

    return flask.Response(iter([reply.content()]), status=reply.status,
                          headers={**reply.all_headers(), "Connection": "close"})


@functools.cache
def _pipeline_response_class() -> type:
    """Defined on first ASGI request (Starlette is imported only in that mode), then reused."""
    from starlette.responses import Response

    class PipelineResponse(Response):
        """Runs the pipeline when Starlette sends the response: the body is read on the event loop."""

        def __init__(self, target: str, request: Any, runtime: RuntimeSource) -> None:
            super().__init__()
            self.target, self.request, self.runtime = target, request, runtime

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            request = self.request
            headers = {k.lower(): v for k, v in request.headers.items()}

            async def read_body(limit: int) -> bytes:
                chunks, size = [], 0
                async for chunk in request.stream():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        break
                return b"".join(chunks)

            reply = await http.ahandle(self.target, request.method, headers, read_body, runtime=self.runtime)
            out = Response(reply.content(), status_code=reply.status, headers=reply.all_headers())
            await out(scope, receive, send)

    return PipelineResponse


def framework_refusal(code: int, message: str, allow: str | None = None) -> tuple[bytes, int, dict[str, str]]:
    """A refusal of the web framework's own (a method its route does not take, its 404 for /robots.txt and
    /favicon.ico) in JSON like every other answer, with the ``Allow`` header a 405 must carry; logged once
    at WARNING like every refusal (no target ran, so the line names none)."""
    from stopline import logs

    kind = "method_not_allowed" if code == 405 else "bad_request" if code < 500 else "internal"
    logs.ensure_configured()
    http.log.warning("request refused (%s) by the web framework: %s", code, message,
                     extra={"status": code, "error_type": kind, "target": None, "event_id": None})
    body = {"ok": False, "error": {"type": kind, "message": message, "details": []}}
    headers = {"Content-Type": "application/json", **({"Allow": allow} if allow else {})}
    return http.HttpReply(code, body).content(), code, headers


def answer_raised(error: Exception) -> tuple[bytes, int, dict[str, str]]:
    """Flask mode's answer for an exception that left a target: an HTTP error of the framework's own (404,
    405) in JSON; a redelivery request (on_event) as 503 with Retry-After, logged once as JSON; else a bug."""
    from stopline.triggers.queue import RedeliveryRequested

    code = getattr(error, "code", None)
    if isinstance(code, int) and 400 <= code < 600 and hasattr(error, "description"):  # werkzeug's HTTPException
        allowed = getattr(error, "valid_methods", None)  # set on werkzeug's 405
        return framework_refusal(code, str(error.description), ", ".join(allowed) if allowed else None)
    if isinstance(error, RedeliveryRequested):
        import logging

        logging.getLogger("stopline").warning("asking for redelivery: %s", error, extra={"status": 503})
        body = {"ok": False, "error": {"type": "unavailable", "message": str(error), "details": []}}
        return _flask_reply(http.HttpReply(503, body, {"Retry-After": "1"}))
    return _flask_reply(http.internal_error(error))


def refuse_unreadable_event(error: Exception) -> tuple[bytes, int, dict[str, str]]:
    """The answer when functions-framework could not read a CloudEvent (Flask mode, on_event)."""
    from stopline.errors import InvalidJson

    if "RecursionError" in str(error):
        return refuse_too_deep()
    description = getattr(error, "description", None) or str(error)
    reason = description.split("Got CloudEvent exception:")[-1].split("<br>")[0].strip().splitlines()[0].strip(" .")
    refused = InvalidJson(f"not a CloudEvent stopline can read ({reason[:200]})",
                          details=[{"field": "body", "message": reason[:200]}])
    return _flask_reply(http.refusal(refused, "on_event"))


def refuse_too_deep() -> tuple[bytes, int, dict[str, str]]:
    """The answer when functions-framework's own JSON parsing overflowed (Flask mode, on_event)."""
    from stopline.errors import InvalidJson
    from stopline.jsonin import MAX_DEPTH

    error = InvalidJson(f"body is nested deeper than {MAX_DEPTH} levels",
                        details=[{"field": "body", "message": f"nesting over {MAX_DEPTH} levels"}])
    return _flask_reply(http.refusal(error, "on_event"))

