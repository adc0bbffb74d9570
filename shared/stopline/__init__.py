"""stopline: stop CodeArts builds and Pipeline runs, delete build tasks and stop DataArts jobs -- from
webhooks and queues, exactly once.

The library surface is ``__all__``: :class:`Client` (the Python API), :class:`Result` and :class:`Outcome`
(what every ``Client`` method returns), :class:`Settings`, and the error classes a caller can catch.
Everything else in the package is internal and may change between releases; for tests, the emulator
(``stopline.emulator.mock_huaweicloud``) and ``stopline.webhooks.sign`` are supported too.

The function targets live in ``functions/``. Importing this package costs nothing: each name loads its
module when first used, and ``__version__`` is read from the installed metadata only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stopline.api import Client
    from stopline.errors import (
        ConfigurationError,
        Conflict,
        Forbidden,
        InProgress,
        InvalidCommand,
        NotFound,
        RequestError,
        StoplineError,
        Transient,
        UpstreamAuth,
        UpstreamError,
        UpstreamMisconfigured,
        UpstreamRejected,
        UpstreamUnexpected,
    )
    from stopline.models import Outcome, Result
    from stopline.settings import Settings

_ERRORS = ("StoplineError", "RequestError", "InvalidCommand", "Forbidden", "Conflict", "UpstreamError",
           "NotFound", "UpstreamRejected", "UpstreamAuth", "UpstreamMisconfigured", "UpstreamUnexpected",
           "Transient", "InProgress", "ConfigurationError")
_HOME = {"Client": "stopline.api", "Result": "stopline.models", "Outcome": "stopline.models",
         "Settings": "stopline.settings", **dict.fromkeys(_ERRORS, "stopline.errors")}

__all__ = ["Client", "ConfigurationError", "Conflict", "Forbidden", "InProgress", "InvalidCommand", "NotFound",
           "Outcome", "RequestError", "Result", "Settings", "StoplineError", "Transient", "UpstreamAuth",
           "UpstreamError", "UpstreamMisconfigured", "UpstreamRejected", "UpstreamUnexpected"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is not None:
        from importlib import import_module

        return getattr(import_module(home), name)
    if name == "__version__":
        from importlib.metadata import version

        return version("stopline")
    raise AttributeError(f"module 'stopline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
