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


class Client:
    """A connected voice client that records each append: when (s after the start) and bytes."""

    connected = True

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, int]] = []

    def append_audio(self, payload: bytes) -> bool:
        self.sent.append((round(self.clock.now - 2000.0, 6), len(payload)))
        return True


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
    # Appends reach a client (the slow path: no link appender), so gathering really gathers
    # and the trace holds when each append went out.
    session._client = Client(clock)  # type: ignore[assignment]
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
                    tuple(session._client.sent),  # type: ignore[union-attr]
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


@pytest.mark.parametrize("name", ["python", "c"])
def test_gathered_appends_leave_when_due_not_when_hold_fill_starts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """media.append_ms 100: one caller frame, then silence. The gathered append is due 100 ms
    after its first frame; the watch must call the hook for it (`always`), not wait for the
    hold fill that starts HOLD_FILL_AFTER_S later."""
    use_stream_implementation(monkeypatch, name)
    monkeypatch.setattr(session_module, "TickWatch", watch_implementation(name))
    clock = Clock()
    stream, session, _ = build(name, True, clock, append_s=0.1)
    session.on_audio([Frame(b"\x7f" * 160, 0)])
    client = session._client
    for frame in range(40):
        clock.now += 0.02
        stream._on_clock(frame, clock.now)
        if client.sent:  # type: ignore[union-attr]
            break
    assert client.sent[:1] == [(pytest.approx(0.1, abs=0.021), 160)]  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["python", "c"])
@pytest.mark.parametrize("watched", [True, False])
def test_a_codec_switch_moves_the_watch_to_the_new_queue(
    name: str, watched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late-offer codec switch (`CallSession.set_codec`) gives the session a new playout
    queue; the output then plays that one. The watch must follow, or the drain of the new
    queue never reaches the machine."""
    use_stream_implementation(monkeypatch, name)
    monkeypatch.setattr(session_module, "TickWatch", watch_implementation(name))
    clock = Clock()
    stream, session, record = build(name, watched, clock)
    session._execute(m.EnqueueAudio("greeting", b"\x55" * 480))  # into the old queue
    new_queue = playout_implementation(name)()
    session.set_codec(protocol.SessionConfig(), new_queue)
    output = output_implementation(name)(new_queue, stream.send_frame, advance=stream.advance)
    output.ride(stream, after=session.on_output_tick, watch=session.tick_watch if watched else None)
    session._execute(m.EnqueueAudio("reply", b"\x55" * 480))  # into the new one
    drained = []
    for frame in range(6):
        clock.now += 0.02
        stream._on_clock(frame, clock.now)
        drained.append(record.count("PlayoutDrained"))
    assert drained == [0, 0, 1, 1, 1, 1]
