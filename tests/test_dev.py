"""`stopline dev`, the README's run command: it comes up, every printed example works, the emulator
records the calls, and Ctrl-C stops every child process."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stopline.cli.devstack import port_free

from .conftest import ROOT, as_user_runs, child_pids, descendant_pids, free_port, readme_bash_block


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.fixture(params=["flask", "asgi"])
def dev(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[subprocess.Popen[str], str, int]:
    emulator_port, base = free_port(), free_port()
    while any(not port_free(p) for p in range(base, base + 8)) or emulator_port in range(base, base + 8):
        base = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    mode = ["--flask"] if request.param == "flask" else []  # ASGI is the default
    proc = subprocess.Popen([sys.executable, "-m", "stopline.cli", "dev", "--emulator-port", str(emulator_port),
                             "--port", str(base), *mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=clean)
    assert proc.stdout is not None
    banner, deadline = [], time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner.append(line)
        if "stopline running --pipeline" in line:  # the banner's last command
            break
    return proc, "".join(banner), emulator_port




def test_dev_banner_commands_work_and_ctrl_c_stops_everything(dev: tuple[subprocess.Popen[str], str, int]) -> None:
    proc, banner, emulator_port = dev
    try:
        assert "stopline dev is up" in banner, banner
        commands = [line.strip() for line in banner.splitlines()
                    if line.strip().startswith(("uv run stopline", "bash scripts/uv run stopline", "curl", "env "))]
        assert len(commands) >= 5
        for command in commands:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, timeout=120)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if "stopline send" in command:
                assert done.stdout.startswith("HTTP 200"), done.stdout
        calls = httpx.get(f"http://127.0.0.1:{emulator_port}/_emulator/calls").json()["calls"]
        paths = [c["path"] for c in calls]
        assert "/v3/jobs/stop" in paths and any(p.endswith("/jobs/myJob/stop") for p in paths)
        assert any(p.endswith("/delete") for p in paths) and any(p.endswith("/jobs/nightly/stop") for p in paths)
        assert any("/pipeline-runs/" in p and p.endswith("/stop") for p in paths)  # the pipeline run's stop
        assert any(p.endswith("/pipeline-runs/list") for p in paths)  # `stopline running --pipeline`
        assert all(c["status"] in (200, 204) for c in calls)
        exported = re.search(r"export STOPLINE_URL=(\S+) STOPLINE_WEBHOOK_SECRET=(\S+)", banner)
        assert exported is not None and exported.group(2).startswith("whsec_")
        _run_readme_block(exported.group(1), exported.group(2), emulator_port)
        github_url = re.search(r"^  github +(http://\S+)$", banner, re.M)
        github_secret = re.search(r"^  github secret +(\S+)$", banner, re.M)
        assert github_url is not None and github_secret is not None
        _run_pipelines_block(github_url.group(1), github_secret.group(1))
        children = child_pids(proc.pid)
        assert len(children) == 8
        reset = subprocess.run([sys.executable, "-m", "stopline.cli", "dev", "--reset", "--emulator-port",
                                str(emulator_port)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert reset.returncode == 0 and "reseeded" in reset.stdout
        state = httpx.get(f"http://127.0.0.1:{emulator_port}/_emulator/state").json()
        builds = {b["build_no"]: b["state"] for t in state["build_tasks"] for b in t["builds"]
                  if t["job_id"] == "f9d6c8466d614a9788e9a0acf6c15f46"}
        assert builds[24] == "running" and state["effects"] == []  # the demo, as it started
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
    time.sleep(0.2)
    assert [pid for pid in children if _alive(pid)] == []


def _run_readme_lines(heading: str, env: dict[str, str], emulator_port: int | None = None) -> list[str]:
    """A tested README block after ``heading``, line by line as a user runs it (its `export` line,
    which holds placeholders, replaced by ``env``); each line must succeed. Their outputs."""
    outputs = []
    for line in readme_bash_block(heading):
        if line.startswith("export "):
            continue
        if emulator_port is not None:
            line = line.replace("127.0.0.1:8790", f"127.0.0.1:{emulator_port}")
        done = subprocess.run(["bash", "-c", as_user_runs(line)], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, **env}, timeout=120)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        outputs.append(done.stdout)
    return outputs


def _run_readme_block(url: str, secret: str, emulator_port: int) -> None:
    """The README's tested tour block, run line by line with the banner's URL and secret."""
    outputs = _run_readme_lines("## Five-minute tour", {"STOPLINE_URL": url, "STOPLINE_WEBHOOK_SECRET": secret},
                                emulator_port)
    assert outputs[0].startswith("HTTP 200 stopped") and "duplicate (first: stopped)" in outputs[1]
    calls = httpx.get(f"http://127.0.0.1:{emulator_port}/_emulator/calls").json()["calls"]
    assert sum(1 for c in calls if c.get("build_no") == 3 and c["path"] == "/v3/jobs/stop") == 1


def _run_pipelines_block(url: str, secret: str) -> None:
    """README "Cancel CodeArts work when a GitHub or GitLab pipeline is cancelled", run as written."""
    outputs = _run_readme_lines("## Cancel CodeArts work when a GitHub or GitLab pipeline is cancelled",
                                {"STOPLINE_GITHUB_URL": url, "STOPLINE_GITHUB_SECRET": secret})
    assert "cancel-github-ci" in outputs[0] and "cancel-github-ci" in outputs[1]  # check, then explain
    assert outputs[2].startswith("HTTP 200") and "rules matched: cancel-github-ci" in outputs[2]
    assert outputs[3].startswith("HTTP 200") and "supersede-feature-builds" in outputs[3]


def test_busy_port_is_a_clear_message() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "stopline.cli", "dev", "--emulator-port", str(port)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and f"{port}" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--port", "65533"], "no room for the 8 targets"),
    (["--port", "0"], "no room for the 8 targets"),
    (["--emulator-port", "8082", "--port", "8080"], "one of the targets' ports (8080-8087)"),
    (["--emulator-port", "70000"], "is not a port"),
])
def test_impossible_ports_are_one_line_errors(args: list[str], expected: str) -> None:
    done = subprocess.run([sys.executable, "-m", "stopline.cli", "dev", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_your_own_rules_are_checked_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text("rules: [{name: r, when: {source: github}, then: []}]")
    done = subprocess.run([sys.executable, "-m", "stopline.cli", "dev", "--rules", str(bad)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and f"--rules ({bad})" in done.stderr and "rule 0 'r'" in done.stderr


def _reap_stack(proc: subprocess.Popen[str]) -> None:
    """After a failed cycle, stop whatever is left so that the next tests (and the machine) do not inherit
    a dev stack: the children run in process groups of their own, so each is killed by pid."""
    family = descendant_pids(proc.pid)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.stdout.close()


def test_twenty_starts_and_stops_leave_no_port_and_no_process() -> None:
    """Issue 15: Ctrl-C left a hung gunicorn worker holding a port (2 times out of 4). 20 cycles, Flask and
    ASGI, a terminal's Ctrl-C (SIGINT to the whole foreground group) and a supervisor's SIGTERM (to the
    parent only): every time, every port is free again and no child or grandchild survives."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
    for cycle in range(20):
        mode = ["--flask"] if cycle % 2 else []
        terminal = cycle % 4 < 2
        emulator_port, base = free_port(), free_port()
        while any(not port_free(p) for p in range(base, base + 8)) or emulator_port in range(base, base + 8):
            base = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "stopline.cli", "dev", "--emulator-port", str(emulator_port),
                                 "--port", str(base), *mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, cwd=ROOT, env=clean, start_new_session=True)
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line or "stopline running" in line:
                    break
            family = descendant_pids(proc.pid)
            assert len(family) >= 14, (cycle, family)  # 7 functions-framework masters and their workers
            if terminal:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
            else:
                proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, cycle
        finally:
            _reap_stack(proc)
        time.sleep(0.1)
        assert [pid for pid in family if _alive(pid)] == [], (cycle, "survivors")
        assert [p for p in (emulator_port, *range(base, base + 8)) if not port_free(p)] == [], (cycle, "ports held")
