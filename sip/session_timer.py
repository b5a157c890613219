"""RFC 4028 session timers, sans-I/O: negotiation of an incoming Session-Expires and the
per-call clock that says when we refresh or when the session has expired.

No sockets, no event loop: `now` is an argument and the user agent (sip/useragent.py) asks
`deadline` when to call `tick(now)` again. The user agent sends the refresh (UPDATE, or a
re-INVITE with our last SDP when the peer's Allow lacks UPDATE) and the BYE.

    clock = SessionClock()
    clock.restart(SessionTimer(1800, "uas", peer_supports=True), now)  # after our 2xx
    clock.deadline                       # now + 900: we refresh at half the interval (10)
    clock.tick(later) -> REFRESH | EXPIRED | None
    clock.refresh_answered(status, granted_header, now) -> EXPIRED | None
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

REFRESH = "refresh"  # we are the refresher and half the interval has passed: send a refresh
EXPIRED = "session expired"  # no refresh arrived in time (or ours failed): send BYE


@dataclass(frozen=True)
class SessionTimer:
    """RFC 4028 state for one call, from our (UAS) point of view."""

    interval: int
    refresher: str  # "uac" (the peer) or "uas" (us)
    peer_supports: bool

    @property
    def we_refresh(self) -> bool:
        return self.refresher == "uas"

    def header(self) -> str:
        return f"{self.interval};refresher={self.refresher}"

    def refresh_headers(self) -> list[tuple[str, str]]:
        """Headers of our refresh request. In our own request "uac" names us (RFC 4028 7.1:
        the refresher parameter is relative to the transaction)."""
        headers = [("Session-Expires", f"{self.interval};refresher=uac")]
        if self.peer_supports:
            headers.append(("Require", "timer"))
        return headers

    def answer_headers(self) -> list[tuple[str, str]]:
        """Headers of our 2xx that grants this session (9)."""
        headers = [("Session-Expires", self.header())]
        if self.peer_supports:
            headers.append(("Require", "timer"))
        return headers


@dataclass(frozen=True)
class SessionRefusal:
    """The request's Session-Expires cannot be accepted: answer with this instead."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def negotiate(
    session_expires: str | None, supported: Iterable[str], min_se: int
) -> SessionTimer | SessionRefusal | None:
    """RFC 4028 9: the session timer a request asks for, a refusal (400 for an unreadable
    value, 422 with Min-SE below our minimum), or None when it asks for none."""
    peer_supports = "timer" in {s.lower() for s in supported}
    if not session_expires:
        return None
    value, _, params = session_expires.partition(";")
    try:
        interval = int(value.strip())
    except ValueError:
        return SessionRefusal(400, "Bad Request - invalid Session-Expires")
    if interval < min_se:
        return SessionRefusal(422, "Session Interval Too Small", (("Min-SE", str(min_se)),))
    refresher = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower()
    if refresher not in ("uac", "uas"):
        # 9: we choose; a UAC that supports timers refreshes (it knows best when it is alive).
        refresher = "uac" if peer_supports else "uas"
    if not peer_supports:
        refresher = "uas"  # 9: the UAC cannot refresh without supporting the extension
    return SessionTimer(interval, refresher, peer_supports)


def refresh_method(peer_allow: Iterable[str]) -> str:
    """7.4 / 9: UPDATE without a body refreshes without touching media; a peer that does not
    allow UPDATE gets a re-INVITE (with our last SDP)."""
    return "UPDATE" if "UPDATE" in peer_allow else "INVITE"


def expiry_margin(interval: int) -> float:
    """10: the session is over at SE - min(32, SE/3) when the peer was to refresh."""
    return interval - min(32, interval / 3)


class SessionClock:
    """When one call's session must be refreshed (by us) or is over (the peer did not)."""

    def __init__(self) -> None:
        self.session: SessionTimer | None = None
        self.deadline: float | None = None
        self.refreshing = False  # our refresh request is out

    def restart(self, session: SessionTimer | None, now: float) -> float | None:
        """A session was granted or refreshed (our 2xx, the peer's refresh, or the answer to
        ours): the next deadline runs from `now`."""
        self.session = session
        if session is None:
            self.deadline = None
        elif session.we_refresh:
            self.deadline = now + session.interval / 2
        else:
            self.deadline = now + expiry_margin(session.interval)
        return self.deadline

    def stop(self) -> None:
        self.deadline = None

    def tick(self, now: float) -> str | None:
        """REFRESH (send one now), EXPIRED (send BYE) or None (nothing due)."""
        if self.deadline is None or now < self.deadline or self.session is None:
            return None
        self.deadline = None
        if self.session.we_refresh:
            self.refreshing = True
            return REFRESH
        return EXPIRED

    def refresh_answered(
        self,
        status: int | None,
        granted: str | None,
        now: float,
        glare_retry: float | None = None,
    ) -> str | None:
        """The final response to our refresh (None: no answer). EXPIRED when the session is
        gone (timeout, 408, 481). A 491 (the peer's re-INVITE or UPDATE crossed ours) is
        retried after `glare_retry` seconds (RFC 3261 14.1, sip/glare.py): waiting another
        half interval would let the peer's expiry pass first. Otherwise the clock restarts,
        with the interval the peer granted in its 2xx's Session-Expires when there is one."""
        self.refreshing = False
        session = self.session
        if session is None:
            return None
        if status is None or status in (408, 481):
            self.deadline = None
            return EXPIRED
        if status == 491 and glare_retry is not None:
            self.deadline = now + glare_retry
            return None
        if 200 <= status < 300 and granted:
            value, _, params = granted.partition(";")
            if value.strip().isdigit():
                peer_refreshes = "refresher=uas" in params.replace(" ", "").lower()
                refresher = "uac" if peer_refreshes else "uas"  # stored from our UAS view
                session = SessionTimer(int(value), refresher, session.peer_supports)
        self.restart(session, now)
        return None


__all__ = [
    "EXPIRED",
    "REFRESH",
    "SessionClock",
    "SessionRefusal",
    "SessionTimer",
    "expiry_margin",
    "negotiate",
    "refresh_method",
]
