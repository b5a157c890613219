"""The INVITE client side of the user agent with a fake clock and a fake transport
(tests/tools/fake_sip.py): CANCEL only after a provisional (RFC 3261 9.1), the 487 that follows,
the 2xx that crosses our CANCEL (ACK, then BYE), and the TU's Timer C (ring_timeout) on the
core's clock. No sockets and no sleeps: the tests wait for conditions (what the UA sent)."""

from __future__ import annotations

import asyncio

from sip.calls import OutgoingCall
from sip.message import Request
from tests.tools.fake_sip import PEER, SDP_OFFER, FakeSip, settle_until

TARGET = f"sip:bob@{PEER.host}:{PEER.port}"
CONTACT = ("Contact", f"<sip:bob@{PEER.host}:{PEER.port}>")


async def _sent_request(sip: FakeSip, method: str) -> Request:
    await settle_until(
        lambda: any(isinstance(m, Request) and m.method == method for m in sip.unread())
    )
    found = [m for m in sip.sent() if isinstance(m, Request) and m.method == method]
    return found[-1]


async def _place(sip: FakeSip, **kw: object) -> tuple[asyncio.Future[OutgoingCall], Request]:
    placing = asyncio.ensure_future(
        sip.ua.invite(TARGET, SDP_OFFER.encode(), dest=PEER, **kw)  # type: ignore[arg-type]
    )
    invite = await _sent_request(sip, "INVITE")
    return placing, invite


async def test_hangup_before_any_provisional_cancels_once_one_arrives() -> None:
    sip = FakeSip()
    placing, invite = await _place(sip)
    call = sip.ua.calls[invite.call_id]
    assert isinstance(call, OutgoingCall)
    hanging_up = asyncio.ensure_future(call.hangup())
    await settle_until(lambda: call._cancel_requested)
    assert not [m for m in sip.sent() if isinstance(m, Request)]  # 9.1: no CANCEL yet
    sip.deliver(sip.respond(invite, 180))
    cancel = await _sent_request(sip, "CANCEL")
    assert cancel.branch == invite.branch and cancel.cseq == (invite.cseq[0], "CANCEL")
    assert str(cancel.uri) == str(invite.uri)
    assert cancel.headers.get("User-Agent") == sip.ua.user_agent
    sip.deliver(sip.respond(cancel, 200))
    sip.deliver(sip.respond(invite, 487))
    placed = await placing
    assert placed.status == 487 and placed.state == "terminated"
    assert await hanging_up is None
    # The INVITE transaction ACKs the 487 itself (17.1.1.3).
    assert [m.method for m in sip.sent() if isinstance(m, Request)] == ["ACK"]


async def test_ring_timeout_cancels_then_gives_up_without_a_final_response() -> None:
    sip = FakeSip()
    placing, invite = await _place(sip, ring_timeout=30.0)
    sip.deliver(sip.respond(invite, 180))
    sip.advance(29.9)
    assert not [m for m in sip.sent() if isinstance(m, Request) and m.method == "CANCEL"]
    sip.advance(0.2)
    cancel = await _sent_request(sip, "CANCEL")
    sip.deliver(sip.respond(cancel, 200))
    # No 487 ever comes: one transaction timeout (64*T1) later the INVITE is over.
    sip.advance(sip.ua.timers.timeout + 0.1)
    placed = await placing
    assert placed.status is None and placed.reason == "no answer"
    assert placed.state == "terminated" and placed.end_reason == "cancelled"


async def test_a_2xx_crossing_our_cancel_is_acked_and_ended_with_bye() -> None:
    sip = FakeSip()
    placing, invite = await _place(sip, ring_timeout=10.0)
    sip.deliver(sip.respond(invite, 183))
    sip.advance(10.1)
    cancel = await _sent_request(sip, "CANCEL")
    sip.deliver(sip.respond(invite, 200, CONTACT))
    sip.deliver(sip.respond(cancel, 200))
    placed = await placing
    assert placed.status == 200
    await settle_until(
        lambda: any(isinstance(m, Request) and m.method == "BYE" for m in sip.unread())
    )
    methods = [m.method for m in sip.sent() if isinstance(m, Request)]
    assert methods == ["ACK", "BYE"]
    assert placed.end_reason == "local bye"


async def test_answered_call_acks_the_2xx_and_repeats_the_ack_for_its_retransmission() -> None:
    sip = FakeSip()
    placing, invite = await _place(sip)
    ok = sip.respond(invite, 200, CONTACT)
    sip.deliver(ok)
    placed = await placing
    assert placed.status == 200 and placed.state == "confirmed"
    (ack,) = [m for m in sip.sent() if isinstance(m, Request)]
    assert ack.method == "ACK" and ack.cseq == (invite.cseq[0], "ACK")
    sip.deliver(ok)  # the 2xx again (RFC 6026): the same ACK again
    (again,) = sip.sent()
    assert isinstance(again, Request) and again.to_bytes() == ack.to_bytes()


async def test_the_ack_is_remembered_for_one_transaction_timeout_only() -> None:
    """13.2.2.4: the ACK is repeated for 2xx retransmissions while the peer may still send
    them (64*T1); after that a 2xx is a stray response."""
    sip = FakeSip()
    placing, invite = await _place(sip)
    ok = sip.respond(invite, 200, CONTACT)
    sip.deliver(ok)
    await placing
    assert [m.method for m in sip.sent() if isinstance(m, Request)] == ["ACK"]
    sip.advance(sip.ua.timers.timeout + 0.1)
    strays = sip.ua.counters.stray_responses
    sip.deliver(ok)
    assert sip.sent() == []
    assert sip.ua.counters.stray_responses == strays + 1
