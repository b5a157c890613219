"""The caller-audio path at the moment each check matters (issue 14, gateway/call/caller_audio.py):
the session keeps the attached connection's appender instead of asking `connected` and the state
per frame, the link's `_send_text` is the one copy of the outbound checks with its write-through
inlined, and the media leg hands frames straight to the session when it has nothing of its own
to do. Real session, connection and client; the client's socket is a stand-in whose transport
records (or refuses) each write, so every frame's fate is seen synchronously."""

from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.protocol import State

from gateway.call import machine as m
from gateway.call.session import CallSession, SessionSettings
from gateway.media.jitter import Frame
from gateway.media.leg import LegSettings, MediaLeg
from gateway.media.playout import PlayoutQueue
from gateway.realtime import protocol
from gateway.realtime.backend import RealtimeBackend, RealtimeConnection
from gateway.realtime.client import Endpoint, RealtimeClient, RealtimeError
from gateway.realtime.simulator import Simulator
from tests.call.test_session import (  # noqa: F401 (the make_session fixture)
    FakeControl,
    FakeTime,
    answered,
    make_session,
    until,
)


class Transport:
    """A socket transport that records what is written; `refuse` makes write raise."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.buffered = 0
        self.refuse = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        if self.refuse:
            raise OSError("the transport refuses the write")
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


def unmasked(wire: bytes) -> dict[str, Any]:
    length, offset = wire[1] & 0x7F, 2
    if length == 126:
        length, offset = int.from_bytes(wire[2:4], "big"), 4
    mask = wire[offset : offset + 4]
    body = wire[offset + 4 : offset + 4 + length]
    return json.loads(bytes(b ^ mask[i % 4] for i, b in enumerate(body)))


def audio_of(text: dict[str, Any]) -> bytes:
    assert text["type"] == "input_audio_buffer.append"
    return base64.b64decode(text["audio"])


class Call(SimpleNamespace):
    session: CallSession
    client: RealtimeClient
    transport: Transport
    clock: FakeTime

    def frame(self, byte: int) -> None:
        """One 20 ms frame of caller audio, 20 ms of real time later."""
        self.clock.now += 0.02
        self.session.on_audio([Frame(bytes([byte]) * 160, 0)])

    def written_audio(self) -> list[bytes]:
        return [audio_of(unmasked(w)) for w in self.transport.written]

    def queued_audio(self) -> list[bytes]:
        return [audio_of(json.loads(t)) for t in self.client._outbound]


async def connected_call(
    *, append_s: float = 0.02, queue_frames: int = 250, live: bool = True
) -> Call:
    """An answered call whose Realtime connection is attached and writable."""
    made: dict[str, Any] = {}

    class Backend(RealtimeBackend):
        async def open(self, endpoint: Any, config: Any, history: Any, timeout: float) -> Any:  # noqa: ASYNC109
            client = RealtimeClient(endpoint, send_queue_frames=queue_frames)
            transport = Transport()
            client._ws = SimpleNamespace(  # type: ignore[assignment]
                transport=transport,
                protocol=SimpleNamespace(state=State.OPEN, expect_continuation_frame=False),
            )
            made.update(client=client, transport=transport)
            return RealtimeConnection(client)

    settings = SessionSettings(
        Endpoint.custom("ws://127.0.0.1:9/v1/realtime"),
        protocol.SessionConfig(turn_detection=protocol.ServerVad()),
        m.CallPolicy(),
        append_s=append_s,
        backend=Backend(),
    )
    control = FakeControl()
    session = CallSession("caller-audio", settings, control, PlayoutQueue())  # type: ignore[arg-type]
    session._now = clock = FakeTime()
    session.start()
    for _ in range(50):
        if "answer" in control.names():
            break
        await asyncio.sleep(0)
    assert "answer" in control.names()
    session.on_ack()
    assert session.ctx.state is m.State.LISTENING
    call = Call(session=session, clock=clock, **made)
    call.transport.written.clear()  # session.update
    return call


async def test_each_frame_is_written_at_once_through_the_kept_appender() -> None:
    call = await connected_call()
    assert call.session._appender is not None
    for byte in (1, 2, 3):
        call.frame(byte)
    assert call.written_audio() == [b"\x01" * 160, b"\x02" * 160, b"\x03" * 160]
    assert call.session.stats.audio_appended_bytes == 480
    assert call.client.stats.frames_written_sync == 3
    await call.session.close()


async def test_a_client_lost_between_two_frames_gets_nothing_and_counts_nothing() -> None:
    call = await connected_call()
    call.frame(1)
    call.client._connection_lost(SimpleNamespace(rcvd=None, sent=None))  # type: ignore[arg-type]
    assert not call.client.connected
    call.frame(2)  # the session still holds the appender: the link says None
    assert call.written_audio() == [b"\x01" * 160]
    assert not call.client._outbound
    stats = call.session.stats
    assert stats.audio_appended_bytes == 160 and stats.appends_dropped == 0
    await call.session.close()


async def test_a_closing_client_gets_nothing() -> None:
    call = await connected_call()
    call.client._closing = True
    call.frame(1)
    assert call.transport.written == [] and not call.client._outbound
    assert call.session.stats.audio_appended_bytes == 0
    call.client._closing = False
    await call.session.close()


async def test_nothing_is_appended_once_the_call_has_ended() -> None:
    call = await connected_call()
    call.frame(1)
    call.session.dispatch(m.CallerBye())
    assert call.session.ctx.state is m.State.ENDED
    assert call.session._appender is None  # every way into ENDED closes the session
    call.frame(2)
    assert call.written_audio() == [b"\x01" * 160]
    assert call.session.stats.audio_appended_bytes == 160
    await call.session.close()


async def test_gathering_on_gathers_and_off_sends_each_frame() -> None:
    call = await connected_call(append_s=0.04)
    assert call.session._appender is None  # gathering takes the slow path
    call.frame(1)
    assert call.transport.written == []
    call.frame(2)
    assert call.written_audio() == [b"\x01" * 160 + b"\x02" * 160]
    await call.session.close()
    call = await connected_call(append_s=0.02)
    call.frame(1)
    assert call.written_audio() == [b"\x01" * 160]
    await call.session.close()


async def test_a_busy_writer_queues_and_later_frames_keep_their_order() -> None:
    call = await connected_call()
    call.frame(1)
    call.client._writer_busy = True  # the writer holds a popped frame (awaiting ws.send)
    call.frame(2)
    call.client._writer_busy = False
    call.frame(3)  # idle writer but a frame queued: must not overtake it
    assert call.written_audio() == [b"\x01" * 160]
    assert call.queued_audio() == [b"\x02" * 160, b"\x03" * 160]
    assert call.session.stats.audio_appended_bytes == 480
    await call.session.close()


async def test_control_events_share_the_order_and_the_checks() -> None:
    call = await connected_call()
    call.client._writer_busy = True
    call.frame(1)
    call.client.send(protocol.input_audio_commit())
    call.client._writer_busy = False
    call.frame(2)
    kinds = [json.loads(t)["type"] for t in call.client._outbound]
    append, commit = "input_audio_buffer.append", "input_audio_buffer.commit"
    assert kinds == [append, commit, append]
    call.client._lost = SimpleNamespace(reason="gone")
    with pytest.raises(RealtimeError, match="not connected"):
        call.client.send(protocol.input_audio_commit())
    with pytest.raises(RealtimeError, match="not connected"):
        call.client.append_audio(b"\x00" * 160)
    call.client._lost = None
    await call.session.close()


async def test_a_write_buffer_above_high_water_queues() -> None:
    call = await connected_call()
    call.transport.buffered = call.client._write_high  # at the mark: still written
    call.frame(1)
    call.transport.buffered = call.client._write_high + 1
    call.frame(2)
    assert call.written_audio() == [b"\x01" * 160]
    assert call.queued_audio() == [b"\x02" * 160]
    await call.session.close()


async def test_a_connection_not_open_or_mid_message_queues() -> None:
    call = await connected_call()
    call.client._ws.protocol.expect_continuation_frame = True  # type: ignore[union-attr]
    call.frame(1)
    call.client._ws.protocol.expect_continuation_frame = False  # type: ignore[union-attr]
    call.client._outbound.clear()
    call.client._ws.protocol.state = State.CLOSING  # type: ignore[union-attr]
    call.frame(2)
    assert call.transport.written == []
    assert call.queued_audio() == [b"\x02" * 160]
    call.client._ws.protocol.state = State.OPEN  # type: ignore[union-attr]
    await call.session.close()


async def test_a_refusing_transport_loses_the_link_and_nothing_more_is_sent() -> None:
    call = await connected_call()
    lost: list[Any] = []
    call.client.set_event_sink(lost.append)
    call.transport.refuse = True
    call.frame(1)  # no exception reaches the media path
    assert call.transport.aborted and not call.client.connected
    assert call.client._lost is not None and "write failed" in call.client._lost.reason
    call.transport.refuse = False
    call.frame(2)
    assert call.transport.written == [] and not call.client._outbound
    await asyncio.sleep(0)  # the loss is reported from a fresh loop callback
    assert lost and lost[-1] is call.client._lost
    await call.session.close()


async def test_a_full_queue_drops_and_counts_the_audio() -> None:
    call = await connected_call(queue_frames=2)
    call.client._writer_busy = True
    for byte in (1, 2, 3):
        call.frame(byte)
    assert call.queued_audio() == [b"\x01" * 160, b"\x02" * 160]
    stats = call.session.stats
    assert stats.appends_dropped == 1 and stats.audio_appended_bytes == 320
    assert call.client.stats.appends_dropped == 1
    assert call.client.stats.audio_bytes_dropped == 160
    call.client.send(protocol.input_audio_commit())  # control events are never dropped
    assert len(call.client._outbound) == 3
    call.client._writer_busy = False
    await call.session.close()


async def test_the_input_rate_bound_holds_on_the_fast_path() -> None:
    call = await connected_call()
    burst_frames = call.session._input_burst // 160
    for _ in range(burst_frames + 3):  # no real time passes: only the burst's credit
        call.session.on_audio([Frame(b"\x07" * 160, 0)])
    assert len(call.transport.written) == burst_frames
    assert call.session.stats.input_rate_dropped_bytes == 3 * 160
    await call.session.close()


async def test_concealed_frames_for_time_already_filled_are_dropped() -> None:
    call = await connected_call()
    call.frame(1)
    call.session._audio_samples += 160  # hold-filling ran ahead by a frame
    call.session.on_audio([Frame(b"\x00" * 160, 160, concealed=True), Frame(b"\x02" * 160, 320)])
    assert call.written_audio() == [b"\x01" * 160, b"\x02" * 160]
    assert call.session.stats.fill_overlap_dropped_bytes == 160
    await call.session.close()


async def test_the_appender_follows_the_attached_client() -> None:
    call = await connected_call()
    first = call.session._appender
    other = RealtimeClient(Endpoint.custom("ws://127.0.0.1:9/v1/realtime"))
    call.session._attach(RealtimeConnection(other))  # what a reconnect or rollover does
    assert call.session._appender is not first
    call.frame(1)  # the new client is not connected yet: nothing, and nothing to the old one
    assert call.transport.written == []
    await call.session.close()
    assert call.session._appender is None


async def test_a_real_connection_dropped_between_two_frames_gets_nothing(
    sim: Simulator,
    make_session: Any,  # noqa: F811
) -> None:
    """Through a real socket: the service drops the session; until a new one is attached the
    session still holds the old connection's appender, which sends nothing and raises
    nothing (the link knows it is lost)."""
    session, _, _ = await answered(sim, make_session)
    session._now = clock = FakeTime()
    held = asyncio.Event()

    async def no_reconnect(reason: str) -> None:  # keep the lost connection attached
        await held.wait()

    session._reconnect = no_reconnect  # type: ignore[method-assign]
    client = session._client
    assert client is not None and session._appender is not None
    simulated = await sim.wait_session()
    clock.now += 0.02
    session.on_audio([Frame(b"\x01" * 160, 0)])
    await until(lambda: len(simulated.client_events_of("input_audio_buffer.append")) == 1)
    sim.drop_session(simulated.id)
    await until(lambda: not client.connected)
    assert session._client is client
    sent = client.client.stats.frames_sent  # type: ignore[attr-defined]
    clock.now += 0.02
    session.on_audio([Frame(b"\x02" * 160, 160)])
    assert client.client.stats.frames_sent == sent  # type: ignore[attr-defined]
    assert session.stats.audio_appended_bytes == 160 and session.stats.appends_dropped == 0
    held.set()


def test_the_appender_of_a_client_never_connected_sends_nothing() -> None:
    client = RealtimeClient(Endpoint.custom("ws://127.0.0.1:9/v1/realtime"))
    appender = client.audio_appender
    assert appender(b"\x00" * 160) is None  # no exception on the per-frame path
    with pytest.raises(RealtimeError, match="not connected"):
        client.append_audio(b"\x00" * 160)  # the public call still says so
    assert client.stats.frames_sent == 0 and not client._outbound


# -- the media leg's wiring -------------------------------------------------------------------


def sink(frames: list[Frame]) -> None:
    pass


def test_the_leg_hands_frames_straight_to_its_owner_when_it_has_nothing_to_do() -> None:
    leg = MediaLeg(LegSettings(wants_audio=True), None, lambda *a: None)
    leg.on_audio = sink
    assert leg.stream.on_audio is sink
    leg.recorder = SimpleNamespace(caller=lambda at, payload: None)  # a recorded call
    assert leg.stream.on_audio == leg._on_inbound_audio
    leg.recorder = None
    assert leg.stream.on_audio is sink
    leg.close("test")
    assert leg.stream.on_audio is None
    leg.on_audio = sink  # a late setter never rewires a closed leg (no cycle into it)
    assert leg.stream.on_audio is None


def test_the_leg_detects_inband_digits_before_handing_on() -> None:
    from gateway.media.negotiated import NegotiatedMedia

    leg = MediaLeg(LegSettings(wants_audio=True, inband_dtmf=True), None, lambda *a: None)
    leg.on_audio = sink
    leg.apply(NegotiatedMedia("PCMU", 0, "127.0.0.1", 40000, 40001))
    assert leg.inband is not None and leg.stream.on_audio == leg._on_inbound_audio
    leg.close("test")


def test_a_leg_whose_audio_nobody_wants_wires_nothing() -> None:
    leg = MediaLeg(LegSettings(), None, lambda *a: None)
    leg.on_audio = sink
    assert leg.stream.on_audio is None
    leg.close("test")


async def test_an_echo_leg_is_wired_when_it_opens(port_block: int) -> None:
    """Echo mode has no owner: the leg's own `_on_inbound_audio` consumes the audio, wired at
    open (no setter runs for it)."""
    from gateway.media.ports import PortAllocator

    leg = MediaLeg(LegSettings(echo=True), None, lambda *a: None)
    assert leg.stream.on_audio is None
    await leg.open(PortAllocator(port_block, port_block + 9, quarantine_s=0), "127.0.0.1")
    assert leg.stream.on_audio == leg._on_inbound_audio
    leg.close("test")
