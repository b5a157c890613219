"""Attacks through the gateway's outbound HTTP (custom tools, webhooks).

A tool server (compromised, or a URL that changed hands) tries to make the gateway:
- follow a redirect to another origin, carrying the call's data and the tool's headers there;
- swallow a response of 64 MiB (memory, and a worker thread held for as long as it drips).
And an operator mistake: call data sent over plain `http://` across the network. The gateway
refuses the redirect (the model gets the error; the other origin gets no request), cuts the
response at `max_response_bytes`, and refuses to start with a plain-http URL to a host that is
not loopback unless `allow_plain_http = true` is set for it, naming the key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.realtime.simulator import ToolCallRule
from tests.tools.caller_audio import silence_ms, write_caller_pcap
from tests.tools.gateway_process import GatewayProcess, to_toml
from tests.tools.http_bait import BaitServer
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp

REPO = Path(__file__).resolve().parents[2]
EXIT_CONFIG = 2


def _tool_output(sim: SimulatorThread) -> str:
    """The function_call_output the gateway sent the model."""
    for record in sim.client_events(0):
        item = record.event.get("item") or {}
        if record.type == "conversation.item.create" and item.get("type") == "function_call_output":
            return str(item["output"])
    raise AssertionError("no function_call_output reached the model")


def _call_the_tool(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tmp_path: Path,
    tool: dict[str, object],
) -> tuple[SimulatorThread, GatewayProcess]:
    """One call whose first turn (the caller presses 1 #) makes the model call `tool`."""
    sim = sim_factory(tool_calls=(ToolCallRule(str(tool["name"]), on_turn=1),))
    gw = realtime_gateway(sim.url, {"tools": [tool]})
    pcap = tmp_path / "digits.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(800), "1#")
    result = sipp.run(
        "uac_media_dtmf.xml",
        timeout_s=30,
        substitutions={"PCAP": str(pcap), "PLAY_MS": str(play_ms + 3000)},
    )
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    gw.wait_event("tool.result", call_id=call_id, timeout=15)
    return sim, gw


@pytest.mark.interop
@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket")
def test_tool_redirect_to_another_origin_is_not_followed(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tmp_path: Path,
) -> None:
    with BaitServer() as tool_server, BaitServer() as elsewhere:
        tool = {
            "name": "lookup",
            "description": "Look something up.",
            "url": f"{tool_server.url}/redirect?to={elsewhere.url}/collect",
        }
        sim, _gw = _call_the_tool(sim_factory, realtime_gateway, sipp, tmp_path, tool)
        output = _tool_output(sim)
        print(f"\nthe model got: {output}")
        assert "redirect (307) to another origin refused" in output
        assert len(tool_server.requests) == 1
        assert elsewhere.requests == [], "the call data reached another origin"


@pytest.mark.interop
@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket")
def test_a_huge_tool_response_is_cut_at_the_cap(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tmp_path: Path,
) -> None:
    cap = 256 * 1024
    with BaitServer() as tool_server:
        tool = {
            "name": "dump",
            "description": "Fetch the whole database.",
            "url": f"{tool_server.url}/huge",
            "max_response_bytes": cap,
        }
        sim, gw = _call_the_tool(sim_factory, realtime_gateway, sipp, tmp_path, tool)
        output = _tool_output(sim)
        result = gw.wait_event("tool.result")
        sent = tool_server.sent_bytes
    print(
        f"\nserver got {sent / 2**20:.1f} of 64 MiB into the socket before the gateway closed; "
        f"the model got {len(output)} characters"
    )
    assert output.endswith(" [truncated]")
    assert result["bytes"] == len(output) <= 64 * 1024 + len(" [truncated]")
    assert not tool_server.huge_finished, "the gateway read the whole 64 MiB"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"tools": [{"name": "t", "description": "d", "url": "http://tools.example.com/t"}]},
         "tools[0].url"),
        ({"webhooks": {"call_ended_url": "http://hooks.example.com/end"}},
         "webhooks.call_ended_url"),
    ],
)  # fmt: skip
def test_plain_http_to_a_remote_host_is_a_config_error_naming_the_key(
    section: dict[str, object], key: str, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(to_toml({"sip": {"host": "127.0.0.1"}, **section}))
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    print(f"\n{proc.stderr.strip()}")
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert f"{key}: plain http://" in proc.stderr
    flag = "tools[0].allow_plain_http" if key.startswith("tools") else "webhooks.allow_plain_http"
    assert flag in proc.stderr


def test_the_explicit_flag_allows_plain_http(tmp_path: Path) -> None:
    from gateway.config import load_config

    config = tmp_path / "gateway.toml"
    config.write_text(
        to_toml(
            {
                "tools": [
                    {
                        "name": "t",
                        "description": "d",
                        "url": "http://tools.example.com/t",
                        "allow_plain_http": True,
                    }
                ],
                "webhooks": {
                    "call_ended_url": "http://hooks.example.com/end",
                    "allow_plain_http": True,
                },
            }
        )
    )
    loaded = load_config(config, env={})
    assert loaded.tools[0].allow_plain_http and loaded.webhooks.allow_plain_http
    assert loaded.tools[0].url == "http://tools.example.com/t"
