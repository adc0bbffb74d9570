"""A moto-style fake of Huawei Cloud IAM, CodeArts Build, DataArts Studio, CodeArts Pipeline, SMN and
FunctionGraph's management API (docs/cloud-answers.md).

In process::

    with mock_huaweicloud() as cloud:
        cloud.seed(build_tasks=[{"job_id": "...", "project_id": "...", "builds": [{"build_no": 20}]}])
        ...  # stopline's client now talks to `cloud` through the transport seam
        assert cloud.calls[-1]["status"] == 200

As a server: ``stopline emulator --port 8790 --seed demo`` (or :meth:`Emulator.serve`).

Layout (moto's split): ``state`` holds the backend, ``routes`` the HTTP behaviour and control API,
``faults`` the injection rules, ``server`` the two ways of serving. Nothing here imports stopline's
client, pipeline or triggers.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

from stopline import transport as _transport
from stopline.emulator.faults import FaultKind, FaultRule, Faults
from stopline.emulator.routes import Router
from stopline.emulator.seeds import DEMO_AK, DEMO_CODEARTS_PROJECT_ID, DEMO_PROJECT_ID, DEMO_SK, demo
from stopline.emulator.server import EmulatorServer, EmulatorTransport
from stopline.emulator.state import CloudState

__all__ = ["Emulator", "EmulatorServer", "mock_huaweicloud"]

F = TypeVar("F", bound=Callable[..., Any])

MOCK_AK = "MOCKAK00000000000001"
MOCK_SK = "mock-secret-key-for-the-in-process-emulator"
MOCK_PROJECT_ID = "0123456789abcdef0123456789abcdef"
_CREDENTIAL_ENV = (
    "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN", "HUAWEICLOUD_SDK_PROJECT_ID",
    "STOPLINE_AUTH_TOKEN", "STOPLINE_IAM_USERNAME", "STOPLINE_IAM_PASSWORD", "STOPLINE_IAM_DOMAIN",
    "STOPLINE_CODEARTS_BUILD_ENDPOINT", "STOPLINE_DATAARTS_ENDPOINT", "STOPLINE_IAM_ENDPOINT",
    "STOPLINE_CODEARTS_PIPELINE_ENDPOINT", "STOPLINE_CODEARTS_PROJECT_ID", "STOPLINE_SMN_ENDPOINT",
)


class Emulator:
    """One fake cloud: state, fault rules, the recorded calls, and ways to reach it."""

    def __init__(self) -> None:
        self.state = CloudState()
        self.faults = Faults()
        self.router = Router(self.state, self.faults)
        self.transport = EmulatorTransport(self.router)

    def seed(self, data: dict[str, Any] | str | None = None, **sections: Any) -> Emulator:
        """Add state: ``"demo"``, a dict in the control API's seed shape, or its sections as keywords."""
        if data == "demo":
            data = demo()
        elif isinstance(data, str):
            raise ValueError(f"unknown seed {data!r}; the built-in one is 'demo'")
        self.state.seed({**(data or {}), **sections})
        return self

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every cloud call received, in order (method, path, status, auth, request_id, time, fault)."""
        with self.state.lock:
            return list(self.router.calls)

    @property
    def smn_messages(self) -> list[dict[str, Any]]:
        """Every message published to an SMN topic (``topic_urn``, ``subject``, ``message``, ``message_id``)."""
        with self.state.lock:
            return list(self.state.smn_messages)

    @property
    def effects(self) -> list[dict[str, Any]]:
        """Every effective state change (a build stopped, a task deleted, a job stopped)."""
        with self.state.lock:
            return list(self.state.effects)

    def inject(self, path: str, kind: FaultKind, *, rate: float | None = None, count: int | None = None,
               seed: int | None = None, status: int = 503, retry_after: float | None = 1,
               delay_ms: int | None = None, error_code: str | None = None) -> FaultRule:
        """Add a fault rule for paths matching the regex ``path`` (see the control API)."""
        rule = FaultRule(path=path, kind=kind, rate=rate, count=count, seed=seed, status=status,
                         retry_after=retry_after, delay_ms=delay_ms, error_code=error_code)
        self.faults.add(rule)
        return rule

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        self.router.reset()

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
        """Start serving on a real port (0 = any free port) in a daemon thread."""
        return EmulatorServer(self.router, host, port).start()


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class mock_huaweicloud:
    """Context manager and decorator routing stopline's httpx traffic to a fresh :class:`Emulator`.

    Like moto, it swaps in fake credentials for the duration (so real ones can never be used) and
    restores the environment afterwards. Pass ``seed="demo"`` to start with the demo state.
    """

    def __init__(self, seed: dict[str, Any] | str | None = None, *, fake_credentials: bool = True) -> None:
        self._seed = seed
        self._fake_credentials = fake_credentials
        # One entry per active ``with`` (the same object may be entered again inside itself).
        self._active: list[tuple[dict[str, str | None], Any, Emulator]] = []
        self.emulator: Emulator | None = None

    def __enter__(self) -> Emulator:
        emulator = Emulator()
        saved: dict[str, str | None] = {}
        override: Any = None
        try:
            if self._fake_credentials:
                # With the demo seed, use its credentials so its projects' jobs are reachable.
                ak, sk, project = ((DEMO_AK, DEMO_SK, DEMO_PROJECT_ID) if self._seed == "demo"
                                   else (MOCK_AK, MOCK_SK, MOCK_PROJECT_ID))
                saved = {name: os.environ.get(name) for name in _CREDENTIAL_ENV}
                for name in _CREDENTIAL_ENV:
                    os.environ.pop(name, None)
                os.environ.update(HUAWEICLOUD_SDK_AK=ak, HUAWEICLOUD_SDK_SK=sk, HUAWEICLOUD_SDK_PROJECT_ID=project)
                if self._seed == "demo":  # the demo pipeline's CodeArts project, as for the IAM one
                    os.environ["STOPLINE_CODEARTS_PROJECT_ID"] = DEMO_CODEARTS_PROJECT_ID
                emulator.seed(credentials=[{"ak": ak, "sk": sk, "project_id": project}])
            if self._seed is not None:
                emulator.seed(self._seed)
            override = _transport.override(emulator.transport)
            override.__enter__()
        except BaseException:
            _restore(saved)  # a bad seed must not leave fake credentials behind
            raise
        self._active.append((saved, override, emulator))
        self.emulator = emulator
        return emulator

    def __exit__(self, *exc: object) -> None:
        saved, override, _ = self._active.pop()
        try:
            override.__exit__(None, None, None)
        finally:
            _restore(saved)
            self.emulator = self._active[-1][2] if self._active else None

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with mock_huaweicloud(self._seed, fake_credentials=self._fake_credentials):
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with mock_huaweicloud(self._seed, fake_credentials=self._fake_credentials):
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
