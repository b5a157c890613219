"""RTP packets (RFC 3550 section 5.1): decode and encode with `struct`, plus sequence arithmetic.

RTCP lives in `rtcp.py`. Decoding is on the per-packet hot path: one `unpack_from` for the fixed
header and slicing for the rest, no per-packet allocation beyond the dataclass and payload slice.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

_FIXED = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


class RtpDecodeError(ValueError):
    """A datagram that is not a well-formed RTP packet; `str(err)` names the problem."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. `payload` excludes padding; header extensions are skipped on decode.

    `extension` keeps the raw extension (profile, data) so a packet can be re-encoded faithfully,
    but nothing in the gateway interprets it: SIP peers rarely send one and G.711 needs none.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    padding_size: int = 0
    extension: tuple[int, bytes] | None = None

    def encode(self) -> bytes:
        """Serialise to wire bytes. Padding bytes are zero with the count in the last byte (5.1)."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type out of range: {self.payload_type}")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP allows at most 15 CSRCs, got {len(self.csrc)}")
        if not 0 <= self.padding_size <= 255:
            raise ValueError(f"RTP padding size out of range: {self.padding_size}")
        first = (
            (RTP_VERSION << 6)
            | ((1 if self.padding_size else 0) << 5)
            | ((1 if self.extension is not None else 0) << 4)
            | len(self.csrc)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        header = _FIXED.pack(
            first,
            second,
            self.sequence_number & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            self.ssrc & 0xFFFFFFFF,
        )
        if not self.csrc and self.extension is None and not self.padding_size:
            return header + self.payload
        parts = [header]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise ValueError("RTP header extension length must be a multiple of 4 bytes")
            parts.append(_EXT_HEADER.pack(profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)


def encode_rtp_header(
    payload_type: int, marker: bool, sequence_number: int, timestamp: int, ssrc: int
) -> bytes:
    """The 12-byte fixed header only: the outbound fast path (no CSRC, extension or padding)."""
    return _FIXED.pack(
        0x80, (0x80 if marker else 0) | payload_type, sequence_number, timestamp, ssrc
    )


def decode_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram (bytes, as datagram transports deliver); raise `RtpDecodeError`
    naming the problem when malformed."""
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise RtpDecodeError(f"RTP packet too short: {size} bytes < {RTP_HEADER_SIZE}")
    first, second, seq, ts, ssrc = _FIXED.unpack_from(data)
    if first == 0x80:
        # Fast path, what every telephony peer sends: V=2, no padding, extension or CSRC.
        return RtpPacket(second & 0x7F, seq, ts, ssrc, data[12:], second > 0x7F)
    if first >> 6 != RTP_VERSION:
        raise RtpDecodeError(f"RTP version {first >> 6} is not 2")
    cc = first & 0x0F
    pos = RTP_HEADER_SIZE + 4 * cc
    if size < pos:
        raise RtpDecodeError(f"RTP packet truncated in CSRC list ({cc} CSRCs, {size} bytes)")
    csrc: tuple[int, ...] = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
    extension = None
    if first & 0x10:
        # 5.3.1: a 4-byte header (profile, length in 32-bit words) then the data; we skip it.
        if size < pos + 4:
            raise RtpDecodeError("RTP packet truncated in header extension header")
        profile, words = _EXT_HEADER.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if size < end:
            raise RtpDecodeError(f"RTP header extension of {4 * words} bytes is truncated")
        extension = (profile, data[pos:end])
        pos = end
    padding = 0
    end = size
    if first & 0x20:
        # 5.1: the last octet counts the padding octets, itself included.
        padding = data[-1]
        if padding == 0 or padding > size - pos:
            raise RtpDecodeError(f"RTP padding length {padding} is invalid")
        end = size - padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=data[pos:end],
        marker=bool(second & 0x80),
        csrc=csrc,
        padding_size=padding,
        extension=extension,
    )


def looks_like_rtcp(data: bytes) -> bool:
    """RFC 5761 4: RTCP packet types 200-204 land on second-byte values 192-223 only for RTCP
    when the RTP payload types in use avoid 64-95 (they do: 0, 8 and dynamic 96-127)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def seq_delta(newer: int, older: int) -> int:
    """Signed distance newer - older in 16-bit sequence space, in [-32768, 32767]."""
    return ((newer - older + 0x8000) & 0xFFFF) - 0x8000


def ts_delta(newer: int, older: int) -> int:
    """Signed distance newer - older in 32-bit RTP timestamp space."""
    return ((newer - older + 0x80000000) & 0xFFFFFFFF) - 0x80000000
