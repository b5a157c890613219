"""Benchmark: the shared media clock pacing N simulated calls on one core.

Each call is a `PlayoutQueue` fed model-like audio (800-byte chunks every 100 ms, a new item every
5 s) and a `CallOutput` whose send callback does the real per-packet work of a stream: pack a
12-byte RTP header with `struct` and `sendto` the 172-byte packet on the call's own non-blocking
UDP socket to a loopback sink (the sink is not read: the kernel drops what overflows, which
costs the sender nothing extra).

Measured per packet: deviation = time.monotonic() right after the sendto - the frame's absolute
deadline. uvloop's loop.time() is the same monotonic clock truncated to 1 ms, so the figures
include up to 1 ms of that truncation: they are an upper bound. CPU% = process time / wall time
over the measured window (after a 1 s warm-up). Each N runs in a fresh process pinned to one CPU.

    .venv/bin/python bench/pacer.py                       # 1 (noise floor), 100, 500, 1000 calls, 10 s each
    .venv/bin/python bench/pacer.py --calls 500 --seconds 5 --loop asyncio
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.media.pacer import CallOutput, MediaClock, PlayoutQueue

RTP_HEADER = struct.Struct("!BBHII")
CHUNK = bytes(range(1, 201)) * 4  # 800 bytes = 100 ms of non-silent u-law


class BenchStream:
    """The work H4's RtpStream does per packet: header + sendto."""

    __slots__ = ("addr", "dropped", "sent", "seq", "sock", "ssrc", "ts")

    def __init__(self, sock: socket.socket, addr: tuple[str, int], ssrc: int) -> None:
        self.sock = sock
        self.addr = addr
        self.ssrc = ssrc
        self.seq = ssrc & 0xFFFF
        self.ts = ssrc
        self.sent = 0
        self.dropped = 0

    def send_frame(self, payload: bytes, marker: bool) -> None:
        header = RTP_HEADER.pack(0x80, 0x80 if marker else 0, self.seq, self.ts, self.ssrc)
        try:
            self.sock.sendto(header + payload, self.addr)
            self.sent += 1
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF

    def advance(self, samples: int) -> None:
        self.ts = (self.ts + samples) & 0xFFFFFFFF


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run_calls(calls: int, seconds: float, lead: float = 0.0) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop, lead=lead)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    addr = sink.getsockname()
    deviations: list[float] = []
    in_slot: list[float] = []  # send time - time the slot's batch started: our own work
    batch = {"deadline": -1.0, "start": 0.0}
    measuring = False
    monotonic = time.monotonic
    sockets: list[socket.socket] = []
    outputs: list[CallOutput] = []
    streams: list[BenchStream] = []

    for i in range(calls):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sockets.append(sock)
        stream = BenchStream(sock, addr, 0x10000 + i)
        queue = PlayoutQueue()
        queue.enqueue("item-0", CHUNK * 3)
        out = CallOutput(queue, stream.send_frame, advance=stream.advance)
        streams.append(stream)
        outputs.append(out)

        def tick(frame: int, deadline: float, out: CallOutput = out) -> None:
            if deadline != batch["deadline"]:
                batch["deadline"] = deadline
                batch["start"] = monotonic()
            out.tick(frame, deadline)
            if measuring:
                now = monotonic()
                deviations.append(now - deadline)
                in_slot.append(now - batch["start"])

        out.start_tick = tick  # type: ignore[attr-defined]
        clock.register(tick)

    async def feed() -> None:
        # Realtime deltas arrive in bursts; 100 ms of audio per call every 100 ms keeps every
        # queue playing, with a new item every 5 s (end_of_item pads its tail).
        n = 0
        while True:
            await asyncio.sleep(0.1)
            n += 1
            item = f"item-{n // 50}"
            for out in outputs:
                out.queue.enqueue(item, CHUNK)
                if n % 50 == 49:
                    out.queue.end_of_item(item)

    feeder = asyncio.create_task(feed())
    try:
        await asyncio.sleep(1.0)  # warm-up: sockets, first frames
        measuring = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent0 = sum(s.sent for s in streams)
        await asyncio.sleep(seconds)
        measuring = False
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        sent = sum(s.sent for s in streams) - sent0
    finally:
        feeder.cancel()
        try:
            await asyncio.wait_for(feeder, timeout=1)
        except (asyncio.CancelledError, TimeoutError):
            pass
        clock.close()
        for sock in sockets:
            sock.close()
        sink.close()

    deviations.sort()
    in_slot.sort()
    return {
        "calls": calls,
        "seconds": round(wall, 2),
        "packets_per_s": round(sent / wall),
        "expected_per_s": calls * 50,
        "min_ms": round((deviations[0] if deviations else 0.0) * 1000, 3),
        "p50_ms": round(percentile(deviations, 0.50) * 1000, 3),
        "p90_ms": round(percentile(deviations, 0.90) * 1000, 3),
        "p99_ms": round(percentile(deviations, 0.99) * 1000, 3),
        "p999_ms": round(percentile(deviations, 0.999) * 1000, 3),
        "max_ms": round((deviations[-1] if deviations else 0.0) * 1000, 3),
        "in_slot_p99_ms": round(percentile(in_slot, 0.99) * 1000, 3),
        "cpu_pct": round(100 * cpu / wall, 1),
        "skipped_frames": clock.stats.skipped_frames,
        "catchup_frames": clock.stats.catchup_frames,
        "send_drops": sum(s.dropped for s in streams),
    }


def run_one(
    calls: int, seconds: float, loop_kind: str, cpu: int | None, gc_mode: str, lead: float = 0.0
) -> dict[str, float]:
    if gc_mode == "off":
        gc.disable()
    elif gc_mode == "freeze":
        gc.freeze()
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(run_calls(calls, seconds, lead))
    return asyncio.run(run_calls(calls, seconds, lead))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument(
        "--cpu", type=int, default=0, help="CPU to pin each run to (-1: no pinning)"
    )
    parser.add_argument("--gc", choices=["on", "freeze", "off"], default="on")
    parser.add_argument(
        "--lead-ms",
        type=float,
        default=0.0,
        help="arm slot timers this early (MediaClock lead); frames may then go out early",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpu = None if args.cpu < 0 else args.cpu

    if args.one:
        lead = args.lead_ms / 1000
        print(json.dumps(run_one(args.calls[0], args.seconds, args.loop, cpu, args.gc, lead)))
        return

    print(
        f"loop={args.loop} seconds={args.seconds} cpu={'any' if cpu is None else cpu} "
        f"gc={args.gc} lead_ms={args.lead_ms}"
    )
    print(
        "| calls | pkt/s (expected) | min ms | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
        "| CPU % | skipped | catch-up | in-slot p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.calls:
        cmd = [sys.executable, __file__, "--one", "--calls", str(n), "--seconds", str(args.seconds)]
        cmd += ["--loop", args.loop, "--cpu", str(args.cpu), "--gc", args.gc]
        cmd += ["--lead-ms", str(args.lead_ms)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60)
        if proc.returncode != 0:
            print(f"| {n} | failed: {proc.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"| {r['calls']} | {r['packets_per_s']} ({r['expected_per_s']}) | {r['min_ms']} | "
            f"{r['p50_ms']} | "
            f"{r['p90_ms']} | {r['p99_ms']} | {r['p999_ms']} | {r['max_ms']} | {r['cpu_pct']} | "
            f"{r['skipped_frames']} | "
            f"{r['catchup_frames']} | {r['in_slot_p99_ms']} |"
        )


if __name__ == "__main__":
    main()
