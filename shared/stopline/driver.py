"""The one driver: moves :class:`~stopline.client.ClientCore`'s planned calls over httpx, with retries.

Every function target, the CLI and the Python API send through :class:`Client`; there is no second
(async) send path to keep correct. ASGI mode runs it on a worker thread (bench/README.md: httpx's async
pool slows down with many concurrent requests).

**One bound per exchange** (:mod:`stopline.bounded`). Each attempt gets one absolute end --
``STOPLINE_TIMEOUT_S`` from its start, or the delivery's deadline if sooner -- and every socket operation
of that exchange only the time left until then, so a server that dribbles its status line, headers or
body is abandoned at the end; httpcore closes the connection before the failure reaches the pipeline, so
a claim is released only after its connection is closed. Two clock reads per socket operation and no
thread; a watchdog thread closing sockets would cost a thread hand-off per request (measured with
``python -m bench --only percall``, bench/README.md).

Requests go to the transport directly rather than through ``httpx.Client``: stopline uses none of the client layer
(cookies, redirects, auth hooks), and skipping it saves a fifth of a call's CPU. With a proxy in the environment the
full ``httpx.Client`` is used (it implements HTTP(S)_PROXY and NO_PROXY); its transports get the same bound.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from stopline.bounded import bound_client, bound_transport, bounded_exchange
from stopline.client import FAN_OUT, ClientCore
from stopline.errors import StoplineError, Transient
from stopline.models import Command, StopBuild, StopDataArtsJob, StopPipelineRun
from stopline.operations import Member, NeedToken, Reply, Resolving, Step, describe, failed
from stopline.wire import Call, RawReply

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from stopline.auth.iam import IamPasswordToken
    from stopline.deadline import Deadline

log = logging.getLogger("stopline")
_R = TypeVar("_R")


def _connect(core: ClientCore, given: httpx.BaseTransport | None) -> tuple[httpx.Client | None,
                                                                            httpx.BaseTransport | None]:
    """What the driver sends through, as ``(full httpx client, transport)`` with one of them set: the given
    transport (the emulator); ``httpx.Client`` when HTTP(S)_PROXY or ALL_PROXY is set; else httpx's
    transport alone. TLS verification stays on whenever any endpoint is https; with none (the emulator),
    httpx is told not to build a verifying context, which would load the CA bundle.
    """
    if given is not None:
        bound_transport(given)
        return None, given
    import httpx

    verify = core.endpoints.uses_tls()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=32)  # a batch runs 50 at once
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in ("http_proxy", "https_proxy",
                                                                              "all_proxy")):
        client = httpx.Client(timeout=core.timeout_s, verify=verify, limits=limits)
        bound_client(client)
        return client, None
    plain = httpx.HTTPTransport(verify=verify, limits=limits)
    bound_transport(plain)
    return None, plain


@functools.cache
def _stamina() -> Any:
    """stamina, imported after the first transient failure (the first attempt runs without it), with its
    default hook off: it writes a bare `stamina.retry_scheduled` line, while stopline logs retries itself
    as JSON (_warn_retry) and every line on stderr must be JSON."""
    import stamina

    stamina.instrumentation.set_on_retry_hooks([])
    return stamina


def _retrying(core: ClientCore, deadline: Deadline | None = None) -> Any:
    """The retry loop: waits (backoff, Retry-After) are cut at the deadline, and none ends with less than
    one timeout left before the hard end; with no room for another, only the attempt already made counts."""
    stamina = _stamina()
    now = time.monotonic()
    left = None if deadline is None else min(deadline.at - now, deadline.hard - now - core.timeout_s)
    attempts = core.max_attempts
    if left is not None and left <= 0:
        attempts, left = 1, None
    return stamina.retry_context(
        on=retry_wait, attempts=attempts, timeout=left,
        wait_initial=0.1, wait_max=5.0, wait_jitter=0.5,
    )


def _warn_retry(what: Any, exc: Transient, attempt: int, core: ClientCore) -> None:
    if attempt < core.max_attempts:
        log.warning(
            "retrying after a transient failure: %s", exc.message,
            extra={"action": getattr(what, "action", None), "attempt": attempt, "retry_after_s": exc.retry_after,
                   "upstream_status": exc.upstream.status if exc.upstream else None},
        )


MIN_ATTEMPT_S = 0.05
"""An attempt is not worth starting with less time than this before the deadline."""


def attempt_budget(timeout_s: float, what: str, deadline: Deadline | None) -> float:
    """How long an attempt starting now may take: one timeout, cut at the delivery's deadline. None may
    start with less than one timeout left before the hard end (the process may not be there to see it
    through), nor once the deadline has passed: a transient failure, so the claim is released and a
    redelivery (or a pending retry) runs it."""
    if deadline is None:
        return timeout_s
    budget = deadline.room_for_attempt(timeout_s)
    if budget >= MIN_ATTEMPT_S:
        return budget
    hard_left = max(0.0, deadline.hard - time.monotonic())
    if hard_left < timeout_s:
        reason = (f"{hard_left:.1f} s are left of this delivery's time, less than one request timeout "
                  f"({timeout_s:g} s)")
    else:
        reason = "the delivery's deadline has passed (the sender stops waiting for the answer then)"
    raise Transient(f"{what}: not sent: {reason}", retry_after=1)

def overdue(what: str, budget_s: float) -> Transient:
    """An exchange abandoned (its connection closed) because it was still going when its bound -- the
    timeout, or what was left of the delivery's deadline -- ran out."""
    return Transient(f"{what}: the exchange was still going after {budget_s:.3g} s (STOPLINE_TIMEOUT_S or "
                     "the delivery's deadline); abandoned", retry_after=1)


def transport_failure(what: str, exc: Exception, call: Call | None = None, core: ClientCore | None = None) -> Transient:
    """A timeout or dropped connection, as the transient failure it is -- naming where it went, the variable
    that sent it there, and (for a local address) the likeliest cause."""
    kind = "timed out" if "Timeout" in type(exc).__name__ else "connection failed"
    if call is None or core is None:
        return Transient(f"{what}: the request {kind} ({type(exc).__name__})")
    from stopline.settings import env_name  # each endpoint is the setting <service>_endpoint

    base = f"{call.scheme}://{call.host}"
    variables = [env_name(f"{name}_endpoint") for name, url in core.endpoints._asdict().items() if url == base]
    given = {key.upper() for key in os.environ}  # read case-insensitively, as the settings read them
    named = [variable for variable in variables if variable in given]
    where = f" to {base}" + (f" (set by {' / '.join(named)})" if named else
                             f" (the region's default; {' / '.join(variables)} overrides it)" if variables else "")
    local = call.host.split(":")[0] in ("127.0.0.1", "localhost", "::1")
    hint = "; is `stopline dev` (or `stopline emulator`) running there?" if local and kind != "timed out" else ""
    return Transient(f"{what}: the request{where} {kind} ({type(exc).__name__}){hint}")


def retry_wait(exc: Exception) -> bool | float:
    """stamina's ``on=`` hook: retry transient failures only, honouring Retry-After."""
    if isinstance(exc, Transient):
        return exc.retry_after if exc.retry_after is not None else True
    return False


def _with_attempts(reply: Reply, attempt: int) -> Reply:
    return reply if reply.attempts == attempt else Reply(reply.outcome, reply.request_id, reply.api, attempt,
                                                         reply.resolved)


class Client:
    """The synchronous driver: httpx's transport with pooled connections, built once per process."""

    def __init__(self, core: ClientCore, *, transport: httpx.BaseTransport | None = None) -> None:
        self.core = core
        self._http, self._transport = _connect(core, transport)
        self._fan_out: ThreadPoolExecutor | None = None
        self._fan_lock = threading.Lock()

    def close(self) -> None:
        if self._fan_out is not None:
            self._fan_out.shutdown(wait=False)
        if self._http is not None:
            self._http.close()
        elif self._transport is not None:
            self._transport.close()

    def execute(self, command: Command, *, deadline: Deadline | None = None) -> Reply:
        """Run ``command`` with retries; its reply, a failure included (``reply.error``) -- never raised.

        ``deadline`` is the delivery's (:mod:`stopline.deadline`): no exchange outlives it, and no attempt
        starts without one timeout left before its hard end. A command that names no build (or
        DataArts instances, or pipeline run) is resolved first: the look-up, then every match stopped
        concurrently, each with its own retries.
        """
        if isinstance(command, StopBuild | StopDataArtsJob | StopPipelineRun) and command.resolves:
            return self._resolve(command, deadline)
        return self._member(command, deadline)

    def _resolve(self, command: Resolving, deadline: Deadline | None) -> Reply:
        from stopline.resolution import combine, job_member  # a look-up's path only: not on a cold start
        members, attempt = self._retried(command, lambda: self.core.lookup_flow(command), deadline)
        if isinstance(members, StoplineError):
            return failed(members, attempt)
        done: list[tuple[Member, Reply]] = []
        if members:
            pool = self._pool()
            done = list(zip(members, pool.map(lambda m: self._member(m, deadline), members), strict=True))
        job = job_member(command) if isinstance(command, StopDataArtsJob) else None
        if job is not None:
            done.append((job, self._member(job, deadline)))
        return combine(command, done)

    def running(self, command: StopBuild | StopPipelineRun) -> list[dict[str, Any]]:
        """The build records of the task (or the runs of the pipeline) that run or wait now and match the
        command's filters. Raises the look-up's failure (there is no outcome to report it in)."""
        if isinstance(command, StopPipelineRun):
            found, _ = self._retried(command, lambda: self.core.runs_flow(command), None)
        else:
            found, _ = self._retried(command, lambda: self.core.running_flow(command), None)
        if isinstance(found, StoplineError):
            raise found
        return found

    def read(self, what: Any, flow: Generator[Step, Any, _R], deadline: Deadline | None) -> _R | StoplineError:
        """One attempt at a read-only ``flow`` (no retries: a poller calls again): its value or its failure."""
        try:
            return self._drive(what, flow, deadline)
        except StoplineError as exc:
            return exc

    def perform(self, what: Any, flow: Callable[[], Generator[Step, Any, _R]],
                deadline: Deadline | None = None) -> _R | StoplineError:
        """A call of another API (FunctionGraph's, for ``stopline deploy``) with the same retries as a stop:
        ``flow`` builds a fresh attempt; a transient failure it raises is retried, honouring Retry-After."""
        return self._retried(what, flow, deadline)[0]

    def _member(self, member: Member | Command, deadline: Deadline | None) -> Reply:
        reply, attempt = self._retried(member, lambda: self.core.flow(member), deadline)
        if isinstance(reply, StoplineError):
            return failed(reply, attempt)
        return _with_attempts(reply, attempt)

    def _pool(self) -> ThreadPoolExecutor:
        if self._fan_out is None:
            with self._fan_lock:
                if self._fan_out is None:
                    from concurrent.futures import ThreadPoolExecutor  # the first fan-out loads it

                    self._fan_out = ThreadPoolExecutor(max_workers=FAN_OUT, thread_name_prefix="stopline-stop")
        return self._fan_out

    def _retried(self, what: Any, flow: Callable[[], Generator[Step, Any, _R]],
                 deadline: Deadline | None) -> tuple[_R | StoplineError, int]:
        """Drive ``flow`` with retries: (its value, or the failure it ended in; the attempts it took).

        The first attempt runs outside the retry loop (tenacity's bookkeeping costs ~0.1 ms a call);
        only a transient failure enters it, replayed as attempt 1 so stamina computes the wait.
        """
        try:
            return self._drive(what, flow(), deadline), 1
        except Transient as exc:
            first: Transient = exc
        except StoplineError as exc:
            return exc, 1
        attempt = 0
        try:
            for retry in _retrying(self.core, deadline):
                with retry:
                    attempt = retry.num
                    try:
                        if attempt == 1:
                            raise first
                        return self._drive(what, flow(), deadline), attempt
                    except Transient as exc:
                        _warn_retry(what, exc, attempt, self.core)
                        raise
        except StoplineError as exc:
            return exc, attempt
        raise AssertionError("unreachable: stamina either returns or raises")

    def _drive(self, what: Any, flow: Generator[Step, Any, _R], deadline: Deadline | None) -> _R:
        label = describe(what)
        try:
            step = next(flow)
            while True:
                answer = self._token(deadline) if isinstance(step, NeedToken) else self._send(label, step, deadline)
                step = flow.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _send(self, what: str, call: Call, deadline: Deadline | None) -> RawReply:
        """One exchange, bounded as a whole by the timeout and the deadline, whichever ends first."""
        budget = attempt_budget(self.core.timeout_s, what, deadline)
        with bounded_exchange(budget) as ends:
            return self._exchange(what, call, budget, ends)

    def _exchange(self, what: str, call: Call, budget: float, ends: float) -> RawReply:
        import httpx

        try:
            if self._transport is None:
                assert self._http is not None
                request = self._http.build_request(call.method, call.url, headers=call.headers, content=call.body,
                                                   timeout=budget)
                response = self._http.send(request, stream=True)
            else:
                request = httpx.Request(call.method, call.url, headers=call.headers, content=call.body,
                                        extensions={"timeout": httpx.Timeout(budget).as_dict()})
                response = self._transport.handle_request(request)
            try:
                chunks = []
                for chunk in response.stream:  # type: ignore[union-attr]
                    chunks.append(chunk)
                    if time.monotonic() > ends:  # a transport without sockets (the in-process emulator)
                        raise overdue(what, budget)
            finally:
                response.close()
        except httpx.TransportError as exc:
            if time.monotonic() >= ends:
                raise overdue(what, budget) from None
            raise transport_failure(what, exc, call, self.core) from None
        return RawReply(response.status_code, response.headers, b"".join(chunks))

    def _token(self, deadline: Deadline | None) -> str:
        creds = cast("IamPasswordToken", self.core.credentials)  # the only credentials that need a token
        attempt_budget(self.core.timeout_s, "IAM token", deadline)
        return creds.fetch(lambda call: self._send("IAM token", call, deadline), wait_s=self.core.timeout_s)
