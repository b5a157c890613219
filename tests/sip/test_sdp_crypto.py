"""RFC 4568 a=crypto lines: parse, write, choose and answer, and the SRTP policy decision."""

from __future__ import annotations

import base64
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.sdp_crypto import (
    SUITES,
    CryptoAttribute,
    SdesError,
    SrtpAction,
    SrtpKey,
    SrtpPolicy,
    choose_crypto,
    decide_srtp,
    format_crypto,
    offer_crypto,
    parse_crypto,
)

# RFC 4568 section 4's example key (40 base64 characters: 30 bytes, AES_CM_128 key + salt).
RFC_KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
KEY30 = base64.b64encode(bytes(range(30))).decode()
KEY28 = base64.b64encode(bytes(range(28))).decode()
KEY44 = base64.b64encode(bytes(range(44))).decode()


def test_rfc4568_example_key_parses():
    attr = parse_crypto(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^31")
    assert attr.tag == 1
    assert attr.suite == "AES_CM_128_HMAC_SHA1_80"
    assert attr.key.key_salt == base64.b64decode(RFC_KEY)
    assert attr.lifetime == 2**31


@pytest.mark.parametrize(
    ("suite", "key"),
    [
        ("AES_CM_128_HMAC_SHA1_80", KEY30),
        ("AES_CM_128_HMAC_SHA1_32", KEY30),
        ("AEAD_AES_128_GCM", KEY28),
        ("AEAD_AES_256_GCM", KEY44),
    ],
)
def test_each_suite_round_trips(suite, key):
    attr = parse_crypto(f"7 {suite} inline:{key}")
    assert attr.suite == suite
    assert len(attr.key) == SUITES[suite].key_salt_len
    assert parse_crypto(format_crypto(attr)) == attr


def test_format_with_lifetime_and_wsh_round_trips():
    attr = parse_crypto(f"crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}|2147483648 WSH=128")
    assert attr.lifetime == 2**31
    assert attr.window_size_hint == 128
    assert parse_crypto(format_crypto(attr)) == attr


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"1 F8_128_HMAC_SHA1_80 inline:{KEY30}", "unknown crypto suite"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!", "not valid base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD=", "not valid base64"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY28}", "needs a 30-byte key"),
        (f"1 AEAD_AES_256_GCM inline:{KEY30}", "needs a 44-byte key"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^20|1:4", "MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|1:4", "MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^20", "below 2^31"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^49", "over the"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|forever", "bad key lifetime"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30};inline:{KEY30}", "several key params"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} UNAUTHENTICATED_SRTP", "not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} KDR=24", "KDR"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30} WSH=32", "below 64"),
        (f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}", "1 to 9 digits"),
        (f"-1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}", "1 to 9 digits"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY30}", "not inline"),
        ("1 AES_CM_128_HMAC_SHA1_80", "needs a tag"),
        ("", "needs a tag"),
    ],
)
def test_refusals_name_the_reason(line, reason):
    with pytest.raises(SdesError) as info:
        parse_crypto(line)
    assert reason in info.value.reason


def test_key_never_in_repr_str_or_log(caplog):
    attr = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}")
    secret_texts = (KEY30, repr(bytes(range(30))), bytes(range(30)).hex())
    logging.getLogger("test").warning("chose %s %r", attr, attr.key)
    for shown in (repr(attr), str(attr), repr(attr.key), str(attr.key), caplog.text):
        assert "redacted" in shown
        for secret in secret_texts:
            assert secret not in shown


def test_choose_prefers_our_order_and_answers_same_tag_with_fresh_key():
    offered = [
        f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}",
        f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}",
    ]
    choice = choose_crypto(offered, ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"))
    assert choice.remote.tag == 2
    assert choice.local.tag == 2
    assert choice.local.suite == "AES_CM_128_HMAC_SHA1_80"
    assert len(choice.local.key) == 30
    assert choice.local.key != choice.remote.key
    again = choose_crypto(offered, ("AES_CM_128_HMAC_SHA1_80",))
    assert again.local.key != choice.local.key  # fresh each time


def test_choose_skips_unusable_lines_mki_first():
    offered = [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^20|1:4",
        f"2 AEAD_AES_256_GCM inline:{KEY44}",
    ]
    choice = choose_crypto(offered)
    assert choice.remote.tag == 2
    assert len(choice.local.key) == 44


def test_choose_with_nothing_usable_lists_the_reasons():
    with pytest.raises(SdesError) as info:
        choose_crypto(
            [
                f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^20|1:4",
                f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}",
            ],
            ("AES_CM_128_HMAC_SHA1_80",),
        )
    assert "MKI" in info.value.reason
    assert "not enabled" in info.value.reason
    with pytest.raises(SdesError, match="no a=crypto"):
        choose_crypto([])


def test_offer_lines_one_per_suite_with_fresh_keys():
    lines = offer_crypto()
    assert [a.tag for a in lines] == [1, 2, 3, 4]
    for attr in lines:
        assert parse_crypto(format_crypto(attr)) == attr


def test_crypto_attribute_checks_its_own_fields():
    with pytest.raises(SdesError):
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", SrtpKey(b"short"))
    with pytest.raises(SdesError):
        CryptoAttribute(10**9, "AES_CM_128_HMAC_SHA1_80", SrtpKey(bytes(30)))


GOOD = [f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}"]
# baresip v1.0.0 (srtp.so, mediaenc=srtp-mand) dialling a UDP socket, captured 2026-12-06:
# its offer's audio line and only crypto line.
BARESIP_M_LINE = "m=audio 45206 RTP/SAVP 0 101"
BARESIP_CRYPTO = (
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:XCrR2W2NqVqQtmuHOELIdKjIrAYYNE/tclf1kmvj"
)


def test_baresip_srtp_offer_is_answered() -> None:
    proto = BARESIP_M_LINE.split()[2]
    decision = decide_srtp(proto, [BARESIP_CRYPTO], SrtpPolicy.REQUIRED, signalling_secure=True)
    assert decision.action is SrtpAction.CRYPTO
    assert decision.choice is not None
    assert decision.choice.remote.suite == "AES_CM_128_HMAC_SHA1_80"
    assert format_crypto(decision.choice.local).startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")


@pytest.mark.parametrize(
    ("transport", "lines", "policy", "secure", "allow_plain", "action", "reason"),
    [
        ("RTP/AVP", [], SrtpPolicy.OFF, False, False, SrtpAction.PLAIN, ""),
        ("RTP/AVP", [], SrtpPolicy.OPTIONAL, True, False, SrtpAction.PLAIN, ""),
        ("RTP/AVP", GOOD, SrtpPolicy.OPTIONAL, True, False, SrtpAction.PLAIN, ""),
        ("RTP/AVP", [], SrtpPolicy.REQUIRED, True, False, SrtpAction.REFUSE, "required"),
        ("RTP/SAVP", GOOD, SrtpPolicy.OFF, True, False, SrtpAction.REFUSE, "SRTP is off"),
        ("RTP/SAVP", GOOD, SrtpPolicy.OPTIONAL, True, False, SrtpAction.CRYPTO, ""),
        ("RTP/SAVP", GOOD, SrtpPolicy.REQUIRED, True, False, SrtpAction.CRYPTO, ""),
        ("RTP/SAVPF", GOOD, SrtpPolicy.REQUIRED, True, False, SrtpAction.CRYPTO, ""),
        ("RTP/SAVP", GOOD, SrtpPolicy.REQUIRED, False, False, SrtpAction.REFUSE, "plain sig"),
        ("RTP/SAVP", GOOD, SrtpPolicy.REQUIRED, False, True, SrtpAction.CRYPTO, ""),
        ("RTP/SAVP", [], SrtpPolicy.REQUIRED, True, False, SrtpAction.REFUSE, "no a=crypto"),
        ("UDP/TLS/RTP/SAVP", GOOD, SrtpPolicy.REQUIRED, True, False, SrtpAction.REFUSE, "DTLS"),
        ("udptl", [], SrtpPolicy.OPTIONAL, True, False, SrtpAction.REFUSE, "not supported"),
    ],
)
def test_decide_srtp(transport, lines, policy, secure, allow_plain, action, reason):
    decision = decide_srtp(
        transport, lines, policy, signalling_secure=secure, allow_sdes_over_plain=allow_plain
    )
    assert decision.action is action
    assert reason in decision.reason
    if action is SrtpAction.REFUSE:
        assert decision.status == 488
    if action is SrtpAction.CRYPTO:
        assert decision.choice is not None
        assert decision.choice.local.tag == 1


_FIELD = st.sampled_from(
    [
        "1",
        "0",
        "999999999",
        "AES_CM_128_HMAC_SHA1_80",
        "AEAD_AES_256_GCM",
        f"inline:{KEY30}",
        f"inline:{KEY30}|2^31",
        f"inline:{KEY30}|2^20|1:4",
        "inline:",
        "inline:|",
        "inline:==",
        "WSH=64",
        "WSH=",
        "KDR=1",
        "a=crypto:",
        "\x00",
        "2^999",
        "|" * 5,
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_FIELD, max_size=6).map(" ".join)))
def test_hostile_lines_raise_only_sdes_error(line):
    try:
        attr = parse_crypto(line)
    except SdesError:
        return
    assert parse_crypto(format_crypto(attr)) == attr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=80), _FIELD), max_size=5))
def test_hostile_offers_decide_without_raising(lines):
    decision = decide_srtp("RTP/SAVP", lines, SrtpPolicy.REQUIRED, signalling_secure=True)
    assert decision.action in (SrtpAction.CRYPTO, SrtpAction.REFUSE)
