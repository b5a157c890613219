"""The simulator's client-event validator agrees with the SDK's GA models (extra keys rejected)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.realtime import protocol as p
from gateway.realtime.simulator import validate_client_event
from tests.realtime.validate import client_event_ok

FULL_UPDATE = p.session_update(
    p.SessionConfig(
        turn_detection=p.ServerVad(idle_timeout_ms=5000),
        noise_reduction="near_field",
        transcription_model="gpt-4o-mini-transcribe",
        tools=(p.FunctionTool("end_call", "Hang up"),),
    ),
    event_id="cfg",
)

VALID: list[dict[str, Any]] = [
    FULL_UPDATE,
    p.session_update(p.SessionConfig(turn_detection=p.SemanticVad())),
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
        },
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "max_output_tokens": "inf",
            "tool_choice": {"type": "function", "name": "end_call"},
            "truncation": "disabled",
            "tracing": None,
        },
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"output": {"voice": {"id": "voice_123"}, "speed": 1.5}},
        },
    },
    {"type": "input_audio_buffer.append", "audio": "//8="},
    {"type": "input_audio_buffer.commit", "event_id": "x"},
    {"type": "input_audio_buffer.clear"},
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        },
    },
    {
        "type": "conversation.item.create",
        "previous_item_id": "root",
        "item": {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "earlier reply"}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"id": "fc_1", "type": "function_call_output", "call_id": "c", "output": "{}"},
    },
    {"type": "conversation.item.retrieve", "item_id": "i"},
    {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": 0},
    {"type": "conversation.item.delete", "item_id": "i"},
    {
        "type": "response.create",
        "response": {
            "instructions": "hi",
            "metadata": {"k": "v"},
            "conversation": "none",
            "input": [],
        },
    },
    {"type": "response.cancel", "response_id": "r"},
]

INVALID: list[dict[str, Any]] = [
    {"session": {}},
    {"type": "session.create"},
    {"type": "response.audio.delta"},
    {"type": "session.update"},
    {"type": "session.update", "session": {"instructions": "x"}},
    {"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}},
    {"type": "session.update", "session": {"type": "realtime", "input_audio_format": "g711_ulaw"}},
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcmu", "rate": 8000}}},
        },
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 8000}}},
        },
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_ms": 1}}},
        },
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "max"}}},
        },
    },
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"noise_reduction": {"type": "studio"}}},
        },
    },
    {"type": "session.update", "session": {"type": "realtime", "instructions": 5}},
    {"type": "input_audio_buffer.append"},
    {"type": "input_audio_buffer.append", "audio": "//8=", "rate": 8000},
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "beta"}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "robot", "content": []},
    },
    {"type": "conversation.item.create", "item": {"type": "function_call_output", "output": "{}"}},
    {"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 10},
    {
        "type": "conversation.item.truncate",
        "item_id": "i",
        "content_index": 0,
        "audio_end_ms": "10",
    },
    {"type": "conversation.item.delete"},
    {"type": "response.create", "response": {"modalities": ["audio"]}},
    {"type": "response.cancel", "event_id": 7},
]


@pytest.mark.parametrize("event", VALID)
def test_valid_events_accepted_by_both(event):
    assert client_event_ok(event)
    assert validate_client_event(event) is None


@pytest.mark.parametrize("event", INVALID)
def test_invalid_events_rejected_by_both(event):
    assert not client_event_ok(event)
    problem = validate_client_event(event)
    assert problem is not None and problem.code and problem.message


def test_semantic_rules_beyond_the_schema():
    # The SDK schema allows these; the service does not (reference section 7 caveat c).
    both = {
        "type": "session.update",
        "session": {"type": "realtime", "output_modalities": ["audio", "text"]},
    }
    assert validate_client_event(both).code == "invalid_value"
    tokens = {"type": "session.update", "session": {"type": "realtime", "max_output_tokens": 5000}}
    assert validate_client_event(tokens).param == "session.max_output_tokens"


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for key, sub in value.items():
            out += _paths(sub, (*path, key))
    return out


BASES = [FULL_UPDATE, VALID[8], VALID[12], VALID[14]]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(BASES), st.data(), st.sampled_from(["add_unknown", "drop", "retype"]))
def test_mutations_agree_with_sdk(base, data, mutation):
    event = copy.deepcopy(base)
    paths = [q for q in _paths(event) if q[0] != "type"]
    target = data.draw(st.sampled_from(paths))
    parent = event
    for key in target[:-1]:
        parent = parent[key]
    if mutation == "add_unknown":
        if not isinstance(parent.get(target[-1]), dict):
            return
        parent[target[-1]]["zz_unknown"] = 1
    elif mutation == "drop":
        del parent[target[-1]]
    else:
        value = parent[target[-1]]
        parent[target[-1]] = 12345 if isinstance(value, str) else "text"
    if mutation == "drop" and target[-2:] == ("format", "type"):
        # The SDK's format models make `type` optional ({} validates as audio/pcm); the
        # simulator requires it, deliberately stricter: a typeless format is a gateway bug.
        return
    sdk_ok = client_event_ok(event)
    sim_ok = validate_client_event(event) is None
    assert sim_ok == sdk_ok, (event, validate_client_event(event))


@pytest.mark.parametrize("kind", [["session.update"], {"a": 1}, 3, None])
def test_a_type_that_is_not_a_string_is_an_error_not_an_exception(kind: Any) -> None:
    """Hostile input: an unhashable `type` once raised TypeError inside the simulator."""
    problem = validate_client_event({"type": kind})
    assert problem is not None
    assert problem.param == "type"
