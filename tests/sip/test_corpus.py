"""Malformed and edge-case messages from tests/sip/corpus/ against an expectation table.

Each corpus file is raw bytes as they would arrive in one datagram. Expectations:
- OK: parses; `check` (optional) asserts something specific about the result;
- ANSWER(status, fragment): SipParseError with `.request` set, so the UA answers
  `status <reason>`; the reason contains `fragment`;
- DROP(fragment): SipParseError without a request (nothing to answer to); reason has `fragment`.
The corpus is written for this project in the spirit of RFC 4475 (not copied from it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sip.message import Request, Response, SipParseError, parse_message

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


def _hdr(name: str, value: str) -> Callable[[Request | Response], bool]:
    return lambda m: m.headers.get(name) == value


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
}


def test_corpus_and_table_agree() -> None:
    files = {p.stem for p in CORPUS.glob("*.sip")}
    assert files == set(EXPECTED), "every corpus file needs an expectation and vice versa"
    assert len(files) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message(name: str) -> None:
    data = (CORPUS / f"{name}.sip").read_bytes()
    expected = EXPECTED[name]
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
