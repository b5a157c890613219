"""Reading a call off the wire: the gateway's outbound RTP in a capture, SIP messages by start
line, the bot audio the simulator sent, and where that audio landed in the packets."""

from __future__ import annotations

import base64
import calendar
import itertools
import time
from dataclasses import dataclass

from gateway.realtime.simulator import Recorded
from tests.tools.caller_audio import SILENCE_BYTE
from tests.tools.pcap import UdpDatagram
from tests.tools.ports import InteropPorts
from tests.tools.rtp import RtpHeader, StreamStats, analyse_streams, parse_rtp


@dataclass(frozen=True, slots=True)
class WirePacket:
    time: float  # capture time, epoch seconds (same clock as the gateway's log `ts`)
    rtp: RtpHeader


def gateway_rtp(
    datagrams: list[UdpDatagram], layout: InteropPorts, peer_port: int
) -> list[WirePacket]:
    """The gateway's outbound RTP to the caller's media port, in capture order (one SSRC)."""
    low, high = layout.gateway_rtp
    out: list[WirePacket] = []
    for d in datagrams:
        if low <= d.src[1] <= high and d.dst[1] == peer_port:
            rtp = parse_rtp(d.payload)
            if rtp is not None and rtp.payload_type in (0, 8):
                out.append(WirePacket(d.time, rtp))
    return out


def is_silent(payload: bytes, codec: str = "PCMU") -> bool:
    return payload == bytes([SILENCE_BYTE[codec]]) * len(payload)


def sip_messages(datagrams: list[UdpDatagram], method_or_status: str) -> list[UdpDatagram]:
    """SIP datagrams whose start line begins with `method_or_status` (e.g. "BYE", "SIP/2.0 202")."""
    prefix = method_or_status.encode()
    return [d for d in datagrams if d.payload.startswith(prefix)]


def reply_audio(server_events: list[Recorded]) -> dict[str, bytes]:
    """Bot audio the simulator sent, per item id (decoded response.output_audio.delta)."""
    audio: dict[str, bytearray] = {}
    for record in server_events:
        if record.type == "response.output_audio.delta":
            item = record.event["item_id"]
            audio.setdefault(item, bytearray()).extend(base64.b64decode(record.event["delta"]))
    return {k: bytes(v) for k, v in audio.items()}


def iso_to_epoch(ts: str) -> float:
    """The gateway log's `ts` (UTC ISO 8601 with ms, `Z`) as epoch seconds."""
    seconds, _, ms = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S")) + int(ms or 0) / 1000


@dataclass(frozen=True, slots=True)
class Located:
    """Where a run of bot audio sits in the gateway's outbound packets."""

    first: int  # index of the packet holding its first byte
    last: int  # index of the packet holding its last byte
    offset: int  # byte offset of its first byte inside packet `first`


def locate(audio: bytes, packets: list[WirePacket]) -> Located | None:
    """Find `audio` as one contiguous run in the concatenated payloads (no transcoding, so the
    bytes the simulator sent must appear verbatim); None when it is not there."""
    wire = b"".join(p.rtp.payload for p in packets)
    start = wire.find(audio)
    if start < 0 or not audio:
        return None
    ends = list(itertools.accumulate(len(p.rtp.payload) for p in packets))
    first = next(i for i, end in enumerate(ends) if end > start)
    last = next(i for i, end in enumerate(ends) if end >= start + len(audio))
    return Located(first, last, start - (ends[first] - len(packets[first].rtp.payload)))


def level_dbfs(g711: bytes, codec: str = "PCMU") -> float:
    """RMS level of G.711 audio in dBFS."""
    import numpy as np

    from gateway.media.g711 import decode

    pcm = np.frombuffer(decode(codec, g711), dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0
    return 20 * float(np.log10(rms / 32768.0 + 1e-12))


def one_paced_gateway_stream(
    datagrams: list[UdpDatagram], ports: InteropPorts, frames_of_160: bool = True
) -> StreamStats:
    """The gateway's one RTP stream to SIPp's media port in the capture, asserted paced: no
    sequence errors, a mean interval of 20 ms and (unless `frames_of_160` is False) every audio
    payload one 20 ms G.711 frame. Printed for the report."""
    low, high = ports.gateway_rtp
    streams = [
        s
        for s in analyse_streams(datagrams)
        if low <= s.src[1] <= high and s.dst[1] == ports.sipp_media
    ]
    assert len(streams) == 1, [s.summary() for s in streams]
    stream = streams[0]
    print(stream.summary())
    assert stream.seq_errors == 0, stream.summary()
    if frames_of_160:
        assert set(stream.audio_payload_sizes) == {160}, stream.summary()
    assert 19.5 <= stream.interval_ms_mean <= 20.5, stream.summary()
    return stream


def transfer_on_the_wire(
    datagrams: list[UdpDatagram], ports: InteropPorts
) -> tuple[UdpDatagram, UdpDatagram, UdpDatagram, UdpDatagram]:
    """The first REFER, 202, NOTIFY and BYE of a blind transfer the gateway made (RFC 3515),
    asserted present, in that order, REFER (with Referred-By) and BYE sent by the gateway."""
    refer = sip_messages(datagrams, "REFER ")
    accepted = sip_messages(datagrams, "SIP/2.0 202")
    notify = sip_messages(datagrams, "NOTIFY ")
    bye = sip_messages(datagrams, "BYE ")
    assert refer and accepted and notify and bye, "missing REFER/202/NOTIFY/BYE in the capture"
    assert refer[0].src[1] == ports.gateway_sip
    assert refer[0].time < accepted[0].time < notify[0].time < bye[0].time
    assert bye[0].src[1] == ports.gateway_sip
    assert b"Referred-By:" in refer[0].payload
    return refer[0], accepted[0], notify[0], bye[0]
