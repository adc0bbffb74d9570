"""The `stopline` command as a user runs it: real processes against the served emulator; exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import DEMO_JOB_ID, demo_environment

from .conftest import ROOT, free_port, wait_port

STOPLINE = [sys.executable, "-m", "stopline.cli"]


def environment(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without stopline's and the SDK's variables, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    return {**clean, **env}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STOPLINE, *args], env=environment(env), capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.fixture
def env(served: tuple[Emulator, EmulatorServer]) -> dict[str, str]:
    return demo_environment(served[1].url)


def test_issue_walkthrough(served: tuple[Emulator, EmulatorServer], env: dict[str, str]) -> None:
    """The README's direct-call tour: stopped, already_stopped, deleted, already_deleted, stopped, not_found."""
    first = run(["stop-build", DEMO_JOB_ID, "20"], env)
    assert first.returncode == 0 and first.stdout.startswith("stopped:"), first.stderr
    assert run(["stop-build", DEMO_JOB_ID, "20"], env).stdout.startswith("already_stopped:")
    assert run(["delete-build-task", DEMO_JOB_ID], env).stdout.startswith("deleted:")
    again = run(["delete-build-task", DEMO_JOB_ID], env)
    assert again.returncode == 0 and again.stdout.startswith("already_deleted:")
    assert run(["stop-job", "myJob", "--workspace", "ws1"], env).stdout.startswith("stopped:")
    missing = run(["stop-job", "noSuchJob"], env)
    assert missing.returncode == 1
    assert missing.stdout.startswith("not_found") and "DLF.0100" in missing.stdout + missing.stderr
    assert len(served[0].effects) == 3


def test_json_output(env: dict[str, str]) -> None:
    out = run(["stop-build", DEMO_JOB_ID, "21", "--json"], env)
    data = json.loads(out.stdout)
    assert data["ok"] is True and data["outcome"] == "stopped" and data["api"] == "v3"
    assert data["target"] == {"job_id": DEMO_JOB_ID, "build_no": 21} and data["upstream_request_id"]


@pytest.mark.parametrize("args", [["stop-build", "short", "20"], ["stop-build", DEMO_JOB_ID, "0"],
                                  ["stop-job", "a/b"], ["stop-job", ".."],
                                  ["stop-build", DEMO_JOB_ID, "--commit-id", "xyz"],
                                  ["stop-job", "x", "--scope", "all"], ["running", "short"]])
def test_bad_arguments_are_usage_errors(args: list[str], env: dict[str, str]) -> None:
    result = run(args, env)
    assert result.returncode == 2 and result.stdout == ""


def test_no_credentials_is_exit_2_naming_variables() -> None:
    result = run(["stop-build", DEMO_JOB_ID, "20"], {})
    assert result.returncode == 2
    assert "HUAWEICLOUD_SDK_AK" in result.stderr and "STOPLINE_IAM_USERNAME" in result.stderr


def test_bad_setting_is_exit_2_naming_the_variable(env: dict[str, str]) -> None:
    result = run(["stop-build", DEMO_JOB_ID, "20"], {**env, "STOPLINE_MAX_ATTEMPTS": "lots"})
    assert result.returncode == 2 and "STOPLINE_MAX_ATTEMPTS" in result.stderr


def test_emulator_command_serves_and_stops(tmp_path: Path) -> None:
    """`stopline emulator --seed demo` prints its URL and credentials, serves, and stops on SIGTERM."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([*STOPLINE, "emulator", "--port", str(port), "--seed", "demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_port(port, process=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/_emulator/health").json() == {"ok": True}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}" in out and "HUAWEICLOUD_SDK_AK=" in out


def test_emulator_busy_port_is_a_clear_error(served: tuple[Emulator, EmulatorServer]) -> None:
    result = run(["emulator", "--port", str(served[1].port)], {})
    assert result.returncode == 2 and "in use" not in result.stdout and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_running_and_stop_by_commit_and_branch(served: tuple[Emulator, EmulatorServer], env: dict[str, str]) -> None:
    """The section-10 tour: `running` lists what runs; `stop-build --commit-id` stops every build of that commit
    (one line each); `--branch --except-commit-id` stops the superseded ones; `stop-job --scope instances`."""
    from stopline.emulator.seeds import DEMO_COMMIT, DEMO_DATAARTS_JOB, DEMO_INSTANCE_ID, DEMO_NEW_COMMIT

    listed = run(["running", DEMO_JOB_ID], env)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["20", "21", "22", "23", "24"]
    assert rows[0].split()[1:] == ["Running", "feature/x", DEMO_COMMIT] and rows[3].split()[1] == "InQueue"
    early = run(["stop-build", DEMO_JOB_ID, "--commit", DEMO_COMMIT[:7], "--started-before", "2000-01-01T00:00:00Z"],
                env)
    assert early.returncode == 0 and early.stdout.startswith("nothing_running:"), early.stderr
    by_commit = run(["stop-build", DEMO_JOB_ID, "--commit", DEMO_COMMIT[:7]], env)  # the documented spelling
    assert by_commit.returncode == 0, by_commit.stderr
    lines = by_commit.stdout.splitlines()
    assert lines[0].startswith("stopped: stop_build") and [ln.split(":")[0].strip() for ln in lines[1:]] == [
        "build 20", "build 21"]
    superseded = run(["stop-build", DEMO_JOB_ID, "--branch", "feature/x", "--except-commit", DEMO_NEW_COMMIT[:7]],
                     env)
    assert superseded.stdout.startswith("nothing_running:") and superseded.returncode == 0
    listed_json = json.loads(run(["running", DEMO_JOB_ID, "--json"], env).stdout)
    assert [b["build_no"] for b in listed_json["builds"]] == [22, 23, 24]
    job = run(["stop-job", DEMO_DATAARTS_JOB, "--scope", "instances"], env)
    assert job.returncode == 0
    assert job.stdout.splitlines()[1].strip().startswith(f"instance {DEMO_INSTANCE_ID}: stopped")
    assert [e["effect"] for e in served[0].effects] == ["build_stopped", "build_stopped", "instance_stopped"]
    clash = run(["stop-build", DEMO_JOB_ID, "20", "--commit-id", DEMO_COMMIT[:7]], env)  # the field's name works too
    assert clash.returncode == 2 and "commit-id" in clash.stderr and "build_no" in clash.stderr


def test_pipeline_runs_from_the_command_line(served: tuple[Emulator, EmulatorServer], env: dict[str, str]) -> None:
    """`running --pipeline` lists the running runs; `stop-pipeline` takes the documented filters (--commit,
    --branch, --except-commit, --started-before) and a run id, and stops only what they name."""
    from stopline.emulator.seeds import DEMO_COMMIT, DEMO_EVENT_COMMIT, DEMO_OLD_RUN_ID, DEMO_PIPELINE_ID, DEMO_RUN_ID

    listed = run(["running", "--pipeline", DEMO_PIPELINE_ID], env)
    assert listed.returncode == 0, listed.stderr
    assert [row.split()[0] for row in listed.stdout.splitlines()[1:]] == [DEMO_OLD_RUN_ID, DEMO_RUN_ID]
    newest_only = run(["stop-pipeline", DEMO_PIPELINE_ID, "--branch", "main", "--except-commit",
                       DEMO_EVENT_COMMIT[:7]], env)
    too_early = run(["stop-pipeline", DEMO_PIPELINE_ID, "--commit", DEMO_COMMIT[:7], "--started-before",
                     "2000-01-01T00:00:00Z"], env)
    assert [r.stdout.split(":")[0] for r in (newest_only, too_early)] == ["nothing_running"] * 2
    by_commit = run(["stop-pipeline", DEMO_PIPELINE_ID, "--commit", DEMO_COMMIT[:7]], env)
    lines = by_commit.stdout.splitlines()
    assert by_commit.returncode == 0 and len(lines) == 2
    assert lines[1].strip().startswith(f"run {DEMO_OLD_RUN_ID}: stopped")
    one = run(["stop-pipeline", DEMO_PIPELINE_ID, DEMO_RUN_ID, "--json"], env)
    assert json.loads(one.stdout)["outcome"] == "stopped"
    assert json.loads(run(["running", "--pipeline", DEMO_PIPELINE_ID, "--json"], env).stdout)["runs"] == []
    stopped = [e for e in served[0].effects if e["effect"] == "pipeline_run_stopped"]
    assert sorted(e["pipeline_run_id"] for e in stopped) == sorted([DEMO_OLD_RUN_ID, DEMO_RUN_ID])


def at_a_terminal(args: list[str], env: dict[str, str], answer: str) -> subprocess.CompletedProcess[str]:
    """Run ``stopline`` with a terminal as its stdin (a person typing), answering ``answer`` to any prompt."""
    import pty

    main_fd, terminal = pty.openpty()
    try:
        proc = subprocess.Popen([*STOPLINE, *args], env=environment(env), stdin=terminal, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
        os.write(main_fd, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(main_fd)
        os.close(terminal)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_person_is_asked_before_everything_running_is_stopped(served: tuple[Emulator, EmulatorServer],
                                                               env: dict[str, str]) -> None:
    """`stop-build JOB` with no number and no filter, typed at a terminal, asks first: "n" stops nothing;
    `--yes` (or a script, with no terminal) stops every running build as the documented form says."""
    declined = at_a_terminal(["stop-build", DEMO_JOB_ID], env, "n\n")
    assert declined.returncode == 1 and "stop every running build of task" in declined.stderr
    assert "nothing stopped" in declined.stderr and served[0].effects == []
    filtered = at_a_terminal(["stop-build", DEMO_JOB_ID, "--branch", "feature/x"], env, "")
    assert filtered.returncode == 0 and "stop every" not in filtered.stderr  # a filter names what to stop
    assert at_a_terminal(["stop-pipeline", "794514e0a3184e5db0a4740112deee0f"], env, "n\n").returncode == 1
    confirmed = at_a_terminal(["stop-build", DEMO_JOB_ID, "--yes"], env, "")
    assert confirmed.returncode == 0 and "stop every" not in confirmed.stderr
    assert sorted(e["build_no"] for e in served[0].effects) == [20, 21, 22, 23, 24]
    scripted = run(["stop-build", DEMO_JOB_ID], env)  # no terminal: nothing to ask, nothing left running
    assert scripted.returncode == 0 and scripted.stdout.startswith("nothing_running")


def test_invoke_emulate_says_it_uses_its_own_emulator() -> None:
    """Issue 15: `stopline invoke --emulate` silently used a private emulator, not the dev stack's."""
    done = run(["invoke", "functiongraph", "--event", str(ROOT / "events" / "functiongraph-smn.json"), "--emulate"],
               {})
    assert done.returncode == 0, done.stderr
    assert "private in-process emulator" in done.stderr and "stopline dev" in done.stderr
    assert json.loads(done.stdout)["results"][0]["outcome"] == "stopped"


def test_invoke_answers_an_event_with_a_bad_base64_body_as_the_cloud_would(tmp_path: Path) -> None:
    """An APIG event whose body is not valid base64 is the handler's to refuse (401: nothing it could
    verify), and a CloudEvent with a bad data_base64 is a usage error naming the field -- neither a bare
    "Incorrect padding" from the command line."""
    apig = json.loads((ROOT / "events" / "functiongraph-apig.json").read_text())
    path = tmp_path / "apig.json"
    path.write_text(json.dumps({**apig, "body": "%%%not-base64", "isBase64Encoded": True}))
    done = run(["invoke", "functiongraph", "--event", str(path), "--emulate"], {})
    assert done.returncode == 1 and json.loads(done.stdout)["statusCode"] == 401, done.stderr
    event = tmp_path / "ce.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "x", "source": "//t", "type": "stopline.stop_build",
                                 "data_base64": "%%%"}))
    refused = run(["invoke", "on_event", "--event", str(event), "--emulate"], {})
    assert refused.returncode == 2 and "data_base64 is not valid base64" in refused.stderr
    assert "Traceback" not in done.stderr + refused.stderr


def test_invoke_runs_the_pipeline_sources_and_the_retries_target(tmp_path: Path) -> None:
    """`stopline invoke github|gitlab` sends a payload as its sender would (signature or token, the event
    header read from the payload unless --event-type says it), through the demo rules; `retries` runs what
    is due. A payload that is not JSON is the target's to refuse, as in production."""
    events = ROOT / "events"
    github = run(["invoke", "github", "--event", str(events / "github-workflow_run-cancelled.json"), "--emulate"], {})
    assert github.returncode == 0, github.stderr
    body = json.loads(github.stdout)["body"]
    assert body["event"]["kind"] == "cancelled" and body["results"][0]["builds"] == [
        {"build_no": 24, "outcome": "stopped", "upstream_request_id": body["results"][0]["upstream_request_id"]}]
    gitlab = run(["invoke", "gitlab", "--event", str(events / "gitlab-pipeline-canceled.json"), "--emulate"], {})
    assert gitlab.returncode == 0 and json.loads(gitlab.stdout)["body"]["results"][0]["outcome"] == "stopped"
    told = run(["invoke", "gitlab", "--event", str(events / "gitlab-pipeline-canceled.json"), "--event-type",
                "Push Hook", "--emulate"], {})
    assert told.returncode == 0 and "is not acted on" in json.loads(told.stdout)["body"]["ignored"]
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    swept = run(["invoke", "retries", "--event", str(empty), "--emulate"], {})
    assert swept.returncode == 0 and json.loads(swept.stdout)["body"]["ran"] == 0, swept.stderr
    garbled = tmp_path / "garbled.json"
    garbled.write_text("not json")
    refused = run(["invoke", "github", "--event", str(garbled), "--event-type", "workflow_run", "--emulate"], {})
    assert refused.returncode == 1 and json.loads(refused.stdout)["status"] == 400
    misused = run(["invoke", "webhook", "--event", str(empty), "--event-type", "workflow_run"], {})
    assert misused.returncode == 2 and "--event-type is for the github and gitlab targets" in misused.stderr


@pytest.fixture
def hook(served: tuple[Emulator, EmulatorServer], tmp_path: Path) -> Any:
    """A real webhook target signed with a known secret."""
    from .functions.harness import SECRET, FunctionProcess, start_all

    (proc,) = start_all([FunctionProcess("webhook", True, {**demo_environment(served[1].url),
                                                           "STOPLINE_WEBHOOK_SECRETS": SECRET},
                                         tmp_path / "hook.log")])
    yield proc.url, SECRET
    proc.stop()


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_send_errors_are_one_line_naming_cause_and_fix(hook: tuple[str, str], tmp_path: Path) -> None:
    """Issue 15 item 3, case by case: every `stopline send` error is one line, never a traceback."""
    url, secret = hook
    base = ["send", "stop_build", "--url", url]
    placeholder = run([*base, "--job-id", DEMO_JOB_ID, "--build-no", "20", "--secret", "whsec_..."], {})
    assert placeholder.returncode == 2 and "secret is not usable" in one_line_error(placeholder)
    bad_field = run([*base, "--job-id", "short", "--build-no", "20", "--secret", secret], {})
    message = one_line_error(bad_field)
    assert bad_field.returncode == 2 and "job-id" in message and "32 letters/digits" in message  # the reason too
    typo = run([*base, "--job-id", DEMO_JOB_ID, "--build-number", "20", "--secret", secret], {})
    assert typo.returncode == 2 and "unknown option --build-number" in one_line_error(typo)  # not "missing"
    batch = tmp_path / "batch.json"
    batch.write_text("{not json")
    bad_batch = run(["send", "--batch", str(batch), "--url", url, "--secret", secret], {})
    assert bad_batch.returncode == 2 and str(batch) in one_line_error(bad_batch)
    closed = f"http://127.0.0.1:{free_port()}"
    refused = run(["send", "stop_build", "--url", closed, "--job-id", DEMO_JOB_ID, "--build-no", "20",
                   "--secret", secret], {})
    assert refused.returncode == 1 and "is the target running" in one_line_error(refused)
    wrong = run([*base, "--job-id", DEMO_JOB_ID, "--build-no", "20",
                 "--secret", "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"], {})
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stdout and "hint:" in wrong.stderr
    for variable in ("STOPLINE_WEBHOOK_SECRET", "STOPLINE_WEBHOOK_SECRETS"):  # both spellings work
        ok = run([*base, "--job-id", DEMO_JOB_ID, "--build-no", "21"], {variable: secret})
        assert ok.returncode == 0 and ok.stdout.startswith("HTTP 200"), (variable, ok.stdout, ok.stderr)


def test_send_to_something_that_is_not_stopline(tmp_path: Path) -> None:
    """The wrong port answers an HTML page or a bare 404: say so, in one line."""
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html><body>Not Found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = run(["send", "stop_build", "--url", f"http://127.0.0.1:{server.server_address[1]}",
                    "--job-id", DEMO_JOB_ID, "--build-no", "20", "--secret", "a-plain-secret-of-16+"], {})
        assert done.returncode == 1 and "not a stopline answer" in one_line_error(done)
    finally:
        server.shutdown()
        server.server_close()


def test_send_help_lists_the_field_flags() -> None:
    """Every field a command takes is named in `send --help`, under its action (or "any command")."""
    from stopline.models import COMMAND_TYPES

    done = run(["send", "--help"], {})
    assert done.returncode == 0
    lines = {line.split()[0]: line for line in done.stdout.split("per ACTION:", 1)[1].splitlines() if line.strip()}
    for action, model in COMMAND_TYPES.items():
        for field in model.model_fields:
            if field != "action":
                flag = "--" + field.replace("_", "-")
                assert flag in lines[str(action)] or flag in lines["any"], (action, flag)


def test_more_errors_say_where_and_what_to_do(served: Any) -> None:
    """Issue 25: no secret at all is refused before sending; an unknown GitHub event type is a usage error
    with a suggestion; a direct command against an emulator that is down names the URL and its variable;
    sending to the emulator's port says it is not a stopline target."""
    _, server = served
    no_secret = run(["send", "stop_build", "--url", server.url, "--job-id", DEMO_JOB_ID, "--build-no", "20"], {})
    assert no_secret.returncode == 2 and "STOPLINE_WEBHOOK_SECRET" in one_line_error(no_secret)
    typo = run(["send", "--github", "workflow_runs", "--file", "events/github-ping.json", "--url", server.url,
                "--secret", "s"], {})
    assert typo.returncode == 2 and "did you mean 'workflow_run'" in one_line_error(typo)
    emulator_port = run(["send", "stop_build", "--url", server.url, "--job-id", DEMO_JOB_ID, "--build-no", "20",
                         "--secret", "a-plain-secret-of-16+"], {})
    assert emulator_port.returncode == 1 and "not a stopline target" in emulator_port.stdout
    closed = f"http://127.0.0.1:{free_port()}"
    down = run(["stop-build", DEMO_JOB_ID, "20"], {**demo_environment(closed), "STOPLINE_MAX_ATTEMPTS": "1"})
    assert down.returncode == 1
    assert f"{closed} (set by STOPLINE_CODEARTS_BUILD_ENDPOINT / " in down.stdout  # every demo endpoint is it
    assert "is `stopline dev` (or `stopline emulator`) running there?" in down.stdout
    # the region's own endpoint, unreachable from here: named as the default, with the variable to change it
    cloud = {**demo_environment(closed), "STOPLINE_MAX_ATTEMPTS": "1", "STOPLINE_TIMEOUT_S": "2",
             "STOPLINE_REGION": "xx-nowhere-0"}
    del cloud["STOPLINE_CODEARTS_BUILD_ENDPOINT"]
    default = run(["stop-build", DEMO_JOB_ID, "20"], cloud)
    assert default.returncode == 1 and "https://cloudbuild-ext.xx-nowhere-0.myhuaweicloud.com (the region's " \
        "default; STOPLINE_CODEARTS_BUILD_ENDPOINT overrides it)" in default.stdout, default.stdout


def test_every_help_summary_is_whole() -> None:
    for args in ([], ["rules"], ["retries"], ["secret"]):
        done = run([*args, "--help"], {})
        commands = done.stdout.split("Commands:", 1)[1]
        assert done.returncode == 0 and "..." not in commands, commands


def test_a_cron_asks_a_retries_target_with_send(served: tuple[Emulator, EmulatorServer], tmp_path: Path) -> None:
    """`stopline send --retries` is the signed POST a cron makes to a `retries` target (Standard Webhooks,
    the default): it answers what ran and what is still pending; a wrong secret is the target's 401."""
    from .functions.harness import SECRET, FunctionProcess, start_all

    (proc,) = start_all([FunctionProcess("retries", True, {**demo_environment(served[1].url),
                                                           "STOPLINE_WEBHOOK_SECRETS": SECRET},
                                         tmp_path / "retries.log")])
    try:
        due = run(["send", "--retries", "--url", proc.url, "--secret", SECRET], {})
        assert due.returncode == 0 and due.stdout.strip() == "HTTP 200: ran 0 pending retries, 0 still pending"
        everything = run(["send", "--retries-all", "--url", proc.url, "--secret", SECRET, "--json"], {})
        assert everything.returncode == 0 and json.loads(everything.stdout) == {
            "ok": True, "ran": 0, "results": [], "pending": 0}
        refused = run(["send", "--retries", "--url", proc.url, "--secret", "whsec_" + "QUJD" * 8], {})
        assert refused.returncode == 1 and "HTTP 401" in refused.stdout
        mixed = run(["send", "stop_build", "--retries", "--url", proc.url, "--secret", SECRET], {})
        assert mixed.returncode == 2 and "give no ACTION" in one_line_error(mixed)
        payload = str(ROOT / "events" / "github-workflow_run-cancelled.json")
        for extra in (["stop_build"], ["--retries"], ["--gitlab", "Pipeline Hook"]):  # one of them was dropped
            both = run(["send", "--github", "workflow_run", "--file", payload, *extra, "--url", proc.url], {})
            assert both.returncode == 2 and "give no ACTION, --batch or --retries" in one_line_error(both), extra
    finally:
        proc.stop()
