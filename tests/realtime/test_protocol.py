"""Builders produce GA events the SDK schema accepts; parsers read every server event we use."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from tests.realtime.validate import check_client_event, check_server_event

TOOLS = (
    p.FunctionTool("end_call", "Hang up", {"type": "object", "properties": {}}),
    p.FunctionTool(
        "send_dtmf",
        "Send digits",
        {"type": "object", "properties": {"digits": {"type": "string"}}, "required": ["digits"]},
    ),
)


@pytest.mark.parametrize(
    "config",
    [
        p.SessionConfig(),
        p.SessionConfig(input_format="audio/pcma", output_format="audio/pcma", voice="cedar"),
        p.SessionConfig(turn_detection=p.SemanticVad(eagerness="high", interrupt_response=False)),
        p.SessionConfig(
            turn_detection=p.ServerVad(threshold=0.7, idle_timeout_ms=8000, create_response=False)
        ),
        p.SessionConfig(turn_detection=None, noise_reduction="far_field"),
        p.SessionConfig(
            noise_reduction="near_field",
            transcription_model="gpt-4o-mini-transcribe",
            transcription_language="de",
        ),
        p.SessionConfig(
            tools=TOOLS,
            tool_choice="required",
            model="gpt-realtime",
            instructions="Be brief.",
            speed=1.2,
        ),
    ],
)
def test_session_update_is_valid_ga(config):
    event = p.session_update(config, event_id="cfg_1")
    check_client_event(event)
    session = event["session"]
    assert session["type"] == "realtime"  # required on every update
    assert session["audio"]["input"]["format"] == {"type": config.input_format}  # no rate for G.711
    assert session["audio"]["output"]["format"] == {"type": config.output_format}
    assert "temperature" not in session and "modalities" not in session


def test_session_update_nulls_clear_optional_features():
    session = p.session_update(p.SessionConfig(turn_detection=None))["session"]
    audio_input = session["audio"]["input"]
    assert audio_input["turn_detection"] is None
    assert audio_input["noise_reduction"] is None
    assert audio_input["transcription"] is None
    assert session["tools"] == []


@pytest.mark.parametrize(
    "config",
    [
        p.SessionConfig(input_format="audio/pcm"),  # type: ignore[arg-type]
        p.SessionConfig(output_format="g711_ulaw"),  # type: ignore[arg-type]
        p.SessionConfig(noise_reduction="loud"),  # type: ignore[arg-type]
        p.SessionConfig(turn_detection=p.ServerVad(threshold=1.5)),
        p.SessionConfig(turn_detection=p.SemanticVad(eagerness="max")),  # type: ignore[arg-type]
        p.SessionConfig(tool_choice="sometimes"),
        p.SessionConfig(tools=(p.FunctionTool(""),)),
    ],
)
def test_bad_config_is_a_clear_error(config):
    with pytest.raises(p.ProtocolError):
        p.session_update(config)


@pytest.mark.parametrize(
    "event",
    [
        p.user_text_message("caller pressed 5"),
        p.user_text_message("caller pressed 5", role="system"),
        p.function_call_output("call_1", '{"ok":true}', event_id="fco"),
        p.item_truncate("item_1", 0, 1234),
        p.item_delete("item_1"),
        p.response_create(),
        p.response_create(instructions="Greet the caller."),
        p.response_cancel(),
        p.response_cancel("resp_1"),
        p.input_audio_clear(),
        p.input_audio_commit(),
    ],
)
def test_control_builders_are_valid_ga(event):
    check_client_event(event)


def test_builder_errors():
    with pytest.raises(p.ProtocolError):
        p.item_truncate("item_1", 0, -1)
    with pytest.raises(p.ProtocolError):
        p.function_call_output("", "x")


@given(st.binary(max_size=2000))
def test_append_fast_path_equals_json_encoding(audio):
    frame = p.input_audio_append(audio)
    assert orjson.loads(frame) == {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(audio).decode(),
    }


def test_append_frame_is_valid_ga():
    check_client_event(p.input_audio_append(b"\xff" * 160))


# ---------------------------------------------------------------------------------------------
# server events: each sample is checked against the SDK model first, so the parser is tested on
# real GA shapes, not on shapes we made up.

AUDIO = bytes(range(256))
IDS = {"response_id": "resp_1", "item_id": "item_2", "output_index": 0, "content_index": 0}
SAMPLES = [
    (
        {
            "type": "session.updated",
            "event_id": "e1",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"format": {"type": "audio/pcma"}},
                    "output": {"format": {"type": "audio/pcmu"}},
                },
            },
        },
        lambda e: (
            isinstance(e, ev.SessionUpdated)
            and (e.input_format, e.output_format) == ("audio/pcma", "audio/pcmu")
        ),
    ),
    (
        {
            "type": "session.created",
            "event_id": "e0",
            "session": {"type": "realtime", "id": "sess_1", "model": "gpt-realtime"},
        },
        lambda e: (
            e
            == ev.SessionCreated(
                "sess_1",
                "gpt-realtime",
                {"type": "realtime", "id": "sess_1", "model": "gpt-realtime"},
                "e0",
            )
        ),
    ),
    (
        {
            "type": "error",
            "event_id": "e2",
            "error": {
                "type": "invalid_request_error",
                "code": "unknown_parameter",
                "message": "Unknown parameter: 'session.x'.",
                "param": "session.x",
                "event_id": "cfg_1",
            },
        },
        lambda e: (
            e
            == ev.ErrorEvent(
                "invalid_request_error",
                "unknown_parameter",
                "Unknown parameter: 'session.x'.",
                "session.x",
                "cfg_1",
                "e2",
            )
        ),
    ),
    (
        {
            "type": "input_audio_buffer.speech_started",
            "event_id": "e",
            "audio_start_ms": 1200,
            "item_id": "item_1",
        },
        lambda e: e == ev.SpeechStarted(1200, "item_1"),
    ),
    (
        {
            "type": "input_audio_buffer.speech_stopped",
            "event_id": "e",
            "audio_end_ms": 2400,
            "item_id": "item_1",
        },
        lambda e: e == ev.SpeechStopped(2400, "item_1"),
    ),
    (
        {
            "type": "input_audio_buffer.committed",
            "event_id": "e",
            "item_id": "item_1",
            "previous_item_id": None,
        },
        lambda e: e == ev.InputCommitted("item_1", None),
    ),
    ({"type": "input_audio_buffer.cleared", "event_id": "e"}, lambda e: e == ev.InputCleared()),
    (
        {
            "type": "input_audio_buffer.timeout_triggered",
            "event_id": "e",
            "audio_start_ms": 1,
            "audio_end_ms": 2,
            "item_id": "i",
        },
        lambda e: e == ev.InputTimeoutTriggered(1, 2, "i"),
    ),
    (
        {
            "type": "response.created",
            "event_id": "e",
            "response": {"id": "resp_1", "status": "in_progress"},
        },
        lambda e: e == ev.ResponseCreated("resp_1"),
    ),
    (
        {
            "type": "response.done",
            "event_id": "e",
            "response": {
                "id": "resp_1",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"},
                "output": [
                    {
                        "type": "function_call",
                        "id": "item_3",
                        "call_id": "call_1",
                        "name": "end_call",
                        "arguments": "{}",
                    }
                ],
                "usage": {
                    "total_tokens": 30,
                    "input_tokens": 20,
                    "output_tokens": 10,
                    "input_token_details": {
                        "audio_tokens": 15,
                        "text_tokens": 5,
                        "cached_tokens": 4,
                    },
                    "output_token_details": {"audio_tokens": 8, "text_tokens": 2},
                },
            },
        },
        lambda e: (
            isinstance(e, ev.ResponseDone)
            and e.status == "cancelled"
            and e.reason == "turn_detected"
            and e.usage == ev.Usage(30, 20, 10, 15, 5, 8, 2, 4)
            and e.function_calls[0]["call_id"] == "call_1"
        ),
    ),
    (
        {
            "type": "response.output_item.added",
            "event_id": "e",
            "response_id": "resp_1",
            "output_index": 0,
            "item": {
                "id": "item_2",
                "type": "message",
                "role": "assistant",
                "content": [],
                "status": "in_progress",
            },
        },
        lambda e: (
            isinstance(e, ev.OutputItemAdded) and (e.item_id, e.item_type) == ("item_2", "message")
        ),
    ),
    (
        {
            "type": "response.output_item.done",
            "event_id": "e",
            "response_id": "resp_1",
            "output_index": 0,
            "item": {
                "id": "item_3",
                "type": "function_call",
                "name": "end_call",
                "arguments": "{}",
                "call_id": "c",
            },
        },
        lambda e: (
            isinstance(e, ev.OutputItemDone)
            and (e.item_id, e.item_type) == ("item_3", "function_call")
        ),
    ),
    (
        {
            "type": "response.output_audio.delta",
            "event_id": "e",
            **IDS,
            "delta": base64.b64encode(AUDIO).decode(),
        },
        lambda e: e == ev.AudioDelta("resp_1", "item_2", 0, 0, AUDIO),
    ),
    (
        {"type": "response.output_audio.done", "event_id": "e", **IDS},
        lambda e: e == ev.AudioDone("resp_1", "item_2", 0, 0),
    ),
    (
        {"type": "response.output_audio_transcript.delta", "event_id": "e", **IDS, "delta": "Hel"},
        lambda e: e == ev.TranscriptDelta("resp_1", "item_2", "Hel"),
    ),
    (
        {
            "type": "response.output_audio_transcript.done",
            "event_id": "e",
            **IDS,
            "transcript": "Hello",
        },
        lambda e: e == ev.TranscriptDone("resp_1", "item_2", "Hello"),
    ),
    (
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e",
            "item_id": "item_1",
            "content_index": 0,
            "transcript": "hi there",
            "usage": {"type": "duration", "seconds": 1.2},
        },
        lambda e: e == ev.InputTranscriptionCompleted("item_1", 0, "hi there"),
    ),
    (
        {
            "type": "response.function_call_arguments.done",
            "event_id": "e",
            "response_id": "resp_1",
            "item_id": "item_3",
            "output_index": 1,
            "call_id": "call_1",
            "name": "transfer_call",
            "arguments": '{"dest":"100"}',
        },
        lambda e: (
            e
            == ev.FunctionCallArgumentsDone(
                "resp_1", "item_3", "call_1", "transfer_call", '{"dest":"100"}'
            )
        ),
    ),
    (
        {
            "type": "conversation.item.truncated",
            "event_id": "e",
            "item_id": "item_2",
            "content_index": 0,
            "audio_end_ms": 640,
        },
        lambda e: e == ev.ItemTruncated("item_2", 0, 640),
    ),
    (
        {"type": "conversation.item.deleted", "event_id": "e", "item_id": "item_2"},
        lambda e: e == ev.ItemDeleted("item_2"),
    ),
    (
        {
            "type": "rate_limits.updated",
            "event_id": "e",
            "rate_limits": [
                {"name": "requests", "limit": 100, "remaining": 99, "reset_seconds": 1.5}
            ],
        },
        lambda e: e == ev.RateLimitsUpdated((ev.RateLimit("requests", 100, 99, 1.5),)),
    ),
    (
        {"type": "response.content_part.added", "event_id": "e", **IDS, "part": {"type": "audio"}},
        lambda e: e == ev.IgnoredEvent("response.content_part.added"),
    ),
]


@pytest.mark.parametrize(("raw", "expect"), SAMPLES, ids=[s[0]["type"] for s in SAMPLES])
def test_parse_server_events(raw, expect):
    check_server_event(raw, strict=False)
    parser = p.ServerEventParser()
    event = parser.parse(orjson.dumps(raw))
    assert expect(event), event
    assert parser.unknown_types == {} and parser.malformed == 0


def test_unknown_and_malformed_events_are_counted_not_raised():
    parser = p.ServerEventParser()
    assert isinstance(parser.parse(b'{"type":"response.hologram.delta","x":1}'), ev.UnknownEvent)
    parser.parse(b'{"type":"response.hologram.delta"}')
    assert parser.unknown_types == {"response.hologram.delta": 2}
    for frame in (
        b"not json",
        b"[1,2]",
        b'{"no_type":1}',
        b'{"type":"response.output_audio.delta"}',
        b'{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"@@@"}',
        b'{"type":"response.done","response":"oops"}',
    ):
        assert parser.parse(frame) is None
    assert parser.malformed == 6


def test_error_describe_names_the_problem():
    error = ev.ErrorEvent(
        "invalid_request_error",
        "missing_required_parameter",
        "Missing required parameter: 'session.type'.",
        "session.type",
        "cfg_1",
    )
    text = error.describe()
    assert "missing_required_parameter" in text and "session.type" in text and "cfg_1" in text


# --------------------------------------------------------------------------------------------
# issue 10: speed, transcription, tool_choice, max_output_tokens, truncation, reasoning, MCP

MCP = p.McpTool(
    server_label="crm",
    server_url="https://mcp.example.com/sse",
    server_description="Customer records",
    headers=(("Authorization", "Bearer secret-token"),),
    allowed_tools=("lookup_customer", "open_ticket"),
    require_approval="always",
    no_approval_tools=("lookup_customer",),
)


@pytest.mark.parametrize(
    "config",
    [
        p.SessionConfig(
            transcription_model="gpt-4o-mini-transcribe",
            transcription_language="de",
            transcription_prompt="Kundennummer, Rechnung",
            speed=0.8,
            max_output_tokens=512,
            truncation=0.6,
            reasoning_effort="low",
        ),
        p.SessionConfig(tools=(*TOOLS, MCP), tool_choice="mcp:crm", truncation="disabled"),
        p.SessionConfig(tools=TOOLS, tool_choice="function:end_call", truncation="auto"),
        p.SessionConfig(tools=(p.McpTool("kb", "https://kb.example.com/mcp"),), tool_choice="none"),
        p.SessionConfig(
            tools=(p.McpTool("kb", "https://kb.example.com/mcp", require_approval="never"),),
            reasoning_effort="xhigh",
            max_output_tokens=4096,
        ),
    ],
)
def test_issue10_session_fields_are_valid_ga(config):
    event = p.session_update(config)
    check_client_event(event)  # the SDK model, unknown keys rejected


def test_issue10_session_field_shapes():
    session = p.session_update(
        p.SessionConfig(
            tools=(*TOOLS, MCP),
            tool_choice="function:send_dtmf",
            max_output_tokens=300,
            truncation=0.75,
            reasoning_effort="medium",
            transcription_model="gpt-4o-mini-transcribe",
            transcription_prompt="account numbers",
            speed=1.1,
        )
    )["session"]
    assert session["tool_choice"] == {"type": "function", "name": "send_dtmf"}
    assert session["max_output_tokens"] == 300
    assert session["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.75}
    assert session["reasoning"] == {"effort": "medium"}
    assert session["audio"]["input"]["transcription"]["prompt"] == "account numbers"
    assert session["audio"]["output"]["speed"] == 1.1
    mcp = session["tools"][-1]
    assert mcp == {
        "type": "mcp",
        "server_label": "crm",
        "server_url": "https://mcp.example.com/sse",
        "server_description": "Customer records",
        "headers": {"Authorization": "Bearer secret-token"},
        "allowed_tools": ["lookup_customer", "open_ticket"],
        "require_approval": {"never": {"tool_names": ["lookup_customer"]}},
    }
    # Defaults leave the service's own values alone.
    plain = p.session_update(p.SessionConfig())["session"]
    assert not {"max_output_tokens", "truncation", "reasoning"} & set(plain)


@pytest.mark.parametrize(
    "config",
    [
        p.SessionConfig(tool_choice="function:nope", tools=TOOLS),
        p.SessionConfig(tool_choice="mcp:crm"),
        p.SessionConfig(tool_choice="sometimes"),
        p.SessionConfig(speed=2.0),
        p.SessionConfig(max_output_tokens=0),
        p.SessionConfig(max_output_tokens=5000),
        p.SessionConfig(truncation=1.5),
        p.SessionConfig(truncation="sometimes"),
        p.SessionConfig(reasoning_effort="max"),
        p.SessionConfig(tools=(p.McpTool("", "https://x"),)),
        p.SessionConfig(tools=(p.McpTool("x", "https://x", require_approval="maybe"),)),  # type: ignore[arg-type]
    ],
)
def test_issue10_bad_values_are_protocol_errors(config):
    with pytest.raises(p.ProtocolError):
        config.to_session()


async def test_issue10_session_is_accepted_by_the_simulator():
    """The simulator (which validates session.update like the service) confirms the update."""
    from gateway.realtime.client import Endpoint, open_session
    from gateway.realtime.simulator import Simulator

    config = p.SessionConfig(
        tools=(*TOOLS, MCP),
        tool_choice="mcp:crm",
        transcription_model="gpt-4o-mini-transcribe",
        transcription_language="de",
        transcription_prompt="Rechnung",
        speed=1.2,
        max_output_tokens=200,
        truncation=0.5,
        reasoning_effort="low",
    )
    async with Simulator("127.0.0.1", 0) as sim:
        client = await open_session(Endpoint.custom(sim.url), config, configure_timeout=5)
        try:
            session = client.effective_session
            assert session["max_output_tokens"] == 200
            assert session["audio"]["output"]["speed"] == 1.2
        finally:
            await client.close()
