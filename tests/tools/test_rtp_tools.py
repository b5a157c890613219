"""The harness's own measuring tools must be right before they judge the gateway."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.tools.pcap import PcapError, UdpDatagram, read_udp, write_udp_pcap
from tests.tools.rtp import (
    FRAME_BYTES,
    PhoneStreamSpec,
    analyse_streams,
    build_g711_dtmf_packets,
    decode_digits,
    parse_rtp,
)

SRC = ("127.0.0.1", 40000)
DST = ("127.0.0.1", 10000)


def _rtp(seq: int, ts: int, pt: int = 0, payload: bytes = b"\xff" * FRAME_BYTES) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, 0xABCD) + payload


def _datagrams(items: list[tuple[float, bytes]]) -> list[UdpDatagram]:
    return [UdpDatagram(t, SRC, DST, p) for t, p in items]


def test_phone_stream_round_trips_through_pcap(tmp_path: Path) -> None:
    audio = bytes(range(256)) * 25  # 6400 bytes = 40 frames
    packets = build_g711_dtmf_packets(audio, "123#")
    path = tmp_path / "phone.pcap"
    assert write_udp_pcap(path, packets, SRC, DST) == len(packets)
    datagrams = read_udp(path)
    assert [d.payload for d in datagrams] == [p for _, p in packets]
    assert datagrams[1].time - datagrams[0].time == pytest.approx(0.020, abs=1e-6)
    (stats,) = analyse_streams(datagrams)
    # 40 audio frames + per digit 8 event packets + 2 extra end packets; silence between.
    spec = PhoneStreamSpec()
    events_per_digit = spec.event_ms // 20 + spec.end_repeats - 1
    assert stats.payload_types[101] == 4 * events_per_digit
    assert stats.audio_payload_sizes == {FRAME_BYTES: stats.payload_types[0]}
    assert (stats.seq_lost, stats.seq_dup, stats.seq_reorder) == (0, 0, 0)
    assert stats.digits == "123#"
    assert stats.interval_ms_min == pytest.approx(20.0, abs=1e-3)
    assert stats.jitter_ms_max == pytest.approx(0.0, abs=1e-3)
    assert stats.src == SRC and stats.dst == DST


def test_audio_payload_is_carried_verbatim() -> None:
    audio = bytes(range(160)) * 3
    packets = build_g711_dtmf_packets(audio, "")
    payloads = [parse_rtp(p) for _, p in packets]
    assert b"".join(r.payload for r in payloads if r) == audio
    assert payloads[0] is not None and payloads[0].marker
    assert all(r is not None and not r.marker for r in payloads[1:])


def test_sequence_errors_are_counted_across_wrap() -> None:
    seqs = [65533, 65534, 65535, 0, 2, 1, 2, 4]  # 3 missing, 1 and 2 reordered/duplicated
    items = [(i * 0.02, _rtp(s, i * 160)) for i, s in enumerate(seqs)]
    (stats,) = analyse_streams(_datagrams(items))
    assert stats.seq_lost == 1  # only 3 never arrived
    assert stats.seq_dup == 1
    assert stats.seq_reorder == 1


def test_jitter_and_intervals_reflect_late_packets() -> None:
    # Every other packet 5 ms late: RFC 3550 jitter converges towards 5 ms.
    items = [(i * 0.02 + (0.005 if i % 2 else 0.0), _rtp(i, i * 160)) for i in range(200)]
    (stats,) = analyse_streams(_datagrams(items))
    assert stats.interval_ms_min == pytest.approx(15.0, abs=1e-6)
    assert stats.interval_ms_max == pytest.approx(25.0, abs=1e-6)
    assert stats.interval_ms_mean == pytest.approx(20.0, abs=0.1)
    assert 3.0 < stats.jitter_ms_mean < 5.5


def test_streams_are_split_by_ssrc_and_direction() -> None:
    other = struct.pack("!BBHII", 0x80, 0, 1, 0, 0x1111) + b"\xff" * 160
    datagrams = [
        UdpDatagram(0.0, SRC, DST, _rtp(1, 0)),
        UdpDatagram(0.0, DST, SRC, _rtp(1, 0)),
        UdpDatagram(0.0, SRC, DST, other),
        UdpDatagram(0.0, SRC, DST, b"\x81\xc9\x00\x07" + b"\x00" * 28),  # RTCP RR: ignored
        UdpDatagram(0.0, SRC, DST, b"not rtp"),
    ]
    assert len(analyse_streams(datagrams)) == 3


def test_digits_count_each_event_once() -> None:
    def event(code: int, end: bool, duration: int) -> bytes:
        return struct.pack("!BBH", code, 0x80 if end else 0, duration)

    events = [
        (1000, event(5, False, 160)),
        (1000, event(5, True, 320)),
        (1000, event(5, True, 320)),  # repeated end packet, same sequence in some phones
        (2000, event(5, False, 160)),  # the same key pressed again: a new timestamp
        (3000, event(11, True, 160)),
    ]
    assert decode_digits(events) == "55#"


def test_bad_input_gives_clear_errors(tmp_path: Path) -> None:
    ng = tmp_path / "x.pcapng"
    ng.write_bytes(struct.pack("<I", 0x0A0D0D0A) + bytes(40))
    with pytest.raises(PcapError, match="pcapng"):
        read_udp(ng)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"hello world, not a capture at all")
    with pytest.raises(PcapError, match="not a pcap"):
        read_udp(junk)
    with pytest.raises(ValueError, match="not DTMF"):
        build_g711_dtmf_packets(b"", "12x")
    assert parse_rtp(b"\x00" * 20) is None
