"""The per-call RTP endpoint: one RTP/RTCP socket pair, latching, jitter buffer, RTCP, stats.

Inbound (one call per datagram into `inbound.py`, compiled in `_inbound.c` where built): datagram
-> `decode_rtp` -> source check (symmetric RTP latching) -> payload-type routing:
telephone-event packets go to the RFC 4733 receiver (`on_dtmf(digit)`), comfort noise only counts
as activity, audio goes to the jitter buffer, and whatever the buffer then has due goes to
`on_audio(frames)` at once (release on arrival: on a clean link packet n leaves as packet n+1
arrives, so the hold is one packet time whatever the call's clock phase). `tick(now)`, which the
process's shared 20 ms media clock (`pacer.MediaClock`) calls for every stream (one staggered
timer for all calls instead of one per call; measurements section 5), releases what a stall or a
reorder left due, and runs RFC 4733 end timeouts, the inactivity check and, every ~5 s, an RTCP
report.

Outbound (`outbound.py`, compiled in `_outbound.c` where built): the pacer's `CallOutput` calls
`send_frame` / `send_event` / `send_comfort_noise` / `advance` once per 20 ms tick; they are the
outbound path's own methods (no stream frame in between), which stamp continuous sequence
numbers and timestamps from random initial values (RFC 3550 5.1), send and count. Received DTMF
has no path to the sending side, so it can never be echoed back to the peer.

Latching (strict, `latch.py`): RTP from the SDP's address is accepted at once; another source
(NAT, an SBC that puts a private address in its SDP: the #1 cause of one-way audio) only after
a few consecutive in-sequence packets with one SSRC, from the SDP's or the SIP signalling's
host. Once latched, every other source is dropped and counted, however long the latched one is
silent; only a re-INVITE/UPDATE that moves the media (`set_remote`) re-opens the latch. RTCP is
accepted only from the latched source. With `latching` (symmetric RTP) on, we send to the
latched source; off, always to the SDP's address (the inbound check is the same).

Rate: audio packets from the latched source pass a token bucket of real time (8000 samples/s)
with `rate_burst_ms` of credit; a flood beyond that is dropped and counted (`dropped_rate`).
Each packet costs its samples, at least 5 ms' worth: 1-byte packets cannot bring 8000
datagrams a second within the budget.

SRTP (RFC 3711, issue 13): with `srtp` set (a gateway.media.srtp.SrtpSession, keyed from the
SDP's a=crypto lines), every datagram is unprotected before anything else looks at it, so a
forged, replayed or plain packet never reaches the latch, the statistics or the jitter buffer: it
is dropped and counted (`srtp_auth_failed`, `srtp_replayed`, `srtp_malformed`); what we send, RTP
and RTCP, is protected last.

Inactivity: no RTP for `inactivity_timeout_s` (default 30 s) while we expect media fires
`on_timeout()` once; it is suspended while the peer holds the call (`set_direction`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.media import rtcp
from gateway.media.dtmf import DtmfDigit, Rfc4733Receiver
from gateway.media.g711 import PCMA, PCMU
from gateway.media.inbound import RELEASE_SLACK_S as RELEASE_SLACK_S  # moved there
from gateway.media.inbound import InboundPath
from gateway.media.jitter import (
    DEFAULT_MAX_DELAY_MS,
    DEFAULT_MIN_DELAY_MS,
    Frame,
    JitterBuffer,
)
from gateway.media.latch import SourceLatch
from gateway.media.negotiated import NegotiatedMedia
from gateway.media.outbound import CN_PAYLOAD_TYPE as CN_PAYLOAD_TYPE  # moved there
from gateway.media.outbound import OutboundPath
from gateway.media.ports import PortAllocator
from gateway.media.rtp import RtpPacket
from gateway.media.srtp import SrtpAuthError, SrtpError, SrtpReplayError, SrtpSession
from gateway.media.stats import StreamStats
from gateway.media.stream_tick import TICK_IMPLEMENTATION as TICK_IMPLEMENTATION
from gateway.media.stream_tick import PyStreamTick as PyStreamTick  # moved there
from gateway.media.stream_tick import StreamTick

if TYPE_CHECKING:
    from gateway.media.pacer import ClockRegistration, MediaClock

log = logging.getLogger(__name__)

STATIC_PT = {PCMU: 0, PCMA: 8}
_BIND_ATTEMPTS = 50
# Stock asyncio's datagram transport calls recvfrom(256 KiB) per datagram: 38 us instead of
# 10 us per packet (measurements section 5). We shrink it on our own transports only (an
# instance attribute, no global monkeypatch); uvloop has no such attribute and needs nothing.
# 8 KiB holds any RTP/RTCP datagram a SIP peer sends (60 ms G.711 is 492 bytes).
_RECV_SIZE = 8192

Address = tuple[str, int]


class NoFreePortError(RuntimeError):
    """No RTP/RTCP port pair could be bound in the configured range (answer the call 503)."""


@dataclass(slots=True)
class StreamConfig:
    codec: str = PCMU
    payload_type: int = 0  # audio PT we send and accept
    telephone_event_pt: int | None = None  # RFC 4733 PT from the SDP, None when not negotiated
    clock_rate: int = 8000
    latching: bool = True
    inactivity_timeout_s: float = 30.0  # 0 disables; read once, when the stream is built
    rtcp_interval_s: float = 5.0  # RFC 3550 6.2 minimum; randomised 0.5-1.5x per report
    latch_packets: int = 3  # in-sequence packets before a source not in the SDP is learned
    latch_any_host: bool = False  # learn sources on any host (not only SDP/signalling host)
    signalling_host: str | None = None  # where the call's SIP came from (a learnable host)
    # Credit of the inbound rate bound, beyond real time: a network stall followed by a
    # burst passes; a sender faster than real time does not (0 disables the bound).
    rate_burst_ms: float = 1000.0
    jitter_min_ms: float = DEFAULT_MIN_DELAY_MS
    jitter_max_ms: float = DEFAULT_MAX_DELAY_MS
    cname: str = field(default_factory=lambda: f"gw-{random.getrandbits(48):012x}")


AudioCallback = Callable[[list[Frame]], None]
DtmfCallback = Callable[[DtmfDigit], None]
TimeoutCallback = Callable[[], None]


class _RtpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_stream",)

    def __init__(self, stream: RtpStream) -> None:
        self._stream = stream

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._stream._on_rtp(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that has not opened its port yet: not fatal.
        self._stream.stats.send_errors += 1


class _RtcpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_stream",)

    def __init__(self, stream: RtpStream) -> None:
        self._stream = stream

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._stream._on_rtcp(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._stream.stats.send_errors += 1


class RtpStream(StreamTick):  # type: ignore[valid-type, misc]
    """One call's RTP/RTCP endpoint. Create, `await open(...)`, `close()` when the call ends."""

    # Slots: the per-packet path reads these, and an instance dict of a class built on a C
    # base is a split-keys dict that CPython 3.11 does not specialise attribute loads for
    # (4 loads measured 112 ns against 35 ns). `__dict__` stays for anything else.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_allocator",
        "_callback_error_logged",
        "_dtmf_receiver",
        "_inbound",
        "_loop_object",
        "_outbound",
        "_registration",
        "_rtcp_source",
        "_rtcp_transport",
        "_srtp",
        "_wallclock",
        "advance",
        "config",
        "latch",
        "local_port",
        "on_audio",
        "on_dtmf",
        "on_timeout",
        "remote_rtcp",
        "send_comfort_noise",
        "send_event",
        "send_frame",
        "stats",
    )

    def __init__(
        self,
        config: StreamConfig | None = None,
        *,
        on_audio: AudioCallback | None = None,
        on_dtmf: DtmfCallback | None = None,
        on_timeout: TimeoutCallback | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else StreamConfig()
        # The tick's state (PyStreamTick documents it) first: properties below write it.
        self._closed = False
        self._time = None
        self.output_tick = None
        self.after_tick = None
        self.tick_watch = None
        self._activity_since = 0.0
        self._timed_out = False
        self._expect_media = True
        self._next_rtcp = 0.0
        self._dtmf_deadline = math.inf
        self._inactivity_timeout = self.config.inactivity_timeout_s
        self.on_audio = on_audio
        self.on_dtmf = on_dtmf
        self.on_timeout = on_timeout
        self._wallclock = wallclock
        self.stats = StreamStats()
        self.jitter = JitterBuffer(
            self.config.codec,
            min_delay_ms=self.config.jitter_min_ms,
            max_delay_ms=self.config.jitter_max_ms,
            clock_rate=self.config.clock_rate,
        )
        self.dtmf = None
        if self.config.telephone_event_pt is not None:
            self.dtmf = Rfc4733Receiver(
                self.config.telephone_event_pt, clock_rate=self.config.clock_rate
            )
        # Addresses.
        self.remote_rtcp: Address | None = None
        self._rtcp_source: Address | None = None  # where accepted RTCP came from
        self.latch = SourceLatch(
            self.config.latch_packets,
            signalling_host=self.config.signalling_host,
            any_host=self.config.latch_any_host,
        )
        # Inbound state: rate bound, RFC 3550 reception statistics, counters (inbound.py; the
        # compiled twin where the extension is built).
        self._inbound = InboundPath(self.config, self.stats, self.latch)
        # Outbound state: SSRC, sequence number and media timestamp (RFC 3550 5.1: random
        # initial values), what the next SR needs, the send address, direction, transport and
        # SRTP session (outbound.py; the compiled twin where the extension is built). Its
        # methods are the stream's: the pacer calls them with no stream frame in between.
        out = OutboundPath(
            self.config,
            self.stats,
            self.latch,
            random.getrandbits(32),
            random.getrandbits(16),
            random.getrandbits(32),
        )
        self._outbound = out
        self.send_frame = out.send_frame
        self.send_event = out.send_event
        self.send_comfort_noise = out.send_comfort_noise
        self.advance = out.advance
        # I/O.
        self._loop = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._allocator: PortAllocator | None = None
        self.local_port: int | None = None
        self._registration: ClockRegistration | None = None
        self._callback_error_logged = False
        self._srtp: SrtpSession | None = None  # see the `srtp` property

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, allocator: PortAllocator, host: str = "0.0.0.0") -> int:
        """Bind an even RTP port and RTP+1 for RTCP from `allocator`; return the RTP port."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        host = host.strip("[]")  # "[::1]" as written in SIP/SDP
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(min(_BIND_ATTEMPTS, allocator.capacity)):
            port = allocator.allocate()
            if port is None:
                break
            try:
                rtp_transport, _ = await loop.create_datagram_endpoint(
                    lambda: _RtpProtocol(self), local_addr=(host, port), family=family
                )
            except OSError:
                allocator.release(port, failed=True)
                continue
            try:
                rtcp_transport, _ = await loop.create_datagram_endpoint(
                    lambda: _RtcpProtocol(self), local_addr=(host, port + 1), family=family
                )
            except OSError:
                rtp_transport.close()
                allocator.release(port, failed=True)
                continue
            for transport in (rtp_transport, rtcp_transport):
                if hasattr(transport, "max_size"):
                    transport.max_size = _RECV_SIZE  # type: ignore[attr-defined]
            self._rtp_transport = rtp_transport
            self._outbound.clock = loop.time
            self._rtcp_transport = rtcp_transport
            self._allocator = allocator
            self.local_port = port
            now = loop.time()
            self._activity_since = now
            self._schedule_rtcp(now)
            return port
        raise NoFreePortError(
            f"no free RTP port pair in {allocator.port_min}-{allocator.port_max} on {host}"
        )

    def start(self, clock: MediaClock) -> None:
        """Drive the inbound side from the shared media clock (one tick per 20 ms)."""
        if self._registration is None:
            self._registration = clock.register(self._on_clock)

    def close(self, reason: str = "") -> None:
        """Send RTCP BYE, close both sockets, release the ports into quarantine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._registration is not None:
            self._registration.cancel()
            self._registration = None
        if self._rtcp_transport is not None and self._loop is not None:
            self._send_rtcp(self._loop.time(), bye_reason=reason or "call ended")
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._rtp_transport = self._rtcp_transport = None
        if self._allocator is not None and self.local_port is not None:
            self._allocator.release(self.local_port)
            self._allocator = None
        # The owner's callbacks are (bound methods of) objects that own this stream: dropped,
        # so the ended call is freed by reference counting (issue 14). A datagram still queued
        # for the closed transport finds `_closed` and no callbacks.
        self.on_audio = None
        self.on_dtmf = None
        self.on_timeout = None
        self.output_tick = None
        self.after_tick = None
        self.tick_watch = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def _loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop_object

    @_loop.setter
    def _loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        # The tick reads the loop's time through `_time` (one attribute, a C field where built).
        self._loop_object = loop
        self._time = loop.time if loop is not None else None

    @property
    def dtmf(self) -> Rfc4733Receiver | None:
        """The RFC 4733 receiver (None: telephone-event not negotiated)."""
        return self._dtmf_receiver

    @dtmf.setter
    def dtmf(self, receiver: Rfc4733Receiver | None) -> None:
        self._dtmf_receiver = receiver
        self._refresh_dtmf_deadline()

    def _refresh_dtmf_deadline(self) -> None:
        """What the tick compares with: the receiver's next end deadline while an event is
        open, else never. Called wherever the receiver's open events change (feed, poll)."""
        dtmf = self._dtmf_receiver
        deadline = dtmf.next_deadline if dtmf is not None and dtmf.open_events else None
        self._dtmf_deadline = math.inf if deadline is None else deadline

    # -- negotiation -------------------------------------------------------------------------

    def set_remote(self, rtp: Address | None, rtcp_addr: Address | None = None) -> None:
        """Remote address from the SDP (None or port 0: unknown/held). A new address (a
        re-INVITE moving the media) re-opens the latch; hold and resume to the same address
        keep it (latch.py)."""
        if rtp is not None and (rtp[1] == 0 or rtp[0] in ("0.0.0.0", "::")):
            rtp = None  # RFC 3264 8.4 / RFC 2543 hold: no destination
        self.remote_rtp = rtp
        if rtcp_addr is None and rtp is not None:
            rtcp_addr = (rtp[0], rtp[1] + 1)
        self.remote_rtcp = rtcp_addr if rtp is not None else None
        self.latch.set_sdp(rtp, self.remote_rtcp)
        if self.latch.latched is None:
            self._rtcp_source = None

    def set_direction(
        self, direction: str, on_hold: bool = False, now: float | None = None
    ) -> None:
        """Our negotiated direction (sendrecv/sendonly/recvonly/inactive, as in `NegotiatedMedia`).
        While the peer holds us (`on_hold`) or we do not receive, inactivity is not counted;
        on resume the timeout counts from `now` (default: the loop's time)."""
        if direction not in ("sendrecv", "sendonly", "recvonly", "inactive"):
            raise ValueError(f"unknown media direction {direction!r}")
        self._outbound.may_send = direction in ("sendrecv", "sendonly")
        expect = direction in ("sendrecv", "recvonly") and not on_hold
        if expect and not self._expect_media:
            if now is None and self._loop is not None:
                now = self._loop.time()
            if now is not None:
                self._activity_since = now
            self._timed_out = False
        self._expect_media = expect

    def set_codec(self, codec: str, payload_type: int) -> None:
        """The negotiated audio codec and PT (known only after the port was bound, and may
        change on a re-INVITE). Buffer state and media time carry on; only the PT accepted and
        sent and the concealment silence byte change."""
        self.jitter.set_codec(codec)  # validates the codec name
        self.config.codec = codec
        self.config.payload_type = payload_type

    def apply_media_info(self, media: NegotiatedMedia) -> None:
        """Take the negotiated codec, remote address, direction and telephone-event PT."""
        if media.codec != self.config.codec or media.payload_type != self.config.payload_type:
            self.set_codec(media.codec, media.payload_type)
        self.set_remote(
            (media.remote_host, media.remote_port), (media.remote_host, media.remote_rtcp_port)
        )
        self.set_direction(media.direction, media.on_hold)
        if media.telephone_event_pt != self.config.telephone_event_pt:
            self.config.telephone_event_pt = media.telephone_event_pt
            self.dtmf = (
                Rfc4733Receiver(media.telephone_event_pt, clock_rate=self.config.clock_rate)
                if media.telephone_event_pt is not None
                else None
            )

    @property
    def send_address(self) -> Address | None:
        """Where RTP goes: the latched source when latching is on and latched, else the SDP;
        nowhere while the SDP gives no address (hold with c=0.0.0.0)."""
        return self._outbound.send_address

    # -- state the outbound path holds (outbound.py) -----------------------------------------

    @property
    def ssrc(self) -> int:
        """Our SSRC (RTP and RTCP)."""
        return self._outbound.ssrc

    @property
    def remote_rtp(self) -> Address | None:
        """The SDP's RTP address (None: unknown or held); see `set_remote`."""
        return self._outbound.remote_rtp

    @remote_rtp.setter
    def remote_rtp(self, rtp: Address | None) -> None:
        self._outbound.remote_rtp = rtp

    @property
    def srtp(self) -> SrtpSession | None:
        """The call's SRTP session (set when the call negotiated SRTP), both directions."""
        return self._srtp

    @srtp.setter
    def srtp(self, session: SrtpSession | None) -> None:
        self._srtp = session
        self._outbound.srtp = session

    @property
    def _rtp_transport(self) -> asyncio.DatagramTransport | None:
        return self._outbound.transport  # type: ignore[no-any-return]

    @_rtp_transport.setter
    def _rtp_transport(self, transport: asyncio.DatagramTransport | None) -> None:
        self._outbound.transport = transport

    # -- outbound: send_frame, send_event, send_comfort_noise, advance -----------------------
    # Bound in __init__ to the outbound path's methods (outbound.py documents them), called by
    # pacer.CallOutput once per 20 ms tick.
    send_frame: Callable[..., None]
    send_event: Callable[[bytes, bool, int], None]
    send_comfort_noise: Callable[[bytes], None]
    advance: Callable[[int], None]

    # -- inbound -----------------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr: Any) -> None:
        loop = self._loop
        now = loop.time() if loop is not None else time.monotonic()
        self.receive_rtp(data, addr, now)

    def receive_rtp(self, data: bytes, addr: Any, now: float) -> None:
        """One datagram from the RTP socket (public so tests can feed it with a fake clock)."""
        srtp = self._srtp
        if srtp is not None:
            try:
                data = srtp.unprotect_rtp(data)
            except SrtpError as exc:
                self._srtp_dropped(exc)
                return
        # Decode, source check, routing, rate bound, statistics, jitter buffer: one call.
        result = self._inbound.receive(data, addr, now, self.jitter)
        if result is None:
            return  # malformed, or not the accepted source (counted)
        self._activity_since = now
        self._timed_out = False
        if result.__class__ is list:
            if result and self.on_audio is not None:
                try:
                    self.on_audio(result)
                except Exception:
                    self._log_callback_error("on_audio")
            return
        self._receive_other(result, now)

    def _receive_other(self, packet: RtpPacket, now: float) -> None:
        """A packet from the accepted source that is not the audio PT: RFC 4733, CN or unknown
        (already counted in the reception statistics by the inbound path)."""
        stats = self.stats
        pt = packet.payload_type
        if pt == self.config.telephone_event_pt and self.dtmf is not None:
            stats.dtmf_packets += 1
            digits = self.dtmf.feed(
                packet.payload,
                packet.timestamp,
                packet.marker,
                packet.sequence_number,
                packet.ssrc,
                now,
            )
            self._refresh_dtmf_deadline()
            if digits:
                self._deliver_dtmf(digits)
            return
        if pt == CN_PAYLOAD_TYPE:
            return  # RFC 3389: the peer is silent; the jitter buffer fills the gap later
        stats.dropped_unknown_pt += 1

    def _deliver_dtmf(self, digits: list[DtmfDigit]) -> None:
        if self.on_dtmf is None:
            return
        for digit in digits:
            try:
                self.on_dtmf(digit)
            except Exception:
                self._log_callback_error("on_dtmf")

    # -- the tick's Python work (PyStreamTick / StreamTickCore call these when it is due) -----

    def _release(self, frames: list[Frame]) -> None:
        """Frames the jitter buffer released at a tick (a stall or a reorder left them due)."""
        if self.on_audio is not None:
            try:
                self.on_audio(frames)
            except Exception:
                self._log_callback_error("on_audio")

    def _dtmf_due(self, now: float) -> None:
        """An RFC 4733 event is open and its end deadline passed."""
        dtmf = self.dtmf
        if dtmf is not None:
            digits = dtmf.poll(now)
            self._refresh_dtmf_deadline()
            if digits:
                self._deliver_dtmf(digits)

    def _timeout_due(self) -> None:
        """No RTP for inactivity_timeout_s while we expect media (`_timed_out` is already set)."""
        if self.on_timeout is not None:
            try:
                self.on_timeout()
            except Exception:
                self._log_callback_error("on_timeout")

    def _rtcp_due(self, now: float) -> None:
        self._send_rtcp(now)
        self._schedule_rtcp(now)

    def _log_callback_error(self, name: str) -> None:
        # Once per stream: a consumer bug must not flood the log at 50 packets a second.
        if not self._callback_error_logged:
            self._callback_error_logged = True
            log.exception("rtp stream callback %s failed", name)

    # -- RTCP --------------------------------------------------------------------------------

    def _schedule_rtcp(self, now: float) -> None:
        # RFC 3550 6.2/6.3.5: randomise each interval over [0.5, 1.5] x the nominal value so
        # reports of many streams do not synchronise.
        self._next_rtcp = now + self.config.rtcp_interval_s * random.uniform(0.5, 1.5)

    def build_report(self, now: float, bye_reason: str | None = None) -> bytes:
        """The compound we send: SR (or RR when we sent nothing since the last report), SDES
        CNAME (6.1 requires it in every compound), and BYE when closing."""
        blocks = []
        block = self._inbound.report_block(now)
        if block is not None:
            blocks.append(block)
        packets: list[rtcp.RtcpPacket] = []
        out = self._outbound
        ssrc = out.ssrc
        if out.sent_since_report:
            rtp_ts = out.last_send_ts
            last_send_time = out.last_send_time
            if last_send_time is not None:
                elapsed = max(0.0, now - last_send_time)
                rtp_ts = (rtp_ts + int(elapsed * self.config.clock_rate)) & 0xFFFFFFFF
            packets.append(
                rtcp.SenderReport(
                    ssrc=ssrc,
                    ntp_timestamp=rtcp.ntp_timestamp(self._wallclock()),
                    rtp_timestamp=rtp_ts,
                    packet_count=self.stats.packets_sent,
                    octet_count=self.stats.bytes_sent,
                    reports=blocks,
                )
            )
        else:
            packets.append(rtcp.ReceiverReport(ssrc, blocks))
        out.sent_since_report = False
        packets.append(
            rtcp.SourceDescription(
                [rtcp.SdesChunk(ssrc, [(rtcp.SDES_CNAME, self.config.cname.encode())])]
            )
        )
        if bye_reason is not None:
            packets.append(rtcp.Bye([ssrc], bye_reason.encode()[:255]))
        return rtcp.encode_compound(packets)

    def _send_rtcp(self, now: float, bye_reason: str | None = None) -> None:
        transport = self._rtcp_transport
        addr = (self.config.latching and self._rtcp_source) or self.remote_rtcp
        if transport is None or addr is None or self.remote_rtp is None:
            return
        try:
            report = self.build_report(now, bye_reason)
            srtp = self._srtp
            if srtp is not None:
                report = srtp.protect_rtcp(report)
            transport.sendto(report, addr)
        except (OSError, ValueError, SrtpError):  # as in _send
            self.stats.send_errors += 1
            return
        self.stats.rtcp_sent += 1

    def _on_rtcp(self, data: bytes, addr: Any) -> None:
        loop = self._loop
        self.receive_rtcp(data, addr, loop.time() if loop is not None else time.monotonic())

    def receive_rtcp(self, data: bytes, addr: Any, now: float) -> None:
        stats = self.stats
        srtp = self._srtp
        if srtp is not None:
            try:
                data = srtp.unprotect_rtcp(data)
            except SrtpError as exc:
                self._srtp_dropped(exc)
                return
        try:
            packets = rtcp.decode_compound(data)
        except rtcp.RtcpDecodeError:
            stats.rtcp_malformed += 1
            return
        if not self.latch.check_rtcp(addr):
            stats.rtcp_dropped_foreign += 1
            return
        self._rtcp_source = (addr[0], addr[1])
        stats.rtcp_received += 1
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                self._inbound.on_sender_report(
                    packet.ssrc, rtcp.ntp_middle32(packet.ntp_timestamp), now
                )
                self._read_blocks(packet.reports)
            elif isinstance(packet, rtcp.ReceiverReport):
                self._read_blocks(packet.reports)

    def _srtp_dropped(self, exc: SrtpError) -> None:
        stats = self.stats
        if isinstance(exc, SrtpReplayError):
            stats.srtp_replayed += 1
        elif isinstance(exc, SrtpAuthError):
            stats.srtp_auth_failed += 1
        else:
            stats.srtp_malformed += 1

    def _read_blocks(self, blocks: list[rtcp.ReportBlock]) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            stats = self.stats
            stats.remote_fraction_lost = block.fraction_lost / 256.0
            stats.remote_cumulative_lost = block.cumulative_lost
            stats.remote_jitter_ms = block.jitter * 1000.0 / self.config.clock_rate
            if block.lsr:
                # RFC 3550 6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s units.
                arrival = rtcp.ntp_middle32(rtcp.ntp_timestamp(self._wallclock()))
                rtt = (arrival - block.lsr - block.dlsr) & 0xFFFFFFFF
                if rtt < 0x80000000:
                    stats.round_trip_ms = rtt * 1000.0 / 65536.0

    # -- statistics --------------------------------------------------------------------------

    def snapshot(self) -> StreamStats:
        """Bring derived counters (loss, jitter, buffer counts) up to date and return them."""
        stats = self.stats
        jb = self.jitter.stats
        inbound = self._inbound
        stats.lost = inbound.lost
        jitter_ms = inbound.jitter_ms
        if jitter_ms is not None:
            stats.jitter_ms = jitter_ms
        stats.duplicated = jb.duplicates
        stats.reordered = jb.reordered
        stats.late = jb.late
        stats.concealed = jb.concealed_frames
        stats.concealed_ms = jb.concealed_samples * 1000.0 / self.config.clock_rate
        stats.sequence_resyncs = jb.resyncs
        stats.concealment_skipped = jb.conceal_skipped
        stats.jitter_overflow = jb.overflow
        stats.relatched = max(self.latch.latches - 1, 0)
        return stats
