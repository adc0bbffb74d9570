"""`stopline deploy functiongraph` against the emulator served on 127.0.0.1: the repository's own
serverless.yml planned and deployed, a second deploy that changes nothing, changes carried out as the
fewest calls, mistakes named before anything is called, the cloud's refusals named by function, key and
FSS code -- and the official huaweicloudsdkfunctiongraph (a test dependency only) as the oracle of the
requests' shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK, demo_environment

from .conftest import ROOT, configured_secret

RULES = ROOT / "shared" / "stopline" / "data" / "demo-rules.yaml"
FILE_VARIABLES = {
    "STOPLINE_WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "STOPLINE_IDEMPOTENCY_URL": "redis://10.0.0.3:6379/0",
    "APIG_INSTANCE_ID": "apig-instance-1", "APIG_GROUP_ID": "group-1", "KAFKA_INSTANCE_ID": "kafka-1",
    "KAFKA_USER": "stopline", "KAFKA_PASSWORD": "kafka-pass-0451", "RABBITMQ_INSTANCE_ID": "rabbit-1",
    "RABBITMQ_USER": "stopline", "RABBITMQ_PASSWORD": "rabbit-pass-9917",
    "SMN_TOPIC_URN": f"urn:smn:cn-north-4:{DEMO_PROJECT_ID}:stopline-commands",
    "STOPLINE_GITHUB_SECRETS": "gh-secret-3310", "STOPLINE_GITLAB_TOKENS": "gl-token-2219",
}
SECRETS = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "kafka-pass-0451", "rabbit-pass-9917", "gh-secret-3310",
           "gl-token-2219", DEMO_SK)
QUEUE_FUNCTIONS = {"kafka", "rabbitmq", "smn", "retries", "nightly", "cts"}


@pytest.fixture
def fg(served: tuple[Emulator, EmulatorServer]) -> Iterator[tuple[Emulator, dict[str, str]]]:
    """The served emulator and the environment a user deploys with (the emulator's endpoint and demo
    credentials, and every variable serverless.yml reads)."""
    emulator, server = served
    emulator.reset()  # no demo builds needed: only the credentials
    emulator.seed(credentials=[{"ak": DEMO_AK, "sk": DEMO_SK, "project_id": DEMO_PROJECT_ID}])
    configured_secret(*SECRETS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    env.update(demo_environment(server.url), **FILE_VARIABLES, STOPLINE_RULES=str(RULES))
    env.pop("STOPLINE_CODEARTS_PROJECT_ID")  # unset: the file's default is '' (then left out)
    yield emulator, env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FunctionGraph package, built once (with the demo rules) for the tests that pass --no-build."""
    folder = tmp_path_factory.mktemp("deploy")
    env = {**os.environ, "STOPLINE_RULES": str(RULES)}
    subprocess.run(["bash", str(ROOT / "scripts" / "package"), "fg", str(folder / "build" / "fg")], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=600)
    return folder


def deploy(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "stopline.cli", "deploy", "functiongraph", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    for secret in SECRETS:  # nothing printed carries a secret or a password
        assert secret not in done.stdout + done.stderr
    return done


def changes(emulator: Emulator, since: int = 0) -> list[tuple[str, str]]:
    """The calls that change state, as (method, what): function or trigger."""
    return [(c["method"], "trigger" if "/fgs/triggers/" in c["path"] else c["path"].rsplit("/", 1)[-1])
            for c in emulator.calls[since:] if c["method"] != "GET"]


def functions(emulator: Emulator) -> dict[str, dict[str, Any]]:
    with emulator.state.lock:
        return {f["func_name"].removeprefix("stopline-dev-"): dict(f) for f in emulator.state.functions.values()}


def triggers_of(emulator: Emulator, name: str) -> list[dict[str, Any]]:
    with emulator.state.lock:
        key = next(k for k, f in emulator.state.functions.items() if f["func_name"] == f"stopline-dev-{name}")
        return [dict(t) for t in emulator.state.fg_triggers[key]]


def test_the_repository_file_is_planned_deployed_and_then_unchanged(fg: tuple[Emulator, dict[str, str]]) -> None:
    emulator, env = fg
    plan = deploy(env, "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "8 functions: 8 to create" in plan.stdout and "nothing was changed" in plan.stdout
    assert changes(emulator) == [] and functions(emulator) == {}  # --plan only read

    done = deploy(env)
    assert done.returncode == 0, done.stderr
    assert "8 functions: 8 created, 0 updated, 0 unchanged" in done.stdout
    config = yaml.safe_load((ROOT / "serverless.yml").read_text())
    deployed = functions(emulator)
    assert set(deployed) == set(config["functions"])
    shas = set()
    for key, function in deployed.items():
        declared = config["functions"][key]
        assert (function["runtime"], function["handler"], function["memory_size"], function["timeout"]) == \
            ("Python3.12", "functiongraph.handler", 256, 30)
        assert (function["initializer_handler"], function["initializer_timeout"]) == ("functiongraph.initializer", 30)
        assert function["xrole"] == "stopline-agency"
        variables = json.loads(function["user_data"])
        shas.add(variables.pop("STOPLINE_PACKAGE_SHA256"))
        assert variables["STOPLINE_WEBHOOK_SECRETS"] == FILE_VARIABLES["STOPLINE_WEBHOOK_SECRETS"]
        assert "STOPLINE_CODEARTS_PROJECT_ID" not in variables  # empty values are left out
        files = set(function["code_files"])
        assert {"functiongraph.py", "stopline/__init__.py", "stopline-rules.yaml"} <= files
        assert not any(f.startswith(("flask/", "gunicorn/", "stopline/emulator/", "stopline/deploy/")) for f in files)
        kinds = [t["trigger_type_code"] for t in triggers_of(emulator, key)]
        wanted = [e["triggerTypeCode"] for e in declared.get("events", [])] or ["RABBITMQ"]
        assert kinds == wanted, key
        with emulator.state.lock:
            has_async = any(a["func_urn"] == function["func_urn"] for a in emulator.state.fg_async.values())
        assert has_async == (key in QUEUE_FUNCTIONS), key
    assert len(shas) == 1  # one package, recorded on every function
    github = json.loads(deployed["github"]["user_data"])  # its own variables and the shared ones (`<<: *common`)
    assert github["STOPLINE_RULES"] == "stopline-rules.yaml" and github["STOPLINE_IDEMPOTENCY_URL"]
    (rabbit,) = triggers_of(emulator, "rabbitmq")
    assert rabbit["event_data"]["access_password"] == FILE_VARIABLES["RABBITMQ_PASSWORD"]
    (timer,) = triggers_of(emulator, "retries")
    assert timer["event_data"] == {"name": "stopline-retries", "schedule_type": "Rate", "schedule": "1m"}

    before = len(emulator.calls)
    again = deploy(env)  # the package is rebuilt: the same files give the same zip
    assert again.returncode == 0, again.stderr
    assert "8 functions: 0 created, 0 updated, 8 unchanged" in again.stdout
    assert changes(emulator, before) == []


def test_a_change_is_carried_out_with_the_fewest_calls(fg: tuple[Emulator, dict[str, str]], built: Path) -> None:
    emulator, env = fg
    config = yaml.safe_load((ROOT / "serverless.yml").read_text())
    (built / "serverless.yml").write_text(yaml.safe_dump(config))
    first = deploy(env, "--no-build", "--only", "retries", "--only", "kafka", cwd=built)
    assert first.returncode == 0, first.stderr

    config["functions"]["retries"]["events"][0]["eventData"]["schedule"] = "2m"
    config["functions"]["kafka"]["memorySize"] = 512
    config["functions"]["kafka"]["events"] = []
    config["provider"]["environment"]["variables"]["STOPLINE_LOG_LEVEL"] = "DEBUG"
    (built / "serverless.yml").write_text(yaml.safe_dump(config))
    plan = deploy(env, "--no-build", "--only", "retries", "--only", "kafka", "--plan", cwd=built)
    assert "memory_size 256 -> 512" in plan.stdout and "~STOPLINE_LOG_LEVEL" in plan.stdout
    assert "delete trigger TIMER stopline-retries (replaced: schedule 1m -> 2m)" in plan.stdout
    assert "delete trigger KAFKA stopline-commands (not in serverless.yml)" in plan.stdout
    before = len(emulator.calls)
    done = deploy(env, "--no-build", "--only", "retries", "--only", "kafka", cwd=built)
    assert done.returncode == 0, done.stderr
    assert sorted(changes(emulator, before)) == sorted([("PUT", "config"), ("PUT", "config"), ("DELETE", "trigger"),
                                                        ("DELETE", "trigger"), ("POST", "trigger")])
    assert [t["event_data"]["schedule"] for t in triggers_of(emulator, "retries")] == ["2m"]
    assert triggers_of(emulator, "kafka") == [] and functions(emulator)["kafka"]["memory_size"] == 512
    assert emulator.state.fg_code_uploads == 0  # the package did not change: no upload

    (built / "build" / "fg" / "NOTICE.txt").write_text("a new file in the package\n")
    try:
        before = len(emulator.calls)
        code = deploy(env, "--no-build", "--only", "retries", cwd=built)
        assert code.returncode == 0, code.stderr
        assert changes(emulator, before) == [("PUT", "code"), ("PUT", "config")]  # upload, then record its sha256
        assert emulator.state.fg_code_uploads == 1 and "NOTICE.txt" in functions(emulator)["retries"]["code_files"]
        assert "unchanged" in deploy(env, "--no-build", "--only", "retries", cwd=built).stdout
    finally:
        (built / "build" / "fg" / "NOTICE.txt").unlink()


def test_mistakes_in_the_file_are_named_before_anything_is_called(fg: tuple[Emulator, dict[str, str]],
                                                                   built: Path) -> None:
    emulator, env = fg
    config = yaml.safe_load((ROOT / "serverless.yml").read_text())
    config["functions"]["retries"]["memorysize"] = 512
    config["functions"]["retries"]["events"][0]["eventData"]["schedule"] = "90m"
    (built / "bad.yml").write_text(yaml.safe_dump(config))
    config["functions"]["nightly"]["memorySize"] = 300  # reported with the unset variable below
    config["custom"]["stopline"]["functions"]["rabbit"] = {"events": []}  # a key that names no function
    (built / "bad.yml").write_text(yaml.safe_dump(config))
    done = deploy({k: v for k, v in env.items() if k != "KAFKA_INSTANCE_ID"}, "-c", "bad.yml", "--no-build", cwd=built)
    assert done.returncode == 2
    assert "functions.retries.memorysize: not a key stopline deploy reads (did you mean memorySize?)" in done.stderr
    assert "functions.retries.events[0].eventData.schedule: '90m' is not a rate" in done.stderr
    assert "functions.nightly.memorySize: 300 MB is not one of 128, 256" in done.stderr
    assert "custom.stopline.functions.rabbit: no function rabbit under functions:" in done.stderr
    assert "bad.yml has 5 problems; nothing was called" in done.stderr
    assert "functions.kafka.events[0].eventData.instanceId: ${env:KAFKA_INSTANCE_ID} is not set" in done.stderr
    assert "nothing was called" in done.stderr and emulator.calls == []

    missing_rules = deploy({k: v for k, v in env.items() if k != "STOPLINE_RULES"}, "--only", "github", "--plan")
    assert missing_rules.returncode == 2 and emulator.calls == []
    assert "functions.github.environment.variables.STOPLINE_RULES: stopline-rules.yaml is not in the package" \
        in missing_rules.stderr


def test_a_refusal_names_the_function_the_key_and_the_code(fg: tuple[Emulator, dict[str, str]],
                                                          built: Path) -> None:
    emulator, env = fg
    shutil.copy(ROOT / "serverless.yml", built / "serverless.yml")
    emulator.inject(r"/fgs/functions$", "error", status=503, count=1)  # transient: retried
    emulator.inject(r"/fgs/triggers/", "respond", status=400, count=1, error_code="FSS.1109")
    done = deploy(env, "--no-build", "--only", "retries", cwd=built)
    assert done.returncode == 1
    assert "stopline-dev-retries (functions.retries.events[0]): FunctionGraph refused to create the trigger: " \
           "HTTP 400 FSS.1109" in done.stderr
    assert "running the command again continues from here" in done.stderr
    assert "stopline-dev-retries" in functions(emulator)["retries"]["func_name"]  # the create was retried once
    again = deploy(env, "--no-build", "--only", "retries", cwd=built)
    assert again.returncode == 0, again.stderr
    assert "+ create trigger TIMER stopline-retries: done" in again.stdout and "create function" not in again.stdout


def test_the_official_sdk_sends_and_reads_the_same_shapes(fg: tuple[Emulator, dict[str, str]], built: Path,
                                                          served: tuple[Emulator, EmulatorServer]) -> None:
    """The SDK reads the emulator's answers to stopline's calls into its models, and its own requests --
    built from the bodies stopline sent -- take the same paths and leave the same state."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkfunctiongraph.v2 import (
        CreateFunctionRequest,
        CreateFunctionRequestBody,
        CreateFunctionTriggerRequest,
        CreateFunctionTriggerRequestBody,
        FuncCode,
        FunctionGraphClient,
        ListFunctionTriggersRequest,
        ShowFunctionConfigRequest,
        TriggerEventDataRequestBody,
        UpdateFunctionAsyncInvokeConfigRequest,
        UpdateFunctionAsyncInvokeConfigRequestBody,
    )

    emulator, env = fg
    shutil.copy(ROOT / "serverless.yml", built / "serverless.yml")
    assert deploy(env, "--no-build", "--only", "retries", cwd=built).returncode == 0
    ours = [c for c in emulator.calls if c["method"] != "GET"]
    urn = functions(emulator)["retries"]["func_urn"]
    sdk = (FunctionGraphClient.new_builder().with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, DEMO_PROJECT_ID))
           .with_endpoints([served[1].url]).build())

    shown = sdk.show_function_config(ShowFunctionConfigRequest(function_urn=urn))
    assert (shown.func_urn, shown.handler, shown.initializer_handler) == (urn, "functiongraph.handler",
                                                                        "functiongraph.initializer")
    listed = sdk.list_function_triggers(ListFunctionTriggersRequest(function_urn=urn)).body
    assert [(t.trigger_type_code, t.event_data.schedule) for t in listed] == [("TIMER", "1m")]

    with emulator.state.lock:
        mine = dict(next(iter(emulator.state.functions.values())))
    fields = {k: mine[k] for k in ("runtime", "handler", "memory_size", "timeout", "user_data", "xrole",
                                   "initializer_handler", "initializer_timeout", "package")}
    code = (built / "build" / "fg" / "functiongraph.py").read_bytes()
    sdk.create_function(CreateFunctionRequest(body=CreateFunctionRequestBody(
        func_name="sdk-twin", code_type="zip", type="v2", func_code=FuncCode(file=_zip_base64(code)), **fields)))
    twin_urn = urn.replace("stopline-dev-retries", "sdk-twin")
    (timer_body,) = [json.loads(c["body"]) for c in ours if "/fgs/triggers/" in c["path"]]
    trigger = CreateFunctionTriggerRequestBody(
        trigger_type_code=timer_body["trigger_type_code"], trigger_status=timer_body["trigger_status"],
        event_type_code=timer_body["event_type_code"],
        event_data=TriggerEventDataRequestBody(**timer_body["event_data"]))
    sdk.create_function_trigger(CreateFunctionTriggerRequest(function_urn=twin_urn, body=trigger))
    (async_body,) = [json.loads(c["body"]) for c in ours if c["path"].endswith("/async-invoke-config")]
    sdk.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
        function_urn=twin_urn, body=UpdateFunctionAsyncInvokeConfigRequestBody(**async_body)))

    theirs = [c for c in emulator.calls if c["method"] != "GET"][len(ours):]
    assert [(c["method"], c["path"].replace("sdk-twin", "stopline-dev-retries"), c["status"]) for c in theirs] == \
        [(c["method"], c["path"], c["status"]) for c in ours]
    with emulator.state.lock:
        twin = next(f for f in emulator.state.functions.values() if f["func_name"] == "sdk-twin")
        assert {k: twin[k] for k in fields} == fields
        (twin_timer,) = emulator.state.fg_triggers[_key(twin_urn)]
    (our_timer,) = triggers_of(emulator, "retries")
    assert twin_timer["event_data"] == our_timer["event_data"]


def _key(urn: str) -> str:
    parts = urn.split(":")
    return ":".join([parts[3], parts[5], parts[6], parts[7]])


def _zip_base64(content: bytes) -> str:
    import base64
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("functiongraph.py", content)
    return base64.b64encode(buffer.getvalue()).decode()


def test_an_unreachable_endpoint_is_named_with_its_variable(fg: tuple[Emulator, dict[str, str]], built: Path) -> None:
    _, env = fg
    shutil.copy(ROOT / "serverless.yml", built / "serverless.yml")
    from .conftest import free_port

    env = {**env, "STOPLINE_FUNCTIONGRAPH_ENDPOINT": f"http://127.0.0.1:{free_port()}", "STOPLINE_MAX_ATTEMPTS": "1"}
    done = deploy(env, "--no-build", "--only", "retries", "--plan", cwd=built)
    assert done.returncode == 1
    assert "stopline-dev-retries (functions.retries): could not read the function" in done.stderr
    assert "STOPLINE_FUNCTIONGRAPH_ENDPOINT" in done.stderr and "nothing was changed" in done.stderr


def test_a_failure_destination_is_set_once(fg: tuple[Emulator, dict[str, str]], built: Path) -> None:
    """custom.stopline.asyncInvoke.onFailure reaches the queue function's async config; the answer's own
    fields (timestamps, URN) are not taken for a difference, so the next deploy changes nothing."""
    emulator, env = fg
    config = yaml.safe_load((ROOT / "serverless.yml").read_text())
    topic = f"urn:smn:cn-north-4:{DEMO_PROJECT_ID}:stopline-failures"
    config["custom"]["stopline"]["asyncInvoke"]["onFailure"] = {"destination": "SMN", "topic_urn": topic}
    (built / "serverless.yml").write_text(yaml.safe_dump(config))
    first = deploy(env, "--no-build", "--only", "retries", cwd=built)
    assert first.returncode == 0, first.stderr
    assert "set async invocation: 3 retries, events kept 3600 s, failures to SMN: done" in first.stdout
    with emulator.state.lock:
        (stored,) = emulator.state.fg_async.values()
    assert stored["destination_config"] == {"on_failure": {"destination": "SMN",
                                                           "param": json.dumps({"topic_urn": topic}).replace(" ", "")}}
    before = len(emulator.calls)
    again = deploy(env, "--no-build", "--only", "retries", cwd=built)
    assert "= unchanged" in again.stdout and changes(emulator, before) == []
