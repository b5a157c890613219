"""RtpStream: sockets on loopback (asyncio and uvloop), latching, routing, RTCP, inactivity."""

from __future__ import annotations

import asyncio
import itertools
import random
import struct
import warnings
from typing import Any

import pytest
import uvloop

from gateway.media import rtcp
from gateway.media.dtmf import DtmfDigit
from gateway.media.jitter import Frame
from gateway.media.pacer import CallOutput, MediaClock, PlayoutQueue
from gateway.media.ports import PortAllocator
from gateway.media.rtp import RtpPacket, decode_rtp, encode_rtp_header
from gateway.media.stream import NoFreePortError, RtpStream, StreamConfig
from tests.media.jitter_impls import IMPLEMENTATIONS, use_stream_implementation

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from aiortc import rtp as aio

HOST = "127.0.0.1"


@pytest.fixture(autouse=True, params=IMPLEMENTATIONS)
def stream_implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the pure and with the compiled inbound path and jitter buffer."""
    use_stream_implementation(monkeypatch, request.param)
    return str(request.param)


WAIT = 2.0


class Peer(asyncio.DatagramProtocol):
    """A loopback UDP socket standing in for the far end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def addr(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def recv(self) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), WAIT)
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def make_peer(port: int = 0) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, port))
    return peer


def audio(
    seq: int, ts: int, ssrc: int = 0x5151, payload: bytes = b"\x11" * 160, pt: int = 0
) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload).encode()


async def wait_for(predicate: Any, limit: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def make_stream(
    remote: tuple[str, int] | None = None, **kwargs: Any
) -> tuple[RtpStream, list[Frame], list[DtmfDigit], list[str]]:
    """A stream; `remote`: the address the SDP gave (its packets are accepted at once)."""
    frames: list[Frame] = []
    digits: list[DtmfDigit] = []
    events: list[str] = []
    config = StreamConfig(**kwargs)
    stream = RtpStream(
        config,
        on_audio=frames.extend,
        on_dtmf=digits.append,
        on_timeout=lambda: events.append("timeout"),
    )
    if remote is not None:
        stream.set_remote(remote)
    return stream, frames, digits, events


# -- sockets ---------------------------------------------------------------------------------


async def _socket_round_trip(port_block: int) -> None:
    alloc = PortAllocator(port_block, port_block + 9, quarantine_s=60)
    stream, frames, _, _ = make_stream(latching=True)
    port = await stream.open(alloc, HOST)
    assert port % 2 == 0 and port_block <= port < port_block + 9
    sdp_peer = await make_peer()  # the address the SDP claims
    real_peer = await make_peer()  # where the peer really sends from (NAT)
    intruder = await make_peer()
    try:
        stream.set_remote(sdp_peer.addr)
        stream.send_frame(b"\xff" * 160, marker=True)
        first = decode_rtp(await sdp_peer.recv())  # before latching: to the SDP address
        assert first.marker and first.payload_type == 0 and first.ssrc == stream.ssrc
        # Not the SDP's address (NAT): learned after 3 in-sequence packets (latch.py); the
        # first two are probation, dropped.
        for seq in (1, 2, 3):
            real_peer.send(audio(seq, 160 * (seq - 1)), (HOST, port))
        await wait_for(lambda: stream.stats.packets_received == 1)
        assert stream.stats.dropped_probation == 2
        assert stream.send_address == real_peer.addr
        stream.send_frame(b"\x22" * 160)
        second = decode_rtp(await real_peer.recv())  # latched: to the real source
        assert second.sequence_number == (first.sequence_number + 1) & 0xFFFF
        assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF
        intruder.send(audio(4, 480), (HOST, port))
        await wait_for(lambda: stream.stats.dropped_foreign_source == 1)
        assert stream.stats.packets_received == 1
        # Inbound audio comes out of the jitter buffer on the tick.
        stream.tick(asyncio.get_running_loop().time() + 0.1)
        assert [f.payload for f in frames] == [b"\x11" * 160]
        # RTCP goes to the RTP address + 1 of the SDP; BYE on close.
        rtcp_peer = await make_peer()
        try:
            stream.set_remote(sdp_peer.addr, rtcp_peer.addr)
            stream.close("done")
            report = aio.RtcpPacket.parse(await rtcp_peer.recv())
            kinds = [type(p).__name__ for p in report]
            assert kinds == ["RtcpSrPacket", "RtcpSdesPacket", "RtcpByePacket"]
            assert report[0].sender_info.packet_count == 2
            assert report[2].sources == [stream.ssrc]
        finally:
            rtcp_peer.close()
        assert alloc.in_use == 0
        # Quarantined: a new stream gets another pair.
        again = RtpStream()
        assert await again.open(alloc, HOST) != port
        again.close()
    finally:
        stream.close()
        for peer in (sdp_peer, real_peer, intruder):
            peer.close()


async def test_sockets_latching_and_bye_asyncio(port_block: int) -> None:
    await _socket_round_trip(port_block)


def test_sockets_latching_and_bye_uvloop(port_block: int) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(_socket_round_trip(port_block), 10))


async def test_latching_off_keeps_sending_to_the_sdp_address(port_block: int) -> None:
    alloc = PortAllocator(port_block, port_block + 9)
    stream, _, _, _ = make_stream(latching=False)
    port = await stream.open(alloc, HOST)
    sdp_peer = await make_peer()
    other = await make_peer()
    try:
        stream.set_remote(sdp_peer.addr)
        # Received from the learned source (3 in-sequence packets, latch.py), but not sent to.
        for seq in (1, 2, 3):
            other.send(audio(seq, 160 * (seq - 1)), (HOST, port))
        await wait_for(lambda: stream.stats.packets_received == 1)
        stream.send_frame(b"\x00" * 160)
        assert decode_rtp(await sdp_peer.recv()).payload == b"\x00" * 160
        assert other.queue.empty()
    finally:
        stream.close()
        sdp_peer.close()
        other.close()


class _FirstPairFirst(random.Random):
    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 0


async def test_busy_ports_are_skipped_and_exhaustion_is_an_error(port_block: int) -> None:
    blocker = await make_peer(port_block)  # someone else holds the first even port
    try:
        # Random draws (ports.py) made deterministic: always try the first pair first.
        alloc = PortAllocator(port_block, port_block + 3, rng=_FirstPairFirst())
        stream = RtpStream()
        assert await stream.open(alloc, HOST) == port_block + 2
        assert alloc.stats.bind_failures == 1
        with pytest.raises(NoFreePortError, match="no free RTP port pair"):
            await RtpStream().open(alloc, HOST)
        stream.close()
    finally:
        blocker.close()


async def test_pacer_and_shared_clock_drive_the_stream(port_block: int) -> None:
    # Integration with H5's pacer: CallOutput sends through the stream each 20 ms tick and the
    # same clock drains the jitter buffer.
    alloc = PortAllocator(port_block, port_block + 9)
    stream, frames, _, _ = make_stream(telephone_event_pt=101)
    port = await stream.open(alloc, HOST)
    peer = await make_peer()
    clock = MediaClock()
    queue = PlayoutQueue()
    output = CallOutput(
        queue, stream.send_frame, send_event=stream.send_event, advance=stream.advance
    )
    try:
        stream.set_remote(peer.addr)
        stream.start(clock)
        output.start(clock)
        queue.enqueue("item1", b"\x42" * 320)
        queue.end_of_response()
        got = [decode_rtp(await peer.recv()) for _ in range(3)]
        assert [p.payload[:1] for p in got[:2]] == [b"\x42", b"\x42"]
        assert got[0].marker and not got[1].marker
        assert [p.sequence_number - got[0].sequence_number for p in got] == [0, 1, 2]
        assert [(p.timestamp - got[0].timestamp) & 0xFFFFFFFF for p in got] == [0, 160, 320]
        for i in range(3):
            peer.send(audio(10 + i, 1000 + 160 * i, payload=bytes((i + 1,)) * 160), (HOST, port))
        await wait_for(lambda: len(frames) == 3)
        assert [f.payload[0] for f in frames] == [1, 2, 3]
    finally:
        output.stop()
        stream.close()
        clock.close()
        peer.close()


# -- routing and state, with a fake clock (no sockets) ----------------------------------------

PEER = ("192.0.2.10", 40000)


def event(digit: int, end: bool, duration: int) -> bytes:
    return struct.pack("!BBH", digit, (0x80 if end else 0) | 10, duration)


def test_dtmf_is_routed_to_the_receiver_and_never_reaches_audio_or_the_wire() -> None:
    stream, frames, digits, _ = make_stream(PEER, telephone_event_pt=101)
    stream.receive_rtp(audio(1, 0), PEER, 0.0)
    for i, (end, duration) in enumerate([(False, 160), (False, 320), (True, 480), (True, 480)]):
        stream.receive_rtp(
            audio(2 + i, 160, payload=event(5, end, duration), pt=101), PEER, 0.02 * i
        )
    assert [d.digit for d in digits] == ["5"]
    assert stream.stats.dtmf_packets == 4
    assert stream.jitter.stats.pushed == 1  # only the audio packet
    assert stream.stats.packets_sent == 0  # nothing echoed
    stream.tick(1.0)
    assert all(f.payload != event(5, True, 480) for f in frames)


def test_unknown_payload_type_comfort_noise_and_garbage() -> None:
    stream, _, _, _ = make_stream(PEER)
    stream.receive_rtp(audio(1, 0, pt=18), PEER, 0.0)  # G.729 we did not negotiate
    stream.receive_rtp(audio(2, 0, payload=b"\x40", pt=13), PEER, 0.0)  # comfort noise
    stream.receive_rtp(b"\x00\x01garbage", PEER, 0.0)
    s = stream.stats
    assert (s.dropped_unknown_pt, s.dropped_malformed, s.packets_received) == (1, 1, 0)
    stream.receive_rtcp(b"\x80\xc9\x00\x09", PEER, 0.0)
    assert s.rtcp_malformed == 1


def test_ssrc_change_statistics_and_no_stall() -> None:
    stream, frames, _, _ = make_stream(PEER, jitter_min_ms=40)
    for i in (0, 1, 3, 4):  # seq 2 lost on the first source
        stream.receive_rtp(
            audio(100 + i, 160 * i, ssrc=1, payload=bytes((i + 1,)) * 160), PEER, 0.02 * i
        )
    stream.tick(0.08)
    for i in range(3):  # failover to a new source
        stream.receive_rtp(
            audio(9000 + i, 5555 + 160 * i, ssrc=2, payload=b"\x77" * 160), PEER, 0.1 + 0.02 * i
        )
        stream.tick(0.1 + 0.02 * i)
    stream.receive_rtp(audio(105, 160 * 5, ssrc=1), PEER, 0.16)  # straggler of the old source
    stream.tick(0.3)
    stats = stream.snapshot()
    assert stats.ssrc_changes == 1
    assert stats.late == 1
    assert stats.lost == 1 and stats.concealed == 1
    assert stats.packets_received == 8
    assert [f.payload[0] for f in frames] == [1, 2, 0xFF, 4, 5, 0x77, 0x77, 0x77]
    assert stats.largest_gap_ms == pytest.approx(40.0)
    assert stats.jitter_ms == pytest.approx(0.0)


def test_inactivity_fires_once_and_is_suspended_on_hold() -> None:
    stream, _, _, events = make_stream(PEER, inactivity_timeout_s=30.0, rtcp_interval_s=1e9)
    stream.receive_rtp(audio(1, 0), PEER, 1.0)
    stream.tick(30.9)
    assert events == []
    stream.tick(31.0)
    stream.tick(40.0)
    assert events == ["timeout"]
    # Packets again: re-armed. Then the peer holds: no timeout however long.
    stream.receive_rtp(audio(2, 160), PEER, 41.0)
    stream.set_direction("recvonly", on_hold=True)
    stream.tick(500.0)
    assert events == ["timeout"]
    # Resumed: counting restarts from the resume, not from the last packet.
    stream.set_direction("sendrecv", now=500.0)
    stream.tick(529.0)
    assert events == ["timeout"]
    stream.tick(531.0)
    assert events == ["timeout", "timeout"]


def test_report_contents_and_peer_reports() -> None:
    wall = [1_700_000_000.0]
    stream = RtpStream(StreamConfig(cname="gw@test"), wallclock=lambda: wall[0])
    stream.set_remote(PEER)
    for i in (0, 1, 2, 4):  # one lost
        stream.receive_rtp(audio(50 + i, 160 * i, ssrc=0xABCD), PEER, 0.02 * i)
    # Nothing sent yet: RR + SDES.
    rr, sdes = aio.RtcpPacket.parse(stream.build_report(now=0.1))
    assert isinstance(rr, aio.RtcpRrPacket) and rr.ssrc == stream.ssrc
    block = rr.reports[0]
    assert (block.ssrc, block.packets_lost, block.highest_sequence) == (0xABCD, 1, 54)
    assert block.fraction_lost == (1 << 8) // 5
    assert sdes.chunks[0].items == [(1, b"gw@test")]
    # The peer's SR: its LSR goes into our next block, and its report about us is read.
    sr_ntp = rtcp.ntp_timestamp(wall[0])
    ours = rtcp.ReportBlock(stream.ssrc, 64, 7, 1000, 80, rtcp.ntp_middle32(sr_ntp) - 65536, 32768)
    peer_sr = rtcp.SenderReport(0xABCD, sr_ntp, 0, 10, 1600, [ours])
    # A (now) = the SR time, LSR = 1 s before it, DLSR = 0.5 s: RTT = A - LSR - DLSR = 500 ms.
    stream.receive_rtcp(rtcp.encode_compound([peer_sr]), PEER, 2.0)
    stats = stream.stats
    assert stats.remote_fraction_lost == 0.25 and stats.remote_cumulative_lost == 7
    assert stats.remote_jitter_ms == 10.0
    assert stats.round_trip_ms == pytest.approx(500.0, abs=0.1)
    stream._rtp_transport = FakeTransport()
    stream.send_frame(b"\xff" * 160)
    sr, _ = aio.RtcpPacket.parse(stream.build_report(now=3.5))
    assert isinstance(sr, aio.RtcpSrPacket)
    assert sr.reports[0].lsr == rtcp.ntp_middle32(sr_ntp)
    assert sr.reports[0].dlsr == int(1.5 * 65536)
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (1, 160)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


def test_outbound_timestamps_events_and_hold() -> None:
    stream, _, _, _ = make_stream(PEER, telephone_event_pt=101, payload_type=8, codec="PCMA")
    transport = FakeTransport()
    stream._rtp_transport = transport
    stream.set_remote(PEER)
    stream.send_frame(b"\xd5" * 160, marker=True)
    stream.advance(320)  # two ticks with nothing to send
    stream.send_event(event(1, False, 160), True, 0)
    stream.send_event(event(1, False, 320), False, 160)
    stream.send_comfort_noise(b"\x40")
    packets = [decode_rtp(data) for data, _ in transport.sent]
    base_seq, base_ts = packets[0].sequence_number, packets[0].timestamp
    assert [p.payload_type for p in packets] == [8, 101, 101, 13]
    assert [(p.sequence_number - base_seq) & 0xFFFF for p in packets] == [0, 1, 2, 3]
    # Both event packets carry the event start (ts 480); CN follows two ticks later.
    assert [(p.timestamp - base_ts) & 0xFFFFFFFF for p in packets] == [0, 480, 480, 800]
    assert all(addr == PEER for _, addr in transport.sent)
    # On hold (we may not send) and a 0.0.0.0 remote: nothing goes out, time still advances.
    stream.set_direction("recvonly", on_hold=True)
    stream.send_frame(b"\xd5" * 160)
    stream.set_direction("sendrecv")
    stream.set_remote(("0.0.0.0", 4000))
    stream.send_frame(b"\xd5" * 160)
    assert len(transport.sent) == 4
    stream.set_remote(PEER)
    stream.send_frame(b"\xd5" * 160)
    last = decode_rtp(transport.sent[-1][0])
    assert (last.timestamp - base_ts) & 0xFFFFFFFF == 1280
    assert (last.sequence_number - base_seq) & 0xFFFF == 4


def test_sequence_wrap_on_send() -> None:
    stream, _, _, _ = make_stream(PEER)
    transport = FakeTransport()
    stream._rtp_transport = transport
    stream.set_remote(PEER)
    stream._outbound.seq = 65535
    stream._outbound.ts = 0xFFFFFFFF - 100
    stream.send_frame(b"\xff" * 160)
    stream.send_frame(b"\xff" * 160)
    a, b = (decode_rtp(d) for d, _ in transport.sent)
    assert (a.sequence_number, b.sequence_number) == (65535, 0)
    assert b.timestamp == 59


def test_callback_errors_do_not_break_the_tick(caplog: pytest.LogCaptureFixture) -> None:
    def broken(frames: list[Frame]) -> None:
        raise RuntimeError("consumer bug")

    stream = RtpStream(StreamConfig(rtcp_interval_s=1e9), on_audio=broken)
    stream.set_remote(PEER)
    for i in range(3):
        stream.receive_rtp(audio(i, 160 * i), PEER, 0.02 * i)
        stream.tick(0.2 + 0.02 * i)
    assert stream.jitter.stats.released_frames == 3
    assert (
        sum("consumer bug" in r.getMessage() or r.exc_info is not None for r in caplog.records) == 1
    )


def test_silence_never_lets_another_source_take_over() -> None:
    # Until issue 9 a source silent for 2 s was replaced by whoever sent next: an open door
    # for injecting audio into a call on hold. Now only a re-INVITE/UPDATE moves the latch.
    stream, _, _, _ = make_stream(PEER)
    other = ("192.0.2.10", 50000)  # even on the caller's own host
    stream.receive_rtp(audio(1, 0), PEER, 0.0)
    stream.receive_rtp(audio(2, 160), PEER, 1.0)
    for i in range(10):  # in sequence, one SSRC, after minutes of silence
        stream.receive_rtp(audio(50 + i, 160 * i, ssrc=9), other, 300.0 + 0.02 * i)
    assert stream.send_address == PEER
    assert stream.stats.dropped_foreign_source == 10
    assert stream.stats.packets_received == 2
    assert stream.snapshot().relatched == 0


def test_latched_source_keeps_the_call() -> None:
    stream, _, _, _ = make_stream(PEER)
    stream.receive_rtp(audio(1, 0), PEER, 0.0)
    stream.receive_rtp(audio(1, 0, ssrc=9), ("192.0.2.99", 50000), 100.0)
    assert stream.send_address == PEER
    assert stream.stats.dropped_foreign_source == 1


def test_a_reinvite_moving_the_media_reopens_the_latch() -> None:
    stream, _, _, _ = make_stream(PEER)
    moved = ("192.0.2.20", 41000)
    stream.receive_rtp(audio(1, 0), PEER, 0.0)
    stream.set_remote(PEER)  # a re-INVITE with the same address (hold/resume): kept
    stream.receive_rtp(audio(2, 160), PEER, 0.02)
    assert stream.stats.packets_received == 2
    stream.set_remote(moved)
    stream.receive_rtp(audio(3, 320), PEER, 0.04)  # the old path: excluded now
    assert stream.stats.dropped_foreign_source == 1
    stream.receive_rtp(audio(500, 0, ssrc=7), moved, 0.05)  # the new SDP address: at once
    assert stream.send_address == moved
    assert stream.snapshot().relatched == 1


def test_rtcp_only_from_the_latched_source() -> None:
    stream, _, _, _ = make_stream(PEER, rtcp_interval_s=1e9)
    report = rtcp.encode_compound([rtcp.ReceiverReport(0x1234, [])])
    stream.receive_rtcp(report, ("192.0.2.99", 40001), 0.0)  # nothing latched, not the SDP's
    stream.receive_rtcp(report, (PEER[0], PEER[1] + 1), 0.0)  # the SDP's RTCP address
    stream.receive_rtp(audio(1, 0), PEER, 0.0)
    stream.receive_rtcp(report, PEER, 0.1)  # the RTP address itself
    stream.receive_rtcp(report, ("192.0.2.99", 40001), 0.1)
    assert stream.stats.rtcp_received == 2
    assert stream.stats.rtcp_dropped_foreign == 2


def test_inbound_rate_is_bounded_by_real_time() -> None:
    """A flood from the latched source at 10x real time: what passes is real time plus the
    burst credit; the rest is dropped and counted."""
    stream, _, _, _ = make_stream(PEER, rate_burst_ms=200, jitter_max_ms=200)
    sent = 0
    for i in range(1000):  # 1000 packets of 20 ms in 2 s: 20 s of audio
        stream.receive_rtp(audio(i, 160 * i), PEER, i * 0.002)
        sent += 1
    passed = stream.stats.packets_received
    # 2 s of real time + 200 ms credit = 2.2 s = 110 packets of 20 ms.
    assert 105 <= passed <= 111
    assert stream.stats.dropped_rate == sent - passed


def test_tiny_packets_cost_at_least_5_ms_each() -> None:
    """1-byte packets (1 sample of G.711 each) at 8000 a second fit a budget counted in bytes
    alone: one call could then make the gateway handle 8000 datagrams a second. Each costs at
    least 5 ms of audio: 200 a second (plus the credit) pass."""
    stream, _, _, _ = make_stream(PEER, rate_burst_ms=200)
    for i in range(16000):  # 2 s at 8000 packets/s
        stream.receive_rtp(audio(i, i, payload=b"\xff"), PEER, i / 8000)
    passed = stream.stats.packets_received
    # 2 s of real time + 200 ms credit, at 40 samples a packet: 440.
    assert 430 <= passed <= 441
    assert stream.stats.dropped_rate == 16000 - passed


def test_rate_bound_lets_a_burst_after_a_stall_through() -> None:
    stream, _, _, _ = make_stream(PEER)  # default: 1 s of credit
    for i in range(50):
        stream.receive_rtp(audio(i, 160 * i), PEER, i * 0.02)
    # A 600 ms stall, then the 30 held packets arrive at once.
    for i in range(50, 80):
        stream.receive_rtp(audio(i, 160 * i), PEER, 1.6)
    assert stream.stats.dropped_rate == 0
    assert stream.stats.packets_received == 80


async def test_ipv6_loopback_and_small_receive_buffer(port_block: int) -> None:
    alloc = PortAllocator(port_block, port_block + 9)
    stream, _, _, _ = make_stream()
    try:
        port = await stream.open(alloc, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("::1", 0))
    try:
        # Stock asyncio reads each datagram into a 256 KiB buffer unless told otherwise.
        assert getattr(stream._rtp_transport, "max_size", 8192) == 8192
        peer_addr = peer_transport.get_extra_info("sockname")[:2]
        stream.set_remote(peer_addr)
        peer_transport.sendto(audio(1, 0), ("::1", port))
        await wait_for(lambda: stream.stats.packets_received == 1)
        assert stream.send_address == peer_addr  # 4-tuple source normalised to (host, port)
        stream.send_frame(b"\xff" * 160)
        assert decode_rtp(await peer.recv()).payload == b"\xff" * 160
    finally:
        stream.close()
        peer_transport.close()


def test_apply_media_info_switches_codec_without_resetting_media_time() -> None:
    from sip.sdp import MediaInfo

    stream, frames, digits, _ = make_stream(PEER, rtcp_interval_s=1e9)
    stream.receive_rtp(audio(1, 0), PEER, 0.0)
    stream.tick(0.1)
    info = MediaInfo(
        codec="PCMA",
        payload_type=8,
        remote_host="192.0.2.10",
        remote_port=40000,
        remote_rtcp_port=40001,
        telephone_event_pt=96,
    )
    stream.apply_media_info(info)
    assert (stream.config.codec, stream.config.payload_type) == ("PCMA", 8)
    assert stream.remote_rtp == ("192.0.2.10", 40000)
    assert stream.remote_rtcp == ("192.0.2.10", 40001)
    stream.receive_rtp(audio(2, 160, pt=0), PEER, 0.02)  # old PT: no longer accepted
    assert stream.stats.dropped_unknown_pt == 1
    stream.receive_rtp(audio(3, 320, pt=8), PEER, 0.04)
    stream.receive_rtp(audio(4, 480, pt=8, payload=b"\x01" * 160), PEER, 0.06)
    stream.receive_rtp(audio(5, 480, pt=96, payload=event(9, True, 800)), PEER, 0.07)
    stream.tick(0.5)
    assert [f.payload[0] for f in frames] == [0x11, 0xD5, 0x11, 0x01]  # A-law silence concealed
    assert [f.media_time for f in frames] == [0, 160, 320, 480]
    assert [d.digit for d in digits] == ["9"]


def test_rtcp_is_sent_on_a_randomised_interval_from_the_tick() -> None:
    stream, _, _, _ = make_stream(PEER, rtcp_interval_s=5.0)
    rtcp_transport = FakeTransport()
    stream._rtcp_transport = rtcp_transport
    stream.set_remote(PEER)
    stream.tick(0.0)  # the first report is due at once on a stream that was never opened
    sent_at = [0.0]
    now = 0.0
    for _ in range(5000):  # 100 s of 20 ms ticks
        now += 0.02
        before = len(rtcp_transport.sent)
        stream.tick(now)
        if len(rtcp_transport.sent) > before:
            sent_at.append(now)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert len(gaps) >= 10
    assert all(2.5 - 0.021 <= g <= 7.5 + 0.021 for g in gaps)
    assert max(gaps) - min(gaps) > 0.5  # randomised, not a fixed period
    assert all(addr == ("192.0.2.10", 40001) for _, addr in rtcp_transport.sent)
    assert stream.stats.rtcp_sent == len(sent_at)
    kinds = {
        type(p).__name__ for data, _ in rtcp_transport.sent for p in rtcp.decode_compound(data)
    }
    assert kinds == {"ReceiverReport", "SourceDescription"}


def test_dtmf_packets_in_the_audio_sequence_do_not_count_as_lost() -> None:
    """RFC 4733 packets sent from the audio SSRC take sequence numbers of the stream: they are
    received packets, not losses (else every digit shows as loss in stats and RTCP reports)."""
    stream = RtpStream(StreamConfig(telephone_event_pt=101))
    src = ("127.0.0.1", 4000)
    stream.set_remote(src)
    seq, ts, now = 1000, 0, 100.0
    for i in range(60):
        if 20 <= i < 30:  # a digit: 10 event packets with the stream's SSRC and sequence
            payload = struct.pack("!BBH", 5, 0x80 if i == 29 else 0x0A, 160 * (i - 19))
            packet = encode_rtp_header(101, i == 20, seq, 3200, 0x1234) + payload
        else:
            packet = encode_rtp_header(0, False, seq, ts, 0x1234) + b"\xff" * 160
        stream.receive_rtp(packet, src, now)
        seq, ts, now = seq + 1, ts + 160, now + 0.02
    snap = stream.snapshot()
    assert snap.lost == 0
    assert snap.packets_received == 50  # audio packets; the 10 events are DTMF packets


async def _send_to_the_other_family(port_block: int) -> None:
    alloc = PortAllocator(port_block, port_block + 9)
    stream = RtpStream()
    await stream.open(alloc, HOST)  # an IPv4 socket
    try:
        stream.set_remote(("::1", 40000))  # an IPv6 destination (issue 10)
        # Must not raise: uvloop raises ValueError from sendto, asyncio reports an OSError to
        # error_received; either way it is a counted send error.
        stream.send_frame(b"\xff" * 160)
        assert stream.stats.send_errors >= 1
    finally:
        stream.close("bye")  # the RTCP BYE to the same address must not raise either


def test_send_to_the_other_family_is_counted_not_raised_uvloop(port_block: int) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(_send_to_the_other_family(port_block), 10))


async def test_send_to_the_other_family_is_counted_not_raised(port_block: int) -> None:
    await _send_to_the_other_family(port_block)


async def test_ipv6_bind(port_block: int) -> None:
    """An IPv6 media address binds IPv6 sockets (RTP and RTCP) that reach an IPv6 peer."""
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    alloc = PortAllocator(port_block, port_block + 9)
    stream = RtpStream()
    port = await stream.open(alloc, "[::1]")
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("::1", 0))
    try:
        stream.set_remote(peer.addr)
        stream.send_frame(b"\xff" * 160)
        data, source = await asyncio.wait_for(peer.queue.get(), WAIT)
        assert decode_rtp(data).payload == b"\xff" * 160
        assert source[:2] == ("::1", port)
    finally:
        stream.close()
        transport.close()
