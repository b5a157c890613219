"""The GPT-Live simulator's own validation of client events (gateway/live/simulator/schema.py):
every one of the 15 client event types accepted in its documented shape, and unknown keys, bad
types, bad values and bad audio formats refused with the code and param the service sends.
Each corpus event is also put to the `openai` SDK's models (strict, unknown keys rejected): both
must agree, bar the reviewed differences of the schema module's docstring."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.live.simulator.schema import CLIENT_EVENT_TYPES, validate_client_event
from tests.live_simulator.validate_server import sdk_client_problem

FUNCTION_TOOL = {
    "type": "function",
    "name": "end_call",
    "description": "Hang up",
    "parameters": {"type": "object", "properties": {}},
    "strict": True,
}
RESPONSES = {
    "type": "responses",
    "acknowledgement_delay_ms": 0,
    "responses": {
        "model": "gpt-5.4",
        "instructions": "tools",
        "tools": [FUNCTION_TOOL, {"type": "web_search"}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "max_output_tokens": 256,
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low"},
        "service_tier": "auto",
    },
}
FULL_CONFIG = {
    "model": "gpt-live-1",
    "instructions": "Be brief.",
    "audio": {"format": {"type": "audio/pcmu", "rate": 8000}, "output": {"voice": "cedar"}},
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "x"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
    ],
    "delegation": RESPONSES,
    "store": False,
    "safety_identifier": "caller-1",
    "triggers": [
        {
            "type": "decisions",
            "event_type": "session.input_transcript.delta",
            "decisions": {"questions": [{"type": "predicate", "instructions": "angry?"}]},
        }
    ],
    "client": {"data_channel": {"allowed_client_events": "all"}},
}

VALID: list[dict[str, Any]] = [
    {"type": "session.start", "session": {"model": "gpt-live-1"}},
    {"type": "session.start", "session": FULL_CONFIG, "event_id": "e1"},
    {
        "type": "session.start",
        "session": {
            "model": "gpt-live-1.1",
            "audio": {"format": {"type": "audio/pcma", "rate": 8000}},
        },
    },
    {
        "type": "session.start",
        "session": {"model": "m", "audio": {"format": {"type": "audio/pcm", "rate": 16000}}},
    },
    {"type": "session.start", "session": {"model": "m", "delegation": None}},
    {"type": "session.start", "session": {"model": "m", "delegation": {"type": "client"}}},
    {
        "type": "session.start",
        "session": {"model": "m", "audio": {"output": {"voice": {"id": "voice_123"}}}},
    },
    {
        "type": "session.update",
        "session": {"delegation": {"type": "responses", "responses": {"tools": [FUNCTION_TOOL]}}},
    },
    {"type": "session.update", "session": {"triggers": []}},
    {"type": "session.input_audio.append", "audio": "//8="},
    {"type": "session.input_audio.mute"},
    {"type": "session.input_audio.unmute", "event_id": "u"},
    {"type": "session.output_audio.fixture.play", "audio": "AAAA"},
    {"type": "session.instructions.append", "content": "Greet.", "delegation_id": None},
    {"type": "session.thinking.append", "content": "Keypad: 4 2", "delegation_id": None},
    {"type": "session.commentary.append", "content": "Done.", "delegation_id": "item_1"},
    {"type": "decision.create", "event_id": "d1"},
    {"type": "decision.item.delete", "item_id": "i"},
    {
        "type": "response.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
    },
    {
        "type": "response.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "4"}],
        },
    },
    {"type": "response.create"},
    {"type": "session.close", "event_id": "bye"},
]

# (event, code, param)
INVALID: list[tuple[dict[str, Any], str, str | None]] = [
    (
        {"type": "session.start", "session": {"model": "m", "voice": "marin"}},
        "unknown_parameter",
        "session.voice",
    ),
    (
        {"type": "session.start", "session": {"model": "m", "temperature": 0.8}},
        "unknown_parameter",
        "session.temperature",
    ),
    (
        {"type": "session.start", "session": {"model": "m", "turn_detection": None}},
        "unknown_parameter",
        "session.turn_detection",
    ),
    ({"type": "session.start", "session": {}}, "missing_required_parameter", "session.model"),
    ({"type": "session.start", "session": {"model": 5}}, "invalid_type", "session.model"),
    (
        {"type": "session.start", "session": {"model": "m", "store": "yes"}},
        "invalid_type",
        "session.store",
    ),
    (
        {
            "type": "session.start",
            "session": {"model": "m", "audio": {"format": {"type": "audio/pcmu"}}},
        },
        "missing_required_parameter",
        "session.audio.format.rate",
    ),
    (
        {
            "type": "session.start",
            "session": {"model": "m", "audio": {"format": {"type": "audio/g729", "rate": 8000}}},
        },
        "invalid_value",
        "session.audio.format.type",
    ),
    (
        {
            "type": "session.start",
            "session": {"model": "m", "audio": {"format": {"type": "audio/pcm", "rate": 8000}}},
        },
        "invalid_value",
        "session.audio.format.rate",
    ),
    (
        {
            "type": "session.start",
            "session": {"model": "m", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
        },
        "unknown_parameter",
        "session.audio.input",
    ),
    (
        {
            "type": "session.start",
            "session": {"model": "m", "delegation": {"type": "responses", "responses": {}}},
        },
        "missing_required_parameter",
        "session.delegation.responses.model",
    ),
    (
        {"type": "session.start", "session": {"model": "m", "delegation": {"type": "robots"}}},
        "invalid_value",
        "session.delegation.type",
    ),
    (
        {
            "type": "session.start",
            "session": {"model": "m", "input": [{"role": "tool", "content": []}]},
        },
        "invalid_value",
        "session.input[0].role",
    ),
    (
        {"type": "session.start", "session": {"model": "m", "tools": []}},
        "unknown_parameter",
        "session.tools",
    ),
    (
        {"type": "session.start", "session": {"model": "m"}, "extra": 1},
        "unknown_parameter",
        "extra",
    ),
    ({"type": "session.input_audio.append"}, "missing_required_parameter", "audio"),
    ({"type": "session.input_audio.append", "audio": 5}, "invalid_type", "audio"),
    (
        {"type": "session.instructions.append", "content": "x", "delegation_id": 3},
        "invalid_type",
        "delegation_id",
    ),
    (
        {"type": "session.thinking.append", "content": ["x"], "delegation_id": None},
        "invalid_type",
        "content",
    ),
    ({"type": "decision.create"}, "missing_required_parameter", "event_id"),
    (
        {
            "type": "response.item.create",
            "item": {"type": "function_call_output", "output": 1, "call_id": "c"},
        },
        "invalid_type",
        "item.output",
    ),
    ({"type": "response.create", "response": {}}, "unknown_parameter", "response"),
    ({"type": "session.close", "reason": "bye"}, "unknown_parameter", "reason"),
    ({"type": "response.cancel"}, "invalid_value", "type"),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": 1,
        },
        "invalid_value",
        "type",
    ),
    ({"type": "input_audio_buffer.append", "audio": ""}, "invalid_value", "type"),
    ({"audio": ""}, "missing_required_parameter", "type"),
]

# Reviewed differences (schema.py docstring): the simulator refuses, the SDK's models accept.
SIMULATOR_STRICTER = [
    # G.711 at another rate: the SDK types rate as int; only 8000 is documented.
    {
        "type": "session.start",
        "session": {"model": "m", "audio": {"format": {"type": "audio/pcmu", "rate": 16000}}},
    },
    # delegation_id: "Required, nullable" (docstring), Optional in the SDK model.
    {"type": "session.commentary.append", "content": "x"},
    # function_call_output without call_id cannot be matched to a call.
    {"type": "response.item.create", "item": {"type": "function_call_output", "output": "{}"}},
    # Documented limits the SDK's types do not carry (section 2).
    {
        "type": "session.start",
        "session": {"model": "m", "input": [{"role": "user", "content": [{"text": "hi"}]}] * 129},
    },
    {
        "type": "session.start",
        "session": {
            "model": "m",
            "input": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}],
        },
    },
    {
        "type": "session.start",
        "session": {"model": "m", "input": [{"role": "user", "content": [{"text": "x" * 40000}]}]},
    },
    {"type": "session.start", "session": {"model": "m", "instructions": "x" * 70000}},
    {
        "type": "session.update",
        "session": {
            "triggers": [
                {
                    "type": "decisions",
                    "event_type": "session.input_transcript.delta",
                    "decisions": {"questions": []},
                }
            ]
            * 2
        },
    },
    # hosted-tool items: the simulator runs no hosted tools.
    {"type": "response.item.create", "item": {"type": "item_reference", "id": "x"}},
]


@pytest.mark.parametrize("event", VALID)
def test_valid_events_are_accepted_by_the_simulator_and_the_sdk(event) -> None:
    assert validate_client_event(event) is None
    assert sdk_client_problem(event) is None


def test_every_client_event_type_is_in_the_valid_corpus() -> None:
    assert {e["type"] for e in VALID} | {"decision.item.create"} == set(CLIENT_EVENT_TYPES)
    assert len(CLIENT_EVENT_TYPES) == 15


@pytest.mark.parametrize(("event", "code", "param"), INVALID)
def test_invalid_events_name_the_problem_and_the_sdk_refuses_them_too(event, code, param) -> None:
    problem = validate_client_event(event)
    assert problem is not None
    assert (problem.code, problem.param) == (code, param), problem.message
    assert sdk_client_problem(event) is not None


def test_unknown_event_type_lists_the_supported_types() -> None:
    problem = validate_client_event({"type": "response.cancel"})
    assert problem is not None
    for kind in CLIENT_EVENT_TYPES:
        assert f"'{kind}'" in problem.message


@pytest.mark.parametrize("event", SIMULATOR_STRICTER)
def test_reviewed_differences_are_refused_by_the_simulator(event) -> None:
    assert validate_client_event(event) is not None
    assert sdk_client_problem(event) is None  # still a difference: else move it to INVALID


def test_session_update_of_an_immutable_field_is_immutable_field_update() -> None:
    for key, value in (("instructions", "x"), ("model", "m"), ("audio", {}), ("input", [])):
        problem = validate_client_event({"type": "session.update", "session": {key: value}})
        assert problem is not None
        assert (problem.code, problem.param) == ("immutable_field_update", f"session.{key}")
    problem = validate_client_event({"type": "session.update", "session": {"speed": 1}})
    assert problem is not None and problem.code == "unknown_parameter"


@pytest.mark.parametrize("value", [None, [], "x", 3])
def test_a_non_object_event_or_session_is_an_error_not_a_crash(value) -> None:
    assert validate_client_event(value) is not None
    assert validate_client_event({"type": "session.start", "session": value}) is not None
    assert validate_client_event({"type": value}) is not None


def test_limits_name_the_param() -> None:
    too_many = [{"role": "user", "content": [{"text": "hi"}]}] * 129
    problem = validate_client_event(
        {"type": "session.start", "session": {"model": "m", "input": too_many}}
    )
    assert problem is not None and problem.param == "session.input"
    two_parts = [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]
    problem = validate_client_event(
        {"type": "session.start", "session": {"model": "m", "input": two_parts}}
    )
    assert problem is not None and problem.param == "session.input[0].content"
    ok = [{"role": "user", "content": [{"text": "hi"}]}] * 128
    assert (
        validate_client_event({"type": "session.start", "session": {"model": "m", "input": ok}})
        is None
    )
