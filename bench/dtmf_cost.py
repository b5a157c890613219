"""Benchmark: CPU cost of the DTMF pieces per packet / per 20 ms frame.

    .venv/bin/python bench/dtmf_cost.py

In-band detection is off by default; this shows what enabling it costs per call (one 160-sample
block every 20 ms), fed one frame at a time as the stream does, and in 1 s batches.
"""

from __future__ import annotations

import struct
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.media.dtmf import InbandDtmfDetector, Rfc4733Receiver, Rfc4733Sender


def per_call_us(stmt, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6


def main() -> None:
    rx = Rfc4733Receiver(101)
    payload = struct.pack("!BBH", 5, 10, 800)
    state = {"ts": 0, "seq": 0}

    def feed_update() -> None:
        state["seq"] += 1
        rx.feed(payload, 1000, False, state["seq"], 1, 0.0)

    sender = Rfc4733Sender(duration_ms=100, gap_ms=0)

    def send_tick() -> None:
        if not sender.active:
            sender.queue_digits("1234567890")
        sender.next_packet()

    rng = np.random.default_rng(0)
    frame = (rng.normal(0, 3000, 160)).astype("<i2").tobytes()
    second = (rng.normal(0, 3000, 8000)).astype("<i2").tobytes()
    det = InbandDtmfDetector()
    det_batch = InbandDtmfDetector()

    rows = [
        ("RFC 4733 receive, one update packet", per_call_us(feed_update, 20000)),
        ("RFC 4733 send, one tick", per_call_us(send_tick, 20000)),
        ("in-band detector, one 20 ms frame", per_call_us(lambda: det.feed(frame), 2000)),
        (
            "in-band detector, 1 s batch / 50 frames",
            per_call_us(lambda: det_batch.feed(second), 200) / 50,
        ),
    ]
    print("| operation | µs |")
    print("|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")
    inband = rows[2][1]
    print(f"\nin-band per call: {inband * 50 / 1e4:.2f} % of a core (50 frames/s)")


if __name__ == "__main__":
    main()
