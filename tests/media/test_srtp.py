"""SRTP/SRTCP over libsrtp: libsrtp's reference packets, round trips, replay and forgery."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media.rtp import RtpPacket
from gateway.media.srtp import (
    PROFILES,
    SrtpAuthError,
    SrtpError,
    SrtpPacketError,
    SrtpReplayError,
    SrtpSession,
)
from sip.sdp_crypto import SUITES, SrtpKey

# libsrtp test/srtp_driver.c srtp_validate(): the default policy (AES_CM_128_HMAC_SHA1_80),
# test_key, SSRC 0xcafebabe, and the reference packets it checks srtp_protect against.
TEST_KEY = SrtpKey(bytes.fromhex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6"))
RTP_PLAIN = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
SRTP_80 = bytes.fromhex(
    "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"
)
RTCP_PLAIN = bytes.fromhex("81c8000bcafebabe") + b"\xab" * 16
SRTCP_80 = bytes.fromhex(
    "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798"
)

# libsrtp srtp_validate_gcm(): AES-128-GCM with a 16-byte tag (RFC 7714's AEAD_AES_128_GCM),
# test_key_gcm = 00..0f || a0..ab, the same plaintext packets.
GCM_KEY = SrtpKey(bytes(range(16)) + bytes(range(0xA0, 0xAC)))
SRTP_GCM = bytes.fromhex(
    "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392"
)
SRTCP_GCM = bytes.fromhex(
    "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e80000001"
)


def _session(suite="AES_CM_128_HMAC_SHA1_80", rx=TEST_KEY, tx=TEST_KEY) -> SrtpSession:
    return SrtpSession(rx, tx, suite)


def test_protect_matches_libsrtp_reference_packets():
    s = _session()
    assert s.protect_rtp(RTP_PLAIN) == SRTP_80
    assert s.protect_rtcp(RTCP_PLAIN) == SRTCP_80


def test_gcm_matches_libsrtp_reference_packets():
    s = _session("AEAD_AES_128_GCM", GCM_KEY, GCM_KEY)
    assert s.protect_rtp(RTP_PLAIN) == SRTP_GCM
    assert s.protect_rtcp(RTCP_PLAIN) == SRTCP_GCM
    receiver = _session("AEAD_AES_128_GCM", GCM_KEY, GCM_KEY)
    assert receiver.unprotect_rtp(SRTP_GCM) == RTP_PLAIN
    assert receiver.unprotect_rtcp(SRTCP_GCM) == RTCP_PLAIN


def test_sha1_32_is_the_same_cipher_with_a_4_byte_tag():
    # Same key derivation and keystream as the reference above; the tag is HMAC-SHA1 cut to
    # 32 bits instead of 80 (RFC 3711 4.2), i.e. the first 4 bytes of the _80 tag.
    s = _session("AES_CM_128_HMAC_SHA1_32")
    protected = s.protect_rtp(RTP_PLAIN)
    assert protected == SRTP_80[:32]


def test_unprotect_reference_packets():
    s = _session()
    assert s.unprotect_rtp(SRTP_80) == RTP_PLAIN
    assert s.unprotect_rtcp(SRTCP_80) == RTCP_PLAIN


@pytest.mark.parametrize("suite", sorted(PROFILES))
def test_round_trip_between_two_ends_each_suite(suite):
    ours, theirs = SrtpKey.generate(SUITES[suite]), SrtpKey.generate(SUITES[suite])
    gateway = SrtpSession(theirs, ours, suite)
    phone = SrtpSession(ours, theirs, suite)
    for seq in range(50):
        rtp = RtpPacket(0, seq, 160 * seq, 0x1234, bytes([seq]) * 160).encode()
        wire = gateway.protect_rtp(rtp)
        assert rtp[12:] not in wire  # the G.711 payload is not on the wire in clear
        assert phone.unprotect_rtp(wire) == rtp
        back = phone.protect_rtp(rtp)
        assert gateway.unprotect_rtp(back) == rtp
    rtcp = RTCP_PLAIN
    assert phone.unprotect_rtcp(gateway.protect_rtcp(rtcp)) == rtcp
    assert gateway.stats.protected == 51
    assert gateway.stats.unprotected == 50


def test_replay_is_rejected_and_counted():
    s = _session()
    assert s.unprotect_rtp(SRTP_80) == RTP_PLAIN
    with pytest.raises(SrtpReplayError):
        s.unprotect_rtp(SRTP_80)
    assert s.stats.replayed == 1
    assert s.unprotect_rtcp(SRTCP_80) == RTCP_PLAIN
    with pytest.raises(SrtpReplayError):
        s.unprotect_rtcp(SRTCP_80)
    assert s.stats.replayed == 2


def test_packet_older_than_the_window_is_rejected():
    key = SrtpKey.generate(SUITES["AES_CM_128_HMAC_SHA1_80"])
    sender = SrtpSession(key, key, "AES_CM_128_HMAC_SHA1_80")
    receiver = SrtpSession(key, key, "AES_CM_128_HMAC_SHA1_80", replay_window=64)
    wire = [
        sender.protect_rtp(RtpPacket(0, seq, 160 * seq, 7, b"\xff" * 160).encode())
        for seq in range(200)
    ]
    receiver.unprotect_rtp(wire[199])
    with pytest.raises(SrtpReplayError):
        receiver.unprotect_rtp(wire[10])  # 189 behind, window 64
    receiver.unprotect_rtp(wire[190])  # late but inside the window: accepted


@pytest.mark.parametrize("offset", [0, 1, 12, 20, 27, 30, 37])
def test_tampered_packet_is_rejected(offset):
    s = _session()
    tampered = bytearray(SRTP_80)
    tampered[offset] ^= 0x01
    with pytest.raises(SrtpAuthError):
        s.unprotect_rtp(bytes(tampered))
    assert s.stats.auth_failed == 1
    assert s.unprotect_rtp(SRTP_80) == RTP_PLAIN  # the good packet still gets through


def test_wrong_key_is_an_auth_failure():
    other = SrtpKey(bytes(30))
    with pytest.raises(SrtpAuthError):
        SrtpSession(other, other, "AES_CM_128_HMAC_SHA1_80").unprotect_rtp(SRTP_80)


def test_gcm_tamper_rejected():
    suite = "AEAD_AES_128_GCM"
    key = SrtpKey.generate(SUITES[suite])
    wire = bytearray(SrtpSession(key, key, suite).protect_rtp(RTP_PLAIN))
    wire[-1] ^= 0x80
    with pytest.raises(SrtpAuthError):
        SrtpSession(key, key, suite).unprotect_rtp(bytes(wire))


@pytest.mark.parametrize("packet", [b"", b"\x80", b"\x80\x00\x00\x01", b"\x80" * 1600])
def test_short_or_huge_packets_raise_a_named_error(packet):
    s = _session()
    with pytest.raises(SrtpError):
        s.unprotect_rtp(packet)
    with pytest.raises(SrtpError):
        s.unprotect_rtcp(packet)
    with pytest.raises(SrtpPacketError):
        s.protect_rtp(b"\x80" * 1600)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_escapes_as_anything_but_srtp_error(packet):
    s = _session()
    for method in (s.unprotect_rtp, s.unprotect_rtcp):
        try:
            method(packet)
        except SrtpError:
            pass


def test_constructor_checks_keys_and_repr_hides_them():
    with pytest.raises(ValueError, match="unknown SRTP suite"):
        SrtpSession(TEST_KEY, TEST_KEY, "F8_128_HMAC_SHA1_80")
    with pytest.raises(ValueError, match="44 bytes"):
        SrtpSession(TEST_KEY, TEST_KEY, "AEAD_AES_256_GCM")
    with pytest.raises(ValueError):
        SrtpSession(TEST_KEY, TEST_KEY, "AES_CM_128_HMAC_SHA1_80", replay_window=8)
    text = repr(_session())
    assert TEST_KEY.key_salt.hex() not in text
    assert "AES_CM_128_HMAC_SHA1_80" in text


def test_interop_with_aiortc_style_pylibsrtp_use():
    """aiortc (rtcdtlstransport.py) keys one pylibsrtp.Session per direction with
    ssrc_any_inbound / ssrc_any_outbound; a peer built that way reads what we send."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    key = SrtpKey.generate(SUITES["AES_CM_128_HMAC_SHA1_80"])
    peer_rx = pylibsrtp.Session(
        pylibsrtp.Policy(key=key.key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    )
    ours = SrtpSession(key, key, "AES_CM_128_HMAC_SHA1_80")
    assert peer_rx.unprotect(ours.protect_rtp(RTP_PLAIN)) == RTP_PLAIN


def test_sequence_number_wrap_keeps_working():
    """RFC 3711 3.3.1: the 16-bit sequence number wraps and the rollover counter moves on; both
    ends keep in step without signalling."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    key = SrtpKey.generate(SUITES[suite])
    sender, receiver = SrtpSession(key, key, suite), SrtpSession(key, key, suite)
    for i in range(300):
        seq = (65_400 + i) & 0xFFFF
        rtp = RtpPacket(0, seq, 160 * i, 0x1234, bytes([i & 0xFF]) * 160).encode()
        assert receiver.unprotect_rtp(sender.protect_rtp(rtp)) == rtp
    assert receiver.stats.unprotected == 300
