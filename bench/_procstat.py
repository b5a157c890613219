"""Linux /proc readings shared by the benchmarks: CPU time of a process, and the machine's
steal (CPU time the hypervisor gave to other guests). Not a benchmark itself."""

from __future__ import annotations

import os
from pathlib import Path


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds; 0 when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_times() -> list[int]:
    """The machine's aggregate CPU counters (user nice system idle iowait irq softirq steal)."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return [0] * 8


def steal_pct(before: list[int], after: list[int]) -> float:
    """Share of the machine's CPU time the hypervisor gave to other guests (steal)."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta)
    return round(100 * delta[7] / total, 1) if total > 0 else 0.0
