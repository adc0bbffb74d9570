"""The transport seam: which httpx transport new clients use.

``None`` means httpx's own network transport. :func:`override` installs another one (the emulator's
in-process transport) for the duration of a ``with`` block; clients built inside it route every
request there. Nothing is monkeypatched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_stack: list[Any] = []
_listeners: list[Callable[[], None]] = []


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the transport changes, so cached clients are rebuilt."""
    _listeners.append(callback)


def _changed() -> None:
    for callback in list(_listeners):
        callback()


def current() -> Any | None:
    """The transport new clients should use, or None for the network."""
    return _stack[-1] if _stack else None


@contextmanager
def override(transport: Any) -> Iterator[Any]:
    """Route clients built inside the block through ``transport`` (sync and async capable)."""
    with _lock:
        _stack.append(transport)
    _changed()
    try:
        yield transport
    finally:
        with _lock:
            _stack.remove(transport)
        _changed()
