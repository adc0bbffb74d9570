"""docs/cloud-answers.md row by row, over real HTTP: the served emulator is told (control API ``respond``
rules) to answer each variant the cloud is known to send, and the client's reading of it is checked --
plus the emulator's own default answers, which must be the cloud's codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stopline.client import core_from
from stopline.driver import Client
from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_JOB_ID, DEMO_PROJECT_ID
from stopline.errors import StoplineError
from stopline.models import Outcome, parse_command
from stopline.settings import load_settings

from .conftest import raising

STOP = {"action": "stop_build", "job_id": DEMO_JOB_ID, "build_no": 20}
DELETE = {"action": "delete_build_task", "job_id": DEMO_JOB_ID}
JOB = {"action": "stop_dataarts_job", "job_name": "nightly"}
V3_STOP, V1_STOP = r"^/v3/jobs/stop$", r"^/v1/job/[^/]+/stop$"
DELETE_PATH, JOB_PATH = r"/delete$", r"/jobs/nightly/stop$"


@pytest.fixture
def cloud(demo_env: Emulator) -> Iterator[Emulator]:
    yield demo_env


def _client(**settings: Any) -> Client:
    return Client(core_from(load_settings(max_attempts=2, **settings)))


def _respond(url: str, path: str, status: int, **body: Any) -> None:
    rule = {"path": path, "kind": "respond", "status": status, **body}
    assert httpx.post(f"{url}/_emulator/faults", json=rule).status_code == 200


def _server_url(cloud: Emulator) -> str:
    import os

    return os.environ["STOPLINE_CODEARTS_BUILD_ENDPOINT"]


ROWS: list[tuple[str, str, dict[str, Any], int, dict[str, Any], str | tuple[str, int]]] = [
    # (name, path, command, status, body spec, outcome | (error type, status))
    ("v3 task missing", V3_STOP, STOP, 422, {"body": {"error_code": "CB.00031006", "error_msg": "no job"}},
     ("not_found", 404)),
    ("v1-code task missing on v3", V3_STOP, STOP, 422,
     {"body": {"error_code": "DEVCB.00031006", "error_msg": "no job"}}, ("not_found", 404)),
    ("delete: task missing", DELETE_PATH, DELETE, 422, {"body": {"error_code": "CB.00031006", "error_msg": "x"}},
     "already_deleted"),
    ("delete: DEVCB missing", DELETE_PATH, DELETE, 422, {"body": {"errorCode": "DEVCB.00031006", "errorMsg": "x"}},
     "already_deleted"),
    ("delete: 404 with a service code", DELETE_PATH, DELETE, 404,
     {"body": {"error_code": "DEV.CB.0404", "error_msg": "x"}}, "already_deleted"),
    ("stop: 404 with a service code", V3_STOP, STOP, 404, {"body": {"error_code": "CB.0404", "error_msg": "x"}},
     ("not_found", 404)),
    ("delete: gateway 404", DELETE_PATH, DELETE, 404, {"body": {"error_code": "APIGW.0002", "error_msg": "x"}},
     ("configuration", 502)),
    ("delete: 404 without a code", DELETE_PATH, DELETE, 404, {"raw": "<html>404 Not Found</html>"},
     ("configuration", 502)),
    ("delete: empty 404", DELETE_PATH, DELETE, 404, {"raw": ""}, ("configuration", 502)),
    ("no build history", V3_STOP, STOP, 403, {"body": {"error_code": "CB.00031059", "error_msg": "no history"}},
     ("not_found", 404)),
    ("finished build", V3_STOP, STOP, 400, {"body": {"error_code": "DEV.CB.032302", "error_msg": "refreshed"}},
     "already_stopped"),
    ("v3 empty 200", V3_STOP, STOP, 200, {"raw": ""}, "stopped"),
    ("v3 result false", V3_STOP, STOP, 200, {"body": {"result": False}}, "already_stopped"),
    ("v3 result true", V3_STOP, STOP, 200, {"body": {"result": True}}, "stopped"),
    # a 2xx needs evidence: a misconfigured endpoint's page, or a shape the API never returns, is no stop
    ("v3 HTML 200", V3_STOP, STOP, 200, {"raw": "<html>ok</html>"}, ("upstream_unexpected", 502)),
    ("v3 result as a string", V3_STOP, STOP, 200, {"body": {"result": "false"}}, ("upstream_unexpected", 502)),
    ("v3 JSON list", V3_STOP, STOP, 200, {"body": [True]}, ("upstream_unexpected", 502)),
    ("delete: documented body", DELETE_PATH, DELETE, 200,
     {"body": {"status": "success", "result": {"job_id": DEMO_JOB_ID, "project_id": DEMO_PROJECT_ID}}}, "deleted"),
    ("delete: HTML 200", DELETE_PATH, DELETE, 200, {"raw": "<html>ok</html>"}, ("upstream_unexpected", 502)),
    ("delete: empty 200", DELETE_PATH, DELETE, 200, {"raw": ""}, ("upstream_unexpected", 502)),
    ("DataArts HTML 200", JOB_PATH, JOB, 200, {"raw": "<html>ok</html>"}, ("upstream_unexpected", 502)),
    ("200 with an error code", V3_STOP, STOP, 200,
     {"body": {"error_code": "CB.00031006", "error_msg": "no job"}}, ("not_found", 404)),
    ("200 with a nested error", DELETE_PATH, DELETE, 200,
     {"body": {"status": "error", "error": {"error_code": "CB.00031006", "error_msg": "no job"}}},
     "already_deleted"),
    ("error as a JSON string", V3_STOP, STOP, 422,
     {"body": json.dumps({"error_code": "CB.00031006", "error_msg": "no job"})}, ("not_found", 404)),
    ("code/message shape", V3_STOP, STOP, 400, {"body": {"code": "DEV.CB.032302", "message": "refreshed"}},
     "already_stopped"),
    ("nested error shape", V3_STOP, STOP, 400, {"body": {"error": {"code": "CB.00060200", "message": "bad"}}},
     ("upstream_rejected", 422)),
    ("408", V3_STOP, STOP, 408, {"raw": ""}, ("unavailable", 503)),
    ("429 APIGW.0308", V3_STOP, STOP, 429, {"body": {"error_code": "APIGW.0308", "error_msg": "throttled"}},
     ("unavailable", 503)),
    ("APIGW.0308 under another status", V3_STOP, STOP, 403,
     {"body": {"error_code": "APIGW.0308", "error_msg": "throttled"}}, ("unavailable", 503)),
    ("CB.00060100 as 400", V3_STOP, STOP, 400, {"body": {"error_code": "CB.00060100", "error_msg": "busy"}},
     ("unavailable", 503)),
    ("CB.00060101 as 500", V3_STOP, STOP, 500, {"body": {"error_code": "CB.00060101", "error_msg": "busy"}},
     ("unavailable", 503)),
    ("CB.00060211 as 400", V3_STOP, STOP, 400, {"body": {"error_code": "CB.00060211", "error_msg": "busy"}},
     ("unavailable", 503)),
    ("CB.00060211 as 500", V3_STOP, STOP, 500, {"body": {"error_code": "CB.00060211", "error_msg": "busy"}},
     ("unavailable", 503)),
    ("DLF.0100", JOB_PATH, JOB, 400, {"body": {"error_code": "DLF.0100", "error_msg": "no job"}},
     ("not_found", 404)),
    ("DLF.0819", JOB_PATH, JOB, 400, {"body": {"error_code": "DLF.0819", "error_msg": "no workspace"}},
     ("not_found", 404)),
]


@pytest.mark.parametrize(("name", "path", "command", "status", "body", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_section_13_table(cloud: Emulator, name: str, path: str, command: dict[str, Any], status: int,
                          body: dict[str, Any], expected: str | tuple[str, int]) -> None:
    """Each row of the table: the served emulator answers the variant, the client maps it as documented,
    and a failure's message quotes the cloud's code, message and request id."""
    _respond(_server_url(cloud), path, status, **body)
    client = _client(build_stop_api="v3")
    try:
        if isinstance(expected, str):
            assert client.execute(parse_command(command)).outcome == Outcome(expected)
            return
        with pytest.raises(StoplineError) as info:
            raising(client.execute(parse_command(command)))
        err = info.value
        assert (err.type, err.status) == expected
        if err.upstream is not None and err.upstream.error_code:
            assert err.upstream.error_code in err.message and "request id" in err.message
        if "DLF.0819" in name:
            assert err.details and err.details[0]["field"] == "workspace"
    finally:
        client.close()


def test_v1_stop_reads_status(cloud: Emulator) -> None:
    """The v1 stop API: status success -> stopped; any other status -> upstream_rejected (422); build_no is sent
    both in the query and in the JSON body."""
    client = _client(build_stop_api="v1")
    try:
        assert client.execute(parse_command(STOP)).outcome is Outcome.STOPPED
        call = [c for c in cloud.calls if c["path"].startswith("/v1/job/")][-1]
        assert call["query"] == "build_no=20"
        _respond(_server_url(cloud), V1_STOP, 200, body={"status": "failed"})
        with pytest.raises(StoplineError) as info:
            raising(client.execute(parse_command({**STOP, "build_no": 21})))
        assert (info.value.type, info.value.status) == ("upstream_rejected", 422)
    finally:
        client.close()


def test_v1_stop_body_carries_build_no() -> None:
    """What goes over the wire for v1: the query parameter and the JSON body both name the build."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success"})

    settings = load_settings(ak="AK", sk="SK", project_id=DEMO_PROJECT_ID, build_stop_api="v1")
    client = Client(core_from(settings), transport=httpx.MockTransport(handler))
    client.execute(parse_command(STOP))
    assert seen[0].url.params["build_no"] == "20" and json.loads(seen[0].content) == {"build_no": 20}


def test_emulator_default_codes(cloud: Emulator) -> None:
    """Without rules the emulator answers with the cloud's own codes (no stand-ins)."""
    url = _server_url(cloud)
    client = _client(build_stop_api="v3")
    try:
        assert client.execute(parse_command({**STOP, "build_no": 18})).outcome is Outcome.ALREADY_STOPPED
        assert client.execute(parse_command(DELETE)).outcome is Outcome.DELETED
        assert client.execute(parse_command(DELETE)).outcome is Outcome.ALREADY_DELETED
    finally:
        client.close()
    by_path = [(c["path"], c["status"]) for c in cloud.calls]
    assert by_path == [("/v3/jobs/stop", 400), (f"/v3/jobs/{DEMO_JOB_ID}/delete", 200),
                       (f"/v3/jobs/{DEMO_JOB_ID}/delete", 422)]
    answer = httpx.post(f"{url}/v3/jobs/stop", json={"job_id": DEMO_JOB_ID, "build_no": "20"})
    assert answer.status_code == 401  # unsigned: the gateway refuses before the service
