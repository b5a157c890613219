"""GPT-Live server events: what we act on is typed; the rest is ignored and counted; hostile
frames never raise."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.live import events as le
from tests.live.validate import check_live_server_event


def parse(event: dict, parser: le.LiveEventParser | None = None):
    return (parser or le.LiveEventParser()).parse(orjson.dumps(event))


STARTED = {
    "type": "session.started",
    "event_id": "ev_1",
    "client_event_id": "start_1",
    "session": {
        "id": "live_abc",
        "expires_at": 1_900_000_000,
        "model": "gpt-live-1",
        "status": "active",
        "audio": {"format": {"type": "audio/pcma", "rate": 8000}, "output": {"voice": "marin"}},
        "input": [],
    },
}


def test_session_started() -> None:
    check_live_server_event(STARTED)
    event = parse(STARTED)
    assert isinstance(event, le.SessionStarted)
    assert (event.session_id, event.expires_at) == ("live_abc", 1_900_000_000.0)
    assert (event.audio_format, event.audio_rate, event.client_event_id) == (
        "audio/pcma",
        8000,
        "start_1",
    )


def test_audio_delta_is_decoded() -> None:
    raw = {"type": "session.output_audio.delta", "delta": base64.b64encode(b"\x01\x02").decode()}
    check_live_server_event(raw)
    assert parse(raw) == le.OutputAudio(b"\x01\x02")


def test_transcripts_usage_delegation_closed_error() -> None:
    out = {
        "type": "session.output_transcript.delta",
        "event_id": "e",
        "delta": " hello",
        "start_ms": 200,
        "end_ms": 400,
    }
    inp = dict(out, type="session.input_transcript.delta")
    usage = {"type": "session.usage.updated", "event_id": "e", "usage": {"seconds": 15.5}}
    deleg = {
        "type": "session.delegation.created",
        "event_id": "e",
        "offset_ms": 1200,
        "delegation": {"id": "item_1", "type": "delegation", "target": "responses"},
    }
    closed = {
        "type": "session.closed",
        "event_id": "e",
        "reason": "expired",
        "session": STARTED["session"],
        "usage": {"seconds": 31.0},
    }
    error = {
        "type": "error",
        "event_id": "e",
        "error": {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "message": "Unknown parameter",
            "param": "session.speed",
            "client_event_id": "start_1",
        },
    }
    for raw in (out, inp, usage, deleg, closed, error):
        check_live_server_event(raw)
    assert parse(out) == le.OutputTranscript(" hello", 200, 400)
    assert parse(inp) == le.InputTranscript(" hello", 200, 400)
    assert parse(usage) == le.UsageUpdated(15.5)
    assert parse(deleg) == le.DelegationCreated("item_1", "responses", None)
    assert parse(closed) == le.SessionClosed("expired", 31.0)
    err = parse(error)
    assert err == le.ErrorEvent(
        "invalid_request_error",
        "unknown_parameter",
        "Unknown parameter",
        "session.speed",
        "start_1",
    )


def _response_event(nested: dict) -> dict:
    return {"type": "response.event", "event_id": "e", "delegation_id": "item_1", "event": nested}


def test_function_calls_only_from_output_item_done() -> None:
    done = _response_event(
        {
            "type": "response.output_item.done",
            "item": {
                "type": "function_call",
                "call_id": "call_1",
                "name": "lookup",
                "arguments": '{"order": "42"}',
                "status": "completed",
            },
        }
    )
    check_live_server_event(done)
    assert parse(done) == le.FunctionCall("item_1", "call_1", "lookup", '{"order": "42"}')
    # The arguments-done event (no name, no call_id) and empty lifecycle snapshots: nothing.
    args_done = _response_event(
        {"type": "response.function_call_arguments.done", "arguments": "{}", "item_id": "fc_1"}
    )
    assert parse(args_done) is None
    message_done = _response_event(
        {"type": "response.output_item.done", "item": {"type": "message", "content": []}}
    )
    assert parse(message_done) is None
    completed = _response_event(
        {"type": "response.completed", "response": {"id": "resp_1", "output": []}}
    )
    assert parse(completed) == le.ResponseStatus("item_1", "completed", "resp_1")


def test_unknown_types_are_ignored_and_counted() -> None:
    parser = le.LiveEventParser()
    assert parse({"type": "session.input_audio.muted", "event_id": "e"}, parser) is None
    assert parse({"type": "something.new"}, parser) is None
    assert parser.ignored["something.new"] == 1
    assert parser.malformed == 0
    for i in range(500):  # a hostile server inventing types does not grow memory
        parser.parse(orjson.dumps({"type": f"t{i}"}))
    assert len(parser.ignored) <= 64


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[]",
        b'{"type": 5}',
        b"{}",
        orjson.dumps({"type": "session.output_audio.delta", "delta": "!!not base64!!"}),
        orjson.dumps({"type": "session.output_audio.delta", "delta": 12}),
        orjson.dumps({"type": "session.output_audio.delta", "delta": "A" * 200_000}),
        orjson.dumps({"type": "session.started", "session": "x"}),
        orjson.dumps({"type": "session.started", "session": {"id": "x" * 1000}}),
        orjson.dumps({"type": "session.output_transcript.delta", "delta": "a", "start_ms": "0"}),
        orjson.dumps({"type": "session.usage.updated", "usage": {"seconds": "many"}}),
        orjson.dumps({"type": "session.usage.updated", "usage": {"seconds": -1}}),
        orjson.dumps({"type": "response.event", "event": []}),
        orjson.dumps(
            {
                "type": "response.event",
                "event": {
                    "type": "response.output_item.done",
                    "item": {"type": "function_call", "call_id": 1, "name": "x"},
                },
            }
        ),
        orjson.dumps(
            {
                "type": "response.event",
                "event": {
                    "type": "response.output_item.done",
                    "item": {
                        "type": "function_call",
                        "call_id": "c",
                        "name": "x",
                        "arguments": "{" * 100_000,
                    },
                },
            }
        ),
        orjson.dumps({"type": "session.delegation.created", "delegation": None}),
    ],
)
def test_hostile_frames_are_counted_never_raised(frame: bytes) -> None:
    parser = le.LiveEventParser()
    assert parser.parse(frame) is None
    assert parser.malformed == 1


def test_bad_close_reason_and_error_shapes_still_parse_safely() -> None:
    assert parse({"type": "session.closed", "reason": 7}) == le.SessionClosed("unknown", None)
    err = parse({"type": "error", "error": "nope"})
    assert isinstance(err, le.ErrorEvent) and err.code is None
    long = parse({"type": "error", "error": {"message": "m" * 100_000}})
    assert isinstance(long, le.ErrorEvent) and len(long.message) == le.MAX_TEXT_CHARS


def test_absurd_usage_is_not_believed() -> None:
    parser = le.LiveEventParser()
    assert (
        parser.parse(orjson.dumps({"type": "session.usage.updated", "usage": {"seconds": 1e12}}))
        is None
    )
    assert parser.malformed == 1
    closed = parse({"type": "session.closed", "reason": "expired", "usage": {"seconds": 1e12}})
    assert closed == le.SessionClosed("expired", None)
