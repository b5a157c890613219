"""The simulator's schema cannot fall behind the installed `openai` SDK again (issue 10).

Its built-in tables (used when `openai` is not installed, e.g. the `run` command in production)
are walked next to the SDK's GA models: any field one accepts and the other does not fails
here, naming the path. With `openai` importable the simulator validates by the SDK's models
(gateway/realtime/simulator/sdk.py); both verdicts are compared on the same events.
"""

from __future__ import annotations

import sys
import typing

import pytest
from openai.types.realtime import RealtimeClientEvent, RealtimeSessionCreateRequest
from openai.types.realtime.conversation_item import ConversationItem
from openai.types.realtime.realtime_response_create_params import RealtimeResponseCreateParams

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.simulator import Simulator, SimulatorOptions, validate_client_event
from gateway.realtime.simulator import schema as sim_schema
from gateway.realtime.simulator import sdk as sim_sdk
from gateway.realtime.simulator.sdk import sdk_validator
from tests.realtime.sdk_drift import compare_model, differences
from tests.realtime.test_client_simulator import T
from tests.realtime.test_simulator_schema import INVALID, VALID

# Deliberate, reviewed differences (path prefixes). The simulator implements no MCP server,
# so it does not take MCP conversation items; it does take MCP *tools* in the session.
ALLOWED = (
    "item: type 'mcp_approval_response'",
    "item: type 'mcp_list_tools'",
    "item: type 'mcp_call'",
    "item: type 'mcp_approval_request'",
)


def _client_event_classes() -> dict[str, type]:
    union = typing.get_args(RealtimeClientEvent)[0]
    classes = {}
    for cls in typing.get_args(union):
        tag = typing.get_args(cls.model_fields["type"].annotation)[0]
        classes[tag] = cls
    return classes


def test_session_fields_match_the_sdk() -> None:
    realtime = sim_schema.SESSION.variants["realtime"]
    assert differences(RealtimeSessionCreateRequest, realtime, "session") == []


def test_mcp_tool_fields_the_sdk_accepts_are_accepted() -> None:
    tool = {
        "type": "mcp",
        "server_label": "crm",
        "server_url": "https://mcp.example/sse",
        "allowed_callers": ["direct"],
        "defer_loading": True,
        "tunnel_id": "tun_1",
        "require_approval": "never",
    }
    event = {"type": "session.update", "session": {"type": "realtime", "tools": [tool]}}
    assert validate_client_event(event) is None
    validate = sdk_validator()
    assert validate is not None and validate(event) is None


def test_response_create_params_match_the_sdk() -> None:
    assert compare_model(RealtimeResponseCreateParams, sim_schema.RESPONSE_PARAMS, "response") == []


def test_every_client_event_type_and_its_fields_match_the_sdk() -> None:
    classes = _client_event_classes()
    assert sorted(classes) == sorted(sim_schema.EVENT_FIELDS)
    assert sorted(classes) == sorted(sim_schema.CLIENT_EVENT_TYPES)
    problems = []
    for tag, cls in classes.items():
        required, optional = sim_schema.EVENT_FIELDS[tag]
        sdk_required = {k for k, f in cls.model_fields.items() if f.is_required()} - {"type"}
        sdk_all = set(cls.model_fields) - {"type", "event_id"}
        if set(required) != sdk_required:
            problems.append(f"{tag}: required {sorted(required)} vs SDK {sorted(sdk_required)}")
        if set(required) | set(optional) != sdk_all:
            problems.append(f"{tag}: fields {sorted({*required, *optional})} vs {sorted(sdk_all)}")
    assert problems == []


def test_conversation_items_match_the_sdk_bar_mcp_items() -> None:
    found = differences(ConversationItem, sim_schema.ITEM, "item")
    assert [d for d in found if not d.startswith(ALLOWED)] == []


@pytest.mark.parametrize("event", VALID + INVALID)
def test_sdk_validator_and_builtin_tables_agree(event) -> None:
    validate = sdk_validator()
    assert validate is not None
    assert (validate(event) is None) == (validate_client_event(event) is None)


def test_sdk_validator_names_the_unknown_parameter() -> None:
    validate = sdk_validator()
    assert validate is not None
    event = {"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}}
    problem = validate(event)
    assert problem is not None
    assert (problem.code, problem.param) == ("unknown_parameter", "session.temperature")
    problem = validate({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 1})
    assert problem is not None and problem.code == "missing_required_parameter"
    assert problem.param == "content_index"


def test_without_openai_the_simulator_keeps_its_builtin_tables(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # import openai -> ImportError
    monkeypatch.setitem(sys.modules, "openai.types.realtime", None)
    assert sdk_validator() is None


async def test_the_simulator_session_uses_the_sdk_and_records_no_disagreement(
    sim_factory, client_factory
) -> None:
    sim: Simulator = await sim_factory()
    client = await client_factory(sim)
    mcp = {"type": "mcp", "server_label": "crm", "server_url": "https://x", "tunnel_id": "t"}
    config = p.SessionConfig(turn_detection=None).to_session()
    config["tools"] = [mcp]
    await client.configure(config, timeout=T)
    client.send(p.user_text_message("hi"))
    client.send(p.response_create())
    await client.wait_for(lambda e: isinstance(e, ev.ResponseDone), T)
    session = await sim.wait_session()
    assert session._sdk_validate is not None
    assert session.schema_disagreements == []


async def test_builtin_schema_option_skips_the_sdk(sim_factory, client_factory) -> None:
    sim = await sim_factory(schema="builtin")
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(), timeout=T)
    session = await sim.wait_session()
    assert session._sdk_validate is None
    assert SimulatorOptions.from_mapping({"schema": "sdk"}).schema == "sdk"


async def test_a_simulator_without_openai_serves_sessions_with_its_builtin_tables(
    monkeypatch, sim_factory, client_factory, expect_invalid
) -> None:
    """The runtime simulator (`run` with no API key) must work where `openai` is not
    installed: the SDK validator is then None and the built-in tables decide."""
    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.setitem(sys.modules, "openai.types.realtime", None)
    monkeypatch.setattr(sim_sdk, "_SDK_VALIDATOR", [])
    sim = await sim_factory()
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    bad = {"type": "session.update", "session": {"type": "realtime", "temperature": 1}}
    expect_invalid.append(bad)
    client.send(bad)
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert (error.code, error.param) == ("unknown_parameter", "session.temperature")
    session = await sim.wait_session()
    assert session._sdk_validate is None
