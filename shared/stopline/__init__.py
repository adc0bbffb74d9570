"""stopline: stop CodeArts builds and DataArts jobs from webhooks and queues, exactly once.

The function targets live in ``functions/``; this package holds everything they share. Importing it
costs nothing: submodules load when used (``stopline.Client``, the library API, included), and
``__version__`` is read from the installed metadata only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stopline.api import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":  # the library API (stopline.api), loaded on first use
        from stopline.api import Client

        return Client
    if name == "__version__":
        from importlib.metadata import version

        return version("stopline")
    raise AttributeError(f"module 'stopline' has no attribute {name!r}")
