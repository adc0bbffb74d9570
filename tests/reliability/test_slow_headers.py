"""An upstream that dribbles its status line and headers cannot hold a delivery (issue 23).

A raw-socket server stands in for CodeArts Build and DataArts: it reads each request, then answers one
byte every 0.25 s -- the status line and headers too, so every socket read the client makes is quick and
httpx's per-read timeouts never fire. With ``STOPLINE_TIMEOUT_S=1`` and one attempt, each target (Flask
and ASGI mode) answers a transient failure, and the server sees the connection closed long before its
last byte. A re-send of the same delivery id, made while the first was in flight, never reaches the
server while the first connection is open. Both are asserted at the server, not with a clock.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ..functions.harness import SECRET, FunctionProcess, signed_post, start_all

JOB = "7777aaaa2222bbbb3333cccc4444dddd"
BODY = json.dumps({"result": True, "padding": "x" * 80}).encode()
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: slow-head\r\n"
          b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
STEP_S = 0.25


@dataclass
class SlowHead:
    """Answers every request one byte per STEP_S; records what each connection saw."""

    sock: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    requests: list[str] = field(default_factory=list)
    sent_bytes: list[int] = field(default_factory=list)
    overlapping: int = 0
    """Requests that arrived while another exchange for the same call (line and body) was still open."""
    _open: dict[bytes, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> SlowHead:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            start, rest = head.split(b"\r\n\r\n", 1)
            length = next((int(line.split(b":")[1]) for line in start.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                rest += conn.recv(65536)
            call = start.split(b"\r\n")[0] + b" " + rest
            with self._lock:
                self.requests.append(call.decode())
                self.overlapping += self._open.get(call, 0) > 0
                self._open[call] = self._open.get(call, 0) + 1
            sent = 0
            try:
                for i in range(len(ANSWER)):
                    readable, _, _ = select.select([conn], [], [], STEP_S)
                    if readable and not conn.recv(1, socket.MSG_PEEK):
                        break  # the client closed the connection
                    conn.sendall(ANSWER[i:i + 1])
                    sent += 1
            except OSError:
                pass
            finally:
                with self._lock:
                    self._open[call] -= 1
                    self.sent_bytes.append(sent)


TARGETS: dict[str, tuple[str, dict[str, object]]] = {
    "stop_build": ("http", {"job_id": JOB, "build_no": 3}),
    "delete_build_task": ("http", {"job_id": JOB}),
    "stop_dataarts_job": ("http", {"job_name": "slow-etl"}),
    "webhook": ("http", {"action": "stop_build", "job_id": JOB, "build_no": 4}),
    "on_event": ("cloudevent", {"action": "stop_dataarts_job", "job_name": "slow-queue-etl"}),
}


def _send(proc: FunctionProcess, body: dict[str, object], delivery: str) -> httpx.Response:
    if proc.signature == "cloudevent":
        event = {"specversion": "1.0", "id": delivery, "source": "//slow", "type": f"stopline.{body['action']}",
                 "datacontenttype": "application/json", "data": body}
        return httpx.post(proc.url, content=json.dumps(event), timeout=60,
                          headers={"Content-Type": "application/cloudevents+json"})
    return signed_post(proc.url, body, msg_id=delivery, timeout=60)


@pytest.mark.parametrize("asgi", [False, True], ids=["flask", "asgi"])
def test_a_dribbled_status_line_is_abandoned_and_never_overlaps_its_redelivery(tmp_path: Path, asgi: bool) -> None:
    upstream = SlowHead().start()
    env = {"STOPLINE_AUTH_TOKEN": "slow-head-token", "HUAWEICLOUD_SDK_PROJECT_ID": "p" * 32,
           "STOPLINE_CODEARTS_BUILD_ENDPOINT": upstream.url, "STOPLINE_DATAARTS_ENDPOINT": upstream.url,
           "STOPLINE_IAM_ENDPOINT": upstream.url, "STOPLINE_WEBHOOK_SECRETS": SECRET,
           "STOPLINE_TIMEOUT_S": "1", "STOPLINE_MAX_ATTEMPTS": "1"}
    procs = {name: FunctionProcess(name, asgi, env, tmp_path / f"{name}.log", signature=kind)
             for name, (kind, _) in TARGETS.items()}
    start_all(list(procs.values()))
    try:
        with ThreadPoolExecutor(max_workers=2 * len(TARGETS)) as pool:
            firsts = {name: pool.submit(_send, procs[name], body, f"slow-{name}")
                      for name, (_, body) in TARGETS.items()}
            resent = {name: pool.submit(_send, procs[name], body, f"slow-{name}")
                      for name, (_, body) in TARGETS.items()}
            answers = {name: (firsts[name].result(), resent[name].result()) for name in TARGETS}
        for name, pair in answers.items():
            for answer in pair:
                # a transient failure: 503 over HTTP, a redelivery request on the queue target
                assert answer.status_code in (500, 503), (name, answer.status_code, answer.text)
                if procs[name].signature == "http":
                    error = answer.json()["error"]
                    assert error["type"] in ("unavailable", "in_progress"), (name, error)
        assert upstream.requests, "the upstream was never called"
        assert len(upstream.requests) <= 2 * len(TARGETS)
        # every connection was closed by the client long before its last byte
        assert upstream.sent_bytes and max(upstream.sent_bytes) < len(ANSWER) // 4, upstream.sent_bytes
        # and no re-send reached the cloud while the first exchange of the same call was still open
        assert upstream.overlapping == 0
    finally:
        for proc in procs.values():
            proc.stop()
        upstream.stop()
