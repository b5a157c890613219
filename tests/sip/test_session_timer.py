"""RFC 4028 session timers (sip/session_timer.py) with a fake clock: no sockets, no event loop,
no sleeps. Negotiation (9, 422 Min-SE), refresh at half the interval by the refresher (10),
expiry at SE - min(32, SE/3) when the peer was to refresh and did not."""

from __future__ import annotations

import pytest

from sip.glare import retry_delay
from sip.session_timer import (
    EXPIRED,
    REFRESH,
    SessionClock,
    SessionRefusal,
    SessionTimer,
    expiry_margin,
    negotiate,
    refresh_method,
)


def test_no_session_expires_means_no_timer() -> None:
    assert negotiate(None, ["timer"], 90) is None
    assert negotiate("", [], 90) is None


def test_interval_below_min_se_is_refused_with_422_and_min_se() -> None:
    refusal = negotiate("60", ["timer"], 90)
    assert refusal == SessionRefusal(422, "Session Interval Too Small", (("Min-SE", "90"),))


def test_unreadable_session_expires_is_400() -> None:
    refusal = negotiate("soon;refresher=uac", ["timer"], 90)
    assert isinstance(refusal, SessionRefusal) and refusal.status == 400


@pytest.mark.parametrize(
    ("header", "supported", "refresher"),
    [
        ("1800;refresher=uac", ["timer"], "uac"),  # as asked
        ("1800;refresher=uas", ["timer"], "uas"),
        ("1800", ["timer"], "uac"),  # we choose: a UAC that supports timers refreshes
        ("1800", [], "uas"),  # a UAC without the extension cannot refresh
        ("1800;refresher=uac", [], "uas"),  # ... even when it names itself
    ],
)
def test_refresher_choice(header: str, supported: list[str], refresher: str) -> None:
    session = negotiate(header, supported, 90)
    assert isinstance(session, SessionTimer)
    assert session.interval == 1800 and session.refresher == refresher
    assert session.peer_supports == bool(supported)


def test_answer_and_refresh_headers() -> None:
    session = SessionTimer(1800, "uas", peer_supports=True)
    assert session.answer_headers() == [
        ("Session-Expires", "1800;refresher=uas"),
        ("Require", "timer"),
    ]
    # In our own refresh request "uac" names us (7.1).
    assert session.refresh_headers()[0] == ("Session-Expires", "1800;refresher=uac")
    assert SessionTimer(90, "uas", peer_supports=False).refresh_headers() == [
        ("Session-Expires", "90;refresher=uac")
    ]
    assert refresh_method(["INVITE", "UPDATE"]) == "UPDATE"
    assert refresh_method(["INVITE", "BYE"]) == "INVITE"


def test_we_refresh_at_half_the_interval() -> None:
    clock = SessionClock()
    assert clock.restart(SessionTimer(1800, "uas", True), now=100.0) == 1000.0
    assert clock.tick(999.9) is None
    assert clock.tick(1000.0) == REFRESH
    assert clock.tick(1000.1) is None  # reported once
    # The peer grants a shorter interval and asks to refresh itself (refresher=uas in our
    # request's terms: the UAS of our refresh transaction is the peer).
    assert clock.refresh_answered(200, "600;refresher=uas", now=1001.0) is None
    assert clock.session == SessionTimer(600, "uac", True)
    assert clock.deadline == 1001.0 + expiry_margin(600)


def test_a_refresh_without_a_granted_interval_keeps_ours() -> None:
    clock = SessionClock()
    clock.restart(SessionTimer(120, "uas", False), now=0.0)
    assert clock.tick(60.0) == REFRESH
    assert clock.refresh_answered(200, None, now=60.5) is None
    assert clock.session == SessionTimer(120, "uas", False) and clock.deadline == 120.5


@pytest.mark.parametrize("status", [None, 408, 481])
def test_a_failed_refresh_ends_the_session(status: int | None) -> None:
    clock = SessionClock()
    clock.restart(SessionTimer(90, "uas", True), now=0.0)
    assert clock.tick(45.0) == REFRESH
    assert clock.refresh_answered(status, None, now=46.0) == EXPIRED
    assert clock.deadline is None


def test_another_failure_restarts_the_clock() -> None:
    """A 500 to our refresh is not the end: we try again at the next half."""
    clock = SessionClock()
    clock.restart(SessionTimer(90, "uas", True), now=0.0)
    assert clock.tick(45.0) == REFRESH
    assert clock.refresh_answered(500, None, now=45.5) is None
    assert clock.deadline == 90.5


def test_a_glaring_refresh_is_retried_after_the_14_1_delay() -> None:
    """491: the peer's re-INVITE crossed ours. The next half interval (90.5 s) would come after
    the peer's own expiry of the session (SE - min(32, SE/3) = 60 s after its last refresh,
    RFC 4028 10), so we retry after RFC 3261 14.1's delay instead."""
    clock = SessionClock()
    clock.restart(SessionTimer(90, "uas", True), now=0.0)
    assert clock.tick(45.0) == REFRESH
    delay = retry_delay(owns_call_id=False, draw=150)
    assert delay == 1.5
    assert clock.refresh_answered(491, None, now=45.5, glare_retry=delay) is None
    assert clock.deadline == 47.0 < expiry_margin(90)
    assert clock.tick(46.9) is None
    assert clock.tick(47.0) == REFRESH


@pytest.mark.parametrize(
    ("owns", "draw", "delay"),
    [(True, 0, 2.1), (True, 190, 4.0), (True, 999, 4.0), (False, 0, 0.0), (False, 200, 2.0)],
)
def test_glare_retry_delay_ranges(owns: bool, draw: int, delay: float) -> None:
    """RFC 3261 14.1: the Call-ID's owner waits 2.1-4 s, the other side 0-2 s, 10 ms steps."""
    assert retry_delay(owns, draw) == delay
    for _ in range(50):
        drawn = retry_delay(owns)
        assert (2.1 <= drawn <= 4.0) if owns else (0.0 <= drawn <= 2.0)


def test_the_peer_refreshes_or_the_session_expires() -> None:
    """10: without a refresh by SE - min(32, SE/3) we end the call (BYE)."""
    clock = SessionClock()
    assert clock.restart(SessionTimer(1800, "uac", True), now=0.0) == 1768.0
    assert clock.tick(1700.0) is None
    clock.restart(clock.session, now=1700.0)  # the peer's re-INVITE/UPDATE arrived
    assert clock.tick(1768.0) is None
    assert clock.deadline == 3468.0
    assert clock.tick(3468.0) == EXPIRED
    # Short intervals: a third of the interval, not 32 s.
    assert expiry_margin(90) == 60.0


def test_stop_and_no_session() -> None:
    clock = SessionClock()
    assert clock.restart(None, now=0.0) is None
    assert clock.tick(10_000.0) is None
    clock.restart(SessionTimer(90, "uac", True), now=0.0)
    clock.stop()
    assert clock.tick(10_000.0) is None
