"""The shared media clock (fake loop: absolute deadlines, no drift, slots, late-tick policy) and
the per-call tick (CallOutput)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import struct
from collections.abc import Callable
from typing import Any

import pytest

from gateway.media.dtmf import Rfc4733Sender
from gateway.media.pacer import (
    CallOutput,
    IdlePolicy,
    MediaClock,
    PlayoutQueue,
    shared_clock,
)

PERIOD = 0.020


class FakeHandle:
    def __init__(self, loop: FakeLoop, when: float, cb: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self.cb = cb
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """time() + call_at(); `lateness(when)` says how late each timer actually runs."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, FakeHandle]] = []
        self._seq = itertools.count()
        self.lateness: Callable[[float], float] = lambda when: 0.0
        self.calls_at: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, cb: Callable[..., Any], *args: Any) -> FakeHandle:
        handle = FakeHandle(self, when, cb, args)
        self.calls_at.append(when)
        heapq.heappush(self._heap, (when, next(self._seq), handle))
        return handle

    def run_until(self, t: float, max_steps: int = 1_000_000) -> None:
        for _ in range(max_steps):
            if not self._heap or self._heap[0][0] > t:
                break
            when, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self.now = max(self.now, when + self.lateness(when))
            handle.cb(*handle.args)
        else:
            raise AssertionError("fake loop did not settle")
        self.now = max(self.now, t)

    def stall(self, seconds: float) -> None:
        """The loop is blocked: time passes, no timer runs."""
        self.now += seconds

    @property
    def pending(self) -> int:
        return sum(1 for _, _, h in self._heap if not h.cancelled)


class Recorder:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.frames: list[int] = []
        self.deadlines: list[float] = []
        self.run_at: list[float] = []

    def __call__(self, frame: int, deadline: float) -> None:
        self.frames.append(frame)
        self.deadlines.append(deadline)
        self.run_at.append(self.loop.now)


def test_deadlines_are_absolute_and_do_not_drift_when_every_wakeup_is_late() -> None:
    loop = FakeLoop()
    # Every wakeup runs 0.7 ms late, like relative timers rounded up to the next millisecond.
    loop.lateness = lambda when: 0.0007
    clock = MediaClock(loop, slots=1)
    rec = Recorder(loop)
    clock.register(rec)
    loop.run_until(clock.epoch + 60.0)  # one minute
    assert len(rec.frames) in (3000, 3001)
    assert rec.frames == list(range(rec.frames[0], rec.frames[0] + len(rec.frames)))
    for k, (frame, deadline) in enumerate(zip(rec.frames, rec.deadlines, strict=True)):
        assert deadline == pytest.approx(clock.epoch + frame * PERIOD, abs=1e-9)
        if k % 500 == 0:
            # Lateness stays 0.7 ms after a minute: it never accumulates.
            assert rec.run_at[k] - deadline == pytest.approx(0.0007, abs=1e-9)
    # Every timer was armed on the absolute grid.
    assert all(
        round((w - clock.epoch) / PERIOD, 6) == round((w - clock.epoch) / PERIOD)
        for w in loop.calls_at
    )
    assert clock.stats.skipped_frames == 0
    assert clock.stats.max_lateness == pytest.approx(0.0007, abs=1e-9)


def test_calls_are_spread_over_staggered_slots() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=20)
    recs = [Recorder(loop) for _ in range(40)]
    regs = [clock.register(r) for r in recs]
    assert sorted(r.slot for r in regs) == sorted(list(range(20)) * 2)
    loop.run_until(clock.epoch + 0.1)
    offsets = {round((r.run_at[0] - clock.epoch) % PERIOD, 6) for r in recs}
    assert offsets == {round(i * 0.001, 6) for i in range(20)}  # 1 ms apart
    # One timer per slot, not per call.
    assert loop.pending == 20


def test_unregister_frees_slot_and_stops_ticks() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=4)
    a, b = Recorder(loop), Recorder(loop)
    ra = clock.register(a)
    clock.register(b)
    loop.run_until(clock.epoch + 0.1)
    n = len(a.frames)
    ra.cancel()
    ra.cancel()  # idempotent
    loop.run_until(clock.epoch + 0.2)
    assert len(a.frames) == n
    assert len(b.frames) > n
    assert clock.registrations == 1
    # The freed slot is reused first.
    c = clock.register(Recorder(loop))
    assert c.slot == ra.slot
    clock.close()
    assert loop.pending == 0


def test_late_wakeup_catches_up_within_the_burst_bound_and_skips_the_rest() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1, max_catchup=3)
    rec = Recorder(loop)
    clock.register(rec)
    loop.run_until(clock.epoch + 0.1)
    last = rec.frames[-1]
    # Short stall (45 ms): frames due at +20, +40 ms are both run at once (2 <= cap).
    loop.stall(0.045)
    loop.run_until(loop.now)
    assert rec.frames[-2:] == [last + 1, last + 2]
    assert clock.stats.skipped_frames == 0
    assert clock.stats.catchup_frames == 1
    # Long stall (205 ms): ~10 frames due; only the newest 3 are sent, the rest skipped.
    last = rec.frames[-1]
    before = len(rec.frames)
    t_stall = loop.now
    loop.stall(0.205)
    loop.run_until(loop.now)
    burst = rec.frames[before:]
    assert len(burst) == 3
    assert burst == [burst[0], burst[0] + 1, burst[0] + 2]
    assert burst[0] > last + 1  # a gap the call can see
    assert clock.stats.skipped_frames == burst[0] - last - 1
    # After catching up, ticks are back on the grid: one per period, on absolute deadlines.
    n = len(rec.frames)
    loop.run_until(t_stall + 1.0)
    new = rec.frames[n:]
    assert new == list(range(burst[-1] + 1, burst[-1] + 1 + len(new)))
    assert all(
        rec.run_at[i] == pytest.approx(rec.deadlines[i], abs=1e-9)
        for i in range(n, len(rec.frames))
    )
    assert clock.stats.quantile(1.0) >= 0.1  # the stall shows in the lateness histogram


def test_burst_bound_holds_for_every_call_in_a_slot() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=2, max_catchup=2)
    recs = [Recorder(loop) for _ in range(6)]
    for r in recs:
        clock.register(r)
    loop.run_until(clock.epoch + 0.05)
    counts = [len(r.frames) for r in recs]
    loop.stall(0.5)
    loop.run_until(loop.now)
    for r, c in zip(recs, counts, strict=True):
        assert len(r.frames) - c <= 2


def test_a_failing_tick_does_not_stop_other_calls(caplog: pytest.LogCaptureFixture) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)

    def broken(frame: int, deadline: float) -> None:
        raise RuntimeError("bug in one call")

    rec = Recorder(loop)
    clock.register(broken)
    clock.register(rec)
    loop.run_until(clock.epoch + 0.2)
    assert len(rec.frames) >= 10
    assert clock.stats.tick_errors == len(rec.frames)
    assert sum("media clock tick failed" in r.message for r in caplog.records) == 1


def test_register_late_joins_the_grid() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)
    loop.run_until(clock.epoch + 0.0573)
    rec = Recorder(loop)
    clock.register(rec)
    loop.run_until(clock.epoch + 0.2)
    assert rec.deadlines[0] == pytest.approx(clock.epoch + 0.06)
    assert rec.frames[0] == 3


def test_bad_clock_settings_are_rejected() -> None:
    loop = FakeLoop()
    with pytest.raises(ValueError, match="max_catchup"):
        MediaClock(loop, max_catchup=0)
    with pytest.raises(ValueError, match="slots"):
        MediaClock(loop, slots=0)


async def test_shared_clock_is_one_per_loop_and_ticks_on_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    clock = shared_clock()
    assert shared_clock(loop) is clock
    done = asyncio.Event()
    frames: list[int] = []

    def tick(frame: int, deadline: float) -> None:
        frames.append(frame)
        if len(frames) == 3:
            done.set()

    reg = clock.register(tick)
    try:
        await asyncio.wait_for(done.wait(), timeout=5)
    finally:
        reg.cancel()
        clock.close()
    assert frames == [frames[0], frames[0] + 1, frames[0] + 2]


# -- CallOutput -------------------------------------------------------------------------------


class FakeStream:
    """What H4's RtpStream does with the calls: RTP timestamps advance 160 per tick."""

    def __init__(self) -> None:
        self.ts = 1000
        self.packets: list[tuple[str, int, bool, bytes]] = []  # kind, rtp ts, marker, payload

    def send_frame(self, payload: bytes, marker: bool) -> None:
        self.packets.append(("audio", self.ts, marker, payload))
        self.ts += 160

    def send_event(self, payload: bytes, marker: bool, offset: int) -> None:
        self.packets.append(("event", self.ts - offset, marker, payload))
        self.ts += 160

    def send_cn(self, payload: bytes) -> None:
        self.packets.append(("cn", self.ts, False, payload))
        self.ts += 160

    def advance(self, samples: int) -> None:
        self.ts += samples


def make_output(
    policy: IdlePolicy = IdlePolicy.SILENCE, **kw: Any
) -> tuple[CallOutput, FakeStream]:
    stream = FakeStream()
    out = CallOutput(
        PlayoutQueue(idle_policy=policy),
        stream.send_frame,
        send_event=stream.send_event,
        send_comfort_noise=stream.send_cn,
        advance=stream.advance,
        **kw,
    )
    return out, stream


def test_call_output_keeps_timestamps_continuous_across_audio_silence_and_gaps() -> None:
    out, stream = make_output()
    out.queue.enqueue("a", b"\x01" * 480)
    for f in range(0, 5):
        out.tick(f, 0.0)
    out.tick(8, 0.0)  # the clock skipped frames 5..7
    out.queue.enqueue("b", b"\x02" * 160)
    out.tick(9, 0.0)
    ts = [p[1] for p in stream.packets]
    # 3 audio + 2 silence frames, then 3 skipped frames (480 samples) before frame 8.
    assert ts == [1000, 1160, 1320, 1480, 1640, 2280, 2440]
    kinds = [p[0] for p in stream.packets]
    assert kinds == ["audio"] * 7
    markers = [p[2] for p in stream.packets]
    # Marker: first audio, then the first packet after the skip (silence), then b's talkspurt.
    assert markers == [True, False, False, False, False, True, True]
    assert out.stats.gap_frames == 3


def test_call_output_comfort_noise_and_nothing_policies() -> None:
    out, stream = make_output(IdlePolicy.COMFORT_NOISE)
    for f in range(12):
        out.tick(f, 0.0)
    cn = [p for p in stream.packets if p[0] == "cn"]
    assert len(cn) == 2 and cn[1][1] - cn[0][1] == 10 * 160
    out2, stream2 = make_output(IdlePolicy.NOTHING)
    for f in range(5):
        out2.tick(f, 0.0)
    assert stream2.packets == [] and stream2.ts == 1000 + 5 * 160


def test_comfort_noise_without_cn_callback_falls_back_to_silence() -> None:
    stream = FakeStream()
    out = CallOutput(PlayoutQueue(idle_policy=IdlePolicy.COMFORT_NOISE), stream.send_frame)
    out.tick(0, 0.0)
    assert stream.packets[0][0] == "audio" and stream.packets[0][3] == b"\xff" * 160


def test_call_output_sends_dtmf_in_place_of_audio_and_resumes_audio_after() -> None:
    out, stream = make_output(dtmf_sender=Rfc4733Sender(duration_ms=60, gap_ms=40))
    out.queue.enqueue("a", bytes(range(1, 161)) * 4)
    out.tick(0, 0.0)
    out.send_digits("5")
    for f in range(1, 12):
        out.tick(f, 0.0)
    kinds = [p[0] for p in stream.packets]
    # 1 audio, 3 updates/ends + 2 more ends, 2 gap silence frames, then audio again.
    assert kinds == ["audio"] + ["event"] * 5 + ["audio"] * 6
    events = stream.packets[1:6]
    assert {p[1] for p in events} == {1160}  # one event timestamp: the event start
    assert [p[2] for p in events] == [True, False, False, False, False]
    durations = [struct.unpack("!BBH", p[3])[2] for p in events]
    assert durations == [160, 320, 480, 480, 480]
    ends = [bool(p[3][1] & 0x80) for p in events]
    assert ends == [False, False, True, True, True]
    gap = stream.packets[6:8]
    assert all(p[3] == b"\xff" * 160 for p in gap)
    resumed = stream.packets[8]
    assert resumed[3] == bytes(range(1, 161)) and resumed[2] is True
    # The held audio is not lost: 3 frames remain after the first.
    assert out.queue.played_bytes("a") == 4 * 160
    assert [p[1] for p in stream.packets] == [1000 + 160 * i for i in range(12)][:1] + [
        1160
    ] * 5 + [1000 + 160 * i for i in range(6, 12)]


def test_send_digits_refused_without_telephone_event() -> None:
    stream = FakeStream()
    out = CallOutput(PlayoutQueue(), stream.send_frame)
    with pytest.raises(ValueError, match="telephone-event"):
        out.send_digits("1")
    out2, _ = make_output()
    with pytest.raises(ValueError, match="not a DTMF digit: 'x'"):
        out2.send_digits("1x")


def test_call_output_on_the_clock() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)
    out, stream = make_output()
    out.queue.enqueue("a", b"\x01" * 1600)
    out.start(clock)
    loop.run_until(clock.epoch + 1.0)
    out.stop()
    n = len(stream.packets)
    loop.run_until(clock.epoch + 2.0)
    assert len(stream.packets) == n
    assert 49 <= n <= 51
    assert out.queue.played_bytes("a") == 1600


def test_ticks_may_register_and_cancel_calls() -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)
    late = Recorder(loop)
    regs: dict[str, object] = {}

    def first(frame: int, deadline: float) -> None:
        if "late" not in regs:
            regs["late"] = clock.register(late)  # joins the same slot from inside a tick
        elif len(late.frames) >= 3:
            regs["self"].cancel()  # type: ignore[attr-defined]
            regs["late"].cancel()  # type: ignore[attr-defined]

    regs["self"] = clock.register(first)
    loop.run_until(clock.epoch + 1.0)
    assert late.frames == [late.frames[0], late.frames[0] + 1, late.frames[0] + 2]
    assert clock.registrations == 0
    assert loop.pending == 0
