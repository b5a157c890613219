"""The compiled outbound path (gateway/media/_outbound.c) against the pure one (outbound.py
PyOutboundPath), through whole RtpStreams: the same calls in; identical results (or exception
types), bytes and addresses handed to a recording transport, StreamStats, outbound state and
`build_report` compounds (fixed wallclock) out, after every step (issue 14).

The steps: send_frame (positional and by keyword, given PT, odd timestamp steps), send_event
(with and without a negotiated telephone-event PT), send_comfort_noise, advance (huge, negative
and zero steps), payloads of every size and buffer type, set_remote (moves, hold addresses),
latching on/off and latched sources, direction changes, transports that fail with every
exception type (counted or raised as the pure path does), no transport, SRTP on and off (with
its own replay refusals), codec changes, sequence/timestamp wraps.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media import stream as stream_module
from gateway.media.srtp import SrtpError, SrtpSession
from gateway.media.stream import RtpStream, StreamConfig
from sip.sdp_crypto import SUITES, SrtpKey
from tests.media.jitter_impls import outbound_implementation

PEER = ("192.0.2.10", 40000)
MOVED = ("192.0.2.10", 40100)
NAT = ("198.51.100.7", 61000)
V6 = ("2001:db8::10", 40000)
SUITE = "AES_CM_128_HMAC_SHA1_80"
WALLCLOCK = 1_700_000_000.25
ERRORS = [
    OSError,
    ConnectionRefusedError,
    BlockingIOError,
    ValueError,
    SrtpError,
    RuntimeError,  # not a send error: raised, as the pure path raises it
    TypeError,
    KeyboardInterrupt,
]


class RecordingTransport:
    """Records every datagram and address; raises the scripted exception on the next send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.fail_with: type[BaseException] | None = None

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((bytes(data), addr))
        error, self.fail_with = self.fail_with, None
        if error is not None:
            raise error("scripted")


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Side:
    def __init__(self, name: str, keys: tuple[SrtpKey, SrtpKey]) -> None:
        saved = stream_module.OutboundPath
        stream_module.OutboundPath = outbound_implementation(name)
        try:
            self.stream = RtpStream(
                StreamConfig(telephone_event_pt=101, cname="gw-parity"), wallclock=lambda: WALLCLOCK
            )
        finally:
            stream_module.OutboundPath = saved
        out = self.stream._outbound
        out.ssrc, out.seq, out.ts = 0x12345678, 65530, 0xFFFFFF00
        out.last_send_ts = out.ts
        self.clock = Clock()
        out.clock = self.clock
        self.transport = RecordingTransport()
        self.stream._rtp_transport = self.transport  # type: ignore[assignment]
        self.stream.set_remote(PEER)
        self.keys = keys

    def observe(self) -> dict[str, Any]:
        out = self.stream._outbound
        state = {
            "sent": list(self.transport.sent),
            "stats": dataclasses.astuple(self.stream.stats),
            "ssrc": out.ssrc,
            "seq": out.seq,
            "ts": out.ts,
            "last_send_ts": out.last_send_ts,
            "last_send_time": out.last_send_time,
            "sent_since_report": out.sent_since_report,
            "send_address": self.stream.send_address,
            "remote_rtp": self.stream.remote_rtp,
            "may_send": out.may_send,
        }
        # build_report resets sent_since_report: put it back so the next step starts equal.
        flag = out.sent_since_report
        state["report"] = self.stream.build_report(self.clock.now + 0.013)
        out.sent_since_report = flag
        return state


def apply(side: Side, op: tuple[Any, ...]) -> Any:
    stream, kind = side.stream, op[0]
    if kind == "frame":
        _, payload, marker, pt, step, by_keyword = op
        if by_keyword:
            kwargs: dict[str, Any] = {"marker": marker}
            if pt is not None:
                kwargs["pt"] = pt
            if step is not None:
                kwargs["timestamp_step"] = step
            return stream.send_frame(payload, **kwargs)
        if step is not None:
            return stream.send_frame(payload, marker, pt, step)
        return stream.send_frame(payload, marker)
    if kind == "event":
        return stream.send_event(op[1], op[2], op[3])
    if kind == "cn":
        return stream.send_comfort_noise(op[1])
    if kind == "advance":
        return stream.advance(op[1])
    if kind == "remote":
        return stream.set_remote(op[1])
    if kind == "latch":
        stream.latch.latched = op[1]
        return None
    if kind == "latching":
        stream.config.latching = op[1]
        return None
    if kind == "direction":
        return stream.set_direction(op[1], now=0.0)
    if kind == "fail":
        side.transport.fail_with = op[1]
        return None
    if kind == "transport":
        stream._rtp_transport = side.transport if op[1] else None  # type: ignore[assignment]
        return None
    if kind == "srtp":
        stream.srtp = SrtpSession(side.keys[0], side.keys[1], SUITE) if op[1] else None
        return None
    if kind == "codec":
        stream.config.payload_type = op[1]
        return None
    if kind == "te":
        stream.config.telephone_event_pt = op[1]
        return None
    if kind == "time":
        side.clock.now += op[1]
        return None
    if kind == "report":
        return stream.build_report(side.clock.now)
    raise AssertionError(kind)


def call(side: Side, op: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", apply(side, op)
    except BaseException as error:  # KeyboardInterrupt from the transport included
        return "raised", type(error)


def payload(rnd: random.Random) -> Any:
    size = rnd.choice([0, 1, 4, 160, 160, 160, 320, 1400, 9000])
    data = bytes(rnd.randrange(256) for _ in range(min(size, 64))) * (size // 64 + 1)
    data = data[:size]
    kind = rnd.random()
    if kind < 0.85:
        return data
    if kind < 0.92:
        return bytearray(data)
    return memoryview(data)


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    rnd = draw(st.randoms(use_true_random=False))
    count = draw(st.integers(10, 120))
    ops: list[tuple[Any, ...]] = []
    for _ in range(count):
        r = rnd.random()
        if r < 0.40:
            ops.append(
                (
                    "frame",
                    payload(rnd),
                    rnd.choice([False, True, 0, 1]),
                    rnd.choice([None, None, None, 0, 8, 96, 127]),
                    rnd.choice([None, None, 160, 80, 0, -160, 2**32 + 7, -(2**40), 2**70]),
                    rnd.random() < 0.3,
                )
            )
        elif r < 0.48:
            offset = rnd.choice([0, 160, 320, 4000, -5, 2**33])
            ops.append(("event", payload(rnd)[:4], rnd.random() < 0.3, offset))
        elif r < 0.53:
            ops.append(("cn", rnd.choice([b"\x40", b"", bytes(10)])))
        elif r < 0.60:
            ops.append(("advance", rnd.choice([160, 320, 0, -1, 2**32 - 1, 2**64 + 3, -(2**50)])))
        elif r < 0.64:
            ops.append(
                ("remote", rnd.choice([PEER, MOVED, V6, None, ("0.0.0.0", 4000), (PEER[0], 0)]))
            )
        elif r < 0.68:
            ops.append(("latch", rnd.choice([None, NAT, PEER])))
        elif r < 0.71:
            ops.append(("latching", rnd.random() < 0.6))
        elif r < 0.75:
            ops.append(("direction", rnd.choice(["sendrecv", "sendonly", "recvonly", "inactive"])))
        elif r < 0.82:
            ops.append(("fail", rnd.choice(ERRORS)))
        elif r < 0.85:
            ops.append(("transport", rnd.random() < 0.7))
        elif r < 0.88:
            ops.append(("srtp", rnd.random() < 0.5))
        elif r < 0.90:
            ops.append(("codec", rnd.choice([0, 8])))
        elif r < 0.92:
            ops.append(("te", rnd.choice([None, 101, 96])))
        elif r < 0.97:
            ops.append(("time", rnd.choice([0.02, 0.02, 0.0, 1.5])))
        else:
            ops.append(("report",))
    return ops


def run_both(ops: list[tuple[Any, ...]]) -> None:
    keys = (SrtpKey.generate(SUITES[SUITE]), SrtpKey.generate(SUITES[SUITE]))
    pure, compiled = Side("python", keys), Side("c", keys)
    for index, op in enumerate(ops):
        where = f"op {index} {op[0]}"
        left, right = call(pure, op), call(compiled, op)
        assert left == right, f"{where}: {left!r} != {right!r}"
        before, after = pure.observe(), compiled.observe()
        for key, value in before.items():
            assert value == after[key], f"{where}: {key} {value!r} != {after[key]!r}"
            assert type(value) is type(after[key]), f"{where}: {key} type"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_compiled_outbound_path_matches_pure(ops: list[tuple[Any, ...]]) -> None:
    run_both(ops)


def test_a_plain_call_matches() -> None:
    """A call's common case, spelled out: frames, a DTMF digit, CN, a gap, SRTP, a failure."""
    ops: list[tuple[Any, ...]] = []
    for i in range(40):
        ops.append(("frame", bytes([i]) * 160, i == 0, None, None, False))
        ops.append(("time", 0.02))
    ops += [("event", b"\x01\x0a\x00\xa0", True, 0), ("event", b"\x01\x8a\x03\x20", False, 160)]
    ops += [
        ("cn", b"\x40"),
        ("advance", 320),
        ("srtp", True),
        ("frame", b"\x11" * 160, True, None, None, False),
    ]
    ops += [("fail", OSError), ("frame", b"\x22" * 160, False, None, None, False), ("report",)]
    ops += [("fail", RuntimeError), ("frame", b"\x33" * 160, False, None, None, False)]
    run_both(ops)
