"""The IAM password credential source: a project-scoped token fetched from IAM and cached.

No I/O here: :class:`IamPasswordToken` builds the IAM request and reads its reply, while the driver does
the sending. Loaded only when STOPLINE_IAM_USERNAME/PASSWORD/DOMAIN are configured.
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
from typing import Literal

from pydantic import SecretStr

from stopline.errors import StoplineError, Transient, UpstreamAuth
from stopline.wire import Call, RawReply

TOKEN_REFRESH_MARGIN_S = 300.0
FAILURE_MEMORY_S = 3.0
"""How long a failed IAM login is answered from memory instead of asking IAM again."""


@dataclass(eq=False)
class IamPasswordToken:
    """A project-scoped IAM token from username/password, cached until 5 minutes before it expires.

    The driver fetches under :attr:`lock` and re-checks :meth:`valid` inside it, so many concurrent first
    calls make one IAM request.
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
        info = reply.upstream()
        if reply.status == 429 or reply.status >= 500:
            raise Transient(f"IAM answered {reply.status} when asked for a token", upstream=info)
        raise UpstreamAuth(
            f"IAM refused the password login of {self.username!r} in domain {self.domain!r} "
            f"(HTTP {reply.status}); check STOPLINE_IAM_USERNAME/PASSWORD/DOMAIN",
            upstream=info,
        )
