"""RTCP compound packets (RFC 3550 section 6): SR, RR, SDES and BYE, encode and decode.

Other packet types (APP, XR, RTPFB/PSFB feedback) are skipped on decode and reported as
`UnknownRtcp` so a peer's extra reports never break parsing of the ones we use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!QIII")
_REPORT_BLOCK = struct.Struct("!IB3sIIII")
_SSRC = struct.Struct("!I")

# Seconds between the NTP era 0 origin (1900) and the Unix epoch (1970).
NTP_UNIX_OFFSET = 2_208_988_800


class RtcpDecodeError(ValueError):
    """A datagram that is not a well-formed RTCP compound; `str(err)` names the problem."""


@dataclass(slots=True)
class ReportBlock:
    """One reception report block (6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point: lost/expected * 256 over the last interval
    cumulative_lost: int  # signed 24 bit (duplicates can make it negative)
    highest_seq: int  # extended highest sequence number received (cycles << 16 | seq)
    jitter: int  # interarrival jitter in timestamp units (A.8)
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR received, 0 if none
    dlsr: int  # delay since that SR in units of 1/65536 s

    def encode(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.cumulative_lost)) & 0xFFFFFF
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big"),
            self.highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def decode(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost24, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = int.from_bytes(lost24, "big", signed=True)
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)


@dataclass(slots=True)
class SenderReport:
    """SR (6.4.1): what we sent, plus reception reports."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    def encode(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + _SENDER_INFO.pack(
            self.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(r.encode() for r in self.reports)
        return _pack(RTCP_SR, len(self.reports), body)


@dataclass(slots=True)
class ReceiverReport:
    """RR (6.4.2): sent instead of an SR when we have not sent RTP since the last report."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def encode(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + b"".join(r.encode() for r in self.reports)
        return _pack(RTCP_RR, len(self.reports), body)


@dataclass(slots=True)
class SdesChunk:
    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)  # (item type, value)


@dataclass(slots=True)
class SourceDescription:
    """SDES (6.5). Every compound we send carries a CNAME chunk (6.1)."""

    chunks: list[SdesChunk] = field(default_factory=list)

    def encode(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += _SSRC.pack(chunk.ssrc)
            for item_type, value in chunk.items:
                if len(value) > 255:
                    raise ValueError(f"SDES item longer than 255 bytes: {len(value)}")
                body += bytes((item_type, len(value))) + value
            # 6.5: the item list ends with a null octet, then pad the chunk to 32 bits.
            body += b"\x00"
            while len(body) % 4:
                body += b"\x00"
        return _pack(RTCP_SDES, len(self.chunks), bytes(body))

    def cname(self, ssrc: int) -> bytes | None:
        for chunk in self.chunks:
            if chunk.ssrc == ssrc:
                for item_type, value in chunk.items:
                    if item_type == SDES_CNAME:
                        return value
        return None


@dataclass(slots=True)
class Bye:
    """BYE (6.6): the listed sources are leaving; an optional reason."""

    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    def encode(self) -> bytes:
        body = b"".join(_SSRC.pack(s) for s in self.sources)
        if self.reason:
            reason = self.reason[:255]
            body += bytes((len(reason),)) + reason
            body += bytes(-len(body) % 4)
        return _pack(RTCP_BYE, len(self.sources), body)


@dataclass(slots=True)
class UnknownRtcp:
    """A packet type we do not interpret (APP, XR, feedback), kept so callers can count it."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _pack(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError(f"RTCP count field holds at most 31 items, got {count}")
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def encode_compound(packets: list[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound datagram (6.1: the first should be SR or RR)."""
    out = []
    for packet in packets:
        if isinstance(packet, UnknownRtcp):
            out.append(_pack(packet.packet_type, packet.count, packet.body))
        else:
            out.append(packet.encode())
    return b"".join(out)


def decode_compound(data: bytes) -> list[RtcpPacket]:
    """Parse an RTCP compound datagram; raise `RtcpDecodeError` naming the first problem."""
    packets: list[RtcpPacket] = []
    pos = 0
    size = len(data)
    if size < 4:
        raise RtcpDecodeError(f"RTCP packet too short: {size} bytes")
    while pos < size:
        if size - pos < 4:
            raise RtcpDecodeError(f"RTCP trailing {size - pos} bytes are not a packet header")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise RtcpDecodeError(f"RTCP version {first >> 6} is not 2")
        count = first & 0x1F
        start = pos + 4
        end = start + 4 * words
        if end > size:
            raise RtcpDecodeError(
                f"RTCP packet type {packet_type} claims {4 * words} bytes, {size - start} left"
            )
        body = bytes(data[start:end])
        if first & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpDecodeError("RTCP padding length is invalid")
            body = body[: -body[-1]]
        packets.append(_decode_one(packet_type, count, body))
        pos = end
    return packets


def _decode_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        # Profile-specific extensions may follow the report blocks (6.4.1): allow them.
        if len(body) < 24 + 24 * count:
            raise RtcpDecodeError(f"RTCP SR with {count} reports is truncated ({len(body)} bytes)")
        ssrc = _SSRC.unpack_from(body)[0]
        ntp, rtp_ts, pkts, octets = _SENDER_INFO.unpack_from(body, 4)
        reports = [ReportBlock.decode(body, 24 + 24 * i) for i in range(count)]
        return SenderReport(ssrc, ntp, rtp_ts, pkts, octets, reports)
    if packet_type == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtcpDecodeError(f"RTCP RR with {count} reports is truncated ({len(body)} bytes)")
        ssrc = _SSRC.unpack_from(body)[0]
        return ReceiverReport(ssrc, [ReportBlock.decode(body, 4 + 24 * i) for i in range(count)])
    if packet_type == RTCP_SDES:
        return _decode_sdes(body, count)
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtcpDecodeError(f"RTCP BYE with {count} sources is truncated")
        sources = list(struct.unpack_from(f"!{count}I", body)) if count else []
        reason = b""
        pos = 4 * count
        if pos < len(body):
            length = body[pos]
            reason = body[pos + 1 : pos + 1 + length]
            if len(reason) != length:
                raise RtcpDecodeError("RTCP BYE reason is truncated")
        return Bye(sources, reason)
    return UnknownRtcp(packet_type, count, body)


def _decode_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpDecodeError("RTCP SDES chunk is truncated")
        chunk = SdesChunk(_SSRC.unpack_from(body, pos)[0])
        pos += 4
        while True:
            if pos >= len(body):
                # Missing terminator: tolerate it at the very end of the packet.
                break
            item_type = body[pos]
            if item_type == 0:
                pos += 1
                break
            if pos + 2 > len(body):
                raise RtcpDecodeError("RTCP SDES item header is truncated")
            length = body[pos + 1]
            value = body[pos + 2 : pos + 2 + length]
            if len(value) != length:
                raise RtcpDecodeError("RTCP SDES item value is truncated")
            chunk.items.append((item_type, value))
            pos += 2 + length
        pos = (pos + 3) & ~3  # chunks start on a 32-bit boundary
        chunks.append(chunk)
    return SourceDescription(chunks)


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low word)."""
    seconds = int(unix_time) + NTP_UNIX_OFFSET
    fraction = int((unix_time % 1.0) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds & 0xFFFFFFFF) << 32) | fraction


def ntp_middle32(ntp: int) -> int:
    """The LSR field (6.4.1): the middle 32 bits of a 64-bit NTP timestamp."""
    return (ntp >> 16) & 0xFFFFFFFF
