"""GPT-Live handshake on the simulator, with a raw WebSocket client: the one path, no query, a
Bearer token; nothing sent before session.start; strict session.start validation (no
session.started after an error); session.started echoing the resolved configuration."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import InvalidStatus

from tests.live_simulator.raw_client import G711, RawLiveClient


@pytest.mark.parametrize(
    ("suffix", "status"),
    [
        ("?model=gpt-live-1", 400),
        ("?graceful_close=true", 400),
        ("/live_1/attach", 404),
        ("x", 404),
    ],
)
async def test_only_the_bare_sessions_path_upgrades(live_sim, suffix, status) -> None:
    sim = await live_sim()
    with pytest.raises(InvalidStatus) as refused:
        await RawLiveClient.open(sim.live_url + suffix)
    assert refused.value.response.status_code == status
    assert sim.live_opened == 0
    assert sim.live_refused[-1][1] == status


@pytest.mark.parametrize("token", [None, "", " "])
async def test_a_bearer_token_is_required(live_sim, token) -> None:
    sim = await live_sim()
    with pytest.raises(InvalidStatus) as refused:
        await RawLiveClient.open(sim.live_url, token)
    assert refused.value.response.status_code == 401


async def test_the_realtime_path_is_served_as_before(live_sim) -> None:
    from gateway.realtime.client import Endpoint, RealtimeClient

    sim = await live_sim()
    realtime = RealtimeClient(Endpoint.custom(sim.url))
    await realtime.connect(timeout=10)
    assert sim.sessions and not sim.live_sessions
    await realtime.close()
    assert sim.url.endswith("/v1/realtime?model=gpt-realtime")
    assert sim.live_url == f"ws://127.0.0.1:{sim.port}/v1/live/sessions"


async def test_nothing_is_sent_before_session_start_and_another_first_message_is_an_error(
    live_sim, client
) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.send({"type": "session.input_audio.append", "audio": "//8=", "event_id": "a1"})
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert ws.events[0] is error  # no output audio, no greeting, nothing before it
    assert error["error"]["code"] == "session_not_started"
    assert error["error"]["client_event_id"] == "a1"
    started = await ws.start()  # the socket stayed open for a proper start
    assert ws.events.index(started) == 1


async def test_unknown_key_in_session_start_is_refused_without_session_started(
    live_sim, client, expect_invalid
) -> None:
    sim = await live_sim()
    ws = await client(sim)
    bad = {"type": "session.start", "session": {"model": "gpt-live-1", "voice": "marin"}}
    expect_invalid.append(bad)
    await ws.send(bad)
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["code"], error["error"]["param"]) == (
        "unknown_parameter",
        "session.voice",
    )
    bad_format = {
        "type": "session.start",
        "session": {
            "model": "gpt-live-1",
            "audio": {"format": {"type": "audio/pcmu", "rate": 16000}},
        },
    }
    await ws.send(bad_format)
    error = await ws.wait_for(lambda e: e["type"] == "error", since=1)
    assert error["error"]["param"] == "session.audio.format.rate"
    await ws.start()
    assert [e["type"] for e in ws.events[:3]] == ["error", "error", "session.started"]


async def test_session_started_echoes_the_resolved_configuration(live_sim, client) -> None:
    sim = await live_sim(session_max_s=120)
    ws = await client(sim)
    before = time.time()
    history = [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    started = await ws.start(input=history, instructions="Be brief.")
    session = started["session"]
    assert session["id"].startswith("live_")
    assert session["status"] == "active"
    assert session["audio"] == {"format": G711, "output": {"voice": "marin"}}
    assert session["input"] == history
    assert session["delegation"] == {"type": "client"}
    assert session["instructions"] == "Be brief."
    assert before + 119 <= session["expires_at"] <= time.time() + 121
    second = await client(sim)
    started = await second.start(audio={"format": {"type": "audio/pcma", "rate": 8000}})
    assert started["session"]["input"] == []
    assert started["session"]["audio"]["format"] == {"type": "audio/pcma", "rate": 8000}
    live = await sim.wait_live_session(2)
    assert live.id == started["session"]["id"]


async def test_a_second_session_start_and_unknown_event_types_are_errors(
    live_sim, client, expect_invalid
) -> None:
    sim = await live_sim()
    ws = await client(sim)
    await ws.start()
    mark = len(ws.events)
    await ws.send({"type": "session.start", "session": {"model": "gpt-live-1"}, "event_id": "s2"})
    error = await ws.wait_for(lambda e: e["type"] == "error", since=mark)
    assert error["error"]["code"] == "session_already_started"
    for kind in ("response.cancel", "conversation.item.truncate", "input_audio_buffer.commit"):
        bad = {"type": kind}
        expect_invalid.append(bad)
        mark = len(ws.events)
        await ws.send(bad)
        error = await ws.wait_for(lambda e: e["type"] == "error", since=mark)
        assert error["error"]["param"] == "type"
        assert "'session.input_audio.append'" in error["error"]["message"]
        assert "'session.close'" in error["error"]["message"]


async def test_a_socket_that_never_starts_is_closed(live_sim, client) -> None:
    sim = await live_sim(idle_expire_s=0.3)
    ws = await client(sim)
    ended = await ws.wait_closed()
    assert ended.rcvd is not None and ended.rcvd.code == 1008
    assert ws.events == []
