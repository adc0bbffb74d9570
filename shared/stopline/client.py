"""The one API client: three upstream calls, their outcomes, retries and the stop-API switch.

Request building and response reading live once, in :class:`ClientCore`, as a generator "flow" that
yields what it needs (an IAM token, or a request to send) and receives the answer -- the same
sans-IO shape as ``httpx.Auth.auth_flow``. :class:`Client` drives it with an ``httpx.HTTPTransport``
(every function target, the CLI) and :class:`AsyncClient` with an ``httpx.AsyncHTTPTransport``. Both
take an injectable transport, which is how the emulator plugs in.

The drivers hand requests to the transport directly rather than through ``httpx.Client``: stopline
uses none of the client layer (cookies, redirects, auth hooks, default headers), and skipping it saves
about 125 µs of CPU per call, a fifth of the whole call (bench/README "Performance"). When a proxy is
configured in the environment the full ``httpx.Client`` is used instead, because it implements
HTTP(S)_PROXY and NO_PROXY.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from stopline.auth.credentials import AkSk, Credentials, IamPasswordToken, StaticToken
from stopline.endpoints import Endpoints
from stopline.errors import (
    ConfigurationError,
    InvalidCommand,
    NotFound,
    StoplineError,
    Transient,
    UpstreamAuth,
    UpstreamInfo,
    UpstreamRejected,
)
from stopline.models import Command, DeleteBuildTask, Outcome, StopBuild
from stopline.wire import Call, RawReply, parse_error_body, parse_retry_after

if TYPE_CHECKING:
    import httpx

    from stopline.settings import Settings

log = logging.getLogger("stopline")

TRANSIENT_CODES = frozenset({"CB.00060211", "CB.00060100", "CB.00060101", "APIGW.0308"})
API_NOT_FOUND = "APIGW.0101"
JSON_HEADERS = {"Content-Type": "application/json"}
USER_AGENT = "stopline/0.1"


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful upstream answer, reduced to what a result needs."""

    outcome: Outcome
    request_id: str | None
    api: str
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class NeedToken:
    """Flow step: the driver must supply a valid IAM token (fetching it under its lock)."""


class _ApiGone(UpstreamAuth):
    """The gateway says the API path does not exist (404 APIGW.0101)."""


Step = Call | NeedToken
Flow = Generator[Step, Any, Reply]


def _describe(command: Command) -> str:
    if isinstance(command, StopBuild):
        return f"build {command.job_id}#{command.build_no}"
    if isinstance(command, DeleteBuildTask):
        return f"build task {command.job_id}"
    return f"DataArts job {command.job_name!r}"


class ClientCore:
    """Everything about the three calls that does not depend on how bytes are moved."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        endpoints: Endpoints,
        project_id: str | None,
        not_running_codes: tuple[str, ...],
        build_stop_api: Literal["auto", "v3", "v1"] = "auto",
        max_attempts: int = 4,
        timeout_s: float = 10.0,
    ) -> None:
        self.credentials = credentials
        self.endpoints = endpoints
        self.project_id = project_id
        self.not_running_codes = frozenset(not_running_codes)
        self.build_stop_api = build_stop_api
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._use_v1 = build_stop_api == "v1"
        self._lock = threading.Lock()

    @property
    def stop_api(self) -> str:
        """The CodeArts stop path this process uses now: ``v3`` (seed 000) or ``v1`` (its replacement)."""
        return "v1" if self._use_v1 else "v3"

    def plan(self, command: Command) -> Call:
        """The request for ``command``, without authentication."""
        headers = {**JSON_HEADERS, "User-Agent": USER_AGENT}
        if isinstance(command, StopBuild):
            base = self.endpoints.codearts_build
            if self._use_v1:
                # As the official SDK's stop_the_job sends it (huaweicloud-apis.md 5.1): build_no in the query.
                return Call.build(
                    "POST", base, f"/v1/job/{command.job_id}/stop", api="v1",
                    query=(("build_no", str(command.build_no)),), headers=headers,
                )
            body = f'{{"job_id":"{command.job_id}","build_no":"{command.build_no}"}}'.encode()
            return Call.build("POST", base, "/v3/jobs/stop", api="v3", headers=headers, body=body)
        if isinstance(command, DeleteBuildTask):
            return Call.build(
                "POST", self.endpoints.codearts_build, f"/v3/jobs/{command.job_id}/delete",
                api="delete", headers=headers,
            )
        project = command.project_id or self.project_id
        if not project:
            raise InvalidCommand(
                "stop_dataarts_job needs a project_id: give one in the command or set HUAWEICLOUD_SDK_PROJECT_ID",
                details=[{"field": "project_id", "message": "required when no project is configured"}],
            )
        if command.workspace:
            headers["workspace"] = command.workspace
        return Call.build(
            "POST", self.endpoints.dataarts, f"/v1/{project}/jobs/{quote(command.job_name, safe='')}/stop",
            api="dataarts", headers=headers,
        )

    def read(self, command: Command, call: Call, reply: RawReply) -> Reply:
        """Map the cloud's answer to an outcome, or raise the matching :class:`StoplineError`."""
        request_id = reply.header("x-request-id")
        status = reply.status
        is_stop = not isinstance(command, DeleteBuildTask)
        if 200 <= status < 300:
            if isinstance(command, DeleteBuildTask):
                return Reply(Outcome.DELETED, request_id, call.api)
            data = reply.json()
            if call.api == "v3" and isinstance(data, dict) and data.get("result") is False:
                return Reply(Outcome.ALREADY_STOPPED, request_id, call.api)
            return Reply(Outcome.STOPPED, request_id, call.api)

        code, msg = parse_error_body(reply.body)
        info = UpstreamInfo(status, code, msg, request_id)
        what = _describe(command)
        said = f"HTTP {status}" + (f" {code}" if code else "") + (f": {msg}" if msg else "")
        if code == API_NOT_FOUND:
            raise _ApiGone(f"the API {call.method} {call.path} does not exist at {call.host} ({said}); "
                           "check the endpoint settings", upstream=info)
        if is_stop and code in self.not_running_codes:
            return Reply(Outcome.ALREADY_STOPPED, request_id, call.api)
        if status == 429 or status >= 500 or code in TRANSIENT_CODES:
            raise Transient(f"{what}: the cloud is unavailable or throttling ({said})", upstream=info,
                            retry_after=parse_retry_after(reply.header("retry-after")))
        if code == "DLF.0100":
            raise NotFound(f"{what} does not exist ({said})", upstream=info)
        if status == 404:
            if isinstance(command, DeleteBuildTask):
                return Reply(Outcome.ALREADY_DELETED, request_id, call.api)
            raise NotFound(f"{what} does not exist ({said})", upstream=info)
        if status in (401, 403):
            raise UpstreamAuth(f"the cloud refused our credentials or permissions for {what} ({said})",
                               upstream=info)
        raise UpstreamRejected(f"the cloud rejected the parameters for {what} ({said})", upstream=info)

    def flow(self, command: Command) -> Flow:
        """One attempt: yields NeedToken / Call steps, receives a token / RawReply, returns a Reply.

        Inside one attempt it also handles the two re-sends that are not retries: switching to the
        v1 stop API when v3 is gone (``auto``), and refreshing a refused IAM token once.
        """
        refreshed = False
        while True:
            call = self.plan(command)
            token: str | None = (yield NeedToken()) if self.credentials.needs_token else None
            reply = yield self.authorize(call, token)
            try:
                return self.read(command, call, reply)
            except _ApiGone:
                if call.api == "v3" and self.build_stop_api == "auto":
                    with self._lock:
                        self._use_v1 = True
                    log.warning("CodeArts Build v3 stop API is gone (APIGW.0101); using the v1 stop API "
                                "for the rest of this process", extra={"api": "v1"})
                    continue
                raise
            except UpstreamAuth as exc:
                if (isinstance(self.credentials, IamPasswordToken) and token is not None
                        and exc.upstream is not None and exc.upstream.status == 401 and not refreshed):
                    self.credentials.invalidate(token)
                    refreshed = True
                    continue
                raise

    def authorize(self, call: Call, token: str | None) -> Call:
        return Call(call.method, call.scheme, call.host, call.path, call.query,
                    self.credentials.apply(call, token), call.body, call.api)

    def transport_failure(self, what: str, exc: Exception) -> Transient:
        """A timeout or dropped connection, as the transient failure it is."""
        kind = "timed out" if "Timeout" in type(exc).__name__ else "connection failed"
        return Transient(f"{what}: the request {kind} ({type(exc).__name__})")

    def retry_wait(self, exc: Exception) -> bool | float:
        """stamina's ``on=`` hook: retry transient failures only, honouring Retry-After."""
        if isinstance(exc, Transient):
            return exc.retry_after if exc.retry_after is not None else True
        return False


def _retrying(core: ClientCore) -> Any:
    import stamina  # only after a transient failure: the first attempt runs without it

    return stamina.retry_context(
        on=core.retry_wait, attempts=core.max_attempts, timeout=None,
        wait_initial=0.1, wait_max=5.0, wait_jitter=0.5,
    )


def _warn_retry(command: Command, exc: Transient, attempt: int, core: ClientCore) -> None:
    if attempt < core.max_attempts:
        log.warning(
            "retrying after a transient failure: %s", exc.message,
            extra={"action": command.action, "attempt": attempt, "retry_after_s": exc.retry_after,
                   "upstream_status": exc.upstream.status if exc.upstream else None},
        )


_C = TypeVar("_C")
_T = TypeVar("_T")


def _connect(core: ClientCore, given: _T | None, client: Callable[..., _C],
             transport: Callable[..., _T]) -> tuple[_C | None, _T | None]:
    """What a driver sends through, as ``(full httpx client, transport)`` with one of them set: the given
    transport (the emulator); ``httpx.Client`` when HTTP(S)_PROXY or ALL_PROXY is set, since it implements
    them and NO_PROXY; else httpx's transport alone.

    TLS verification stays on whenever any endpoint is https; with none (the emulator), httpx is told not
    to build a verifying context, which would load the CA bundle: about 34 ms of a cold start.
    """
    if given is not None:
        return None, given
    import httpx

    verify = core.endpoints.uses_tls()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=32)  # a batch runs 50 at once
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in ("http_proxy", "https_proxy",
                                                                              "all_proxy")):
        return client(timeout=core.timeout_s, verify=verify, limits=limits), None
    return None, transport(verify=verify, limits=limits)


def _timeouts(core: ClientCore) -> dict[str, Any]:
    """The request extensions that carry the timeouts when a request goes to the transport directly."""
    import httpx

    return {"timeout": httpx.Timeout(core.timeout_s).as_dict()}


def _request(call: Call, extensions: dict[str, Any]) -> httpx.Request:
    """The request as the transport takes it; ``extensions`` carries the timeouts."""
    import httpx

    return httpx.Request(call.method, call.url, headers=call.headers, content=call.body, extensions=extensions)


def _to_raw(response: httpx.Response) -> RawReply:
    # httpx.Headers is a case-insensitive mapping already: no copy needed
    return RawReply(response.status_code, response.headers, response.content)


class Client:
    """Synchronous driver: ``httpx.Client`` with pooled connections, built once per process."""

    def __init__(self, core: ClientCore, *, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self.core = core
        self._extensions = _timeouts(core)
        self._http, self._transport = _connect(core, transport, httpx.Client, httpx.HTTPTransport)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        elif self._transport is not None:
            self._transport.close()

    def execute(self, command: Command) -> Reply:
        """Run ``command`` with retries; raise a :class:`StoplineError` carrying ``attempts``.

        The first attempt runs outside the retry loop (tenacity's bookkeeping costs ~0.1 ms a call);
        only a transient failure enters it, replayed as attempt 1 so stamina computes the wait.
        """
        try:
            reply = self._attempt(command)
            return Reply(reply.outcome, reply.request_id, reply.api, 1)
        except Transient as exc:
            first: Transient = exc
        except StoplineError as exc:
            exc.attempts = 1
            raise
        attempt = 0
        try:
            for retry in _retrying(self.core):
                with retry:
                    attempt = retry.num
                    try:
                        if attempt == 1:
                            raise first
                        reply = self._attempt(command)
                    except Transient as exc:
                        _warn_retry(command, exc, attempt, self.core)
                        raise
                    return Reply(reply.outcome, reply.request_id, reply.api, attempt)
        except StoplineError as exc:
            exc.attempts = attempt
            raise
        raise AssertionError("unreachable: stamina either returns or raises")

    def _attempt(self, command: Command) -> Reply:
        flow = self.core.flow(command)
        try:
            step = next(flow)
            while True:
                answer = self._token() if isinstance(step, NeedToken) else self._send(_describe(command), step)
                step = flow.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _send(self, what: str, call: Call) -> RawReply:
        import httpx

        try:
            if self._transport is None:
                assert self._http is not None
                return _to_raw(self._http.request(call.method, call.url, headers=call.headers, content=call.body))
            response = self._transport.handle_request(_request(call, self._extensions))
            try:
                response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise self.core.transport_failure(what, exc) from None
        return _to_raw(response)

    def _token(self) -> str:
        creds = self.core.credentials
        assert isinstance(creds, IamPasswordToken)
        token = creds.valid()
        if token is not None:
            return token
        with creds.lock:
            token = creds.valid()
            if token is not None:
                return token
            return creds.accept(self._send("IAM token", creds.request()))


class AsyncClient:
    """Asynchronous driver of the same core, for library callers on an event loop. The functions do not
    use it: httpx's async pool slows down with many concurrent requests (README "Performance")."""

    def __init__(self, core: ClientCore, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        import httpx

        self.core = core
        self._extensions = _timeouts(core)
        self._http, self._transport = _connect(core, transport, httpx.AsyncClient, httpx.AsyncHTTPTransport)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def execute(self, command: Command) -> Reply:
        """As :meth:`Client.execute`, awaiting the I/O."""
        try:
            reply = await self._attempt(command)
            return Reply(reply.outcome, reply.request_id, reply.api, 1)
        except Transient as exc:
            first: Transient = exc
        except StoplineError as exc:
            exc.attempts = 1
            raise
        attempt = 0
        try:
            async for retry in _retrying(self.core):
                with retry:
                    attempt = retry.num
                    try:
                        if attempt == 1:
                            raise first
                        reply = await self._attempt(command)
                    except Transient as exc:
                        _warn_retry(command, exc, attempt, self.core)
                        raise
                    return Reply(reply.outcome, reply.request_id, reply.api, attempt)
        except StoplineError as exc:
            exc.attempts = attempt
            raise
        raise AssertionError("unreachable: stamina either returns or raises")

    async def _attempt(self, command: Command) -> Reply:
        flow = self.core.flow(command)
        try:
            step = next(flow)
            while True:
                answer = await self._token() if isinstance(step, NeedToken) else await self._send(
                    _describe(command), step)
                step = flow.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _send(self, what: str, call: Call) -> RawReply:
        import httpx

        try:
            if self._transport is None:
                assert self._http is not None
                return _to_raw(await self._http.request(call.method, call.url, headers=call.headers,
                                                        content=call.body))
            response = await self._transport.handle_async_request(_request(call, self._extensions))
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise self.core.transport_failure(what, exc) from None
        return _to_raw(response)

    async def _token(self) -> str:
        creds = self.core.credentials
        assert isinstance(creds, IamPasswordToken)
        token = creds.valid()
        if token is not None:
            return token
        async with creds.async_lock():
            token = creds.valid()
            if token is not None:
                return token
            return creds.accept(await self._send("IAM token", creds.request()))


def credentials_from(settings: Settings, endpoints: Endpoints, *, agency: Credentials | None = None) -> Credentials:
    """Pick the credential source, first match wins (interface.md section 5)."""
    mode = settings.credential_mode()
    if mode == "aksk":
        assert settings.ak is not None and settings.sk is not None
        return AkSk(settings.ak, settings.sk, settings.project_id, settings.security_token)
    if mode == "token":
        assert settings.auth_token is not None
        return StaticToken(settings.auth_token)
    if mode == "iam":
        assert settings.iam_username and settings.iam_password and settings.iam_domain
        return IamPasswordToken(settings.iam_username, settings.iam_password, settings.iam_domain,
                                endpoints.iam, settings.project_id, settings.region)
    if agency is not None:
        return agency
    from stopline.settings import CREDENTIAL_VARIABLES

    raise ConfigurationError(f"no Huawei Cloud credentials configured: set {CREDENTIAL_VARIABLES}")


def core_from(settings: Settings, *, agency: Credentials | None = None,
              project_id: str | None = None) -> ClientCore:
    endpoints = Endpoints.for_region(
        settings.region, codearts_build=settings.codearts_build_endpoint,
        dataarts=settings.dataarts_endpoint, iam=settings.iam_endpoint,
    )
    return ClientCore(
        credentials=credentials_from(settings, endpoints, agency=agency),
        endpoints=endpoints,
        project_id=settings.project_id or project_id,
        not_running_codes=settings.not_running_codes,
        build_stop_api=settings.build_stop_api,
        max_attempts=settings.max_attempts,
        timeout_s=settings.timeout_s,
    )

