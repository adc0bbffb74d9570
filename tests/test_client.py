"""The client against the emulator: every upstream answer -> outcome, retries, the stop-API switch."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from stopline import transport
from stopline.client import ClientCore, core_from
from stopline.driver import Client, retry_wait
from stopline.emulator import Emulator, EmulatorServer, mock_huaweicloud
from stopline.emulator.seeds import DEMO_JOB_ID, DEMO_PROJECT_ID, DEMO_TASK_ID
from stopline.errors import (
    NotFound,
    StoplineError,
    Transient,
    UpstreamAuth,
    UpstreamMisconfigured,
    UpstreamRejected,
)
from stopline.models import Command, Outcome, parse_command
from stopline.settings import load_settings

from .conftest import LogCapture, raising


def cmd(**fields: object) -> Command:
    return parse_command(fields)


_open: list[Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def client(**settings: object) -> Client:
    made = Client(core_from(load_settings(**settings)), transport=transport.current())
    _open.append(made)
    return made


FIELDS: dict[str, dict[str, object]] = {
    "stop_build": {"job_id": DEMO_JOB_ID, "build_no": 3}, "delete_build_task": {"job_id": DEMO_JOB_ID},
    "stop_dataarts_job": {"job_name": "j"}}
STOP20 = {"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}


@mock_huaweicloud("demo")
def test_outcomes_against_the_emulator() -> None:
    """stopped / already_stopped / deleted / already_deleted / not_found, as section 2 says."""
    c = client()
    assert c.execute(cmd(**STOP20)).outcome is Outcome.STOPPED
    assert c.execute(cmd(**STOP20)).outcome is Outcome.ALREADY_STOPPED
    assert c.execute(cmd(action="stop_build", job_id=DEMO_JOB_ID, build_no=18)).outcome is Outcome.ALREADY_STOPPED
    assert c.execute(cmd(action="delete_build_task", job_id=DEMO_TASK_ID)).outcome is Outcome.DELETED
    assert c.execute(cmd(action="delete_build_task", job_id=DEMO_TASK_ID)).outcome is Outcome.ALREADY_DELETED
    assert c.execute(cmd(action="stop_dataarts_job", job_name="myJob", workspace="ws1")).outcome is Outcome.STOPPED
    assert c.execute(cmd(action="stop_dataarts_job", job_name="myJob", workspace="ws1")).outcome is \
        Outcome.ALREADY_STOPPED
    with pytest.raises(NotFound) as info:
        raising(c.execute(cmd(action="stop_dataarts_job", job_name="noSuchJob")))
    assert info.value.upstream is not None and info.value.upstream.error_code == "DLF.0100"
    with pytest.raises(NotFound):
        raising(c.execute(cmd(action="stop_build", job_id="0" * 32, build_no=1)))


def test_workspace_header_only_when_given() -> None:
    """The DataArts call carries `workspace` only when the command has one, and the emulator keys on it."""
    with mock_huaweicloud("demo") as cloud:
        c = client()
        c.execute(cmd(action="stop_dataarts_job", job_name="myJob"))
        c.execute(cmd(action="stop_dataarts_job", job_name="myJob", workspace="ws1"))
        assert [call["workspace"] for call in cloud.calls] == [None, "ws1"]
        assert {e["workspace"] for e in cloud.effects} == {"default", "ws1"}


def _replying(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"X-Request-Id": "rid-1", **(headers or {})})
    return httpx.MockTransport(handler)


def _odd_client(transport_: httpx.MockTransport, **settings: object) -> Client:
    s = load_settings(ak="AK", sk="SK", project_id=DEMO_PROJECT_ID, max_attempts=1, **settings)
    made = Client(core_from(s), transport=transport_)
    _open.append(made)
    return made


@pytest.mark.parametrize(
    ("status", "body", "action", "expected"),
    [
        (200, {"result": True}, "stop_build", Outcome.STOPPED),
        (200, {"result": False}, "stop_build", Outcome.ALREADY_STOPPED),
        (204, b"", "stop_dataarts_job", Outcome.STOPPED),
        (200, {"status": "success", "result": {}}, "delete_build_task", Outcome.DELETED),
        (404, {"error_code": "CB.X", "error_msg": "gone"}, "delete_build_task", Outcome.ALREADY_DELETED),
        (422, {"error_code": "DEVCB.00031006", "error_msg": "gone"}, "delete_build_task", Outcome.ALREADY_DELETED),
        (422, {"error_code": "CB.00031006", "error_msg": "gone"}, "delete_build_task", Outcome.ALREADY_DELETED),
        (400, {"error_code": "DEV.CB.032302", "error_msg": "refreshed"}, "stop_build", Outcome.ALREADY_STOPPED),
        (200, b"", "stop_build", Outcome.STOPPED),
        (400, {"error_code": "CB.00060301", "error_msg": "not running"}, "stop_build", Outcome.ALREADY_STOPPED),
        (400, {"error_code": "DLF.0137", "error_msg": "no instance"}, "stop_dataarts_job", Outcome.ALREADY_STOPPED),
    ],
)
def test_success_mapping(status: int, body: object, action: str, expected: Outcome) -> None:
    """Each documented success answer maps to its outcome."""
    fields = FIELDS[action]
    reply = _odd_client(_replying(status, body)).execute(parse_command({"action": action, **fields}))
    assert reply.outcome is expected and reply.request_id == "rid-1"


@pytest.mark.parametrize(
    ("status", "body", "action", "error"),
    [
        (400, {"error_code": "DLF.0100", "error_msg": "The job does not exists."}, "stop_dataarts_job", NotFound),
        (404, {"error_code": "CB.X", "error_msg": "no"}, "stop_build", NotFound),
        (400, {"error_code": "CB.00060200", "error_msg": "bad"}, "stop_build", UpstreamRejected),
        (401, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication"}, "stop_build", UpstreamAuth),
        (403, {"error_code": "APIGW.0302", "error_msg": "not authorized"}, "delete_build_task", UpstreamAuth),
        (404, {"error_code": "APIGW.0101", "error_msg": "API does not exist"}, "delete_build_task",
         UpstreamMisconfigured),
        (404, b"", "delete_build_task", UpstreamMisconfigured),
        (404, {"error_code": "APIGW.0002", "error_msg": "not found"}, "delete_build_task", UpstreamMisconfigured),
        (422, {"error_code": "CB.00031006", "error_msg": "gone"}, "stop_build", NotFound),
        (403, {"error_code": "CB.00031059", "error_msg": "no history"}, "stop_build", NotFound),
        (200, {"error_code": "CB.00031006", "error_msg": "gone"}, "stop_build", NotFound),
        (200, {"error_code": "CB.00060211", "error_msg": "busy"}, "stop_build", Transient),
        (200, json.dumps(json.dumps({"error_code": "DEVCB.00031006", "error_msg": "gone"})).encode(), "stop_build",
         NotFound),
        (408, b"", "stop_build", Transient),
        (400, {"error_code": "CB.00060211", "error_msg": "busy"}, "stop_build", Transient),
        (400, {"error_code": "CB.00060100", "error_msg": "busy"}, "stop_build", Transient),
        (400, {"error_code": "DLF.0819", "error_msg": "no workspace"}, "stop_dataarts_job", NotFound),
        (429, {"error_code": "APIGW.0308", "error_msg": "throttled"}, "stop_build", Transient),
        (500, {"error_code": "CB.00060211", "error_msg": "too many"}, "stop_build", Transient),
        (502, b"<html>Bad Gateway</html>", "stop_build", Transient),
        (503, b"", "stop_dataarts_job", Transient),
        (401, {"error": {"code": 401, "message": "Unauthorized.", "title": "Unauthorized"}}, "stop_build",
         UpstreamAuth),
    ],
)
def test_failure_mapping(status: int, body: object, action: str, error: type[StoplineError]) -> None:
    """Failures map by code first, then status: DLF.0100 is not_found, CB.00060211 is transient,
    APIGW.0101 on a delete is a configuration problem, not `already_deleted`."""
    fields = FIELDS[action]
    with pytest.raises(error) as info:
        raising(_odd_client(_replying(status, body), build_stop_api="v3").execute(
            parse_command({"action": action, **fields})))
    assert type(info.value) is error or issubclass(type(info.value), error)
    assert info.value.upstream is not None and info.value.upstream.status == status


def test_transient_is_retried_then_succeeds(log_lines: LogCapture) -> None:
    """Two 503s then success: 3 attempts counted, two WARNING lines, one effective stop."""
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$", "error", count=2, status=503, retry_after=None)
        reply = client().execute(cmd(**STOP20))
        assert reply.outcome is Outcome.STOPPED and reply.attempts == 3
        assert [c["status"] for c in cloud.calls] == [503, 503, 200]
    warnings = [r for r in log_lines.records if r["level"] == "WARNING"]
    assert [w["attempt"] for w in warnings] == [1, 2]


def test_retry_after_is_honoured_and_attempts_are_bounded(log_lines: LogCapture) -> None:
    """429 + Retry-After: the requested waits come from the header; STOPLINE_MAX_ATTEMPTS bounds the tries."""
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$", "throttle", retry_after=7)
        c = client(max_attempts=3)
        reply = c.execute(cmd(**STOP20))
        assert isinstance(reply.error, Transient) and reply.attempts == 3 and len(cloud.calls) == 3
        assert retry_wait(reply.error) == 7.0
    assert [r["retry_after_s"] for r in log_lines.records if r["level"] == "WARNING"] == [7.0, 7.0]


def test_permanent_failures_are_not_retried() -> None:
    with mock_huaweicloud("demo") as cloud:
        reply = client().execute(cmd(action="stop_dataarts_job", job_name="nope"))
        assert isinstance(reply.error, NotFound) and reply.attempts == 1 and len(cloud.calls) == 1


def test_dropped_connections_and_timeouts_are_transient() -> None:
    """A dropped connection and a reply slower than the timeout are retried, then reported as 503."""
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"stop", "drop", count=1)
        assert client().execute(cmd(**STOP20)).attempts == 2
        cloud.clear_faults()
        cloud.inject(r"stop", "latency", delay_ms=2000)
        reply = client(timeout_s=0.05, max_attempts=2).execute(cmd(action="stop_build", job_id=DEMO_JOB_ID,
                                                                    build_no=21))
        assert isinstance(reply.error, Transient) and "abandoned" in reply.error.message and reply.attempts == 2


def test_auto_switches_to_v1_stop_api_and_remembers(log_lines: LogCapture) -> None:
    """When v3 answers APIGW.0101, `auto` re-sends on v1 (?build_no=N) and keeps using v1."""
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$", "error", status=404, error_code="APIGW.0101", retry_after=None)
        c = client()
        first = c.execute(cmd(**STOP20))
        second = c.execute(cmd(action="stop_build", job_id=DEMO_JOB_ID, build_no=21))
        again = c.execute(cmd(**STOP20))
        assert (first.api, first.outcome) == ("v1", Outcome.STOPPED)
        assert (second.api, again.outcome) == ("v1", Outcome.ALREADY_STOPPED)
        assert [(c["path"], c["query"]) for c in cloud.calls][:3] == [
            ("/v3/jobs/stop", ""), (f"/v1/job/{DEMO_JOB_ID}/stop", "build_no=20"),
            (f"/v1/job/{DEMO_JOB_ID}/stop", "build_no=21")]
    assert any(r.get("api") == "v1" and r["level"] == "WARNING" for r in log_lines.records)


def test_v3_pinned_does_not_switch() -> None:
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$", "error", status=404, error_code="APIGW.0101", retry_after=None)
        with pytest.raises(UpstreamMisconfigured):
            raising(client(build_stop_api="v3").execute(cmd(**STOP20)))
        assert client(build_stop_api="v1").execute(cmd(**STOP20)).api == "v1"


def test_served_emulator_over_http(served: tuple[Emulator, EmulatorServer]) -> None:
    """The same client over a real socket, AK/SK signed, request id kept."""
    emulator, server = served
    from stopline.emulator.seeds import demo_environment

    env = demo_environment(server.url)
    c = Client(core_from(load_settings(
        ak=env["HUAWEICLOUD_SDK_AK"], sk=env["HUAWEICLOUD_SDK_SK"], project_id=DEMO_PROJECT_ID,
        codearts_build_endpoint=server.url, dataarts_endpoint=server.url, iam_endpoint=server.url)))
    _open.append(c)
    reply = c.execute(cmd(**STOP20))
    assert reply.outcome is Outcome.STOPPED
    assert emulator.calls[-1]["auth"] == "aksk" and emulator.calls[-1]["request_id"] == reply.request_id
    assert c.execute(cmd(action="stop_dataarts_job", job_name="daily etl")).outcome is Outcome.STOPPED


def test_core_plan_is_pure() -> None:
    """Request building needs no I/O: the v3 body carries build_no as a string (seed 000)."""
    core: ClientCore = core_from(load_settings(ak="AK", sk="SK", project_id=DEMO_PROJECT_ID))
    call = core.plan(cmd(**STOP20))
    assert json.loads(call.body) == {"job_id": DEMO_JOB_ID, "build_no": "20"}
    assert call.url == "https://cloudbuild-ext.cn-north-4.myhuaweicloud.com/v3/jobs/stop"
    assert core.plan(cmd(action="stop_dataarts_job", job_name="a b")).url.endswith(
        f"/v1/{DEMO_PROJECT_ID}/jobs/a%20b/stop")


def test_https_endpoints_are_verified() -> None:
    """A certificate the trust store does not know is refused before any request is sent; only an all-HTTP
    configuration (the emulator) skips loading the CA bundle."""
    import http.server
    import ssl
    import threading

    import trustme

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    cert = trustme.CA().issue_cert("127.0.0.1")
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        made = Client(core_from(load_settings(ak="AK", sk="sk-for-tls-test", project_id=DEMO_PROJECT_ID,
                                              codearts_build_endpoint=url, max_attempts=1)))
        _open.append(made)
        with pytest.raises(Transient):
            raising(made.execute(cmd(**STOP20)))
        assert seen == [], "a request went to a server whose certificate was not verified"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """HTTP_PROXY (either case) or ALL_PROXY routes calls through the proxy, as httpx defines them."""
    import http.server
    import threading

    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.path)  # absolute-form: the proxy is asked for the cloud's URL
            body = b'{"result": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        made = Client(core_from(load_settings(ak="AK", sk="sk-for-proxy-test", project_id=DEMO_PROJECT_ID,
                                              codearts_build_endpoint="http://cloudbuild.example.invalid",
                                              max_attempts=1)))
        _open.append(made)
        assert made.execute(cmd(**STOP20)).outcome is Outcome.STOPPED
        assert seen == ["http://cloudbuild.example.invalid/v3/jobs/stop"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_dribbled_head_from_the_served_emulator_is_abandoned(served: tuple[Emulator, EmulatorServer]) -> None:
    """The emulator's ``dribble_head`` fault sends even the status line a byte at a time; the client gives
    the exchange up at its timeout (a transient failure), and the next attempt goes through."""
    emulator, server = served
    from stopline.emulator.seeds import demo_environment

    env = demo_environment(server.url)
    emulator.inject(r"^/v3/jobs/stop$", "dribble_head", delay_ms=250, count=1)
    c = Client(core_from(load_settings(
        ak=env["HUAWEICLOUD_SDK_AK"], sk=env["HUAWEICLOUD_SDK_SK"], project_id=DEMO_PROJECT_ID, timeout_s=1,
        max_attempts=1, codearts_build_endpoint=server.url, dataarts_endpoint=server.url, iam_endpoint=server.url)))
    _open.append(c)
    with pytest.raises(Transient, match="abandoned"):
        raising(c.execute(cmd(**STOP20)))
    assert emulator.faults.injected == {"dribble_head": 1}
    assert c.execute(cmd(**STOP20)).outcome is Outcome.ALREADY_STOPPED  # the first stop had taken effect
