"""Real functions-framework processes on 127.0.0.1 for the function-target tests, stopped by pid."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stopline import webhooks
from stopline.emulator import EmulatorServer

from ..conftest import ROOT, SUITE_LOG_FILES, configured_secret, free_port, stop_process, wait_port

SECRET = "whsec_" + base64.b64encode(b"stopline-test-webhook-key-32byte").decode()
OLD_SECRET = "rotated-out-plain-secret"
configured_secret(SECRET, SECRET.removeprefix("whsec_"), OLD_SECRET)


@dataclass
class FunctionProcess:
    target: str
    asgi: bool
    env: dict[str, str]
    log_path: Path
    signature: str = "http"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FunctionProcess:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))}
        cmd = [sys.executable, "-m", "functions_framework", "--target", self.target, "--source",
               str(ROOT / "functions" / "main.py"), "--host", "127.0.0.1", "--port", str(self.port),
               "--signature-type", self.signature]
        if self.asgi:
            cmd.append("--asgi")
        self._log = self.log_path.open("wb")
        SUITE_LOG_FILES.append(self.log_path)
        for name in ("HUAWEICLOUD_SDK_SK", "STOPLINE_IAM_PASSWORD", "STOPLINE_AUTH_TOKEN"):
            configured_secret(self.env.get(name, ""))
        for secret in self.env.get("STOPLINE_WEBHOOK_SECRETS", "").split(","):
            configured_secret(secret, secret.removeprefix("whsec_"))
        self.proc = subprocess.Popen(cmd, env={**clean, **self.env}, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        return self

    def ready(self) -> FunctionProcess:
        """Wait until the target listens; if it cannot, say why with the end of its log."""
        try:
            wait_port(self.port, timeout=60, process=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            tail, mode = self.log_path.read_text(errors="replace")[-3000:], "asgi" if self.asgi else "flask"
            raise RuntimeError(f"{self.target} ({mode}): {exc}; its log ends:\n{tail}") from None
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if hasattr(self, "_log"):
            self._log.close()

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out


def start_all(processes: list[FunctionProcess]) -> list[FunctionProcess]:
    """Start every process, then wait for each (they start in parallel); if one never listens, stop them all
    before failing, so a broken start leaves no server behind."""
    try:
        for p in processes:
            p.start()
        for p in processes:
            p.ready()
    except BaseException:
        for p in processes:
            p.stop()
        raise
    return processes


@contextlib.contextmanager
def serving(server: EmulatorServer, processes: dict[str, FunctionProcess]) -> Iterator[None]:
    """A module's stack: the function processes started in front of a served emulator, and afterwards (or when
    one of them cannot start) each process stopped, then the emulator."""
    try:
        start_all(list(processes.values()))
        yield
    finally:
        for p in processes.values():
            p.stop()
        server.stop()


def signed_post(url: str, body: Any, *, msg_id: str | None = None, secret: str = SECRET,
                timestamp: int | None = None, raw: bytes | None = None,
                content_type: str = "application/json", timeout: float = 30.0) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": content_type,
               **webhooks.sign(secret, msg_id or f"msg_{uuid.uuid4().hex}", content, timestamp)}
    return httpx.post(url, content=content, headers=headers, timeout=timeout)


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
