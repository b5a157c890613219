"""What the A/B micro-benchmarks (bench/*_ab.py) share: one module of ours as of a git revision,
beside the working tree's; timing rounds that alternate the two (A B, B A, ...) so both see the
same machine load; and the table they print (best and median per side, and the median of the
paired after/before ratios: on a shared machine, compare the ratio, not the absolute figures).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.media.rtp import RtpPacket

ROOT = Path(__file__).resolve().parent.parent


PTIME_S = 0.020
SAMPLES = 160  # 20 ms of G.711


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line every A/B bench takes: `--rev` (the 'before' revision) and `--rounds`;
    each adds its own input options."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", default="HEAD", help="the 'before' revision (default HEAD)")
    parser.add_argument("--rounds", type=int, default=12)
    return parser


def jittered_packets(
    count: int,
    jitter_ms: float,
    loss: float,
    seed: int,
    event: Callable[[int], bytes] | None = None,
) -> list[tuple[float, RtpPacket]]:
    """(arrival, packet) in arrival order: 20 ms PCMU packets whose payload tags their sequence
    number, each with 0-`jitter_ms` of random extra transit (so some overtake others), `loss`
    of them dropped. `event(i)`, when given, returns the RFC 4733 payload (PT 101, marker set)
    that replaces packet i, or b"" to keep its audio."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        if rng.random() < loss:
            continue
        ts = (5000 + i * SAMPLES) & 0xFFFFFFFF
        seq = (1000 + i) & 0xFFFF
        digit = event(i) if event is not None else b""
        if digit:
            packet = RtpPacket(101, seq, ts, 0x1234, digit, marker=True)
        else:
            packet = RtpPacket(0, seq, ts, 0x1234, bytes([i & 0x7F]) * SAMPLES)
        events.append((1.0 + i * PTIME_S + rng.uniform(0, jitter_ms / 1000), packet))
    events.sort(key=lambda e: e[0])
    return events


def cpu_us_per_item(run: Callable[[], Any], items: int) -> float:
    """Process CPU µs per item for one call of `run`."""
    start = time.process_time_ns()
    run()
    return (time.process_time_ns() - start) / 1000 / items


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
