"""Malformed and edge-case messages from tests/sip/corpus/ against an expectation table.

Each corpus file is raw bytes as they would arrive in one datagram. Expectations:
- OK: parses; `check` (optional) asserts something specific about the result;
- ANSWER(status, fragment): SipParseError with `.request` set, so the UA answers
  `status <reason>`; the reason contains `fragment`;
- DROP(fragment): SipParseError without a request (nothing to answer to); reason has `fragment`;
- REFUSE(status, fragment, header): parses, and the user agent answers `status` (a reason with
  `fragment`, and `header` when given): the RFC 3261 8.2 checks after parsing (416 for a tel:
  Request-URI, 415/406 from sip/uas_rules.py).
Every ANSWER and REFUSE message is also fed to a real UserAgent, which must send that status.
The corpus is written for this project in the spirit of RFC 4475 and RFC 5118 (IPv6), not
copied from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sip.body import read_body
from sip.message import (
    Request,
    Response,
    SipParseError,
    decimal_value,
    parse_message,
    response_destination,
)
from sip.sdp import parse_sdp
from sip.transport import Transport, TransportAddr
from sip.uas_rules import accept_refusal
from sip.useragent import UserAgent

CORPUS = Path(__file__).parent / "corpus"


@dataclass(frozen=True)
class Ok:
    check: Callable[[Request | Response], bool] | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    fragment: str


@dataclass(frozen=True)
class Drop:
    fragment: str


@dataclass(frozen=True)
class Refuse:
    status: int
    fragment: str
    header: tuple[str, str] | None = None


def _hdr(name: str, value: str) -> Callable[[Request | Response], bool]:
    return lambda m: m.headers.get(name) == value


def _int(m: Request | Response, name: str) -> int | None:
    return decimal_value(m.headers.get(name) or "", 10)


def _sdp_families(m: Request | Response) -> list[str]:
    sdp = parse_sdp(m.body)
    return [c.addrtype for media in sdp.media if (c := sdp.media_connection(media)) is not None]


EXPECTED: dict[str, Ok | Answer | Drop] = {
    # ---- parse OK
    "ok_basic_invite": Ok(lambda m: m.content_type == "application/sdp" and len(m.body) == 113),
    "ok_options_no_body": Ok(lambda m: m.body == b""),
    "ok_unknown_method": Ok(lambda m: m.method == "FLOOP" and m.cseq == (4, "FLOOP")),
    "ok_lf_only": Ok(lambda m: m.body.startswith(b"v=0\n") and m.call_id.startswith("corpus")),
    "ok_leading_crlf": Ok(lambda m: m.method == "INVITE"),
    "ok_folded_headers": Ok(
        lambda m: (
            m.headers.get("Subject") == "a subject that continues on two lines"
            and m.headers.get("X-Fold") == "value-on-next-line"
        )
    ),
    "ok_compact_headers": Ok(
        lambda m: (
            m.call_id == "compact-1"
            and m.headers.get_all("Supported") == ["timer", "100rel"]
            and m.top_via is not None
            and m.top_via.transport == "TCP"
        )
    ),
    "ok_ipv6_via": Ok(
        lambda m: (
            m.top_via is not None
            and m.top_via.host == "[2001:db8::30]"
            and m.top_via.received == "2001:db8::31"
        )
    ),
    "ok_display_name_escapes": Ok(
        lambda m: (
            m.from_addr.display_name == 'Smith, J. "Jim" \\ Sales, Inc.'
            and m.to_addr.display_name == "Agent; Line 1"
        )
    ),
    "ok_lws_display_name": Ok(lambda m: m.from_addr.display_name == "Caller"),
    "ok_very_long_header": Ok(lambda m: len(m.headers.get("X-Long") or "") == 10000),
    "ok_many_vias": Ok(lambda m: len(m.headers.get_all("Via")) == 60 and m.branch == "z9hG4bKhop0"),
    "ok_whitespace_everywhere": Ok(
        lambda m: (
            m.cseq == (12, "INVITE")
            and m.call_id == "ws-1@192.0.2.30"
            and m.from_tag == "wsfrom"
            and m.top_via is not None
            and m.top_via.port == 5060
        )
    ),
    "ok_mixed_case_names": Ok(lambda m: m.call_id == "case-1" and m.cseq == (7, "OPTIONS")),
    "ok_same_content_length_twice": Ok(),
    "ok_body_longer_than_content_length": Ok(lambda m: m.body == b"v=0\r\no=- 5"),
    "ok_two_messages_one_datagram": Ok(lambda m: m.cseq == (3, "OPTIONS") and m.body == b""),
    "ok_no_content_length": Ok(lambda m: m.body.endswith(b"PCMU/8000\r\n")),
    "ok_non_utf8_header_value": Ok(
        lambda m: (m.headers.get("User-Agent") or "").startswith("Standort M")
    ),
    "ok_escaped_request_uri": Ok(
        lambda m: m.uri.user == "+1-555-0100;ext=7" and m.uri.params.get("user") == "phone"
    ),
    "ok_unknown_headers_with_commas": Ok(
        lambda m: (
            m.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
            and m.headers.get("Supported") == ""
        )
    ),
    "ok_response_empty_reason": Ok(lambda m: m.status == 200 and m.reason == ""),
    "ok_response_unusual_reason": Ok(lambda m: m.status == 486 and "occup" in m.reason),
    "ok_tel_uri_from": Ok(lambda m: m.from_addr.uri.scheme == "tel" and m.from_tag == "tel1"),
    "ok_max_forwards_missing": Ok(lambda m: "Max-Forwards" not in m.headers),
    "ok_max_forwards_zero": Ok(_hdr("Max-Forwards", "0")),
    "ok_binary_body_with_nul": Ok(
        lambda m: m.body.startswith(b"\x00\x01\x02") and len(m.body) == 180
    ),
    "ok_quoted_param_with_semicolon": Ok(
        lambda m: m.headers.get("Contact", "").endswith("reg-id=1;expires=600")
    ),
    "ok_register_star_contact": Ok(lambda m: m.headers.get_all("Contact") == ["*"]),
    "ok_unknown_via_transport": Ok(
        lambda m: m.top_via is not None and m.top_via.transport == "SCTP"
    ),
    "ok_headers_without_blank_line": Ok(lambda m: m.body == b""),
    "ok_unknown_scheme_in_from_to": Ok(
        lambda m: (
            m.from_tag == "unk1"
            and m.from_addr.uri.scheme == "urn"
            and m.to_addr.uri.scheme == "soap.beep"
        )
    ),
    "ok_escaped_nul_in_user": Ok(lambda m: m.uri.user == "agent\x00x"),
    "ok_mixed_line_endings": Ok(lambda m: m.headers.get("Max-Forwards") == "70" and m.body == b""),
    # ---- issue 10: valid but odd forms (RFC 4475 3.1.1 classes)
    "ok_leading_zeros_integers": Ok(
        lambda m: (
            m.cseq == (1, "INVITE")
            and _int(m, "Max-Forwards") == 70
            and _int(m, "Expires") == 300
            and m.body.endswith(b"PCMA/8000\r\n")
        )
    ),
    "ok_max_forwards_zero_padded_zero": Ok(lambda m: _int(m, "Max-Forwards") == 0),
    "ok_uppercase_sip_scheme": Ok(
        lambda m: m.uri.scheme == "sip" and m.uri.host == "GW.Example.NET"
    ),
    "ok_accept_wildcards": Ok(lambda m: accept_refusal(m) is None),  # type: ignore[arg-type]
    "ok_long_tokens": Ok(
        lambda m: (
            len(m.from_tag or "") == 900
            and len(m.branch or "") == 707
            and len(m.call_id) > 800
            and sum(name.startswith("X-Hop-") for name, _ in m.headers) == 120
        )
    ),
    "ok_escaped_chars_in_uris": Ok(
        lambda m: (
            m.uri.user == "agent one"
            and m.from_addr.uri.user == "c@ller;x"
            and m.to_addr.uri.user == "agent one"
        )
    ),
    "ok_tabs_and_folding_in_mandatory_headers": Ok(
        lambda m: (
            m.cseq == (4, "INVITE")
            and m.from_tag == "tabs"
            and m.from_addr.display_name == "Tab\tCaller"
            and m.branch == "z9hG4bKi10tabs"
        )
    ),
    "ok_folded_content_length": Ok(lambda m: m.body == b"" and _int(m, "Content-Length") == 0),
    # ---- issue 10: IPv6 (RFC 5118 classes)
    "ok_ipv6_request_uri_and_sdp": Ok(
        lambda m: (
            (m.uri.host, m.uri.port) == ("[2001:db8::10]", 5070)
            and m.top_via is not None
            and m.top_via.host == "[2001:db8::40]"
            and _sdp_families(m) == ["IP6"]
        )
    ),
    "ok_ipv6_port_inside_brackets": Ok(
        lambda m: (m.uri.host, m.uri.port) == ("[2001:db8::10:5070]", None)
    ),
    "ok_ipv6_received_bracketed": Ok(
        lambda m: (
            m.top_via is not None
            and m.top_via.received == "[2001:db8::41]"
            and response_destination(m.top_via) == ("2001:db8::41", 5060)
        )
    ),
    "ok_ipv4_and_ipv6_in_headers": Ok(
        lambda m: (
            len(m.headers.get_all("Via")) == 2
            and len(m.headers.get_all("Contact")) == 2
            and m.top_via is not None
            and m.top_via.host == "[2001:db8::40]"
        )
    ),
    "ok_ipv4_session_ipv6_media_sdp": Ok(lambda m: _sdp_families(m) == ["IP6"]),
    # SIP-I (Q.1912.5): SDP beside an ISUP part marked handling=optional; the SDP is the offer.
    "ok_multipart_sdp_and_optional_isup": Ok(
        lambda m: (
            parse_sdp(read_body(m.headers.get("Content-Type"), m.body).sdp or b"").media[0].port
            == 4010
        )
    ),
    "ok_ipv4_mapped_ipv6": Ok(
        lambda m: m.uri.host == "[::ffff:192.0.2.10]" and m.top_via is not None
    ),
    # ---- answerable errors
    "ans_content_length_negative": Answer(400, "Bad Content-Length"),
    "ans_content_length_non_numeric": Answer(400, "Bad Content-Length"),
    "ans_content_length_larger_than_body": Answer(400, "larger than body"),
    "ans_content_length_conflicting": Answer(400, "Conflicting Content-Length"),
    "ans_cseq_non_numeric": Answer(400, "non-numeric CSeq"),
    "ans_cseq_method_mismatch": Answer(400, "CSeq method does not match"),
    "ans_cseq_huge": Answer(400, "CSeq number out of range"),
    "ans_cseq_2_pow_31": Answer(400, "CSeq number out of range"),
    "ans_cseq_missing_method": Answer(400, "malformed CSeq"),
    "ans_bad_sip_version": Answer(505, "Version Not Supported"),
    "ans_unsupported_uri_scheme": Answer(416, "Unsupported URI Scheme"),
    "ans_bad_request_uri": Answer(400, "Bad Request-URI"),
    "ans_unbalanced_quote_to": Answer(400, "Bad To header"),
    "ans_malformed_header_line": Answer(400, "malformed header line"),
    "ans_call_id_with_space": Answer(400, "Bad Call-ID"),
    "ans_max_forwards_too_big": Answer(400, "Bad Max-Forwards"),
    "ans_request_uri_with_space": Answer(400, "Request-URI contains whitespace"),
    "ans_bare_cr_in_header": Answer(400, "bare CR"),
    "ans_duplicate_call_id": Answer(400, "Multiple Call-ID headers"),
    "ans_duplicate_to": Answer(400, "Multiple To headers"),
    "ans_max_forwards_leading_zeros_over_255": Answer(400, "Bad Max-Forwards"),
    "ans_cseq_leading_zeros_over_2_31": Answer(400, "CSeq number out of range"),
    "ans_unknown_scheme_with_digits_and_symbols": Answer(416, "Unsupported URI Scheme"),
    "ans_unknown_scheme_im": Answer(416, "Unsupported URI Scheme 'im'"),
    "ans_scheme_starting_with_digit": Answer(400, "Bad Request-URI"),
    "ans_scheme_with_underscore": Answer(400, "Bad Request-URI"),
    "ans_sip_version_3": Answer(505, "Version Not Supported"),
    "ans_bad_escape_in_request_uri": Answer(400, "bad %-escape"),
    "ans_ipv6_request_uri_without_brackets": Answer(400, "Bad Request-URI"),
    "ans_ipv6_request_uri_three_colons": Answer(400, "invalid IPv6 address"),
    "ans_ipv6_request_uri_unterminated": Answer(400, "unterminated IPv6 reference"),
    "ans_ipv6_contact_host_garbage": Answer(400, "Bad From header"),
    # ---- parsed, then refused by the user agent (RFC 3261 8.2.2, 8.2.3, 21.4.7)
    "refuse_tel_request_uri": Refuse(416, "Unsupported URI Scheme"),
    "refuse_body_text_plain": Refuse(415, "text/plain", ("Accept", "application/sdp")),
    "refuse_body_multipart_without_sdp": Refuse(
        415, "no application/sdp part", ("Accept", "application/sdp")
    ),
    "refuse_body_multipart_required_isup": Refuse(
        415, "required part application/isup", ("Accept", "application/sdp")
    ),
    "refuse_body_gzip_encoded": Refuse(415, "Content-Encoding", ("Accept-Encoding", "identity")),
    "refuse_body_without_content_type": Refuse(400, "without Content-Type"),
    "refuse_accept_without_sdp": Refuse(406, "Not Acceptable", ("Accept", "application/sdp")),
    "refuse_accept_sdp_q_zero": Refuse(406, "Not Acceptable", ("Accept", "application/sdp")),
    # ---- dropped
    "drop_empty": Drop("empty message"),
    "drop_only_crlf": Drop("empty message"),
    "drop_binary_garbage": Drop("malformed request line"),
    "drop_missing_via": Drop("Missing Via"),
    "drop_missing_from": Drop("Missing From"),
    "drop_missing_to": Drop("Missing To"),
    "drop_missing_call_id": Drop("Missing Call-ID"),
    "drop_missing_cseq": Drop("Missing CSeq"),
    "drop_bad_via": Drop("Bad Via"),
    "drop_bad_request_line": Drop("malformed request line"),
    "drop_request_line_extra_token": Drop("malformed request line"),
    "drop_bad_status_code": Drop("bad status code"),
    "drop_huge_status_code": Drop("bad status code"),
    "drop_status_out_of_range": Drop("bad status code"),
    "drop_bad_response_version": Drop("unsupported SIP version"),
    "drop_response_bad_cseq": Drop("non-numeric CSeq"),
    "drop_too_large_64k": Drop("too large"),
    "drop_http_request": Drop("no SIP version"),
    "drop_sip_version_3_everywhere": Drop("Version Not Supported"),  # the Via is SIP/3.0 too
    "drop_ipv6_via_without_brackets": Drop("Bad Via"),
    "drop_ipv6_via_two_double_colons": Drop("Bad Via"),
}


def test_corpus_and_table_agree() -> None:
    files = {p.stem for p in CORPUS.glob("*.sip")}
    assert files == set(EXPECTED), "every corpus file needs an expectation and vice versa"
    assert len(files) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message(name: str) -> None:
    data = (CORPUS / f"{name}.sip").read_bytes()
    expected = EXPECTED[name]
    if isinstance(expected, Refuse):
        expected = Ok()  # parses; the UA's answer is checked in test_corpus_answer_from_the_ua
    if isinstance(expected, Ok):
        msg = parse_message(data)
        if expected.check is not None:
            assert expected.check(msg), msg
        # Every message we accept survives serialise + parse.
        again = parse_message(msg.to_bytes())
        assert again == msg
        return
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    err = info.value
    assert expected.fragment in err.reason
    if isinstance(expected, Answer):
        assert err.request is not None, "should be answerable"
        assert err.status == expected.status
        response = err.request.make_response(err.status, err.reason, to_tag="err")
        wire = response.to_bytes()
        assert wire.startswith(f"SIP/2.0 {expected.status} ".encode())
        assert err.request.call_id.encode() in wire
    else:
        assert err.request is None, "should be dropped"


def test_response_to_answerable_error_routes_back() -> None:
    data = (CORPUS / "ans_cseq_method_mismatch.sip").read_bytes()
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    request = info.value.request
    assert request is not None
    response = parse_message(request.make_response(400, info.value.reason, to_tag="e1").to_bytes())
    assert isinstance(response, Response)
    assert response.status == 400 and response.reason == "CSeq method does not match request method"
    assert response.branch == request.branch and response.to_tag == "e1"


@pytest.mark.parametrize(
    "name",
    sorted(n for n, e in EXPECTED.items() if isinstance(e, Answer | Refuse)),
)
async def test_corpus_answer_from_the_ua(name: str) -> None:
    """The user agent, fed the datagram from a loopback source, sends the expected response."""
    expected = EXPECTED[name]
    assert isinstance(expected, Answer | Refuse)
    sent: list[bytes] = []
    ua = UserAgent(Transport("127.0.0.1", 0, transports=("udp",)))
    await ua.start()
    try:
        ua.transport.send = lambda data, dest: sent.append(data)  # type: ignore[method-assign]
        ua.handle_datagram(
            (CORPUS / f"{name}.sip").read_bytes(), TransportAddr("udp", "127.0.0.1", 5099)
        )
        # Read the responses by hand: they copy the request's From/To/Call-ID/CSeq (8.2.6.2),
        # which is what made some of these requests unparsable in the first place.
        finals = [_status_line(d) for d in sent if _status_line(d)[0] >= 200]
        assert len(finals) == 1, sent
        status, reason, raw = finals[0]
        assert status == expected.status, raw
        assert expected.fragment in reason, reason
        if isinstance(expected, Refuse) and expected.header is not None:
            name, value = expected.header
            assert f"\r\n{name}: {value}\r\n".encode() in raw, raw
    finally:
        await ua.close()


def _status_line(data: bytes) -> tuple[int, str, bytes]:
    first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    parts = first.split(" ", 2)
    if parts[0] != "SIP/2.0" or len(parts) < 2 or not parts[1].isdigit():
        return 0, "", data
    return int(parts[1]), parts[2] if len(parts) > 2 else "", data
