"""Reading JSON that strangers send: one decoder for every trigger (docs/commands.md, "HTTP status codes").

``json.loads`` alone accepts what stopline must refuse: duplicate keys (the last one wins, so a proxy
that reads the first sees another command), lone surrogates (valid JSON escapes that no UTF-8 encoder
can write back, so echoing them crashed the answer), and nesting deep enough to raise RecursionError
(about 2 KB of brackets). Each is an :class:`InvalidJson` naming the field, never a crash.
"""

from __future__ import annotations

import json
from typing import Any

from stopline.errors import InvalidJson

MAX_DEPTH = 64


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def check(value: Any, field: str) -> None:
    """Depth and lone surrogates, without recursion (the value may be as deep as json allowed)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise InvalidJson(f"{field} is nested deeper than {MAX_DEPTH} levels",
                                  details=[{"field": field, "message": f"nesting over {MAX_DEPTH} levels"}])
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str):
                    _check_text(key, field)
                stack.append((child, depth + 1))
        elif isinstance(node, str):
            _check_text(node, field)


def _check_text(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson(f"{field} holds a lone surrogate escape (\\ud800-\\udfff), which is not text",
                          details=[{"field": field, "message": "lone surrogate in a string"}]) from None


def loads(data: str | bytes, *, field: str = "body") -> Any:
    """Decode ``data`` strictly; raises InvalidJson (400) naming ``field``."""
    try:
        value = json.loads(data, object_pairs_hook=_pairs)
    except _Duplicate as exc:
        raise InvalidJson(f"{field} has the key {str(exc)[:100]!r} twice; send each key once",
                          details=[{"field": field, "message": "duplicate key"}]) from None
    except RecursionError:
        raise InvalidJson(f"{field} is nested deeper than {MAX_DEPTH} levels",
                          details=[{"field": field, "message": f"nesting over {MAX_DEPTH} levels"}]) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(f"{field} is not valid JSON ({exc.__class__.__name__})",
                          details=[{"field": field, "message": str(exc)[:200]}]) from None
    check(value, field)
    return value
