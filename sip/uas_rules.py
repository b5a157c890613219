"""Content checks a UAS makes before it acts on an INVITE or UPDATE (RFC 3261 8.2.3, 21.4).

Sans-I/O: each function looks at a parsed `Request` and returns a `Refusal` (the response to
send) or None. The user agent calls them after the method and header checks (8.2.1, 8.2.2),
as 8.2 orders them:

- a body we cannot read: Content-Type other than application/sdp (or a multipart body with an
  application/sdp part and no part we must but cannot understand, sip/body.py) gets `415
  Unsupported Media Type` with `Accept: application/sdp` (8.2.3), a Content-Encoding other than identity gets 415
  with `Accept-Encoding: identity`, a body without Content-Type gets 400 (20.15: it MUST be
  present when there is a body);
- an `Accept` header that rules out the SDP our answer carries (no application/sdp,
  application/* or */*, or only with q=0) gets `406 Not Acceptable` (21.4.7). No Accept at
  all means application/sdp (20.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from sip.body import MULTIPART, read_body
from sip.message import Request

__all__ = ["SDP", "Refusal", "accept_refusal", "content_refusal"]

SDP = "application/sdp"
# Methods whose request body is an SDP offer and whose 2xx carries our SDP answer.
OFFER_METHODS = frozenset({"INVITE", "UPDATE"})


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def content_refusal(req: Request) -> Refusal | None:
    """415/400 for an INVITE/UPDATE body that is not plain SDP; None when it is (or no body)."""
    if req.method not in OFFER_METHODS or not req.body:
        return None
    ctype = req.content_type
    if ctype is None:
        return Refusal(400, "Bad Request - body without Content-Type")
    if ctype in MULTIPART:
        # SIP-I/SIP-T: SDP beside ISUP (sip/body.py); the SDP part is the offer.
        body = read_body(req.headers.get("Content-Type"), req.body)
        if body.sdp is None:
            return Refusal(
                415, f"Unsupported Media Type - no {SDP} part in {ctype}", (("Accept", SDP),)
            )
        if body.required_unknown is not None:
            return Refusal(
                415,
                f"Unsupported Media Type - required part {body.required_unknown[:60]}",
                (("Accept", SDP),),
            )
    elif ctype != SDP:
        return Refusal(
            415, f"Unsupported Media Type - {ctype[:60]} (want {SDP})", (("Accept", SDP),)
        )
    encodings = [e.strip().lower() for e in req.headers.get_all("Content-Encoding") if e.strip()]
    if any(e != "identity" for e in encodings):
        return Refusal(
            415,
            "Unsupported Media Type - Content-Encoding not supported",
            (("Accept-Encoding", "identity"), ("Accept", SDP)),
        )
    return None


def accept_refusal(req: Request) -> Refusal | None:
    """406 when the request's Accept header excludes application/sdp (INVITE/UPDATE only)."""
    if req.method not in OFFER_METHODS or "Accept" not in req.headers:
        return None
    if not any(_accepts_sdp(item) for item in req.headers.get_all("Accept")):
        return Refusal(406, f"Not Acceptable - our answer is {SDP}", (("Accept", SDP),))
    return None


def _accepts_sdp(item: str) -> bool:
    """One Accept element (`application/sdp;q=0.5`): does it admit application/sdp?"""
    media_range, _, params = item.partition(";")
    media_range = "".join(media_range.split()).lower()
    if media_range not in (SDP, "application/*", "*/*"):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip()) > 0
            except ValueError:
                return True  # an unreadable q is not a refusal
    return True
