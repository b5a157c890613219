"""UAS request rules of RFC 3261 (issue 10): sip/uas_rules.py as plain functions, and the user
agent answering them on a real loopback socket (the `env` fixture of test_useragent.py).

- integer fields with leading zeros are valid (CSeq, Max-Forwards, Content-Length, Expires);
- a Request-URI scheme follows 25.1; one we do not serve gets 416;
- an INVITE body other than application/sdp gets 415 with `Accept: application/sdp`;
- an `Accept` without application/sdp (or application/*, */*) on an INVITE gets 406;
- SIP/3.0 gets 505 when the request can be answered;
- Max-Forwards 0 addressed to the UA is processed, not refused with 483.
"""

from __future__ import annotations

import asyncio

import pytest

from sip.message import Request, SipParseError, decimal_value, parse_message
from sip.uas_rules import accept_refusal, content_refusal
from sip.uri import is_valid_scheme
from tests.sip.test_useragent import SDP_OFFER, ack_for, env  # noqa: F401  (fixture)


def _invite(extra: str = "", body: bytes = SDP_OFFER.encode(), ctype: str = "application/sdp"):
    lines = [
        "INVITE sip:bot@192.0.2.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKrules",
        "From: <sip:a@192.0.2.9>;tag=r1",
        "To: <sip:bot@192.0.2.1>",
        "Call-ID: rules-1",
        "CSeq: 1 INVITE",
        "Contact: <sip:a@192.0.2.9>",
    ]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines += [x for x in extra.split("\r\n") if x]
    lines.append(f"Content-Length: {len(body)}")
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(msg, Request)
    return msg


# -- pure functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits", "value"),
    [
        ("0", 3, 0),
        ("000", 3, 0),
        ("070", 3, 70),
        ("0000000070", 3, 70),
        ("0005", 9, 5),
        ("0300", 10, 300),
        ("256", 3, 256),
        ("1000", 3, None),
        ("", 3, None),
        ("7a", 3, None),
        ("-1", 3, None),
        ("\u0663", 3, None),  # ARABIC-INDIC DIGIT THREE: isdigit() but not an RFC DIGIT
        ("0" * 5000 + "1", 3, 1),
    ],
)
def test_decimal_value(text: str, digits: int, value: int | None) -> None:
    assert decimal_value(text, digits) == value


@pytest.mark.parametrize(
    ("scheme", "valid"),
    [
        ("sip", True),
        ("SIPS", True),
        ("tel", True),
        ("x-vendor.proto+v2", True),
        ("im", True),
        ("a1", True),
        ("1a", False),
        ("+sip", False),
        ("si_p", False),
        ("", False),
        ("s\u00edp", False),
    ],
)
def test_scheme_grammar(scheme: str, valid: bool) -> None:
    assert is_valid_scheme(scheme) is valid


def test_leading_zeros_everywhere_parse() -> None:
    msg = _invite("Max-Forwards: 070\r\nExpires: 0300")
    raw = msg.to_bytes().replace(b"CSeq: 1 INVITE", b"CSeq: 0001 INVITE")
    raw = raw.replace(b"Content-Length: ", b"Content-Length: 000")
    again = parse_message(raw)
    assert isinstance(again, Request)
    assert again.cseq == (1, "INVITE")
    assert again.body == SDP_OFFER.encode()
    assert decimal_value(again.headers.get("Expires") or "", 10) == 300


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("x-vendor.proto+v2:agent@example.net", 416),
        ("im:agent@example.net", 416),
        ("h323:agent@example.net", 416),
        ("1bad:agent@example.net", 400),
        ("si_p:agent@example.net", 400),
    ],
)
def test_request_uri_scheme(uri: str, status: int) -> None:
    raw = _invite().to_bytes().replace(b"sip:bot@192.0.2.1 SIP/2.0", f"{uri} SIP/2.0".encode(), 1)
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    assert info.value.status == status and info.value.request is not None


@pytest.mark.parametrize(
    "ctype",
    ["text/plain", "application/isup", "multipart/mixed;boundary=xyz", "application/sdpx"],
)
def test_body_not_sdp_is_415_with_accept(ctype: str) -> None:
    refusal = content_refusal(_invite(ctype=ctype))
    assert refusal is not None and refusal.status == 415
    assert ("Accept", "application/sdp") in refusal.headers


def test_sdp_body_with_parameters_and_case_is_fine() -> None:
    assert content_refusal(_invite(ctype="Application/SDP; charset=utf-8")) is None
    assert content_refusal(_invite(ctype="", body=b"")) is None  # late offer
    assert content_refusal(_invite(ctype="text/plain", body=b"")) is None  # no body at all


def test_body_without_content_type_is_400() -> None:
    refusal = content_refusal(_invite(ctype=""))
    assert refusal is not None and refusal.status == 400


def test_compressed_body_is_415_with_accept_encoding() -> None:
    refusal = content_refusal(_invite("Content-Encoding: gzip"))
    assert refusal is not None and refusal.status == 415
    assert ("Accept-Encoding", "identity") in refusal.headers
    assert content_refusal(_invite("Content-Encoding: identity")) is None


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("text/html", 406),
        ("application/pidf+xml, text/plain", 406),
        ("application/sdp;q=0", 406),
        ("", 406),  # RFC 3261 20.1: an empty Accept accepts nothing
        ("application/sdp", None),
        ("text/plain, Application/SDP", None),
        ("application/*", None),
        ("*/*;q=0.1", None),
        ("application/sdp;level=1;q=0.5", None),
    ],
)
def test_accept_without_sdp_is_406(accept: str, status: int | None) -> None:
    refusal = accept_refusal(_invite(f"Accept: {accept}" if accept else "Accept:"))
    assert (refusal.status if refusal else None) == status


def test_no_accept_header_means_sdp() -> None:
    assert accept_refusal(_invite()) is None


# -- the user agent on a socket ------------------------------------------------------------


async def test_ua_answers_415_with_accept(env) -> None:  # noqa: F811
    _ua, rec, peer = env
    peer.send(
        peer.request(
            "INVITE", call_id="ct-1", body=b"hello", content_type="text/plain; charset=utf-8"
        )
    )
    resp = await peer.expect_status(415)
    assert resp.headers.get("Accept") == "application/sdp"
    assert rec.calls.empty()


async def test_ua_answers_406_for_accept_without_sdp(env) -> None:  # noqa: F811
    _ua, rec, peer = env
    peer.send(peer.invite("acc-1", extra="Accept: text/html, application/pidf+xml"))
    resp = await peer.expect_status(406)
    assert resp.headers.get("Accept") == "application/sdp"
    assert rec.calls.empty()


async def test_ua_answers_416_for_unknown_request_uri_scheme(env) -> None:  # noqa: F811
    _ua, rec, peer = env
    peer.send(peer.invite("sch-1", uri="x-vendor.proto+v2:agent@example.net"))
    resp = await peer.expect_status(416)
    assert resp.reason.startswith("Unsupported URI Scheme")
    assert rec.calls.empty()


async def test_ua_answers_505_for_sip_3(env) -> None:  # noqa: F811
    _ua, rec, peer = env
    peer.send(peer.invite("ver-1").replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1))
    resp = await peer.expect_status(505)
    assert resp.reason == "Version Not Supported"
    assert rec.calls.empty()


async def test_ua_accepts_leading_zeros(env) -> None:  # noqa: F811
    _ua, rec, peer = env
    raw = peer.invite("zero-1", extra="Expires: 0300")
    raw = raw.replace(b"CSeq: 1 INVITE", b"CSeq: 0001 INVITE")
    raw = raw.replace(b"Max-Forwards: 70", b"Max-Forwards: 070")
    raw = raw.replace(b"Content-Length: ", b"Content-Length: 0000")
    peer.send(raw)
    ok = await peer.expect_status(200)
    assert ok.cseq == (1, "INVITE")
    assert ok.headers.get("CSeq") == "0001 INVITE"  # copied as received (8.2.6.2)
    peer.send(ack_for(peer, "zero-1", ok))
    call = await asyncio.wait_for(rec.calls.get(), 2)
    assert call.call_id == "zero-1"


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
async def test_ua_processes_max_forwards_zero(env, method: str) -> None:  # noqa: F811
    _ua, _rec, peer = env
    if method == "INVITE":
        raw = peer.invite("mf0-1")
    else:
        raw = peer.request("OPTIONS", call_id="mf0-1")
    peer.send(raw.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    ok = await peer.expect_status(200)
    assert ok.cseq[1] == method
