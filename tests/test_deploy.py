"""Deployment files stay truthful: serverless.yml names importable handlers and only variables stopline
reads; the Google requirements file matches the lock; the Google package folder loads its targets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from stopline.settings import Settings, env_name

from .conftest import ROOT

READ_VARIABLES = {env_name(name) for name in Settings.model_fields}


def test_serverless_yml_handlers_and_variables() -> None:
    config = yaml.safe_load((ROOT / "serverless.yml").read_text())
    assert config["provider"]["name"] == "huawei" and "serverless-huawei-functions" in config["plugins"]
    variables = set(config["provider"]["environment"]["variables"])
    for function in config["functions"].values():
        variables |= set(function.get("environment", {}).get("variables", {}))
    assert variables <= READ_VARIABLES, variables - READ_VARIABLES
    assert "HUAWEICLOUD_SDK_SK" not in variables  # credentials come from the agency, never the file
    triggers = set()
    for name, function in config["functions"].items():
        module, _, attribute = function["handler"].partition(".")
        source = ROOT / "functions" / f"{module}.py"
        assert source.is_file(), name
        probe = (f"import importlib.util as u; s=u.spec_from_file_location('{module}', {str(source)!r}); "
                 f"m=u.module_from_spec(s); s.loader.exec_module(m); assert callable(m.{attribute})")
        subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
        assert function["xrole"] == "stopline-agency"
        # the plugin's own keys for FunctionGraph's initializer (read from its source, function.service.ts)
        assert function["initializerHandler"] == "functiongraph.initializer" and function["initializerTimeout"] > 0
        triggers |= {event["triggerTypeCode"] for event in function.get("events", [])}
    assert triggers == {"DEDICATEDGATEWAY", "KAFKA", "SMN", "TIMER", "CTS"}
    assert "rabbitmq" in config["functions"] and "github" in config["functions"]
    for value in config["provider"]["environment"]["variables"].values():
        assert "whsec_" not in str(value)  # secrets are taken from the deploying environment


def test_google_requirements_match_the_lock(tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in UV
    assert uv is not None, "uv runs the tests, so it is known"
    out = tmp_path / "requirements.txt"
    subprocess.run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--no-header", "-o",
                    str(out)], check=True, cwd=ROOT, capture_output=True, timeout=120)
    assert out.read_text() == (ROOT / "functions" / "requirements.txt").read_text(), (
        "functions/requirements.txt is stale: run the uv export command in README 'Deploy to Google'")


def test_google_package_folder_loads_every_target(tmp_path: Path) -> None:
    folder = tmp_path / "gcf"
    subprocess.run(["bash", str(ROOT / "scripts" / "package"), "gcf", str(folder)], check=True, cwd=ROOT,
                   capture_output=True, timeout=120)
    assert {p.name for p in folder.iterdir()} >= {"main.py", "requirements.txt", "stopline"}
    shipped = {p.name for p in (folder / "stopline").iterdir()}
    assert not shipped & {"emulator", "cli", "data"}, shipped
    probe = ("import importlib.util as u, sys; s=u.spec_from_file_location('main', 'main.py'); m=u.module_from_spec(s);"
             "s.loader.exec_module(m); import stopline; assert stopline.__file__.startswith(sys.argv[1]);"
             "print(*[t for t in ('stop_build','delete_build_task','stop_dataarts_job','webhook','on_event',"
             "'github','gitlab','stop_pipeline_run') if callable(getattr(m, t))])")
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run([sys.executable, "-c", probe, str(folder)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stop_build", "delete_build_task", "stop_dataarts_job", "webhook", "on_event",
                                   "github", "gitlab", "stop_pipeline_run"]


def test_functiongraph_package_ships_the_rules_and_no_web_server(tmp_path: Path) -> None:
    """The FunctionGraph package: the handler, stopline and its runtime dependencies for CPython 3.12, the
    rules file named by STOPLINE_RULES, and none of what only functions-framework needs."""
    folder = tmp_path / "fg"
    env = {**os.environ, "STOPLINE_RULES": str(ROOT / "shared" / "stopline" / "data" / "demo-rules.yaml")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "package"), "fg", str(folder)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    names = {p.name.lower() for p in folder.iterdir()}
    assert {"functiongraph.py", "stopline", "stopline-rules.yaml", "pydantic", "httpx", "redis"} <= names
    heavy = {n for n in names if n.split("-")[0] in ("flask", "gunicorn", "uvicorn", "starlette", "watchdog",
                                                       "werkzeug", "functions_framework", "click")}
    assert heavy == set(), heavy
    assert (folder / "stopline-rules.yaml").read_text() == Path(env["STOPLINE_RULES"]).read_text()
    assert re.search(r"built .*: \S+, \d+ files", done.stdout), done.stdout  # size and file count printed


def test_package_ships_bytecode_compiled_by_the_runtime_python(tmp_path: Path) -> None:
    """With the runtime's interpreter given, every module carries an unchecked-hash .pyc for its version."""
    import importlib.util

    env = {**os.environ, "STOPLINE_PACKAGE_PYTHON": sys.executable}
    folder = tmp_path / "gcf"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "package"), "gcf", str(folder)], check=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert sys.implementation.cache_tag in done.stdout
    sources = [p for p in folder.rglob("*.py")]
    assert sources
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        assert compiled.exists(), f"no bytecode for {source.relative_to(folder)}"
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{compiled.name}: not an unchecked-hash pyc"


def test_scripts_uv_installs_uv_without_touching_the_system_python(tmp_path: Path) -> None:
    """Issue 15: `pip install uv` fails on a PEP 668 system Python. scripts/uv, with no uv on PATH, puts uv
    into a private venv and never runs pip with the system interpreter (a shim records every call)."""
    import sys

    shims = tmp_path / "bin"
    shims.mkdir()
    calls = tmp_path / "python-calls.txt"
    for name in ("python3", "python3.11"):
        (shims / name).write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {sys.executable} "$@"\n')
        (shims / name).chmod(0o755)
    env = {"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "STOPLINE_UV_HOME": str(tmp_path / "uv"),
           **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_INDEX", "UV_DEFAULT_INDEX"))}}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "uv"), "--version"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("uv ") and (tmp_path / "uv" / "bin" / "uv").exists()
    recorded = calls.read_text().splitlines()
    assert recorded and not any("-m pip" in line for line in recorded), recorded  # only `-m venv` and a check
    again = subprocess.run(["bash", str(ROOT / "scripts" / "uv"), "--version"], env=env, capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 0 and "installing" not in again.stderr  # installed once, then reused


def test_package_json_pins_serverless_v3() -> None:
    """`npx serverless` would otherwise fetch v4, which needs a Serverless account and has no place for
    this provider plugin; serverless.yml says frameworkVersion 3."""
    package = json.loads((ROOT / "package.json").read_text())
    version = package["devDependencies"]["serverless"]
    assert re.fullmatch(r"3\.\d+\.\d+", version), version  # exact, not a range
    assert yaml.safe_load((ROOT / "serverless.yml").read_text())["frameworkVersion"] == "3"


def test_the_npm_lockfile_matches_package_json() -> None:
    """`npm ci` (docs/deploy.md) refuses a lockfile that disagrees with package.json: the pinned Serverless
    Framework v3 is what the lock resolves, so nobody deploys with a v4 that has no place for the plugin."""
    manifest = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 2 and lock["packages"][""]["devDependencies"] == manifest["devDependencies"]
    serverless = lock["packages"]["node_modules/serverless"]
    assert serverless["version"] == manifest["devDependencies"]["serverless"] and serverless["version"].startswith("3.")
    assert serverless["integrity"].startswith("sha512-")  # npm ci checks every download against the lock


def test_the_google_commands_give_each_target_what_it_needs(tmp_path: Path) -> None:
    """docs/deploy.md's Google block, expanded by bash with a stand-in `gcloud` that prints its arguments
    (and the packaging line left out): every target gets the credentials, project, region, Redis and VPC
    connector; each public HTTP target its own secret; the rules file travels with the package."""
    from .conftest import readme_bash_block

    lines = readme_bash_block("## Google Cloud Functions / Cloud Run", doc="docs/deploy.md")
    assert "bash scripts/package gcf" in lines and lines[0].startswith("export STOPLINE_RULES=")
    script = "gcloud() { printf '%s\\n' \"$*\"; }\n" + "\n".join(line for line in lines if not line.startswith("bash "))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    deployed: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        entry = re.search(r"--(?:entry-point|function)=(\w+)", line)
        if entry:
            deployed.setdefault(entry.group(1), []).append(line)
    assert set(deployed) == {"webhook", "github", "gitlab", "on_event", "retries"}
    own_secret = {"webhook": "STOPLINE_WEBHOOK_SECRETS", "github": "STOPLINE_GITHUB_SECRETS",
                  "gitlab": "STOPLINE_GITLAB_TOKENS"}
    for target, commands in deployed.items():
        for command in commands:
            for needed in ("HUAWEICLOUD_SDK_AK=", "HUAWEICLOUD_SDK_SK=", "HUAWEICLOUD_SDK_PROJECT_ID=",
                           "STOPLINE_REGION=", "STOPLINE_IDEMPOTENCY_URL=redis://", "--vpc-connector=",
                           "STOPLINE_RULES=stopline-rules.yaml"):
                assert needed in command, (target, needed)
            if target in own_secret:
                assert own_secret[target] + "=" in command and "--allow-unauthenticated" in command, target
    # a transient failure of on_event is redelivered only when the function retries (off by default)
    assert "--retry" in deployed["on_event"][0].split()
    # private, called by Cloud Scheduler, which cannot sign: the platform authenticates, the target knows it
    assert "--no-allow-unauthenticated" in deployed["retries"][0]
    assert "STOPLINE_RETRIES_AUTH=platform" in deployed["retries"][0]
    scheduler = [line for line in done.stdout.splitlines() if line.startswith("scheduler jobs create http ")]
    assert len(scheduler) == 1 and "--http-method=POST" in scheduler[0] and "--message-body={}" in scheduler[0]
    assert "--headers=Content-Type=application/json" in scheduler[0] and "--oidc-service-account-email=" in scheduler[0]
