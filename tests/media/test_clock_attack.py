"""Robustness of the compiled slot wakeup (gateway/media/_clock.c), issue 14: reference counts
(nothing leaked or over-freed per wakeup, an ended stream freed by reference counting), members
cancelled and the clock closed from inside a callback, exceptions counted and logged once per
registration and never propagated (KeyboardInterrupt is), and 10^5 register/unregister cycles
with RSS flat. Each test runs against both implementations."""

from __future__ import annotations

import gc
import logging
import sys
import weakref
from typing import Any

import pytest

from gateway.media import pacer
from gateway.media.pacer import MediaClock
from gateway.media.stream import StreamConfig
from tests.media.jitter_impls import (
    output_implementation,
    playout_implementation,
    run_slot_implementation,
    stream_class,
    use_stream_implementation,
    watch_implementation,
)
from tests.media.test_pacer import FakeLoop

IMPLEMENTATIONS = ["python", "c"]
PERIOD = 0.020


class Sink:
    def __init__(self) -> None:
        self.packets = 0

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.packets += 1

    def close(self) -> None:
        pass


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    use_stream_implementation(monkeypatch, name)
    monkeypatch.setattr(pacer, "run_slot", run_slot_implementation(name))
    return name


def call(name: str, loop: FakeLoop, hook: Any = None) -> tuple[Any, Any, Any, Sink]:
    stream = stream_class(name)(StreamConfig(rtcp_interval_s=1e9, inactivity_timeout_s=0))
    sink = Sink()
    stream._loop = loop
    stream._rtp_transport = sink
    stream._outbound.clock = loop.time
    stream._next_rtcp = 1e12
    stream.set_remote(("192.0.2.1", 40000))
    queue = playout_implementation(name)()
    output = output_implementation(name)(queue, stream.send_frame, advance=stream.advance)
    watch = watch_implementation(name)(queue, fill_after_s=0.25, sample_rate=8000, frame_bytes=160)
    output.ride(stream, after=hook, watch=watch)
    return stream, output, watch, sink


def test_reference_counts_are_unchanged_by_wakeups(impl: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=2)  # type: ignore[arg-type]
    calls = [call(impl, loop, hook=lambda: None) for _ in range(4)]
    for stream, *_ in calls:
        stream.start(clock)
    calls[0][2].playout_nonempty = True  # the hook runs (drain) on one call
    calls[1][2].audio_t0 = loop.now  # and hold fill is checked on another
    loop.run_until(loop.now + 1.0)  # warm up (caches, interned objects)
    objects = [obj for stream, output, watch, _ in calls for obj in (stream, output, watch)]
    objects += [output.queue for _, output, _, _ in calls]
    before = [sys.getrefcount(obj) for obj in objects]
    loop.run_until(loop.now + 5.0)
    assert [sys.getrefcount(obj) for obj in objects] == before
    assert all(sink.packets > 250 for *_, sink in calls)


def test_an_ended_call_is_freed_by_reference_counting(impl: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop)  # type: ignore[arg-type]
    stream, output, watch, _ = call(impl, loop, hook=lambda: None)
    stream.start(clock)
    loop.run_until(loop.now + 0.5)
    refs = [weakref.ref(obj) for obj in (stream, output)]
    watch_refs = sys.getrefcount(watch)
    gc.disable()
    try:
        output.stop()
        stream.close("done")
        del stream, output
        assert [ref() for ref in refs] == [None, None]
        assert sys.getrefcount(watch) == watch_refs - 1  # the stream's reference went with it
    finally:
        gc.enable()


def test_a_member_cancelled_from_another_members_callback_is_not_ticked(impl: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)  # type: ignore[arg-type]
    ticks: list[str] = []
    victim, *_ = call(impl, loop, hook=lambda: ticks.append("victim hook"))

    def killer_hook() -> None:
        ticks.append("killer hook")
        victim.close("cancelled by another call")

    killer, *_ = call(impl, loop, hook=killer_hook)
    killer.tick_watch.always = True
    victim.tick_watch.always = True
    killer.start(clock)
    victim.start(clock)
    loop.run_until(loop.now + 0.1)
    assert ticks[0] == "killer hook" and "victim hook" not in ticks
    assert clock.registrations == 1 and clock.stats.tick_errors == 0


def test_the_clock_closed_from_a_callback_stops_every_member(impl: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)  # type: ignore[arg-type]
    hooks: list[int] = []

    def closer() -> None:
        hooks.append(1)
        clock.close()

    first, *_ = call(impl, loop, hook=closer)
    second, _, _, sink = call(impl, loop, hook=lambda: hooks.append(2))
    first.tick_watch.always = second.tick_watch.always = True
    first.start(clock)
    second.start(clock)
    loop.run_until(loop.now + 0.2)
    assert hooks == [1] and sink.packets == 0
    assert loop.pending == 0 and clock.registrations == 0


def test_exceptions_are_counted_logged_once_and_not_propagated(
    impl: str, caplog: pytest.LogCaptureFixture
) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)  # type: ignore[arg-type]

    def broken_hook() -> None:
        raise RuntimeError("session bug")

    stream, _, watch, sink = call(impl, loop, hook=broken_hook)
    watch.always = True
    other, _, _, other_sink = call(impl, loop)
    stream.start(clock)
    other.start(clock)
    with caplog.at_level(logging.ERROR, logger="gateway.media.pacer"):
        loop.run_until(loop.now + 0.2 - 1e-9)
    assert clock.stats.tick_errors == 10
    failures = [r for r in caplog.records if "media clock tick failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "session bug" in caplog.text
    assert sink.packets == 10 and other_sink.packets == 10  # the frame went out, others too


def test_keyboard_interrupt_propagates_and_the_slot_stays_armed(impl: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)  # type: ignore[arg-type]
    raised = [False]

    def hook() -> None:
        if not raised[0]:
            raised[0] = True
            raise KeyboardInterrupt

    stream, _, watch, sink = call(impl, loop, hook=hook)
    watch.always = True
    stream.start(clock)
    with pytest.raises(KeyboardInterrupt):
        loop.run_until(loop.now + 0.1)
    loop.run_until(loop.now + 0.1)
    assert sink.packets >= 5 and clock.stats.tick_errors == 0


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4


def test_100k_register_unregister_cycles_keep_rss_flat(impl: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=4)  # type: ignore[arg-type]
    stream, *_ = call(impl, loop, hook=lambda: None)
    resident = call(impl, loop)[0]
    resident.start(clock)

    def cycles(n: int) -> None:
        for i in range(n):
            reg = clock.register(stream._on_clock)
            if i % 10 == 0:
                loop.run_until(loop.now + PERIOD / 4)  # some wakeups run with it registered
            reg.cancel()
            loop.calls_at.clear()  # the fake loop's own record of timers, not the clock's

    cycles(10_000)  # warm up: allocator pools, caches
    gc.collect()
    before = _rss_kib()
    cycles(100_000)
    gc.collect()
    growth = _rss_kib() - before
    assert growth < 1024, f"RSS grew {growth} KiB over 10^5 register/unregister cycles"
    assert clock.registrations == 1


def test_the_compiled_wakeup_runs_no_python_frame_per_call_in_the_common_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of issue 14's compiled wakeup: with every piece compiled and nothing for
    Python to do (no frames released, no DTMF open, no inactivity, RTCP not due, the hook's
    watch quiet), the Python frames of a slot wakeup do not grow with its members."""
    use_stream_implementation(monkeypatch, "c")
    monkeypatch.setattr(pacer, "run_slot", run_slot_implementation("c"))
    import time
    import types

    def frames_per_wakeup(members: int) -> int:
        loop = FakeLoop()
        clock = MediaClock(loop, slots=1)  # type: ignore[arg-type]
        sent: dict[bytes, Any] = {}
        for _ in range(members):
            stream = stream_class("c")(StreamConfig(rtcp_interval_s=1e9, inactivity_timeout_s=0))
            stream._loop = types.SimpleNamespace(time=time.monotonic)
            stream._rtp_transport = types.SimpleNamespace(sendto=sent.__setitem__)  # C
            stream._outbound.clock = time.monotonic
            stream._next_rtcp = 1e12
            stream.set_remote(("192.0.2.1", 40000))
            queue = playout_implementation("c")()
            output = output_implementation("c")(queue, stream.send_frame, advance=stream.advance)
            watch = watch_implementation("c")(
                queue, fill_after_s=0.25, sample_rate=8000, frame_bytes=160
            )
            output.ride(stream, after=lambda: None, watch=watch)
            stream.start(clock)
        loop.run_until(loop.now + 0.1)  # warm up
        calls = 0

        def profile(frame: Any, event: str, arg: Any) -> None:
            nonlocal calls
            if event == "call":
                calls += 1

        sys.setprofile(profile)
        try:
            loop.run_until(loop.now + PERIOD)
        finally:
            sys.setprofile(None)
        assert sent
        return calls

    assert frames_per_wakeup(1) == frames_per_wakeup(20)


def test_a_digit_ended_by_its_timeout_leaves_no_python_call_per_tick(impl: str) -> None:
    """An RFC 4733 event whose end packets never come ends on the receiver's timeout; after
    that the tick must not keep calling into Python (`_dtmf_due`) until the next event: the
    stream refreshes its cached deadline after each poll."""
    import math
    import struct

    from gateway.media.rtp import RtpPacket

    base = stream_class(impl)
    polls: list[float] = []

    class Counting(base):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def _dtmf_due(self, now: float) -> None:
            polls.append(now)
            super()._dtmf_due(now)

    digits: list[Any] = []
    config = StreamConfig(telephone_event_pt=101, rtcp_interval_s=1e9, inactivity_timeout_s=0)
    stream = Counting(config, on_dtmf=digits.append)
    stream._next_rtcp = 1e12
    stream.set_remote(("192.0.2.1", 40000))
    event = RtpPacket(101, 1, 160, 0x1234, struct.pack("!BBH", 5, 10, 400), marker=True)
    stream.receive_rtp(event.encode(), ("192.0.2.1", 40000), 10.0)
    assert stream._dtmf_deadline < math.inf  # the event is open
    for tick in range(100):  # 2 s of ticks
        stream.tick(10.0 + PERIOD * (tick + 1))
    assert [d.digit for d in digits] == ["5"]
    assert stream._dtmf_deadline == math.inf
    assert len(polls) == 1  # the one poll that ended the digit
