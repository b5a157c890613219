"""What the admission, digest and reload attack tests share: the namespace fixture's guard, a
/metrics reader that works with a control token, and raw-SIP calls from loopback."""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator

import pytest

from tests.tools.gateway_process import GatewayProcess
from tests.tools.netns import NetnsPair, NetnsUnavailable, netns_pair
from tests.tools.rawsip import Dialog, Reply, UdpPeer, invite, new_dialog, request

LOOPBACK = "127.0.0.1"
# The control API may require a bearer token (issue 9): every test that reads /metrics sets
# one explicitly, through an environment variable the gateway subprocess inherits.
TOKEN_ENV = "ADMISSION_TEST_CONTROL_TOKEN"
TOKEN = "admission-test-token-0123456789"


def control_config() -> dict[str, object]:
    return {"control": {"enabled": True, "host": LOOPBACK, "port": 0, "token_env": TOKEN_ENV}}


@pytest.fixture
def control_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


@pytest.fixture
def netns() -> Iterator[NetnsPair]:
    """A namespace + veth pair (root and `ip` needed: fail under CI=true, else skip)."""
    try:
        with netns_pair() as pair:
            yield pair
    except NetnsUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"network namespace unavailable: {exc}")
        pytest.skip(f"network namespace unavailable: {exc}")


def metrics(gw: GatewayProcess) -> str:
    started = gw.find("gateway.started")[0]
    url = str(started["control"]) + "/metrics"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as response:
        return str(response.read().decode())


def rejected(gw: GatewayProcess, reason: str) -> float:
    """srg_sip_invites_rejected_total{reason=...} from /metrics."""
    text = metrics(gw)
    match = re.search(
        rf'^srg_sip_invites_rejected_total\{{reason="{reason}"\}} (\S+)$', text, re.MULTILINE
    )
    assert match, text
    return float(match.group(1))


def loopback_peer(gw: GatewayProcess) -> UdpPeer:
    return UdpPeer(LOOPBACK, (LOOPBACK, gw.ports.gateway_sip))


def answer_and_hang_up(peer: UdpPeer, dialog: Dialog, ok: Reply) -> None:
    """ACK a 200 and BYE the call (the BYE's 200 must come back)."""
    peer.ack(dialog, ok)
    peer.send(
        request(
            "BYE", dialog, peer.local, peer.target, to_tag=ok.to_tag, cseq=dialog.cseq + 1,
            branch=new_dialog().branch,
        )
    )  # fmt: skip
    bye = peer.final(10, method="BYE")
    assert bye is not None and bye.status == 200, bye


def call_from_loopback(peer: UdpPeer, extra: str = "") -> tuple[Dialog, Reply | None]:
    dialog = new_dialog()
    peer.send(invite(dialog, peer.local, peer.target, extra=extra))
    return dialog, peer.final(15)
