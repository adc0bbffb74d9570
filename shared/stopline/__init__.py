"""stopline: stop CodeArts builds and DataArts jobs from webhooks and queues, exactly once.

The function targets live in ``functions/``; this package holds everything they share. Importing it
costs nothing: submodules load when used, and ``__version__`` is read from the installed metadata only
when asked for.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("stopline")
    raise AttributeError(f"module 'stopline' has no attribute {name!r}")
