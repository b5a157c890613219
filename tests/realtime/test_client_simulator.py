"""RealtimeClient against the local simulator: the GA exchange end to end on loopback."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import Endpoint, RealtimeClient, RealtimeError
from gateway.realtime.simulator import ToolCallRule
from tests.conftest import require_peer
from tests.realtime.conftest import silence, speech_like

T = 5.0  # generous per-await bound; never a timing assertion


async def collect_until(
    client: RealtimeClient, stop: Callable[[Any], bool], limit: int = 5000
) -> list[Any]:
    seen: list[Any] = []
    for _ in range(limit):
        event = await client.next_event(T)
        seen.append(event)
        if stop(event):
            return seen
        if isinstance(event, ev.ConnectionLost):
            break
    raise AssertionError(f"stop condition not met; last events: {seen[-5:]}")


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def vad_config(fmt: str = "audio/pcmu", **vad: Any) -> p.SessionConfig:
    return p.SessionConfig(
        input_format=fmt,  # type: ignore[arg-type]
        output_format=fmt,  # type: ignore[arg-type]
        instructions="Answer briefly.",
        turn_detection=p.ServerVad(**{"silence_duration_ms": 500, "prefix_padding_ms": 300, **vad}),
    )


async def append_chunks(client: RealtimeClient, audio: bytes, chunk: int = 160) -> None:
    """RTP-sized appends, yielding now and then so the writer drains the bounded queue."""
    for index, offset in enumerate(range(0, len(audio), chunk)):
        assert client.append_audio(audio[offset : offset + chunk])
        if index % 100 == 99:
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
async def test_configure_confirms_g711_format(sim, client_factory, fmt):
    client = await client_factory(sim)
    assert client.session is not None and client.session.session_id.startswith("sess_")
    updated = await client.configure(vad_config(fmt), timeout=T)
    assert updated.input_format == fmt and updated.output_format == fmt
    session = await sim.wait_session()
    assert session.input_format == fmt and session.output_format == fmt


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
async def test_speech_turn_is_detected_and_echoed(sim, client_factory, fmt):
    client = await client_factory(sim)
    await client.configure(vad_config(fmt), timeout=T)
    # 500 ms silence, 1000 ms speech, 800 ms silence, in 20 ms RTP-sized appends.
    await append_chunks(client, silence(500, fmt) + speech_like(1000, fmt) + silence(800, fmt))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    started = of(events, ev.SpeechStarted)[0]
    stopped = of(events, ev.SpeechStopped)[0]
    committed = of(events, ev.InputCommitted)[0]
    # Onset at 500 ms minus 300 ms prefix padding; stop = end of speech + 500 ms silence.
    assert 150 <= started.audio_start_ms <= 250
    assert 1900 <= stopped.audio_end_ms <= 2100
    assert started.item_id == stopped.item_id == committed.item_id
    deltas = of(events, ev.AudioDelta)
    assert len(deltas) > 3 and len({len(d.audio) for d in deltas}) > 1  # varied chunk sizes
    utterance_bytes = (stopped.audio_end_ms - started.audio_start_ms) * 8
    assert sum(len(d.audio) for d in deltas) == utterance_bytes
    done = of(events, ev.ResponseDone)[0]
    assert done.status == "completed" and done.usage is not None and done.usage.output_tokens > 0
    assert (
        of(events, ev.AudioDone)
        and of(events, ev.OutputItemAdded)
        and of(events, ev.OutputItemDone)
    )
    assert of(events, ev.TranscriptDone)
    assert client.parser.unknown_types == {}
    # The echoed audio is the caller's utterance (same format both ways: byte-identical).
    session = await sim.wait_session()
    user_item = session.items[committed.item_id]
    assert b"".join(d.audio for d in deltas) == bytes(user_item.audio)


async def test_truncate_valid_then_too_long(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send(p.user_text_message("hello"))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    deltas = of(events, ev.AudioDelta)
    item_id = deltas[0].item_id
    received_ms = sum(len(d.audio) for d in deltas) // 8
    assert received_ms == 1000  # default reply: 1 s tone
    client.send(p.item_truncate(item_id, 0, 400))
    truncated = await client.wait_for(lambda e: isinstance(e, ev.ItemTruncated | ev.ErrorEvent), T)
    assert truncated == ev.ItemTruncated(item_id, 0, 400)
    client.send(p.item_truncate(item_id, 0, 900))
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert error.message == "Audio content of 400ms is already shorter than 900ms"
    assert error.event_id is None  # as observed on the real service
    session = await sim.wait_session()
    assert session.items[item_id].transcript == ""  # unheard text removed from context


async def test_truncate_of_user_item_is_unsupported(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send(p.user_text_message("hello"))
    client.send(p.item_truncate("nope", 0, 0))
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert error.code == "item_not_found"


async def test_delete_item(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send({**p.user_text_message("remember 42"), "event_id": "c1"})
    session = await sim.wait_session()
    for _ in range(200):
        if session.items:
            break
        await asyncio.sleep(0.01)
    item_id = next(iter(session.items))
    client.send(p.item_delete(item_id))
    deleted = await client.wait_for(lambda e: isinstance(e, ev.ItemDeleted | ev.ErrorEvent), T)
    assert deleted == ev.ItemDeleted(item_id)
    client.send(p.item_delete(item_id, event_id="del2"))
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert error.event_id == "del2" and item_id in error.message


async def test_cancel_when_idle_is_not_active(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(), timeout=T)
    client.send(p.response_cancel(event_id="cx"))
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert (error.code, error.message, error.event_id) == (
        "response_cancel_not_active",
        "Cancellation failed: no active response found",
        "cx",
    )


async def test_active_response_conflict_then_cancel(sim_factory, client_factory):
    sim = await sim_factory(default_reply_ms=20000, delta_interval_s=0.05)
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send(p.user_text_message("tell me a long story"))
    client.send(p.response_create())
    created = await client.wait_for(lambda e: isinstance(e, ev.ResponseCreated), T)
    client.send(p.response_create(event_id="second"))
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert error.code == "conversation_already_has_active_response"
    assert created.response_id in error.message and error.event_id == "second"
    client.send(p.response_cancel())
    done = await client.wait_for(lambda e: isinstance(e, ev.ResponseDone), T)
    assert (done.response_id, done.status, done.reason) == (
        created.response_id,
        "cancelled",
        "client_cancelled",
    )
    session = await sim.wait_session()
    assert session.server_events_of("response.output_audio.done")  # pending *.done still sent


async def test_speech_during_response_interrupts_it(sim_factory, client_factory):
    sim = await sim_factory(default_reply_ms=20000, delta_interval_s=0.05)
    client = await client_factory(sim)
    await client.configure(vad_config(), timeout=T)
    client.send(p.user_text_message("talk for a while"))
    client.send(p.response_create())
    await client.wait_for(lambda e: isinstance(e, ev.AudioDelta), T)
    await append_chunks(client, speech_like(300))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert of(events, ev.SpeechStarted)
    done = of(events, ev.ResponseDone)[0]
    assert (done.status, done.reason) == ("cancelled", "turn_detected")
    # With interrupt_response the server already cancelled: a client cancel is a benign error.
    client.send(p.response_cancel())
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert error.code == "response_cancel_not_active"


async def test_scripted_function_call_round_trip(sim_factory, client_factory):
    rule = ToolCallRule(
        "transfer_call", {"destination": "sip:100@pbx"}, when_text_contains="transfer"
    )
    sim = await sim_factory(tool_calls=(rule,))
    client = await client_factory(sim)
    tools = (
        p.FunctionTool(
            "transfer_call",
            "Transfer the caller",
            {
                "type": "object",
                "properties": {"destination": {"type": "string"}},
                "required": ["destination"],
            },
        ),
    )
    await client.configure(p.SessionConfig(turn_detection=None, tools=tools), timeout=T)
    client.send(p.user_text_message("please transfer me to sales"))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    call = of(events, ev.FunctionCallArgumentsDone)[0]
    assert call.name == "transfer_call" and orjson.loads(call.arguments) == {
        "destination": "sip:100@pbx"
    }
    done = of(events, ev.ResponseDone)[0]
    assert done.function_calls[0]["call_id"] == call.call_id
    assert not of(events, ev.AudioDelta)
    client.send(p.function_call_output(call.call_id, '{"ok": true}'))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert of(events, ev.AudioDelta) and not of(events, ev.FunctionCallArgumentsDone)
    assert "ok" in of(events, ev.TranscriptDone)[0].transcript
    assert of(events, ev.ResponseDone)[0].status == "completed"


async def test_function_call_on_nth_audio_turn(sim_factory, client_factory):
    rule = ToolCallRule("end_call", {"reason": "done"}, on_turn=2)
    sim = await sim_factory(tool_calls=(rule,), transcripts=("hello", "goodbye"))
    client = await client_factory(sim)
    config = p.SessionConfig(
        turn_detection=p.ServerVad(silence_duration_ms=300),
        transcription_model="gpt-4o-mini-transcribe",
        tools=(p.FunctionTool("end_call"),),
    )
    await client.configure(config, timeout=T)
    turn = speech_like(400) + silence(600)
    await append_chunks(client, turn)
    first = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert not of(first, ev.FunctionCallArgumentsDone)
    assert of(first, ev.InputTranscriptionCompleted)[0].transcript == "hello"
    await append_chunks(client, turn)
    second = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert of(second, ev.FunctionCallArgumentsDone)[0].name == "end_call"


async def test_session_expiry_then_connection_lost(sim_factory, client_factory):
    sim = await sim_factory(session_max_s=0.3)
    client = await client_factory(sim)
    events = await collect_until(client, lambda e: isinstance(e, ev.ConnectionLost))
    error = of(events, ev.ErrorEvent)[0]
    assert error.code == "session_expired" and "maximum duration" in error.message
    assert events[-1].code == 1001
    with pytest.raises(RealtimeError):
        client.send(p.response_create())


async def test_dropped_socket_surfaces_connection_lost(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(), timeout=T)
    session = await sim.wait_session()
    sim.drop_session(session.id)
    events = await collect_until(client, lambda e: isinstance(e, ev.ConnectionLost))
    assert events[-1].code == 1006
    assert not client.connected

    async def drain() -> list[Any]:
        return [e async for e in client.events()]

    assert await asyncio.wait_for(drain(), T) == []  # the iterator ends after ConnectionLost


async def test_handshake_headers_ga_only(sim, client_factory):
    await client_factory(sim)
    headers = (await sim.wait_session()).request_headers
    assert headers["authorization"] == "Bearer sk-test"
    assert "openai-beta" not in headers
    assert "sec-websocket-extensions" not in headers  # compression disabled


async def test_beta_header_is_refused_with_4000(sim):
    async with connect(
        sim.url, additional_headers={"OpenAI-Beta": "realtime=v1"}, compression=None
    ) as ws:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), T))
        assert frame["type"] == "error" and frame["error"]["code"] == "beta_api_shape_disabled"
        await asyncio.wait_for(ws.wait_closed(), T)
        assert ws.close_code == 4000
    client = RealtimeClient(Endpoint.custom(sim.url, {"OpenAI-Beta": "realtime=v1"}))
    with pytest.raises(RealtimeError) as info:
        await client.connect(timeout=T)
    assert info.value.error is not None and info.value.error.code == "beta_api_shape_disabled"


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "session.create", "session": {}}, "invalid_value", "type"),
        ({"type": "response.created"}, "invalid_value", "type"),
        (
            {"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}},
            "unknown_parameter",
            "session.modalities",
        ),
        (
            {"type": "session.update", "session": {"instructions": "hi"}},
            "missing_required_parameter",
            "session.type",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcmu", "rate": 8000}}},
                },
            },
            "unknown_parameter",
            "session.audio.input.format.rate",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "input_audio_format": "g711_ulaw"},
            },
            "unknown_parameter",
            "session.input_audio_format",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {"turn_detection": {"type": "server_vad", "silence_ms": 200}}
                    },
                },
            },
            "unknown_parameter",
            "session.audio.input.turn_detection.silence_ms",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"output": {"format": {"type": "g711_ulaw"}}},
                },
            },
            "invalid_value",
            "session.audio.output.format.type",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": 5},
            "missing_required_parameter",
            "content_index",
        ),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type", "audio"),
        ({"type": "response.cancel", "bogus": 1}, "unknown_parameter", "bogus"),
    ],
)
async def test_invalid_client_events_are_rejected(
    sim, client_factory, expect_invalid, event, code, param
):
    client = await client_factory(sim)
    expect_invalid.append(event)
    client.send({**event, "event_id": "bad_1"})
    expect_invalid.append({**event, "event_id": "bad_1"})
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert (error.code, error.param, error.event_id) == (code, param, "bad_1")
    assert error.type == "invalid_request_error"
    # The session survives a rejected event.
    await client.configure(p.SessionConfig(), timeout=T)


async def test_configure_refused_raises_with_server_error(sim, client_factory, expect_invalid):
    client = await client_factory(sim)
    bad = {"instructions": "no type"}
    with pytest.raises(RealtimeError) as info:
        await client.configure(bad, timeout=T)
    assert info.value.error is not None and info.value.error.code == "missing_required_parameter"
    assert "session.type" in str(info.value)
    session = await sim.wait_session()
    expect_invalid.extend(session.client_events_of("session.update"))


async def test_manual_commit_needs_100_ms(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.append_audio(silence(40))
    client.send(p.input_audio_commit())
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert error.code == "input_audio_buffer_commit_empty"
    client.append_audio(silence(100))
    client.send(p.input_audio_commit())
    committed = await client.wait_for(lambda e: isinstance(e, ev.InputCommitted), T)
    assert committed.item_id


async def test_full_send_queue_drops_audio_only(sim, client_factory):
    # write_through=False: every frame waits for the writer task, as when the socket is backed
    # up (with the fast path a drained socket takes all 10 at once and nothing queues).
    client = await client_factory(sim, send_queue_frames=4, write_through=False)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    results = [client.append_audio(silence(20)) for _ in range(10)]  # no await: writer cannot drain
    client.send(p.input_audio_clear())  # control events are queued even when full
    assert results.count(False) == 6 and client.stats.appends_dropped == 6
    await client.wait_for(lambda e: isinstance(e, ev.InputCleared), T)
    session = await sim.wait_session()
    assert len(session.client_events_of("input_audio_buffer.append")) == 4


async def test_concurrent_sessions_are_separate(sim, client_factory):
    first = await client_factory(sim)
    second = await client_factory(sim)
    assert first.session.session_id != second.session.session_id
    await asyncio.gather(
        first.configure(p.SessionConfig(), timeout=T),
        second.configure(vad_config("audio/pcma"), timeout=T),
    )
    assert sim.sessions[first.session.session_id].input_format == "audio/pcmu"
    assert sim.sessions[second.session.session_id].input_format == "audio/pcma"
    assert len(sim.client_events) == 2 and all(
        r.type == "session.update" for r in sim.client_events
    )


async def test_idle_timeout_commits_silence_and_answers(sim, client_factory):
    client = await client_factory(sim)
    config = p.SessionConfig(turn_detection=p.ServerVad(idle_timeout_ms=1000))
    await client.configure(config, timeout=T)
    client.send(p.user_text_message("hi"))
    client.send(p.response_create())
    await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    # Deadline on audio time: 0 ms input at response.done + 1000 ms reply + 1000 ms idle.
    await append_chunks(client, silence(2500))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    fired = of(events, ev.InputTimeoutTriggered)[0]
    assert (fired.audio_start_ms, fired.audio_end_ms) == (0, 2000)
    assert of(events, ev.InputCommitted)[0].item_id == fired.item_id
    assert of(events, ev.ResponseDone)[0].status == "completed"


async def test_connect_failure_is_a_clear_error(port_block):
    client = RealtimeClient(Endpoint.custom(f"ws://127.0.0.1:{port_block}/v1/realtime"))
    with pytest.raises(RealtimeError, match="cannot connect"):
        await client.connect(timeout=T)


def test_endpoints_are_ga_shaped():
    openai = Endpoint.openai("sk-1", "gpt-realtime")
    assert openai.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert openai.headers == {"Authorization": "Bearer sk-1"}
    azure = Endpoint.azure("myres", "my-deploy", "k1")
    assert azure.url == "wss://myres.openai.azure.com/openai/v1/realtime?model=my-deploy"
    assert azure.headers == {"api-key": "k1"}
    assert Endpoint.azure("https://myres.openai.azure.com/", "d", "k").url.startswith(
        "wss://myres.openai.azure.com/openai/v1/realtime"
    )
    for endpoint in (openai, azure):
        assert not any(name.lower() == "openai-beta" for name in endpoint.headers)


async def test_close_ends_event_iteration_and_sending(sim, client_factory):
    client = await client_factory(sim)
    await client.close()

    async def drain() -> list[Any]:
        return [e async for e in client.events()]

    assert await asyncio.wait_for(drain(), T) == []
    with pytest.raises(RealtimeError):
        client.append_audio(silence(20))
    session = await sim.wait_session()
    await asyncio.wait_for(session.closed.wait(), T)


@pytest.fixture
def espeak_speech(tmp_path) -> bytes:
    """About 3 s of synthetic speech as 8 kHz u-law (espeak-ng, then sox)."""
    require_peer("espeak-ng", "sox")
    wav, raw = tmp_path / "speech.wav", tmp_path / "speech.ul"
    text = "Hello, I would like to speak to the sales department please."
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, timeout=30, capture_output=True)
    subprocess.run(
        ["sox", str(wav), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", str(raw)],
        check=True,
        timeout=30,
        capture_output=True,
    )
    return raw.read_bytes()


async def test_real_speech_from_espeak_is_a_turn(sim, client_factory, espeak_speech):
    speech = espeak_speech
    assert len(speech) > 8000  # more than a second of speech
    client = await client_factory(sim)
    await client.configure(vad_config(silence_duration_ms=700), timeout=T)
    await append_chunks(client, silence(400) + speech + silence(1500))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    started, stopped = of(events, ev.SpeechStarted)[0], of(events, ev.SpeechStopped)[0]
    speech_ms = len(speech) // 8
    assert 0 <= started.audio_start_ms <= 400
    assert 400 + speech_ms // 2 <= stopped.audio_end_ms <= 400 + speech_ms + 1500
    echoed = sum(len(d.audio) for d in of(events, ev.AudioDelta))
    assert echoed == (stopped.audio_end_ms - started.audio_start_ms) * 8


async def test_configured_reply_audio_is_played_in_session_format(sim_factory, client_factory):
    reply = speech_like(700, "audio/pcma")
    sim = await sim_factory(reply_audio=reply, reply_format="audio/pcma", reply_text="Hello there")
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)  # pcmu session
    client.send(p.user_text_message("hi"))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    audio = b"".join(d.audio for d in of(events, ev.AudioDelta))
    assert len(audio) == len(reply)  # 700 ms, transcoded a-law -> u-law
    assert of(events, ev.TranscriptDone)[0].transcript == "Hello there"


async def test_configure_rejects_a_session_with_other_formats():
    """A server that answers session.updated without our G.711 format must not be trusted."""

    async def wrong_server(ws):
        await ws.send(
            orjson.dumps(
                {
                    "type": "session.created",
                    "event_id": "e0",
                    "session": {"type": "realtime", "id": "sess_x"},
                }
            ).decode()
        )
        await ws.recv()
        pcm = {"type": "audio/pcm", "rate": 24000}
        session = {
            "type": "realtime",
            "audio": {"input": {"format": pcm}, "output": {"format": pcm}},
        }
        await ws.send(
            orjson.dumps({"type": "session.updated", "event_id": "e1", "session": session}).decode()
        )
        await ws.wait_closed()

    async with serve(wrong_server, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = RealtimeClient(Endpoint.custom(f"ws://127.0.0.1:{port}/"))
        try:
            await client.connect(timeout=T)
            with pytest.raises(RealtimeError, match="audio formats"):
                await client.configure(p.SessionConfig(), timeout=T)
        finally:
            await client.close()


async def test_audio_time_continues_across_format_change(sim, client_factory):
    """Audio appended at the 24 kHz PCM default before configuring still counts as time."""
    client = await client_factory(sim)
    client.append_audio(b"\x00\x00" * 24 * 500)  # 500 ms of PCM16 silence at 24 kHz
    client.send(p.input_audio_clear())
    await client.wait_for(lambda e: isinstance(e, ev.InputCleared), T)
    await client.configure(vad_config(), timeout=T)
    await append_chunks(client, speech_like(600) + silence(700))
    events = await collect_until(client, lambda e: isinstance(e, ev.SpeechStopped))
    started = of(events, ev.SpeechStarted)[0]
    assert 450 <= started.audio_start_ms <= 550  # 500 ms of PCM time, then speech (no padding)


async def test_turn_event_order_matches_the_service(sim, client_factory):
    client = await client_factory(sim)
    await client.configure(vad_config(), timeout=T)
    await append_chunks(client, speech_like(400) + silence(700))
    await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    session = await sim.wait_session()
    kinds = [
        r.type
        for r in session.server_events
        if r.type not in ("response.output_audio.delta", "response.output_audio_transcript.delta")
    ]
    expected = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    start = kinds.index("input_audio_buffer.speech_started")
    assert kinds[start : start + len(expected)] == expected
