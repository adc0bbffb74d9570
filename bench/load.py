"""Closed-loop HTTP load for the served scenario: wrk when it is installed, else a Python generator.

wrk (Debian's package; scripts/test installs it) is written in C, so it takes a few percent of a core
where a Python generator would compete with the server under test for the machine's two cores. Every
request must be distinct (a repeated webhook id or build number would be answered as a duplicate, which
is cheaper), so the requests are built and signed beforehand, written to a file, and replayed once each,
in order, by a small Lua script; a run that would need more than were prepared fails instead of
repeating them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

Request = tuple[bytes, dict[str, str]]

_WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests": %d, "duration_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(99.0),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    rate: float
    """Completed requests per second."""
    p99_ms: float
    errors: int
    """Connection errors, timeouts and non-2xx answers."""


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "Python threads (wrk not installed)"


def _raw_requests(url: str, requests: list[Request]) -> bytes:
    """The prepared requests as length-prefixed raw HTTP/1.1 bytes, which the Lua script reads back."""
    host = httpx.URL(url).netloc.decode()
    out = bytearray()
    for body, headers in requests:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, **headers, "Content-Length": str(len(body))}.items())
        raw = f"POST / HTTP/1.1\r\n{head}\r\n".encode() + body
        out += f"{len(raw)}\n".encode() + raw
    return bytes(out)


_WRK_SCRIPT = """
local reqs, i = {}, 0
function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\\n", pos, true)
    local n = tonumber(string.sub(data, pos, nl - 1))
    reqs[#reqs + 1] = string.sub(data, nl + 1, nl + n)
    pos = nl + n + 1
  end
end
function request()
  i = i + 1
  return reqs[(i - 1) % #reqs + 1]
end
""" + _WRK_DONE


def wrk_load(url: str, requests: list[Request], connections: int, seconds: float) -> LoadResult:
    """Run wrk with one thread for ``seconds``; fails if the prepared requests ran out."""
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp) / "replay.lua", Path(tmp) / "requests.bin"
        script.write_text(_WRK_SCRIPT)
        data.write_bytes(_raw_requests(url, requests))
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script),
             url, "--", str(data)], capture_output=True, text=True, timeout=seconds + 120, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_RESULT "))
    result = json.loads(line.removeprefix("WRK_RESULT "))
    if result["requests"] + connections >= len(requests):
        raise RuntimeError(f"wrk used all {len(requests)} prepared requests; prepare more")
    return LoadResult(result["requests"] / (result["duration_us"] / 1e6), result["p99_us"] / 1000, result["errors"])


def python_load(url: str, requests: Iterator[Request], connections: int, seconds: float) -> LoadResult:
    """The fallback: ``connections`` threads, each with its own keep-alive httpx connection."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal errors
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    body, headers = next(requests)
                t0 = time.perf_counter()
                r = client.post(url, content=body, headers=headers)
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(dt)
                    errors += r.status_code != 200

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    latencies.sort()
    return LoadResult(len(latencies) / elapsed, latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else 0.0,
                      errors)


def load(url: str, make: Callable[[], Request], connections: int, seconds: float) -> LoadResult:
    """Drive ``url`` for ``seconds`` with ``connections`` keep-alive connections, fresh requests from ``make``."""
    if shutil.which("wrk"):
        # Prepared, not generated on the fly: enough for 1,500 req/s, about twice what any target serves here.
        return wrk_load(url, [make() for _ in range(int(1500 * max(1.0, seconds)))], connections, seconds)

    def stream() -> Iterator[Request]:
        while True:
            yield make()

    return python_load(url, stream(), connections, seconds)
