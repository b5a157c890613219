"""Tools offered to the model: the built-in call controls and custom HTTP tools.

Built-in tools (`end_call`, `transfer_call`, `send_dtmf`) are decided by the state machine;
custom tools are POSTed to a configured URL with `{call_id, caller, callee, name, arguments}` and
the response body becomes the `function_call_output`. A tool never raises into the call: every
failure (timeout, refused connection, HTTP error, bad arguments) becomes an output string the model
can read and talk about.

The HTTP call runs `urllib` in a worker thread: tool calls are rare (a few per call), it needs no
extra dependency, and it handles https, proxies from the environment and redirects correctly.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_OUTPUT_BYTES = 64 * 1024  # what we hand back to the model; a tool's HTML error page is cut


@dataclass(frozen=True, slots=True)
class HttpTool:
    """A custom tool from the configuration."""

    name: str
    description: str
    url: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. Authorization for the tool API


def builtin_tool_definitions(
    transfer_targets: Sequence[str], *, end_call: bool = True, send_dtmf: bool = True
) -> list[dict[str, Any]]:
    """Function-tool definitions for session.update (GA shape: type, name, description, parameters)."""
    tools: list[dict[str, Any]] = []
    if end_call:
        tools.append(
            {
                "type": "function",
                "name": "end_call",
                "description": (
                    "Hang up the phone call. Say goodbye first: the call ends after your "
                    "current audio has finished playing."
                ),
                "parameters": {"type": "object", "properties": {}},
            }
        )
    if transfer_targets:
        tools.append(
            {
                "type": "function",
                "name": "transfer_call",
                "description": (
                    "Transfer the caller to another destination (blind transfer). Tell the caller "
                    "first. If the transfer fails you get the reason back."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "target": {
                            "type": "string",
                            "enum": sorted(transfer_targets),
                            "description": "Name of the destination.",
                        }
                    },
                    "required": ["target"],
                },
            }
        )
    if send_dtmf:
        tools.append(
            {
                "type": "function",
                "name": "send_dtmf",
                "description": (
                    "Press keys on the phone keypad (DTMF), for example to navigate an automated "
                    "menu. Digits 0-9, *, # and A-D."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "digits": {"type": "string", "pattern": "^[0-9*#A-D]{1,32}$"},
                    },
                    "required": ["digits"],
                },
            }
        )
    return tools


def http_tool_definition(tool: HttpTool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": dict(tool.parameters),
    }


def parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    """The model's `arguments` JSON string -> (dict, error). Bad JSON is an error for the model."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return {}, f"arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, "arguments must be a JSON object"
    return value, None


def _error(message: str) -> str:
    return json.dumps({"ok": False, "error": message})


def _post(tool: HttpTool, payload: bytes) -> str:
    request = urllib.request.Request(
        tool.url,
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", **tool.headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=tool.timeout_s) as response:
            body = response.read(MAX_OUTPUT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(512).decode("utf-8", "replace") if exc.fp else ""
        return _error(f"tool {tool.name} answered HTTP {exc.code} {exc.reason}: {detail}".strip())
    except urllib.error.URLError as exc:
        return _error(f"tool {tool.name} unreachable: {exc.reason}")
    except TimeoutError:
        return _error(f"tool {tool.name} timed out after {tool.timeout_s:g} s")
    except OSError as exc:
        return _error(f"tool {tool.name} failed: {exc}")
    text = body[:MAX_OUTPUT_BYTES].decode("utf-8", "replace")
    if len(body) > MAX_OUTPUT_BYTES:
        text += " [truncated]"
    return text


async def call_http_tool(
    tool: HttpTool,
    *,
    call_id: str,
    caller: str,
    callee: str,
    arguments: Mapping[str, Any],
) -> str:
    """POST the call to the tool and return the text for function_call_output. Never raises."""
    payload = json.dumps(
        {
            "call_id": call_id,
            "caller": caller,
            "callee": callee,
            "name": tool.name,
            "arguments": dict(arguments),
        }
    ).encode()
    try:
        # The thread's own socket timeout bounds the call; wait_for is the backstop.
        return await asyncio.wait_for(
            asyncio.to_thread(_post, tool, payload), timeout=tool.timeout_s + 1.0
        )
    except TimeoutError:
        return _error(f"tool {tool.name} timed out after {tool.timeout_s:g} s")
