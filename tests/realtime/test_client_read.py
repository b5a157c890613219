"""The read fast path on a real socket (gateway/wsock.py `_CallbackConnection.data_received`,
issue 14): against the simulator, server messages after the handshake are read by
`read_text_messages`, not websockets' parser, and the session's events arrive whole and in
order. tests/test_wsread.py holds the fast path to websockets' own reading on every frame form;
this shows the product takes it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import wsock
from gateway.realtime import events as ev
from gateway.realtime import protocol as p

T = 5.0  # per-await bound, never a timing assertion


async def test_server_events_take_the_read_fast_path(
    sim: Any, client_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = wsock.read_text_messages
    fast: list[bytes] = []

    def counted(data: bytes, max_size: int) -> tuple[list[bytes], int]:
        messages, used = scan(data, max_size)
        fast.extend(messages)
        return messages, used

    monkeypatch.setattr(wsock, "read_text_messages", counted)
    client = await client_factory(sim)
    got: list[Any] = []
    client.set_event_sink(got.append)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.append_audio(bytes(1600))
    client.send(p.input_audio_commit())
    client.send(p.response_create())
    await client.wait_for(lambda e: isinstance(e, ev.ResponseDone), T)
    assert any(isinstance(e, ev.AudioDelta) for e in got)
    # Everything after the handshake's chunk came the fast way (loopback delivers whole
    # frames; a frame cut by a read would go to websockets, which is allowed but rare).
    assert len(fast) >= client.stats.events_received - 2, (len(fast), client.stats)
    assert [p.ServerEventParser().parse(m) for m in fast] == got[-len(fast) :]
