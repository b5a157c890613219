"""Classic libpcap files: read UDP datagrams out of a capture, write UDP datagrams into one.

Only what the interop harness needs: tshark writes classic pcap with `-F pcap`, and SIPp's
`play_pcap_audio` reads Ethernet/IPv4/UDP frames. pcapng is rejected with a clear error rather
than misread.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Link-layer types (https://www.tcpdump.org/linktypes.html) whose header we know how to skip.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A
_ETHERTYPE_VLAN = 0x8100
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_IPPROTO_UDP = 17


class PcapError(ValueError):
    """The file is not a capture this reader understands (the message says why)."""


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """One captured UDP datagram: capture time (s), endpoints and the UDP payload."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def _strip_link(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """Return (ethertype, network-layer bytes), or None for frames that carry no IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, 12)
        offset = 14
        if ethertype == _ETHERTYPE_VLAN and len(frame) >= 18:
            (ethertype,) = struct.unpack_from("!H", frame, 16)
            offset = 18
        return ethertype, frame[offset:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_NULL):
        body = frame[4:] if linktype == LINKTYPE_NULL else frame
        if not body:
            return None
        version = body[0] >> 4
        return (_ETHERTYPE_IPV4 if version == 4 else _ETHERTYPE_IPV6), body
    raise PcapError(f"unsupported pcap link type {linktype}")


def _udp_from_ip(ethertype: int, packet: bytes) -> tuple[str, str, bytes] | None:
    """Return (src ip, dst ip, UDP segment) for unfragmented UDP over IPv4/IPv6."""
    if ethertype == _ETHERTYPE_IPV4 and len(packet) >= 20 and packet[0] >> 4 == 4:
        ihl = (packet[0] & 0x0F) * 4
        (total_len,) = struct.unpack_from("!H", packet, 2)
        if packet[9] != _IPPROTO_UDP or len(packet) < ihl + 8:
            return None
        src = str(ipaddress.IPv4Address(packet[12:16]))
        dst = str(ipaddress.IPv4Address(packet[16:20]))
        return src, dst, packet[ihl : max(total_len, ihl + 8)]
    if ethertype == _ETHERTYPE_IPV6 and len(packet) >= 48 and packet[0] >> 4 == 6:
        # Extension headers are not followed: the harness never captures them.
        if packet[6] != _IPPROTO_UDP:
            return None
        src = str(ipaddress.IPv6Address(packet[8:24]))
        dst = str(ipaddress.IPv6Address(packet[24:40]))
        return src, dst, packet[40:]
    return None


def iter_udp(path: str | Path) -> Iterator[UdpDatagram]:
    """Yield every UDP datagram of a classic pcap file, in file order."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise PcapError(f"{path}: too short for a pcap header ({len(data)} bytes)")
    (magic_le,) = struct.unpack_from("<I", data, 0)
    (magic_be,) = struct.unpack_from(">I", data, 0)
    if magic_le == _PCAPNG_SHB:
        raise PcapError(f"{path}: pcapng is not supported, capture with `tshark -F pcap`")
    if magic_le in (_MAGIC_US, _MAGIC_NS):
        endian, magic = "<", magic_le
    elif magic_be in (_MAGIC_US, _MAGIC_NS):
        endian, magic = ">", magic_be
    else:
        raise PcapError(f"{path}: not a pcap file (magic 0x{magic_le:08x})")
    divisor = 1e9 if magic == _MAGIC_NS else 1e6
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, incl_len, _orig_len = struct.unpack_from(endian + "IIII", data, offset)
        offset += 16
        frame = data[offset : offset + incl_len]
        offset += incl_len
        if len(frame) < incl_len:
            break  # truncated last record (capture killed mid-write)
        link = _strip_link(linktype, frame)
        if link is None:
            continue
        udp = _udp_from_ip(*link)
        if udp is None:
            continue
        src_ip, dst_ip, segment = udp
        if len(segment) < 8:
            continue
        sport, dport, udp_len = struct.unpack_from("!HHH", segment, 0)
        payload = segment[8 : max(udp_len, 8)]
        yield UdpDatagram(sec + frac / divisor, (src_ip, sport), (dst_ip, dport), payload)


def read_udp(path: str | Path) -> list[UdpDatagram]:
    return list(iter_udp(path))


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet_udp_frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """An Ethernet/IPv4/UDP frame (UDP checksum 0 = not computed, legal for IPv4)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0xB8,  # DSCP EF, as a phone marks voice
            20 + len(udp),
            0,
            0x4000,  # don't fragment
            64,
            _IPPROTO_UDP,
            0,
            ipaddress.IPv4Address(src[0]).packed,
            ipaddress.IPv4Address(dst[0]).packed,
        )
    )
    struct.pack_into("!H", ip, 10, _ipv4_checksum(bytes(ip)))
    return bytes(12) + struct.pack("!H", _ETHERTYPE_IPV4) + bytes(ip) + udp


def write_udp_pcap(
    path: str | Path,
    datagrams: Iterable[tuple[int, bytes]],
    src: tuple[str, int] = ("127.0.0.1", 40000),
    dst: tuple[str, int] = ("127.0.0.1", 10000),
    start_s: int = 1_700_000_000,
) -> int:
    """Write (time offset in microseconds, UDP payload) pairs as an Ethernet pcap; returns count."""
    count = 0
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for offset_us, payload in datagrams:
            frame = ethernet_udp_frame(payload, src, dst)
            sec, usec = divmod(offset_us, 1_000_000)
            out.write(struct.pack("<IIII", start_s + sec, usec, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count
