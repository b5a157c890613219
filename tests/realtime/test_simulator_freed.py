"""A finished simulator session is freed by reference counting alone (issue 14), in the spirit
of tests/test_call_freed.py: the simulator keeps only the last `keep_sessions` finished sessions,
and a session it forgets must go at once, with the cyclic collector switched off, whatever way
it ended. Otherwise every forgotten session that is a reference cycle (with all its
conversation audio, ~1 MB for a one-minute call) waits for a full collection, and a long run's
memory depends on when those come.

Both APIs the simulator serves (Realtime GA and GPT-Live), ended normally, by the client
dropping its WebSocket, by the simulator dropping it, and while output is still being sent
(the case that was a cycle: the cancelled response task, kept in the `Response`, held the
frames of its coroutine and so the session). Each runs on asyncio and on uvloop (`simulator
--load` runs on uvloop). Then the memory test: with the collector off, what the simulator's
own code allocated stays flat over sessions beyond `keep_sessions` (tracemalloc, not RSS, so
that it is deterministic)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.live.simulator.options import LiveSimulatorOptions
from gateway.realtime.simulator import Simulator, SimulatorOptions
from tests.realtime.conftest import silence, speech_like
from tests.tools.refcount import RefcountOnly, collector_off, holders, loop_policy
from tests.tools.wait import async_wait_until

T = 10.0  # bound of every wait, never a timing assertion
FRAME = 160  # 20 ms of G.711
# One utterance then enough silence for either VAD to end it (Realtime 200 ms, GPT-Live 500 ms).
CALLER = speech_like(1000) + silence(800)
HEADERS = {"Authorization": "Bearer sk-test"}
ENDS = ["close", "client_drop", "simulator_drop", "close_mid_output", "client_drop_mid_output"]


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    return loop_policy(request.param)


@pytest.fixture
def refcount_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefcountOnly]:
    """The cyclic collector off for the test (restored after), `gc.collect` recorded, not run."""
    yield from collector_off(monkeypatch)


@pytest.fixture
async def simulator() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    started: list[Simulator] = []

    async def factory(keep_sessions: int = 0) -> Simulator:
        # realtime_pace 1.0: a reply lasts as long as its audio, so a test can end the session
        # while the response is still being sent.
        sim = Simulator(
            "127.0.0.1",
            0,
            SimulatorOptions(keep_sessions=keep_sessions, realtime_pace=1.0),
            LiveSimulatorOptions(keep_sessions=keep_sessions, delta_ms=20),
        )
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


async def _send(ws: ClientConnection, event: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(event).decode())


async def _until_event(ws: ClientConnection, kind: str) -> None:
    async def read() -> None:
        async for frame in ws:
            if orjson.loads(frame)["type"] == kind:
                return
        raise AssertionError(f"connection closed before {kind}")

    await asyncio.wait_for(read(), T)


async def _drain(ws: ClientConnection) -> None:
    """Read until the simulator closes the connection (after a close or a drop)."""

    async def read() -> None:
        async for _ in ws:
            pass

    with contextlib.suppress(ConnectionClosed):  # 1006 after a drop: closed either way
        await asyncio.wait_for(read(), T)


async def realtime_session(sim: Simulator, end: str) -> None:
    """A Realtime call: G.711 both ways, one utterance, the reply; then `end`."""
    ws = await connect(sim.url, additional_headers=HEADERS, compression=None)
    g711 = {"format": {"type": "audio/pcmu"}}
    session = {"type": "realtime", "audio": {"input": g711, "output": g711}}
    await _send(ws, {"type": "session.update", "session": session})
    for start in range(0, len(CALLER), FRAME):
        audio = base64.b64encode(CALLER[start : start + FRAME]).decode()
        await _send(ws, {"type": "input_audio_buffer.append", "audio": audio})
    mid_output = end.endswith("mid_output")
    await _until_event(ws, "response.output_audio.delta" if mid_output else "response.done")
    await _end(ws, end, lambda: sim.drop_session(_live_id(sim.sessions)))


async def live_session(sim: Simulator, end: str) -> None:
    """A GPT-Live call: session.start in G.711, one utterance, its reply; then `end` (a normal
    end is session.close, answered by session.closed)."""
    ws = await connect(sim.live_url, additional_headers=HEADERS, compression=None)
    config = {"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu", "rate": 8000}}}
    await _send(ws, {"type": "session.start", "session": config})
    for start in range(0, len(CALLER), FRAME):
        audio = base64.b64encode(CALLER[start : start + FRAME]).decode()
        await _send(ws, {"type": "session.input_audio.append", "audio": audio})
    # The output track is sent all the time (silence between replies): mid-output either way.
    await _until_event(ws, "session.output_audio.delta")
    if end == "close":
        await _send(ws, {"type": "session.close"})
        await _until_event(ws, "session.closed")
    await _end(ws, end, lambda: sim.drop_live_session(_live_id(sim.live_sessions)))


def _live_id(sessions: dict[str, Any]) -> str:
    (session_id,) = [i for i, s in sessions.items() if not s.closed.is_set()]
    return session_id


async def _end(ws: ClientConnection, end: str, simulator_drop: Callable[[], None]) -> None:
    if end == "simulator_drop":
        simulator_drop()
        await _drain(ws)
    elif end.startswith("client_drop"):
        ws.transport.abort()
    else:
        await ws.close()
    await ws.wait_closed()


CALLS = {"realtime": realtime_session, "live": live_session}


def _sessions(sim: Simulator, api: str) -> dict[str, Any]:
    return sim.sessions if api == "realtime" else sim.live_sessions


def _all_finished(sim: Simulator, api: str) -> bool:
    return all(s.closed.is_set() for s in _sessions(sim, api).values())


def _kept(sim: Simulator, api: str) -> list[Any]:
    return [s for s in _sessions(sim, api).values() if s.closed.is_set()]


def _gateway_garbage(refcount: RefcountOnly) -> list[str]:
    """The simulator's own objects only the cyclic collector could free. (The websockets
    library's connections, and CPython 3.11's closed TCP transports, are cycles of their own,
    the same for any server; the simulator's objects must not be in them.)"""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        refcount.collect()
    finally:
        gc.set_debug(0)
    garbage = [
        f"{type(o).__module__}.{type(o).__qualname__}"
        for o in gc.garbage
        if type(o).__module__.startswith("gateway.")
    ]
    gc.garbage.clear()
    return garbage


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_a_finished_session_is_freed_without_the_collector(
    api: str,
    end: str,
    simulator: Callable[..., Awaitable[Simulator]],
    refcount_only: RefcountOnly,
) -> None:
    sim = await simulator(keep_sessions=1)
    refcount_only.mark()
    await CALLS[api](sim, end)
    (session,) = _sessions(sim, api).values()
    await async_wait_until(session.closed.is_set, T, "the session to finish")
    ref = weakref.ref(session)
    del session
    # The next session to finish pushes it out of the kept set: then nothing should hold it.
    await CALLS[api](sim, "close")
    await async_wait_until(lambda: ref() is None or ref() not in _kept(sim, api), T, "eviction")

    def report() -> str:
        obj = ref()
        return f"the {api} session ({end}) still held by:\n{holders(obj) if obj else '?'}"

    await async_wait_until(lambda: ref() is None, T, report)
    assert _gateway_garbage(refcount_only) == []
    assert refcount_only.collections == []  # nothing asked for a collection meanwhile


# One loop: what the simulator's own lines keep does not depend on it (tracemalloc counts
# Python allocations), and uvloop is the loop `simulator --load` and `run` use.
@pytest.mark.parametrize("event_loop_policy", ["uvloop"], indirect=True)
async def test_memory_stays_flat_over_sessions_beyond_keep_sessions(
    simulator: Callable[..., Awaitable[Simulator]], refcount_only: RefcountOnly
) -> None:
    """Sessions of both APIs, every way of ending, beyond `keep_sessions`: what the simulator's
    own lines allocated and is still held (tracemalloc, by the allocating line; numpy's and
    websockets' allocations are not counted, their caches and cycles are not the simulator's)
    does not grow once the kept set is full, with the collector off. Before the fix, the two
    sessions in ten ended during a Realtime response stayed, 16 KiB per session on average;
    anything kept per session in a list or dict fails it too."""
    keep = 2
    sim = await simulator(keep_sessions=keep)
    only_ours = [
        tracemalloc.Filter(True, "*/gateway/realtime/simulator/*"),
        tracemalloc.Filter(True, "*/gateway/live/simulator/*"),
        tracemalloc.Filter(True, "*/gateway/sim_shared/*"),
    ]

    async def sessions_of_every_kind() -> None:
        for end in ENDS:
            for api, call in CALLS.items():
                await call(sim, end)
                finished = functools.partial(_all_finished, sim, api)
                await async_wait_until(finished, T, "the session to finish")

    def held() -> int:
        snapshot = tracemalloc.take_snapshot().filter_traces(only_ours)
        return sum(stat.size for stat in snapshot.statistics("filename"))

    tracemalloc.start(1)
    try:
        await sessions_of_every_kind()  # fills the kept set, and replaces it a few times
        before = held()
        rounds = 2
        for _ in range(rounds):
            await sessions_of_every_kind()
        after = held()
    finally:
        tracemalloc.stop()
    sessions = rounds * 2 * len(ENDS)
    assert sim.opened + sim.live_opened == sessions + 2 * len(ENDS)
    per_session = (after - before) / sessions
    # A leak of 1 KiB per session would fail this (what a correct run leaves varies by a few
    # hundred bytes per session either way: the allocator's free lists, the kept set's sizes).
    assert per_session < 768, f"{after - before} bytes more after {sessions} sessions"
