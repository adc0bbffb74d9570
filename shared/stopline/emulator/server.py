"""Serving the emulator: a threaded HTTP server on 127.0.0.1, and an in-process httpx transport.

Both feed the same :class:`~stopline.emulator.routes.Router`. A dropped connection is a closed socket
with no answer on the server, and ``httpx.RemoteProtocolError`` in process -- what a client sees
either way. Latency beyond the client's read timeout becomes ``httpx.ReadTimeout`` in process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from stopline.emulator.replies import EmuReply, EmuRequest
from stopline.emulator.routes import Router

MAX_BODY = 1024 * 1024
MAX_UPLOAD_BODY = 72 * 1024 * 1024
"""FunctionGraph's code calls carry a zip of up to 50 MB as base64 in JSON."""


def _to_emu(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> EmuRequest:
    parts = urlsplit(raw_path)
    return EmuRequest(method.upper(), parts.path, parse_qsl(parts.query, keep_blank_values=True), headers, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the client's delayed
    # ACK would add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the calls log is the record
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > (MAX_UPLOAD_BODY if "/fgs/functions" in self.path else MAX_BODY):
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = _to_emu(self.command, self.path, headers, body)
        reply = self.server.router.handle(request)
        try:
            self._answer(reply)
        finally:
            if not request.path.startswith("/_emulator/"):
                self.server.router.done()

    def _answer(self, reply: EmuReply) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.drop:
            self.close_connection = True
            return
        if reply.dribble_head:
            self._trickle(self._head(reply) + reply.body, reply.dribble_s)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.dribble_s:
            self.wfile.flush()
            for i in range(len(reply.body)):
                time.sleep(reply.dribble_s)
                self.wfile.write(reply.body[i:i + 1])
                self.wfile.flush()
        elif reply.body:
            self.wfile.write(reply.body)

    def _head(self, reply: EmuReply) -> bytes:
        """The status line and headers as they would go out, for ``dribble_head``."""
        lines = [f"{self.protocol_version} {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        lines += [f"Content-Length: {len(reply.body)}", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def _trickle(self, data: bytes, pause_s: float) -> None:
        """Send ``data`` one byte per ``pause_s``; a client that gave up ends it (ConnectionError)."""
        for i in range(len(data)):
            time.sleep(pause_s)
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout, injected latency) is normal here, not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class EmulatorServer:
    """The emulator on a real port; ``start()`` returns once it accepts connections."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), router)
        self.host, self.port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="stopline-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {})
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport (sync and async) that answers from the emulator without a socket."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def _reply(self, request: httpx.Request, body: bytes) -> tuple[EmuReply, float | None]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw_path = request.url.raw_path.decode("ascii")
        return self.router.handle(_to_emu(request.method, raw_path, headers, body)), _read_timeout(request)

    @staticmethod
    def _finish(request: httpx.Request, reply: EmuReply) -> httpx.Response:
        if reply.drop:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if reply.dribble_s:
            stream = _Dribble(reply.body, reply.dribble_s)
            headers = {**reply.headers, "Content-Length": str(len(reply.body))}
            return httpx.Response(reply.status, headers=headers, stream=stream, request=request)
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply, timeout = self._reply(request, request.read())
        if reply.dribble_head:  # no socket here: the trickled head is a wait before the response exists
            reply.delay_s, reply.dribble_head = reply.dribble_s * 200, False
        try:
            if reply.delay_s:
                time.sleep(min(reply.delay_s, timeout) if timeout is not None else reply.delay_s)
                if timeout is not None and reply.delay_s > timeout:
                    raise httpx.ReadTimeout("The read operation timed out", request=request)
            return self._finish(request, reply)
        finally:
            self._done(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        reply, timeout = self._reply(request, await request.aread())
        try:
            if reply.delay_s:
                await asyncio.sleep(min(reply.delay_s, timeout) if timeout is not None else reply.delay_s)
                if timeout is not None and reply.delay_s > timeout:
                    raise httpx.ReadTimeout("The read operation timed out", request=request)
            return self._finish(request, reply)
        finally:
            self._done(request)

    def _done(self, request: httpx.Request) -> None:
        if not request.url.path.startswith("/_emulator/"):
            self.router.done()


class _Dribble(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives one byte per ``delay_s``, as from a server that dribbles its answer."""

    def __init__(self, body: bytes, delay_s: float) -> None:
        self.body, self.delay_s = body, delay_s

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self.body)):
            time.sleep(self.delay_s)
            yield self.body[i:i + 1]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(len(self.body)):
            await asyncio.sleep(self.delay_s)
            yield self.body[i:i + 1]
