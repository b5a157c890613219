"""A/B micro-benchmark: `RtpStream`'s inbound path of this tree against the one of a git revision.

The per-packet pattern of one call: `receive_rtp(datagram, addr, arrival)` (decode, source
check, routing, RFC 3550 statistics, rate bound, jitter buffer, release on arrival to
`on_audio`) and every 20 ms the clock's `tick(now)`. Input: 20 ms PCMU packets with
0-`--jitter-ms` of random extra transit, `--loss` of them dropped, and every `--dtmf-every`th
packet an RFC 4733 event packet in the same sequence space. Both revisions of
gateway/media/stream.py (each with this tree's jitter buffer, statistics and latch) get the same
datagrams; the frames they hand on, the digits and `snapshot()` must be identical, then they are
timed in alternating rounds (A B, B A, ...), so both see the same machine load: on a shared
machine compare the ratio, not the absolute figures.

    .venv/bin/python bench/stream_ab.py                     # HEAD vs the working tree
    .venv/bin/python bench/stream_ab.py --rev 1f2d1ce --rounds 20 --jitter-ms 30
"""

from __future__ import annotations

import dataclasses
import os
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ab  # noqa: E402
from gateway.media import stream as current  # noqa: E402

PTIME_S = ab.PTIME_S
PEER = ("127.0.0.1", 40000)
TE_PT = 101  # the payload type ab.jittered_packets gives event packets
_EVENT = struct.Struct("!BBH")  # RFC 4733 2.3: event, E|R|volume, duration


def make_input(
    count: int, jitter_ms: float, loss: float, dtmf_every: int, seed: int
) -> list[tuple[float, bytes]]:
    """(arrival, datagram) in arrival order; every `dtmf_every`th packet an RFC 4733 end
    packet of digit 5 in the same sequence space."""

    def event(i: int) -> bytes:
        if dtmf_every and i % dtmf_every == dtmf_every - 1:
            return _EVENT.pack(5, 0x80 | 10, ab.SAMPLES)  # digit 5, end bit set
        return b""

    packets = ab.jittered_packets(count, jitter_ms, loss, seed, event)
    return [(arrival, packet.encode()) for arrival, packet in packets]


def drive(module: ModuleType, events: list[tuple[float, bytes]], keep: bool) -> tuple[list, Any]:
    frames: list = []
    digits: list = []
    on_audio = frames.extend if keep else (lambda _frames: None)
    stream = module.RtpStream(
        module.StreamConfig(telephone_event_pt=TE_PT, inactivity_timeout_s=0),
        on_audio=on_audio,
        on_dtmf=digits.append,
    )
    stream.set_remote(PEER)
    receive = stream.receive_rtp
    tick = stream.tick
    next_tick = events[0][0] + PTIME_S
    for arrival, datagram in events:
        while next_tick <= arrival:
            tick(next_tick)
            next_tick += PTIME_S
        receive(datagram, PEER, arrival)
    return [tuple(f) for f in frames] + [(d.digit,) for d in digits], stream.snapshot()


def main() -> None:
    parser = ab.parser(__doc__)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--jitter-ms", type=float, default=5.0)
    parser.add_argument("--loss", type=float, default=0.001)
    parser.add_argument("--dtmf-every", type=int, default=500, help="0: no event packets")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    before = ab.load_revision(args.rev, "gateway/media/stream.py")
    events = make_input(args.packets, args.jitter_ms, args.loss, args.dtmf_every, args.seed)
    out_a, stats_a = drive(before, events, keep=True)
    out_b, stats_b = drive(current, events, keep=True)
    same_out = out_a == out_b
    same_stats = dataclasses.asdict(stats_a) == dataclasses.asdict(stats_b)
    if not (same_out and same_stats):
        sys.exit(f"stream_ab: outputs differ (frames/digits {same_out}, stats {same_stats})")
    times = ab.alternate(
        args.rounds,
        before,
        current,
        lambda module: ab.cpu_us_per_item(lambda: drive(module, events, False), len(events)),
    )
    load = os.getloadavg()[0]
    print(
        f"stream_ab: {len(events)} datagrams x {args.rounds} rounds, jitter 0-{args.jitter_ms:g} ms, "
        f"loss {args.loss:g}, an event packet every {args.dtmf_every}; before = {args.rev}, "
        f"after = working tree; load {load:.2f}; identical frames and digits ({len(out_a)}) "
        "and statistics"
    )
    ab.print_times("µs CPU per datagram (receive_rtp + ticks)", times)


if __name__ == "__main__":
    main()
