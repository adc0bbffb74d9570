"""The process-wide runtime: settings, client, store and pipeline, built once on first use.

Importing this module costs only the standard library; the first invocation builds the runtime and
caches it, so a configuration problem becomes an invocation error naming the variables (not an
import crash), and later invocations pay nothing. Changing the transport (the emulator's
``mock_huaweicloud``) drops the cache so the next call is rebuilt against it.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stopline import transport

if TYPE_CHECKING:
    from pydantic import SecretStr

    from stopline.auth.credentials import Credentials
    from stopline.client import ClientCore
    from stopline.driver import Client
    from stopline.pipeline import Pipeline
    from stopline.retries import Worker
    from stopline.rules import Rules
    from stopline.senders import Source
    from stopline.settings import Settings

log = logging.getLogger("stopline")
RuntimeSource = Callable[[], "Runtime"]
"""How an entry point hands the trigger adapters the runtime: ``get_runtime`` (the process's one), called
only once a request has passed the checks that need no configuration (405, 413)."""


class Runtime:
    """Everything an invocation needs, composed from settings (constructor injection throughout)."""

    def __init__(self, settings: Settings, *, transport_override: Any = None, configure_logging: bool = True) -> None:
        """``configure_logging``: the functions write JSON lines to stderr; a library caller (the Python
        API) leaves log output to its application."""
        from stopline import logs
        from stopline.idempotency import open_store
        from stopline.idempotency.handler import Idempotency
        from stopline.pipeline import Pipeline

        self.settings = settings
        self._transport = transport_override
        self._lock = threading.Lock()
        self._core: ClientCore | None = None
        self._client: Client | None = None
        self._agency: dict[str, tuple[Client, Pipeline]] = {}
        self._worker: Worker | None = None
        if configure_logging:
            logs.configure(settings.log_level)
        elif not logging.getLogger("stopline").handlers:
            # without a handler Python's last-resort one would print every failed result to stderr
            logging.getLogger("stopline").addHandler(logging.NullHandler())
        logs.register_secret(*(secret.get_secret_value() for secret in (
            *settings.webhook_secrets, *settings.github_secrets, *settings.gitlab_tokens,
            *settings.gitlab_signing_secrets, settings.sk, settings.security_token, settings.auth_token,
            settings.iam_password) if secret is not None))
        self.sources = _senders(settings)
        self.rules: Rules | None = None
        if settings.rules:
            from stopline.rules import load

            self.rules = load(settings.rules)
        store = open_store(settings.idempotency_url, max_entries=settings.idempotency_max_entries,
                           protect_s=settings.webhook_tolerance_s, prefix=settings.idempotency_prefix)
        self.idempotency = Idempotency(store, ttl_s=settings.idempotency_ttl_s, wait_s=settings.timeout_s,
                                       pending_ttl_s=settings.retry_for_s + settings.idempotency_ttl_s)
        self.pipeline: Pipeline = Pipeline(settings, self.idempotency, client=self.client)

    def core(self) -> ClientCore:
        if self._core is None:
            from stopline.client import core_from

            with self._lock:
                if self._core is None:
                    self._core = core_from(self.settings)
        return self._core

    def client(self) -> Client:
        if self._client is None:
            from stopline.driver import Client

            core = self.core()
            with self._lock:
                if self._client is None:
                    self._client = Client(core, transport=self._transport)
        return self._client

    def start_retry_worker(self) -> None:
        """Run due pending retries about once a second on a daemon thread, for as long as this process
        serves (functions-framework workers, ``stopline dev``); started once, by the first request."""
        if self._worker is None:
            from stopline.retries import Worker

            with self._lock:
                if self._worker is None:
                    self._worker = Worker(lambda: self.pipeline.retries.run_due(self.pipeline))
        self._worker.start()

    def pipeline_for_agency(self, credentials: Credentials, project_id: str | None) -> Pipeline:
        """A pipeline whose client signs with FunctionGraph agency credentials (used only when no other
        credentials are configured); cached per temporary access key, sharing the idempotency.

        Temporary keys rotate every few minutes, so only the newest few are kept. An evicted entry is
        dropped, never closed: an invocation may still be using it, and its connections and threads are
        freed by the garbage collector once nothing refers to it (closing it here raced with those
        invocations: "cannot schedule new futures after shutdown")."""
        from stopline.client import core_from
        from stopline.driver import Client
        from stopline.pipeline import Pipeline

        key = getattr(credentials, "access_key", "") or "agency"
        with self._lock:
            entry = self._agency.get(key)
            if entry is None:
                client = Client(core_from(self.settings, agency=credentials, project_id=project_id),
                                transport=self._transport)
                pipeline = Pipeline(self.settings, self.idempotency, client=lambda: client)
                entry = self._agency[key] = (client, pipeline)
                if len(self._agency) > 4:
                    self._agency.pop(next(iter(self._agency)))
        return entry[1]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        for client, pipeline in self._agency.values():
            client.close()
            pipeline.shutdown()
        self.pipeline.close()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def _senders(settings: Settings) -> dict[str, Source]:
    """Who may send what: one verifier per HTTP sender, holding the keys the settings name (as bytes)."""
    from stopline.errors import ConfigurationError
    from stopline.senders import GitHub, GitLab, PlatformAuthenticated, StandardWebhooks
    from stopline.webhooks import secret_keys

    def plain(values: tuple[SecretStr, ...]) -> list[str]:
        return [v.get_secret_value() for v in values]

    try:
        webhook_keys = secret_keys(plain(settings.webhook_secrets), "STOPLINE_WEBHOOK_SECRETS")
        signing_keys = secret_keys(plain(settings.gitlab_signing_secrets), "STOPLINE_GITLAB_SIGNING_SECRETS")
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    # GitHub and GitLab secret tokens are whatever the user typed into the hook's form: used as bytes.
    github_keys = tuple(s.encode() for s in plain(settings.github_secrets))
    gitlab_tokens = tuple(s.encode() for s in plain(settings.gitlab_tokens))
    unsigned, window = settings.allow_unsigned, settings.webhook_tolerance_s
    sources: dict[str, Source] = {
        "webhook": StandardWebhooks(webhook_keys, unsigned, window),
        "github": GitHub(github_keys, unsigned),
        "gitlab": GitLab(gitlab_tokens, signing_keys, unsigned, window),
    }
    if settings.retries_auth == "platform":
        sources["retries"] = PlatformAuthenticated()
    if not webhook_keys and unsigned:
        log.warning("STOPLINE_ALLOW_UNSIGNED=1: HTTP targets accept unsigned requests (local development only)")
    return sources


def get_runtime() -> Runtime:
    """The cached runtime; raises ConfigurationError (naming variables) when settings are invalid."""
    global _runtime
    if _runtime is None:
        from stopline.settings import load_settings

        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime(load_settings(), transport_override=transport.current())
    return _runtime


def serving() -> Runtime:
    """The runtime of a long-lived serving process: :func:`get_runtime`, with its pending-retry worker
    started (functions/main.py hands the targets this)."""
    runtime = get_runtime()
    runtime.start_retry_worker()
    return runtime


def reset_runtime() -> None:
    """Forget the cached runtime (settings or transport changed); the next call builds a new one."""
    global _runtime
    with _runtime_lock:
        old, _runtime = _runtime, None
    if old is not None:
        old.close()


transport.on_change(reset_runtime)

PREWARM_VARIABLE = "STOPLINE_PREWARM"
"""Read before the settings exist (importing them is the cost it saves); Settings.prewarm validates it."""


def warm(choose: Callable[[Runtime], Pipeline] | None = None) -> None:
    """Do a cold start's one-time work now rather than in the first request: read the settings, build the
    command validators and the HTTP client (httpcore's import and the TLS trust store): most of a cold
    start's time over a bare functions-framework target (bench/README.md, "Cold start").

    Never raises: a configuration problem is logged, and every request then answers it in the contract's
    shape, naming the variables. ``choose`` picks the pipeline to warm (FunctionGraph's agency one).
    """
    from stopline.errors import StoplineError
    from stopline.models import build_validators

    started = time.perf_counter()
    build_validators()
    try:
        runtime = get_runtime()
        (choose(runtime) if choose is not None else runtime.pipeline).warm()
    except StoplineError as exc:
        from stopline import logs

        logs.configure()  # invalid settings fail before the runtime would have set logging up
        log.error("warm-up: %s", exc.message, extra={"error_type": exc.type})
        return
    log.info("warm-up done: settings, validators and HTTP client ready",
             extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)})


def warm_if_asked() -> None:
    """functions/main.py calls this at import: with STOPLINE_PREWARM=1 the platform's start-up (which runs
    before an instance takes traffic, e.g. Cloud Run minimum instances) pays the set-up, not a request."""
    # Anything but an off value warms, so that a misspelt value ("ture") is reported by the settings
    # validation, naming the variable, rather than silently ignored.
    if os.environ.get(PREWARM_VARIABLE, "").strip().lower() not in ("", "0", "false", "no", "off"):
        warm()


COLD_START_GC_THRESHOLD = 200_000
"""New objects between two of the garbage collector's youngest-generation runs while :func:`hold_gc` holds
it: several times what a cold start allocates from the import to the first answer (about 32,000), so none
runs during one, yet a bound on memory should :func:`release_gc` never be called."""
_held_thresholds: tuple[int, int, int] | None = None


def hold_gc() -> None:
    """Keep CPython's cyclic garbage collector out of a cold start; the entry points call this at import.

    A cold start allocates tens of thousands of objects that live as long as the process (modules, classes,
    pydantic's validators) and almost no garbage, yet the collector runs after every 700 new objects and
    walks the young ones each time: about 8 ms of a cold start (bench/README.md, "Cold start").
    Raising its threshold rather than disabling it keeps memory bounded whatever happens next."""
    global _held_thresholds
    if _held_thresholds is None and gc.isenabled():
        _held_thresholds = gc.get_threshold()
        gc.set_threshold(COLD_START_GC_THRESHOLD, *_held_thresholds[1:])


def release_gc() -> None:
    """End :func:`hold_gc` once the first invocation has been answered: everything then alive moves to the
    permanent generation (``gc.freeze``), so no later collection walks it again, and the thresholds are
    restored. Idempotent and cheap after the first call, so every invocation of an entry point calls it."""
    global _held_thresholds
    held, _held_thresholds = _held_thresholds, None
    if held is not None:
        gc.freeze()
        gc.set_threshold(*held)
