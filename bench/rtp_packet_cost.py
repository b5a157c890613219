"""Per-packet CPU cost of the RTP media path, in microseconds.

Inbound:  decode_rtp + JitterBuffer.push + pop_ready (the buffer alone, no sockets), and the full
          RtpStream.receive_rtp path (latching check, routing, RFC 3550 stats, buffer) + tick,
          with the implementation in use (compiled where built) and with the pure-Python inbound
          path and jitter buffer (`--pure` measures only those inbound lines, pure).
Outbound: RtpStream.send_frame (the outbound path's: header + payload, transport.sendto on a real
          loopback UDP socket to a sink socket, counters), on uvloop and on the stock asyncio
          loop, with the implementation in use (compiled where built) and with the pure-Python
          outbound path (outbound.py PyOutboundPath) on uvloop.
SRTP:     what SRTP adds per packet each way (gateway/media/srtp.py over libsrtp): protect_rtp of
          the same 172-byte packet, and unprotect_rtp of the protected packets, per suite.

    .venv/bin/python bench/rtp_packet_cost.py [--packets 50000] [--pure]

Times chunks of 1000 packets and reports the best chunk (the cost of our code) and the median
chunk (including preemption by whatever else runs on the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.media import jitter
from gateway.media.inbound import PyInboundPath
from gateway.media.jitter import JitterBuffer, PyJitterBuffer
from gateway.media.outbound import PyOutboundPath
from gateway.media.ports import PortAllocator
from gateway.media.rtp import RtpPacket, decode_rtp
from gateway.media.srtp import SrtpSession
from gateway.media.stream import RtpStream, StreamConfig
from sip.sdp_crypto import SUITES, SrtpKey

PAYLOAD = b"\x55" * 160


def _wire_packets(n: int) -> list[bytes]:
    return [
        RtpPacket(0, i & 0xFFFF, (160 * i) & 0xFFFFFFFF, 0x1234, PAYLOAD).encode() for i in range(n)
    ]


CHUNK = 1000  # packets per timed chunk


def _summary(chunk_seconds: list[float]) -> tuple[float, float]:
    """(best, median) microseconds per packet over the timed chunks. On a shared machine the
    best chunk is the cost of our code; the median includes other jobs preempting us."""
    per_packet = sorted(t / CHUNK * 1e6 for t in chunk_seconds)
    return per_packet[0], per_packet[len(per_packet) // 2]


def bench_buffer(n: int, pure: bool = False) -> tuple[float, float]:
    raw = _wire_packets(n)
    jb = PyJitterBuffer() if pure else JitterBuffer()
    chunks = []
    clock = time.perf_counter
    for base in range(0, n - CHUNK + 1, CHUNK):
        start = clock()
        for i in range(base, base + CHUNK):
            now = 0.02 * i
            jb.push(decode_rtp(raw[i]), now)
            jb.pop_ready(now)
        chunks.append(clock() - start)
    assert jb.stats.released_frames >= n - 5, jb.stats
    return _summary(chunks)


def _srtp_pair() -> tuple[SrtpSession, SrtpSession]:
    """(the peer's session, ours) for one SRTP call: each direction has its own key."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    theirs, ours = SrtpKey.generate(SUITES[suite]), SrtpKey.generate(SUITES[suite])
    return SrtpSession(ours, theirs, suite), SrtpSession(theirs, ours, suite)


def bench_stream_receive(n: int, srtp: bool = False, pure: bool = False) -> tuple[float, float]:
    """The full inbound path; `srtp`: as in an SRTP call (stream.srtp set, SRTP on the wire);
    `pure`: with the pure-Python inbound path and jitter buffer (as SRG_PURE_PYTHON=1 runs)."""
    raw = _wire_packets(n)
    released = [0]
    peer_srtp, our_srtp = _srtp_pair()
    if srtp:
        raw = [peer_srtp.protect_rtp(packet) for packet in raw]

    def on_audio(frames: list) -> None:
        released[0] += len(frames)

    config = StreamConfig(rtcp_interval_s=1e9)
    stream = RtpStream(config, on_audio=on_audio)
    if pure:
        stream.jitter = PyJitterBuffer(config.codec, clock_rate=config.clock_rate)
        stream._inbound = PyInboundPath(config, stream.stats, stream.latch)
    stream.srtp = our_srtp if srtp else None
    peer = ("127.0.0.1", 40000)
    stream.set_remote(peer)  # as in a call: the SDP named the peer (strict latching, latch.py)
    chunks = []
    clock = time.perf_counter
    for base in range(0, n - CHUNK + 1, CHUNK):
        start = clock()
        for i in range(base, base + CHUNK):
            now = 0.02 * i
            stream.receive_rtp(raw[i], peer, now)
            stream.tick(now)
        chunks.append(clock() - start)
    assert released[0] >= n - 5
    return _summary(chunks)


async def _bench_send(n: int, srtp: bool = False, pure: bool = False) -> tuple[float, float]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sink.setblocking(False)
    alloc = PortAllocator(30000, 60000)
    stream = RtpStream()
    if pure:
        out = PyOutboundPath(stream.config, stream.stats, stream.latch, 0x1234, 0, 0)
        stream._outbound = out  # before open(), which hands it the transport and clock
        stream.send_frame = out.send_frame
    stream.srtp = _srtp_pair()[1] if srtp else None
    await stream.open(alloc, "127.0.0.1")
    stream.set_remote(sink.getsockname())
    chunks = []
    clock = time.perf_counter
    try:
        for _ in range(n // CHUNK):
            start = clock()
            for _ in range(CHUNK):
                stream.send_frame(PAYLOAD)
            chunks.append(clock() - start)
            # Drain the sink between chunks so the kernel never drops (and never blocks us).
            while True:
                try:
                    sink.recv(2048)
                except BlockingIOError:
                    break
            await asyncio.sleep(0)
    finally:
        stream.close()
        sink.close()
    assert stream.stats.packets_sent == n // CHUNK * CHUNK, stream.stats
    return _summary(chunks)


def bench_send(
    n: int,
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    srtp: bool = False,
    pure: bool = False,
) -> tuple[float, float]:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_bench_send(n, srtp, pure))


def bench_srtp(n: int, suite: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(protect, unprotect) per packet: the sender's protect_rtp, then the receiver's
    unprotect_rtp of those packets in order (replay window and tag check included)."""
    raw = _wire_packets(n)
    key = SrtpKey.generate(SUITES[suite])
    sender = SrtpSession(key, key, suite)
    receiver = SrtpSession(key, key, suite)
    protected: list[bytes] = []
    protect_chunks, unprotect_chunks = [], []
    clock = time.perf_counter
    protect = sender.protect_rtp
    for base in range(0, n - CHUNK + 1, CHUNK):
        start = clock()
        for i in range(base, base + CHUNK):
            protected.append(protect(raw[i]))
        protect_chunks.append(clock() - start)
    unprotect = receiver.unprotect_rtp
    for base in range(0, len(protected) - CHUNK + 1, CHUNK):
        start = clock()
        for i in range(base, base + CHUNK):
            unprotect(protected[i])
        unprotect_chunks.append(clock() - start)
    assert receiver.stats.unprotected == len(protected), receiver.stats
    return _summary(protect_chunks), _summary(unprotect_chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=50_000)
    parser.add_argument(
        "--pure", action="store_true", help="only the inbound lines, pure-Python implementations"
    )
    args = parser.parse_args()
    n = max(args.packets, CHUNK)

    in_use = f"{jitter.IMPLEMENTATION}: {type(RtpStream()._inbound).__name__}"
    out_use = type(RtpStream()._outbound).__name__
    rows: list[tuple[str, tuple[float, float]]] = []
    if not args.pure:
        rows += [
            (
                f"inbound  decode + jitter push + pop_ready ({jitter.IMPLEMENTATION})",
                bench_buffer(n),
            ),
            (f"inbound  RtpStream.receive_rtp + tick ({in_use})", bench_stream_receive(n)),
            ("inbound  the same, SRTP call (unprotect first)", bench_stream_receive(n, srtp=True)),
        ]
    rows += [
        ("inbound  decode + jitter push + pop_ready (python)", bench_buffer(n, pure=True)),
        ("inbound  RtpStream.receive_rtp + tick (python)", bench_stream_receive(n, pure=True)),
    ]
    if args.pure:
        _print(n, rows)
        return
    try:
        import uvloop

        rows.append(
            (
                f"outbound send_frame: encode + sendto (uvloop, {out_use})",
                bench_send(n, uvloop.new_event_loop),
            )
        )
        rows.append(
            (
                "outbound the same, SRTP call (protect last)",
                bench_send(n, uvloop.new_event_loop, srtp=True),
            )
        )
        rows.append(
            (
                "outbound send_frame: encode + sendto (uvloop, python)",
                bench_send(n, uvloop.new_event_loop, pure=True),
            )
        )
    except ImportError:
        print("uvloop not installed: skipping the uvloop send figure")
    rows.append(
        (
            f"outbound send_frame: encode + sendto (asyncio, {out_use})",
            bench_send(n, asyncio.new_event_loop),
        )
    )
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"):
        protect, unprotect = bench_srtp(n, suite)
        rows.append((f"SRTP protect_rtp   ({suite})", protect))
        rows.append((f"SRTP unprotect_rtp ({suite})", unprotect))
    _print(n, rows)


def _print(n: int, rows: list[tuple[str, tuple[float, float]]]) -> None:
    print(f"python {sys.version.split()[0]}, {n} packets of 172 B in chunks of {CHUNK}")
    print(f"  {'':<62} {'best':>7} {'median':>7}  us/packet")
    for name, (best, median) in rows:
        print(f"  {name:<62} {best:7.2f} {median:7.2f}")


if __name__ == "__main__":
    main()
