"""The session's per-tick hook behind its TickWatch (issue 14): the media clock calls
`CallSession.on_output_tick` only on ticks the watch says it has work. Pinned here against the
hook called on every tick (main's behaviour): the machine gets `PlayoutDrained` on the same
tick (the one the last frame went out on), hold fill starts on the same tick and fills the
same bytes, for both implementations of the watch and the stream tick, through a real
RtpStream, CallOutput and CallSession."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import machine as m
from gateway.call import session as session_module
from gateway.call.session import CallSession, SessionSettings
from gateway.media.jitter import Frame
from gateway.media.stream import StreamConfig
from gateway.realtime import protocol
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint
from tests.call.test_session import FakeControl
from tests.media.jitter_impls import (
    output_implementation,
    playout_implementation,
    stream_class,
    use_stream_implementation,
    watch_implementation,
)


class Clock:
    def __init__(self) -> None:
        self.now = 2000.0

    def time(self) -> float:
        return self.now


class Sink:
    def sendto(self, data: bytes, addr: Any = None) -> None:
        pass

    def close(self) -> None:
        pass


def build(
    name: str, watched: bool, clock: Clock, append_s: float = 0.02
) -> tuple[Any, CallSession, list[Any]]:
    queue = playout_implementation(name)()
    settings = SessionSettings(
        Endpoint.custom("ws://127.0.0.1:9"),
        protocol.SessionConfig(),
        m.CallPolicy(),
        backend=RealtimeBackend(),
        append_s=append_s,
    )
    session = CallSession("call-watch", settings, FakeControl(), queue)
    session._now = clock.time
    record: list[Any] = []
    session.dispatch = lambda event: record.append(type(event).__name__)  # type: ignore[method-assign]
    stream = stream_class(name)(StreamConfig(rtcp_interval_s=1e9, inactivity_timeout_s=0))
    stream._loop = clock
    stream._rtp_transport = Sink()
    stream._outbound.clock = clock.time
    stream.set_remote(("192.0.2.1", 40000))
    output = output_implementation(name)(queue, stream.send_frame, advance=stream.advance)
    output.ride(stream, after=session.on_output_tick, watch=session.tick_watch if watched else None)
    return stream, session, record


STEP = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from([0.018, 0.02, 0.02, 0.021, 0.05, 0.3, 1.5])),
    st.tuples(st.just("enqueue"), st.sampled_from([80, 160, 400, 1000])),
    st.tuples(st.just("end")),
    st.tuples(st.just("flush")),
    st.tuples(st.just("caller"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("ack")),
)


def play(
    name: str, watched: bool, steps: list[tuple[Any, ...]], append_s: float = 0.02
) -> list[Any]:
    clock = Clock()
    stream, session, record = build(name, watched, clock, append_s)
    trace: list[Any] = []
    frame = 0
    item = 0
    for step in steps:
        kind = step[0]
        if kind == "tick":
            clock.now += step[1]
            stream._on_clock(frame, clock.now)
            frame += 1
            trace.append(
                (
                    frame,
                    tuple(record),
                    session.stats.silence_filled_bytes,
                    session._audio_samples,
                    session._playout_nonempty,
                    session.queue.queued_bytes,
                )
            )
        elif kind == "enqueue":
            item += 1
            session._execute(m.EnqueueAudio(f"item{item}", b"\x55" * step[1]))
        elif kind == "end":
            session._execute(m.EndOfAudio(f"item{item}"))
        elif kind == "flush":
            session._execute(m.FlushPlayout())
        elif kind == "caller":
            frames = [Frame(b"\x7f" * 160, i * 160, concealed=step[2]) for i in range(step[1])]
            session.on_audio(frames)
        elif kind == "ack":
            session.start_input()
    return trace


@pytest.mark.parametrize("name", ["python", "c"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=60), append_s=st.sampled_from([0.02, 0.1]))
def test_the_watched_hook_does_what_the_hook_on_every_tick_does(
    name: str, steps: list[tuple[Any, ...]], append_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """append_s 0.1: the session gathers appends (the watch then calls the hook always)."""
    with monkeypatch.context() as patch:
        use_stream_implementation(patch, name)
        patch.setattr(session_module, "TickWatch", watch_implementation(name))
        steps = [*steps, *[("tick", 0.02)] * 30]
        assert play(name, True, steps, append_s) == play(name, False, steps, append_s)


@pytest.mark.parametrize("name", ["python", "c"])
def test_playout_drained_on_the_tick_the_last_frame_went_out_and_fill_at_its_moment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_stream_implementation(monkeypatch, name)
    monkeypatch.setattr(session_module, "TickWatch", watch_implementation(name))
    clock = Clock()
    stream, session, record = build(name, True, clock)
    session._execute(m.EnqueueAudio("a", b"\x55" * 480))  # three frames
    session._execute(m.EndOfAudio("a"))
    drained_at = []
    for frame in range(5):
        clock.now += 0.02
        stream._on_clock(frame, clock.now)
        drained_at.append(record.count("PlayoutDrained"))
    assert drained_at == [0, 0, 1, 1, 1]  # the third tick sent the last frame
    # Hold fill: audio time starts, nothing arrives; the first fill comes on the first tick
    # where audio time trails by HOLD_FILL_AFTER_S + one frame, not before.
    session.start_input()
    t0 = clock.now
    fills = []
    for frame in range(5, 40):
        clock.now += 0.02
        stream._on_clock(frame, clock.now)
        fills.append((round(clock.now - t0, 3), session.stats.silence_filled_bytes))
    first = next(at for at, filled in fills if filled)
    assert first == pytest.approx(session_module.HOLD_FILL_AFTER_S + 0.02, abs=0.021)
    before = [filled for at, filled in fills if at < first]
    assert set(before) == {0}
