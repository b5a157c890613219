"""CallOutput.ride: a call's outbound tick and the session hook run inside the RtpStream's own
clock callback (one clock registration per call), in the order release -> send -> hook."""

from __future__ import annotations

from typing import Any

from gateway.media.pacer import CallOutput, MediaClock, PlayoutQueue
from gateway.media.rtp import encode_rtp_header
from gateway.media.stream import RtpStream, StreamConfig
from tests.media.test_pacer import FakeLoop


def packet(seq: int) -> bytes:
    return encode_rtp_header(0, False, seq, seq * 160, 0x1234) + bytes([seq & 0x7F]) * 160


def setup() -> tuple[FakeLoop, MediaClock, RtpStream, CallOutput, list[tuple[Any, ...]]]:
    loop = FakeLoop()
    clock = MediaClock(loop)
    order: list[tuple[Any, ...]] = []
    stream = RtpStream(StreamConfig(codec="PCMU", payload_type=0, jitter_min_ms=20))
    stream.set_remote(("127.0.0.1", 4000))  # the SDP's address: its packets count at once
    stream.on_audio = lambda frames: order.append(("audio", len(frames)))
    stream.start(clock)
    out = CallOutput(
        PlayoutQueue(),
        lambda payload, marker: order.append(("send", payload[:1])),
        advance=lambda samples: order.append(("advance", samples)),
    )
    return loop, clock, stream, out, order


def test_ride_uses_the_stream_registration_and_runs_release_send_hook_in_order() -> None:
    loop, clock, stream, out, order = setup()
    out.ride(stream, after=lambda: order.append(("hook",)))
    assert clock.registrations == 1  # the stream's only
    t0 = clock.epoch
    for seq in range(10):  # 200 ms of caller audio arriving on time
        stream.receive_rtp(packet(seq), ("127.0.0.1", 4000), t0 + seq * 0.02)
    # On a clean link each packet releases its predecessor as it arrives (no wait for the
    # tick); the last one is left for the clock.
    arrivals = [o[0] for o in order]
    assert arrivals == ["audio"] * 9
    order.append(("ticks",))
    loop.run_until(t0 + 0.5)
    kinds = [o[0] for o in order]
    kinds = kinds[kinds.index("ticks") + 1 :]
    assert kinds.count("audio") == 1
    assert kinds.count("send") == kinds.count("hook") >= 24  # one frame and one hook per tick
    # Within a tick: inbound release first, then our frame, then the hook right after it.
    for i, kind in enumerate(kinds):
        if kind == "send":
            assert kinds[i + 1] == "hook"
        if kind == "audio":
            assert kinds[i + 1] == "send"


def test_ride_stop_detaches_the_output_but_the_stream_keeps_releasing() -> None:
    loop, clock, stream, out, order = setup()
    out.ride(stream, after=lambda: order.append(("hook",)))
    loop.run_until(clock.epoch + 0.2)
    out.stop()
    assert stream.output_tick is None
    sent = sum(1 for o in order if o[0] == "send")
    t1 = loop.time()
    for seq in range(5):
        stream.receive_rtp(packet(seq), ("127.0.0.1", 4000), t1 + seq * 0.02)
    loop.run_until(t1 + 0.3)
    assert sum(1 for o in order if o[0] == "send") == sent
    assert any(o[0] == "audio" for o in order)
    assert clock.registrations == 1


def test_ride_replaces_an_own_registration_and_a_closed_stream_sends_nothing() -> None:
    loop, clock, stream, out, order = setup()
    out.start(clock)
    assert clock.registrations == 2
    out.ride(stream)  # no hook
    assert clock.registrations == 1
    loop.run_until(clock.epoch + 0.1)
    assert any(o[0] == "send" for o in order) and not any(o[0] == "hook" for o in order)
    stream.close("test")
    order.clear()
    loop.run_until(clock.epoch + 0.3)
    assert order == []


# -- MediaClock lead: timers armed early, deadlines unchanged ----------------------------------


def test_clock_lead_arms_timers_early_without_moving_deadlines_or_skipping() -> None:
    import pytest

    from tests.media.test_pacer import PERIOD, Recorder

    loop = FakeLoop()
    # A wakeup that lands anywhere from 0.9 ms early to 0.3 ms late of the deadline.
    loop.lateness = lambda when: 0.0012 * ((round(when * 1e4) % 7) / 6)
    clock = MediaClock(loop, slots=1, lead=0.0009)
    rec = Recorder(loop)
    clock.register(rec)
    loop.run_until(clock.epoch + 20.0)
    assert rec.frames == list(range(rec.frames[0], rec.frames[0] + len(rec.frames)))
    assert len(rec.frames) in (1000, 1001)
    for frame, deadline, ran in zip(rec.frames, rec.deadlines, rec.run_at, strict=True):
        assert deadline == pytest.approx(clock.epoch + frame * PERIOD, abs=1e-9)
        assert -0.0009 - 1e-9 <= ran - deadline <= 0.0003 + 1e-9
    for when in loop.calls_at:  # armed on the grid minus the lead
        k = (when + 0.0009 - clock.epoch) / PERIOD
        assert k == pytest.approx(round(k), abs=1e-6)
    assert clock.stats.skipped_frames == 0 and clock.stats.catchup_frames == 0
    with pytest.raises(ValueError, match="lead"):
        MediaClock(loop, lead=0.011)
    with pytest.raises(ValueError, match="lead"):
        MediaClock(loop, lead=-0.001)
