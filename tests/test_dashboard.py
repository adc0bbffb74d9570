"""The dev dashboard in a real browser: `stopline dev` runs, headless Chromium (Debian's, driven through its
chromedriver by Selenium) opens the emulator's page, a GitHub cancel is sent as GitHub signs it, and the page
shows the build turning from running to stopped within a few seconds, with the reason stopline gave.

Set STOPLINE_DASHBOARD_SCREENSHOT=docs/dashboard.png to keep the screenshot (how the one in docs/ was made).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stopline.cli.devstack import port_free
from stopline.emulator.seeds import DEMO_JOB_ID

from .conftest import ROOT, configured_secret, descendant_pids, free_port

GH_SECRET = "dashboard-github-secret-0123456789"
configured_secret(GH_SECRET)
CANCELLED = (ROOT / "events" / "github-workflow_run-cancelled.json").read_bytes()
SCREENSHOT = os.environ.get("STOPLINE_DASHBOARD_SCREENSHOT")  # read before the tests clear STOPLINE_*
WHY = "github cancelled: Codertocat/Hello-World Manually triggered workflow run 1589141559 (5779607)"


@pytest.fixture
def dev_stack() -> Iterator[tuple[str, str]]:
    """`stopline dev` with a known GitHub secret: (emulator URL, github target URL)."""
    emulator_port, base = free_port(), free_port()
    while any(not port_free(p) for p in range(base, base + 8)) or emulator_port in range(base, base + 8):
        base = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))},
           "STOPLINE_GITHUB_SECRETS": GH_SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "stopline.cli", "dev", "--emulator-port", str(emulator_port),
                             "--port", str(base)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if "stopline running --pipeline" in line:
                break
        text = "".join(banner)
        dashboard = re.search(r"dashboard\s+(\S+)", text)
        github = re.search(r"^\s+github\s+(http://\S+)", text, re.M)
        assert dashboard and github, text
        yield dashboard.group(1), github.group(1)
    finally:
        family = descendant_pids(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "needs Debian's chromium and chromium-driver (bash scripts/test installs them)"
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def rows(driver: Any, table: str) -> list[list[str]]:
    """The table's cells as the page shows them now, read in one script call: the page re-renders every
    second, so element handles would go stale between reads."""
    script = ("return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
              ".map(r => Array.from(r.cells).map(c => c.innerText))")
    return list(driver.execute_script(script, f"#{table}"))


def build_state(driver: Any, build_no: int) -> str | None:
    for cells in rows(driver, "builds"):
        if cells and cells[0] == DEMO_JOB_ID and cells[1] == f"#{build_no}":
            return str(cells[4])
    return None


def until(check: Any, timeout: float = 10.0) -> Any:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return check()


def send_cancel(github: str, delivery: str) -> httpx.Response:
    signature = "sha256=" + hmac.new(GH_SECRET.encode(), CANCELLED, hashlib.sha256).hexdigest()
    return httpx.post(github, content=CANCELLED, timeout=30, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature})


def test_the_dashboard_shows_a_github_cancel_stop_a_build(dev_stack: tuple[str, str], browser: Any,
                                                          tmp_path: Path) -> None:
    dashboard, github = dev_stack
    browser.get(dashboard)
    assert until(lambda: build_state(browser, 24) == "running"), browser.page_source[:500]
    answer = send_cancel(github, "dash-1")
    assert answer.status_code == 200 and answer.json()["results"][0]["outcome"] == "stopped", answer.text
    assert until(lambda: build_state(browser, 24) == "stopped"), "the page never showed build 24 stopped"

    def audit_row() -> list[str] | None:
        return next((cells for cells in rows(browser, "audit") if cells[1:2] == [f"{DEMO_JOB_ID}/24"]), None)

    def stop_call() -> bool:
        return any(cells[1] == "POST /v3/jobs/stop" and cells[2] == "200" for cells in rows(browser, "calls"))

    assert until(stop_call), "the page never listed the stop call"
    row = until(audit_row)
    assert row is not None and row[0] == "com.stopline.build.stopped" and row[2] == WHY and row[3] == "github"
    shot = Path(SCREENSHOT or tmp_path / "dashboard.png")
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_the_dashboard_lists_deliveries_and_the_pending_retry_until_it_runs(dev_stack: tuple[str, str],
                                                                            browser: Any) -> None:
    """A cancel whose stop fails on every attempt (the emulator answers 503) is pending: the page lists the
    delivery and the pending retry, then -- once the dev stack's worker thread retries it -- the stop, and
    the pending list empties. A second delivery that changes nothing is listed too."""
    dashboard, github = dev_stack
    emulator = dashboard.rstrip("/")
    browser.get(dashboard)
    assert until(lambda: build_state(browser, 24) == "running")
    httpx.post(f"{emulator}/_emulator/faults", json={"path": "/v3/jobs/stop", "kind": "error", "status": 503,
                                                     "count": 4, "retry_after": 0}, timeout=10).raise_for_status()
    answer = send_cancel(github, "dash-pending")
    assert answer.status_code == 200 and answer.json()["results"][0]["outcome"] == "pending", answer.text

    def delivery(outcome: str, event: str) -> list[str] | None:
        return next((cells for cells in rows(browser, "deliveries")
                     if cells[2] == event and cells[4] == "stop_build" and cells[6] == outcome), None)

    pending = until(lambda: delivery("pending", "dash-pending"))
    assert pending is not None and pending[1] == "github" and pending[3].startswith("workflow_run:1589141559")
    assert f"job_id={DEMO_JOB_ID[:8]}" in pending[5] and pending[7] == WHY and pending[9].startswith("retry due")
    listed = until(lambda: [r for r in rows(browser, "pending") if r[0] == "dash-pending"])
    assert listed and listed[0][3] == "stop_build"
    # the worker thread's retry, about 2 s later: its line carries no delivery id, the same event id
    stopped = until(lambda: next((c for c in rows(browser, "deliveries") if c[3] == pending[3]
                                  and c[4] == "stop_build" and c[6] == "stopped"), None), timeout=30)
    assert stopped is not None and stopped[7] == WHY
    assert until(lambda: build_state(browser, 24) == "stopped")
    assert until(lambda: not [r for r in rows(browser, "pending") if r[0] == "dash-pending"])

    again = send_cancel(github, "dash-again")  # a fresh delivery of the same cancel: nothing left to stop
    assert again.status_code == 200, again.text
    nothing = until(lambda: next((c for c in rows(browser, "deliveries") if c[2] == "dash-again"
                                  and c[4] == "stop_build"), None))
    assert nothing is not None and nothing[9] == "duplicate: answered from the first delivery", nothing


def test_the_dashboard_lists_the_functions_a_deploy_created(served: Any, browser: Any, tmp_path: Path) -> None:
    """`stopline deploy functiongraph` against the served emulator: the page lists the function it created
    with its runtime, memory, variables, trigger and async config."""
    from stopline.emulator.seeds import demo_environment

    _, server = served
    subprocess.run(["bash", str(ROOT / "scripts" / "package"), "fg", str(tmp_path / "build" / "fg")], cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    shutil.copy(ROOT / "serverless.yml", tmp_path / "serverless.yml")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))},
           **demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
           "STOPLINE_IDEMPOTENCY_URL": "redis://10.0.0.3:6379/0"}
    browser.get(server.url + "/")
    done = subprocess.run([sys.executable, "-m", "stopline.cli", "deploy", "functiongraph", "--only", "retries",
                           "--no-build"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def listed() -> list[str] | None:
        return next((cells for cells in rows(browser, "functions") if cells[0] == "stopline-dev-retries"), None)

    row = until(listed)
    assert row is not None, browser.page_source[:500]
    assert row[1:4] == ["Python3.12", "256 MB", "30 s"] and row[6] == "TIMER ACTIVE" and row[7] == "set"
    assert int(row[4]) >= 10  # the file's variables and STOPLINE_PACKAGE_SHA256
