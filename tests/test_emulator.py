"""The emulator as a real fake: the official SDK clients succeed against it, bad signatures get the
cloud's 401 body, the control API works over HTTP, and faults repeat by seed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from huaweicloudsdkcodeartsbuild.v3 import (
    CodeArtsBuildClient,
    DeleteBuildJobRequest,
    StopJobRequest,
    StopJobRequestBody,
    StopTheJobRequest,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdgc.v1 import DgcClient
from huaweicloudsdkdgc.v1 import StopJobRequest as DgcStopJobRequest

from stopline.auth import signer
from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_AK, DEMO_JOB_ID, DEMO_PROJECT_ID, DEMO_SK, DEMO_TASK_ID


def _build(url: str, sk: str = DEMO_SK) -> CodeArtsBuildClient:
    return (CodeArtsBuildClient.new_builder().with_credentials(BasicCredentials(DEMO_AK, sk, DEMO_PROJECT_ID))
            .with_endpoints([url]).build())


def _dgc(url: str) -> DgcClient:
    return DgcClient.new_builder().with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, DEMO_PROJECT_ID)) \
        .with_endpoints([url]).build()


def test_official_sdk_clients_succeed(served: tuple[Emulator, EmulatorServer]) -> None:
    """StopJob (v3), StopTheJob (v1, build_no in the query), DeleteBuildJob and DGC StopJob all succeed."""
    emulator, server = served
    build = _build(server.url)
    assert build.stop_job(StopJobRequest(body=StopJobRequestBody(job_id=DEMO_JOB_ID, build_no="20"))).result is True
    assert build.stop_the_job(StopTheJobRequest(job_id=DEMO_JOB_ID, build_no=21)).status == "success"
    assert build.delete_build_job(DeleteBuildJobRequest(job_id=DEMO_TASK_ID)).status == "success"
    _dgc(server.url).stop_job(DgcStopJobRequest(workspace="ws1", job_name="myJob"))
    assert [c["status"] for c in emulator.calls] == [200, 200, 200, 204]
    assert all(c["auth"] == "aksk" for c in emulator.calls)
    assert [e["effect"] for e in emulator.effects] == ["build_stopped", "build_stopped", "task_deleted",
                                                      "job_stopped"]


def test_wrong_key_gets_the_cloud_401(served: tuple[Emulator, EmulatorServer]) -> None:
    _, server = served
    with pytest.raises(ClientRequestException) as info:
        _build(server.url, sk="not-the-secret").stop_job(
            StopJobRequest(body=StopJobRequestBody(job_id=DEMO_JOB_ID, build_no="20")))
    assert info.value.status_code == 401 and info.value.error_code == "APIGW.0301"


def test_tampered_body_is_refused(served: tuple[Emulator, EmulatorServer]) -> None:
    """A signature over one body does not authorize another."""
    emulator, server = served
    body = json.dumps({"job_id": DEMO_JOB_ID, "build_no": "21"}).encode()
    host = server.url.removeprefix("http://")
    headers = signer.sign(access_key=DEMO_AK, secret_key=DEMO_SK, method="POST", host=host, path="/v3/jobs/stop",
                          headers={"Content-Type": "application/json", "X-Project-Id": DEMO_PROJECT_ID},
                          body=body)
    tampered = body.replace(b"21", b"22")
    answer = httpx.post(f"{server.url}/v3/jobs/stop", content=tampered, headers=headers)
    assert answer.status_code == 401 and answer.json()["error_code"] == "APIGW.0301"
    assert answer.headers["X-Request-Id"]
    ok = httpx.post(f"{server.url}/v3/jobs/stop", content=body, headers=headers)
    assert ok.status_code == 200 and ok.json() == {"result": True}
    assert emulator.effects == [{"effect": "build_stopped", "job_id": DEMO_JOB_ID, "build_no": 21}]


def test_unknown_path_is_api_not_found(served: tuple[Emulator, EmulatorServer]) -> None:
    answer = httpx.post(f"{served[1].url}/v9/nothing")
    assert answer.status_code == 404 and answer.json()["error_code"] == "APIGW.0101"


def test_control_api(served: tuple[Emulator, EmulatorServer]) -> None:
    emulator, server = served
    url = server.url + "/_emulator"
    assert httpx.get(f"{url}/health").json() == {"ok": True}
    assert httpx.post(f"{url}/reset").status_code == 200
    assert emulator.state.build_tasks == {}
    seed = {"tokens": ["tok-1"], "build_tasks": [{"job_id": "a" * 32, "project_id": "p",
                                                  "builds": [{"build_no": 5, "state": "running"}]}]}
    assert httpx.post(f"{url}/seed", json=seed).status_code == 200
    rule = {"path": "^/v3/jobs/stop$", "kind": "throttle", "count": 1, "retry_after": 3}
    assert httpx.post(f"{url}/faults", json=rule).status_code == 200
    first = httpx.post(f"{server.url}/v3/jobs/stop", json={"job_id": "a" * 32, "build_no": "5"},
                       headers={"X-Auth-Token": "tok-1"})
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    second = httpx.post(f"{server.url}/v3/jobs/stop", json={"job_id": "a" * 32, "build_no": "5"},
                        headers={"X-Auth-Token": "tok-1"})
    assert second.json() == {"result": True}
    calls = httpx.get(f"{url}/calls").json()["calls"]
    assert [(c["status"], c["auth"]) for c in calls] == [(429, "none"), (200, "token")]
    assert httpx.request("DELETE", f"{url}/faults").status_code == 200
    assert httpx.post(f"{url}/faults", json={"path": "x", "kind": "nope"}).status_code == 400


@pytest.mark.parametrize(("route", "body", "says"), [
    ("seed", [], "body must be a JSON object, not a list"),
    ("seed", {"build_task": [{"job_id": "a" * 32}]}, "seed: build_task: Extra inputs are not permitted"),
    ("seed", {"build_tasks": "x"}, "seed: build_tasks: Input should be a valid list"),
    ("seed", {"build_tasks": [{"job_id": 1}]}, "seed: build_tasks.0.job_id: Input should be a valid string"),
    ("seed", {"build_tasks": [{"job_id": "b" * 32, "builds": [{"build_no": 0}]}]},
     "seed: build_tasks.0.builds.0.build_no: Input should be greater than or equal to 1"),
    ("faults", {"path": "(", "kind": "error"}, "path: not a regular expression"),
    ("faults", {"path": "x", "kind": "error", "status": "abc"}, "fault: status: Input should be a valid integer"),
    ("faults", {"path": "x", "kind": "error", "count": -1}, "fault: count: Input should be greater than or equal"),
    ("faults", ["x"], "body must be a JSON object, not a list"),
])
def test_control_api_refuses_what_it_cannot_use(served: tuple[Emulator, EmulatorServer], route: str, body: Any,
                                                says: str) -> None:
    """A control call the emulator cannot use is a 400 naming the field, and changes nothing: a list body
    and a bad regular expression dropped the connection, a misspelt seed section seeded nothing and said
    ok, a fault's wrong type was kept until it fired."""
    emulator, server = served
    before = (emulator.state.snapshot(), len(emulator.faults.rules))
    answer = httpx.post(f"{server.url}/_emulator/{route}", json=body)
    assert answer.status_code == 400 and answer.json()["ok"] is False
    assert answer.json()["error"].startswith(says), answer.json()
    assert (emulator.state.snapshot(), len(emulator.faults.rules)) == before
    assert httpx.get(f"{server.url}/_emulator/health").json() == {"ok": True}
    with pytest.raises(ValueError, match="build_task"):  # the in-process seed says the same
        emulator.seed({"build_task": []})


def test_faults_repeat_by_seed() -> None:
    """The same rule with the same seed fires on the same requests."""
    def pattern(seed: int) -> list[bool]:
        emulator = Emulator()
        rule = emulator.inject("stop", "error", rate=0.3, seed=seed)
        return [rule.fires("/v3/jobs/stop") for _ in range(200)]

    assert pattern(7) == pattern(7) != pattern(8)
    assert 30 <= sum(pattern(7)) <= 90


def test_official_sdk_parses_the_look_up_apis(served: tuple[Emulator, EmulatorServer]) -> None:
    """The look-up APIs of section 10, read by the official SDK as the oracle: list_build_info_record (v3),
    list_build_info_record_by_job_id (v1), show_running_status, list_job_instances and stop_job_instance."""
    import time

    from huaweicloudsdkcodeartsbuild.v3 import (
        ListBuildInfoRecordByJobIdRequest,
        ListBuildInfoRecordRequest,
        ShowRunningStatusRequest,
    )
    from huaweicloudsdkdgc.v1 import ListJobInstancesRequest, StopJobInstanceRequest

    from stopline.emulator.seeds import DEMO_COMMIT, DEMO_DATAARTS_JOB, DEMO_INSTANCE_ID

    emulator, server = served
    build = _build(server.url)
    now = time.time()
    window = {"start_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 86400)),
              "end_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + 60))}
    v3 = build.list_build_info_record(ListBuildInfoRecordRequest(job_id=DEMO_JOB_ID, page_index=0, page_size=4,
                                                                 **window))
    assert (v3.result.total_page, v3.result.total_record) == ("2", "7")
    second = v3.result.job_build_states[1]
    assert (second.number, second.job_running_status, second.code_branch) == (23, "InQueue", "feature/x")
    assert [r.number for r in v3.result.job_build_states] == [24, 23, 22, 21]
    assert v3.result.job_build_states[3].commit_id == DEMO_COMMIT
    v1 = build.list_build_info_record_by_job_id(ListBuildInfoRecordByJobIdRequest(
        job_id=DEMO_JOB_ID, page_index=1, page_size=4, **window))
    assert [(r.number, r.state) for r in v1.result.job_build_states] == [(20, "Running"), (19, "ABORTED"),
                                                                          (18, "SUCCESS")]
    status = build.show_running_status(ShowRunningStatusRequest(job_id=DEMO_JOB_ID))
    assert (status.result.last_build_no, status.result.is_running) == ("24", True)

    dgc = _dgc(server.url)
    listed = dgc.list_job_instances(ListJobInstancesRequest(
        job_name=DEMO_DATAARTS_JOB, precise_query="jobName", min_plan_time=int((now - 7 * 86400) * 1000),
        max_plan_time=int(now * 1000), limit=10, offset=0))
    assert listed.total == 2
    assert [(i.instance_id, i.status, i.job_name) for i in listed.instances] == [
        (DEMO_INSTANCE_ID, "running", DEMO_DATAARTS_JOB), (DEMO_INSTANCE_ID - 1, "success", DEMO_DATAARTS_JOB)]
    dgc.stop_job_instance(StopJobInstanceRequest(job_name=DEMO_DATAARTS_JOB, instance_id=DEMO_INSTANCE_ID))
    assert emulator.effects[-1]["effect"] == "instance_stopped"
    with pytest.raises(ClientRequestException) as info:
        dgc.stop_job_instance(StopJobInstanceRequest(job_name=DEMO_DATAARTS_JOB, instance_id=1))
    assert (info.value.status_code, info.value.error_code) == (400, "DLF.0137")


def test_the_emulator_shares_no_code_with_the_client_it_checks() -> None:
    """Its signature check is its own: nothing under emulator/ imports stopline's signer, client, driver,
    pipeline or triggers (only the transport seam it plugs into)."""
    import ast
    from pathlib import Path

    import stopline.emulator

    allowed = ("stopline.emulator", "stopline.transport")
    folder = Path(stopline.emulator.__file__).parent
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stopline"):
                names = [node.module] if node.module != "stopline" else [f"stopline.{a.name}" for a in node.names]
                for name in names:
                    assert name.startswith(allowed), f"{source.name} imports {name}"


def test_a_signer_bug_does_not_pass_the_emulator(served: tuple[Emulator, EmulatorServer]) -> None:
    """A signature made over the wrong canonical path (the trailing slash the algorithm adds left out, as a
    buggy signer might) is refused, although the request is otherwise exactly what the SDK sends."""
    import hashlib
    import hmac
    from datetime import UTC, datetime

    _, server = served
    host = server.url.removeprefix("http://")
    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body = json.dumps({"job_id": DEMO_JOB_ID, "build_no": "21"}).encode()
    headers = {"content-type": "application/json", "host": host, "x-project-id": DEMO_PROJECT_ID, "x-sdk-date": date}
    names = sorted(headers)

    def signature(path: str) -> str:
        canonical = "\n".join(["POST", path, "", "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names),
                               hashlib.sha256(body).hexdigest()])
        to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        return hmac.new(DEMO_SK.encode(), to_sign.encode(), hashlib.sha256).hexdigest()

    def send(path: str) -> httpx.Response:
        auth = f"SDK-HMAC-SHA256 Access={DEMO_AK}, SignedHeaders={';'.join(names)}, Signature={signature(path)}"
        return httpx.post(f"{server.url}/v3/jobs/stop", content=body, headers={**headers, "authorization": auth})

    assert send("/v3/jobs/stop").status_code == 401  # the bug: no trailing slash in the canonical path
    assert send("/v3/jobs/stop/").status_code == 200  # the algorithm as documented
