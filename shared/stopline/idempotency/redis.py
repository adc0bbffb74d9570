"""The shared store: one Redis key per idempotency key, claimed with ``SET NX PX`` -- or read, when it is
taken -- in one Lua script.

Topologies, all through redis-py's own clients: ``redis://`` and ``rediss://`` (TLS; redis-py's query
options such as ``ssl_cert_reqs`` and ``ssl_ca_certs``), ``unix://``, ``redis+cluster://h:p[,h:p]`` and
``rediss+cluster://`` (Redis Cluster, e.g. Huawei DCS cluster instances), and
``redis+sentinel://h:p[,h:p]/<service>[/db]`` (master/standby behind Sentinel).

Records are JSON. ``complete`` and ``release`` are compare-and-set on the claim token (one Lua script
each, on the key's own slot), so a delivery whose lease expired cannot overwrite or drop a newer claim.
The claim is a script too: one round trip whether it wins or finds a twin, and a Redis user who may not
run scripts is refused at the claim, before the cloud is called, not when the result is to be written.
Any Redis error becomes :class:`StoreUnavailable` -- the caller answers 503, never calls twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis

from stopline.idempotency import StoreUnavailable

log = logging.getLogger("stopline")

_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""
"""Claim the key with the record ARGV[1] for ARGV[2] ms; nil when claimed, else the record that holds it."""
_REPLACE_IF = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, rec = pcall(cjson.decode, v)
if ok and type(rec) == 'table' and rec[ARGV[4]] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
"""Replace the record only if its field ARGV[4] still equals ARGV[1]: completing (the claim's ``token``)
and taking over (its ``state``) are the same compare-and-set on different fields."""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, rec = pcall(cjson.decode, v)
if ok and type(rec) == 'table' and rec['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_ADD_RETRY = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
_TAKE_RETRIES = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[2], id)
  if v then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    table.insert(out, v)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""
_DROP_RETRY = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""
TIMEOUTS: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
# Every failure inside a call to redis-py is the store's: besides RedisError, its cluster client lets a
# connection torn down under a concurrent command (a node restarting) escape as ValueError ("I/O operation
# on closed file") or AttributeError ("'NoneType' object has no attribute 'readline'"); seen in
# tests/functions/test_redis_topologies.py. Only redis-py calls sit inside these try blocks.
_ERRORS = (Exception,)


def _hosts(netloc: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """(username, password, [(host, port), ...]) of ``[user:password@]h:p[,h:p]``; ValueError if malformed."""
    credentials, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    found = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("each node must be host:port")
        found.append((host.strip("[]"), int(port)))
    return username, password, found


def _tls(query: dict[str, str]) -> dict[str, Any]:
    return {k: v for k, v in query.items() if k.startswith("ssl_")}


def connect(url: str) -> Callable[[], Any]:
    """A factory of the redis-py client for ``url`` (see the module docstring). The URL is checked now
    (ValueError when malformed); the client is made on first use, because a Cluster client talks to the
    nodes as it is built and a store that is down at start must be a 503, not a crash."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    if scheme in ("redis+cluster", "rediss+cluster"):
        from redis.cluster import ClusterNode, RedisCluster

        username, password, nodes = _hosts(parts.netloc)
        def cluster() -> Any:
            startup = [ClusterNode(h, p) for h, p in nodes]  # type: ignore[no-untyped-call]
            return RedisCluster(startup_nodes=startup, username=username, password=password,
                                ssl=scheme == "rediss+cluster", **_tls(query), **TIMEOUTS)

        return cluster
    if scheme == "redis+sentinel":
        from redis.sentinel import Sentinel

        username, password, nodes = _hosts(parts.netloc)
        path = [p for p in parts.path.split("/") if p]
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("a sentinel URL needs /<service_name>[/db]")
        sentinel_kwargs = {"password": query["sentinel_password"]} if query.get("sentinel_password") else None
        db = int(path[1]) if len(path) == 2 else 0
        return lambda: Sentinel(nodes, sentinel_kwargs=sentinel_kwargs, **TIMEOUTS).master_for(  # type: ignore[no-untyped-call]
            path[0], db=db, username=username, password=password, **TIMEOUTS)
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("unknown scheme")
    if scheme != "unix":
        _ = parts.port  # raises ValueError for a port out of range
        if not parts.hostname:
            raise ValueError("no host")
    client = redis.Redis.from_url(url, health_check_interval=30, **TIMEOUTS)  # parses, does not connect
    return lambda: client


def warn_if_evicting(client: Any) -> None:
    """Unless Redis's ``maxmemory-policy`` is ``noeviction``, a Redis short of memory may evict keys --
    with the ``volatile-*`` policies exactly stopline's, which all expire -- and an evicted claim or result
    lets a redelivered event run twice. One INFO call; a server that refuses it (some managed services
    rename it) is not judged."""
    try:  # a cluster client asks one node unless told: every primary holds keys of its own
        info = client.info("memory", target_nodes=client.PRIMARIES) if hasattr(client, "get_primaries") \
            else client.info("memory")
    except _ERRORS as exc:
        log.debug("could not read Redis's maxmemory-policy (%s)", type(exc).__name__)
        return
    nodes = [info] if "maxmemory_policy" in info else [v for v in info.values() if isinstance(v, dict)]
    evicting = sorted({str(n["maxmemory_policy"]) for n in nodes if n.get("maxmemory_policy", "noeviction")
                       != "noeviction"})
    if evicting:
        log.warning("Redis maxmemory-policy is %s: short of memory, Redis may evict stopline's claims and "
                    "results, and a redelivered event would then run twice; set maxmemory-policy to "
                    "noeviction (a full Redis then refuses writes, and stopline answers 503 until it has room)",
                    ", ".join(evicting), extra={"error_type": "configuration"})


class _Client:
    """The redis-py client and its scripts, made once on first use; its eviction policy is checked then,
    on a daemon thread, off the first request's path."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.redis = make()
        threading.Thread(target=warn_if_evicting, args=(self.redis,), name="stopline-redis-policy",
                         daemon=True).start()
        self.claim = self.redis.register_script(_CLAIM)
        self.replace_if = self.redis.register_script(_REPLACE_IF)
        self.release = self.redis.register_script(_RELEASE)
        self.add_retry = self.redis.register_script(_ADD_RETRY)
        self.take_retries = self.redis.register_script(_TAKE_RETRIES)
        self.drop_retry = self.redis.register_script(_DROP_RETRY)


class RedisStore:
    """Records under their own keys; pending retries in one sorted set (due time) and one hash (the
    items), whose names share a hash tag so every script runs on one slot of a cluster."""

    remote = True

    def __init__(self, url: str, *, prefix: str = "stopline:") -> None:
        self._make = connect(url)
        self._tls = urlsplit(url).scheme.lower().startswith("rediss")
        self._retry_keys = [f"{prefix}{{retries}}:due", f"{prefix}{{retries}}:items"]
        self._client: _Client | None = None
        self._lock = threading.Lock()

    def _c(self) -> _Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = _Client(self._make)
                    except _ERRORS as exc:
                        raise self._unavailable(exc) from None
        return self._client

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        """The failure as the store's, in words that say what to fix when it will not go away by itself."""
        kind = type(exc).__name__
        text = str(exc).lower()
        if isinstance(exc, redis.AuthenticationError):  # NOAUTH, WRONGPASS: no retry will get past it
            return StoreUnavailable(f"idempotency store refused stopline's credentials ({kind}): check the "
                                    "password (and ACL user) in STOPLINE_IDEMPOTENCY_URL, e.g. "
                                    "redis://:PASSWORD@host:6379/0 or redis://USER:PASSWORD@host:6379/0")
        if isinstance(exc, redis.exceptions.NoPermissionError):
            return StoreUnavailable(f"idempotency store: the Redis ACL user may not run a command stopline needs "
                                    f"({exc}); docs/exactly-once.md lists them")
        if self._tls and ("timeout" in kind.lower() or "ssl" in kind.lower() or "ssl" in text or "tls" in text):
            return StoreUnavailable(f"idempotency store unreachable: the TLS handshake failed ({kind}); a rediss:// "
                                    "URL needs a server that speaks TLS on that port (plain Redis takes redis://)")
        return StoreUnavailable(f"idempotency store unreachable ({kind})")

    def claim(self, key: str, record: dict[str, Any], ttl_s: float) -> dict[str, Any] | None:
        try:
            raw = self._c().claim(keys=[key], args=[json.dumps(record), max(1, int(ttl_s * 1000))])
        except _ERRORS as exc:
            raise self._unavailable(exc) from None
        return None if raw is None else json.loads(cast(bytes, raw))

    def complete(self, key: str, token: str, record: dict[str, Any], ttl_s: float) -> bool:
        try:
            done = self._c().replace_if(keys=[key], args=[token, json.dumps(record), max(1, int(ttl_s * 1000)),
                                                          "token"])
        except _ERRORS as exc:
            raise self._unavailable(exc) from None
        return bool(done)

    def release(self, key: str, token: str) -> bool:
        try:
            return bool(self._c().release(keys=[key], args=[token]))
        except _ERRORS as exc:
            raise self._unavailable(exc) from None

    def takeover(self, key: str, state: str, record: dict[str, Any], ttl_s: float) -> bool:
        try:
            return bool(self._c().replace_if(keys=[key], args=[state, json.dumps(record),
                                                              max(1, int(ttl_s * 1000)), "state"]))
        except _ERRORS as exc:
            raise self._unavailable(exc) from None

    def add_retry(self, item_id: str, item: dict[str, Any], due: float) -> None:
        try:
            self._c().add_retry(keys=self._retry_keys, args=[item_id, json.dumps(item), repr(due)])
        except _ERRORS as exc:
            raise self._unavailable(exc) from None

    def take_retries(self, now: float, limit: int, hold_s: float) -> list[dict[str, Any]]:
        try:
            raw = self._c().take_retries(keys=self._retry_keys, args=[repr(now), limit, repr(now + hold_s)])
        except _ERRORS as exc:
            raise self._unavailable(exc) from None
        return [json.loads(v) for v in raw]

    def drop_retry(self, item_id: str) -> None:
        try:
            self._c().drop_retry(keys=self._retry_keys, args=[item_id])
        except _ERRORS as exc:
            raise self._unavailable(exc) from None

    def list_retries(self) -> list[tuple[float, dict[str, Any]]]:
        try:
            client = self._c().redis
            due = client.zrange(self._retry_keys[0], 0, -1, withscores=True)
            items = client.hgetall(self._retry_keys[1])
        except _ERRORS as exc:
            raise self._unavailable(exc) from None
        found = {k.decode() if isinstance(k, bytes) else k: v for k, v in items.items()}
        return [(float(score), json.loads(found[member.decode() if isinstance(member, bytes) else member]))
                for member, score in due if (member.decode() if isinstance(member, bytes) else member) in found]

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self._c().redis.get(key)
        except _ERRORS as exc:
            raise self._unavailable(exc) from None
        return json.loads(cast(bytes, raw)) if raw else None

    def close(self) -> None:
        if self._client is not None:
            self._client.redis.close()
