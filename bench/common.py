"""What the benchmark scenarios share: the served emulator's handle, a series of measurements, the markdown
table every scenario prints, and the rotation that varies the peers' order between rounds."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class RemoteEmulator:
    """The emulator served by `stopline emulator` in a child process (stopped by pid)."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.proc = url, proc

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@dataclass
class Series:
    """Repeated measurements of one peer in one scenario."""

    name: str
    values: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self, unit: str) -> str:
        return f"{self.median():.1f} {unit} ({min(self.values):.1f}-{max(self.values):.1f})"


def table(title: str, series: list[Series], unit: str, baseline: str, note: str = "") -> str:
    base = next(s for s in series if s.name == baseline).median()
    rows = [f"### {title}", "", f"| peer | median {unit} (min-max) | ratio vs {baseline} |", "|---|---|---|"]
    for s in series:
        rows.append(f"| {s.name} | {s.cell(unit)} | {s.median() / base:.2f}x |")
    if note:
        rows += ["", note]
    return "\n".join(rows)


def rotate(items: list[Any], k: int) -> list[Any]:
    return items[k % len(items):] + items[:k % len(items)]
