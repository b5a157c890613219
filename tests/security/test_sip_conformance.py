"""Conformance inputs turned into attacks on `python -m gateway run` (issue 10).

- A stream of offers whose `c=` is IPv6, sent to a gateway with IPv4 media only: before issue 10
  each was answered 200 with IPv4 media, crashed a task and left srg_calls_active one higher
  for ever (a leak any caller could grow). Each now gets 488 + Warning 301 before a port is
  bound; the gauge returns to 0, every call is counted as ended, and a normal call still works.
- An INVITE whose Accept header lists thousands of media ranges (sip/uas_rules.py reads each):
  answered 406 and the gateway keeps answering.
Metrics are read from /metrics with the control token the harness sets (tests/tools/control.py).
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable

import pytest

from tests.tools import rawsip
from tests.tools.control import auth_header
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.ports import InteropPorts

pytestmark = pytest.mark.interop

OFFERS = 30


def _metrics(gw: GatewayProcess) -> dict[str, float]:
    url = gw.find("gateway.started")[0]["control"].rstrip("/") + "/metrics"
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth_header())) as resp:
        text = resp.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(srg_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def _total(values: dict[str, float], name: str) -> float:
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def _v6_offer(port: int) -> str:
    return (
        "v=0\r\no=atk 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def test_ipv6_offers_to_an_ipv4_gateway_leak_nothing(
    gateway: Callable[..., GatewayProcess], ports: InteropPorts
) -> None:
    gw = gateway(
        {"sip": {"invite_rate_per_source": 1000.0, "invite_burst_per_source": 1000}}, echo=True
    )
    peer = rawsip.UdpPeer(LOOPBACK, (LOOPBACK, ports.gateway_sip))
    try:
        for _ in range(OFFERS):
            dialog = rawsip.new_dialog()
            body = _v6_offer(peer.local[1] + 2)
            peer.send(rawsip.request("INVITE", dialog, peer.local, peer.target, body=body))
            reply = peer.final(10)
            assert reply is not None and reply.status == 488, reply
            assert (reply.header("Warning") or "").startswith("301 "), reply
            peer.ack(dialog, reply)
        gw.wait_events("call.ended", count=OFFERS)
        values = _metrics(gw)
        assert _total(values, "srg_calls_active") == 0, values
        assert _total(values, "srg_calls_total") == OFFERS, values
        # A legitimate IPv4 call is still answered.
        dialog = rawsip.new_dialog()
        peer.send(rawsip.invite(dialog, peer.local, peer.target))
        reply = peer.final(10)
        assert reply is not None and reply.status == 200, reply
        peer.ack(dialog, reply)
    finally:
        peer.close()


def test_huge_accept_header_gets_406(
    gateway: Callable[..., GatewayProcess], ports: InteropPorts
) -> None:
    gateway(echo=True)
    peer = rawsip.UdpPeer(LOOPBACK, (LOOPBACK, ports.gateway_sip))
    try:
        accept = ", ".join(f"x-{i}/y;q=0.{i % 9 + 1}" for i in range(3000))  # ~55 KB
        dialog = rawsip.new_dialog()
        peer.send(rawsip.invite(dialog, peer.local, peer.target, extra=f"Accept: {accept}"))
        reply = peer.final(10)
        assert reply is not None and reply.status == 406, reply
        assert reply.header("Accept") == "application/sdp"
        peer.ack(dialog, reply)
        options = rawsip.new_dialog()
        peer.send(rawsip.request("OPTIONS", options, peer.local, peer.target))
        answered = peer.final(10, "OPTIONS")
        assert answered is not None and answered.status == 200, answered
    finally:
        peer.close()
