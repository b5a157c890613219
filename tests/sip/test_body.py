"""sip/body.py: the SDP of a plain or multipart (SIP-I) body."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sip.body import MAX_PARTS, read_body

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
ISUP = b"\x01\x00\x49\x00\x00\x03"


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = "b1") -> bytes:
    out = b""
    for ctype, disposition, content in parts:
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n".encode()
        if disposition is not None:
            out += f"Content-Disposition: {disposition}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_plain_sdp_and_no_body() -> None:
    assert read_body("application/sdp", SDP).sdp == SDP
    assert read_body("Application/SDP; charset=utf-8", SDP).sdp == SDP
    assert read_body("application/sdp", b"").sdp is None
    assert read_body(None, SDP).sdp is None
    assert read_body("text/plain", SDP).sdp is None


def test_sip_i_sdp_beside_optional_isup() -> None:
    body = multipart(
        ("application/sdp", None, SDP),
        ("application/isup;version=itu-t92+", "signal;handling=optional", ISUP),
    )
    read = read_body('multipart/mixed; boundary="b1"', body)
    assert read.sdp == SDP and read.required_unknown is None and read.multipart


def test_required_part_we_cannot_read_is_reported() -> None:
    for disposition in ("signal;handling=required", "signal"):  # 20.11: default is required
        body = multipart(("application/sdp", None, SDP), ("application/isup", disposition, ISUP))
        assert read_body("multipart/mixed;boundary=b1", body).required_unknown == "application/isup"
    body = multipart(("application/sdp", None, SDP), ("application/isup", None, ISUP))
    assert read_body("multipart/mixed;boundary=b1", body).required_unknown is None


def test_multipart_without_sdp_or_boundary() -> None:
    body = multipart(("application/isup", "signal;handling=optional", ISUP))
    assert read_body("multipart/mixed;boundary=b1", body).sdp is None
    assert read_body("multipart/mixed", multipart(("application/sdp", None, SDP))).sdp is None
    assert (
        read_body("multipart/mixed;boundary=zz", multipart(("application/sdp", None, SDP))).sdp
        is None
    )


def test_only_the_first_parts_are_read() -> None:
    filler = [("text/plain", None, b"x")] * MAX_PARTS
    body = multipart(*filler, ("application/sdp", None, SDP))
    assert read_body("multipart/mixed;boundary=b1", body).sdp is None


@given(st.binary(max_size=2000), st.text(min_size=1, max_size=20))
def test_hostile_bodies_never_raise(body: bytes, boundary: str) -> None:
    read_body(f'multipart/mixed; boundary="{boundary}"', body)


def test_quoted_boundary_may_hold_a_semicolon() -> None:
    body = multipart(("application/sdp", None, SDP), boundary="b;1")
    assert read_body('multipart/mixed; boundary="b;1"', body).sdp == SDP
