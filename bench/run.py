"""All stopline benchmarks in one run, each scenario beside its peers, repeated with the peers' order
rotated; prints markdown tables of medians (min-max) with ratios and writes JSON outside the checkout
(~/.cache/stopline/bench-results, or --out).

    uv run --group dev python -m bench            # full run
    uv run --group dev python -m bench --quick    # tiny counts (the CI smoke test uses this)

Everything served runs on 127.0.0.1 and is stopped by pid when the scenario ends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import queues
from bench.cold import RUNTIME_VENV, cold_start
from bench.common import ROOT, RemoteEmulator, Series, rotate, table
from bench.load import generator_name, load
from stopline import transport
from stopline.client import core_from
from stopline.driver import Client
from stopline.emulator import mock_huaweicloud
from stopline.emulator.seeds import DEMO_IAM, DEMO_PROJECT_ID, demo_environment
from stopline.models import parse_command
from stopline.settings import load_settings

JOB = "5555aaaa2222bbbb3333cccc4444dddd"


# Scenarios 1 (per call) and 2 (cold start) live in bench/percall.py and bench/cold.py, the queue ones in
# bench/queues.py; the rest are here.


# -- 3. batch fan-out -------------------------------------------------------------------------------------
def batch(reps: int, size: int) -> tuple[str, dict[str, Any]]:
    """100 commands with 50 ms injected upstream latency: the batch pipeline vs a sequential loop."""
    from stopline.entry import get_runtime, reset_runtime
    from stopline.pipeline import Delivery

    one, fan, seq = Series("one call"), Series(f"batch of {size} (bounded concurrency)"), Series(
        f"sequential loop of {size}")
    os.environ["STOPLINE_WEBHOOK_SECRETS"] = "bench-webhook-secret-not-used"
    os.environ["STOPLINE_LOG_LEVEL"] = "WARNING"
    counter = iter(range(1, 10**9))
    with mock_huaweicloud("demo") as cloud:
        cloud.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                 "builds": [{"build_no": n} for n in range(1, 20_000)]}])
        cloud.inject(r"^/v3/jobs/stop$", "latency", delay_ms=50)
        reset_runtime()
        runtime = get_runtime()

        def cmds(n: int) -> list[dict[str, Any]]:
            return [{"action": "stop_build", "job_id": JOB, "build_no": next(counter)} for _ in range(n)]

        runtime.pipeline.handle(cmds(1)[0], Delivery(None, "bench"))
        for rep in range(reps):
            for kind in rotate(["one", "fan", "seq"], rep):
                t0 = time.perf_counter()
                if kind == "one":
                    runtime.pipeline.handle(cmds(1)[0], Delivery(None, "bench"))
                    one.values.append((time.perf_counter() - t0) * 1000)
                elif kind == "fan":
                    results = runtime.pipeline.handle_batch(cmds(size), Delivery(None, "bench"))
                    assert all(r.ok for r in results)
                    fan.values.append((time.perf_counter() - t0) * 1000)
                else:
                    for c in cmds(size):
                        runtime.pipeline.handle(c, Delivery(None, "bench"))
                    seq.values.append((time.perf_counter() - t0) * 1000)
        reset_runtime()
    del os.environ["STOPLINE_WEBHOOK_SECRETS"], os.environ["STOPLINE_LOG_LEVEL"]
    return table(f"Batch fan-out, {size} commands, 50 ms upstream latency", [one, fan, seq], "ms", "one call"), {
        "one_ms": one.values, "batch_ms": fan.values, "sequential_ms": seq.values}


# -- 3b. resolution fan-out --------------------------------------------------------------------------------
def resolve(reps: int, running: int) -> tuple[str, dict[str, Any]]:
    """`stop_build` without a build number: one look-up plus `running` concurrent stops, 50 ms upstream
    latency on every route, against one call by build number (docs/commands.md)."""
    from stopline.entry import get_runtime, reset_runtime
    from stopline.pipeline import Delivery

    one, fan = Series("one call (build_no given)"), Series(f"resolve + stop {running} running builds")
    lookups: list[int] = []
    os.environ["STOPLINE_WEBHOOK_SECRETS"] = "bench-webhook-secret-not-used"
    os.environ["STOPLINE_LOG_LEVEL"] = "WARNING"
    with mock_huaweicloud("demo") as cloud:
        cloud.inject(r"^/v3/jobs/stop$|/build-info-records$", "latency", delay_ms=50)
        reset_runtime()
        runtime = get_runtime()
        jobs = iter(f"{n:032x}" for n in range(1, 10**6))

        def fresh_job() -> str:
            job = next(jobs)
            cloud.seed(build_tasks=[{"job_id": job, "project_id": DEMO_PROJECT_ID,
                                     "builds": [{"build_no": n, "state": "running"} for n in range(1, running + 1)]}])
            return job

        runtime.pipeline.handle({"action": "stop_build", "job_id": fresh_job(), "build_no": 1}, Delivery(None, "b"))
        for rep in range(reps):
            for kind in rotate(["one", "fan"], rep):
                job = fresh_job()
                t0 = time.perf_counter()
                if kind == "one":
                    result = runtime.pipeline.handle({"action": "stop_build", "job_id": job, "build_no": 1},
                                                     Delivery(None, "bench"))
                    one.values.append((time.perf_counter() - t0) * 1000)
                else:
                    before = len(cloud.calls)
                    result = runtime.pipeline.handle({"action": "stop_build", "job_id": job}, Delivery(None, "bench"))
                    fan.values.append((time.perf_counter() - t0) * 1000)
                    assert result.resolved is not None and len(result.resolved[1]) == running
                    lookups.append(sum(1 for c in cloud.calls[before:] if c["path"].endswith("/build-info-records")))
                assert result.ok, result.to_json()
        reset_runtime()
    del os.environ["STOPLINE_WEBHOOK_SECRETS"], os.environ["STOPLINE_LOG_LEVEL"]
    note = f"look-up requests per resolution: {sorted(set(lookups))}; target: resolve <= 3x one call"
    return table(f"Resolution fan-out, {running} running builds, 50 ms upstream latency", [one, fan], "ms",
                 "one call (build_no given)", note), {"one_ms": one.values, "resolve_ms": fan.values,
                                                       "lookups": lookups}


# -- 4. served throughput ----------------------------------------------------------------------------------
SERVED = {"stopline webhook (Flask)": ("webhook", ROOT / "functions" / "main.py", False),
          "stopline webhook (--asgi)": ("webhook", ROOT / "functions" / "main.py", True),
          "peer: one signed raw httpx call (Flask)": ("raw_call", ROOT / "bench" / "peers.py", False),
          "peer: one signed raw httpx call (--asgi)": ("raw_call_asgi", ROOT / "bench" / "peers.py", True)}
"""Each served peer: its functions-framework target, source file, and whether it runs with ``--asgi``."""


def _start_served(env: dict[str, str]) -> dict[str, tuple[subprocess.Popen[bytes], int]]:
    """One functions-framework process per served peer, each on a free port of 127.0.0.1."""
    from tests.conftest import free_port

    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    for name, (target, source, asgi) in SERVED.items():
        port = free_port()
        cmd = [sys.executable, "-m", "functions_framework", "--target", target, "--source", str(source),
               "--host", "127.0.0.1", "--port", str(port)] + (["--asgi"] if asgi else [])
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        cwd=ROOT), port)
    return procs


def served(server: RemoteEmulator, seconds: float, reps: int) -> tuple[str, dict[str, Any]]:
    """Requests per second and p99 latency of each served peer at 1 and 16 connections, peers rotated."""
    from stopline import webhooks
    from tests.conftest import wait_port

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STOPLINE_", "HUAWEICLOUD_"))},
           **demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": "bench-served-webhook-secret",
           "STOPLINE_LOG_LEVEL": "WARNING",
           "STOPLINE_BUILD_STOP_API": "v3"}
    counter = iter(range(200_000, 10**9))

    def signed() -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"action": "stop_build", "job_id": JOB, "build_no": next(counter)}).encode()
        headers = webhooks.sign("bench-served-webhook-secret", f"m{time.time_ns()}", body)
        return body, {"Content-Type": "application/json", **headers}

    def plain() -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"job_id": JOB, "build_no": str(next(counter))}).encode()
        return body, {"Content-Type": "application/json"}

    procs = _start_served(env)
    try:
        for proc, port in procs.values():
            wait_port(port, 60, process=proc)
        for name, (_, port) in procs.items():  # first requests build each runtime: not what we measure
            load(f"http://127.0.0.1:{port}", signed if "stopline" in name else plain, 2, 1.0)
        results: dict[int, dict[str, Series]] = {}
        p99: dict[int, dict[str, Series]] = {}
        for conns in (1, 16):
            results[conns] = {n: Series(n) for n in SERVED}
            p99[conns] = {n: Series(n) for n in SERVED}
            for rep in range(reps):
                for name in rotate(list(SERVED), rep):
                    outcome = load(f"http://127.0.0.1:{procs[name][1]}", signed if "stopline" in name else plain,
                                   conns, seconds)
                    assert outcome.errors == 0, f"{name}: {outcome.errors} errors"
                    results[conns][name].values.append(outcome.rate)
                    p99[conns][name].values.append(outcome.p99_ms)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=10)
    peer = "peer: one signed raw httpx call (Flask)"
    parts = []
    for conns in (1, 16):
        parts.append(table(f"Served throughput, {conns} connection(s), {seconds:.0f} s each (req/s)",
                           list(results[conns].values()), "req/s", peer))
        parts.append(table(f"Served p99 latency, {conns} connection(s)", list(p99[conns].values()), "ms", peer))
    parts.append(f"Load generator: {generator_name()}, one keep-alive connection per client, each request "
                 "distinct (fresh webhook id and build number), prepared and signed before the timed run.")
    return "\n\n".join(parts), {str(c): {n: s.values for n, s in results[c].items()} for c in results}


# -- 5. token --------------------------------------------------------------------------------------------------
def token(calls: int) -> tuple[str, dict[str, Any]]:
    with mock_huaweicloud("demo", fake_credentials=False) as cloud:
        cloud.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                 "builds": [{"build_no": n} for n in range(1, calls + 1)]}])
        client = Client(core_from(load_settings(iam_username=DEMO_IAM["username"], iam_password=DEMO_IAM["password"],
                                                iam_domain=DEMO_IAM["domain"], project_id=DEMO_PROJECT_ID)),
                        transport=transport.current())
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: client.execute(parse_command(
                {"action": "stop_build", "job_id": JOB, "build_no": n})), range(1, calls + 1)))
        elapsed = time.perf_counter() - t0
        requests = cloud.state.token_requests
        client.close()
    assert requests == 1, f"{calls} calls made {requests} IAM token requests"
    return (f"### IAM password mode\n\n{calls:,} calls on 16 threads: **{requests} token request** "
            f"(asserted), {calls / elapsed:,.0f} calls/s in process."), {"calls": calls, "token_requests": requests}


def per_call_matrix(url: str, job: str, calls: int, reps: int) -> tuple[str, dict[str, Any]]:
    from bench.percall import per_call

    return per_call(url, job, calls, reps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny counts, for the smoke test")
    parser.add_argument("--out", type=Path, default=RUNTIME_VENV.parent / "bench-results",
                        help="folder for the JSON results (default: ~/.cache/stopline/bench-results)")
    parser.add_argument("--only", nargs="*",
                        help="scenarios: per_call cold batch resolve served token queue drain")
    args = parser.parse_args()
    q = args.quick
    reps = 2 if q else 5
    chosen = set(args.only or ["per_call", "cold", "batch", "resolve", "served", "token", "queue", "drain"])
    # The emulator runs in its own process, so its work never competes with the measured client for the GIL.
    from tests.conftest import free_port, wait_port

    port = free_port()
    emulator_proc = subprocess.Popen([sys.executable, "-m", "stopline.cli", "emulator", "--port", str(port),
                                      "--seed", "demo"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RemoteEmulator(f"http://127.0.0.1:{port}", emulator_proc)
    from bench.percall import seed_sections

    sections, data = [], {}
    try:
        wait_port(port, 60, process=emulator_proc)
        for body in seed_sections(JOB, range(1, 600_000)):  # the control API takes bodies up to 1 MiB
            httpx.post(f"{server.url}/_emulator/seed", timeout=120, json=body).raise_for_status()
        steps: list[tuple[str, Callable[[], tuple[str, Any]]]] = [
            ("per_call", lambda: per_call_matrix(server.url, JOB, 10 if q else 200, reps)),
            ("cold", lambda: cold_start(server, reps if q else 3 * reps)),  # a few-ms goal needs more samples
            ("batch", lambda: batch(reps, 10 if q else 100)),
            ("resolve", lambda: resolve(reps, 20)),
            ("served", lambda: served(server, 0.5 if q else 5.0, 1 if q else reps)),
            ("token", lambda: token(200 if q else 10_000)),
            ("queue", lambda: queues.kafka_batch(1 if q else 3, 48 if q else 1000)),
            ("drain", lambda: queues.drain(1 if q else 3, 16 if q else 100, args.out.parent)),
        ]
        for name, step in steps:
            if name not in chosen:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            text, result = step()
            sections.append(text)
            data[name] = result
            print(text + "\n", flush=True)
    finally:
        server.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{time.strftime('%Y%m%dT%H%M%S')}{'-quick' if q else ''}.json"
    out.write_text(json.dumps({"reps": reps, "python": sys.version, "results": data,
                               "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0
