"""MCP tool activity in a Realtime session, as log records (pure: a server event in, fields out).

The Realtime service calls remote MCP servers itself (`type: "mcp"` tools in session.update); the
gateway only sees the events: `mcp_list_tools.in_progress|completed|failed`,
`response.mcp_call.in_progress|completed|failed`, `response.mcp_call_arguments.done`, and the
items that carry the detail (`mcp_list_tools` in `conversation.item.done`; `mcp_call`,
`mcp_approval_request` in `response.output_item.done`). Shapes: the `openai` SDK's
`openai/types/realtime/mcp_list_tools_*.py`, `response_mcp_call_*.py`,
`realtime_mcp_tool_call.py`, `realtime_mcp_list_tools.py`, `realtime_mcp_approval_request.py`.

Arguments and outputs are the model's and a third party's data: they are summarised (length),
never logged verbatim. `response.mcp_call_arguments.delta` (per token) gives no record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

MCP_EVENT_TYPES = frozenset(
    {
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    }
)
# The one event per item type that carries it complete (each item is also in other events:
# one record per item, not three). A tool listing is not part of a response.
MCP_ITEM_EVENTS = {
    "mcp_list_tools": "conversation.item.done",
    "mcp_call": "response.output_item.done",
    "mcp_approval_request": "response.output_item.done",
}
_MAX_TEXT = 200  # error messages are cut here; a hostile server could send megabytes
_MAX_TOOLS = 50


@dataclass(frozen=True, slots=True)
class McpRecord:
    """One log line: `event` (the log event name), `message`, level, and JSON-safe `fields`."""

    event: str
    message: str
    level: int = logging.INFO
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpEvent:
    """What `protocol.parse_server_event` returns for an MCP event (instead of IgnoredEvent /
    OutputItemDone), so the call session can log it: `mcp_record(event.raw)`."""

    type: str
    raw: dict[str, Any]


def is_mcp_event(data: dict[str, Any]) -> bool:
    """True for the server events `mcp_record` turns into a record."""
    kind = data.get("type")
    if kind in MCP_EVENT_TYPES:
        return True
    item = data.get("item")
    return isinstance(item, dict) and MCP_ITEM_EVENTS.get(str(item.get("type"))) == kind


def mcp_record(data: dict[str, Any]) -> McpRecord | None:
    """The log record for one decoded server event, or None when it is not about MCP."""
    if not is_mcp_event(data):
        return None
    kind = str(data["type"])
    if kind in MCP_EVENT_TYPES:
        return _status_record(kind, data)
    return _item_record(kind, data["item"])


def _status_record(kind: str, data: dict[str, Any]) -> McpRecord:
    fields: dict[str, Any] = {"type": kind, "item_id": _text(data.get("item_id"))}
    if "response_id" in data:
        fields["response_id"] = _text(data.get("response_id"))
    failed = kind.endswith(".failed")
    level = logging.WARNING if failed else logging.INFO
    if kind.startswith("mcp_list_tools."):
        state = kind.rsplit(".", 1)[1]
        return McpRecord("mcp.list_tools", f"MCP tool listing {state}", level, fields)
    if kind == "response.mcp_call_arguments.done":
        fields["arguments_chars"] = len(str(data.get("arguments") or ""))
        return McpRecord("mcp.call_arguments", "MCP call arguments complete", level, fields)
    state = kind.rsplit(".", 1)[1]
    return McpRecord("mcp.call", f"MCP call {state}", level, fields)


def _item_record(kind: str, item: dict[str, Any]) -> McpRecord:
    item_type = item.get("type")
    fields: dict[str, Any] = {
        "type": kind,
        "item_id": _text(item.get("id")),
        "server_label": _text(item.get("server_label")),
    }
    if item_type == "mcp_list_tools":
        tools = item.get("tools") if isinstance(item.get("tools"), list) else []
        names = [_text(t.get("name")) for t in tools[:_MAX_TOOLS] if isinstance(t, dict)]
        fields.update(tools=names, tool_count=len(tools))
        return McpRecord(
            "mcp.tools_listed",
            f"MCP server {fields['server_label']} lists {len(tools)} tool(s)",
            logging.INFO,
            fields,
        )
    fields["name"] = _text(item.get("name"))
    fields["arguments_chars"] = len(str(item.get("arguments") or ""))
    if item_type == "mcp_approval_request":
        # The gateway approves nothing: a tool that needs approval does not run.
        return McpRecord(
            "mcp.approval_requested",
            f"MCP tool {fields['name']} needs approval; the gateway gives none "
            "(set require_approval / no_approval_tools)",
            logging.WARNING,
            fields,
        )
    error = item.get("error")
    if isinstance(error, dict):
        fields["error_type"] = _text(error.get("type"))
        fields["error"] = _text(error.get("message"))
    if item.get("output") is not None:
        fields["output_chars"] = len(str(item.get("output")))
    failed = error is not None
    return McpRecord(
        "mcp.call_item",
        f"MCP call {fields['server_label']}.{fields['name']} "
        + ("failed" if failed else "returned"),
        logging.WARNING if failed else logging.INFO,
        fields,
    )


def _text(value: Any) -> str:
    return str(value)[:_MAX_TEXT] if value is not None else ""
