"""Blind transfer (RFC 3515), sans-I/O: the outcome of a REFER we sent, from its own final
response and the NOTIFYs of the implicit subscription (message/sipfrag bodies, RFC 3420).

    progress = ReferProgress()
    progress.notify(sipfrag_status(notify.body), terminated)  -> final status or None
    progress.refer_answered(status)                           -> final status or None
    progress.call_ended()                                     -> final status
The user agent (sip/useragent.py) sends the REFER, answers the NOTIFYs and waits, with its
own deadline (408 when nothing final arrives in time).
"""

from __future__ import annotations

NO_ANSWER = 408  # no final answer from the REFER or no final sipfrag in time
ENDED_WITHOUT_RESULT = 487  # the subscription (or the call) ended without a final sipfrag


def sipfrag_status(body: bytes) -> int | None:
    """Status code of a message/sipfrag body (`SIP/2.0 200 OK`), None if unreadable."""
    first = body.decode("utf-8", "replace").strip().split("\r\n")[0].split("\n")[0]
    parts = first.split()
    if len(parts) >= 2 and parts[0].upper() == "SIP/2.0" and parts[1].isdigit():
        return int(parts[1])
    return None


def refer_headers(target_uri: str, referred_by: str) -> list[tuple[str, str]]:
    return [("Refer-To", f"<{target_uri}>"), ("Referred-By", referred_by)]


class ReferProgress:
    """What a transfer has come to. NOTIFYs may arrive before the REFER's own 2xx (the
    referee starts the new call at once): their outcome waits for the REFER's answer."""

    def __init__(self) -> None:
        self.last = 100  # the last sipfrag status seen
        self.outcome: int | None = None  # from the NOTIFYs: final status, or the end of it

    def notify(self, status: int | None, terminated: bool) -> int | None:
        """A NOTIFY (status None: unreadable sipfrag). Returns the outcome once there is one."""
        if self.outcome is not None:
            return self.outcome
        if status is not None:
            self.last = status
        if status is not None and status >= 200:
            self.outcome = status
        elif terminated:
            # Subscription ended without a final sipfrag (or the call ended).
            self.outcome = self.last if self.last >= 200 else ENDED_WITHOUT_RESULT
        return self.outcome

    def call_ended(self) -> int:
        outcome = self.notify(None, True)
        assert outcome is not None
        return outcome

    def refer_answered(self, status: int | None) -> int | None:
        """The REFER's final response (None: none). A failure is the outcome; after a 2xx
        the outcome is the NOTIFYs' (None while they have not given one)."""
        if status is None:
            return NO_ANSWER
        if status >= 300:
            return status
        return self.outcome


__all__ = [
    "ENDED_WITHOUT_RESULT",
    "NO_ANSWER",
    "ReferProgress",
    "refer_headers",
    "sipfrag_status",
]
