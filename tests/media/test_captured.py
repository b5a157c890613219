"""Packets captured from real peers (tests/fixtures/rtp/, README there): SIPp's and baresip's
RTP, their RFC 4733 digits, baresip's RTCP, SIPp's RTP echo, parsed by the product's decoders, with aiortc as
the oracle for every header field."""

from __future__ import annotations

import itertools
import re
import warnings

import pytest

from gateway.media.dtmf import DtmfDigit, Rfc4733Receiver
from gateway.media.rtcp import (
    NTP_UNIX_OFFSET,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    decode_compound,
)
from gateway.media.rtp import RtpPacket, decode_rtp, looks_like_rtcp, seq_delta, ts_delta
from tests.tools.captured import CapturedPacket, load_captured

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from aiortc import rtp as aio  # test-only oracle, as in test_rtp.py / test_rtcp.py

TELEPHONE_EVENT_PT = 101
FRAME = 160  # samples (and PCMU bytes) per 20 ms packet
RTCP_APP = 204

AUDIO_FILES = ["sipp_pcmu.rtp", "baresip_pcmu.rtp"]
ECHO_FILE = "sipp_echo.rtp"
EVENT_FILES = ["sipp_rfc4733.rtp", "baresip_rfc4733.rtp"]


def _decoded(name: str) -> list[RtpPacket]:
    return [decode_rtp(p.data) for p in load_captured(name)]


@pytest.mark.parametrize("name", [*AUDIO_FILES, *EVENT_FILES, ECHO_FILE])
def test_every_header_field_agrees_with_aiortc(name: str) -> None:
    for captured in load_captured(name):
        assert not looks_like_rtcp(captured.data)
        ours = decode_rtp(captured.data)
        theirs = aio.RtpPacket.parse(captured.data)
        assert (
            ours.payload_type,
            ours.marker,
            ours.sequence_number,
            ours.timestamp,
            ours.ssrc,
            list(ours.csrc),
            ours.padding_size,
            ours.payload,
        ) == (
            theirs.payload_type,
            bool(theirs.marker),
            theirs.sequence_number,
            theirs.timestamp,
            theirs.ssrc,
            list(theirs.csrc),
            theirs.padding_size,
            theirs.payload,
        )
        # Re-encoding gives the bytes the peer sent (no extension or padding from either).
        assert ours.encode() == captured.data


@pytest.mark.parametrize("name", AUDIO_FILES)
def test_audio_is_pcmu_in_20_ms_packets_of_one_source(name: str) -> None:
    packets = _decoded(name)
    assert len(packets) == 6
    assert {p.payload_type for p in packets} == {0}
    assert {len(p.payload) for p in packets} == {FRAME}
    assert len({p.ssrc for p in packets}) == 1
    for older, newer in itertools.pairwise(packets):
        # One frame of audio further on per packet; sequence numbers may skip (baresip gives
        # some to its telephone-events, see below).
        assert seq_delta(newer.sequence_number, older.sequence_number) >= 1
        assert ts_delta(newer.timestamp, older.timestamp) == FRAME


def test_sipp_rtp_stream_header_habits() -> None:
    packets = _decoded("sipp_pcmu.rtp")
    # SIPp's own sender: sequence from 0, one step and 160 samples per packet, never a marker.
    assert [p.sequence_number for p in packets] == list(range(6))
    assert [ts_delta(p.timestamp, packets[0].timestamp) for p in packets] == [
        FRAME * i for i in range(6)
    ]
    assert not any(p.marker for p in packets)
    assert packets[0].ssrc >> 16 == 0xCA11


def test_baresip_marks_the_first_audio_packet_only() -> None:
    packets = _decoded("baresip_pcmu.rtp")
    assert [p.marker for p in packets] == [True] + [False] * 5


def test_baresip_interleaves_the_digit_with_audio_in_one_sequence_space() -> None:
    """baresip keeps sending audio during a digit: event packets take sequence numbers between
    audio packets of the same SSRC, and the event timestamp is an audio packet's timestamp."""
    audio = _decoded("baresip_pcmu.rtp")
    events = _decoded("baresip_rfc4733.rtp")
    assert {p.ssrc for p in events} == {audio[0].ssrc}
    first, last = audio[0].sequence_number, audio[-1].sequence_number
    seqs = {p.sequence_number for p in audio} | {p.sequence_number for p in events}
    assert set(range(first, last + 1)) <= seqs  # no gap: the audio's holes are the events
    assert any(first < p.sequence_number < last for p in events)
    assert events[0].timestamp in {p.timestamp for p in audio}


def _digits(packets: list[CapturedPacket]) -> tuple[list[DtmfDigit], Rfc4733Receiver]:
    receiver = Rfc4733Receiver(TELEPHONE_EVENT_PT)
    digits: list[DtmfDigit] = []
    for captured in packets:
        rtp = decode_rtp(captured.data)
        assert rtp.payload_type == TELEPHONE_EVENT_PT
        now = captured.t_ms / 1000
        digits += receiver.feed(
            rtp.payload, rtp.timestamp, rtp.marker, rtp.sequence_number, rtp.ssrc, now
        )
    last = packets[-1].t_ms / 1000
    digits += receiver.poll(last + receiver.end_timeout + 1)  # nothing left open
    return digits, receiver


@pytest.mark.parametrize(
    ("name", "duration_ms"),
    [
        # SIPp's stock pcap: 2240 samples in the end packet.
        ("sipp_rfc4733.rtp", 280),
        # baresip: 1440 samples (its default tone length, 160 per 20 ms packet).
        ("baresip_rfc4733.rtp", 180),
    ],
)
def test_rfc4733_digit_one_is_reported_once(name: str, duration_ms: int) -> None:
    packets = load_captured(name)
    digits, receiver = _digits(packets)
    first = decode_rtp(packets[0].data)
    assert digits == [
        DtmfDigit(
            digit="1",
            duration_ms=duration_ms,
            source="rfc4733",
            ended=True,
            ssrc=first.ssrc,
            timestamp=first.timestamp,
        )
    ]
    # Both peers send the end packet three times (RFC 4733 2.5.1.4); the copies are duplicates.
    ends = [p for p in packets if decode_rtp(p.data).payload[1] & 0x80]
    assert len(ends) == 3
    assert receiver.stats.duplicates == 2
    assert receiver.stats.timeouts == 0 and receiver.stats.malformed == 0
    # One event: every packet carries the event's start timestamp, the first one a marker.
    rtp = [decode_rtp(p.data) for p in packets]
    assert {p.timestamp for p in rtp} == {first.timestamp}
    assert [p.marker for p in rtp] == [True] + [False] * (len(rtp) - 1)


def test_baresip_rtcp_opens_with_an_app_packet_that_is_skipped() -> None:
    app = load_captured("baresip_rtcp.rtp")[0].data
    assert looks_like_rtcp(app)
    [packet] = decode_compound(app)
    assert isinstance(packet, UnknownRtcp)
    assert packet.packet_type == RTCP_APP
    assert packet.body[4:8] == b"PING"  # after the SSRC: libre's 4-character APP name
    assert int.from_bytes(packet.body[:4], "big") == _decoded("baresip_pcmu.rtp")[0].ssrc
    assert aio.RtcpPacket.parse(app) == []  # aiortc drops APP packets altogether


def test_baresip_sender_report_and_cname() -> None:
    data = load_captured("baresip_rtcp.rtp")[1].data
    assert looks_like_rtcp(data)
    sr, sdes = decode_compound(data)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    audio = _decoded("baresip_pcmu.rtp")
    events = load_captured("baresip_rfc4733.rtp")
    assert sr.ssrc == audio[0].ssrc

    # The counts cover both kinds of packet sent before the report: every digit packet (the
    # digit was pressed at the start of the call) and 20 ms audio packets for the rest.
    audio_packets = sr.packet_count - len(events)
    assert sr.octet_count == FRAME * audio_packets + 4 * len(events)
    # ...and the RTP timestamp advanced by about one frame per audio packet since the first.
    assert abs(ts_delta(sr.rtp_timestamp, audio[0].timestamp) - FRAME * audio_packets) <= FRAME
    assert NTP_UNIX_OFFSET + 1_700_000_000 < sr.ntp_timestamp >> 32  # a 2023+ wall clock

    # One reception report: the gateway's echo stream, nothing lost, and the gateway's own SR
    # was seen (LSR set).
    [block] = sr.reports
    assert block.ssrc != sr.ssrc
    assert (block.fraction_lost, block.cumulative_lost) == (0, 0)
    assert block.lsr != 0 and block.dlsr != 0

    cname = sdes.cname(sr.ssrc)
    assert cname is not None and re.fullmatch(rb"sip:caller@127\.0\.0\.1:\d+", cname)

    theirs_sr, theirs_sdes = aio.RtcpPacket.parse(data)
    assert isinstance(theirs_sr, aio.RtcpSrPacket)
    info = theirs_sr.sender_info
    assert (theirs_sr.ssrc, info.ntp_timestamp, info.rtp_timestamp) == (
        sr.ssrc,
        sr.ntp_timestamp,
        sr.rtp_timestamp,
    )
    assert (info.packet_count, info.octet_count) == (sr.packet_count, sr.octet_count)
    [theirs_block] = theirs_sr.reports
    assert (
        theirs_block.ssrc,
        theirs_block.fraction_lost,
        theirs_block.packets_lost,
        theirs_block.highest_sequence,
        theirs_block.jitter,
        theirs_block.lsr,
        theirs_block.dlsr,
    ) == (
        block.ssrc,
        block.fraction_lost,
        block.cumulative_lost,
        block.highest_seq,
        block.jitter,
        block.lsr,
        block.dlsr,
    )
    assert [(c.ssrc, c.items) for c in theirs_sdes.chunks] == [
        (c.ssrc, c.items) for c in sdes.chunks
    ]


def test_sipp_rtp_echo_returns_each_packet_verbatim_to_its_sender() -> None:
    """What the SIPp UAS of the interop tests (-rtp_echo) does with a caller's RTP: the same
    bytes (SSRC, sequence, timestamp, marker included) back to the port they came from."""
    packets = load_captured(ECHO_FILE)
    sipp_port = packets[0].dst_port
    sent = [p for p in packets if p.dst_port == sipp_port]
    echoed = [p for p in packets if p.src_port == sipp_port]
    assert len(sent) == len(echoed) == 4
    assert [p.data for p in echoed] == [p.data for p in sent]
    assert {p.dst_port for p in echoed} == {p.src_port for p in sent}
    assert all(e.t_ms >= s.t_ms for s, e in zip(sent, echoed, strict=True))
    decoded = [decode_rtp(p.data) for p in echoed]
    assert [p.marker for p in decoded] == [True, False, False, False]  # baresip's, kept
    assert {(p.payload_type, len(p.payload)) for p in decoded} == {(0, FRAME)}
