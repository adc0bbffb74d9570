"""Shared fixtures: a clean environment per test, stamina without sleeps, the emulator (in process
and served on 127.0.0.1), captured JSON log lines, and a real redis-server."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stamina

from stopline import logs
from stopline.emulator import Emulator, EmulatorServer
from stopline.emulator.seeds import demo_environment
from stopline.entry import release_gc, reset_runtime
from stopline.idempotency import IdempotencyStore, open_store

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="run the long forms of the reliability tests")


# -- the suite-wide secret scan ------------------------------------------------------------------------------
SUITE_SECRETS: set[str] = set()
"""Every secret a test configures registers itself here (see `configured_secret`)."""
SUITE_LOG_FILES: list[Path] = []
"""Log files of the functions-framework processes the tests start."""


def configured_secret(*values: str) -> None:
    """Record secrets a test configures, so the end-of-session scan looks for them in every log line."""
    SUITE_SECRETS.update(v for v in values if v)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Search every stopline log line of the run (in process and from child processes) for every secret the
    tests configured; a hit fails the run."""
    from stopline.emulator.seeds import DEMO_IAM, DEMO_SK

    configured_secret(DEMO_SK, DEMO_IAM["password"])
    lines = list(_SUITE_LOGS.lines)
    for path in SUITE_LOG_FILES:
        if path.exists():
            lines.extend(path.read_text(errors="replace").splitlines())
    hits = sorted({secret[:4] + "..." for secret in SUITE_SECRETS for line in lines if secret in line})
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"secret scan: {len(lines)} log lines from the run and {len(SUITE_LOG_FILES)} process "
                            f"logs searched for {len(SUITE_SECRETS)} configured secrets: {len(hits)} hits")
    if hits:
        if reporter is not None:
            reporter.write_line(f"secret scan FAILED: secrets starting {', '.join(hits)} appeared in logs")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STOPLINE_* / HUAWEICLOUD_* from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("STOPLINE_", "HUAWEICLOUD_", "RUNTIME_PROJECT_ID")):
            monkeypatch.delenv(name)
    reset_runtime()
    stamina.set_testing(True, attempts=100, cap=True)  # configured attempts, no waiting
    yield
    stamina.set_testing(False)
    reset_runtime()
    # An entry point loaded in this process holds the collector, then freezes what lives (functions/main.py,
    # functions/functiongraph.py): hand the runner its collector back, frozen objects included, which tools
    # that walk the collector's objects rely on (hypothesis checks gc.get_referrers).
    release_gc()
    gc.unfreeze()


class LogCapture(logging.Handler):
    """Collects every stopline log line exactly as it would be written (JSON text)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


_SUITE_LOGS = LogCapture()  # every stopline line of the run, for the secret scan at session end
logging.getLogger("stopline").addHandler(_SUITE_LOGS)


@pytest.fixture
def log_lines() -> Iterator[LogCapture]:
    capture = LogCapture()
    logger = logging.getLogger("stopline")
    logger.addHandler(capture)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield capture
    logger.removeHandler(capture)
    logger.setLevel(old)


@pytest.fixture
def served() -> Iterator[tuple[Emulator, EmulatorServer]]:
    """The emulator with the demo state, served over real HTTP on 127.0.0.1."""
    emulator = Emulator().seed("demo")
    server = emulator.serve("127.0.0.1", 0)
    yield emulator, server
    server.stop()


@pytest.fixture
def demo_env(served: tuple[Emulator, EmulatorServer], monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Environment pointing stopline at the served emulator with the demo AK/SK."""
    emulator, server = served
    for name, value in demo_environment(server.url).items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    return emulator


@pytest.fixture
def signed_cloud(demo_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The served demo emulator, stopline pointed at it, and the webhook target's secret set (the tests
    post to it with tests/in_process.py)."""
    from .functions.harness import SECRET

    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", SECRET)
    return demo_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, process: subprocess.Popen[Any] | None = None) -> None:
    """Wait until something listens on ``port``; if ``process`` (the one meant to listen) exits first, fail at
    once rather than at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process meant to listen on 127.0.0.1:{port} exited ({process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def child_pids(pid: int) -> list[int]:
    """The live children of ``pid``, read from /proc: procps' pgrep is not on a stock Debian image."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def descendant_pids(pid: int) -> list[int]:
    """Every live descendant of ``pid``, each listed before its own children."""
    found = []
    for child in child_pids(pid):
        found.append(child)
        found.extend(descendant_pids(child))
    return found


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a process the tests started, by its pid: SIGTERM, then SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def readme_bash_block(heading: str, nth: int = 0, doc: str = "README.md") -> list[str]:
    """The commands of the ``nth`` ```bash block after ``heading`` in ``doc`` (README.md or a page of
    docs/), as a user pastes them: continuation lines joined, comments and blank lines dropped."""
    text = (ROOT / doc).read_text()
    start = text.index(heading)
    for _ in range(nth + 1):
        start = text.index("```bash", start) + len("```bash")
    joined = text[start: text.index("```", start)].replace("\\\n", " ")
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.strip().splitlines())
    return [line for line in lines if line]


def as_user_runs(line: str) -> str:
    """README lines say `uv`; without uv on PATH a user writes `bash scripts/uv` (README says so)."""
    return line if shutil.which("uv") else re.sub(r"^uv run ", "bash scripts/uv run ", line)


class RedisServer:
    """A real redis-server on a random 127.0.0.1 port in a temp dir; stopped by pid."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (.ci/run installs Debian's redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, process=self.proc)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def raising(reply: Any) -> Any:
    """A driver reply with its failure raised: the driver returns failures as values (``reply.error``)."""
    if reply.error is not None:
        raise reply.error
    return reply


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[IdempotencyStore]:
    """An idempotency store, once as memory:// and once on a real redis-server: the protocol must hold on both."""
    if request.param == "memory":
        made = open_store("memory://")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = open_store(server.url)
    yield made
    made.close()
