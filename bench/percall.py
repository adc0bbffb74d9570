"""Per-call scenario: the stopline client against raw httpx with the same headers and
signing, and against the official SDK, for each operation, in AK/SK and token modes; then req/s at 1 and 16
concurrent calls. Every call acts on a fresh build, task or job, so each one does the same work."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from stopline.auth import signer
from stopline.client import core_from
from stopline.driver import Client
from stopline.emulator.seeds import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK, DEMO_TOKEN
from stopline.models import Command, parse_command
from stopline.settings import load_settings

OPS = ("stop_build", "delete_build_task", "stop_dataarts_job")
MODES = ("AK/SK", "token")
TASKS, JOBS = 12_000, 12_000


def task_id(n: int) -> str:
    return f"d{n:031d}"


def seed_sections(job: str, builds: range) -> list[dict[str, Any]]:
    """Control-API seed bodies (each under the emulator's 1 MiB limit) for the targets this scenario uses."""
    bodies: list[dict[str, Any]] = []
    for first in range(builds.start, builds.stop, 30_000):
        bodies.append({"build_tasks": [{"job_id": job, "project_id": DEMO_PROJECT_ID, "builds": [
            {"build_no": n} for n in range(first, min(first + 30_000, builds.stop))]}]})
    for first in range(0, TASKS, 5_000):
        bodies.append({"build_tasks": [{"job_id": task_id(n), "project_id": DEMO_PROJECT_ID, "builds": []}
                                       for n in range(first, first + 5_000)]})
    for first in range(0, JOBS, 10_000):
        bodies.append({"dataarts_jobs": [{"project_id": DEMO_PROJECT_ID, "job_name": f"bench-{n}"}
                                         for n in range(first, first + 10_000)]})
    return bodies


@dataclass
class Fresh:
    """Hands out targets nobody has acted on yet."""

    job: str
    builds: Iterator[int]
    tasks: Iterator[int]
    jobs: Iterator[int]

    def command(self, op: str) -> Command:
        if op == "stop_build":
            return parse_command({"action": op, "job_id": self.job, "build_no": next(self.builds)})
        if op == "delete_build_task":
            return parse_command({"action": op, "job_id": task_id(next(self.tasks))})
        return parse_command({"action": op, "job_name": f"bench-{next(self.jobs)}"})


def _raw_request(command: Command) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers a hand-written caller would send (the bytes stopline sends, built by hand)."""
    headers = {"Content-Type": "application/json"}
    if command.action == "stop_build":
        return ("/v3/jobs/stop", f'{{"job_id":"{command.job_id}","build_no":"{command.build_no}"}}'.encode(),
                headers)
    if command.action == "delete_build_task":
        return f"/v3/jobs/{command.job_id}/delete", b"", headers
    assert command.action == "stop_dataarts_job"  # the operations of OPS
    if command.workspace:
        headers["workspace"] = command.workspace
    return f"/v1/{DEMO_PROJECT_ID}/jobs/{command.job_name}/stop", b"", headers


class Peers:
    """The callers compared, each taking one prepared command."""

    def __init__(self, url: str) -> None:
        from huaweicloudsdkcodeartsbuild.v3 import CodeArtsBuildClient
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkdgc.v1 import DgcClient

        self.url, self.host = url, url.removeprefix("http://")
        common = {"project_id": DEMO_PROJECT_ID, "codearts_build_endpoint": url, "dataarts_endpoint": url,
                  "build_stop_api": "v3"}
        self.settings = {"AK/SK": load_settings(ak=DEMO_AK, sk=DEMO_SK, **common),
                         "token": load_settings(auth_token=DEMO_TOKEN, **common)}
        self.sync = {mode: Client(core_from(s)) for mode, s in self.settings.items()}
        self.raw = httpx.Client(timeout=10)
        credentials = BasicCredentials(DEMO_AK, DEMO_SK, DEMO_PROJECT_ID)
        self.sdk_build = CodeArtsBuildClient.new_builder().with_credentials(credentials).with_endpoints([url]).build()
        self.sdk_dgc = DgcClient.new_builder().with_credentials(credentials).with_endpoints([url]).build()

    def raw_call(self, mode: str) -> Callable[[Command], object]:
        def call(command: Command) -> None:
            path, body, headers = _raw_request(command)
            if mode == "token":
                headers["X-Auth-Token"] = DEMO_TOKEN
            else:
                headers = signer.sign(access_key=DEMO_AK, secret_key=DEMO_SK, method="POST", host=self.host,
                                      path=path, headers={**headers, "X-Project-Id": DEMO_PROJECT_ID}, body=body)
            self.raw.post(self.url + path, content=body, headers=headers).raise_for_status()
        return call

    def sdk_call(self, command: Command) -> None:
        from huaweicloudsdkcodeartsbuild.v3 import DeleteBuildJobRequest, StopJobRequest, StopJobRequestBody
        from huaweicloudsdkdgc.v1 import StopJobRequest as DgcStopJobRequest

        if command.action == "stop_build":
            self.sdk_build.stop_job(StopJobRequest(body=StopJobRequestBody(job_id=command.job_id,
                                                                           build_no=str(command.build_no))))
        elif command.action == "delete_build_task":
            self.sdk_build.delete_build_job(DeleteBuildJobRequest(job_id=command.job_id))
        elif command.action == "stop_dataarts_job":
            self.sdk_dgc.stop_job(DgcStopJobRequest(job_name=command.job_name))

    def for_mode(self, mode: str) -> dict[str, Callable[[Command], object]]:
        """Peer name -> a callable making one call."""
        peers: dict[str, Callable[[Command], object]] = {
            "stopline sync": self.sync[mode].execute,
            "raw httpx, same " + ("signing" if mode == "AK/SK" else "token"): self.raw_call(mode)}
        if mode == "AK/SK":
            peers["official SDK"] = self.sdk_call
        return peers

    def run_sequential(self, peer: Callable[[Command], object], mode: str,
                       commands: list[Command]) -> tuple[list[float], float, float]:
        """(per-call µs samples, CPU µs per call, wall seconds) for calls made one after another."""
        samples: list[float] = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for command in commands:
            t0 = time.perf_counter()
            peer(command)
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples, (time.process_time() - cpu0) / len(commands) * 1e6, time.perf_counter() - wall0

    def run_concurrent(self, peer: Callable[[Command], object], mode: str, commands: list[Command],
                       width: int) -> float:
        """req/s with `width` calls in flight on as many threads."""
        t0 = time.perf_counter()
        with ThreadPoolExecutor(width) as pool:
            list(pool.map(peer, commands))
        return len(commands) / (time.perf_counter() - t0)

    def close(self) -> None:
        for client in self.sync.values():
            client.close()
        self.raw.close()


def _median_cell(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}"


_TRAP_PROBE = """
import time
t0 = time.perf_counter()
import httpx
t1 = time.perf_counter()
httpx.Client()
t2 = time.perf_counter()
httpx.Client()
t3 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000)
"""


def traps(calls_per_client: int) -> str:
    """A known httpx trap, measured in a fresh process, and how stopline stays clear of it."""
    import subprocess

    from bench.cold import runtime_python

    python, _ = runtime_python()
    out = subprocess.run([python, "-c", _TRAP_PROBE], capture_output=True, text=True, check=True,
                         timeout=60).stdout.split()
    imported, first, second = float(out[0]), float(out[1]), float(out[2])
    return "\n".join([
        "### A known httpx trap", "",
        f"- Building a client is expensive: in a fresh process (runtime-only environment) `import httpx` takes "
        f"{imported:.0f} ms, the first "
        f"`httpx.Client()` {first:.0f} ms (httpcore import, TLS trust store), a second one {second:.0f} ms. "
        "stopline builds its transport once per process (on the first call, or at pre-warm), never at import; "
        f"each client measured here was built before the clock started and served all {calls_per_client:,} of "
        "its calls.",
    ])


def _matrix(title: str, data: dict[tuple[str, str, str], list[float]], unit: str) -> str:
    """One table of the per-call scenario: each operation and credential mode, stopline beside its peers."""
    rows = [f"### {title}", "",
            f"| operation | mode | stopline ({unit}) | raw httpx (same headers) "
            "| official SDK | stopline / raw | SDK / stopline |", "|---|---|---|---|---|---|---|"]
    for op in OPS:
        for mode in MODES:
            raw_name = "raw httpx, same " + ("signing" if mode == "AK/SK" else "token")
            sync = statistics.median(data[(op, mode, "stopline sync")])
            raw = statistics.median(data[(op, mode, raw_name)])
            sdk_values = data.get((op, mode, "official SDK"))
            sdk = statistics.median(sdk_values) if sdk_values else None
            rows.append(
                f"| {op} | {mode} | {sync:,.0f} | "
                f"{raw:,.0f} | {f'{sdk:,.0f}' if sdk else '-'} | {sync / raw:.2f}x | "
                f"{f'{sdk / sync:.2f}x' if sdk else '-'} |")
    return "\n".join(rows)


def per_call(url: str, job: str, calls: int, reps: int) -> tuple[str, dict[str, Any]]:
    from bench.common import rotate

    fresh = Fresh(job, itertools.count(1), itertools.count(0), itertools.count(0))
    peers = Peers(url)
    p50: dict[tuple[str, str, str], list[float]] = {}
    p99: dict[tuple[str, str, str], list[float]] = {}
    cpu: dict[tuple[str, str, str], list[float]] = {}
    try:
        for op in OPS:
            for mode in MODES:
                for peer in peers.for_mode(mode).values():  # warm-up: pools, lazy SDK setup
                    peers.run_sequential(peer, mode, [fresh.command(op) for _ in range(5)])
                for rep in range(reps):
                    for name, peer in rotate(list(peers.for_mode(mode).items()), rep):
                        samples, cpu_us, _ = peers.run_sequential(peer, mode, [fresh.command(op) for _ in range(calls)])
                        key = (op, mode, name)
                        p50.setdefault(key, []).append(statistics.median(samples))
                        p99.setdefault(key, []).append(sorted(samples)[max(0, int(len(samples) * 0.99) - 1)])
                        cpu.setdefault(key, []).append(cpu_us)
        throughput: dict[tuple[str, int], list[float]] = {}
        aksk = peers.for_mode("AK/SK")
        for rep in range(reps):
            for name, peer in rotate(list(aksk.items()), rep):
                for width in (1, 16):
                    commands = [fresh.command("stop_build") for _ in range(calls * 2)]
                    rate = (peers.run_concurrent(peer, "AK/SK", commands, width) if width > 1 else
                            len(commands) / peers.run_sequential(peer, "AK/SK", commands)[2])
                    throughput.setdefault((name, width), []).append(rate)
    finally:
        peers.close()

    rate_rows = ["### Throughput, stop_build, AK/SK (req/s, higher is better)", "",
                 "| peer | 1 at a time | 16 concurrent |", "|---|---|---|"]
    for name in aksk:
        rate_rows.append(f"| {name} | {_median_cell(throughput[(name, 1)])} | {_median_cell(throughput[(name, 16)])} |")
    text = "\n\n".join([
        _matrix("Per call, p50 wall time (sequential, emulator served by another process)", p50, "µs"),
        _matrix("Per call, p99 wall time", p99, "µs"),
        _matrix("Per call, client CPU time", cpu, "µs"),
        "\n".join(rate_rows),
        traps(calls * reps * len(OPS)),
    ])
    return text, {"p50_us": {"|".join(k): v for k, v in p50.items()},
                  "p99_us": {"|".join(k): v for k, v in p99.items()},
                  "cpu_us": {"|".join(k): v for k, v in cpu.items()},
                  "req_per_s": {f"{n}|{w}": v for (n, w), v in throughput.items()}}
