"""The shared store: one Redis key per idempotency key, claimed with ``SET NX PX``.

Records are JSON. ``release`` and ``complete`` only touch a key still holding our claim token (a
small Lua script), so a slow first delivery whose claim expired cannot overwrite a newer one.
Any Redis error becomes :class:`StoreUnavailable` -- the caller answers 503, never calls twice.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from stopline.idempotency import StoreUnavailable

_PREFIX = "stopline:idem:"
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore:
    remote = True

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                                           health_check_interval=30)
        self._release = self._redis.register_script(_RELEASE)

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        try:
            created = self._redis.set(_PREFIX + key, json.dumps(record), nx=True, px=int(ttl_s * 1000))
            if created:
                return None
            raw = self._redis.get(_PREFIX + key)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"idempotency store unreachable ({type(exc).__name__})") from None
        if raw is None:  # expired between SET and GET: try once more
            return self.claim(key, record, ttl_s)
        return json.loads(cast(bytes, raw))  # type: ignore[no-any-return]

    def complete(self, key: str, record: dict[str, Any], ttl_s: float) -> None:
        try:
            self._redis.set(_PREFIX + key, json.dumps(record), px=int(ttl_s * 1000))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"idempotency store unreachable ({type(exc).__name__})") from None

    def release(self, key: str, token: str) -> None:
        try:
            self._release(keys=[_PREFIX + key], args=[token])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"idempotency store unreachable ({type(exc).__name__})") from None

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self._redis.get(_PREFIX + key)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"idempotency store unreachable ({type(exc).__name__})") from None
        return json.loads(cast(bytes, raw)) if raw else None

    def close(self) -> None:
        self._redis.close()
