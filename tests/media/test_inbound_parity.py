"""The compiled inbound path (gateway/media/_inbound.c) against the pure one (inbound.py
PyInboundPath), each with its own jitter buffer, through whole RtpStreams: the same datagrams,
addresses and times in; identical frames and digits delivered, StreamStats, snapshot(), RTCP
report blocks, latch state, activity and the jitter buffer's statistics out, after every
datagram (issue 14).

The sender model misbehaves in every way the path handles: malformed datagrams (short, wrong
version, truncated CSRC list or extension, bad padding, random bytes), CSRC/extension/padding
variants, foreign sources and learnable ones in probation, a re-INVITE moving the media, other
payload types (RFC 4733, CN, unknown), SSRC changes and stragglers of the previous source, floods
past the rate bound, sequence jumps and wraps, timestamp jumps, IPv6 4-tuple addresses, SR
reports, codec changes, and NaN/inf/negative/backwards times.
"""

from __future__ import annotations

import dataclasses
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media import rtcp
from gateway.media.dtmf import DtmfDigit
from gateway.media.jitter import Frame, PyJitterBuffer
from gateway.media.latch import SourceLatch
from gateway.media.rtp import RtpPacket
from gateway.media.stats import StreamStats
from gateway.media.stream import RtpStream, StreamConfig
from tests.media.jitter_impls import implementation, inbound_implementation

PEER = ("192.0.2.10", 40000)
PEER_MOVED = ("192.0.2.10", 40100)  # a re-INVITE moves the media here
NAT_PORT = ("192.0.2.10", 51000)  # the SDP's host, another port: learnable after probation
STRANGER = ("203.0.113.9", 40000)  # another host: never learnable
V6 = ("2001:db8::10", 40000, 0, 0)  # an IPv6 socket address (4-tuple)
ADDRESSES = [PEER, PEER, PEER, PEER, PEER_MOVED, NAT_PORT, STRANGER, V6, ("192.0.2.10", 40000.0)]
DTMF_PT = 101


def same(a: Any, b: Any) -> bool:
    """Equality where two NaNs are the same result, recursively through containers."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and same(dataclasses.astuple(a), dataclasses.astuple(b))
    return type(a) is type(b) and a == b


class Side:
    """One RtpStream with one implementation, recording what it hands on."""

    def __init__(self, name: str, buffer_name: str | None = None) -> None:
        self.frames: list[Frame] = []
        self.digits: list[DtmfDigit] = []
        config = StreamConfig(telephone_event_pt=DTMF_PT, rate_burst_ms=200.0)
        self.stream = RtpStream(config, on_audio=self.frames.extend, on_dtmf=self.digits.append)
        buffer_cls = implementation(buffer_name or name)
        self.stream.jitter = buffer_cls(
            config.codec,
            min_delay_ms=config.jitter_min_ms,
            max_delay_ms=config.jitter_max_ms,
            clock_rate=config.clock_rate,
        )
        inbound_cls = inbound_implementation(name)
        self.stream._inbound = inbound_cls(config, self.stream.stats, self.stream.latch)
        self.stream.set_remote(PEER)

    def observe(self) -> dict[str, Any]:
        stream = self.stream
        inbound = stream._inbound
        latch = stream.latch
        return {
            "stats": dataclasses.astuple(stream.stats),
            "snapshot": dataclasses.astuple(stream.snapshot()),
            "frames": list(self.frames),
            "frame_types": [tuple(type(x) for x in f) for f in self.frames],
            "digits": list(self.digits),
            "lost": inbound.lost,
            "jitter_ms": inbound.jitter_ms,
            "source_ssrc": inbound.source_ssrc,
            "latched": latch.latched,
            "latches": latch.latches,
            "activity": stream._activity_since,
            "timed_out": stream._timed_out,
            "jitter_stats": dataclasses.astuple(stream.jitter.stats),
            "media_time": stream.jitter.media_time,
        }


def call(action: Any) -> tuple[str, Any]:
    try:
        return "ok", action()
    except Exception as error:
        return "raised", type(error)


def apply(stream: RtpStream, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "rtp":
        return stream.receive_rtp(op[1], op[2], op[3])
    if kind == "tick":
        return stream.tick(op[1])
    if kind == "report":
        return stream._inbound.report_block(op[1])
    if kind == "rtcp":
        return stream.receive_rtcp(op[1], op[2], op[3])
    if kind == "move":
        return stream.set_remote(op[1])
    assert kind == "codec"
    return stream.set_codec(op[1], op[2])


def run_both(ops: list[tuple[Any, ...]], buffers: tuple[str, str] = ("python", "c")) -> None:
    pure, compiled = Side("python", buffers[0]), Side("c", buffers[1])
    for index, op in enumerate(ops):
        where = f"op {index} {op[0]}"
        left_result = call(lambda s=pure.stream, o=op: apply(s, o))
        right_result = call(lambda s=compiled.stream, o=op: apply(s, o))
        assert same(left_result, right_result), f"{where}: {left_result!r} != {right_result!r}"
        left, right = pure.observe(), compiled.observe()
        for key, value in left.items():
            assert same(value, right[key]), f"{where}: {key} {value!r} != {right[key]!r}"


# -- the sender model ----------------------------------------------------------------------------

KINDS = (
    ["next"] * 14
    + ["lose", "hold", "release_held", "duplicate", "ssrc", "straggler", "seq_jump"]
    + ["seq_jump_single", "ts_jump", "wrap", "flood", "stall", "tick", "tick", "report"]
    + ["dtmf", "cn", "unknown_pt", "malformed", "garbage", "fancy", "foreign", "probation"]
    + ["move", "sr", "codec", "odd_time", "backwards", "v6", "odd_size"]
)


def malformed(rnd: random.Random, good: bytes) -> bytes:
    choice = rnd.randrange(7)
    if choice == 0:
        return good[: rnd.randrange(12)]  # shorter than the fixed header
    if choice == 1:
        return bytes((rnd.choice([0x00, 0x40, 0xC0]),)) + good[1:]  # version 0, 1, 3
    if choice == 2:
        return bytes((0x8F,)) + good[1:20]  # 15 CSRCs announced, not there
    if choice == 3:
        return bytes((0x90,)) + good[1:12] + b"\xbe\xde\xff\xff" + b"\x00" * 8  # extension cut
    if choice == 4:
        return bytes((0xA0,)) + good[1:-1] + b"\x00"  # padding count 0
    if choice == 5:
        return bytes((0xA0,)) + good[1:12] + b"\x01\x02\xff"  # padding longer than the packet
    return b""


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=20, max_size=160))
    rnd = draw(st.randoms(use_true_random=False))
    ops: list[tuple[Any, ...]] = []
    ssrc = rnd.randint(0, 0xFFFFFFFF)
    old_ssrcs: list[int] = []
    seq = rnd.randint(0, 0xFFFF)
    ts = rnd.randint(0, 0xFFFFFFFF)
    now = rnd.choice([0.0, 1000.0, rnd.uniform(0, 1e6)])
    ptime = rnd.choice([80, 160, 240])
    audio_pt = 0
    source = PEER
    held: list[bytes] = []
    last: bytes | None = None

    def wire(pt: int | None = None, size: int | None = None, **fields: Any) -> bytes:
        s = fields.get("seq", seq)
        return RtpPacket(
            audio_pt if pt is None else pt,
            s & 0xFFFF,
            fields.get("ts", ts) & 0xFFFFFFFF,
            fields.get("ssrc", ssrc),
            fields.get("payload", bytes(((s * 7) & 0xFF,)) * (ptime if size is None else size)),
            marker=fields.get("marker", False),
            csrc=fields.get("csrc", ()),
            padding_size=fields.get("padding", 0),
            extension=fields.get("extension"),
        ).encode()

    def send(data: bytes, addr: Any = None, at: float | None = None) -> None:
        nonlocal last
        jitter = rnd.choice([0.0, 0.0, 0.002, 0.03])
        ops.append(
            (
                "rtp",
                data,
                source if addr is None else addr,
                (now if at is None else at) + rnd.uniform(0, jitter),
            )
        )
        last = data

    def advance() -> None:
        nonlocal seq, ts, now
        seq, ts, now = seq + 1, ts + ptime, now + ptime / 8000

    for kind in kinds:
        if kind in ("next", "lose", "hold"):
            data = wire()
            if kind == "next":
                send(data)
            elif kind == "hold":
                held.append(data)
            advance()
        elif kind == "release_held" and held:
            send(held.pop(rnd.randrange(len(held))))
        elif kind == "duplicate" and last is not None:
            send(last)
        elif kind == "ssrc":
            old_ssrcs.append(ssrc)
            ssrc, seq, ts = (
                rnd.randint(0, 0xFFFFFFFF),
                rnd.randint(0, 0xFFFF),
                rnd.randint(0, 2**32 - 1),
            )
        elif kind == "straggler" and old_ssrcs:
            send(wire(ssrc=rnd.choice(old_ssrcs), seq=seq - 3))
        elif kind == "seq_jump":
            seq += rnd.randint(3001, 60000)
        elif kind == "seq_jump_single":
            send(wire(seq=seq + rnd.randint(3001, 60000)))
        elif kind == "ts_jump":
            ts += rnd.choice([rnd.randint(-(2**31), 2**31), rnd.randint(-20000, 20000)])
        elif kind == "wrap":
            seq = 0xFFFF - rnd.randint(0, 3)
            ts = 0xFFFFFFFF - rnd.randint(0, 3 * ptime)
        elif kind == "flood":
            for _ in range(rnd.randint(5, 60)):  # far beyond real time: the rate bound cuts it
                send(wire(size=rnd.choice([ptime, 1, 40])))
                seq, ts = seq + 1, ts + ptime
        elif kind == "stall":
            now += rnd.uniform(0.05, 3.0)
        elif kind == "tick":
            ops.append(("tick", now + rnd.uniform(-0.05, 0.3)))
        elif kind == "report":
            ops.append(("report", now))
        elif kind == "dtmf":
            event = struct.pack("!BBH", rnd.randint(0, 15), rnd.choice([0x0A, 0x8A]), 800)
            send(wire(pt=DTMF_PT, payload=event, marker=rnd.random() < 0.3))
            if rnd.random() < 0.7:
                advance()
        elif kind == "cn":
            send(wire(pt=13, payload=b"\x40"))
            advance()
        elif kind == "unknown_pt":
            send(wire(pt=rnd.choice([18, 96, 127])))
        elif kind == "malformed":
            send(malformed(rnd, wire()))
        elif kind == "garbage":
            send(rnd.randbytes(rnd.choice([1, 12, 13, 200, 1500])))
        elif kind == "fancy":
            send(
                wire(
                    csrc=tuple(rnd.randint(0, 2**32 - 1) for _ in range(rnd.randint(0, 15))),
                    padding=rnd.choice([0, 1, 4, 255]),
                    extension=rnd.choice([None, (0xBEDE, b"\x01\x02\x03\x04"), (1, b"")]),
                )
            )
            advance()
        elif kind == "foreign":
            send(wire(), addr=rnd.choice([STRANGER, V6, ("192.0.2.10", 40001)]))
        elif kind == "probation":
            addr = rnd.choice([NAT_PORT, PEER_MOVED])
            other = rnd.randint(0, 0xFFFFFFFF)
            for i in range(rnd.randint(1, 4)):
                send(wire(ssrc=other, seq=seq + i), addr=addr)
        elif kind == "move":
            target = rnd.choice([PEER_MOVED, NAT_PORT, PEER])
            ops.append(("move", target))
            source = target if rnd.random() < 0.8 else source
        elif kind == "sr":
            sr = rtcp.SenderReport(
                ssrc=rnd.choice([ssrc, ssrc ^ 1]),
                ntp_timestamp=rnd.randint(0, 2**64 - 1),
                rtp_timestamp=ts & 0xFFFFFFFF,
                packet_count=1,
                octet_count=160,
                reports=[],
            )
            ops.append(("rtcp", rtcp.encode_compound([sr]), source, now))
        elif kind == "codec":
            audio_pt = rnd.choice([0, 8])
            ops.append(("codec", "PCMU" if audio_pt == 0 else "PCMA", audio_pt))
        elif kind == "odd_time":
            send(wire(), at=rnd.choice([math.nan, math.inf, -math.inf, -5.0, 1e300]))
            advance()
        elif kind == "backwards":
            now -= rnd.uniform(0.0, 2.0)
        elif kind == "v6":
            send(wire(), addr=(source[0], source[1], 0, 0))  # same host and port, 4-tuple
            advance()
        elif kind == "odd_size":
            send(wire(size=rnd.choice([0, 1, 960, 961, 5000])))
            advance()
    for data in held:
        send(data)
    ops.append(("tick", now + 5.0))
    ops.append(("report", now + 5.0))
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_datagrams_give_identical_results(ops: list[tuple[Any, ...]]) -> None:
    run_both(ops)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_compiled_path_with_a_pure_buffer_gives_identical_results(
    ops: list[tuple[Any, ...]],
) -> None:
    """The compiled path pushes into a buffer that is not the compiled one through its Python
    methods (a test, or a stream whose buffer was replaced)."""
    run_both(ops, buffers=("python", "python"))


def run_paths(ops: list[tuple[Any, ...]]) -> None:
    """The two InboundPath classes alone (no stream around them): identical return values
    (frames, the RtpPacket of another payload type with every field, None), counters, latch
    state and report blocks after every operation."""
    sides = []
    for name in ("python", "c"):
        config = StreamConfig(telephone_event_pt=DTMF_PT, rate_burst_ms=200.0)
        stats, latch = StreamStats(), SourceLatch()
        latch.set_sdp(PEER, (PEER[0], PEER[1] + 1))
        buffer = implementation(name)(config.codec, clock_rate=config.clock_rate)
        sides.append(
            (config, stats, latch, buffer, inbound_implementation(name)(config, stats, latch))
        )
    for index, op in enumerate(ops):
        results = []
        for config, _, latch, buffer, path in sides:
            if op[0] == "rtp":
                results.append(call(lambda p=path, b=buffer, o=op: p.receive(o[1], o[2], o[3], b)))
            elif op[0] == "tick":
                results.append(call(lambda b=buffer, o=op: b.pop_ready(o[1])))
            elif op[0] == "report":
                results.append(call(lambda p=path, o=op: p.report_block(o[1])))
            elif op[0] == "move":
                latch.set_sdp(op[1], (op[1][0], op[1][1] + 1))
            elif op[0] == "codec":
                config.payload_type = op[2]
        where = f"op {index} {op[0]}"
        if results:
            assert same(results[0], results[1]), f"{where}: {results[0]!r} != {results[1]!r}"
        (_, left, left_latch, _, left_path), (_, right, right_latch, _, right_path) = sides
        assert same(left, right), f"{where}: {left} != {right}"
        assert left_latch.latched == right_latch.latched, where
        assert same(
            (left_path.lost, left_path.jitter_ms, left_path.source_ssrc),
            (right_path.lost, right_path.jitter_ms, right_path.source_ssrc),
        ), where


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_paths_alone_return_identical_values(ops: list[tuple[Any, ...]]) -> None:
    run_paths(ops)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=0, max_size=64),
            st.sampled_from(ADDRESSES),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=40,
    )
)
def test_arbitrary_bytes_and_times_give_identical_results(
    datagrams: list[tuple[bytes, Any, float]],
) -> None:
    """Any bytes (most of them malformed, some valid with any header field), any time."""
    ops: list[tuple[Any, ...]] = []
    for data, addr, now in datagrams:
        if len(data) >= 12 and data[0] & 0x01:
            data = bytes((0x80,)) + data[1:]  # half of them get a valid plain header
        ops.append(("rtp", data, addr, now))
    ops.append(("report", 0.0))
    run_both(ops)


def test_every_header_field_extreme() -> None:
    ops: list[tuple[Any, ...]] = []
    for seq in (0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF):
        for ts in (0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF):
            for ssrc in (0, 0xFFFFFFFF):
                data = RtpPacket(0, seq, ts, ssrc, b"\x33" * 160, marker=True).encode()
                ops.append(("rtp", data, PEER, seq / 1000 + ts / 1e9))
    ops.append(("report", 100.0))
    ops.append(("tick", 100.0))
    run_both(ops)


def test_the_python_buffer_is_used_through_its_methods() -> None:
    """Sanity of the mixed case above: the compiled path with PyJitterBuffer hands on audio."""
    side = Side("c", "python")
    assert type(side.stream.jitter) is PyJitterBuffer
    for i in range(5):
        side.stream.receive_rtp(RtpPacket(0, i, 160 * i, 7, b"\x01" * 160).encode(), PEER, 0.02 * i)
    side.stream.tick(1.0)
    assert [f.payload for f in side.frames] == [b"\x01" * 160] * 5


@pytest.mark.parametrize("name", ["python", "c"])
def test_report_blocks_follow_loss_and_sender_reports(name: str) -> None:
    """The RTCP report block is the RFC's: loss, fraction, extended max, jitter, LSR/DLSR."""
    side = Side(name)
    stream = side.stream
    for seq in (10, 11, 13, 14):  # 12 lost
        stream.receive_rtp(
            RtpPacket(0, seq, 160 * seq, 5, b"\x01" * 160).encode(), PEER, seq * 0.02
        )
    sr = rtcp.SenderReport(5, 0x0001_2345_6789_0000, 0, 1, 1, [])
    stream.receive_rtcp(rtcp.encode_compound([sr]), PEER, 1.0)
    block = stream._inbound.report_block(1.5)
    assert block == rtcp.ReportBlock(
        ssrc=5,
        fraction_lost=51,
        cumulative_lost=1,
        highest_seq=14,
        jitter=0,
        lsr=0x2345_6789,
        dlsr=int(0.5 * 65536),
    )
