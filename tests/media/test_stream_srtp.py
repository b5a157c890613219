"""SRTP in the call's RTP stream (issue 13): what arrives is unprotected before the latch, the
statistics and the jitter buffer see it; replays, forgeries, plain RTP and garbage are dropped
and counted, never raised; what we send (RTP and RTCP) is protected."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.media import rtcp
from gateway.media.rtp import RtpPacket, decode_rtp
from gateway.media.srtp import SrtpSession
from gateway.media.stream import RtpStream, StreamConfig
from sip.sdp_crypto import SUITES, SrtpKey
from tests.media.jitter_impls import IMPLEMENTATIONS, use_stream_implementation

PEER = ("127.0.0.1", 40000)
SUITE = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture(autouse=True, params=IMPLEMENTATIONS)
def stream_implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the pure and with the compiled inbound path and jitter buffer."""
    use_stream_implementation(monkeypatch, request.param)
    return str(request.param)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


def keyed_pair() -> tuple[RtpStream, SrtpSession, list[Any]]:
    """Our stream keyed for SRTP, and the peer's session (the other direction's keys)."""
    ours, theirs = SrtpKey.generate(SUITES[SUITE]), SrtpKey.generate(SUITES[SUITE])
    frames: list[Any] = []
    stream = RtpStream(StreamConfig(), on_audio=frames.extend)
    stream.set_remote(PEER)
    stream.srtp = SrtpSession(theirs, ours, SUITE)
    return stream, SrtpSession(ours, theirs, SUITE), frames


def audio(seq: int, payload: bytes = b"\x11" * 160) -> bytes:
    return RtpPacket(0, seq, seq * 160, 0x5151, payload).encode()


def test_protected_audio_is_received_and_counted() -> None:
    stream, peer, frames = keyed_pair()
    for i in range(5):
        stream.receive_rtp(peer.protect_rtp(audio(100 + i)), PEER, 0.02 * i)
    assert stream.stats.packets_received == 5
    assert stream.stats.bytes_received == 5 * 160
    assert frames and frames[0].payload == b"\x11" * 160
    assert (stream.stats.srtp_auth_failed, stream.stats.srtp_replayed) == (0, 0)


def test_replayed_tampered_plain_and_garbage_packets_are_dropped_and_counted() -> None:
    stream, peer, _ = keyed_pair()
    first = peer.protect_rtp(audio(1))
    stream.receive_rtp(first, PEER, 0.0)
    stream.receive_rtp(first, PEER, 0.02)  # replay
    tampered = bytearray(peer.protect_rtp(audio(2)))
    tampered[20] ^= 0x01
    stream.receive_rtp(bytes(tampered), PEER, 0.04)
    stream.receive_rtp(audio(3), PEER, 0.06)  # plain RTP to an SRTP call
    stream.receive_rtp(b"\x80", PEER, 0.08)  # garbage
    stats = stream.stats
    assert stats.packets_received == 1
    assert stats.srtp_replayed == 1
    assert stats.srtp_auth_failed == 2  # tampered, plain
    assert stats.srtp_malformed == 1
    # Nothing that failed reached the latch or the statistics (one source, one packet).
    assert stats.dropped_foreign_source == stats.dropped_probation == 0
    assert stats.dropped_malformed == 0


def test_a_forged_packet_from_another_address_cannot_move_the_latch() -> None:
    stream, peer, _ = keyed_pair()
    stranger = ("127.0.0.1", 41000)
    for i in range(10):
        stream.receive_rtp(audio(500 + i), stranger, 0.02 * i)  # plain, unauthenticated
    assert stream.latch.latched is None
    assert stream.stats.srtp_auth_failed == 10
    stream.receive_rtp(peer.protect_rtp(audio(1)), PEER, 1.0)
    assert stream.latch.latched == PEER


def test_what_we_send_is_protected_rtp_and_rtcp() -> None:
    stream, peer, _ = keyed_pair()
    rtp_out, rtcp_out = FakeTransport(), FakeTransport()
    stream._rtp_transport = rtp_out  # type: ignore[assignment]
    stream._rtcp_transport = rtcp_out  # type: ignore[assignment]
    payload = bytes(range(160))
    stream.send_frame(payload, marker=True)
    wire, addr = rtp_out.sent[0]
    assert addr == PEER
    assert payload not in wire  # encrypted
    assert len(wire) == 12 + 160 + 10  # the 80-bit tag
    clear = decode_rtp(peer.unprotect_rtp(wire))
    assert clear.payload == payload and clear.ssrc == stream.ssrc
    stream._send_rtcp(1.0)
    report = peer.unprotect_rtcp(rtcp_out.sent[0][0])
    assert rtcp.decode_compound(report)  # a valid compound RTCP packet once decrypted
    assert stream.stats.rtcp_sent == 1


def test_srtcp_in_is_unprotected_and_forged_srtcp_dropped() -> None:
    stream, peer, _ = keyed_pair()
    stream.receive_rtp(peer.protect_rtp(audio(1)), PEER, 0.0)
    report = rtcp.encode_compound([rtcp.ReceiverReport(0x5151, [])])
    stream.receive_rtcp(peer.protect_rtcp(report), PEER, 0.1)
    assert stream.stats.rtcp_received == 1
    stream.receive_rtcp(report, PEER, 0.2)  # plain RTCP: no SRTCP trailer
    assert stream.stats.rtcp_received == 1
    assert stream.stats.srtp_malformed + stream.stats.srtp_auth_failed == 1
