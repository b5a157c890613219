"""The INVITE server side of the user agent with a fake clock and a fake transport
(tests/tools/fake_sip.py): CANCEL races, Timer H, the answer deadline, overlapping and glaring
re-INVITEs, session expiry and refresh. No sockets, no sleeps; the synchronous tests run with no
event loop at all, the few async ones only let the UA's own tasks (BYE, refresh) run."""

from __future__ import annotations

import asyncio

from sip.message import Request, Response
from tests.tools.fake_sip import SDP_ANSWER, FakeSip, settle_until


def _ringing(sip: FakeSip, call_id: str, branch: str, *extra: str) -> Response:
    sip.deliver(sip.invite(call_id, branch=branch, extra=extra))
    sent = sip.sent()
    assert [m.status for m in sent if isinstance(m, Response)] == [100, 180]
    ringing = sent[-1]
    assert isinstance(ringing, Response)
    return ringing


def _answered(sip: FakeSip, call_id: str, branch: str, *extra: str) -> Response:
    _ringing(sip, call_id, branch, *extra)
    sip.invites[-1].accept(SDP_ANSWER)
    (ok,) = sip.sent()
    assert isinstance(ok, Response) and ok.status == 200
    return ok


# -- CANCEL (RFC 3261 9.2) ---------------------------------------------------------------------
def test_cancel_while_ringing_gets_200_and_the_invite_487() -> None:
    sip = FakeSip()
    ringing = _ringing(sip, "cancel-1", "z9hG4bK-c1")
    sip.deliver(sip.cancel("cancel-1", branch="z9hG4bK-c1"))
    cancel_ok, terminated = sip.sent()
    assert isinstance(cancel_ok, Response) and cancel_ok.cseq == (1, "CANCEL")
    assert cancel_ok.status == 200 and cancel_ok.to_tag == ringing.to_tag
    assert isinstance(terminated, Response) and terminated.status == 487
    assert terminated.cseq == (1, "INVITE") and terminated.to_tag == ringing.to_tag
    assert [(c.call_id, r) for c, r in sip.ended] == [("cancel-1", "cancelled")]
    # The 487 is retransmitted (Timer G) until the ACK; the app's late accept is ignored.
    sip.advance(0.5)
    assert sip.statuses() == [487]
    sip.invites[0].accept(SDP_ANSWER)
    assert sip.sent() == []
    sip.deliver(sip.ack("cancel-1", to_tag=str(ringing.to_tag), branch="z9hG4bK-c1"))
    sip.advance(30)
    assert sip.sent() == []


def test_cancel_after_the_200_leaves_the_call_up() -> None:
    """The race the other way: the app accepted first; the CANCEL gets 200, nothing more."""
    sip = FakeSip()
    ok = _answered(sip, "cancel-2", "z9hG4bK-c2")
    sip.deliver(sip.cancel("cancel-2", branch="z9hG4bK-c2"))
    assert sip.statuses() == [200]
    assert sip.invites[0].state == "confirmed" and sip.ended == []
    sip.deliver(sip.ack("cancel-2", to_tag=str(ok.to_tag)))
    assert sip.acks == [sip.invites[0]]


def test_cancel_matching_no_invite_gets_481() -> None:
    """9.2: a CANCEL that matches no INVITE server transaction."""
    sip = FakeSip()
    sip.deliver(sip.cancel("nothing-here", branch="z9hG4bK-unknown"))
    assert sip.statuses() == [481]


def test_bye_on_an_early_dialog_ends_the_invite_with_487() -> None:
    sip = FakeSip()
    ringing = _ringing(sip, "early-bye", "z9hG4bK-eb")
    sip.deliver(sip.request("BYE", "early-bye", cseq=2, to_tag=str(ringing.to_tag)))
    assert sip.statuses() == [200, 487]
    assert [r for _, r in sip.ended] == ["bye"]


# -- the answer deadline and Timer H -----------------------------------------------------------
def test_undecided_call_gets_480_at_the_answer_deadline() -> None:
    sip = FakeSip(answer_timeout=60.0)
    _ringing(sip, "undecided", "z9hG4bK-u")
    sip.advance(59.9)
    assert sip.sent() == []
    sip.advance(0.2)
    assert sip.statuses() == [480]
    assert [r for _, r in sip.ended] == ["no answer"]


def test_timer_h_retransmits_the_200_then_reports_to_on_ack_timeout() -> None:
    timed_out: list[object] = []
    sip = FakeSip(on_ack_timeout=timed_out.append)
    _answered(sip, "lost-ack", "z9hG4bK-h")
    # 2xx retransmissions at T1, 2T1, 4T1... capped at T2 (13.3.1.4), until Timer H (64*T1).
    sip.advance(31.9)
    retransmitted = sip.statuses()
    assert retransmitted and set(retransmitted) == {200}
    assert timed_out == []
    sip.advance(0.2)
    assert timed_out == [sip.invites[0]]
    # The application decides; the UA itself sends no BYE and ends nothing.
    assert not [m for m in sip.sent() if isinstance(m, Request)]
    assert sip.ended == [] and sip.invites[0].state == "confirmed"


async def test_timer_h_without_on_ack_timeout_sends_bye_itself() -> None:
    sip = FakeSip()
    ok = _answered(sip, "lost-ack-2", "z9hG4bK-h2")
    sip.advance(32.1)
    await settle_until(lambda: any(isinstance(m, Request) for m in sip.unread()))
    byes = [m for m in sip.sent() if isinstance(m, Request)]
    assert [b.method for b in byes] == ["BYE"] and byes[0].from_tag == ok.to_tag
    assert [r for _, r in sip.ended] == ["ack timeout"]


# -- re-INVITE while another INVITE is in progress (14.2) ----------------------------------
def test_reinvite_before_the_initial_invite_is_answered_gets_500_retry_after() -> None:
    sip = FakeSip()
    ringing = _ringing(sip, "overlap", "z9hG4bK-o")
    sip.deliver(sip.request("INVITE", "overlap", cseq=2, to_tag=str(ringing.to_tag)))
    (resp,) = sip.sent()
    assert isinstance(resp, Response) and resp.status == 500
    assert 0 <= int(resp.headers.get("Retry-After") or "-1") <= 10


async def test_reinvite_while_ours_is_pending_gets_491() -> None:
    """Glare (14.2): the peer's re-INVITE crosses ours; we answer 491 Request Pending."""
    sip = FakeSip()
    ok = _answered(sip, "glare", "z9hG4bK-g")
    sip.deliver(sip.ack("glare", to_tag=str(ok.to_tag)))
    call = sip.invites[0]
    ours = asyncio.ensure_future(call.send_request("INVITE", SDP_ANSWER, "application/sdp"))
    await settle_until(lambda: bool(sip.unread()))
    (our_invite,) = sip.sent()
    assert isinstance(our_invite, Request) and our_invite.method == "INVITE"
    sip.deliver(sip.request("INVITE", "glare", cseq=2, to_tag=str(ok.to_tag)))
    assert sip.statuses() == [491]
    sip.deliver(sip.respond(our_invite, 491))
    resp = await ours
    assert resp is not None and resp.status == 491
    ours_ack = [m for m in sip.sent() if isinstance(m, Request)]
    assert [m.method for m in ours_ack] == ["ACK"]  # the transaction ACKs our non-2xx
    # Nothing pending now: the peer's retry is answered.
    sip.deliver(sip.request("INVITE", "glare", cseq=3, to_tag=str(ok.to_tag)))
    assert sip.statuses() == [200]


# -- session timers (RFC 4028) ------------------------------------------------------------------
def test_session_interval_below_min_se_gets_422() -> None:
    sip = FakeSip(min_se=90)
    sip.deliver(
        sip.invite(
            "short-se", branch="z9hG4bK-se", extra=("Session-Expires: 60", "Supported: timer")
        )
    )
    (resp,) = sip.sent()
    assert isinstance(resp, Response) and resp.status == 422
    assert resp.headers.get("Min-SE") == "90"


async def test_session_expires_without_the_peers_refresh_ends_with_bye() -> None:
    sip = FakeSip()
    ok = _answered(
        sip, "se-expire", "z9hG4bK-sx", "Session-Expires: 90;refresher=uac", "Supported: timer"
    )
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"
    sip.deliver(sip.ack("se-expire", to_tag=str(ok.to_tag)))
    sip.advance(59.0)
    assert sip.sent() == []
    # The peer refreshes at 59 s: the clock restarts.
    sip.deliver(
        sip.request(
            "UPDATE",
            "se-expire",
            cseq=2,
            to_tag=str(ok.to_tag),
            extra=("Session-Expires: 90;refresher=uac", "Supported: timer"),
        )
    )
    assert sip.statuses() == [200]
    sip.advance(59.0)
    assert sip.sent() == []
    sip.advance(1.5)  # 60 s after the refresh: SE - min(32, SE/3)
    await settle_until(lambda: bool(sip.unread()))
    (bye,) = sip.sent()
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert [r for _, r in sip.ended] == ["session expired"]


async def test_we_refresh_at_half_the_interval_with_reinvite_when_update_is_not_allowed() -> None:
    sip = FakeSip()
    ok = _answered(sip, "se-refresh", "z9hG4bK-sr", "Session-Expires: 90")  # no Supported
    assert ok.headers.get("Session-Expires") == "90;refresher=uas"
    sip.deliver(sip.ack("se-refresh", to_tag=str(ok.to_tag)))
    sip.advance(44.9)
    assert sip.sent() == []
    sip.advance(0.2)
    await settle_until(lambda: bool(sip.unread()))
    (refresh,) = sip.sent()
    assert isinstance(refresh, Request) and refresh.method == "INVITE"
    assert refresh.headers.get("Session-Expires") == "90;refresher=uac"
    assert refresh.body == SDP_ANSWER
    sip.deliver(sip.respond(refresh, 200, ("Session-Expires", "90;refresher=uac")))
    await settle_until(lambda: bool(sip.unread()))
    assert [m.method for m in sip.sent() if isinstance(m, Request)] == ["ACK"]
    # The next refresh comes half an interval after the answer, not after the first deadline.
    sip.advance(44.9)
    assert sip.sent() == []
    sip.advance(0.2)
    await settle_until(lambda: bool(sip.unread()))
    assert [m.method for m in sip.sent() if isinstance(m, Request)] == ["INVITE"]
    assert sip.ended == []


async def test_our_refresh_that_meets_glare_is_retried_within_two_seconds() -> None:
    """RFC 3261 14.1: the peer owns the Call-ID, so we retry a 491'd refresh after 0-2 s,
    well before the peer's expiry of the session (not at the next half interval)."""
    sip = FakeSip()
    ok = _answered(sip, "se-glare", "z9hG4bK-sg", "Session-Expires: 90", "Allow: INVITE, UPDATE")
    sip.deliver(sip.ack("se-glare", to_tag=str(ok.to_tag)))
    sip.advance(45.1)
    await settle_until(lambda: bool(sip.unread()))
    (refresh,) = sip.sent()
    assert isinstance(refresh, Request) and refresh.method == "UPDATE"
    sip.deliver(sip.respond(refresh, 491))
    await settle_until(lambda: sip.ua.calls["se-glare"].session_clock.deadline is not None)
    sip.advance(2.01)
    await settle_until(lambda: bool(sip.unread()))
    (again,) = sip.sent()
    assert isinstance(again, Request) and again.method == "UPDATE"
    assert again.cseq[0] > refresh.cseq[0]
    assert sip.ended == []


def test_ended_calls_do_not_stay_in_the_deadline_heap() -> None:
    """Each inbound call has an answer deadline a minute out; calls that end long before it
    must not be held until then (the heap is compacted as it grows)."""
    sip = FakeSip(answer_timeout=60.0)
    for n in range(500):
        sip.deliver(sip.invite(f"short-{n}", branch=f"z9hG4bK-short-{n}"))
        sip.invites[-1].reject(486)
    assert not sip.ua.calls
    assert len(sip.ua._call_deadlines) <= 64 + 2
