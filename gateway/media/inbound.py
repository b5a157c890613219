"""One stream's inbound RTP path, from datagram to released frames, in one call (issue 14).

`receive(data, addr, now, jitter)` does, per datagram: RTP decode, the latched-source check
(`latch.py`; a source not yet latched goes through `SourceLatch.check_rtp`), the payload-type
routing, the inbound rate bound (token bucket of real time), RFC 3550 reception statistics
(A.1 sequence tracking, A.3 loss, A.8 jitter: `stats.ReceptionStats`) with the SSRC-change and
previous-source straggler rules, the largest-gap and packet/byte counters in the stream's
`StreamStats`, the jitter buffer push and the release on arrival. It answers:

- None: dropped before the source was accepted (malformed, foreign source, probation);
- a list of frames (possibly empty): an audio packet of the accepted source, what is now due;
- an `RtpPacket`: a packet of the accepted source with another payload type (RFC 4733 event,
  comfort noise, unknown), already counted in the reception statistics; the stream routes it.

`stream.py` keeps what needs Python objects of the call: SRTP (before this), the activity clock
and inactivity timeout, the RFC 4733 receiver and the callbacks.

As websockets ships its C speedups: `_inbound.c` in the extension `gateway.media._jitter` is the
compiled twin of `PyInboundPath`, used with the compiled jitter buffer wherever the extension is
built and SRG_PURE_PYTHON is not set (`jitter.IMPLEMENTATION`); tests/media/test_inbound_parity.py
holds the two to identical results, statistics and RTCP report blocks on the same datagrams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.media import jitter as _jitter_module
from gateway.media.jitter import Frame
from gateway.media.latch import FOREIGN, SourceLatch
from gateway.media.rtcp import ReportBlock
from gateway.media.rtp import RtpDecodeError, RtpPacket, decode_rtp
from gateway.media.stats import ReceptionStats, StreamStats

if TYPE_CHECKING:
    from gateway.media.stream import StreamConfig

# A frame due within this much of a packet's arrival leaves with it: uvloop's loop.time() has
# 1 ms resolution, so "due exactly now" would otherwise wait for the next tick.
RELEASE_SLACK_S = 0.001


class PyInboundPath:
    """The pure-Python inbound path; `InboundPath` (below) is the compiled twin when built.

    `config` is read on every packet (`payload_type`, `clock_rate`: a re-INVITE changes the PT);
    `stats` and `latch` are the stream's own objects, updated in place."""

    __slots__ = (
        "_config",
        "_last_audio_rx",
        "_latch",
        "_lost_retired_sources",
        "_rate_at",
        "_rate_capacity",
        "_rate_min_cost",
        "_rate_tokens",
        "_stats",
        "previous_reception",
        "reception",
    )

    def __init__(self, config: StreamConfig, stats: StreamStats, latch: SourceLatch) -> None:
        self._config = config
        self._stats = stats
        self._latch = latch
        # Token bucket, in samples: `rate_burst_ms` of credit beyond real time.
        self._rate_capacity = float(config.rate_burst_ms) * config.clock_rate / 1000.0
        # Each packet costs at least 5 ms of audio: tiny packets (1 byte of G.711 each) cannot
        # multiply the per-packet work up to 8000 datagrams a second within the byte budget.
        self._rate_min_cost = max(config.clock_rate // 200, 1)
        self._rate_tokens = self._rate_capacity
        self._rate_at: float | None = None
        self.reception: ReceptionStats | None = None
        self.previous_reception: ReceptionStats | None = None  # the source before an SSRC change
        self._lost_retired_sources = 0  # A.3 loss of the sources before that
        self._last_audio_rx: float | None = None

    def receive(self, data: bytes, addr: Any, now: float, jitter: Any) -> Any:
        """One datagram (plain RTP): None, a list of released frames, or an RtpPacket of
        another payload type (see the module docstring)."""
        stats = self._stats
        try:
            packet = decode_rtp(data)
        except RtpDecodeError:
            stats.dropped_malformed += 1
            return None
        latched = self._latch.latched
        if latched is None or latched[1] != addr[1] or latched[0] != addr[0]:
            # Not the latched source (the per-packet case is the compare above, inlined).
            verdict = self._latch.check_rtp(addr, packet.ssrc, packet.sequence_number)
            if verdict:
                if verdict == FOREIGN:
                    stats.dropped_foreign_source += 1
                else:
                    stats.dropped_probation += 1
                return None
        config = self._config
        if packet.payload_type != config.payload_type:
            reception = self.reception
            if reception is not None and reception.ssrc == packet.ssrc:
                # Events and CN share the audio's sequence space when sent from one SSRC.
                reception.on_packet(packet.sequence_number, packet.timestamp, now, timing=False)
            return packet
        payload = packet.payload
        size = len(payload)
        capacity = self._rate_capacity
        if capacity > 0:
            # Token bucket of real time: samples = payload bytes (G.711).
            tokens = self._rate_tokens
            last = self._rate_at
            if last is not None and now > last:
                tokens += (now - last) * config.clock_rate
                if tokens > capacity:
                    tokens = capacity
            self._rate_at = now
            cost = size if size > self._rate_min_cost else self._rate_min_cost
            if tokens < cost:
                self._rate_tokens = tokens
                stats.dropped_rate += 1
                return []
            self._rate_tokens = tokens - cost
        reception = self.reception
        if reception is None or reception.ssrc != packet.ssrc:
            previous_source = self.previous_reception
            if previous_source is not None and previous_source.ssrc == packet.ssrc:
                # In flight from the source we just left: account it there, no switch back
                # (the jitter buffer drops it as late).
                reception = previous_source
            else:
                if reception is not None:
                    stats.ssrc_changes += 1
                    if previous_source is not None:
                        self._lost_retired_sources += max(previous_source.lost, 0)
                    self.previous_reception = reception
                reception = self.reception = ReceptionStats(
                    packet.ssrc, packet.sequence_number, config.clock_rate
                )
        reception.on_packet(packet.sequence_number, packet.timestamp, now)
        previous = self._last_audio_rx
        if previous is not None:
            gap_ms = (now - previous) * 1000.0
            if gap_ms > stats.largest_gap_ms:
                stats.largest_gap_ms = gap_ms
        self._last_audio_rx = now
        stats.packets_received += 1
        stats.bytes_received += size
        jitter.push(packet, now)
        # Release on arrival (issue 14): on a clean link packet n becomes due as packet n+1
        # arrives, so waiting for the clock tick would add up to one more packet time of hold.
        # The tick still releases what a stalled or reordering link leaves due.
        frames: list[Frame] = jitter.pop_ready(now + RELEASE_SLACK_S)
        return frames

    def report_block(self, now: float) -> ReportBlock | None:
        """The RTCP report block about the current source (None before any audio); advances
        the A.3 'since last report' interval."""
        return self.reception.report_block(now) if self.reception is not None else None

    def on_sender_report(self, ssrc: int, ntp_middle32: int, arrival: float) -> None:
        """An SR from the current source: its LSR and arrival, for our DLSR."""
        if self.reception is not None and ssrc == self.reception.ssrc:
            self.reception.on_sender_report(ntp_middle32, arrival)

    @property
    def lost(self) -> int:
        """A.3 cumulative loss summed over the sources of the call (never below 0 each)."""
        lost = self._lost_retired_sources
        if self.previous_reception is not None:
            lost += max(self.previous_reception.lost, 0)
        if self.reception is not None:
            lost += max(self.reception.lost, 0)
        return lost

    @property
    def jitter_ms(self) -> float | None:
        """A.8 interarrival jitter of the current source (None before any audio)."""
        return self.reception.jitter.jitter_ms if self.reception is not None else None

    @property
    def source_ssrc(self) -> int | None:
        return self.reception.ssrc if self.reception is not None else None


# -- the implementation in use -------------------------------------------------------------------
# The compiled twin lives in the jitter buffer's extension (it pushes into the compiled buffer
# without Python calls), so one switch selects both: jitter.IMPLEMENTATION.
def _bind_extension() -> type[PyInboundPath] | None:
    """The compiled class, bound to the Python objects it builds and updates, or None."""
    return _jitter_module.compiled_twin(  # type: ignore[no-any-return]
        "InboundPath",
        "_bind_inbound",
        decode_rtp,
        RtpPacket,
        ReportBlock,
        StreamStats,
        FOREIGN,
        RELEASE_SLACK_S,
    )


# "c" or "python"; differs from jitter.IMPLEMENTATION only with an extension built from sources
# older than _inbound.c (then the buffer is compiled and this path pure).
InboundPath, IMPLEMENTATION = _jitter_module.select_twin(PyInboundPath, _bind_extension)
