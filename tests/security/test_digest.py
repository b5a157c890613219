"""Inbound digest attacks against `python -m gateway run` (issue 9).

- Replay: an Authorization header captured from a successful INVITE, sent again in a new INVITE
  (new Call-ID: the digest covers method and URI only), is refused with a fresh challenge and
  opens no Realtime session.
- Stale: an honest client answering an expired nonce gets 401 with stale=true and a new nonce;
  its retry with the new nonce is answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sip.auth import DigestChallenge, build_authorization
from tests.security.admission_tools import (  # noqa: F401  (fixtures)
    answer_and_hang_up,
    call_from_loopback,
    control_config,
    control_token,
    loopback_peer,
    rejected,
)
from tests.tools.gateway_process import GatewayProcess
from tests.tools.rawsip import Reply, UdpPeer

Factory = Callable[..., GatewayProcess]
AUTH = {"realm": "gw", "username": "alice", "password": "s3cret"}


def _challenge(peer: UdpPeer) -> DigestChallenge:
    dialog, reply = call_from_loopback(peer)
    assert reply is not None and reply.status == 401, reply
    peer.ack(dialog, reply)
    return DigestChallenge.parse(reply.header("WWW-Authenticate") or "")


def _uri(peer: UdpPeer) -> str:
    host, port = peer.target
    return f"sip:bot@{host}:{port}"  # the Request-URI tests/tools/rawsip.py writes


def _authorized_call(peer: UdpPeer, authorization: str) -> tuple[Any, Reply | None]:
    return call_from_loopback(peer, extra=f"Authorization: {authorization}")


def test_replayed_authorization_is_refused_with_a_fresh_challenge(
    control_token: str,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, {**control_config(), "sip": {"inbound_auth": AUTH}})
    peer = loopback_peer(gw)
    try:
        challenge = _challenge(peer)
        authorization = build_authorization(challenge, "alice", "s3cret", "INVITE", _uri(peer))
        dialog, ok = _authorized_call(peer, authorization)
        assert ok is not None and ok.status == 200, ok
        answer_and_hang_up(peer, dialog, ok)
        gw.wait_event("call.ended")

        # The attacker replays the captured header in an INVITE of its own.
        replay_dialog, refused = _authorized_call(peer, authorization)
        assert refused is not None and refused.status == 401, refused
        peer.ack(replay_dialog, refused)
        fresh = DigestChallenge.parse(refused.header("WWW-Authenticate") or "")
        assert fresh.nonce != challenge.nonce
        assert not fresh.stale  # a replay is not an honest client with an old nonce
    finally:
        peer.close()
    assert len(sim.sessions()) == 1  # only the honest call
    assert len(gw.find("call.offered")) == 1
    assert rejected(gw, "digest_replay") == 1
    failed = gw.wait_event("sip.auth_failed")
    assert "replayed" in failed["message"]


def test_stale_nonce_gets_stale_true_and_the_honest_retry_succeeds(
    realtime_gateway: Factory, sim_factory: Callable[..., Any]
) -> None:
    sim = sim_factory()
    ttl = 1.0  # the shortest nonce lifetime the configuration allows
    gw = realtime_gateway(sim.url, {"sip": {"inbound_auth": {**AUTH, "nonce_ttl_s": ttl}}})
    peer = loopback_peer(gw)
    try:
        challenge = _challenge(peer)
        issued = time.monotonic()
        # The nonce must age past its lifetime: the gateway's own clock is what is tested,
        # so this waits for that moment (not for an event) and no longer.
        time.sleep(max(0.0, issued + ttl + 0.3 - time.monotonic()))
        old = build_authorization(challenge, "alice", "s3cret", "INVITE", _uri(peer))
        dialog, stale = _authorized_call(peer, old)
        assert stale is not None and stale.status == 401, stale
        peer.ack(dialog, stale)
        renewed = DigestChallenge.parse(stale.header("WWW-Authenticate") or "")
        assert renewed.stale and renewed.nonce != challenge.nonce

        retry = build_authorization(renewed, "alice", "s3cret", "INVITE", _uri(peer))
        dialog, ok = _authorized_call(peer, retry)
        assert ok is not None and ok.status == 200, ok
        answer_and_hang_up(peer, dialog, ok)
    finally:
        peer.close()
    gw.wait_event("call.ended")
    assert len(sim.sessions()) == 1
