"""The benchmark code keeps working: every scenario runs with tiny counts (no timings are asserted)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_bench_quick_runs_every_scenario() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for title in ("Per call, p50", "Throughput, stop_build", "Cold start", "Batch fan-out", "Served throughput",
                  "IAM password mode"):
        assert title in done.stdout
    assert "**1 token request**" in done.stdout
