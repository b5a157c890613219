"""RealtimeClient's synchronous write path (frames written by the caller, no writer wakeup):
frames byte-identical to websockets' own, order kept against the queued path, flow control."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets.frames
from websockets.frames import Frame, Opcode

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import _MaskKeys, masked_text_frame

T = 5.0  # per-await bound, never a timing assertion


def _unframe(data: bytes) -> Frame:
    """Parse one client frame with websockets' own parser (as a server would)."""
    gen = Frame.parse(_reader(data), mask=True)
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("frame incomplete")


def _reader(data: bytes) -> Any:
    offset = 0

    def read_exact(n: int) -> Any:
        nonlocal offset
        chunk = data[offset : offset + n]
        offset += n
        if False:  # pragma: no cover (a generator that never needs more data)
            yield
        return chunk

    return read_exact


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_masked_text_frame_matches_websockets(length: int, monkeypatch) -> None:
    payload = bytes(i % 251 for i in range(length))
    mask = b"\x12\x34\x56\x78"
    ours = masked_text_frame(payload, mask)
    # Byte for byte what websockets' own serializer writes with the same key...
    monkeypatch.setattr(websockets.frames.secrets, "token_bytes", lambda n: mask)
    assert ours == Frame(Opcode.TEXT, payload).serialize(mask=True)
    # ...and what its parser reads back (as a server would).
    frame = _unframe(ours)
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


def test_mask_keys_refill_and_differ() -> None:
    keys = _MaskKeys()
    drawn = [keys.next() for _ in range(3000)]  # crosses two pool refills
    assert all(len(k) == 4 for k in drawn)
    assert len(set(drawn)) > 2900  # 32-bit random keys: collisions are rare, repeats a bug


async def test_appends_take_the_fast_path_in_order(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    chunks = [bytes([n]) * 160 for n in range(50)]
    for chunk in chunks:
        assert client.append_audio(chunk)
    client.send(p.input_audio_commit())
    await client.wait_for(lambda e: isinstance(e, ev.InputCommitted), T)
    assert client.stats.frames_written_sync >= 50  # no writer wakeup needed on an idle socket
    session = await sim.wait_session()
    got = [
        base64.b64decode(e["audio"]) for e in session.client_events_of("input_audio_buffer.append")
    ]
    assert got == chunks


async def test_backed_up_socket_queues_and_keeps_order(sim, client_factory, monkeypatch):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    transport = client._ws.transport
    real_size = transport.get_write_buffer_size
    # The kernel would not take more: every frame must wait in the queue for the writer.
    monkeypatch.setattr(transport, "get_write_buffer_size", lambda: 10**9)
    sync_before = client.stats.frames_written_sync
    first = [bytes([n]) * 160 for n in range(5)]
    for chunk in first:
        assert client.append_audio(chunk)
    assert client.stats.frames_written_sync == sync_before
    assert len(client._outbound) == 5
    # Socket drained again while frames are still queued: new frames must not overtake them.
    monkeypatch.setattr(transport, "get_write_buffer_size", real_size)
    second = [bytes([100 + n]) * 160 for n in range(5)]
    for chunk in second:
        assert client.append_audio(chunk)
    assert len(client._outbound) == 10
    client.send(p.input_audio_commit())
    await client.wait_for(lambda e: isinstance(e, ev.InputCommitted), T)
    session = await sim.wait_session()
    got = [
        base64.b64decode(e["audio"]) for e in session.client_events_of("input_audio_buffer.append")
    ]
    assert got == first + second
    await asyncio.sleep(0)
    assert not client._outbound


# -- set_event_sink: events handled in the reader task, no queue hop ------------------------


async def test_event_sink_gets_queued_then_live_events_in_order_and_connection_lost(
    sim, client_factory
):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    # session.updated (and anything else so far) is already queued: handed over first.
    got: list[Any] = []
    lost = asyncio.get_running_loop().create_future()

    def sink(event: Any) -> None:
        got.append(event)
        if isinstance(event, ev.ConnectionLost) and not lost.done():
            lost.set_result(event)

    client.set_event_sink(sink)
    assert any(isinstance(e, ev.SessionUpdated) for e in got)
    client.append_audio(bytes(800))
    client.send(p.input_audio_commit())
    await client.wait_for(lambda e: isinstance(e, ev.InputCommitted), T)
    kinds = [type(e) for e in got]
    assert kinds.index(ev.SessionUpdated) < kinds.index(ev.InputCommitted)
    session = await sim.wait_session()
    sim.drop_session(session.id)
    event = await asyncio.wait_for(lost, T)
    assert event.code == 1006 and got[-1] is event
    assert client._inbound.empty()  # nothing went the events() way


async def test_event_sink_exception_is_logged_and_the_link_stays_up(sim, client_factory, caplog):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    seen: list[Any] = []

    def sink(event: Any) -> None:
        seen.append(event)
        raise RuntimeError("consumer bug")

    client.set_event_sink(sink)
    for _ in range(2):
        client.append_audio(bytes(800))
        client.send(p.input_audio_commit())
        await client.wait_for(lambda e: isinstance(e, ev.InputCommitted), T)
    assert sum(isinstance(e, ev.InputCommitted) for e in seen) == 2
    assert client.connected
    assert "realtime event handler failed" in caplog.text


# -- the read callback: messages parsed where the socket is read, no reader task -------------


CLEARED = '{"type":"input_audio_buffer.cleared","event_id":"e2"}'


def _created() -> str:
    return (
        '{"type":"session.created","event_id":"e0","session":{"type":"realtime",'
        '"id":"sess_1","object":"realtime.session"}}'
    )


@contextlib.asynccontextmanager
async def _scripted(*messages: Any, close: tuple[int, str] | None = None) -> AsyncIterator[Any]:
    """A bare websockets server on a free loopback port that sends session.created, then
    `messages` (a list is sent as one fragmented message), then closes with `close` or waits;
    yields a RealtimeClient pointed at it, not yet connected. Everything is closed after."""
    from websockets.asyncio.server import serve

    from gateway.realtime.client import Endpoint, RealtimeClient

    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        await ws.send(_created())
        for message in messages:
            await ws.send(message)
        if close is not None:
            await ws.close(*close)
        await done.wait()

    server = await serve(handler, "127.0.0.1", 0, compression=None)
    port = server.sockets[0].getsockname()[1]
    client = RealtimeClient(Endpoint.custom(f"ws://127.0.0.1:{port}/v1/realtime?model=m"))
    try:
        yield client
    finally:
        done.set()
        await client.close()
        server.close()
        await server.wait_closed()


async def test_fragmented_server_message_is_joined(port_block):
    # One response.output_audio.delta in three frames (TEXT + 2 CONT), then a plain one.
    delta = base64.b64encode(bytes(range(256)) * 4).decode()
    text = (
        '{"type":"response.output_audio.delta","event_id":"e1","response_id":"r",'
        f'"item_id":"i","output_index":0,"content_index":0,"delta":"{delta}"}}'
    )
    third = len(text) // 3
    async with _scripted([text[:third], text[third : 2 * third], text[2 * third :]], CLEARED) as c:
        await c.connect(T)
        first = await c.next_event(T)
        assert isinstance(first, ev.AudioDelta) and first.audio == bytes(range(256)) * 4
        assert isinstance(await c.next_event(T), ev.InputCleared)


async def test_events_in_the_handshake_chunk_are_not_lost(port_block):
    """session.created and the next event may arrive with the 101 response in one read."""
    async with _scripted(CLEARED) as client:
        created = await client.connect(T)
        assert created.event_id == "e0"
        assert isinstance(await client.next_event(T), ev.InputCleared)


async def test_malformed_server_message_is_counted_and_skipped(port_block):
    async with _scripted("{not json", '{"no":"type"}', CLEARED) as client:
        await client.connect(T)
        assert isinstance(await client.next_event(T), ev.InputCleared)
        assert client.parser.malformed == 2 and client.connected


async def test_server_close_reason_reaches_the_sink(port_block):
    lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    async with _scripted(close=(4000, "session expired")) as client:
        await client.connect(T)
        client.set_event_sink(
            lambda e: lost.set_result(e) if isinstance(e, ev.ConnectionLost) else None
        )
        event = await asyncio.wait_for(lost, T)
        assert event.code == 4000 and event.reason == "session expired"


def test_mask_keys_use_each_pool_byte_once_in_order(monkeypatch) -> None:
    """Issue 14 split the pool with one struct call: the keys are still the pool's consecutive
    4-byte pieces, each used once, and a drained pool draws a fresh one."""
    from gateway import wsock

    pools = [bytes((n, i % 256, i // 256, 7)) for n in (1, 2) for i in range(1024)]
    draws = iter([b"".join(pools[:1024]), b"".join(pools[1024:])])
    calls: list[int] = []

    def urandom(size: int) -> bytes:
        calls.append(size)
        return next(draws)

    monkeypatch.setattr(wsock.os, "urandom", urandom)
    keys = _MaskKeys()
    drawn = [keys.next() for _ in range(1025)]
    assert drawn == pools[:1025]
    assert calls == [4096, 4096]
