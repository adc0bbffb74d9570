"""HTTP targets served by real functions-framework processes (Flask and --asgi) against the served
emulator: every status of docs/commands.md, signatures, duplicates, batches."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from .harness import OLD_SECRET, SECRET, FunctionProcess, serving, signed_post

JOB = "1111aaaa2222bbbb3333cccc4444dddd"  # 2000 running builds, for tests that need fresh ones
FAIL_JOB = "9999aaaa2222bbbb3333cccc4444dddd"
MODES = ["flask", "asgi"]


class Stack:
    def __init__(self, emulator: Emulator, server: EmulatorServer, procs: dict[str, FunctionProcess]) -> None:
        self.emulator, self.server, self.procs = emulator, server, procs
        self._next = 0

    def build(self) -> int:
        """A running build nobody else uses."""
        self._next += 1
        return self._next

    def calls_for(self, build_no: int) -> list[dict[str, object]]:
        return [c for c in self.emulator.calls if c["path"] == "/v3/jobs/stop" and c.get("build_no") == build_no]

    def effects_for(self, build_no: int) -> list[dict[str, object]]:
        return [e for e in self.emulator.effects if e.get("job_id") == JOB and e.get("build_no") == build_no]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[
        {"job_id": JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": n} for n in range(1, 2001)]},
        {"job_id": FAIL_JOB, "project_id": DEMO_PROJECT_ID, "builds": [{"build_no": n} for n in range(1, 50)]}])
    server = emulator.serve()
    logs = tmp_path_factory.mktemp("fflogs")
    base = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": f"{SECRET},{OLD_SECRET}",
            "STOPLINE_MAX_ATTEMPTS": "2", "STOPLINE_TIMEOUT_S": "5"}
    specs = {
        "webhook-flask": ("webhook", False, base), "webhook-asgi": ("webhook", True, base),
        "stop_build-flask": ("stop_build", False, base), "stop_build-asgi": ("stop_build", True, base),
        "delete_build_task-flask": ("delete_build_task", False, base),
        "stop_dataarts_job-asgi": ("stop_dataarts_job", True, base),
        "restricted-flask": ("webhook", False, {**base, "STOPLINE_ALLOWED_ACTIONS": "stop_build",
                                                "STOPLINE_ALLOWED_JOB_IDS": JOB}),
        "nocreds-asgi": ("webhook", True, {"STOPLINE_WEBHOOK_SECRETS": SECRET}),
        "nosecret-flask": ("webhook", False, demo_environment(server.url)),
        "prewarm-flask": ("webhook", False, {**base, "STOPLINE_PREWARM": "1"}),
    }
    procs = {name: FunctionProcess(t, asgi, env, logs / f"{name}.log") for name, (t, asgi, env) in specs.items()}
    with serving(server, procs):
        yield Stack(emulator, server, procs)


def url(stack: Stack, name: str) -> str:
    return stack.procs[name].url


def stop_cmd(build_no: int, **more: object) -> dict[str, object]:
    return {"action": "stop_build", "job_id": JOB, "build_no": build_no, **more}


@pytest.mark.parametrize("mode", MODES)
def test_signed_stop_then_duplicate(stack: Stack, mode: str) -> None:
    """A signed webhook stops a build; the same webhook-id again is `duplicate` with no second call."""
    n = stack.build()
    first = signed_post(url(stack, f"webhook-{mode}"), stop_cmd(n), msg_id=f"dup-{mode}")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["ok"] is True and body["outcome"] == "stopped" and body["event_id"] == f"dup-{mode}"
    assert body["action"] == "stop_build" and body["target"] == {"job_id": JOB, "build_no": n}
    assert body["upstream_request_id"] and first.headers["content-type"].startswith("application/json")
    again = signed_post(url(stack, f"webhook-{mode}"), stop_cmd(n), msg_id=f"dup-{mode}")
    dup = again.json()
    assert again.status_code == 200 and dup["outcome"] == "duplicate" and dup["first_outcome"] == "stopped"
    assert dup["upstream_request_id"] == body["upstream_request_id"]
    assert len(stack.effects_for(n)) == 1
    assert sum(1 for c in stack.emulator.calls if c["request_id"] == body["upstream_request_id"]) == 1


@pytest.mark.parametrize("mode", MODES)
def test_per_action_targets(stack: Stack, mode: str) -> None:
    n = stack.build()
    r = signed_post(url(stack, f"stop_build-{mode}"), {"job_id": JOB, "build_no": str(n)})
    assert r.status_code == 200 and r.json()["outcome"] == "stopped"
    r = signed_post(url(stack, f"stop_build-{mode}"), {"action": "delete_build_task", "job_id": JOB})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "action"


def test_delete_and_dataarts_targets(stack: Stack) -> None:
    r = signed_post(url(stack, "delete_build_task-flask"), {"job_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9"})
    assert (r.status_code, r.json()["outcome"]) == (200, "deleted")
    r = signed_post(url(stack, "delete_build_task-flask"), {"job_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9"})
    assert (r.status_code, r.json()["outcome"]) == (200, "already_deleted")
    r = signed_post(url(stack, "stop_dataarts_job-asgi"), {"job_name": "nightly"})
    assert (r.status_code, r.json()["outcome"]) == (200, "stopped")
    r = signed_post(url(stack, "stop_dataarts_job-asgi"), {"job_name": "noSuchJob"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "not_found" and err["upstream"] == {"status": 400, "error_code": "DLF.0100",
                                                              "error_msg": "The job does not exists."}


@pytest.mark.parametrize("mode", MODES)
def test_request_level_statuses(stack: Stack, mode: str) -> None:
    """405, 413, 415, 401 (missing, wrong, stale, future, tampered), 400 (not JSON, not an object), 422."""
    target = url(stack, f"webhook-{mode}")
    for method in ("GET", "HEAD", "OPTIONS", "PUT"):
        refused = httpx.request(method, target)
        assert refused.status_code == 405 and refused.headers["allow"] == "POST", method
    for path in ("robots.txt", "favicon.ico"):  # the framework's own routes answer in JSON too
        missing = httpx.get(f"{target.rstrip('/')}/{path}")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "bad_request", path
    big = signed_post(target, None, raw=b'{"a":"' + b"x" * 300_000 + b'"}')
    assert big.status_code == 413 and big.json()["error"]["type"] == "payload_too_large"
    assert signed_post(target, stop_cmd(1), content_type="text/plain").status_code == 415
    # a compressed body: what the sender signed is the plain one, so 415 naming the encoding, not a 401
    from stopline import webhooks

    plain = json.dumps(stop_cmd(1)).encode()
    packed = httpx.post(target, content=gzip.compress(plain), headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip", **webhooks.sign(SECRET, "gz-1", plain)})
    assert packed.status_code == 415 and packed.headers["accept-encoding"] == "identity"
    assert packed.json()["error"]["details"][0]["field"] == "content-encoding"
    unsigned = httpx.post(target, json=stop_cmd(1))
    assert unsigned.status_code == 401
    assert {d["field"] for d in unsigned.json()["error"]["details"]} == {
        "webhook-id", "webhook-timestamp", "webhook-signature"}
    assert signed_post(target, stop_cmd(1), secret="whsec_" + "QUJD" * 8).status_code == 401
    assert signed_post(target, stop_cmd(1), timestamp=int(time.time()) - 310).status_code == 401
    assert signed_post(target, stop_cmd(1), timestamp=int(time.time()) + 310).status_code == 401
    good = json.dumps(stop_cmd(1)).encode()
    headers = {"Content-Type": "application/json", **webhooks.sign(SECRET, "tamper", good)}
    assert httpx.post(target, content=good.replace(b'"build_no": 1', b'"build_no": 2'),
                      headers=headers).status_code == 401
    r = signed_post(target, None, raw=b"{not json")
    assert r.status_code == 400 and r.json()["ok"] is False
    assert signed_post(target, [1, 2]).status_code == 400
    r = signed_post(target, {"action": "stop_build", "job_id": "short", "build_no": 0, "colour": "red"})
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["error"]["details"]} == {"job_id", "build_no", "colour"}
    r = signed_post(target, {"action": "launch_rocket"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "action"


def test_rotated_secret_still_verifies(stack: Stack) -> None:
    n = stack.build()
    r = signed_post(url(stack, "webhook-flask"), stop_cmd(n), secret=OLD_SECRET)
    assert r.status_code == 200 and r.json()["outcome"] == "stopped"


def test_no_secret_configured_is_401(stack: Stack) -> None:
    r = signed_post(url(stack, "nosecret-flask"), stop_cmd(stack.build()))
    assert r.status_code == 401 and "STOPLINE_WEBHOOK_SECRETS" in r.json()["error"]["message"]


def test_allowlists_are_403(stack: Stack) -> None:
    target = url(stack, "restricted-flask")
    r = signed_post(target, {"action": "delete_build_task", "job_id": JOB})
    assert r.status_code == 403 and r.json()["error"]["details"][0]["field"] == "action"
    r = signed_post(target, {"action": "stop_build", "job_id": FAIL_JOB, "build_no": 1})
    assert r.status_code == 403 and r.json()["error"]["details"][0]["field"] == "job_id"
    assert not [c for c in stack.emulator.calls if FAIL_JOB in json.dumps(c)]


@pytest.mark.parametrize("mode", MODES)
def test_same_key_different_command_is_409(stack: Stack, mode: str) -> None:
    a, b = stack.build(), stack.build()
    target = url(stack, f"webhook-{mode}")
    assert signed_post(target, stop_cmd(a), msg_id=f"reuse-{mode}").status_code == 200
    r = signed_post(target, stop_cmd(b), msg_id=f"reuse-{mode}")
    assert r.status_code == 409 and r.json()["error"]["type"] == "conflict"
    assert stack.effects_for(b) == []


@pytest.mark.parametrize("mode", MODES)
def test_upstream_refusal_is_502_and_outage_is_503(stack: Stack, mode: str) -> None:
    """Credentials refused upstream -> 502; throttled after retries -> 503 with Retry-After."""
    target = url(stack, f"webhook-{mode}")
    stack.emulator.inject(r"/jobs/denied-" + mode, "error", status=401, error_code="APIGW.0301", retry_after=None)
    r = signed_post(target, {"action": "stop_dataarts_job", "job_name": f"denied-{mode}"})
    assert r.status_code == 502 and r.json()["error"]["upstream"]["error_code"] == "APIGW.0301"
    stack.emulator.inject(r"/jobs/busy-" + mode, "throttle", retry_after=1)
    r = signed_post(target, {"action": "stop_dataarts_job", "job_name": f"busy-{mode}"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["attempts"] == 2 and r.json()["error"]["upstream"]["status"] == 429


def test_missing_credentials_is_500_configuration(stack: Stack) -> None:
    r = signed_post(url(stack, "nocreds-asgi"), stop_cmd(stack.build()))
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["type"] == "configuration" and "HUAWEICLOUD_SDK_AK" in err["message"]


@pytest.mark.parametrize("mode", MODES)
def test_batch_of_100_in_order_with_a_bad_member(stack: Stack, mode: str) -> None:
    """100 commands: results in order, the invalid one gets its own 422, the others all run, concurrently."""
    builds = [stack.build() for _ in range(100)]
    commands: list[object] = [stop_cmd(n) for n in builds]
    commands[37] = {"action": "stop_build", "job_id": JOB, "build_no": -1}
    stack.emulator.router.max_in_flight = 0
    stack.emulator.inject(r"^/v3/jobs/stop$", "latency", delay_ms=150, count=99)
    r = signed_post(url(stack, f"webhook-{mode}"), {"commands": commands}, msg_id=f"batch-{mode}")
    stack.emulator.clear_faults()
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and len(body["results"]) == 100
    assert body["results"][37]["status"] == 422
    assert body["results"][37]["error"]["details"][0]["field"] == "commands.37.build_no"
    for i, result in enumerate(body["results"]):
        if i != 37:
            assert (result["status"], result["outcome"], result["target"]["build_no"]) == (200, "stopped", builds[i])
    assert stack.emulator.router.max_in_flight > 4  # calls overlapped: the batch ran concurrently
    again = signed_post(url(stack, f"webhook-{mode}"), {"commands": commands}, msg_id=f"batch-{mode}")
    assert [x.get("outcome") for i, x in enumerate(again.json()["results"]) if i != 37] == ["duplicate"] * 99


@pytest.mark.parametrize("bad", [{"commands": []}, {"commands": "x"}, {"commands": [{}] * 101},
                                 {"commands": [{}], "more": 1}, {"job_id": JOB}])
def test_batch_shape_errors_name_commands(stack: Stack, bad: dict[str, object]) -> None:
    r = signed_post(url(stack, "webhook-flask"), bad)
    assert r.status_code == 422 and "commands" in [d["field"] for d in r.json()["error"]["details"]]


def test_logs_are_json_lines_with_the_contract_fields(stack: Stack, tmp_path: Path) -> None:
    """One INFO line per command with the section-6 fields; permanent failures at ERROR."""
    n = stack.build()
    signed_post(url(stack, "webhook-flask"), stop_cmd(n), msg_id="log-check")
    signed_post(url(stack, "webhook-flask"), {"action": "stop_dataarts_job", "job_name": "noSuchJob"})
    records = stack.procs["webhook-flask"].log_records()
    line = next(r for r in records if r.get("event_id") == "log-check")
    for key in ("action", "target", "outcome", "attempts", "duration_ms", "event_id", "upstream_request_id",
                "level", "message"):
        assert key in line
    assert line["level"] == "INFO" and line["outcome"] == "stopped"
    failure = [r for r in records if r.get("error_type") == "not_found"]
    assert failure and failure[-1]["level"] == "ERROR"


def test_prewarm_sets_up_before_the_first_request(stack: Stack) -> None:
    """STOPLINE_PREWARM=1: the instance logs that it is ready at start-up, then serves as usual."""
    proc = stack.procs["prewarm-flask"]
    assert [r for r in proc.log_records() if r.get("message", "").startswith("warm-up done")]
    n = stack.build()
    answer = signed_post(proc.url, stop_cmd(n))
    assert answer.status_code == 200 and answer.json()["outcome"] == "stopped"
    assert len(stack.effects_for(n)) == 1


def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (headers httpx would refuse to send); (status, body)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        header, _, rest = data.partition(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in header.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest


@pytest.mark.parametrize("mode", MODES)
def test_poison_json_is_400_json_in_both_modes(stack: Stack, mode: str) -> None:
    """Section 14: deep nesting (about 1,000 levels in 2 KB), duplicate keys and a lone surrogate are
    each a 400 `invalid_json` in JSON, never a framework error page, and never reach the cloud."""
    target = url(stack, f"webhook-{mode}")
    before = len(stack.emulator.calls)
    for body, reason in [
        (b'{"action": "stop_build", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested deeper than 64"),
        (b'{"action": "stop_build", "x": ' + b"[" * 65 + b"]" * 65 + b"}", "nested deeper than 64"),
        (json.dumps(stop_cmd(5)).encode()[:-1] + b', "build_no": 6}', "twice"),
        (b'{"action": "stop_\\ud800build", "job_id": "' + JOB.encode() + b'", "build_no": 7}', "lone surrogate"),
    ]:
        reply = signed_post(target, None, raw=body)
        assert reply.status_code == 400, (reason, reply.text)
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json()["error"]["type"] == "invalid_json" and reason in reply.json()["error"]["message"]
    assert len(stack.emulator.calls) == before
    assert signed_post(target, stop_cmd(stack.build())).status_code == 200  # ordinary commands still pass


@pytest.mark.parametrize("mode", MODES)
def test_a_content_length_that_is_not_ascii_digits_is_400(stack: Stack, mode: str) -> None:
    port = stack.procs[f"webhook-{mode}"].port
    for value in ("\u00b2".encode(), b"9" * 5000):
        status, body = raw_request(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                         b"Connection: close\r\nContent-Length: " + value)
        assert status == 400, (value[:10], body[:200])


@pytest.mark.parametrize("mode", MODES)
def test_a_declared_64_mib_body_is_refused_without_reading_it(stack: Stack, mode: str) -> None:
    """413 answers at once and the rest of the body is not awaited (functions-framework's Flask hook used
    to read all of it before answering). The Flask answer also says `Connection: close`; gunicorn drops
    that hop-by-hop header from applications, so there it only helps behind other WSGI servers."""
    import socket

    port = stack.procs[f"webhook-{mode}"].port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 67108864\r\n\r\n" + b"x" * 1000)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "closed without an answer"
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 413")  # answered while 64 MiB are still unsent (a 10 s socket timeout)


def test_a_malformed_chunked_body_is_400_json_in_flask(stack: Stack) -> None:
    port = stack.procs["webhook-flask"].port
    status, body = raw_request(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\nConnection: close",
                               b"5\r\n{\"a\":\r\nZZ-not-a-size\r\n\r\n")
    assert status == 400
    assert json.loads(body)["ok"] is False
