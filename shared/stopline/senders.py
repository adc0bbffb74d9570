"""One :class:`Source` per sender of HTTP deliveries: how it is verified, and what keys its deliveries.

Every HTTP target takes its requests from one of these: Standard Webhooks (the ``webhook`` and per-action
targets), GitHub and GitLab. Each knows three things about its sender, so ``triggers/http.py`` has no
``if target == ...``:

- ``verify(headers, body)``: check the signature (or token) over the raw bytes, in constant time;
  return the delivery id the signature *covers*, if any -- or raise Unauthorized.
- ``key(signed_id, data)``: the idempotency key, chosen only from signed material. A header the
  signature does not cover (``X-GitHub-Delivery``, ``Idempotency-Key``, ``X-Gitlab-Webhook-UUID``)
  never keys a delivery: a captured request replayed with a fresh id must stay a duplicate. GitHub signs
  only the body, so its key is the event's identity in the body; so is GitLab's when only a secret token
  (nothing signed) authenticates it.
- ``logged_id(headers)``: the sender's own delivery id, for the log line only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from stopline.errors import Unauthorized


class Source(Protocol):
    name: ClassVar[str]
    pipeline_source: ClassVar[bool]
    """Its deliveries are pipeline events for the rules (GitHub, GitLab), not commands."""
    form_hint: ClassVar[str | None]
    """What the 415 tells this sender's user when a body came form-encoded, if that is a setting of theirs."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None: ...

    def key(self, signed_id: str | None, data: dict[str, Any]) -> str | None: ...

    @staticmethod
    def logged_id(headers: Mapping[str, str]) -> str | None: ...


class _Sender:
    """Plain classes, not dataclasses: a generated repr would show the keys, which are secrets, and
    defining a dataclass costs about 0.4 ms of every cold start (bench/README.md)."""

    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        shown = [f"{name}=<{len(getattr(self, name))} secret(s)>" if name.endswith(("keys", "tokens"))
                 else f"{name}={getattr(self, name)!r}" for name in self.__slots__]
        return f"{type(self).__name__}({', '.join(shown)})"


def _unsigned(allow_unsigned: bool, message: str) -> None:
    if not allow_unsigned:
        raise Unauthorized(message + " (or STOPLINE_ALLOW_UNSIGNED=1 for local development)")


class StandardWebhooks(_Sender):
    """Any Standard Webhooks sender: ``webhook-id`` is signed, so it keys the delivery."""

    name: ClassVar[str] = "webhook"
    pipeline_source: ClassVar[bool] = False
    form_hint: ClassVar[str | None] = None
    __slots__ = ("allow_unsigned", "keys", "tolerance_s")

    def __init__(self, keys: tuple[bytes, ...], allow_unsigned: bool = False, tolerance_s: int = 300) -> None:
        self.keys, self.allow_unsigned, self.tolerance_s = keys, allow_unsigned, tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if self.keys:
            from stopline.webhooks import verify

            return verify(self.keys, headers, body, tolerance_s=self.tolerance_s)
        _unsigned(self.allow_unsigned, "no webhook secret is configured: set STOPLINE_WEBHOOK_SECRETS")
        return headers.get("webhook-id") or None

    def key(self, signed_id: str | None, data: dict[str, Any]) -> str | None:
        return signed_id

    @staticmethod
    def logged_id(headers: Mapping[str, str]) -> str | None:
        value = headers.get("webhook-id")
        return value[:200] if value else None


class PlatformAuthenticated(_Sender):
    """The ``retries`` target with ``STOPLINE_RETRIES_AUTH=platform``: its callers are authenticated before
    the request reaches stopline (Cloud Run or Cloud Functions IAM, with Cloud Scheduler's OIDC token), and
    a scheduler cannot compute a signature per request. Nothing to verify, and nothing keys the request:
    running what is due is safe to repeat (each retry is claimed, and its own key guards its call)."""

    name: ClassVar[str] = "retries"
    pipeline_source: ClassVar[bool] = False
    form_hint: ClassVar[str | None] = None

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return None

    def key(self, signed_id: str | None, data: dict[str, Any]) -> str | None:
        return None

    @staticmethod
    def logged_id(headers: Mapping[str, str]) -> str | None:
        return None


def _part(value: Any) -> str:
    return "" if value is None else str(value)


class GitHub(_Sender):
    """GitHub signs the body only (``X-Hub-Signature-256``): the key is the event's identity in it,
    ``<event>:<run or job id>:<run_attempt>:<action>:<conclusion>``, the same for every redelivery of one
    state change and different for the next one (a re-run is a new attempt)."""

    name: ClassVar[str] = "github"
    pipeline_source: ClassVar[bool] = True
    # GitHub's webhook form defaults to a form body; left so, every delivery fails and none is redelivered.
    form_hint: ClassVar[str | None] = "set the GitHub webhook's Content type to application/json (Settings -> " \
        "Webhooks -> Edit)"
    __slots__ = ("allow_unsigned", "keys")

    def __init__(self, keys: tuple[bytes, ...], allow_unsigned: bool = False) -> None:
        self.keys, self.allow_unsigned = keys, allow_unsigned

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if self.keys:
            from stopline.sources import verify_github

            verify_github(self.keys, headers, body)
        else:
            _unsigned(self.allow_unsigned, "no GitHub webhook secret is configured: set STOPLINE_GITHUB_SECRETS")
        return None

    def key(self, signed_id: str | None, data: dict[str, Any]) -> str | None:
        for event in ("workflow_run", "workflow_job"):
            item = data.get(event)
            if isinstance(item, dict) and item.get("id") is not None:
                return ":".join([event, _part(item.get("id")), _part(item.get("run_attempt")),
                                 _part(data.get("action")), _part(item.get("conclusion"))])
        return None

    @staticmethod
    def logged_id(headers: Mapping[str, str]) -> str | None:
        return headers.get("x-github-delivery") or None


class GitLab(_Sender):
    """A signing token (Standard Webhooks headers) signs ``webhook-id``, which then keys the delivery; a
    secret token signs nothing, so the key is ``<object_kind>:<pipeline id | build_id>:<status>``."""

    name: ClassVar[str] = "gitlab"
    pipeline_source: ClassVar[bool] = True
    form_hint: ClassVar[str | None] = None
    __slots__ = ("allow_unsigned", "signing_keys", "tokens", "tolerance_s")

    def __init__(self, tokens: tuple[bytes, ...], signing_keys: tuple[bytes, ...] = (), allow_unsigned: bool = False,
                 tolerance_s: int = 300) -> None:
        self.tokens, self.signing_keys = tokens, signing_keys
        self.allow_unsigned, self.tolerance_s = allow_unsigned, tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if self.tokens or self.signing_keys:
            from stopline.sources import verify_gitlab

            verify_gitlab(self.tokens, self.signing_keys, headers, body, tolerance_s=self.tolerance_s)
            return headers.get("webhook-id") if headers.get("webhook-signature") else None
        _unsigned(self.allow_unsigned, "no GitLab token is configured: set STOPLINE_GITLAB_TOKENS or "
                  "STOPLINE_GITLAB_SIGNING_SECRETS")
        return None

    def key(self, signed_id: str | None, data: dict[str, Any]) -> str | None:
        if signed_id:
            return signed_id
        kind = data.get("object_kind")
        if kind == "pipeline":
            attrs = data.get("object_attributes")
            if isinstance(attrs, dict) and attrs.get("id") is not None:
                return f"pipeline:{attrs['id']}:{_part(attrs.get('status'))}"
        if kind == "build" and data.get("build_id") is not None:
            return f"build:{data['build_id']}:{_part(data.get('build_status'))}"
        return None

    @staticmethod
    def logged_id(headers: Mapping[str, str]) -> str | None:
        for name in ("idempotency-key", "webhook-id", "x-gitlab-webhook-uuid"):
            if headers.get(name):
                return headers[name][:200]
        return None
