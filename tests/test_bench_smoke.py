"""The benchmark code keeps working: every scenario runs with tiny counts (no timings are asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_bench_quick_runs_every_scenario(tmp_path: Path) -> None:
    """Results and the runtime-only venv go to temporary folders: the checkout is left as it was."""
    env = {**os.environ, "STOPLINE_BENCH_VENV": str(tmp_path / "venv")}
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path / "results")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "results").glob("bench-*-quick.json"))) == 1
    for title in ("Per call, p50", "Throughput, stop_build", "Cold start", "Batch fan-out", "Resolution fan-out",
                  "Served throughput",
                  "IAM password mode", "Kafka event of 48 records", "Draining 16 due pending retries"):
        assert title in done.stdout
    assert "**1 token request**" in done.stdout
    assert "The stack floor (no stopline code) / official SDK target is" in done.stdout  # the cold-start goals
    assert "### Where stopline's share goes" in done.stdout and "| `stopline.settings` |" in done.stdout
    assert "| peer: one signed raw httpx call (--asgi) |" in done.stdout  # each mode has a raw peer of its own
