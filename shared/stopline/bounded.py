"""One bound per exchange: httpx's timeouts apply per socket operation, so a server that sends its status
line, headers or body one byte at a time can hold a request far past any timeout.

A network backend wrapped around httpcore's own reads an absolute end from the sending thread
(:func:`bounded_exchange`) and gives every socket operation of that exchange -- connect, TLS, each write,
each read of the status line, headers and body -- only the time left until then. When it passes, the read
fails, httpcore closes the connection, and only then does the failure reach the caller. Two clock reads
per socket operation, no thread. The driver sends every cloud call this way; the audit receiver's POSTs
go the same way, so no sender stopline talks to can hold a delivery past its deadline.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpcore
    import httpx

_exchange = threading.local()
"""``ends``: the ``time.monotonic()`` second at which the current thread's exchange is abandoned."""


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """A socket operation's timeout, cut to what is left of this thread's exchange."""
    ends: float | None = getattr(_exchange, "ends", None)
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise expired("the exchange ran past its time bound")
    return left if timeout is None else min(timeout, left)


@functools.cache
def _bounded_classes() -> tuple[type[Any], type[Any]]:
    """The backend and stream wrappers, made on first use so httpcore is imported only when sending."""
    import httpcore

    class BoundedStream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> httpcore.NetworkStream:
            inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
            return BoundedStream(inner)

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class BoundedBackend(httpcore.NetworkBackend):
        def __init__(self, inner: httpcore.NetworkBackend) -> None:
            self._inner = inner

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
            return BoundedStream(self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout),
                                                         local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
            return BoundedStream(self._inner.connect_unix_socket(
                path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return BoundedBackend, BoundedStream


def bound_transport(transport: Any) -> bool:
    """Give an httpx network transport's connection pool the bounded backend; False when ``transport`` has
    no httpcore pool (the emulator's in-process transport, which has no sockets to hold)."""
    import httpcore

    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool, "_network_backend"):
        return False
    backend, _ = _bounded_classes()
    if not isinstance(pool._network_backend, backend):
        pool._network_backend = backend(pool._network_backend)
    return True


def bound_client(client: httpx.Client) -> None:
    """Give every transport of a full ``httpx.Client`` (its own and the proxies it mounted from the
    environment) the bounded backend, so :func:`bounded_exchange` holds for whatever it sends."""
    for mounted in [client._transport, *client._mounts.values()]:
        bound_transport(mounted)


@contextlib.contextmanager
def bounded_exchange(budget_s: float) -> Iterator[float]:
    """This thread's exchange inside may take ``budget_s`` in all: each socket operation of a bounded
    transport gets only what is left until then. Yields the ``time.monotonic()`` end."""
    ends = time.monotonic() + budget_s
    _exchange.ends = ends
    try:
        yield ends
    finally:
        _exchange.ends = None
