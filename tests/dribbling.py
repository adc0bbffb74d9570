"""A raw-socket server that answers one byte at a time -- its status line and headers too -- so every socket
read a client makes is quick and per-read timeouts never fire: what only a whole-exchange bound can stop.
It records, per connection, how many bytes it sent before the client closed it, so tests assert at the
server rather than with a clock."""

from __future__ import annotations

import json
import select
import socket
import threading
from dataclasses import dataclass, field

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
