"""LiveClient against a small in-test GPT-Live server; every frame it receives is validated
against openai.types.live (tests/tools/fake_live.py)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from gateway.live import events as le
from gateway.live import protocol as lp
from gateway.live.client import (
    LiveClient,
    LiveError,
    live_endpoint_azure,
    live_endpoint_openai,
)
from gateway.wsock import Endpoint
from tests.tools.fake_live import fake_live
from tests.tools.wait import async_wait_until


def test_endpoints_have_no_query_and_the_right_auth() -> None:
    openai = live_endpoint_openai("sk-test")
    assert openai.url == "wss://api.openai.com/v1/live/sessions"
    assert openai.headers == {"Authorization": "Bearer sk-test"}
    azure = live_endpoint_azure("myres", "k")
    assert azure.url == "wss://myres.openai.azure.com/openai/v1/live/sessions"
    assert azure.headers == {"api-key": "k"}
    assert "sk-test" not in repr(openai)


async def test_open_sends_session_start_and_waits_for_started() -> None:
    async with fake_live() as server:
        config = lp.LiveSessionConfig(audio_format="audio/pcma", instructions="Hi.")
        client = LiveClient(Endpoint(server.url, {"Authorization": "Bearer k"}), config)
        started = await client.open([("user", "Earlier question")], timeout=5)
        assert started.audio_format == "audio/pcma"
        assert client.session_id == "live_1"
        assert client.expires_at is not None and client.seconds_left() > 3000
        start = server.of_type("session.start")[0]
        assert start["session"]["input"][0]["content"][0]["text"] == "Earlier question"
        path, headers = server.requests[0]
        assert path == "/v1/live/sessions"  # no query
        assert headers["Authorization"] == "Bearer k"
        assert "permessage-deflate" not in headers.get("Sec-WebSocket-Extensions", "")
        assert client.append_audio(b"\xd5" * 160)
        client.send(lp.thinking_append("note"))
        await server.wait(lambda: len(server.received) == 3)
        audio = server.of_type("session.input_audio.append")[0]["audio"]
        assert base64.b64decode(audio) == b"\xd5" * 160
        assert server.types() == ["session.start", "session.thinking.append"]
        await client.close()
        assert server.types()[-1] == "session.close"
        assert client.closed == le.SessionClosed("close_requested", 1.0)
        assert client.usage_seconds == 1.0
        assert not client.connected


async def test_events_reach_the_sink_in_order() -> None:
    async with fake_live() as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig())
        await client.open(timeout=5)
        seen: list[object] = []
        client.set_event_sink(seen.append)
        await server.audio(b"\x7f" * 800)
        await server.transcript("output", " Hello")
        await server.usage(15.0)
        await server.send_raw('{"type": "something.new"}')  # ignored, counted
        await server.send_raw("not json")  # counted
        await async_wait_until(lambda: len(seen) >= 3, 5, "three events at the sink")
        assert seen == [
            le.OutputAudio(b"\x7f" * 800),
            le.OutputTranscript(" Hello", 0, 200),
            le.UsageUpdated(15.0),
        ]
        assert client.usage_seconds == 15.0
        await server.transcript("input", " x")
        await async_wait_until(lambda: len(seen) >= 4, 5, "the fourth event at the sink")
        assert client.parser.ignored["something.new"] == 1
        assert client.parser.malformed == 1
        await client.close()


async def test_an_error_before_started_fails_the_setup() -> None:
    refuse = {"type": "invalid_request_error", "code": "model_not_found", "message": "no model"}
    async with fake_live(refuse=refuse) as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig())
        with pytest.raises(LiveError, match="model_not_found"):
            await client.open(timeout=5)
        assert not client.connected


async def test_no_started_in_time_fails_the_setup() -> None:
    async with fake_live(silent=True) as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig())
        with pytest.raises(LiveError, match=r"no session\.started"):
            await client.open(timeout=0.3)


async def test_an_echoed_format_that_differs_fails_the_setup() -> None:
    pcm = {"type": "audio/pcm", "rate": 24000}
    async with fake_live(echo_format=pcm) as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig())
        with pytest.raises(LiveError, match="audio/pcm/24000"):
            await client.open(timeout=5)


async def test_refused_connection_fails_the_setup() -> None:
    client = LiveClient(Endpoint("ws://127.0.0.1:9/v1/live/sessions"), lp.LiveSessionConfig())
    with pytest.raises(LiveError, match="cannot connect"):
        await client.open(timeout=2)


async def test_a_dropped_socket_is_connection_lost() -> None:
    async with fake_live() as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig())
        await client.open(timeout=5)
        lost = asyncio.get_running_loop().create_future()
        client.set_event_sink(
            lambda e: lost.set_result(e) if isinstance(e, le.ConnectionLost) else None
        )
        server.connections[0].transport.abort()
        event = await asyncio.wait_for(lost, 5)
        assert isinstance(event, le.ConnectionLost)
        assert not client.connected
        with pytest.raises(LiveError):
            client.send(lp.response_create())
        await client.close()  # no session.close on a dead link


async def test_close_is_bounded_when_the_server_never_answers() -> None:
    async with fake_live(answer_close=False) as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig(), close_wait_s=0.2)
        await client.open(timeout=5)
        await client.close()
        assert client.closed is None
        assert server.types()[-1] == "session.close"


async def test_a_cancelled_close_still_closes_the_socket() -> None:
    async with fake_live(answer_close=False) as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig(), close_wait_s=30)
        await client.open(timeout=5)
        task = asyncio.ensure_future(client.close())
        await server.wait(lambda: server.of_type("session.close"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client.connected
        await server.wait(lambda: server.connections[0].state.name == "CLOSED")


async def test_nothing_after_session_closed_reaches_the_sink() -> None:
    async with fake_live() as server:
        client = LiveClient(Endpoint(server.url), lp.LiveSessionConfig())
        await client.open(timeout=5)
        seen: list[object] = []
        client.set_event_sink(seen.append)
        await server.closed("expired")
        await server.audio(b"\x01" * 160)  # a server that keeps talking after its last word
        await server.usage(99.0)
        await server.transcript("output", "late")
        await server.send_raw('{"type": "error", "error": {"message": "after"}}')
        await async_wait_until(lambda: client.frames_after_closed == 4, 5, "4 frames dropped")
        assert [type(e) for e in seen] == [le.SessionClosed]
        assert client.usage_seconds == 1.0  # the final usage, not a later snapshot
        await client.close()
