"""gateway/call_settings.py: config keys -> session.update fields that the SDK's GA model
accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.call_settings import session_config_for
from gateway.config import ConfigError, load_config, route_config
from gateway.realtime import protocol
from tests.realtime.validate import check_client_event

FULL = """
[realtime]
speed = 0.9
transcription_model = "gpt-4o-mini-transcribe"
transcription_language = "de"
transcription_prompt = "Rechnungsnummer"
tool_choice = "auto"
max_output_tokens = 800
truncation = "retention_ratio"
truncation_retention_ratio = 0.7
reasoning_effort = "low"

[[realtime.mcp_servers]]
server_label = "crm"
server_url = "https://mcp.example.com/mcp"
headers_env = { Authorization = "CRM_MCP_AUTH" }
allowed_tools = ["lookup_customer"]
require_approval = "always"
no_approval_tools = ["lookup_customer"]

[[routes]]
name = "sales"
match = { request_user = "200" }
realtime = { speed = 1.3, tool_choice = "mcp:kb", max_output_tokens = 100, truncation = "disabled", reasoning_effort = "high", mcp_servers = [ { server_label = "kb", server_url = "https://kb.example.com/mcp", require_approval = "never", headers_env = { "X-Api-Key" = "KB_KEY" } } ] }
"""
ENV = {"CRM_MCP_AUTH": "Bearer crm-secret", "KB_KEY": "kb-secret"}


def _session(config, codec: str = "PCMU") -> dict:
    event = protocol.session_update(session_config_for(config, codec, "Be brief."))
    check_client_event(event)
    return event["session"]


def test_every_new_key_reaches_session_update_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(FULL)
    config = load_config(path, env=ENV)
    session = _session(config)
    assert session["audio"]["output"]["speed"] == 0.9
    assert session["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe",
        "language": "de",
        "prompt": "Rechnungsnummer",
    }
    assert session["max_output_tokens"] == 800
    assert session["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.7}
    assert session["reasoning"] == {"effort": "low"}
    mcp = [t for t in session["tools"] if t["type"] == "mcp"]
    assert mcp == [
        {
            "type": "mcp",
            "server_label": "crm",
            "server_url": "https://mcp.example.com/mcp",
            "headers": {"Authorization": "Bearer crm-secret"},
            "allowed_tools": ["lookup_customer"],
            "require_approval": {"never": {"tool_names": ["lookup_customer"]}},
        }
    ]
    # The route's overrides replace the global values for its calls.
    routed = _session(route_config(config, 0), "PCMA")
    assert routed["audio"]["output"]["speed"] == 1.3
    assert routed["tool_choice"] == {"type": "mcp", "server_label": "kb"}
    assert routed["max_output_tokens"] == 100
    assert routed["truncation"] == "disabled"
    assert routed["reasoning"] == {"effort": "high"}
    assert [t["server_label"] for t in routed["tools"] if t["type"] == "mcp"] == ["kb"]
    assert [t["headers"] for t in routed["tools"] if t["type"] == "mcp"] == [
        {"X-Api-Key": "kb-secret"}
    ]


def test_defaults_validate_and_send_no_optional_fields() -> None:
    session = _session(load_config(None, env={}))
    assert session["tool_choice"] == "auto"
    assert session["truncation"] == "auto"
    assert "max_output_tokens" not in session and "reasoning" not in session


def test_forced_function_tool_choice(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[realtime]\ntool_choice = "function:end_call"\n')
    session = _session(load_config(path, env={}))
    assert session["tool_choice"] == {"type": "function", "name": "end_call"}


def test_mcp_header_secret_missing_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(FULL)
    with pytest.raises(
        ConfigError, match=r"realtime\.mcp_servers\[0\]\.headers_env\.Authorization"
    ):
        load_config(path, env={"KB_KEY": "x"})
    with pytest.raises(ConfigError, match=r"routes\[0\]\.realtime\.mcp_servers\[0\]\.headers_env"):
        load_config(path, env={"CRM_MCP_AUTH": "x"})
