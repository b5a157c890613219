"""Admission attacks against `python -m gateway run` (issue 9): who may make the gateway open a
Realtime session, and what a flood from one source costs.

- A source that is not admitted (another host: a network namespace behind a veth pair) gets 403,
  opens no Realtime session, and the log line names the keys that would admit it; the same
  INVITE is admitted once its subnet is in sip.allow_networks. Loopback is admitted by default.
- Past a source's INVITE bucket the excess gets no answer at all and is counted in /metrics.
- Past max_calls, a retransmitted INVITE (same branch) gets the same 503 bytes back and counts once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from sip.admission import ADMITTING_KEYS
from tests.security.admission_tools import (  # noqa: F401  (fixtures)
    answer_and_hang_up,
    call_from_loopback,
    control_config,
    control_token,
    loopback_peer,
    netns,
    rejected,
)
from tests.tools.gateway_process import GatewayProcess
from tests.tools.netns import NetnsPair
from tests.tools.rawsip import Reply, invite, new_dialog, request

Factory = Callable[..., GatewayProcess]


def _subnet(pair: NetnsPair) -> str:
    return str(ipaddress.ip_interface(f"{pair.ns_addr}/30").network)


def test_foreign_source_gets_403_and_opens_no_session(
    netns: NetnsPair,  # noqa: F811 (the fixture)
    control_token: str,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, control_config(), sip_host=netns.host_addr)

    result = netns.uac((netns.host_addr, gw.ports.gateway_sip))

    assert result["final"] == 403, result
    assert 100 not in result["statuses"]  # refused before any call state (no 100 Trying)
    refused = gw.wait_event("sip.invite_refused", source=netns.ns_addr)
    for key in ADMITTING_KEYS:
        assert key in refused["message"], refused
    assert refused["keys"] == list(ADMITTING_KEYS)
    assert sim.sessions() == []
    assert gw.find("call.offered") == []
    assert rejected(gw, "not_admitted") == 1


def test_foreign_subnet_in_allow_networks_is_admitted(
    netns: NetnsPair,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(
        sim.url, {"sip": {"allow_networks": [_subnet(netns)]}}, sip_host=netns.host_addr
    )

    result = netns.uac((netns.host_addr, gw.ports.gateway_sip))

    assert result["final"] == 200, result
    assert result["statuses"][-1] == 200, result  # our BYE was answered too
    gw.wait_event("call.ended")
    assert len(sim.sessions()) == 1
    assert gw.find("sip.invite_refused") == []


def test_loopback_is_admitted_by_default(
    realtime_gateway: Factory, sim_factory: Callable[..., Any]
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url)
    peer = loopback_peer(gw)
    try:
        dialog, final = call_from_loopback(peer)
        assert final is not None and final.status == 200, final
        answer_and_hang_up(peer, dialog, final)
    finally:
        peer.close()
    gw.wait_event("call.ended")
    assert len(sim.sessions()) == 1


def test_invite_flood_past_the_bucket_gets_no_answer_and_is_counted(
    control_token: str,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    """Burst 3, refill 0.01/s: of 8 INVITEs at once, 3 are answered (401: digest keeps them
    cheap) and 5 are dropped without a single byte back."""
    sim = sim_factory()
    config = {
        **control_config(),
        "sip": {
            "invite_burst_per_source": 3,
            "invite_rate_per_source": 0.01,
            "inbound_auth": {"realm": "gw", "username": "alice", "password": "s3cret"},
        },
    }
    gw = realtime_gateway(sim.url, config)
    peer = loopback_peer(gw)
    try:
        dialogs = [new_dialog() for _ in range(8)]
        for dialog in dialogs:
            peer.send(invite(dialog, peer.local, peer.target))
        # Barrier: the UA handles datagrams in order, so once this OPTIONS is answered every
        # answer to the INVITEs before it has been sent.
        peer.send(request("OPTIONS", new_dialog(), peer.local, peer.target))
        got: list[Reply] = []
        for _ in range(20):
            got += peer.replies(1.0, until_final=True)
            if any(r.cseq_method == "OPTIONS" for r in got):
                break
        assert any(r.cseq_method == "OPTIONS" and r.status == 200 for r in got), got
    finally:
        peer.close()
    answered = {r.header("Call-ID") for r in got if r.cseq_method == "INVITE"}
    assert rejected(gw, "rate_limited") == 5
    assert answered == {d.call_id for d in dialogs[:3]}
    assert {r.status for r in got if r.cseq_method == "INVITE"} == {401}
    assert sim.sessions() == []


def test_503_past_max_calls_is_sent_once_per_transaction(
    control_token: str,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, {**control_config(), "sip": {"max_calls": 1}})
    peer = loopback_peer(gw)
    try:
        first, ok = call_from_loopback(peer)
        assert ok is not None and ok.status == 200, ok
        peer.ack(first, ok)

        second = new_dialog()
        message = invite(second, peer.local, peer.target)
        answers = []
        for _ in range(5):  # the same INVITE (same branch) again and again
            peer.send(message)
            busy = peer.final(10)
            assert busy is not None
            answers.append(busy.raw)
        assert answers[0].startswith(b"SIP/2.0 503 ")
        assert all(a == answers[0] for a in answers), answers
        assert rejected(gw, "max_calls") == 1

        answer_and_hang_up(peer, first, ok)
    finally:
        peer.close()
    gw.wait_event("call.ended")
    assert len(sim.sessions()) == 1


def test_registrar_of_a_registration_is_admitted(
    netns: NetnsPair,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    """The PBX we register to sends our calls: its address is admitted without an allowlist
    (nothing answers the REGISTER here; admission does not wait for the registration)."""
    sim = sim_factory()
    registration = {"registrar": f"sip:{netns.ns_addr}:5060", "username": "gw", "password": "pw"}
    gw = realtime_gateway(sim.url, {"registrations": [registration]}, sip_host=netns.host_addr)
    configured = gw.wait_event("admission.configured")
    assert configured["registrars"] == [netns.ns_addr]

    result = netns.uac((netns.host_addr, gw.ports.gateway_sip))

    assert result["final"] == 200, result
    gw.wait_event("call.ended")
    assert len(sim.sessions()) == 1


def test_open_admission_is_a_warning_at_start(gateway: Factory) -> None:
    gw = gateway({"sip": {"allow_networks": ["0.0.0.0/0"]}})
    warning = gw.wait_event("admission.open")
    assert warning["level"] == "warning" and "0.0.0.0/0" in warning["message"]
