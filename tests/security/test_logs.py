"""Attack: read the gateway's logs to steal its credentials.

Logs go to journald, log shippers and support tickets; whoever reads them must not get the
Realtime API key (websockets logs every request header at DEBUG, `Authorization: Bearer sk-...`
included), the control API token, the SIP digest password or a token in a webhook URL. The
gateway runs at DEBUG with all of them configured, takes a digest-authenticated call bridged to
the simulator, answers an authenticated control request and fails a webhook whose URL carries a
token; none of the secret strings may appear anywhere in its stdout or stderr.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.gateway_process import GatewayProcess
from tests.tools.ports import InteropPorts

pytestmark = pytest.mark.interop


def _control_port(gw: GatewayProcess) -> int:
    address = gw.wait_event("control.started")["address"]
    return int(address.rstrip("/").rsplit(":", 1)[1])


def test_no_secret_reaches_the_logs_at_debug(
    sim_factory: Callable[..., object],
    realtime_gateway: Callable[..., GatewayProcess],
    ports: InteropPorts,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    api_key = "sk-test-" + secrets.token_hex(16)
    control_token = "ctl-" + secrets.token_hex(16)
    sip_password = "sip-" + secrets.token_hex(8)
    hook_token = "hook-" + secrets.token_hex(8)
    # Not OPENAI_API_KEY/SRG_*: the gateway fixture strips those from the environment.
    monkeypatch.setenv("GWTEST_API_KEY", api_key)
    monkeypatch.setenv("GWTEST_CONTROL_TOKEN", control_token)
    monkeypatch.setenv("GWTEST_SIP_PASSWORD", sip_password)
    sim = sim_factory()
    closed_port = ports.baresip_ctrl  # nothing listens there: the webhook fails, is logged
    gw = realtime_gateway(
        sim.url,  # type: ignore[attr-defined]
        {
            "log": {"level": "DEBUG"},
            "realtime": {"simulator": "never", "api_key_env": "GWTEST_API_KEY"},
            "control": {"token_env": "GWTEST_CONTROL_TOKEN"},
            "sip": {
                "inbound_auth": {
                    "realm": "gw",
                    "username": "alice",
                    "password_env": "GWTEST_SIP_PASSWORD",
                }
            },
            "webhooks": {
                "call_started_url": f"http://127.0.0.1:{closed_port}/hook?token={hook_token}"
            },
        },
    )
    control = _control_port(gw)
    rtp_low, _ = ports.baresip_rtp
    call = subprocess.run(
        [
            *(sys.executable, "-m", "gateway", "call", f"sip:100@{gw.sip_uri_host}"),
            *("--username", "alice", "--password", sip_password, "--duration", "2"),
            *("--local-host", "127.0.0.1", "--local-port", str(ports.sipp_sip)),
            *("--rtp-ports", f"{rtp_low}-{rtp_low + 3}", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert call.returncode == 0, call.stderr[-2000:]
    summary = json.loads(call.stdout)
    print(f"\ncall: {summary.get('outcome') or summary.get('status')}")
    request = urllib.request.Request(
        f"http://127.0.0.1:{control}/calls", headers={"Authorization": f"Bearer {control_token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    call_id = gw.wait_event("call.ended", timeout=20)["call_id"]
    gw.wait_event("webhook.failed", call_id=call_id)
    gw.process.stop()
    text = gw.log_text() + gw.process.output()
    # The test exercised what it claims: the Bearer header was logged (redacted), the digest
    # challenge was answered (the call was answered), the webhook URL was logged.
    assert "Authorization: Bearer ***" in text, "websockets logged no request headers"
    assert gw.find("realtime.connected"), "no Realtime session"
    assert gw.find("control.started")
    leaked = [
        name
        for name, value in (
            ("API key", api_key),
            ("control token", control_token),
            ("SIP password", sip_password),
            ("webhook token", hook_token),
        )
        if value in text
    ]
    lines = len(text.splitlines())
    print(f"{lines} log lines at DEBUG, secrets leaked: {leaked or 'none'}")
    assert not leaked, leaked
