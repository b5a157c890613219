"""SIP message parsing, serialisation, headers, Via/RFC 3581 and stream framing
(sip.message, sip.headers, sip.framing)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.framing import FramingError, StreamFramer, is_keepalive
from sip.headers import (
    HeaderError,
    Headers,
    Via,
    generate_branch,
    generate_tag,
    parse_via,
    response_destination,
)
from sip.message import (
    Request,
    Response,
    SipParseError,
    apply_received_rport,
    parse_message,
)


def crlf(text: str) -> bytes:
    """Test messages are written with \\n; the wire uses CRLF."""
    return text.replace("\n", "\r\n").encode()


SDP = (
    "v=0\r\no=- 1700000000 1700000000 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\nm=audio 12000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def with_body(head: str, body: str) -> bytes:
    raw = body.encode()
    return crlf(head.replace("@LEN@", str(len(raw)))) + raw


# Project-owned messages shaped like what each peer sends (values invented for these tests).
ASTERISK_OPTIONS = crlf(
    """OPTIONS sip:gateway@192.0.2.20:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKPj0c7a3f1e-1b2c-4d5e-9f00-aa11bb22cc33
From: <sip:pbx@192.0.2.10>;tag=5f0e2a9c-8d7b-4c6a-b1e2-334455667788
To: <sip:gateway@192.0.2.20>
Contact: <sip:pbx@192.0.2.10:5060>
Call-ID: 8f3c1a2b-7d6e-4f50-9a1b-2c3d4e5f6a7b
CSeq: 40211 OPTIONS
Max-Forwards: 70
User-Agent: Asterisk PBX 20.5.0
Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER
Supported: 100rel, timer, replaces, norefersub
Accept: application/sdp, application/dialog-info+xml, application/simple-message-summary
Content-Length:  0

"""
)

ASTERISK_INVITE = with_body(
    """INVITE sip:gateway@192.0.2.20:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKPj11223344-5566-7788-99aa-bbccddeeff00
From: "Front Desk" <sip:2001@192.0.2.10>;tag=0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9
To: <sip:gateway@192.0.2.20>
Contact: <sip:asterisk@192.0.2.10:5060>
Call-ID: 1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6
CSeq: 7001 INVITE
Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER
Supported: 100rel, timer, replaces, norefersub
Session-Expires: 1800
Min-SE: 90
P-Asserted-Identity: "Front Desk" <sip:2001@192.0.2.10>
Max-Forwards: 70
User-Agent: Asterisk PBX 20.5.0
Content-Type: application/sdp
Content-Length: @LEN@

""",
    SDP,
)

BARESIP_INVITE = with_body(
    """INVITE sip:gateway@127.0.0.1:25070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:25062;branch=z9hG4bK9a8b7c6d5e4f3a2b;rport
Contact: <sip:caller-0x55aa11bb22cc@127.0.0.1:25062>
Max-Forwards: 70
To: <sip:gateway@127.0.0.1:25070>
From: <sip:caller@127.0.0.1>;tag=7e6d5c4b3a291807
Call-ID: 0f1e2d3c4b5a6978
CSeq: 21913 INVITE
User-Agent: baresip v1.0.0 (x86_64/linux)
Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER,UPDATE
Supported: replaces,norefersub
Content-Type: application/sdp
Content-Length: @LEN@

""",
    SDP,
)

SIPP_INVITE = with_body(
    """INVITE sip:service@127.0.0.1:25070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bK-4242-1-0
From: sipp <sip:sipp@127.0.0.1:25060>;tag=4242SIPpTag001
To: sut <sip:service@127.0.0.1:25070>
Call-ID: 1-4242@127.0.0.1
CSeq: 1 INVITE
Contact: sip:sipp@127.0.0.1:25060
Max-Forwards: 70
Subject: Performance Test
Content-Type: application/sdp
Content-Length: @LEN@

""",
    SDP,
)

REGISTER_401 = crlf(
    """SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK5b6c7d8e9f;received=198.51.100.7;rport=40112
From: <sip:gateway@pbx.example.com>;tag=a1b2c3d4
To: <sip:gateway@pbx.example.com>;tag=z9y8x7w6
Call-ID: reg-3f2e1d0c@192.0.2.20
CSeq: 2 REGISTER
WWW-Authenticate: Digest realm="pbx.example.com", nonce="YWJjZGVmMTIzNDU2Nzg5MA==", opaque="5ccc069c403ebaf9", algorithm=MD5, qop="auth"
Server: Asterisk PBX 20.5.0
Content-Length: 0

"""
)

OK_WITH_RECORD_ROUTE = with_body(
    """SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:25061;branch=z9hG4bKcydzigwkX;rport=25061, SIP/2.0/UDP 127.0.0.1:25062;branch=z9hG4bKoriginal;rport
Record-Route: <sip:127.0.0.1:25060;lr=on;ftag=7e6d5c4b>, <sip:10.0.0.2;lr>
Record-Route: <sip:edge.example.com;lr;transport=tcp>
From: <sip:caller@127.0.0.1>;tag=7e6d5c4b3a291807
To: <sip:gateway@127.0.0.1:25070>;tag=gw-9f8e7d
Call-ID: 0f1e2d3c4b5a6978
CSeq: 21913 INVITE
Contact: <sip:gateway@127.0.0.1:25070;transport=udp>
Content-Type: application/sdp
Content-Length: @LEN@

""",
    SDP,
)

REAL_LOOKING = [
    ASTERISK_OPTIONS,
    ASTERISK_INVITE,
    BARESIP_INVITE,
    SIPP_INVITE,
    REGISTER_401,
    OK_WITH_RECORD_ROUTE,
]


@pytest.mark.parametrize(
    "raw", REAL_LOOKING, ids=["options", "asterisk", "baresip", "sipp", "401", "200rr"]
)
def test_round_trip(raw: bytes) -> None:
    msg = parse_message(raw)
    again = parse_message(msg.to_bytes())
    assert again == msg
    assert again.to_bytes() == msg.to_bytes()


def test_asterisk_invite_accessors() -> None:
    msg = parse_message(ASTERISK_INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:gateway@192.0.2.20:5060"
    assert msg.call_id == "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6"
    assert msg.cseq == (7001, "INVITE")
    assert msg.from_tag == "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
    assert msg.to_tag is None
    assert msg.branch == "z9hG4bKPj11223344-5566-7788-99aa-bbccddeeff00"
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP.encode()
    assert msg.from_addr.display_name == "Front Desk"
    assert msg.headers.get_all("Allow")[:3] == ["OPTIONS", "REGISTER", "SUBSCRIBE"]
    assert len(msg.headers.get_all("allow")) == 13
    assert msg.headers.get("session-expires") == "1800"


def test_sipp_contact_addr_spec() -> None:
    msg = parse_message(SIPP_INVITE)
    assert msg.headers.get_all("Contact") == ["sip:sipp@127.0.0.1:25060"]
    assert msg.from_addr.display_name == "sipp"


def test_response_accessors_and_record_route_list() -> None:
    msg = parse_message(OK_WITH_RECORD_ROUTE)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.to_tag == "gw-9f8e7d"
    assert msg.headers.get_all("Record-Route") == [
        "<sip:127.0.0.1:25060;lr=on;ftag=7e6d5c4b>",
        "<sip:10.0.0.2;lr>",
        "<sip:edge.example.com;lr;transport=tcp>",
    ]
    vias = msg.headers.get_all("Via")
    assert len(vias) == 2
    assert msg.top_via is not None and msg.top_via.rport == 25061
    assert msg.headers.get("Via") == vias[0]


def test_www_authenticate_not_split() -> None:
    msg = parse_message(REGISTER_401)
    values = msg.headers.get_all("WWW-Authenticate")
    assert len(values) == 1 and 'qop="auth"' in values[0]


def test_compact_forms_and_case() -> None:
    raw = crlf(
        """bye sip:a@h SIP/2.0
v: SIP/2.0/TCP h2:5070;branch=z9hG4bKc1
i: cid-1
f: <sip:b@h>;tag=1
t: <sip:a@h>;tag=2
cseq: 5 bye
m: <sip:b@h2>
k: timer
l: 0

"""
    )
    msg = parse_message(raw)
    assert msg.method == "bye" and msg.cseq == (5, "bye")
    assert msg.call_id == "cid-1"
    assert msg.headers.get("Contact") == "<sip:b@h2>"
    assert "SUPPORTED" in msg.headers
    assert [name for name, _ in msg.headers][:3] == ["Via", "Call-ID", "From"]
    assert b"\r\nCall-ID: cid-1\r\n" in msg.to_bytes()


def test_folding_lf_only_and_leading_crlf() -> None:
    raw = (
        b"\r\n\r\nOPTIONS sip:a@h SIP/2.0\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        b"Subject: first\n  second\n\tthird\n"
        b"From: <sip:b@h>;tag=1\nTo: <sip:a@h>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
    )
    msg = parse_message(raw)
    assert msg.headers.get("Subject") == "first second third"


def test_headers_api() -> None:
    h = Headers([("via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])
    h.add("X-Custom", "1")
    h.add("x-custom", "2")
    assert h.get("X-CUSTOM") == "1" and h.get_all("x-custom") == ["1", "2"]
    h.set("X-Custom", "3")
    assert h.get_all("X-Custom") == ["3"]
    assert h.remove("x-custom") == 1 and "X-Custom" not in h
    h.prepend("Via", "SIP/2.0/UDP top;branch=z9hG4bK0")
    assert [v.split()[1].split(";")[0] for v in h.get_all("Via")] == ["top", "a", "b"]
    h.replace_first_value("Via", "SIP/2.0/UDP new;branch=z9hG4bK9")
    assert h.get_all("v")[0] == "SIP/2.0/UDP new;branch=z9hG4bK9"
    assert h.get("missing") is None and h.get("missing", "d") == "d"
    assert len(h) == 2


def test_header_values_with_crlf_are_refused() -> None:
    h = Headers()
    with pytest.raises(ValueError, match="CR/LF"):
        h.add("Subject", "hi\r\nVia: SIP/2.0/UDP evil")
    with pytest.raises(ValueError):
        h.set("Subject", "x\n")
    assert len(h) == 0


def test_get_all_respects_quotes_and_brackets() -> None:
    h = Headers([("Contact", '"Doe, John" <sip:j@h;a=b,c>;q=0.5, <sip:x@y>;expires=60')])
    assert h.get_all("Contact") == ['"Doe, John" <sip:j@h;a=b,c>;q=0.5', "<sip:x@y>;expires=60"]


def test_content_length_written_from_body() -> None:
    req = Request(
        "INFO",
        "sip:a@h",
        [("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"), ("Content-Length", "999")],
        b"Signal=5\r\nDuration=160\r\n",
    )
    out = req.to_bytes()
    assert b"Content-Length: 24\r\n\r\nSignal=5" in out
    assert out.count(b"Content-Length") == 1
    assert Response(200).to_bytes() == b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_make_response_per_8_2_6() -> None:
    raw = OK_WITH_RECORD_ROUTE.replace(b"SIP/2.0 200 OK", b"INVITE sip:gateway@127.0.0.1 SIP/2.0")
    raw = (
        raw.replace(b";tag=gw-9f8e7d", b"")
        .replace(b"CSeq: 21913", b"CSeq: 21913")
        .replace(b"Content-Length", b"Timestamp: 54\r\nContent-Length")
    )
    invite = parse_message(raw)
    assert isinstance(invite, Request)
    trying = invite.make_response(100)
    assert trying.reason == "Trying" and trying.to_tag is None
    assert trying.headers.get("Timestamp") == "54"
    assert "Record-Route" not in trying.headers
    ok = invite.make_response(
        200, to_tag="t1", headers=[("Content-Type", "application/sdp")], body=b"v=0\r\n"
    )
    assert ok.to_tag == "t1"
    assert ok.headers.get_all("Via") == invite.headers.get_all("Via")
    assert ok.headers.get_all("Record-Route") == invite.headers.get_all("Record-Route")
    assert ok.headers.get("From") == invite.headers.get("From")
    assert ok.call_id == invite.call_id and ok.cseq == invite.cseq
    assert "Timestamp" not in ok.headers
    again = parse_message(ok.to_bytes())
    assert again == ok
    # A To that already has a tag keeps it (retransmitted in-dialog request).
    tagged = parse_message(
        raw.replace(b"To: <sip:gateway@127.0.0.1:25070>", b"To: <sip:g@h>;tag=old")
    )
    assert tagged.make_response(486, to_tag="new").to_tag == "old"
    # addr-spec To gets a proper header parameter.
    bare = parse_message(raw.replace(b"To: <sip:gateway@127.0.0.1:25070>", b"To: sip:g@h"))
    resp = bare.make_response(404, reason="Nobody Home", to_tag="q")
    assert resp.reason == "Nobody Home" and resp.to_addr.uri.params.get("tag") is None
    assert resp.to_tag == "q"


def test_via_parse_and_str() -> None:
    via = parse_via(
        "SIP / 2.0 / udp  [2001:db8::9] : 5062 ;branch=z9hG4bKabc;rport;received=2001:db8::1;ttl=16"
    )
    assert (via.transport, via.host, via.port) == ("UDP", "[2001:db8::9]", 5062)
    assert via.branch == "z9hG4bKabc" and via.has_rport and via.rport is None
    assert via.received == "2001:db8::1" and via.ttl == 16 and via.maddr is None
    assert (
        str(via)
        == "SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKabc;rport;received=2001:db8::1;ttl=16"
    )
    assert Via.parse(str(via)) == via
    for bad in (
        "SIP/2.0 host",
        "SIP/3.0/UDP h",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h:99999",
        "SIP/2.0/U<P h",
    ):
        with pytest.raises(HeaderError):
            parse_via(bad)


def test_rfc3581_received_and_rport() -> None:
    msg = parse_message(BARESIP_INVITE)
    assert apply_received_rport(msg, "10.1.2.3", 40000)
    via = msg.top_via
    assert via is not None and via.received == "10.1.2.3" and via.rport == 40000
    assert response_destination(via) == ("10.1.2.3", 40000)
    # The stamped Via travels into the response.
    assert msg.make_response(200, to_tag="x").top_via == via


def test_received_without_rport_only_when_address_differs() -> None:
    msg = parse_message(SIPP_INVITE)
    assert not apply_received_rport(msg, "127.0.0.1", 9999)
    assert msg.top_via is not None and msg.top_via.received is None
    assert response_destination(msg.top_via) == ("127.0.0.1", 25060)
    assert apply_received_rport(msg, "192.0.2.99", 9999)
    via = msg.top_via
    # No rport requested: the response goes to the received address and the sent-by port.
    assert via is not None and response_destination(via) == ("192.0.2.99", 25060)


def test_response_destination_defaults_and_maddr() -> None:
    assert response_destination(parse_via("SIP/2.0/UDP h.example.com;branch=z9hG4bK1")) == (
        "h.example.com",
        5060,
    )
    assert response_destination(parse_via("SIP/2.0/TLS h;branch=z9hG4bK1")) == ("h", 5061)
    via = parse_via("SIP/2.0/UDP h:5080;branch=z9hG4bK1;maddr=239.1.1.1;ttl=1;received=1.2.3.4")
    assert response_destination(via) == ("239.1.1.1", 5080)
    assert response_destination(parse_via("SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1")) == (
        "::1",
        5070,
    )


def test_copy_is_independent() -> None:
    msg = parse_message(ASTERISK_INVITE)
    dup = msg.copy()
    assert dup == msg
    dup.headers.set("Max-Forwards", "69")
    dup.uri.params["x"] = "1"
    assert msg.headers.get("Max-Forwards") == "70" and "x" not in msg.uri.params
    resp = parse_message(REGISTER_401)
    assert resp.copy() == resp


def test_keepalive_detection() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and is_keepalive(b"\x00\x00\x00\x00")
    assert not is_keepalive(ASTERISK_OPTIONS)


def test_generated_identifiers() -> None:
    assert generate_branch().startswith("z9hG4bK") and generate_branch() != generate_branch()
    assert len(generate_tag()) >= 8


def test_udp_body_longer_than_content_length_is_truncated() -> None:
    msg = parse_message(SIPP_INVITE + b"trailing junk")
    assert msg.body == SDP.encode()


def test_non_utf8_header_round_trips_bytes() -> None:
    raw = ASTERISK_OPTIONS.replace(
        b"User-Agent: Asterisk PBX 20.5.0", b"User-Agent: Caf\xe9 \xff\xfe"
    )
    msg = parse_message(raw)
    assert msg.headers.get("User-Agent").startswith("Caf")
    assert msg.to_bytes() == raw.replace(b"Content-Length:  0", b"Content-Length: 0")


# ---- stream framing -----------------------------------------------------------------------


def test_framer_splits_and_reassembles() -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + ASTERISK_INVITE + OK_WITH_RECORD_ROUTE + b"\r\n\r\n" + REGISTER_401
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += framer.feed(stream[i : i + 7])
    assert out == [ASTERISK_INVITE, OK_WITH_RECORD_ROUTE, REGISTER_401]
    assert framer.buffered == 0
    assert framer.keepalives_received == 2


def test_framer_requires_content_length() -> None:
    raw = SIPP_INVITE.replace(b"Content-Length", b"X-Length")
    with pytest.raises(FramingError, match="Content-Length is required"):
        StreamFramer().feed(raw)


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1e3", b"99999999999"])
def test_framer_bad_content_length(value: bytes) -> None:
    raw = ASTERISK_OPTIONS.replace(b"Content-Length:  0", b"Content-Length: " + value)
    with pytest.raises(FramingError):
        StreamFramer().feed(raw)


def test_framer_size_caps() -> None:
    with pytest.raises(FramingError, match="exceeds maximum"):
        StreamFramer(max_size=1000).feed(b"OPTIONS sip:a@h SIP/2.0\r\nX: " + b"a" * 2000)
    big = ASTERISK_OPTIONS.replace(b"Content-Length:  0", b"Content-Length: 5000")
    with pytest.raises(FramingError, match="exceeds maximum"):
        StreamFramer(max_size=2000).feed(big)


def test_framer_waits_for_body() -> None:
    framer = StreamFramer()
    assert framer.feed(ASTERISK_INVITE[:-10]) == []
    assert framer.feed(ASTERISK_INVITE[-10:]) == [ASTERISK_INVITE]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from([*REAL_LOOKING, b"\r\n\r\n"]), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
)
def test_framer_random_chunking_property(parts: list[bytes], rng: random.Random) -> None:
    stream = b"".join(parts)
    framer = StreamFramer()
    out: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 300)
        out += framer.feed(stream[pos : pos + step])
        pos += step
    assert out == [p for p in parts if p != b"\r\n\r\n"]
    assert framer.buffered == 0


# ---- fuzzing: only SipParseError may escape -------------------------------------------------


def _parse_or_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert exc.reason
        if exc.request is not None:
            # Answerable: building and serialising the error response must work. (It copies
            # the peer's headers verbatim, so it need not parse back when those are broken.)
            resp = exc.request.make_response(exc.status, exc.reason, to_tag="fz")
            assert resp.to_bytes().startswith(f"SIP/2.0 {exc.status} ".encode())
        return
    # Whatever parsed must serialise to bytes that parse back to the same serialisation
    # (to_bytes() is canonical: it may add the Content-Length a datagram left out).
    wire = msg.to_bytes()
    again = parse_message(wire)
    assert again.to_bytes() == wire
    assert type(again) is type(msg) and again.body == msg.body


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    _parse_or_error(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(REAL_LOOKING),
    st.lists(
        st.tuples(
            st.integers(0, 2000),
            st.sampled_from(["flip", "delete", "insert", "dup"]),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_mutated_messages(base: bytes, edits: list[tuple[int, str, bytes]]) -> None:
    data = bytearray(base)
    for pos, kind, blob in edits:
        pos %= len(data) + 1
        if kind == "flip" and pos < len(data):
            data[pos] ^= blob[0]
        elif kind == "delete":
            del data[pos : pos + len(blob)]
        elif kind == "insert":
            data[pos:pos] = blob
        else:
            data[pos:pos] = data[pos : pos + 40]
        if not data:
            data = bytearray(b"x")
    _parse_or_error(bytes(data))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(REAL_LOOKING),
    st.sampled_from([b"\r\n", b": ", b",", b";", b"<", b">", b'"', b"\\", b" ", b"\x00", b"\xc3"]),
    st.integers(0, 2000),
)
def test_fuzz_structural_insertions(base: bytes, token: bytes, pos: int) -> None:
    pos %= len(base)
    _parse_or_error(base[:pos] + token + base[pos:])


def test_names_imported_from_sip_message_are_the_split_modules_objects() -> None:
    """issue 11: headers and framing live in their own modules; sip.message re-exports the names
    the rest of the code imports from it, the very same objects (no second copy to drift)."""
    import sip.framing
    import sip.headers
    import sip.message

    for name in sip.message.__all__:
        value = getattr(sip.message, name)
        for home in (sip.headers, sip.framing):
            if hasattr(home, name):
                assert getattr(home, name) is value, name
    assert sip.message.Headers is sip.headers.Headers
    assert sip.message.StreamFramer is sip.framing.StreamFramer
