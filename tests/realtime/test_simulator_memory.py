"""Issue 14: the simulator's memory stays bounded over a long run. Finished sessions beyond
`keep_sessions` are forgotten (the oldest first, live ones never), and each session keeps at
most `keep_audio_chars` of recorded base64 audio."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import Endpoint, RealtimeClient, open_session
from gateway.realtime.simulator import Simulator, SimulatorOptions

T = 5.0  # per-await bound, never a timing assertion
FRAME = 160  # 20 ms of G.711


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def endpoint(sim: Simulator) -> Endpoint:
    return Endpoint.custom(sim.url, {"Authorization": "Bearer sk-test"})


async def short_call(sim: Simulator, frames: int = 10, byte: int = 0x55) -> RealtimeClient:
    """One session: configure, append `frames` frames, commit; returned still open."""
    client = await open_session(endpoint(sim), p.SessionConfig(turn_detection=None))
    for _ in range(frames):
        assert client.append_audio(bytes([byte]) * FRAME)
    client.send(p.input_audio_commit())
    await client.wait_for(lambda e: isinstance(e, ev.InputCommitted), T)
    return client


def recorded_audio_chars(sim: Simulator) -> int:
    """Base64 audio held in every kept session's recorded events."""
    total = 0
    for session in sim.sessions.values():
        for record in session.client_events + session.server_events:
            for key in ("audio", "delta"):
                value = record.event.get(key)
                if isinstance(value, str):
                    total += len(value)
    return total


def finished(sim: Simulator, ordinal: int) -> Callable[[], bool]:
    """The `ordinal`-th session has finished (closed, or already forgotten)."""
    return lambda: all(s.closed.is_set() for s in sim.sessions.values() if s.ordinal == ordinal)


def all_closed(sim: Simulator, opened: int) -> Callable[[], bool]:
    return lambda: sim.opened == opened and all(s.closed.is_set() for s in sim.sessions.values())


async def test_200_sessions_keep_memory_bounded(sim_factory) -> None:
    keep, cap = 20, 1000
    sim = await sim_factory(keep_sessions=keep, keep_audio_chars=cap)
    for _ in range(200):
        client = await short_call(sim)
        await client.close()
    await until(all_closed(sim, 200))
    assert len(sim.sessions) == keep
    # The most recent ones are kept, in opening order.
    assert [s.ordinal for s in sim.sessions.values()] == list(range(181, 201))
    # 10 appends of 216 base64 characters each: 4 fit under the cap, 6 are left out.
    assert recorded_audio_chars(sim) <= keep * cap
    for session in sim.sessions.values():
        assert session.audio_chars_kept == 4 * 216
        assert session.audio_chars_dropped == 6 * 216
        appends = session.client_events_of("input_audio_buffer.append")
        assert len(appends) == 10  # every event still recorded, only the audio left out
        assert [a["audio"] == "" for a in appends] == [False] * 4 + [True] * 6
        assert len(session.buffer) == 0  # input buffer released at the end


async def test_eviction_order_keeps_live_sessions(sim_factory) -> None:
    sim = await sim_factory(keep_sessions=2)
    live = await short_call(sim)  # session 1 stays open throughout
    for _ in range(4):  # sessions 2-5 finish, in order
        client = await short_call(sim)
        await client.close()
        await until(finished(sim, sim.opened))
    assert [s.ordinal for s in sim.sessions.values()] == [1, 4, 5]
    assert not next(iter(sim.sessions.values())).closed.is_set()
    assert (await sim.wait_session(5)).ordinal == 5
    with pytest.raises(LookupError, match="keep_sessions"):
        await sim.wait_session(2)
    await live.close()
    await until(all_closed(sim, 5))
    # Forgotten in the order they finished: 1 finished last, so 4 goes and 1 stays.
    assert [s.ordinal for s in sim.sessions.values()] == [1, 5]


async def test_audio_within_the_cap_is_recorded_whole(sim_factory) -> None:
    sim = await sim_factory()  # defaults: 50 sessions, 2 MiB of base64 audio each
    assert SimulatorOptions().keep_sessions == 50
    client = await short_call(sim, frames=50, byte=0x11)
    session = await sim.wait_session()
    appended = b"".join(
        base64.b64decode(e["audio"]) for e in session.client_events_of("input_audio_buffer.append")
    )
    assert appended == bytes([0x11]) * FRAME * 50
    assert session.audio_chars_dropped == 0
    await client.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"keep_sessions": -1}, "keep_sessions"), ({"keep_audio_chars": -5}, "keep_audio_chars")],
)
def test_negative_limits_are_rejected(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorOptions.from_mapping(options)
