"""sip/sdp.py's dialog-level helpers: the SDP of a message, hold/resume direction mirroring,
and the o= version across answers (RFC 3264 8). Moved here from tests/sip/test_useragent.py
with the helpers themselves (issue 11)."""

from __future__ import annotations

import pytest

from sip.message import parse_message
from sip.sdp import mirror_offer_direction, parse_sdp, sdp_body, versioned_sdp
from tests.tools.fake_sip import SDP_ANSWER, SDP_OFFER

DIRECTION_LINES = {b"a=sendrecv", b"a=sendonly", b"a=recvonly", b"a=inactive"}


def _sdp_version(sdp: bytes) -> int:
    return int(parse_sdp(sdp).origin.session_version)


def test_versioned_sdp_keeps_or_bumps_origin_version() -> None:
    same = versioned_sdp(SDP_ANSWER, SDP_ANSWER.replace(b"2000 2000", b"2000 7777"))
    assert _sdp_version(same) == 2000  # only o= differed: same version (RFC 3264 8)
    changed = versioned_sdp(SDP_ANSWER, SDP_ANSWER.replace(b"a=sendrecv", b"a=recvonly"))
    assert _sdp_version(changed) == 2001
    assert versioned_sdp(None, SDP_ANSWER) == SDP_ANSWER


@pytest.mark.parametrize(
    ("offer_change", "expected"),
    [
        (("a=sendrecv", "a=sendonly"), b"a=recvonly"),
        (("a=sendrecv", "a=inactive"), b"a=inactive"),
        (("a=sendrecv", "a=recvonly"), b"a=sendonly"),
        (("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"), b"a=recvonly"),  # RFC 2543 hold
        (("a=sendrecv", "a=sendrecv"), b"a=sendrecv"),
    ],
)
def test_mirror_offer_direction(offer_change: tuple[str, str], expected: bytes) -> None:
    offer = SDP_OFFER.replace(*offer_change).encode()
    answer = mirror_offer_direction(SDP_ANSWER, offer)
    assert answer is not None
    directions = [ln for ln in answer.split(b"\r\n") if ln in DIRECTION_LINES]
    assert directions == [expected]


def test_sdp_body_reads_plain_and_absent_bodies() -> None:
    head = (
        "INVITE sip:gw@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1\r\n"
        "From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:gw@127.0.0.1>\r\n"
        "Call-ID: sdp-body-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    )
    with_sdp = parse_message(
        (
            head + f"Content-Type: application/sdp\r\nContent-Length: {len(SDP_OFFER)}\r\n\r\n"
        ).encode()
        + SDP_OFFER.encode()
    )
    assert sdp_body(with_sdp) == SDP_OFFER.encode()
    without = parse_message((head + "Content-Length: 0\r\n\r\n").encode())
    assert sdp_body(without) is None
