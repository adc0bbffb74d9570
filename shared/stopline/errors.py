"""The failures stopline can report, one class per externally visible kind.

Every failure a user can see is a :class:`StoplineError`. Its class fixes the HTTP status that the
function targets answer with (docs/commands.md), the ``error.type`` string in the response body,
and whether the failure is *transient* -- the single bit every queue adapter uses to choose between
acknowledging a message and failing the invocation so the platform redelivers it.

```
StoplineError
├── RequestError            (the caller's fault, never reaches the cloud)
│   ├── BadRequest            400  body is not JSON / not an object
│   ├── Unauthorized          401  webhook signature missing, wrong or stale
│   ├── Forbidden             403  action / job / project not allowed here
│   ├── MethodNotAllowed      405
│   ├── Conflict              409  idempotency key reused for another command
│   ├── PayloadTooLarge       413
│   ├── UnsupportedMediaType  415
│   └── InvalidCommand        422  each bad field named in ``details``
├── UpstreamError           (the cloud answered, or did not)
│   ├── NotFound              404  the build, task or job does not exist
│   ├── UpstreamRejected      422  the cloud refused the parameters (400)
│   ├── UpstreamAuth          502  the cloud refused our credentials / permissions
│   ├── UpstreamMisconfigured 502  the API or endpoint is wrong (a gateway 404): type `configuration`
│   ├── UpstreamUnexpected    502  a 2xx that is no evidence of success (HTML, an unknown JSON shape)
│   └── Transient             503  throttled, 5xx, timeout, dropped connection (retried first)
│       └── InProgress        503  a duplicate whose first delivery is still running
└── ConfigurationError      500  no credentials, bad settings
```

Messages are shown to callers as they are, so they never contain a secret.
"""

from typing import Any, ClassVar, NamedTuple


class UpstreamInfo(NamedTuple):
    """What the cloud said, kept for the ``error.upstream`` object of a response."""

    status: int
    error_code: str | None
    error_msg: str | None
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "error_code": self.error_code, "error_msg": self.error_msg}


class StoplineError(Exception):
    """Base of every failure stopline reports; carries status, type and the transient bit."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal"
    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        upstream: UpstreamInfo | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.upstream = upstream
        self.retry_after = retry_after

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of docs/commands.md."""
        body: dict[str, Any] = {"type": self.type, "message": self.message, "details": self.details}
        if self.upstream is not None:
            body["upstream"] = self.upstream.to_json()
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class RequestError(StoplineError):
    """The request itself is wrong; it never reaches the cloud."""

    status = 400
    type = "bad_request"


class BadRequest(RequestError):
    status = 400
    type = "bad_request"


class InvalidJson(BadRequest):
    """A body or message that is not JSON stopline accepts: malformed, duplicate keys, lone
    surrogates, or nested deeper than 64 levels."""

    type = "invalid_json"


class Unauthorized(RequestError):
    status = 401
    type = "unauthorized"


class Forbidden(RequestError):
    status = 403
    type = "forbidden"


class MethodNotAllowed(RequestError):
    status = 405
    type = "method_not_allowed"


class Conflict(RequestError):
    status = 409
    type = "conflict"


class PayloadTooLarge(RequestError):
    status = 413
    type = "payload_too_large"


class UnsupportedMediaType(RequestError):
    status = 415
    type = "unsupported_media_type"


class UnsupportedEncoding(UnsupportedMediaType):
    """A compressed body (``Content-Encoding: gzip``): refused rather than decoded, since what a sender
    signs is the uncompressed payload and a 401 "signature does not match" would hide the cause; the answer
    says ``Accept-Encoding: identity`` (RFC 9110, section 15.5.16)."""


class InvalidCommand(RequestError):
    status = 422
    type = "invalid"


class UpstreamError(StoplineError):
    """The cloud answered with a failure, or could not be reached."""

    status = 502
    type = "upstream"


class NotFound(UpstreamError):
    status = 404
    type = "not_found"


class UpstreamRejected(UpstreamError):
    status = 422
    type = "upstream_rejected"


class UpstreamAuth(UpstreamError):
    status = 502
    type = "upstream_auth"


class UpstreamMisconfigured(UpstreamError):
    """The gateway says the API or endpoint does not exist: a deployment problem, never a success."""

    status = 502
    type = "configuration"


class UpstreamUnexpected(UpstreamError):
    """A 2xx that is no evidence of success: an HTML page from a misconfigured endpoint, or a JSON shape the
    API never returns. Never read as stopped or deleted."""

    status = 502
    type = "upstream_unexpected"


class Transient(UpstreamError):
    status = 503
    type = "unavailable"
    transient = True


class InProgress(Transient):
    type = "in_progress"


class ConfigurationError(StoplineError):
    status = 500
    type = "configuration"


def error_class(type_: str, status: int | None = None) -> type[StoplineError]:
    """The class behind a stored ``error.type`` (and status: ``configuration`` is 500 here, 502 upstream)."""
    if type_ == UpstreamMisconfigured.type and status == UpstreamMisconfigured.status:
        return UpstreamMisconfigured
    return ERROR_TYPES.get(type_, StoplineError)


ERROR_TYPES: dict[str, type[StoplineError]] = {
    cls.type: cls
    for cls in (
        BadRequest, InvalidJson, Unauthorized, Forbidden, MethodNotAllowed, Conflict, PayloadTooLarge,
        UnsupportedMediaType, InvalidCommand, NotFound, UpstreamRejected, UpstreamAuth, UpstreamUnexpected, Transient,
        InProgress, ConfigurationError,
    )
}
