"""The simulator produces what the real service does (issue 10): transcription after
response.created, several output items in one response, real-time pacing with late deltas
after a cancel, failed and incomplete responses, a setup error naming no parameter.

Every exchange is validated against openai.types.realtime by the fixture at teardown."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import RealtimeError
from gateway.realtime.simulator import SimulatorOptions, ToolCallRule
from tests.realtime.conftest import silence, speech_like
from tests.realtime.test_client_simulator import T, append_chunks, collect_until, of, vad_config


def types_of(events: list[Any]) -> list[type]:
    return [type(e) for e in events]


async def test_transcription_arrives_after_response_created(sim_factory, client_factory):
    sim = await sim_factory(transcription_timing="after", transcripts=("hello there",))
    client = await client_factory(sim)
    config = p.SessionConfig(
        turn_detection=p.ServerVad(silence_duration_ms=300),
        transcription_model="gpt-4o-mini-transcribe",
    )
    await client.configure(config, timeout=T)
    await append_chunks(client, speech_like(400) + silence(600))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    order = types_of(events)
    assert order.index(ev.InputCommitted) < order.index(ev.ResponseCreated)
    assert order.index(ev.ResponseCreated) < order.index(ev.InputTranscriptionCompleted)
    assert of(events, ev.InputTranscriptionCompleted)[0].transcript == "hello there"
    assert of(events, ev.InputTranscriptionCompleted)[0].item_id == (
        of(events, ev.InputCommitted)[0].item_id
    )


async def test_default_transcription_comes_before_the_response(sim, client_factory):
    client = await client_factory(sim)
    config = p.SessionConfig(
        turn_detection=p.ServerVad(silence_duration_ms=300),
        transcription_model="gpt-4o-mini-transcribe",
    )
    await client.configure(config, timeout=T)
    await append_chunks(client, speech_like(400) + silence(600))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    order = types_of(events)
    assert order.index(ev.InputTranscriptionCompleted) < order.index(ev.ResponseCreated)


async def test_preamble_then_function_call_in_one_response(sim_factory, client_factory):
    rule = ToolCallRule("lookup", {"q": "x"}, when_text_contains="check", preamble_ms=600)
    sim = await sim_factory(tool_calls=(rule,))
    client = await client_factory(sim)
    await client.configure(
        p.SessionConfig(turn_detection=None, tools=(p.FunctionTool("lookup"),)), timeout=T
    )
    client.send(p.user_text_message("please check my order"))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    added = of(events, ev.OutputItemAdded)
    assert [(a.output_index, a.item_type) for a in added] == [(0, "message"), (1, "function_call")]
    audio = b"".join(d.audio for d in of(events, ev.AudioDelta))
    assert len(audio) == 600 * 8
    assert all(d.item_id == added[0].item_id for d in of(events, ev.AudioDelta))
    order = types_of(events)
    assert order.index(ev.AudioDone) < order.index(ev.FunctionCallArgumentsDone)
    done = of(events, ev.ResponseDone)[0]
    assert [o["type"] for o in done.output] == ["message", "function_call"]
    assert done.status == "completed"


async def test_two_function_calls_in_one_response(sim_factory, client_factory):
    rules = (
        ToolCallRule("lookup", {"q": "a"}, when_text_contains="both"),
        ToolCallRule("weather", {"city": "b"}, when_text_contains="both"),
    )
    sim = await sim_factory(tool_calls=rules, parallel_tool_calls=True)
    client = await client_factory(sim)
    tools = (p.FunctionTool("lookup"), p.FunctionTool("weather"))
    await client.configure(p.SessionConfig(turn_detection=None, tools=tools), timeout=T)
    client.send(p.user_text_message("do both please"))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    calls = of(events, ev.FunctionCallArgumentsDone)
    assert [c.name for c in calls] == ["lookup", "weather"]
    assert len({c.call_id for c in calls}) == 2
    assert [a.output_index for a in of(events, ev.OutputItemAdded)] == [0, 1]
    for call in calls:
        client.send(p.function_call_output(call.call_id, orjson.dumps({"ok": call.name}).decode()))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert of(events, ev.ResponseDone)[0].status == "completed"
    assert not of(events, ev.ErrorEvent)


async def test_realtime_pacing_streams_near_real_time(sim_factory, client_factory):
    sim = await sim_factory(default_reply_ms=1000, realtime_pace=2.0)
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send(p.user_text_message("hi"))
    client.send(p.response_create())
    await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    session = await sim.wait_session()
    deltas = session.server_events_of("response.output_audio.delta")
    times = [r.t for r in session.server_events if r.type == "response.output_audio.delta"]
    # 1 s of audio at twice real time is spread over about half a second, not a few ms. A
    # lower bound only (asyncio.sleep never returns early), so load cannot make it flaky.
    before_last = sum(len(d["delta"]) * 3 // 4 for d in deltas[:-1]) / 8000
    assert times[-1] - times[0] >= before_last / 2.0 * 0.9


async def test_late_deltas_follow_speech_started_then_cancelled(sim_factory, client_factory):
    sim = await sim_factory(default_reply_ms=20000, realtime_pace=1.0, late_deltas=2)
    client = await client_factory(sim)
    await client.configure(vad_config(), timeout=T)
    client.send(p.user_text_message("talk for a while"))
    client.send(p.response_create())
    await client.wait_for(lambda e: isinstance(e, ev.AudioDelta), T)
    await append_chunks(client, speech_like(300))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    started = next(i for i, e in enumerate(events) if isinstance(e, ev.SpeechStarted))
    late = of(events[started:], ev.AudioDelta)
    assert len(late) == 2, "deltas in flight still arrive after speech_started"
    done = of(events, ev.ResponseDone)[0]
    assert (done.status, done.reason) == ("cancelled", "turn_detected")
    assert {d.response_id for d in late} == {done.response_id}


async def test_client_cancel_is_followed_by_late_deltas_too(sim_factory, client_factory):
    sim = await sim_factory(default_reply_ms=20000, realtime_pace=1.0, late_deltas=1)
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send(p.user_text_message("talk"))
    client.send(p.response_create())
    await client.wait_for(lambda e: isinstance(e, ev.AudioDelta), T)
    client.send(p.response_cancel())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert len(of(events, ev.AudioDelta)) >= 1
    done = of(events, ev.ResponseDone)[0]
    assert (done.status, done.reason) == ("cancelled", "client_cancelled")


@pytest.mark.parametrize(
    ("outcome", "status", "reason", "audio"),
    [
        ("failed", "failed", None, False),
        ("incomplete", "incomplete", "max_output_tokens", True),
        ("incomplete_silent", "incomplete", "content_filter", False),
    ],
)
async def test_failed_and_incomplete_responses(
    sim_factory, client_factory, outcome, status, reason, audio
):
    sim = await sim_factory(response_outcomes=(outcome,), default_reply_ms=400)
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    client.send(p.user_text_message("hi"))
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    done = of(events, ev.ResponseDone)[0]
    assert (done.status, done.reason) == (status, reason)
    assert bool(of(events, ev.AudioDelta)) is audio
    if outcome == "incomplete":
        assert sum(len(d.audio) for d in of(events, ev.AudioDelta)) == 400 * 8 // 2
    if status == "failed":
        assert done.error and done.error["type"] == "server_error"
    # The next response is a normal one.
    client.send(p.response_create())
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    assert of(events, ev.ResponseDone)[0].status == "completed"


async def test_setup_error_naming_no_parameter_fails_configure_at_once(sim_factory, client_factory):
    error = {"type": "server_error", "code": None, "message": "The server had an error."}
    sim = await sim_factory(session_update_error=error)
    client = await client_factory(sim)
    # The error itself fails it (a timeout would say "no session.updated within 30.0 s").
    with pytest.raises(RealtimeError, match="server had an error"):
        await client.configure(p.SessionConfig(), timeout=30.0, any_error=True)
    session = await sim.wait_session()
    sent = session.server_events_of("error")[0]["error"]
    assert sent["event_id"] is None and sent["param"] is None


def test_options_from_mapping_check_the_new_options():
    options = SimulatorOptions.from_mapping(
        {"response_outcomes": ["failed"], "transcription_timing": "after", "realtime_pace": 1}
    )
    assert options.response_outcomes == ("failed",)
    with pytest.raises(ValueError, match="response_outcomes"):
        SimulatorOptions.from_mapping({"response_outcomes": ["exploded"]})
    with pytest.raises(ValueError, match="transcription_timing"):
        SimulatorOptions.from_mapping({"transcription_timing": "never"})
    rule = SimulatorOptions.from_mapping({"tool_calls": [{"name": "x", "preamble_ms": 300}]})
    assert rule.tool_calls[0].preamble_ms == 300
