"""The documented recipes run verbatim: docs/commands.md's library example as a script and its test recipe
under pytest, each in a fresh process from the repository root (where a user's own tests would run); the
README's library snippet; docs/commands.md's command-line blocks against a served emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

from stopline.emulator.seeds import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK

from .conftest import ROOT, as_user_runs, readme_bash_block

MARKER = "<!-- tested: tests/test_readme.py runs this block and the next verbatim -->"
DOC = "docs/commands.md"


def recipes() -> list[str]:
    text = (ROOT / "docs" / "commands.md").read_text()
    after = text[text.index(MARKER):]
    return re.findall(r"```python\n(.*?)```", after, re.S)[:2]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}


def test_the_library_recipe_runs(tmp_path: Path) -> None:
    script = tmp_path / "recipe.py"
    script.write_text(recipes()[0])
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed, stopped = done.stdout.splitlines()[:2]
    assert listed == "[21, 23]"  # build 20 was just stopped; 21 and 23 still run on feature/x
    assert stopped.startswith("stopped [{'build_no': 21")  # the branch's running builds, stopped
    assert done.stderr == ""  # a library writes no log lines of its own


def test_the_test_recipe_passes_under_pytest(tmp_path: Path) -> None:
    test_file = tmp_path / "test_recipe.py"
    test_file.write_text(recipes()[1])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def run_lines(lines: list[str], port: int) -> list[tuple[int, str]]:
    """Each line in one bash session (so `export` carries over), as (exit code, output)."""
    script = []
    for line in lines:
        line = as_user_runs(line.replace("8790", str(port)))
        script.append(line if line.startswith("export ") else f"{line}; echo \"<<rc=$?>>\"")
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=300)
    chunks = done.stdout.split("<<rc=")
    return [(int(chunk.split(">>", 1)[0]), prev.rsplit(">>", 1)[-1].strip())
            for prev, chunk in pairwise(chunks)]


def test_calling_the_cloud_directly_works_as_written(served: Any) -> None:
    """docs/commands.md "Calling the cloud directly", "Stop what is running" and "CodeArts Pipeline runs",
    against a served emulator."""
    port = served[1].port
    direct = readme_bash_block("## Calling the cloud directly", doc=DOC)
    assert direct[0].startswith("uv run stopline emulator")  # the test serves its own emulator instead
    results = run_lines(direct[1:], port)
    codes = [code for code, _ in results]
    outputs = [out for _, out in results]
    assert codes == [0, 0, 0, 0, 1, 0], results
    assert outputs[0].startswith("stopped") and outputs[1].startswith("already_stopped")
    assert outputs[2].startswith("deleted") and outputs[3].startswith("stopped")
    assert outputs[4].startswith("not_found") and outputs[5].startswith("stopped: stop_pipeline_run")
    export = next(line for line in direct if line.startswith("export "))
    served[0].reset()  # the block above deleted the demo task: start "Stop what is running" afresh
    served[0].seed("demo")
    running = run_lines([export, *readme_bash_block("## Stop what is running", doc=DOC)], port)
    assert [code for code, _ in running] == [0, 0, 0, 0], running
    assert running[0][1].startswith("BUILD") and "3f2a9c1" in running[0][1]  # the demo's running builds
    assert "build 20: stopped" in running[1][1] and "build 21: stopped" in running[1][1]  # that commit's
    assert running[2][1].startswith("nothing_running")  # the branch's older builds were just stopped
    assert "instance 34765: stopped" in running[3][1]
    served[0].reset()
    served[0].seed("demo")
    runs = run_lines([export, *readme_bash_block("### CodeArts Pipeline runs", doc=DOC)], port)
    assert [code for code, _ in runs] == [0, 0, 0], runs
    assert runs[0][1].startswith("RUN") and "feature/x" in runs[0][1] and "main" in runs[0][1]
    assert "run 0ba3c1e7d2f94f6aa5b8c7d6e5f40312: stopped" in runs[1][1]  # the run of that commit
    assert runs[2][1].startswith("stopped: stop_pipeline_run")


def test_deploying_to_the_emulator_works_as_written(served: Any) -> None:
    """docs/deploy.md "Try it on the emulator": plan, deploy, deploy again, against a served emulator."""
    lines = readme_bash_block("### Try it on the emulator", doc="docs/deploy.md")
    assert lines[0].startswith("uv run stopline emulator")  # the test serves its own emulator instead
    results = run_lines(lines[1:], served[1].port)
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    plan, deployed, again, state = (out for _, out in results)
    assert "2 functions: 2 to create" in plan and "+ create trigger DEDICATEDGATEWAY /stopline/webhook" in plan
    assert "2 functions: 2 created" in deployed and "create trigger TIMER stopline-retries: done" in deployed
    assert "2 functions: 0 created, 0 updated, 2 unchanged" in again
    names = sorted(f["func_name"] for f in json.loads(state)["functions"])
    assert names == ["stopline-dev-retries", "stopline-dev-webhook"]


def test_the_readme_deploy_block_runs(served: Any) -> None:
    """README "Deploy": plan, then deploy, the repository's serverless.yml to a served emulator."""
    from .test_deploy_functiongraph import FILE_VARIABLES, RULES

    url = served[1].url
    exports = [f"export STOPLINE_FUNCTIONGRAPH_ENDPOINT={url} STOPLINE_IAM_ENDPOINT={url} "
               f"HUAWEICLOUD_SDK_AK={DEMO_AK} HUAWEICLOUD_SDK_SK={DEMO_SK} "
               f"HUAWEICLOUD_SDK_PROJECT_ID={DEMO_PROJECT_ID} "
               f"STOPLINE_RULES={RULES} " + " ".join(f"{k}={v}" for k, v in FILE_VARIABLES.items())]
    lines = readme_bash_block("## Deploy")
    assert [line.split()[-1] for line in lines] == ["--plan", "functiongraph"]
    (plan_code, plan), (code, deployed) = run_lines(exports + lines, served[1].port)
    assert (plan_code, code) == (0, 0), (plan, deployed)
    assert "8 functions: 8 to create" in plan and "8 functions: 8 created" in deployed


def test_the_readme_library_snippet_runs(tmp_path: Path) -> None:
    """The README's short example, against the in-process emulator (the only line added)."""
    text = (ROOT / "README.md").read_text()
    snippet = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    script = tmp_path / "snippet.py"
    script.write_text("from stopline.emulator import mock_huaweicloud\n\nwith mock_huaweicloud('demo'):\n"
                      + "".join(f"    {line}\n" for line in snippet.splitlines()))
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped True"


def test_the_wheel_installs_and_works_outside_the_checkout(tmp_path: Path) -> None:
    """README "Use it as a library": the wheel uv builds installs into a fresh environment, and the README's
    snippet runs there, in a folder that is not the checkout (with the emulator the wheel carries)."""
    import shutil

    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv is not None, "uv runs the tests, so it is known"
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist")], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("stopline-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120,
                   capture_output=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    text = (ROOT / "README.md").read_text()
    snippet = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    script = tmp_path / "elsewhere" / "use.py"
    script.parent.mkdir()
    script.write_text("from stopline.emulator import mock_huaweicloud\n\nwith mock_huaweicloud('demo'):\n"
                      + "".join(f"    {line}\n" for line in snippet.splitlines()))
    done = subprocess.run([str(venv / "bin" / "python"), str(script)], cwd=script.parent, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped True"
