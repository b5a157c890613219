"""RTCP compound encode/decode, agreement with aiortc, and RFC 3550 A.3/A.8 arithmetic."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media import rtcp
from gateway.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpDecodeError,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    decode_compound,
    encode_compound,
)
from gateway.media.stats import InterarrivalJitter, ReceptionStats

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from aiortc import rtp as aio


def _block(ssrc: int = 0x11111111, lost: int = 3) -> ReportBlock:
    return ReportBlock(ssrc, 25, lost, 0x0001FFFF, 37, 0xAABBCCDD, 98304)


def _compound() -> list[rtcp.RtcpPacket]:
    return [
        SenderReport(0xCAFEBABE, 0xE1234567_89ABCDEF, 123456, 50, 8000, [_block(), _block(7, -2)]),
        SourceDescription([SdesChunk(0xCAFEBABE, [(rtcp.SDES_CNAME, b"gw@example")])]),
        Bye([0xCAFEBABE], b"call ended"),
    ]


def test_compound_round_trip() -> None:
    packets = _compound()
    assert decode_compound(encode_compound(packets)) == packets


def test_rr_round_trip_and_negative_lost() -> None:
    packets = [ReceiverReport(5, [_block(lost=-5)]), SourceDescription([SdesChunk(5, [])])]
    decoded = decode_compound(encode_compound(packets))
    assert decoded == packets
    assert decoded[0].reports[0].cumulative_lost == -5


def test_aiortc_parses_our_compound() -> None:
    parsed = aio.RtcpPacket.parse(encode_compound(_compound()))
    sr, sdes, bye = parsed
    assert isinstance(sr, aio.RtcpSrPacket)
    assert sr.ssrc == 0xCAFEBABE
    assert sr.sender_info.ntp_timestamp == 0xE1234567_89ABCDEF
    assert sr.sender_info.rtp_timestamp == 123456
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (50, 8000)
    first = sr.reports[0]
    assert (first.ssrc, first.fraction_lost, first.packets_lost) == (0x11111111, 25, 3)
    assert (first.highest_sequence, first.jitter, first.lsr, first.dlsr) == (
        0x0001FFFF,
        37,
        0xAABBCCDD,
        98304,
    )
    assert sr.reports[1].packets_lost == -2
    assert isinstance(sdes, aio.RtcpSdesPacket)
    assert sdes.chunks[0].ssrc == 0xCAFEBABE
    assert sdes.chunks[0].items == [(1, b"gw@example")]
    assert isinstance(bye, aio.RtcpByePacket)
    assert bye.sources == [0xCAFEBABE]
    rr = aio.RtcpPacket.parse(ReceiverReport(9, [_block()]).encode())[0]
    assert isinstance(rr, aio.RtcpRrPacket)
    assert rr.ssrc == 9 and rr.reports[0].jitter == 37


def test_we_parse_aiortc_compound() -> None:
    info = aio.RtcpReceiverInfo(
        ssrc=1, fraction_lost=2, packets_lost=-3, highest_sequence=4, jitter=5, lsr=6, dlsr=7
    )
    raw = (
        bytes(
            aio.RtcpSrPacket(
                ssrc=10, sender_info=aio.RtcpSenderInfo(11, 12, 13, 14), reports=[info]
            )
        )
        + bytes(aio.RtcpSdesPacket(chunks=[aio.RtcpSourceInfo(ssrc=10, items=[(1, b"peer")])]))
        + bytes(aio.RtcpByePacket(sources=[10, 20]))
    )
    sr, sdes, bye = decode_compound(raw)
    assert sr == SenderReport(10, 11, 12, 13, 14, [ReportBlock(1, 2, -3, 4, 5, 6, 7)])
    assert sdes.cname(10) == b"peer"
    assert bye == Bye([10, 20])


blocks = st.builds(
    ReportBlock,
    ssrc=st.integers(0, 0xFFFFFFFF),
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-(1 << 23), (1 << 23) - 1),
    highest_seq=st.integers(0, 0xFFFFFFFF),
    jitter=st.integers(0, 0xFFFFFFFF),
    lsr=st.integers(0, 0xFFFFFFFF),
    dlsr=st.integers(0, 0xFFFFFFFF),
)


@settings(max_examples=150, deadline=None)
@given(
    ssrc=st.integers(0, 0xFFFFFFFF),
    ntp=st.integers(0, (1 << 64) - 1),
    reports=st.lists(blocks, max_size=5),
    cname=st.binary(min_size=1, max_size=60),
    sources=st.lists(st.integers(0, 0xFFFFFFFF), max_size=4),
)
def test_property_agrees_with_aiortc(
    ssrc: int, ntp: int, reports: list[ReportBlock], cname: bytes, sources: list[int]
) -> None:
    packets: list[rtcp.RtcpPacket] = [
        SenderReport(ssrc, ntp, 1, 2, 3, reports),
        ReceiverReport(ssrc, reports),
        SourceDescription([SdesChunk(ssrc, [(1, cname)])]),
        Bye(sources),
    ]
    raw = encode_compound(packets)
    assert decode_compound(raw) == packets
    sr, rr, sdes, bye = aio.RtcpPacket.parse(raw)
    assert sr.sender_info.ntp_timestamp == ntp
    assert [r.packets_lost for r in sr.reports] == [r.cumulative_lost for r in reports]
    assert [r.jitter for r in rr.reports] == [r.jitter for r in reports]
    assert sdes.chunks[0].items == [(1, cname)]
    assert bye.sources == sources


def test_bye_reason_and_unknown_types_are_kept() -> None:
    app = UnknownRtcp(204, 0, b"name1234")
    decoded = decode_compound(encode_compound([ReceiverReport(1), app, Bye([1], b"bye!")]))
    assert decoded[1] == app
    assert decoded[2].reason == b"bye!"


def test_padding_is_removed() -> None:
    body = (1).to_bytes(4, "big") + b"\x00\x00\x00\x04"  # RR, no blocks, 4 padding bytes
    raw = bytes([0xA0, 201, 0, 2]) + body
    assert decode_compound(raw) == [ReceiverReport(1)]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x80\xc9", "too short"),
        (b"\x40\xc9\x00\x01" + bytes(4), "version"),
        (b"\x80\xc9\x00\x05" + bytes(4), "claims"),
        (b"\x81\xc9\x00\x01" + bytes(4), "truncated"),  # RR announces 1 block, has none
        (b"\x81\xc8\x00\x01" + bytes(4), "truncated"),  # SR without sender info
        (b"\x82\xcb\x00\x01" + bytes(4), "truncated"),  # BYE announces 2 sources
        (b"\x81\xca\x00\x02" + bytes(4) + b"\x01\x09ab", "truncated"),  # SDES item too long
        (b"\xa0\xc9\x00\x01" + b"\x00\x00\x00\x00", "padding"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x80", "trailing"),
    ],
)
def test_malformed_compounds_raise_named_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(RtcpDecodeError, match=reason):
        decode_compound(raw)


def test_ntp_helpers() -> None:
    ntp = rtcp.ntp_timestamp(1.5)
    assert ntp >> 32 == rtcp.NTP_UNIX_OFFSET + 1
    assert ntp & 0xFFFFFFFF == 1 << 31
    assert rtcp.ntp_middle32(0x1122334455667788) == 0x33445566


# -- RFC 3550 A.8 jitter and A.3 loss, against numbers worked out by hand -------------------


def test_interarrival_jitter_by_hand() -> None:
    # ts 0,160,320,480 arrive at 0, 20, 45, 60 ms: transit (samples) 0, 0, 40, 0, so
    # |D| = 0, 40, 40 and J = 0 -> 0 -> 40/16 = 2.5 -> 2.5 + (40 - 2.5)/16 = 4.84375.
    jitter = InterarrivalJitter(8000)
    for ts, arrival in ((0, 0.0), (160, 0.020), (320, 0.045), (480, 0.060)):
        jitter.update(ts, arrival)
    assert jitter.jitter == pytest.approx(4.84375)
    assert jitter.jitter_ms == pytest.approx(4.84375 / 8)


def test_jitter_survives_timestamp_wrap() -> None:
    jitter = InterarrivalJitter(8000)
    jitter.update(0xFFFFFF60, 0.0)
    jitter.update(0x00000000, 0.020)  # +160 samples across the wrap, on time
    assert jitter.jitter == pytest.approx(0.0)


def test_loss_fraction_and_extended_sequence_by_hand() -> None:
    stats = ReceptionStats(ssrc=77, first_seq=65534)
    for i, seq in enumerate((65534, 65535, 1, 2)):  # seq 0 lost across the wrap
        stats.on_packet(seq, 160 * i, 0.02 * i)
    assert stats.expected == 5
    assert stats.lost == 1
    block = stats.report_block(now=1.0)
    assert block.highest_seq == 65536 + 2
    assert block.cumulative_lost == 1
    assert block.fraction_lost == (1 << 8) // 5  # 51
    assert (block.lsr, block.dlsr) == (0, 0)
    # Next interval: two packets, none lost -> fraction 0, cumulative unchanged.
    stats.on_packet(3, 800, 0.1)
    stats.on_packet(4, 960, 0.12)
    block = stats.report_block(now=2.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 1)


def test_duplicates_make_loss_negative_and_fraction_zero() -> None:
    stats = ReceptionStats(ssrc=1, first_seq=10)
    for seq in (10, 11, 11, 12):
        stats.on_packet(seq, 0, 0.0)
    block = stats.report_block(now=0.0)
    assert block.cumulative_lost == -1
    assert block.fraction_lost == 0


def test_lsr_dlsr_from_last_sender_report() -> None:
    stats = ReceptionStats(ssrc=1, first_seq=0)
    stats.on_packet(0, 0, 0.0)
    stats.on_sender_report(0x12345678, arrival=10.0)
    block = stats.report_block(now=11.5)
    assert block.lsr == 0x12345678
    assert block.dlsr == int(1.5 * 65536)


def test_wild_sequence_jump_needs_confirmation() -> None:
    stats = ReceptionStats(ssrc=1, first_seq=100)
    stats.on_packet(100, 0, 0.0)
    assert stats.on_packet(20000, 0, 0.02) is False  # not believed yet
    assert stats.on_packet(20001, 0, 0.04) is True  # confirmed: restart
    assert stats.base_seq == 20001 and stats.expected == 1 and stats.lost == 0
