"""The outbound path under hostile use (issue 14): wrong types from in-process code are
exceptions, never a crash; huge payloads are sent or counted; a transport that raises any
exception gets a counted send error (OSError, ValueError, SrtpError) or the exception back
(anything else), with the stream's state as the pure path leaves it; no reference to a payload,
an address, a transport or a packet is leaked; the stream is freed by reference counting; a
million sends leave the process's memory flat."""

from __future__ import annotations

import gc
import os
import sys
import weakref
from typing import Any

import pytest

from gateway.media import jitter, outbound
from gateway.media.latch import SourceLatch
from gateway.media.outbound import PyOutboundPath
from gateway.media.rtp import decode_rtp
from gateway.media.srtp import SrtpAuthError, SrtpError, SrtpSession
from gateway.media.stats import StreamStats
from gateway.media.stream import RtpStream, StreamConfig
from sip.sdp_crypto import SUITES, SrtpKey
from tests.media.jitter_impls import (
    IMPLEMENTATIONS,
    outbound_implementation,
    rss_bytes,
    run_with_switch,
    use_stream_implementation,
)

PEER = ("127.0.0.1", 40000)
SUITE = "AES_CM_128_HMAC_SHA1_80"


class Transport:
    def __init__(self, raises: BaseException | None = None) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.raises = raises

    def sendto(self, data: bytes, addr: Any) -> None:
        if self.raises is not None:
            raise self.raises
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


def make_path(name: str, **config: Any) -> tuple[Any, StreamStats, Transport]:
    cls = outbound_implementation(name)
    stats, latch = StreamStats(), SourceLatch()
    latch.set_sdp(PEER, None)
    path = cls(StreamConfig(telephone_event_pt=101, **config), stats, latch, 7, 100, 1000)
    transport = Transport()
    path.transport = transport
    path.remote_rtp = PEER
    return path, stats, transport


@pytest.fixture(params=IMPLEMENTATIONS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_wrong_types_are_exceptions(name: str) -> None:
    path, stats, transport = make_path(name)
    for payload in ("text", 5, None, 1.5, object()):
        with pytest.raises(TypeError):
            path.send_frame(payload)
    with pytest.raises(TypeError):
        path.send_frame(b"\x00" * 160, False, None, 1.5)  # sent, then the step fails
    with pytest.raises(TypeError):
        path.advance("160")
    with pytest.raises(TypeError):
        path.send_event(b"\x01\x0a\x00\xa0", False, 0.5)
    with pytest.raises(TypeError):
        path.send_frame()
    with pytest.raises(TypeError):
        path.send_frame(b"", False, None, 160, "extra")
    with pytest.raises(TypeError):
        path.send_frame(b"", colour=1)
    with pytest.raises(TypeError):
        path.send_frame(b"", True, marker=True)
    with pytest.raises(TypeError):
        path.send_event(b"")
    # Nothing else was sent or counted than the one frame whose step failed.
    assert stats.packets_sent == 1 and len(transport.sent) == 1 and stats.send_errors == 0


def test_compiled_refusals() -> None:
    """What only the compiled class refuses (documented in _outbound.c)."""
    cls = outbound_implementation("c")
    path, stats, transport = make_path("c")
    for pt in (-1, 128, 2**70):
        with pytest.raises((ValueError, OverflowError)):
            path.send_frame(b"\x00", False, pt)
    assert stats.packets_sent == 0 and not transport.sent
    for field, bad in (("seq", 65536), ("seq", -1), ("ts", 2**32), ("ssrc", 2**40)):
        with pytest.raises(ValueError):
            setattr(path, field, bad)
    for field in ("seq", "ts", "ssrc", "last_send_ts"):
        with pytest.raises(TypeError):
            setattr(path, field, 1.0)
        with pytest.raises(TypeError):
            delattr(path, field)
    for field in ("config", "stats", "latch"):
        with pytest.raises(AttributeError):
            setattr(path, field, None)
    with pytest.raises(TypeError):
        cls(StreamConfig(), object(), SourceLatch(), 1, 2, 3)  # not a StreamStats
    with pytest.raises(ValueError):
        cls(StreamConfig(), StreamStats(), SourceLatch(), 1, 2**16, 3)
    bare = cls.__new__(cls)
    with pytest.raises(RuntimeError):
        bare.send_frame(b"\x00")
    with pytest.raises(RuntimeError):
        bare.send_address  # noqa: B018
    bare.advance(160)  # state only: harmless


def test_huge_payloads(name: str) -> None:
    path, stats, transport = make_path(name)
    big = b"\x55" * (8 << 20)
    path.send_frame(big)
    assert stats.packets_sent == 1 and stats.bytes_sent == len(big)
    data, addr = transport.sent[0]
    assert len(data) == len(big) + 12 and data[12:] == big and addr == PEER
    assert decode_rtp(data).payload == big
    transport.raises = OSError(90, "Message too long")  # what a UDP socket says
    path.send_frame(big)
    assert stats.send_errors == 1 and stats.packets_sent == 1


@pytest.mark.parametrize(
    "error",
    [
        OSError(),
        ConnectionRefusedError(),
        BlockingIOError(),
        PermissionError(),
        ValueError("IPv6 address on an IPv4 socket"),
        SrtpError("x"),
        SrtpAuthError("x"),
    ],
)
def test_send_errors_are_counted(name: str, error: BaseException) -> None:
    path, stats, transport = make_path(name)
    transport.raises = error
    for _ in range(3):
        path.send_frame(b"\x00" * 160)
    assert stats.send_errors == 3 and stats.packets_sent == 0
    assert path.seq == 100 and path.ts == 1000 + 3 * 160 and not path.sent_since_report
    transport.raises = None
    path.send_frame(b"\x00" * 160)
    assert decode_rtp(transport.sent[0][0]).sequence_number == 100


@pytest.mark.parametrize(
    "error",
    [RuntimeError("bug"), TypeError("bug"), KeyError("bug"), KeyboardInterrupt(), SystemExit(3)],
)
def test_other_exceptions_reach_the_caller(name: str, error: BaseException) -> None:
    path, stats, transport = make_path(name)
    transport.raises = error
    with pytest.raises(type(error)):
        path.send_frame(b"\x00" * 160)
    assert stats.send_errors == 0 and stats.packets_sent == 0 and path.seq == 100
    assert path.ts == 1000  # send_frame stopped before moving the timestamp, as the pure one


def test_a_transport_that_closes_the_stream_mid_send(name: str) -> None:
    path, stats, _ = make_path(name)

    class Closing:
        def sendto(self, data: bytes, addr: Any) -> None:
            path.transport = None  # the last reference to this transport
            path.remote_rtp = None

    path.transport = Closing()
    path.send_frame(b"\x00" * 160)
    path.send_frame(b"\x00" * 160)  # nothing: no transport now
    assert stats.packets_sent == 1 and path.seq == 101


def test_counters_changed_or_removed_from_python(name: str) -> None:
    path, stats, _ = make_path(name)
    stats.packets_sent = 1.5  # type: ignore[assignment]
    stats.bytes_sent = 10**30
    path.send_frame(b"\x00" * 160)
    assert stats.packets_sent == 2.5 and stats.bytes_sent == 10**30 + 160
    del stats.bytes_sent
    with pytest.raises(AttributeError):
        path.send_frame(b"\x00" * 160)


def test_rebinding_other_types_is_refused_not_a_crash() -> None:
    cls = outbound_implementation("c")
    from gateway.media import _jitter  # type: ignore[attr-defined]

    path, stats, _ = make_path("c")

    class NotStats:
        packets_sent = 0

    with pytest.raises(TypeError):
        _jitter._bind_outbound(NotStats, SrtpError, 13)
    with pytest.raises(TypeError):
        _jitter._bind_outbound(StreamStats, int, 13)
    with pytest.raises(ValueError):
        _jitter._bind_outbound(StreamStats, SrtpError, 300)
    from dataclasses import dataclass

    @dataclass(slots=True)
    class OtherStats:
        packets_sent: int = 0
        bytes_sent: int = 0
        send_errors: int = 0

    try:
        _jitter._bind_outbound(OtherStats, SrtpError, 13)
        with pytest.raises(TypeError):  # its stats were laid out by the other type
            path.send_frame(b"\x00")
    finally:
        assert outbound._bind_extension() is cls
    path.send_frame(b"\x00")
    assert stats.packets_sent == 1


def test_no_reference_is_leaked() -> None:
    """Payloads, addresses, the transport, SRTP packets and the clock's values through every
    path of the compiled code: sent, refused (no address, direction), counted errors, raised
    errors, SRTP, and the path's death."""
    cls = outbound_implementation("c")
    host = "".join(["127.0.0.", "1"])  # not interned
    addr = (host, 40000)
    latched = (host, 40002)
    payloads = [bytes([i]) * 160 for i in range(50)] + [bytearray(b"\x01" * 40), b""]
    now = 1234.5
    errors = [OSError(), ValueError(), SrtpError("x"), RuntimeError("x")]
    keys = (SrtpKey.generate(SUITES[SUITE]), SrtpKey.generate(SUITES[SUITE]))
    watched = (*payloads[:-1], addr, latched, host, now, *errors)  # b"" is shared
    before = [sys.getrefcount(x) for x in watched]
    stats, latch = StreamStats(), SourceLatch()
    path = cls(StreamConfig(telephone_event_pt=101), stats, latch, 1, 2, 3)
    transport = Transport()
    path.transport, path.remote_rtp, path.clock = transport, addr, lambda: now
    for round_ in range(4):
        path.srtp = SrtpSession(*keys, SUITE) if round_ % 2 else None
        latch.latched = latched if round_ >= 2 else None
        for i, payload in enumerate(payloads):
            path.send_frame(payload, i % 2 == 0)
            path.send_event(payload[:4], True, 160)
            path.send_comfort_noise(payload[:1])
            path.advance(160)
            path.may_send = False
            path.send_frame(payload)
            path.may_send = True
            transport.raises = errors[i % 4]
            try:
                path.send_frame(payload)
            except RuntimeError:
                pass
            transport.raises = None
    assert stats.send_errors and stats.packets_sent > 300
    transport.sent.clear()
    for error in errors:  # their tracebacks hold Transport.sendto's frame (data, addr)
        error.__traceback__ = error.__context__ = None
    del path, transport, stats, latch, payload, error
    gc.collect()
    after = [sys.getrefcount(x) for x in watched]
    assert after == before, [
        (i, b, a) for i, (b, a) in enumerate(zip(before, after, strict=True)) if a != b
    ]


def test_the_stream_is_freed_by_reference_counting(name: str, monkeypatch: Any) -> None:
    """No cycle through the outbound path: an ended call's stream goes with its last reference
    (issue 14), even with the collector off."""
    use_stream_implementation(monkeypatch, name)
    gc.disable()
    try:
        stream = RtpStream(StreamConfig())
        stream._rtp_transport = Transport()  # type: ignore[assignment]
        stream.set_remote(PEER)
        stream._outbound.clock = lambda: 0.0
        stream.send_frame(b"\x00" * 160)
        dead = weakref.ref(stream)
        del stream
        assert dead() is None
    finally:
        gc.enable()


def _sends(path: Any, transport: Transport, count: int) -> None:
    send_frame, send_event, send_cn, advance = (
        path.send_frame,
        path.send_event,
        path.send_comfort_noise,
        path.advance,
    )
    frames = [bytes([i]) * 160 for i in range(7)]
    error = OSError(11, "EAGAIN")
    for i in range(count):
        kind = i % 10
        if kind < 6:
            send_frame(frames[i % 7], kind == 0)
        elif kind == 6:
            send_event(b"\x01\x0a\x00\xa0", True, 160)
        elif kind == 7:
            send_cn(b"\x40")
        elif kind == 8:
            advance(160)
        else:
            transport.raises = error
            send_frame(frames[0])
            transport.raises = None


class CountingTransport(Transport):
    def sendto(self, data: bytes, addr: Any) -> None:
        if self.raises is not None:
            raise self.raises


def test_a_million_sends_leave_memory_flat() -> None:
    cls = outbound_implementation("c")
    stats, latch = StreamStats(), SourceLatch()
    path = cls(StreamConfig(telephone_event_pt=101), stats, latch, 1, 2, 3)
    transport = CountingTransport()
    clock_value = 5.0
    path.transport, path.remote_rtp, path.clock = transport, PEER, lambda: clock_value
    _sends(path, transport, 100_000)  # warm up allocators and freelists
    gc.collect()
    before = rss_bytes()
    _sends(path, transport, 1_000_000)
    gc.collect()
    grown = rss_bytes() - before
    assert stats.packets_sent > 800_000 and stats.send_errors >= 100_000
    assert grown < 4 << 20, f"RSS grew by {grown} bytes over a million sends"


def test_the_stream_uses_the_compiled_path_unless_switched_off() -> None:
    """Under CI=true this fails when the extension is not built; the product uses the compiled
    path unless SRG_PURE_PYTHON forces the pure one, and hands the pacer its methods."""
    compiled = outbound_implementation("c")
    forced = os.environ.get(jitter.PURE_PYTHON_ENV, "") not in ("", "0")
    assert outbound.OutboundPath is (PyOutboundPath if forced else compiled)
    assert outbound.IMPLEMENTATION == jitter.IMPLEMENTATION == ("python" if forced else "c")
    stream = RtpStream()
    assert type(stream._outbound) is outbound.OutboundPath
    assert stream.send_frame.__self__ is stream._outbound  # no stream frame per packet


@pytest.mark.parametrize(("value", "expected"), [("1", "PyOutboundPath"), ("", "OutboundPath")])
def test_pure_python_switch(value: str, expected: str) -> None:
    outbound_implementation("c")
    code = "from gateway.media.stream import RtpStream; print(type(RtpStream()._outbound).__name__)"
    out = run_with_switch(code, value)
    assert out == [expected]


def test_the_pacer_calls_the_outbound_path_directly(name: str, monkeypatch: Any) -> None:
    """MediaLeg.start_output hands CallOutput the outbound path's own methods (no Python frame
    of the stream in between); a recorded call wraps only send_frame."""
    from gateway.media.leg import LegSettings, MediaLeg

    use_stream_implementation(monkeypatch, name)
    leg = MediaLeg(LegSettings(), None, on_dtmf=lambda digit, ms, source: None)
    leg.queue = leg.new_queue("PCMU")
    leg.start_output()
    output, path = leg.output, leg.stream._outbound
    assert output is not None and type(path) is outbound_implementation(name)
    for sender in (output._send_frame, output._send_event, output._send_cn, output._advance):
        assert sender.__self__ is path  # type: ignore[union-attr]
    transport = Transport()
    leg.stream._rtp_transport = transport  # type: ignore[assignment]
    leg.stream.set_remote(PEER)
    output.tick(0, 0.0)
    assert len(transport.sent) == 1 and leg.stream.stats.packets_sent == 1
    leg.stream.close()
