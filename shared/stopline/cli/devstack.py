"""``stopline dev``: the emulator plus every function target on 127.0.0.1, ready to try.

The emulator runs in this process; each function target is a real ``functions-framework`` child
process, whose stderr passes through this one (its JSON log lines also feed the dashboard's list of
deliveries). Ctrl-C (or SIGTERM) stops every child before this process exits, so nothing is orphaned.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

TARGETS = (
    ("webhook", "http"),
    ("stop_build", "http"),
    ("delete_build_task", "http"),
    ("stop_dataarts_job", "http"),
    ("on_event", "cloudevent"),
    ("github", "http"),
    ("gitlab", "http"),
    ("stop_pipeline_run", "http"),  # last: the ports of the others stay where the docs say
)
DEMO_RULES = Path(__file__).resolve().parents[1] / "data" / "demo-rules.yaml"
DEV_AUDIT_TOPIC = "smn://urn:smn:cn-north-4:b384b9e9ab9b4ee8994c8633aabc9505:stopline-dev"
"""The dev stack's audit sink: an SMN topic of the demo project on the emulator (the dashboard's feed)."""


def find_functions_source() -> Path | None:
    """``functions/main.py`` of the checkout: the working directory's, else the one beside the package."""
    for candidate in (Path.cwd() / "functions" / "main.py",
                      Path(__file__).resolve().parents[3] / "functions" / "main.py"):
        if candidate.is_file():
            return candidate
    return None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, deadline: float, host: str = "127.0.0.1",
                  give_up: Any = lambda: False) -> bool:
    while time.monotonic() < deadline and not give_up():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def launcher() -> str:
    """How to run the CLI from the checkout: uv when it is on PATH, else the bootstrap that installs it."""
    import shutil

    return "uv run stopline" if shutil.which("uv") else "bash scripts/uv run stopline"


def _banner(emulator_url: str, urls: dict[str, str], secret: str, asgi: bool = False,
            github_secret: str = "", gitlab_token: str = "", rules: str = str(DEMO_RULES)) -> str:
    from stopline.emulator.seeds import DEMO_JOB_ID, DEMO_PIPELINE_ID, DEMO_RUN_ID, DEMO_TASK_ID, demo_environment

    hook, event = urls["webhook"], urls["on_event"]
    run = launcher()
    pubsub = ('{"message":{"data":"\'$(printf \'%s\' \'{"action":"stop_dataarts_job","job_name":"nightly"}\' '
              '| base64 -w0)\'","messageId":"demo-1"},"subscription":"projects/demo/subscriptions/stopline"}')
    lines = [
        "",
        "stopline dev is up (Ctrl-C stops everything)",
        f"  dashboard          {emulator_url}/   (live: builds, jobs, runs, and what stopline changed)",
        f"  emulator           {emulator_url}   (calls: {emulator_url}/_emulator/calls)",
        *(f"  {name:<18} {url}" for name, url in urls.items()),
        f"  webhook secret     {secret}",
        f"  github secret      {github_secret}",
        f"  gitlab token       {gitlab_token}",
        f"  rules              {rules}",
        "",
        "Try these in another terminal (from the checkout):",
        f"  {run} send stop_build --job-id {DEMO_JOB_ID} --build-no 21 --url {hook} --secret {secret}",
        f"  {run} send stop_dataarts_job --job-name myJob --workspace ws1 --url {hook} --secret {secret}",
        f"  {run} send delete_build_task --job-id {DEMO_TASK_ID} --url {urls['delete_build_task']} "
        f"--secret {secret}",
        f"  {run} send stop_pipeline_run --pipeline-id {DEMO_PIPELINE_ID} --pipeline-run-id {DEMO_RUN_ID} "
        f"--url {hook} --secret {secret}",
        # functions-framework converts a raw push body only in Flask mode; under ASGI send it as Eventarc does
        (f"  curl -s -X POST {event} -H 'Content-Type: application/json' -H 'ce-specversion: 1.0' "
         "-H 'ce-id: demo-1' -H 'ce-source: //pubsub.googleapis.com/projects/demo/topics/stopline' "
         f"-H 'ce-type: google.cloud.pubsub.topic.v1.messagePublished' -d '{pubsub}'" if asgi else
         f"  curl -s -X POST {event} -H 'Content-Type: application/json' -d '{pubsub}'"),
        f"  {run} invoke functiongraph --event events/functiongraph-kafka.json --emulate",
        "A cancelled GitHub run and a cancelled GitLab pipeline (both stop build 24, of their commit), and a",
        "run started on feature/x (stops the older builds 20 and 21 of that branch):",
        f"  {run} send --github workflow_run --file events/github-workflow_run-cancelled.json "
        f"--url {urls['github']} --secret {github_secret}",
        f"  {run} send --gitlab 'Pipeline Hook' --file events/gitlab-pipeline-canceled.json "
        f"--url {urls['gitlab']} --secret {gitlab_token}",
        f"  {run} send --github workflow_run --file events/github-workflow_run-requested-feature.json "
        f"--url {urls['github']} --secret {github_secret}",
        f"  curl -s {emulator_url}/_emulator/calls",
        "",
        "Or set these once and drop --url/--secret from `stopline send`:",
        f"  export STOPLINE_URL={hook} STOPLINE_WEBHOOK_SECRET={secret}",
        "",
        "The direct commands (stopline running / stop-build / stop-job / stop-pipeline) talk to the emulator "
        "with these:",
        "  env " + " ".join(f"{k}={v}" for k, v in demo_environment(emulator_url).items())
        + f" {run} running {DEMO_JOB_ID}",
        "  env " + " ".join(f"{k}={v}" for k, v in demo_environment(emulator_url).items())
        + f" {run} running --pipeline {DEMO_PIPELINE_ID}",
        "",
    ]
    return "\n".join(lines)


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)  # the child leads its own group: gunicorn's workers get it too


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child's process group once, then SIGKILL what is left after 5 s. Each child has its own
    group (start_new_session), so a terminal's Ctrl-C reaches only this process, and gunicorn's worker
    never receives the quit twice (which deadlocked its thread worker in handle_quit)."""
    for child in children:
        if child.poll() is None:
            _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        _signal_group(child, signal.SIGKILL)  # stragglers in the group (a hung worker), if any
        if child.poll() is None:
            child.wait()


def _start_targets(children: list[subprocess.Popen[bytes]], source: Path, ports: dict[str, int],
                   env: dict[str, str], asgi: bool, emulator: Any) -> None:
    """One functions-framework process per target, each in its own session, its stderr relayed."""
    for name, kind in TARGETS:
        cmd = [sys.executable, "-m", "functions_framework", "--target", name, "--source", str(source),
               "--host", "127.0.0.1", "--port", str(ports[name]), "--signature-type", kind,
               *(["--asgi"] if asgi else [])]
        child = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.PIPE)
        children.append(child)
        threading.Thread(target=_relay, args=(child, name, emulator), daemon=True,
                         name=f"stopline-dev-{name}-log").start()


def _relay(child: subprocess.Popen[bytes], name: str, emulator: Any) -> None:
    """Pass the target's stderr through unchanged, and hand each JSON log line reporting an outcome to the
    dashboard's delivery feed (emulator/feed.py). It keeps reading to the end, whatever a line holds, so
    the child never blocks on a full pipe."""
    import json

    assert child.stderr is not None
    out = getattr(sys.stderr, "buffer", None)
    for raw in child.stderr:
        with contextlib.suppress(OSError, ValueError):
            if out is not None:
                out.write(raw)
                out.flush()
        if raw.startswith(b"{"):
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                emulator.router.deliveries.record(name, json.loads(raw))


def _port_problem(emulator_port: int, base_port: int) -> str | None:
    """Why these ports cannot work, in one line; None when they can."""
    last = base_port + len(TARGETS) - 1
    if not 1 <= emulator_port <= 65535:
        return f"--emulator-port {emulator_port} is not a port (1-65535)"
    if not base_port >= 1 or last > 65535:
        return (f"--port {base_port} leaves no room for the {len(TARGETS)} targets (ports {base_port}-{last}); "
                f"choose 1-{65535 - len(TARGETS) + 1}")
    if base_port <= emulator_port <= last:
        return (f"--emulator-port {emulator_port} is one of the targets' ports ({base_port}-{last}); "
                "choose one outside that range")
    return None


def _first(variable: str) -> str | None:
    value = os.environ.get(variable, "").split(",")[0].strip()
    return value or None


def _secrets() -> tuple[str, str, str]:
    """The webhook secret, GitHub secret and GitLab token: yours from the environment when set (the first
    of each list), else new ones for this run."""
    return (_first("STOPLINE_WEBHOOK_SECRETS") or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            _first("STOPLINE_GITHUB_SECRETS") or secrets.token_urlsafe(24),
            _first("STOPLINE_GITLAB_TOKENS") or secrets.token_urlsafe(24))


def _checked_rules(given: str | None) -> str | None:
    """The rules file to serve (``--rules``, else STOPLINE_RULES, else the demo's), checked now; None (after
    a one-line error) when it does not load."""
    from stopline.errors import ConfigurationError
    from stopline.rules import load

    path = given or os.environ.get("STOPLINE_RULES") or str(DEMO_RULES)
    try:
        load(path, variable="--rules" if given else ("STOPLINE_RULES" if path != str(DEMO_RULES) else ""))
    except ConfigurationError as exc:
        print(f"stopline dev: {exc.message}", file=sys.stderr)
        return None
    return path


def run_dev(*, emulator_port: int = 8790, base_port: int = 8080, asgi: bool = False,
            rules: str | None = None) -> int:
    from stopline.emulator import Emulator
    from stopline.emulator.seeds import demo_environment

    source = find_functions_source()
    rules_file = _checked_rules(rules)
    problem = ("functions/main.py not found; run it from the stopline checkout" if source is None
               else _port_problem(emulator_port, base_port))
    if problem is not None or rules_file is None or source is None:
        if problem is not None:
            print(f"stopline dev: {problem}", file=sys.stderr)
        return 2
    ports = {name: base_port + i for i, (name, _) in enumerate(TARGETS)}
    busy = [p for p in (emulator_port, *ports.values()) if not port_free(p)]
    if busy:
        print(f"stopline dev: port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use; stop what uses "
              "them or pick others with --emulator-port / --port", file=sys.stderr)
        return 2

    emulator = Emulator().seed("demo")
    server = emulator.serve("127.0.0.1", emulator_port)
    secret, github_secret, gitlab_token = _secrets()
    env = {**os.environ, **demo_environment(server.url),
           "STOPLINE_WEBHOOK_SECRETS": os.environ.get("STOPLINE_WEBHOOK_SECRETS") or secret,
           "STOPLINE_GITHUB_SECRETS": os.environ.get("STOPLINE_GITHUB_SECRETS") or github_secret,
           "STOPLINE_GITLAB_TOKENS": os.environ.get("STOPLINE_GITLAB_TOKENS") or gitlab_token,
           "STOPLINE_RULES": str(Path(rules_file).resolve()), "PYTHONUNBUFFERED": "1",
           # audit events go to the emulator's SMN, where the dashboard shows them
           "STOPLINE_AUDIT_URL": os.environ.get("STOPLINE_AUDIT_URL") or DEV_AUDIT_TOPIC}
    children: list[subprocess.Popen[bytes]] = []
    stopping = {"now": False}
    previous = {sig: signal.signal(sig, lambda *_: stopping.update(now=True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _start_targets(children, source, ports, env, asgi, emulator)
        deadline = time.monotonic() + 60
        for name, port in ports.items():
            if not wait_for_port(port, deadline, give_up=lambda: stopping["now"]) or stopping["now"]:
                if not stopping["now"]:
                    print(f"stopline dev: the {name} target did not start on port {port}", file=sys.stderr)
                return 1 if not stopping["now"] else 0
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        print(_banner(server.url, urls, secret, asgi, github_secret, gitlab_token, rules_file), flush=True)
        while not stopping["now"]:
            if any(child.poll() is not None for child in children):
                print("stopline dev: a function target exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(children)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stopline dev stopped", file=sys.stderr, flush=True)
