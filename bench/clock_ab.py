"""A/B micro-benchmark: `MediaClock._fire` of this tree against the one of a git revision.

The shared 20 ms media clock (gateway/media/pacer.py) wakes each of its slots once per period and
runs the tick of every call registered in it. This drives HEAD's and the tree's `MediaClock`
with a fake loop (a virtual clock and a timer list, no sleeping) and `--calls` registrations
whose tick only records (frame, deadline); wakeups come 0-`--late-ms` late at random, so some
run catch-up frames. Both get the same wakeups; the ticks they run and their statistics must be
identical, then they are timed in alternating rounds (A B, B A, ...), so both see the same
machine load: on a shared machine compare the ratio, not the absolute figures.

    .venv/bin/python bench/clock_ab.py                      # HEAD vs the working tree
    .venv/bin/python bench/clock_ab.py --calls 500 --late-ms 30
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import os
import random
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ab  # noqa: E402
from gateway.media import pacer as current  # noqa: E402


class _Handle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """`time()` and `call_at()` on a virtual clock; `run(until)` fires due timers in order,
    each `late` seconds after its time (drawn from a seeded generator)."""

    def __init__(self, late_s: float, seed: int) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, int, Any, tuple, _Handle]] = []
        self._seq = 0
        self._rng = random.Random(seed)
        self._late_s = late_s

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> _Handle:
        handle = _Handle()
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, callback, args, handle))
        return handle

    def run(self, until: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= until:
            when, _, callback, args, handle = heapq.heappop(timers)
            if handle.cancelled:
                continue
            late = self._rng.random() * self._late_s if self._late_s else 0.0
            self.now = max(self.now, when + late)
            callback(*args)


def drive(module: ModuleType, args: argparse.Namespace, keep: bool) -> tuple[list, dict]:
    loop = FakeLoop(args.late_ms / 1000, args.seed)
    clock = module.MediaClock(loop)
    seen: list = []
    record = seen.append if keep else None
    for call in range(args.calls):
        if record is not None:

            def tick(frame: int, deadline: float, call: int = call) -> None:
                seen.append((call, frame, deadline))

        else:

            def tick(frame: int, deadline: float) -> None:
                pass

        clock.register(tick)
    loop.run(loop.now + args.seconds)
    clock.close()
    return seen, dataclasses.asdict(clock.stats)


def time_once(module: ModuleType, args: argparse.Namespace) -> float:
    """Process CPU µs per call tick for one pass."""
    start = time.process_time_ns()
    _, stats = drive(module, args, keep=False)
    return (time.process_time_ns() - start) / 1000 / max(stats["ticks"], 1)


def main() -> None:
    parser = ab.parser(__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="virtual seconds per pass")
    parser.add_argument("--late-ms", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    before = ab.load_revision(args.rev, "gateway/media/pacer.py")
    ticks_a, stats_a = drive(before, args, True)
    ticks_b, stats_b = drive(current, args, True)
    if ticks_a != ticks_b or stats_a != stats_b:
        sys.exit(f"clock_ab: ticks {ticks_a == ticks_b}, statistics {stats_a == stats_b}")
    times = ab.alternate(args.rounds, before, current, lambda module: time_once(module, args))
    load = os.getloadavg()[0]
    print(
        f"clock_ab: {args.calls} calls x {args.seconds:g} virtual s x {args.rounds} rounds, "
        f"wakeups 0-{args.late_ms:g} ms late; before = {args.rev}, after = working tree; "
        f"load {load:.2f}; identical ticks ({len(ticks_a)}) and statistics"
    )
    ab.print_times("µs CPU per call tick (clock share, empty tick)", times)


if __name__ == "__main__":
    main()
