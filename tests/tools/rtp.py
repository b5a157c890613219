"""RTP stream analysis (RFC 3550 sequence and jitter, RFC 4733 digits) and RTP pcap building.

`analyse_streams()` groups captured datagrams by (src, dst, SSRC) and reports what a tester
wants to know about a G.711 stream: sequence errors, packet spacing, interarrival jitter,
payload types and the telephone-event digits. `build_g711_dtmf_packets()` produces the
opposite: what a well-behaved phone sends (one SSRC, continuous sequence numbers, timestamps
locked to a 20 ms send clock) for SIPp's `play_pcap_audio`.
"""

from __future__ import annotations

import itertools
import random
import statistics
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.tools.pcap import UdpDatagram

RTP_VERSION = 2
G711_CLOCK_HZ = 8000
FRAME_MS = 20
FRAME_BYTES = G711_CLOCK_HZ * FRAME_MS // 1000  # 160 bytes of G.711 per 20 ms
PT_PCMU = 0
PT_PCMA = 8
SILENCE_BYTE = {PT_PCMU: 0xFF, PT_PCMA: 0xD5}
# RFC 4733 section 3.2: event codes 0-15 are the DTMF keys.
DTMF_EVENTS = "0123456789*#ABCD"
_RTP_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpHeader:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpHeader | None:
    """Parse a UDP payload as RTP; None when it is not RTP version 2 (or is RTCP)."""
    if len(data) < 12 or data[0] >> 6 != RTP_VERSION:
        return None
    first, second, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
    pt = second & 0x7F
    if 72 <= pt <= 76:
        return None  # RTCP SR/RR/SDES/BYE/APP share the port range when muxed (RFC 5761)
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension (RFC 3550 5.3.1)
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if first & 0x20 and end > offset:  # padding: last byte counts the padding bytes
        end -= data[-1]
    if end < offset:
        return None
    return RtpHeader(pt, bool(second & 0x80), seq, ts, ssrc, data[offset:end])


@dataclass(slots=True)
class StreamStats:
    """What one RTP stream looked like on the wire."""

    src: tuple[str, int]
    dst: tuple[str, int]
    ssrc: int
    packets: int = 0
    payload_types: Counter[int] = field(default_factory=Counter)
    audio_payload_sizes: Counter[int] = field(default_factory=Counter)
    seq_lost: int = 0
    seq_dup: int = 0
    seq_reorder: int = 0
    interval_ms_min: float = 0.0
    interval_ms_mean: float = 0.0
    interval_ms_max: float = 0.0
    jitter_ms_mean: float = 0.0
    jitter_ms_max: float = 0.0
    digits: str = ""
    duration_s: float = 0.0

    @property
    def seq_errors(self) -> int:
        return self.seq_lost + self.seq_dup + self.seq_reorder

    def summary(self) -> str:
        pts = dict(sorted(self.payload_types.items()))
        sizes = dict(sorted(self.audio_payload_sizes.items()))
        return (
            f"{self.src[0]}:{self.src[1]} -> {self.dst[0]}:{self.dst[1]} ssrc=0x{self.ssrc:08x} "
            f"packets={self.packets} duration={self.duration_s:.3f}s pt={pts} sizes={sizes} "
            f"lost={self.seq_lost} dup={self.seq_dup} reorder={self.seq_reorder} "
            f"interval_ms(min/mean/max)={self.interval_ms_min:.3f}/{self.interval_ms_mean:.3f}/"
            f"{self.interval_ms_max:.3f} jitter_ms(mean/max)={self.jitter_ms_mean:.3f}/"
            f"{self.jitter_ms_max:.3f} dtmf={self.digits!r}"
        )


def _extend_sequences(seqs: list[int]) -> list[int]:
    """Unwrap 16-bit sequence numbers (RFC 3550 A.1) into a monotonic-ish integer series."""
    extended: list[int] = []
    highest: int | None = None
    for seq in seqs:
        if highest is None:
            value = seq
        else:
            base = highest & ~0xFFFF
            candidates = (base - 0x10000 + seq, base + seq, base + 0x10000 + seq)
            value = min(candidates, key=lambda c: abs(c - highest))
        extended.append(value)
        highest = value if highest is None else max(highest, value)
    return extended


def _sequence_errors(seqs: list[int]) -> tuple[int, int, int]:
    """(lost, duplicated, reordered) for sequence numbers in arrival order."""
    if not seqs:
        return 0, 0, 0
    extended = _extend_sequences(seqs)
    unique = set(extended)
    lost = max(extended) - min(extended) + 1 - len(unique)
    dup = len(extended) - len(unique)
    reorder = 0
    seen: set[int] = set()
    highest = extended[0] - 1
    for value in extended:
        if value in seen:
            continue
        if value < highest:
            reorder += 1
        seen.add(value)
        highest = max(highest, value)
    return lost, dup, reorder


def decode_digits(events: Iterable[tuple[int, bytes]]) -> str:
    """RFC 4733 digits from (RTP timestamp, payload) of telephone-event packets in order.

    One event is one RTP timestamp (RFC 4733 2.5.1.2: all packets of an event carry the
    timestamp of its start), so updates and the repeated end packets count once.
    """
    digits: list[str] = []
    last_key: tuple[int, int] | None = None
    for timestamp, payload in events:
        if len(payload) < 4:
            continue
        event = payload[0]
        key = (timestamp, event)
        if key == last_key:
            continue
        last_key = key
        digits.append(DTMF_EVENTS[event] if event < len(DTMF_EVENTS) else f"<{event}>")
    return "".join(digits)


def _jitter_series(arrivals: list[float], timestamps: list[int], clock_hz: int) -> list[float]:
    """RFC 3550 6.4.1 interarrival jitter after each packet, in milliseconds."""
    series: list[float] = []
    jitter = 0.0
    previous_transit: float | None = None
    for arrival, timestamp in zip(arrivals, timestamps, strict=True):
        transit = arrival * clock_hz - timestamp
        if previous_transit is not None:
            jitter += (abs(transit - previous_transit) - jitter) / 16.0
            series.append(jitter * 1000.0 / clock_hz)
        previous_transit = transit
    return series


def analyse_streams(
    datagrams: Iterable[UdpDatagram],
    dtmf_payload_types: Iterable[int] = (101,),
    audio_payload_types: Iterable[int] = (PT_PCMU, PT_PCMA),
    clock_hz: int = G711_CLOCK_HZ,
) -> list[StreamStats]:
    """Per-stream statistics for every RTP stream in `datagrams` (in first-seen order).

    Intervals and jitter use audio packets only: telephone-event packets keep one timestamp
    for a whole event and would inflate jitter for a perfect stream.
    """
    dtmf_pts = set(dtmf_payload_types)
    audio_pts = set(audio_payload_types)
    grouped: dict[tuple, list[tuple[float, RtpHeader]]] = {}
    for datagram in datagrams:
        rtp = parse_rtp(datagram.payload)
        if rtp is None:
            continue
        grouped.setdefault((datagram.src, datagram.dst, rtp.ssrc), []).append((datagram.time, rtp))
    results: list[StreamStats] = []
    for (src, dst, ssrc), packets in grouped.items():
        stats = StreamStats(src=src, dst=dst, ssrc=ssrc, packets=len(packets))
        stats.duration_s = packets[-1][0] - packets[0][0]
        stats.payload_types.update(rtp.payload_type for _, rtp in packets)
        stats.seq_lost, stats.seq_dup, stats.seq_reorder = _sequence_errors(
            [rtp.sequence for _, rtp in packets]
        )
        audio = [(t, rtp) for t, rtp in packets if rtp.payload_type in audio_pts]
        stats.audio_payload_sizes.update(len(rtp.payload) for _, rtp in audio)
        if len(audio) >= 2:
            intervals = [(b[0] - a[0]) * 1000.0 for a, b in itertools.pairwise(audio)]
            stats.interval_ms_min = min(intervals)
            stats.interval_ms_max = max(intervals)
            stats.interval_ms_mean = statistics.fmean(intervals)
            jitter = _jitter_series(
                [t for t, _ in audio], [rtp.timestamp for _, rtp in audio], clock_hz
            )
            stats.jitter_ms_mean = statistics.fmean(jitter)
            stats.jitter_ms_max = max(jitter)
        stats.digits = decode_digits(
            (rtp.timestamp, rtp.payload) for _, rtp in packets if rtp.payload_type in dtmf_pts
        )
        results.append(stats)
    return results


@dataclass(frozen=True, slots=True)
class PhoneStreamSpec:
    """How the synthetic phone stream is laid out (defaults: what SIP phones commonly send)."""

    payload_type: int = PT_PCMU
    dtmf_payload_type: int = 101
    ssrc: int = 0x5EED0001
    event_ms: int = 160  # duration of each key press
    end_repeats: int = 3  # RFC 4733 2.5.1.4: the end packet is sent three times
    gap_ms: int = 100  # silence between key presses
    tail_ms: int = 200  # silence after the last key
    volume_dbm0: int = 10


def build_g711_dtmf_packets(
    audio: bytes, digits: str, spec: PhoneStreamSpec = PhoneStreamSpec()
) -> list[tuple[int, bytes]]:
    """(send time in microseconds, RTP packet) for `audio` (G.711 bytes) then RFC 4733 `digits`.

    Timestamps advance with the 20 ms send clock, including during events, so the stream
    is exactly what a phone with a steady clock sends.
    """
    if spec.payload_type not in SILENCE_BYTE:
        raise ValueError(f"payload type {spec.payload_type} is not G.711 (0 or 8)")
    unknown = [d for d in digits.upper() if d not in DTMF_EVENTS]
    if unknown:
        raise ValueError(f"not DTMF keys: {''.join(unknown)!r}")
    silence = bytes([SILENCE_BYTE[spec.payload_type]])
    sequence = random.Random(spec.ssrc).randrange(0, 0x8000)  # RFC 3550 5.1: random start
    timestamp_base = random.Random(spec.ssrc + 1).randrange(0, 0x7FFFFFFF)
    now_us = 0
    packets: list[tuple[int, bytes]] = []

    def emit(pt: int, marker: bool, payload: bytes, timestamp: int) -> None:
        nonlocal sequence
        header = _RTP_HEADER.pack(
            0x80,
            (0x80 if marker else 0) | pt,
            sequence & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            spec.ssrc,
        )
        packets.append((now_us, header + payload))
        sequence += 1

    def media_ts() -> int:
        return timestamp_base + now_us * G711_CLOCK_HZ // 1_000_000

    def play(buf: bytes) -> None:
        nonlocal now_us
        if len(buf) % FRAME_BYTES:
            buf += silence * (FRAME_BYTES - len(buf) % FRAME_BYTES)
        for offset in range(0, len(buf), FRAME_BYTES):
            # RFC 3550 5.1: marker on the first packet of a talkspurt (the stream start).
            emit(spec.payload_type, not packets, buf[offset : offset + FRAME_BYTES], media_ts())
            now_us += FRAME_MS * 1000

    play(audio)
    frames_per_event = max(1, spec.event_ms // FRAME_MS)
    for index, digit in enumerate(digits.upper()):
        code = DTMF_EVENTS.index(digit)
        start_ts = media_ts()
        for frame in range(1, frames_per_event + 1):
            duration = frame * FRAME_BYTES
            last = frame == frames_per_event
            for repeat in range(spec.end_repeats if last else 1):
                flags = (0x80 if last else 0) | (spec.volume_dbm0 & 0x3F)
                payload = struct.pack("!BBH", code, flags, duration)
                emit(spec.dtmf_payload_type, frame == 1 and repeat == 0, payload, start_ts)
                now_us += FRAME_MS * 1000
        if index != len(digits) - 1:
            play(silence * (spec.gap_ms * G711_CLOCK_HZ // 1000))
    if digits:
        play(silence * (spec.tail_ms * G711_CLOCK_HZ // 1000))
    return packets
