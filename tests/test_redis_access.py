"""A Redis that asks who is calling (docs/exactly-once.md), on a real redis-server: the ACL user the docs
give can do everything stopline does; a wrong or missing password, and a user who may not run scripts, are
each answered 503 naming what to fix -- before anything reaches the cloud."""

from __future__ import annotations

import shlex
import time

import pytest
import redis

from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_JOB_ID
from stopline.entry import reset_runtime
from stopline.idempotency import open_store

from .conftest import ROOT, LogCapture, RedisServer, configured_secret
from .in_process import post, post_reply

PASSWORD = "acl-user-password-0123"
configured_secret(PASSWORD)


def documented_acl() -> list[str]:
    """The ``ACL SETUSER stopline ...`` line of docs/exactly-once.md, as arguments."""
    text = (ROOT / "docs" / "exactly-once.md").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("ACL SETUSER stopline ")]
    return shlex.split(line.replace(">PASSWORD", f">{PASSWORD}"))


def stop_calls(cloud: Emulator) -> int:
    return sum(1 for c in cloud.calls if c["path"] == "/v3/jobs/stop")


def use_store(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_IDEMPOTENCY_URL", url)
    reset_runtime()


def test_the_documented_acl_user_can_do_everything_stopline_does(redis_server: RedisServer, signed_cloud: Emulator,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 log_lines: LogCapture) -> None:
    admin = redis.Redis(port=redis_server.port)
    assert admin.execute_command(*documented_acl()) in (b"OK", "OK", True)  # type: ignore[no-untyped-call]
    url = f"redis://stopline:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    use_store(url, monkeypatch)
    first = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "acl-1")
    again = post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "acl-1")
    assert (first["outcome"], again["outcome"], again["first_outcome"]) == ("stopped", "duplicate", "stopped")
    assert stop_calls(signed_cloud) == 1
    store = open_store(url, prefix="stopline:")  # the rest of the store, as the same user
    assert store.claim("stopline:k", {"state": "in_progress", "token": "t"}, 30) is None
    assert store.claim("stopline:k", {"state": "in_progress", "token": "u"}, 30) == {"state": "in_progress",
                                                                                    "token": "t"}
    assert store.takeover("stopline:k", "in_progress", {"state": "in_progress", "token": "v"}, 30)
    assert store.complete("stopline:k", "v", {"state": "done", "token": "v"}, 30)
    assert store.get("stopline:k") == {"state": "done", "token": "v"}
    assert store.claim("stopline:j", {"state": "in_progress", "token": "w"}, 30) is None
    assert store.release("stopline:j", "w") and store.get("stopline:j") is None
    store.add_retry("r1", {"command": 1}, time.time() - 1)
    assert [item for _, item in store.list_retries()] == [{"command": 1}]
    assert store.take_retries(time.time(), 10, 60) == [{"command": 1}]
    store.drop_retry("r1")
    assert store.list_retries() == []
    assert not [r for r in log_lines.records if r["level"] in ("WARNING", "ERROR")]


def test_a_wrong_or_missing_password_is_named_before_the_cloud_is_called(
        redis_server: RedisServer, signed_cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    redis.Redis(port=redis_server.port).config_set("requirepass", PASSWORD)
    for url in (redis_server.url, f"redis://:not-{PASSWORD}@127.0.0.1:{redis_server.port}/0"):
        use_store(url, monkeypatch)
        reply = post_reply({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "pw-1")
        message = reply.body["error"]["message"]
        assert reply.status == 503 and "credentials" in message and "STOPLINE_IDEMPOTENCY_URL" in message, url
        assert PASSWORD not in message
    assert stop_calls(signed_cloud) == 0
    use_store(f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0", monkeypatch)  # and the right one works
    assert post({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "pw-1")["outcome"] == "stopped"


def test_a_user_who_may_not_run_scripts_is_refused_at_the_claim(
        redis_server: RedisServer, signed_cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain reads and writes but no scripts: the claim itself is refused, so the build is not stopped
    under a claim whose result could never be written (a redelivery would then stop it twice)."""
    redis.Redis(port=redis_server.port).acl_setuser("plain", enabled=True, passwords=[f"+{PASSWORD}"],
                                                   keys=["stopline:*"], commands=["+get", "+set", "+del", "+info"])
    use_store(f"redis://plain:{PASSWORD}@127.0.0.1:{redis_server.port}/0", monkeypatch)
    reply = post_reply({"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}, "plain-1")
    assert reply.status == 503 and "evalsha" in reply.body["error"]["message"], reply.body
    assert "docs/exactly-once.md" in reply.body["error"]["message"] and stop_calls(signed_cloud) == 0
