"""RTP/SAVP in the offer/answer (issue 13): sip/sdp_offer_answer.py under a call's SDES terms
(sip/sdp_crypto.py SdesTerms): the answer's a=crypto, the policy's refusals (SrtpRefused, 488),
our own SRTP offer and the callee's answer to it, keys kept across a re-offer."""

from __future__ import annotations

import base64

import pytest

from sip.sdp import (
    MediaInfo,
    NoCommonCodec,
    SrtpRefused,
    answer_offer,
    build_offer,
    crypto_lines,
    parse_sdp,
    process_answer,
)
from sip.sdp_crypto import (
    SdesTerms,
    SrtpPolicy,
    format_crypto,
    offer_crypto,
    parse_crypto,
)

LOCAL = "192.0.2.10"
B64_28 = base64.b64encode(bytes(range(28))).decode()  # an AEAD_AES_128_GCM key and salt
TLS_REQUIRED = SdesTerms(SrtpPolicy.REQUIRED, signalling_secure=True)


def offer(proto: str = "RTP/SAVP", *cryptos: str) -> bytes:
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 198.51.100.7",
        "s=-",
        "c=IN IP4 198.51.100.7",
        "t=0 0",
        f"m=audio 4000 {proto} 0 8 101",
        "a=rtpmap:101 telephone-event/8000",
        *(f"a=crypto:{c}" for c in cryptos),
        "a=sendrecv",
        "",
    ]
    return "\r\n".join(lines).encode()


def peer_line(tag: int = 1, suite: str = "AES_CM_128_HMAC_SHA1_80") -> str:
    return format_crypto(offer_crypto((suite,))[0]).replace("1 ", f"{tag} ", 1)


def test_savp_offer_over_tls_is_answered_with_our_own_key() -> None:
    theirs = peer_line(tag=7)
    result = answer_offer(parse_sdp(offer("RTP/SAVP", theirs)), LOCAL, 5000, srtp=TLS_REQUIRED)
    media = result.answer.media[0]
    assert media.proto == "RTP/SAVP"
    (ours,) = crypto_lines(media)
    answer_line, offer_line = parse_crypto(ours), parse_crypto(theirs)
    assert (answer_line.tag, answer_line.suite) == (7, offer_line.suite)
    assert answer_line.key != offer_line.key  # RFC 4568 7.1.2: a key per direction
    crypto = result.media.crypto
    assert crypto is not None
    assert crypto.remote == offer_line and crypto.local == answer_line
    # The keys never show in a repr (logs, records).
    assert offer_line.key.inline() not in repr(result.media)
    assert answer_line.key.inline() not in repr(result.media)


def test_the_preferred_suite_among_several_lines() -> None:
    lines = (peer_line(1, "AES_CM_128_HMAC_SHA1_32"), peer_line(2, "AEAD_AES_256_GCM"))
    result = answer_offer(parse_sdp(offer("RTP/SAVP", *lines)), LOCAL, 5000, srtp=TLS_REQUIRED)
    assert result.media.crypto is not None
    assert result.media.crypto.local.suite == "AEAD_AES_256_GCM"  # DEFAULT_SUITES order


@pytest.mark.parametrize(
    ("proto", "cryptos", "terms", "reason"),
    [
        ("RTP/AVP", (), TLS_REQUIRED, "SRTP required: the offer is RTP/AVP"),
        ("RTP/SAVP", ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!",), TLS_REQUIRED, "not valid base64"),
        ("RTP/SAVP", (), TLS_REQUIRED, "no a=crypto line"),
        (
            "RTP/SAVP",
            (peer_line(),),
            SdesTerms(SrtpPolicy.REQUIRED, signalling_secure=False),
            "SDES keys over plain signalling are not allowed",
        ),
        ("RTP/SAVP", (peer_line(),), SdesTerms(SrtpPolicy.OFF, True), "SRTP is off"),
        ("UDP/TLS/RTP/SAVP", (), TLS_REQUIRED, "DTLS-SRTP is not supported"),
    ],
)
def test_refusals_name_the_reason(
    proto: str, cryptos: tuple[str, ...], terms: SdesTerms, reason: str
) -> None:
    with pytest.raises(SrtpRefused, match=reason):
        answer_offer(parse_sdp(offer(proto, *cryptos)), LOCAL, 5000, srtp=terms)


def test_sdes_over_plain_signalling_when_allowed_explicitly() -> None:
    terms = SdesTerms(SrtpPolicy.REQUIRED, signalling_secure=False, allow_sdes_over_plain=True)
    result = answer_offer(parse_sdp(offer("RTP/SAVP", peer_line())), LOCAL, 5000, srtp=terms)
    assert result.media.crypto is not None


def test_optional_answers_plain_offers_in_plain_and_savp_with_srtp() -> None:
    terms = SdesTerms(SrtpPolicy.OPTIONAL, signalling_secure=True)
    plain = answer_offer(parse_sdp(offer("RTP/AVP")), LOCAL, 5000, srtp=terms)
    assert plain.media.crypto is None
    assert plain.answer.media[0].proto == "RTP/AVP"
    assert not crypto_lines(plain.answer.media[0])
    secure = answer_offer(parse_sdp(offer("RTP/SAVP", peer_line())), LOCAL, 5000, srtp=terms)
    assert secure.media.crypto is not None


def test_without_terms_savp_is_declined_as_before() -> None:
    with pytest.raises(NoCommonCodec, match="transport RTP/SAVP not supported"):
        answer_offer(parse_sdp(offer("RTP/SAVP", peer_line())), LOCAL, 5000)


def test_a_reoffer_repeating_the_line_keeps_our_key() -> None:
    theirs = peer_line()
    first = answer_offer(parse_sdp(offer("RTP/SAVP", theirs)), LOCAL, 5000, srtp=TLS_REQUIRED)
    assert first.media.crypto is not None
    again = SdesTerms(SrtpPolicy.REQUIRED, True, current=first.media.crypto)
    second = answer_offer(parse_sdp(offer("RTP/SAVP", theirs)), LOCAL, 5000, srtp=again)
    assert second.media.crypto == first.media.crypto
    assert crypto_lines(second.answer.media[0]) == crypto_lines(first.answer.media[0])
    # A new key from the peer: a new answer key too.
    rekeyed = answer_offer(
        parse_sdp(offer("RTP/SAVP", peer_line())), LOCAL, 5000, srtp=again
    ).media.crypto
    assert rekeyed is not None and rekeyed.local.key != first.media.crypto.local.key


def answer_to(offer_sdp: bytes, proto: str, *cryptos: str) -> bytes:
    text = offer_sdp.decode()
    text = text.replace("RTP/SAVP", proto).replace("c=IN IP4 " + LOCAL, "c=IN IP4 198.51.100.7")
    kept = [line for line in text.split("\r\n") if not line.startswith("a=crypto:")]
    at = kept.index("a=sendrecv")
    kept[at:at] = [f"a=crypto:{c}" for c in cryptos]
    return "\r\n".join(kept).encode()


def test_our_srtp_offer_and_the_callee_answer() -> None:
    lines = offer_crypto()
    ours = build_offer(LOCAL, 5000, crypto=lines)
    media = ours.media[0]
    assert media.proto == "RTP/SAVP"
    assert [parse_crypto(c) for c in crypto_lines(media)] == lines
    callee = peer_line(tag=2, suite=lines[1].suite)
    info: MediaInfo = process_answer(
        ours, parse_sdp(answer_to(ours.to_bytes(), "RTP/SAVP", callee)), lines
    )
    assert info.crypto is not None
    assert info.crypto.local == lines[1] and info.crypto.remote == parse_crypto(callee)


@pytest.mark.parametrize(
    ("proto", "cryptos", "reason"),
    [
        ("RTP/AVP", (), "we offered RTP/SAVP"),
        ("RTP/SAVP", (), "has 0 a=crypto lines"),
        ("RTP/SAVP", ("9 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40,), "tag 9 was not offered"),
        ("RTP/SAVP", ("1 AEAD_AES_128_GCM inline:" + B64_28,), "changed suite"),
    ],
)
def test_unusable_answers_to_our_srtp_offer(
    proto: str, cryptos: tuple[str, ...], reason: str
) -> None:
    lines = offer_crypto()
    ours = build_offer(LOCAL, 5000, crypto=lines)
    with pytest.raises(NoCommonCodec, match=reason):
        process_answer(ours, parse_sdp(answer_to(ours.to_bytes(), proto, *cryptos)), lines)
