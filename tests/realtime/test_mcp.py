"""gateway/realtime/mcp.py: MCP server events -> log records (shapes checked against the SDK)."""

from __future__ import annotations

import logging

import orjson
import pytest

from gateway.realtime.mcp import is_mcp_event, mcp_record
from tests.realtime.validate import check_server_event

LIST_IN_PROGRESS = {"type": "mcp_list_tools.in_progress", "event_id": "e1", "item_id": "it_1"}
LIST_FAILED = {"type": "mcp_list_tools.failed", "event_id": "e2", "item_id": "it_1"}
CALL_DONE = {
    "type": "response.mcp_call.completed",
    "event_id": "e3",
    "item_id": "mc_1",
    "output_index": 0,
}
CALL_FAILED = {**CALL_DONE, "type": "response.mcp_call.failed"}
ARGS_DONE = {
    "type": "response.mcp_call_arguments.done",
    "event_id": "e4",
    "item_id": "mc_1",
    "output_index": 0,
    "response_id": "resp_1",
    "arguments": '{"customer": "4711"}',
}
TOOLS_ITEM = {
    "type": "conversation.item.done",
    "event_id": "e5",
    "previous_item_id": None,
    "item": {
        "id": "it_1",
        "type": "mcp_list_tools",
        "server_label": "crm",
        "tools": [
            {"name": "lookup_customer", "input_schema": {"type": "object"}},
            {"name": "open_ticket", "input_schema": {"type": "object"}},
        ],
    },
}
CALL_ITEM = {
    "type": "response.output_item.done",
    "event_id": "e6",
    "response_id": "resp_1",
    "output_index": 0,
    "item": {
        "id": "mc_1",
        "type": "mcp_call",
        "server_label": "crm",
        "name": "lookup_customer",
        "arguments": '{"customer": "4711"}',
        "output": '{"name": "Ada Lovelace", "balance": 12}',
    },
}
CALL_ERROR_ITEM = {
    "type": "response.output_item.done",
    "event_id": "e7",
    "response_id": "resp_1",
    "output_index": 0,
    "item": {
        "id": "mc_2",
        "type": "mcp_call",
        "server_label": "crm",
        "name": "open_ticket",
        "arguments": "{}",
        "error": {"type": "http_error", "code": 502, "message": "bad gateway"},
    },
}
APPROVAL_ITEM = {
    "type": "response.output_item.done",
    "event_id": "e8",
    "response_id": "resp_1",
    "output_index": 0,
    "item": {
        "id": "ap_1",
        "type": "mcp_approval_request",
        "server_label": "crm",
        "name": "open_ticket",
        "arguments": "{}",
    },
}
ALL = [
    LIST_IN_PROGRESS,
    LIST_FAILED,
    CALL_DONE,
    CALL_FAILED,
    ARGS_DONE,
    TOOLS_ITEM,
    CALL_ITEM,
    CALL_ERROR_ITEM,
    APPROVAL_ITEM,
]


@pytest.mark.parametrize("event", ALL, ids=lambda e: e["type"])
def test_samples_are_real_server_events(event):
    check_server_event(event)


@pytest.mark.parametrize(
    ("event", "name", "level", "fields"),
    [
        (LIST_IN_PROGRESS, "mcp.list_tools", logging.INFO, {"item_id": "it_1"}),
        (LIST_FAILED, "mcp.list_tools", logging.WARNING, {"item_id": "it_1"}),
        (CALL_DONE, "mcp.call", logging.INFO, {"item_id": "mc_1"}),
        (CALL_FAILED, "mcp.call", logging.WARNING, {"item_id": "mc_1"}),
        (ARGS_DONE, "mcp.call_arguments", logging.INFO, {"arguments_chars": 20}),
        (
            TOOLS_ITEM,
            "mcp.tools_listed",
            logging.INFO,
            {"server_label": "crm", "tools": ["lookup_customer", "open_ticket"], "tool_count": 2},
        ),
        (
            CALL_ITEM,
            "mcp.call_item",
            logging.INFO,
            {"server_label": "crm", "name": "lookup_customer", "output_chars": 39},
        ),
        (
            CALL_ERROR_ITEM,
            "mcp.call_item",
            logging.WARNING,
            {"name": "open_ticket", "error_type": "http_error", "error": "bad gateway"},
        ),
        (APPROVAL_ITEM, "mcp.approval_requested", logging.WARNING, {"name": "open_ticket"}),
    ],
)
def test_records(event, name, level, fields):
    record = mcp_record(event)
    assert record is not None
    assert record.event == name and record.level == level
    assert fields.items() <= record.fields.items()
    assert record.fields["type"] == event["type"]
    orjson.dumps(record.fields)  # JSON-safe for log_event


def test_arguments_and_outputs_are_not_logged_verbatim():
    for event in ALL:
        text = orjson.dumps(mcp_record(event).fields).decode() + mcp_record(event).message
        assert "4711" not in text and "Ada Lovelace" not in text


def test_other_events_give_no_record():
    assert mcp_record({"type": "response.mcp_call_arguments.delta", "delta": "{"}) is None
    assert mcp_record({"type": "response.output_audio.delta"}) is None
    # A function call item, and an MCP item in an event that is not its one complete event.
    assert not is_mcp_event({"type": "response.output_item.done", "item": {"type": "message"}})
    assert not is_mcp_event({"type": "conversation.item.added", "item": CALL_ITEM["item"]})


def test_hostile_sizes_are_cut():
    huge = {
        **CALL_ERROR_ITEM,
        "item": {**CALL_ERROR_ITEM["item"], "error": {"message": "x" * 10**6}},
    }
    record = mcp_record(huge)
    assert len(record.fields["error"]) == 200
    many = {
        **TOOLS_ITEM,
        "item": {**TOOLS_ITEM["item"], "tools": [{"name": f"t{i}"} for i in range(1000)]},
    }
    record = mcp_record(many)
    assert record.fields["tool_count"] == 1000 and len(record.fields["tools"]) == 50


@pytest.mark.parametrize("event", ALL, ids=lambda e: e["type"])
def test_parser_hands_mcp_events_over_with_their_data(event):
    from gateway.realtime.mcp import McpEvent
    from gateway.realtime.protocol import ServerEventParser

    parser = ServerEventParser()
    parsed = parser.parse(orjson.dumps(event))
    assert parsed == McpEvent(event["type"], event)
    assert mcp_record(parsed.raw) == mcp_record(event)
    assert not parser.unknown_types and parser.malformed == 0


def test_parser_keeps_other_items_as_before():
    from gateway.realtime import events as ev
    from gateway.realtime.protocol import parse_server_event

    done = {**CALL_ITEM, "item": {"id": "m1", "type": "message", "role": "assistant"}}
    assert isinstance(parse_server_event(done), ev.OutputItemDone)
    item_done = {**TOOLS_ITEM, "item": {"id": "m1", "type": "message", "role": "user"}}
    assert parse_server_event(item_done) == ev.IgnoredEvent("conversation.item.done")
