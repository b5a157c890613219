"""media.append_ms > 20 (gateway/call/gather.py): caller audio reaches the voice session in
fewer, longer appends, in order, never held back once it has waited an append's length, never
sent to a connection it was not gathered for, and sent before a codec switch."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from gateway.call.gather import AudioGather
from gateway.media.jitter import Frame
from gateway.media.playout import PlayoutQueue
from gateway.realtime import protocol
from gateway.realtime.simulator import Simulator
from tests.call.test_session import (  # noqa: F401 (the make_session fixture)
    FakeTime,
    answered,
    make_session,
    until,
)

# -- AudioGather alone --------------------------------------------------------------------------


def test_gather_hands_on_whole_appends_in_order() -> None:
    gather = AudioGather(320)
    owner = object()
    now = FakeTime(5.0)
    assert gather.add(owner, b"a" * 160, now) is None
    assert gather.since == 5.0
    assert gather.add(owner, b"b" * 160, now) == b"a" * 160 + b"b" * 160
    assert gather.nbytes == 0 and gather.parts == []
    # A longer packet (30 ms) crosses the size on its own: handed on whole, never split.
    assert gather.add(owner, b"c" * 240, now) is None
    assert gather.add(owner, b"d" * 240, now) == b"c" * 240 + b"d" * 240


def test_gather_is_due_once_its_first_part_waited_an_appends_length() -> None:
    gather = AudioGather(480)  # 60 ms
    owner = object()
    now = FakeTime(1.0)
    assert not gather.due(now.now)  # nothing gathered: nothing due, whatever the time
    gather.add(owner, b"x" * 160, now)
    now.now += 0.04
    gather.add(owner, b"y" * 160, now)  # a later part does not restart the wait
    assert not gather.due(1.049)  # 60 ms less half a packet: 50 ms after the first part
    assert gather.due(1.05)
    assert gather.take() == b"x" * 160 + b"y" * 160 and not gather.due(9.0)


def test_gather_forgets_audio_of_another_connection() -> None:
    gather = AudioGather(320)
    first, second = object(), object()
    now = FakeTime()
    gather.add(first, b"old" * 50, now)
    assert gather.add(second, b"n" * 160, now) is None
    assert gather.owner is second and gather.parts == [b"n" * 160]


def test_gather_needs_a_positive_size() -> None:
    with pytest.raises(ValueError, match="append size"):
        AudioGather(0)


# -- through the call session and the simulator --------------------------------------------------


def appended(simulated: Any) -> list[bytes]:
    return [
        base64.b64decode(e["audio"])
        for e in simulated.client_events_of("input_audio_buffer.append")
    ]


async def test_40_ms_appends_carry_every_byte_in_order(
    sim: Simulator,
    make_session: Callable[..., Any],  # noqa: F811
) -> None:
    session, _, _ = await answered(sim, make_session, append_s=0.04)
    session._now = clock = FakeTime()
    audio = bytes(range(256)) * 25  # 6400 bytes: 40 packets of 20 ms
    for i in range(0, len(audio), 160):
        clock.now += 0.02
        session.on_audio([Frame(audio[i : i + 160], i)])
    simulated = await sim.wait_session()
    await until(lambda: sum(map(len, appended(simulated))) == len(audio))
    assert [len(a) for a in appended(simulated)] == [320] * 20  # half the frames
    assert b"".join(appended(simulated)) == audio
    assert session.stats.audio_appended_bytes == len(audio)


async def test_the_tick_sends_what_waited_an_appends_length(
    sim: Simulator,
    make_session: Callable[..., Any],  # noqa: F811
) -> None:
    """The caller's RTP stops one packet into a 60 ms append: that packet goes out on the
    first tick 60 ms after it came, not when hold-filling resumes audio 250 ms later."""
    session, _, _ = await answered(sim, make_session, append_s=0.06)
    session._now = clock = FakeTime()
    session.on_audio([Frame(b"\x01" * 160, 0)])
    simulated = await sim.wait_session()
    clock.now += 0.04
    session.on_output_tick()
    assert session.stats.audio_appended_bytes == 0  # 40 ms: still gathering
    clock.now += 0.02
    session.on_output_tick()
    assert session.stats.audio_appended_bytes == 160
    assert session.stats.silence_filled_bytes == 0  # sent by the tick, not the hold fill
    await until(lambda: appended(simulated) == [b"\x01" * 160])


async def test_audio_gathered_for_a_lost_connection_is_not_sent_to_the_next(
    sim: Simulator,
    make_session: Callable[..., Any],  # noqa: F811
) -> None:
    session, _, _ = await answered(sim, make_session, append_s=0.04)
    session._now = FakeTime()
    session.on_audio([Frame(b"\x02" * 160, 0)])  # half an append, for the first connection
    first = session._client
    assert first is not None

    class Replacement:
        connected = True

        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def append_audio(self, audio: bytes) -> bool:
            self.sent.append(audio)
            return True

    replacement = Replacement()
    session._client = replacement  # type: ignore[assignment]  # what a reconnect does
    session.on_audio([Frame(b"\x03" * 160, 160)])
    session.on_audio([Frame(b"\x04" * 160, 320)])
    assert replacement.sent == [b"\x03" * 160 + b"\x04" * 160]  # no \x02 from before
    session._client = first


async def test_a_codec_switch_sends_the_old_laws_audio_first(
    sim: Simulator,
    make_session: Callable[..., Any],  # noqa: F811
) -> None:
    session, _, _ = await answered(sim, make_session, append_s=0.1)
    session._now = FakeTime()
    session.on_audio([Frame(b"\x05" * 160, 0)])
    simulated = await sim.wait_session()
    alaw = protocol.SessionConfig(
        turn_detection=protocol.ServerVad(), input_format="audio/pcma", output_format="audio/pcma"
    )
    session.set_codec(alaw, PlayoutQueue())
    assert session.stats.audio_appended_bytes == 160  # sent before the session.update
    await until(lambda: bool(simulated.client_events_of("session.update")[1:]))
    kinds = [r.type for r in simulated.client_events]
    last_append = max(i for i, k in enumerate(kinds) if k == "input_audio_buffer.append")
    last_update = max(i for i, k in enumerate(kinds) if k == "session.update")
    assert last_append < last_update


async def test_20_ms_appends_each_packet_at_once(
    sim: Simulator,
    make_session: Callable[..., Any],  # noqa: F811
) -> None:
    session, _, _ = await answered(sim, make_session, append_s=0.02)
    assert session._gather is None  # the default path: no gathering at all
    session._now = FakeTime()
    session.on_audio([Frame(b"\x06" * 160, 0)])
    assert session.stats.audio_appended_bytes == 160
