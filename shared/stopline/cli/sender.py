"""The sending side of ``stopline send``: build a command from ``--field value`` words, sign it with
:mod:`stopline.webhooks` (the verifier's own code), post it, and describe the answer."""

from __future__ import annotations

import json
import uuid
from typing import Any


def build_command(action: str, words: list[str]) -> dict[str, Any]:
    """``["--job-id", "X", "--build-no=20"]`` -> ``{"action": action, "job_id": "X", "build_no": "20"}``."""
    command: dict[str, Any] = {"action": action}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            raise ValueError(f"expected --field value, got {word!r}")
        name, eq, value = word[2:].partition("=")
        if not eq:
            if i + 1 >= len(words):
                raise ValueError(f"--{name} needs a value")
            value = words[i + 1]
            i += 1
        command[name.replace("-", "_")] = value
        i += 1
    return command


def send_signed(url: str, body: dict[str, Any], *, secret: str | None, msg_id: str | None = None,
                timeout_s: float = 60.0) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON, signed (Standard Webhooks) when a secret is given; (status, decoded answer).

    Raises:
        ValueError: the secret is malformed or too short (the message never shows it).
    """
    from stopline.webhooks import sign

    content = json.dumps(body).encode()
    headers: dict[str, str] = {}
    if secret:
        headers.update(sign(secret, msg_id or f"msg_{uuid.uuid4().hex}", content))
    elif msg_id:
        headers["webhook-id"] = msg_id
    return post(url, content, headers, timeout_s=timeout_s)


def source_headers(source: str, event_type: str, body: bytes, *, secret: str | None,
                   msg_id: str | None = None) -> dict[str, str]:
    """The headers GitHub or GitLab would send with ``body`` (section 11.1): GitHub signs it with
    ``X-Hub-Signature-256``; GitLab sends its secret token as it is."""
    import hashlib
    import hmac

    delivery = msg_id or str(uuid.uuid4())
    if source == "github":
        headers = {"X-GitHub-Event": event_type, "X-GitHub-Delivery": delivery,
                   "User-Agent": "GitHub-Hookshot/stopline-send"}
        if secret:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        return headers
    headers = {"X-Gitlab-Event": event_type, "Idempotency-Key": delivery, "X-Gitlab-Webhook-UUID": delivery,
               "X-Gitlab-Event-UUID": str(uuid.uuid4()), "User-Agent": "GitLab/stopline-send"}
    if secret:
        headers["X-Gitlab-Token"] = secret
    return headers


def post(url: str, content: bytes, headers: dict[str, str], *, timeout_s: float = 60.0) -> tuple[int, dict[str, Any]]:
    """POST ``content`` as JSON with ``headers``; (status, decoded answer)."""
    import httpx

    try:
        response = httpx.post(url, content=content, headers={"Content-Type": "application/json", **headers},
                              timeout=timeout_s)
    except httpx.HTTPError as exc:
        return 0, {"ok": False, "error": {"type": "connection", "message": f"could not reach {url}: {exc}"}}
    try:
        answer = response.json()
    except ValueError:
        answer = {"ok": False, "error": {"type": "not_json", "message": response.text[:500]}}
    return response.status_code, answer if isinstance(answer, dict) else {"ok": False, "answer": answer}


def _line(item: dict[str, Any]) -> str:
    target = " ".join(f"{k}={v}" for k, v in (item.get("target") or {}).items())
    if item.get("ok"):
        first = f" (first: {item['first_outcome']})" if item.get("first_outcome") else ""
        return f"{item.get('outcome')}{first}: {item.get('action')} {target}".rstrip()
    error = item.get("error") or {}
    fields = ", ".join(d.get("field", "?") for d in error.get("details") or [] if isinstance(d, dict))
    return (f"{error.get('type', 'error')}: {error.get('message', '')}" + (f" [{fields}]" if fields else "")).strip()


def describe_reply(status: int, reply: dict[str, Any]) -> str:
    """A readable rendering of a target's answer (single command, batch, or a pipeline source's event)."""
    if "ignored" in reply:
        return f"HTTP {status}: ignored ({reply['ignored']})"
    if "event" in reply:
        event = reply.get("event") or {}
        lines = [f"HTTP {status}: {event.get('source')} {event.get('kind')} event on "
                 f"{event.get('repository')} {event.get('branch')}@{str(event.get('sha'))[:12]}; "
                 f"rules matched: {', '.join(reply.get('matched') or []) or 'none'}"]
        for i, r in enumerate(reply.get("results") or []):
            lines.append(f"  [{i}] {r.get('status', '')} {_line(r)}")
            for key in ("builds", "instances"):
                for entry in r.get(key) or []:
                    name = f"build {entry['build_no']}" if key == "builds" else f"instance {entry['instance_id']}"
                    lines.append(f"      {name}: {entry.get('outcome')}")
        return "\n".join(lines)
    if "ok" not in reply and ("error_code" in reply or "error_msg" in reply):
        return (f"HTTP {status}: this is not a stopline target (it answered like the cloud, or the emulator: "
                f"{reply.get('error_code')}); send to a function target's URL, e.g. the webhook's from the banner")
    if "ran" in reply:  # a retries target
        lines = [f"HTTP {status}: ran {reply['ran']} pending retr{'y' if reply['ran'] == 1 else 'ies'}, "
                 f"{reply.get('pending', 0)} still pending"]
        lines += [f"  [{i}] {r.get('status', '')} {_line(r)}" for i, r in enumerate(reply.get("results") or [])]
        return "\n".join(lines)
    if "results" in reply:
        lines = [f"HTTP {status}: batch of {len(reply['results'])}, ok={reply.get('ok')}"]
        lines += [f"  [{i}] {r.get('status', '')} {_line(r)}" for i, r in enumerate(reply["results"])]
        return "\n".join(lines)
    return f"HTTP {status} {_line(reply)}"
