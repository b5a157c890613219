"""Bound UAC credentials (sip/uac_auth.py): a 401/407 is answered only when the request went
to a hop the credentials are bound to (issue 9), for INVITE, out-of-dialog requests and
in-dialog BYE/REFER alike. Over real loopback sockets, with the scripted peer of
tests/sip/test_useragent.py."""

from __future__ import annotations

import asyncio

from sip.auth import DigestCredentials
from sip.message import Response, parse_message
from sip.transport import TransportAddr
from sip.uac_auth import DigestRetry, bind_hops, may_answer, normalise_hop
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


def _response(status: int, *headers: str) -> Response:
    lines = [
        f"SIP/2.0 {status} Whatever",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-retry",
        "From: <sip:gw@127.0.0.1>;tag=a",
        "To: <sip:trunk@127.0.0.1>;tag=b",
        "Call-ID: retry-1",
        "CSeq: 1 BYE",
        *headers,
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Response)
    return msg


TRUNK = TransportAddr("udp", "127.0.0.1", 5070)


def test_digest_retry_answers_a_challenge_then_stops_at_the_final_response() -> None:
    """The one digest-retry path (sip/uac_auth.py DigestRetry), sans-I/O: feed each response,
    get the Authorization headers for the next attempt or None for "this is the outcome"."""
    retry = DigestRetry(Credentials("alice", "pw", bind_hops([("127.0.0.1", 5070)])), TRUNK, "BYE")
    auth = retry.answer(_response(401, CHALLENGE), "sip:trunk@127.0.0.1")
    assert auth is not None and auth[0][0] == "Authorization" and 'username="alice"' in auth[0][1]
    proxy = retry.answer(
        _response(407, CHALLENGE.replace("WWW-", "Proxy-").replace("n1", "n2")), "sip:t@h"
    )
    assert proxy is not None and proxy[0][0] == "Proxy-Authorization"
    assert retry.answer(_response(200), "sip:trunk@127.0.0.1") is None
    assert not retry.refused and not retry.gave_up


def test_digest_retry_is_bounded_and_refuses_foreign_hops() -> None:
    retry = DigestRetry(Credentials("alice", "pw"), TRUNK, "INVITE", max_sends=2)
    assert retry.answer(_response(401, CHALLENGE), "sip:x@h") is not None
    assert retry.answer(_response(401, CHALLENGE.replace("n1", "n3")), "sip:x@h") is None
    foreign = DigestRetry(Credentials("alice", "pw", ELSEWHERE), TRUNK, "REFER")
    assert foreign.answer(_response(401, CHALLENGE), "sip:x@h") is None and foreign.refused
    # No credentials, no answer; a timeout (None) is an outcome too.
    assert DigestRetry(None, TRUNK, "BYE").answer(_response(401, CHALLENGE), "sip:x@h") is None
    assert DigestRetry(Credentials("a", "b"), TRUNK, "BYE").answer(None, "sip:x@h") is None


def test_digest_retry_gives_up_on_a_rechallenge_of_the_same_nonce() -> None:
    """A wrong password: the server re-challenges with the nonce we answered (RFC 3261 22.2)."""
    digest = DigestCredentials("alice", "wrong")
    retry = DigestRetry(digest, None, "REGISTER", max_sends=4)
    assert retry.answer(_response(401, CHALLENGE), "sip:registrar") is not None
    assert retry.answer(_response(401, CHALLENGE), "sip:registrar") is None
    assert retry.gave_up and digest.failure_reason


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
