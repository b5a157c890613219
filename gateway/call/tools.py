"""Tools offered to the model: the built-in call controls and custom HTTP tools.

Built-in tools (`end_call`, `transfer_call`, `send_dtmf`) are decided by the state machine;
custom tools are POSTed to a configured URL with `{call_id, caller, callee, name, arguments}` and
the response body becomes the `function_call_output`. A tool never raises into the call: every
failure (timeout, refused connection, HTTP error, bad arguments) becomes an output string the model
can read and talk about.

The HTTP call runs `urllib` in a worker thread (`gateway.http_post`, shared with the webhooks):
tool calls are rare (a few per call), it needs no extra dependency, and it keeps the limits a
tool server must not be able to lift: https unless allowed, no redirect to another origin, the
response read up to `max_response_bytes` and no further.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.http_post import DEFAULT_MAX_RESPONSE_BYTES, HttpPostError, post

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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # read no further (then " [truncated]")
    allow_plain_http: bool = False  # http:// to a host that is not loopback


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


def _error(message: str) -> str:
    return json.dumps({"ok": False, "error": message})


def _post(tool: HttpTool, payload: bytes) -> str:
    headers = {"Content-Type": "application/json", "Accept": "application/json", **tool.headers}
    try:
        result = post(
            tool.url,
            payload,
            headers,
            timeout_s=tool.timeout_s,
            max_response_bytes=tool.max_response_bytes,
            allow_plain_http=tool.allow_plain_http,
        )
    except urllib.error.HTTPError as exc:
        detail = exc.read(512).decode("utf-8", "replace") if exc.fp else ""
        return _error(f"tool {tool.name} answered HTTP {exc.code} {exc.reason}: {detail}".strip())
    except HttpPostError as exc:
        return _error(f"tool {tool.name} failed: {exc}")
    except urllib.error.URLError as exc:
        return _error(f"tool {tool.name} unreachable: {exc.reason}")
    except TimeoutError:
        return _error(f"tool {tool.name} timed out after {tool.timeout_s:g} s")
    except OSError as exc:
        return _error(f"tool {tool.name} failed: {exc}")
    body = result.body
    text = body[:MAX_OUTPUT_BYTES].decode("utf-8", "replace")
    if len(body) > MAX_OUTPUT_BYTES or result.truncated:
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
