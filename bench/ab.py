"""What the A/B micro-benchmarks (bench/*_ab.py) share: one module of ours as of a git revision,
beside the working tree's; timing rounds that alternate the two (A B, B A, ...) so both see the
same machine load; and the table they print (best and median per side, and the median of the
paired after/before ratios: on a shared machine, compare the ratio, not the absolute figures).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_revision(rev: str, path: str) -> ModuleType:
    """`path` (e.g. "gateway/media/jitter.py") as of `rev`, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader(f"{Path(path).stem}_{rev}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def alternate(
    rounds: int, before: ModuleType, after: ModuleType, time_once: Callable[[ModuleType], float]
) -> dict[str, list[float]]:
    """`rounds` timings of each side, in alternating order."""
    times: dict[str, list[float]] = {"before": [], "after": []}
    order = (("before", before), ("after", after))
    for r in range(rounds):
        for name, module in order if r % 2 == 0 else reversed(order):
            times[name].append(time_once(module))
    return times


def print_times(what: str, times: dict[str, list[float]]) -> None:
    """The table: `what` names the unit (e.g. "µs CPU per packet (push + 2 pop_ready)")."""
    print(f"| {what} | best | median |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {min(values):.3f} | {statistics.median(values):.3f} |")
    ratio = statistics.median(a / b for a, b in zip(times["after"], times["before"], strict=True))
    print(f"after / before, median of the paired rounds: {ratio:.3f}")
