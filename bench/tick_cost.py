"""Per-call CPU of the outbound 20 ms tick, at scale: `--calls` calls ticked round-robin.

What the shared media clock runs per call per 20 ms (gateway/media/pacer.py): the stream's
clock callback (`RtpStream._on_clock`: inbound release, RFC 4733 end timeouts, inactivity,
RTCP), the call's output tick (`CallOutput.tick`: a playout frame, or DTMF), the RTP header and
the send, then the session's per-tick hook. Every call has its own RtpStream, PlayoutQueue and
CallOutput wired as `MediaLeg.start_output` wires them; the transport's `sendto` only counts
(the syscall is not what this measures: `bench/io_floor.py` does). Half the calls are "talking"
(the bot's audio arrives in 100 ms deltas, 2 s replies with 1 s pauses), half are silent, the
phases staggered.

Ticking many calls round-robin, not one call in a hot loop, keeps the per-call objects out of
the CPU's caches as in the running gateway (at 100 calls the hot-loop figure is the lower).

`--clock` times the whole slot wakeup instead: every stream registered on one MediaClock (a
fake loop, 20 slots as in the product), each 20 ms every slot's timer callback is run
(`MediaClock._fire`: lateness statistics, the member loop, each member's tick). That is what
issue 14's compiled slot wakeup (gateway/media/_clock.c) changes; without `--clock` the bench
calls each stream's `_on_clock` from a Python loop, as before. Where the tree has a TickWatch
(issue 14), the hook rides behind one, as gateway/call/call.py wires the session's.

    .venv/bin/python bench/tick_cost.py [--calls 100] [--seconds 20] [--rounds 5] [--clock]
    .venv/bin/python bench/tick_cost.py --root /path/to/other/checkout   # the same, that tree

Prints the median over rounds of CPU µs per call per tick (time.process_time), and the
frames each call sent (which must not differ between two trees for the same arguments).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class _Transport:
    """A datagram transport that counts what it is given."""

    __slots__ = ("bytes", "packets")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.packets += 1
        self.bytes += len(data)

    def close(self) -> None:
        pass


class _Handle:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Any, args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    """time(), and call_at() for the clock: the armed timers, run by `fire_all`."""

    __slots__ = ("now", "timers")

    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> _Handle:
        handle = _Handle(callback, args)
        self.timers.append(handle)
        return handle

    def fire_all(self) -> None:
        """Run every armed slot timer once (each re-arms itself for the next frame)."""
        timers, self.timers = self.timers, []
        for handle in timers:
            if not handle.cancelled:
                handle.callback(*handle.args)


def _calls(n: int, loop: _Loop) -> list[tuple[Any, Any, Any, _Transport]]:
    from gateway.media import pacer
    from gateway.media.pacer import CallOutput
    from gateway.media.playout import PlayoutQueue
    from gateway.media.stream import RtpStream, StreamConfig

    calls = []
    for _ in range(n):
        stream = RtpStream(StreamConfig(telephone_event_pt=101))
        transport = _Transport()
        stream._loop = loop  # type: ignore[assignment]
        stream._rtp_transport = transport  # type: ignore[assignment]
        outbound = getattr(stream, "_outbound", None)  # trees from issue 14's outbound path on
        if outbound is not None:
            outbound.clock = loop.time  # what RtpStream.open sets (no socket here)
        stream._next_rtcp = loop.now + 5.0
        stream.set_remote(("127.0.0.1", 40000))
        queue = PlayoutQueue()
        output = CallOutput(
            queue,
            stream.send_frame,
            send_event=stream.send_event,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        watch_type = getattr(pacer, "TickWatch", None)  # trees from issue 14's clock on
        if watch_type is None:
            hook = _Hook(queue, None)
            output.ride(stream, after=hook)
        else:
            watch = watch_type(queue, fill_after_s=0.25, sample_rate=8000, frame_bytes=160)
            hook = _Hook(queue, watch)
            output.ride(stream, after=hook, watch=watch)
        calls.append((stream, queue, hook, transport))
    return calls


class _Hook:
    """The session's per-tick hook, reduced to what it reads each tick (gateway/call/session.py
    `on_output_tick`: drained playout; no caller audio here, so it returns there)."""

    __slots__ = ("drained", "queue", "state")

    def __init__(self, queue: Any, watch: Any) -> None:
        self.queue = queue
        # Where the session keeps `playout_nonempty`: its TickWatch (issue 14), or itself.
        self.state = watch if watch is not None else _Flag()
        self.drained = 0

    def __call__(self) -> None:
        state = self.state
        if state.playout_nonempty and self.queue.queued_bytes == 0:
            state.playout_nonempty = False
            self.drained += 1


class _Flag:
    __slots__ = ("playout_nonempty",)

    def __init__(self) -> None:
        self.playout_nonempty = False


DELTA = bytes(range(256)) * 3 + bytes(32)  # 800 bytes: 100 ms of G.711
REPLY_TICKS = 100  # 2 s
PAUSE_TICKS = 50  # 1 s


def run(calls: int, ticks: int, via_clock: bool = False) -> tuple[float, int, int]:
    loop = _Loop()
    built = _calls(calls, loop)
    if via_clock:
        from gateway.media.pacer import MediaClock

        media_clock = MediaClock(loop)  # type: ignore[arg-type]
        for stream, _q, _h, _t in built:
            stream.start(media_clock)
    cycle = REPLY_TICKS + PAUSE_TICKS
    sent = 0
    cpu = 0.0
    clock = time.process_time
    for tick in range(ticks):
        # The bot's deltas (outside the timed part: that is the events path, not the tick).
        for i, (_stream, queue, hook, _t) in enumerate(built):
            if i % 2:
                continue  # a silent call
            phase = (tick + i * 7) % cycle
            if phase < REPLY_TICKS and phase % 5 == 0:
                item = f"item_{(tick + i * 7) // cycle}"
                queue.enqueue(item, DELTA)
                hook.state.playout_nonempty = True
                if phase == REPLY_TICKS - 5:
                    queue.end_of_item(item)
        loop.now += 0.020
        deadline = loop.now
        start = clock()
        if via_clock:
            loop.fire_all()
        else:
            for stream, _q, _h, _t in built:
                stream._on_clock(tick, deadline)
        cpu += clock() - start
    for _s, _q, _h, transport in built:
        sent += transport.packets
    bytes_sent = sum(t.bytes for _s, _q, _h, t in built)
    return cpu / (calls * ticks) * 1e6, sent, bytes_sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="media time per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to import")
    parser.add_argument(
        "--clock", action="store_true", help="time the whole slot wakeup (MediaClock._fire)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    import gateway.media.jitter as jitter

    try:
        from gateway.media import outbound

        outbound_impl = outbound.IMPLEMENTATION
    except ImportError:  # a tree from before the outbound path (stream.py sends itself)
        outbound_impl = "python (in stream.py)"

    try:
        from gateway.media import pacer, playout

        tick_impl = f"playout={playout.IMPLEMENTATION} tick={pacer.IMPLEMENTATION}"
    except AttributeError:  # a tree from before the compiled tick
        tick_impl = "playout=python tick=python"

    ticks = int(args.seconds / 0.020)
    results = [run(args.calls, ticks, args.clock) for _ in range(args.rounds)]
    figures = [r[0] for r in results]
    print(
        f"root={args.root.resolve()} jitter={jitter.IMPLEMENTATION} "
        f"outbound={outbound_impl} {tick_impl} calls={args.calls} "
        f"ticks={ticks} rounds={args.rounds} clock={'slot wakeup' if args.clock else 'per stream'} "
        f"python={sys.version.split()[0]}"
    )
    print(
        f"µs CPU per call per tick: median {statistics.median(figures):.2f} "
        f"(min {min(figures):.2f}, max {max(figures):.2f}); "
        f"packets sent {results[0][1]}, bytes {results[0][2]}"
    )


if __name__ == "__main__":
    main()
