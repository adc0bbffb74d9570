"""The credential sources of docs/configuration.md and the IAM token cache.

No I/O here: :class:`IamPasswordToken` builds the IAM request and reads its reply, while the client's
sync and async drivers do the sending under their own locks. Secrets stay ``SecretStr`` until the
moment a header is built, and no repr shows them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import SecretStr

from stopline.auth import signer
from stopline.errors import StoplineError, Transient, UpstreamAuth, UpstreamInfo
from stopline.wire import Call, RawReply, parse_error_body

if TYPE_CHECKING:
    import asyncio

CONTENT_JSON = "application/json"
TOKEN_REFRESH_MARGIN_S = 300.0
FAILURE_MEMORY_S = 3.0
"""How long a failed IAM login is answered from memory instead of asking IAM again."""


class Credentials(Protocol):
    """Turns a planned call into the headers that authenticate it."""

    @property
    def kind(self) -> str: ...

    @property
    def needs_token(self) -> bool: ...

    def apply(self, call: Call, token: str | None) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class AkSk:
    """AK/SK signing; also FunctionGraph agency credentials (temporary keys plus security token)."""

    access_key: str
    secret_key: SecretStr
    project_id: str | None = None
    security_token: SecretStr | None = None
    kind: Literal["aksk", "agency"] = "aksk"
    needs_token: bool = False

    def apply(self, call: Call, token: str | None) -> dict[str, str]:
        headers = dict(call.headers)
        if self.project_id:
            headers["X-Project-Id"] = self.project_id
        if self.security_token is not None:
            headers["X-Security-Token"] = self.security_token.get_secret_value()
        return signer.sign(
            access_key=self.access_key,
            secret_key=self.secret_key.get_secret_value(),
            method=call.method,
            host=call.host,
            path=call.path,
            query=call.query,
            headers=headers,
            body=call.body,
        )


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A ready IAM token (STOPLINE_AUTH_TOKEN, or a FunctionGraph agency token)."""

    token: SecretStr
    kind: Literal["token"] = "token"
    needs_token: bool = False

    def apply(self, call: Call, token: str | None) -> dict[str, str]:
        return {**call.headers, "X-Auth-Token": self.token.get_secret_value()}


@dataclass(eq=False)
class IamPasswordToken:
    """A project-scoped IAM token from username/password, cached until 5 minutes before it expires.

    The drivers fetch under :attr:`lock` (threads) or :meth:`async_lock` (tasks) and re-check
    :meth:`valid` inside it, so many concurrent first calls make one IAM request.
    """

    username: str
    password: SecretStr
    domain: str
    iam_endpoint: str
    project_id: str | None
    region: str
    kind: Literal["iam"] = "iam"
    needs_token: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _token: SecretStr | None = field(default=None, repr=False)
    _refresh_at: float = 0.0
    _async_locks: dict[int, asyncio.Lock] = field(default_factory=dict, repr=False)
    _inflight: Future[str] | None = field(default=None, repr=False)
    _failure: StoplineError | None = field(default=None, repr=False)
    _failed_until: float = 0.0

    def fetch(self, send: Callable[[Call], RawReply], *, wait_s: float) -> str:
        """A valid token, with one IAM request in flight per credential (single flight): concurrent callers
        share its token or its error, waiting at most ``wait_s``; a failed login is remembered for
        FAILURE_MEMORY_S, so a batch fails fast instead of queuing behind one IAM request each."""
        token = self.valid()
        if token is not None:
            return token
        with self.lock:
            token = self.valid()
            if token is not None:
                return token
            self.check_recent_failure()
            future, leader = self._inflight, False
            if future is None:
                future, leader = Future(), True
                self._inflight = future
        if not leader:
            try:
                return future.result(timeout=wait_s)
            except FutureTimeout:
                raise Transient("waited for the IAM token longer than this request may take", retry_after=1) from None
        try:
            token = self.accept(send(self.request()))
        except StoplineError as exc:
            self.remember_failure(exc)
            future.set_exception(exc)
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self.lock:
                self._inflight = None
        future.set_result(token)
        return token

    def check_recent_failure(self) -> None:
        """Raise the last login failure again while it is fresh (FAILURE_MEMORY_S)."""
        failure = self._failure
        if failure is not None and time.monotonic() < self._failed_until:
            again = type(failure)(failure.message + " (remembered: IAM failed less than "
                                  f"{FAILURE_MEMORY_S:g} s ago)", upstream=failure.upstream,
                                  retry_after=failure.retry_after)
            raise again

    def remember_failure(self, exc: StoplineError) -> None:
        self._failure, self._failed_until = exc, time.monotonic() + FAILURE_MEMORY_S

    def apply(self, call: Call, token: str | None) -> dict[str, str]:
        assert token is not None, "the driver fetches a token before applying IAM credentials"
        return {**call.headers, "X-Auth-Token": token}

    def async_lock(self) -> asyncio.Lock:
        """One asyncio lock per running loop (an asyncio.Lock must not cross loops)."""
        import asyncio

        loop_id = id(asyncio.get_running_loop())
        with self.lock:
            found = self._async_locks.get(loop_id)
            if found is None:
                found = self._async_locks[loop_id] = asyncio.Lock()
            return found

    def valid(self) -> str | None:
        token = self._token
        if token is not None and time.monotonic() < self._refresh_at:
            return token.get_secret_value()
        return None

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the cloud refused it (401); a newer token is kept."""
        current = self._token
        if current is not None and current.get_secret_value() == token:
            self._token = None

    def request(self) -> Call:
        scope = {"id": self.project_id} if self.project_id else {"name": self.region}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "password": self.password.get_secret_value(),
                            "domain": {"name": self.domain},
                        }
                    },
                },
                "scope": {"project": scope},
            }
        }
        return Call.build(
            "POST", self.iam_endpoint, "/v3/auth/tokens", api="iam",
            query=(("nocatalog", "true"),),
            headers={"Content-Type": "application/json;charset=utf8"},
            body=json.dumps(body, separators=(",", ":")).encode(),
        )

    def accept(self, reply: RawReply) -> str:
        """Read IAM's answer; cache and return the token, or raise."""
        if reply.status in (200, 201) and reply.header("x-subject-token"):
            token = reply.header("x-subject-token") or ""
            lifetime = 3600.0
            try:
                expires = json.loads(reply.body)["token"]["expires_at"]
                expires_at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
                lifetime = expires_at.timestamp() - time.time()
            except (ValueError, KeyError, TypeError):
                pass
            self._token = SecretStr(token)
            self._refresh_at = time.monotonic() + max(0.0, lifetime - TOKEN_REFRESH_MARGIN_S)
            self._failure = None
            return token
        code, msg = parse_error_body(reply.body)
        info = UpstreamInfo(reply.status, code, msg, reply.header("x-request-id"))
        if reply.status == 429 or reply.status >= 500:
            raise Transient(f"IAM answered {reply.status} when asked for a token", upstream=info)
        raise UpstreamAuth(
            f"IAM refused the password login of {self.username!r} in domain {self.domain!r} "
            f"(HTTP {reply.status}); check STOPLINE_IAM_USERNAME/PASSWORD/DOMAIN",
            upstream=info,
        )
