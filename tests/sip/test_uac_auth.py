"""Bound UAC credentials (sip/uac_auth.py): a 401/407 is answered only when the request went
to a hop the credentials are bound to (issue 9), for INVITE, out-of-dialog requests and
in-dialog BYE/REFER alike. Over real loopback sockets, with the scripted peer of
tests/sip/test_useragent.py."""

from __future__ import annotations

import asyncio

from sip.transport import TransportAddr
from sip.uac_auth import bind_hops, may_answer, normalise_hop
from sip.useragent import Credentials, InboundAuth
from tests.sip.test_useragent import SDP_OFFER, Recorder, SipPeer, establish, start_ua

CHALLENGE = 'WWW-Authenticate: Digest realm="trunk", nonce="n1", qop="auth"'
ELSEWHERE = bind_hops([("127.0.0.1", 9)])  # "the registrar": nobody in these tests


def test_may_answer_compares_canonical_hops() -> None:
    bound = bind_hops([("[::1]", 5060), ("127.0.0.1", 5070)])
    assert normalise_hop("0:0::1", 5060) in bound
    assert may_answer(bound, TransportAddr("udp", "::1", 5060))
    assert may_answer(bound, TransportAddr("tcp", "127.0.0.1", 5070))
    assert not may_answer(bound, TransportAddr("udp", "127.0.0.1", 5060))  # other port
    assert not may_answer(bound, TransportAddr("udp", "127.0.0.2", 5070))  # other host
    assert not may_answer((), TransportAddr("udp", "127.0.0.1", 5070))  # bound to nobody
    assert may_answer(None, TransportAddr("udp", "192.0.2.1", 5060))  # unbound


async def test_invite_challenge_from_a_foreign_host_is_not_answered() -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a = await start_ua(rec_a)
    b = await start_ua(rec_b, inbound_auth=InboundAuth("trunk", "alice", "pw"))
    try:
        target = f"sip:bob@127.0.0.1:{b.transport.port}"
        call = await a.invite(
            target, SDP_OFFER.encode(), credentials=Credentials("alice", "pw", ELSEWHERE)
        )
        assert call.status == 401
        assert call.invite.cseq[0] == 1 and call.invite.headers.get("Authorization") is None
        assert call.challenge_refused == f"127.0.0.1:{b.transport.port}"
        assert rec_b.calls.empty()
    finally:
        await a.close()
        await b.close()


async def test_invite_challenge_from_the_bound_host_is_answered() -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a = await start_ua(rec_a)
    b = await start_ua(rec_b, inbound_auth=InboundAuth("trunk", "alice", "pw"))
    try:
        bound = bind_hops([("127.0.0.1", b.transport.port)])
        call = await a.invite(
            f"sip:bob@127.0.0.1:{b.transport.port}",
            SDP_OFFER.encode(),
            credentials=Credentials("alice", "pw", bound),
        )
        assert call.status == 200 and call.invite.cseq[0] == 2
        assert 'username="alice"' in (call.invite.headers.get("Authorization") or "")
        assert call.challenge_refused == ""
        await call.hangup()
    finally:
        await a.close()
        await b.close()


async def test_out_of_dialog_request_challenge_from_a_foreign_host_is_not_answered() -> None:
    rec = Recorder()
    ua = await start_ua(rec)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        task = asyncio.ensure_future(
            ua.request(
                "OPTIONS",
                f"sip:{peer.hostport}",
                credentials=Credentials("gw", "pw", ELSEWHERE),
                timeout=2,
            )
        )
        options = await peer.expect_request("OPTIONS")
        peer.respond(options, 401, "Unauthorized", extra=CHALLENGE)
        resp = await asyncio.wait_for(task, 3)
        assert resp is not None and resp.status == 401
        assert not [m for m in peer.drain() if getattr(m, "method", "") == "OPTIONS"]
    finally:
        peer.close()
        await ua.close()


async def test_in_dialog_bye_and_refer_challenges_from_a_foreign_host_are_not_answered() -> None:
    rec = Recorder()
    ua = await start_ua(rec, credentials=Credentials("gw", "pw", ELSEWHERE))
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        call, _ok = await establish(peer, rec, "bound-refer")
        task = asyncio.ensure_future(call.refer("sip:agent@127.0.0.1", timeout=5))
        refer = await peer.expect_request("REFER")
        peer.respond(refer, 401, "Unauthorized", extra=CHALLENGE)
        assert await asyncio.wait_for(task, 3) == 401  # the REFER's own failure, no retry
        task = asyncio.ensure_future(call.hangup(timeout=2))
        bye = await peer.expect_request("BYE")
        peer.respond(bye, 407, "Proxy Authentication Required", extra="Proxy-" + CHALLENGE)
        assert await asyncio.wait_for(task, 3) == 407
        sent = [m for m in peer.drain() if getattr(m, "method", "") in ("REFER", "BYE")]
        assert sent == []  # neither was sent again with credentials
    finally:
        peer.close()
        await ua.close()


async def test_in_dialog_challenge_from_the_bound_hop_is_answered() -> None:
    rec = Recorder()
    ua = await start_ua(rec)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        call, _ok = await establish(peer, rec, "bound-bye")
        port = int(peer.hostport.rsplit(":", 1)[1])
        call.credentials = Credentials("gw", "pw", bind_hops([("127.0.0.1", port)]))
        task = asyncio.ensure_future(call.hangup(timeout=2))
        bye = await peer.expect_request("BYE")
        peer.respond(bye, 401, "Unauthorized", extra=CHALLENGE)
        bye2 = await peer.expect_request("BYE")
        assert 'username="gw"' in (bye2.headers.get("Authorization") or "")
        peer.respond(bye2, 200)
        assert await asyncio.wait_for(task, 3) == 200
    finally:
        peer.close()
        await ua.close()
