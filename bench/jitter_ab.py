"""A/B micro-benchmark: the jitter buffer of this tree against the one of a git revision.

The per-packet pattern `gateway/media/stream.py` runs: `push(packet, arrival)`, then
`pop_ready(arrival + 1 ms)` (release on arrival), and every 20 ms the clock tick's
`pop_ready(now)`. Input: 20 ms PCMU packets with 0-`--jitter-ms` of random extra transit (so
some packets overtake others) and `--loss` of them dropped. Both implementations get the same
packets; their frames (payload, media time, concealed) and statistics must be identical, then
they are timed in alternating rounds (A B, B A, ...) of `--packets` each, so both see the
same machine load: on a shared machine compare the ratio, not the absolute figures.

    .venv/bin/python bench/jitter_ab.py                     # HEAD vs the working tree
    .venv/bin/python bench/jitter_ab.py --rev 90beef1 --rounds 20 --jitter-ms 30
    .venv/bin/python bench/jitter_ab.py --c-vs-python       # compiled vs pure, this tree

Between revisions both sides run the pure-Python class (`PyJitterBuffer` where the revision
has it): that is the code a revision of jitter.py changes. `--c-vs-python` instead times the
working tree's pure class (before) against the compiled gateway.media._jitter (after), the two
implementations `JitterBuffer` chooses between (issue 14).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ab  # noqa: E402
from gateway.media import jitter as current  # noqa: E402

PTIME_S = ab.PTIME_S


def drive(module: ModuleType, events: list[tuple[float, Any]], keep: bool) -> tuple[list, Any]:
    jb = module.JitterBuffer()
    frames: list = []
    next_tick = events[0][0] + PTIME_S
    for arrival, packet in events:
        while next_tick <= arrival:
            out = jb.pop_ready(next_tick)
            if keep:
                frames.extend(out)
            next_tick += PTIME_S
        jb.push(packet, arrival)
        out = jb.pop_ready(arrival + 0.001)
        if keep:
            frames.extend(out)
    return frames, jb.stats


def pure(module: ModuleType) -> Any:
    """The module's pure-Python class under the name `drive` uses."""
    return SimpleNamespace(JitterBuffer=getattr(module, "PyJitterBuffer", module.JitterBuffer))


def main() -> None:
    parser = ab.parser(__doc__)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--jitter-ms", type=float, default=5.0)
    parser.add_argument("--loss", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--c-vs-python",
        action="store_true",
        help="time the compiled buffer against the pure one of this tree (no --rev)",
    )
    args = parser.parse_args()
    if args.c_vs_python:
        compiled = current._bind_extension()
        if compiled is None:
            sys.exit("jitter_ab: gateway.media._jitter is not built (make install)")
        before: Any = pure(current)
        after: Any = SimpleNamespace(JitterBuffer=compiled)
        sides = "before = pure Python (PyJitterBuffer), after = compiled (gateway.media._jitter)"
    else:
        before = pure(ab.load_revision(args.rev, "gateway/media/jitter.py"))
        current._bind_extension()  # the revision's module may have bound its own Frame type
        after = pure(current)
        sides = f"before = {args.rev}, after = working tree (pure-Python classes)"
    events = ab.jittered_packets(args.packets, args.jitter_ms, args.loss, args.seed)
    frames_a, stats_a = drive(before, events, keep=True)
    frames_b, stats_b = drive(after, events, keep=True)
    same_frames = [tuple(f) for f in frames_a] == [tuple(f) for f in frames_b]
    same_stats = dataclasses.asdict(stats_a) == dataclasses.asdict(stats_b)
    if not (same_frames and same_stats):
        sys.exit(f"jitter_ab: outputs differ (frames {same_frames}, stats {same_stats})")
    times = ab.alternate(
        args.rounds,
        before,
        after,
        lambda module: ab.cpu_us_per_item(lambda: drive(module, events, False), len(events)),
    )
    load = os.getloadavg()[0]
    print(
        f"jitter_ab: {len(events)} packets x {args.rounds} rounds, jitter 0-{args.jitter_ms:g} ms, "
        f"loss {args.loss:g}; {sides}; load {load:.2f}; "
        f"identical frames ({len(frames_a)}) and statistics"
    )
    ab.print_times("µs CPU per packet (push + 2 pop_ready)", times)


if __name__ == "__main__":
    main()
