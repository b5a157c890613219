"""Per-stream RTP statistics: RFC 3550 appendix A.1/A.3/A.8 reception state and call counters.

`ReceptionStats` tracks one source (SSRC) exactly as the RFC's sample code does, so the loss,
fraction lost and interarrival jitter we put in SR/RR report blocks match what a PBX expects.
`StreamStats` is the flat set of counters a call exposes (metrics, call records).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gateway.media.rtcp import ReportBlock

# A.1: a jump of more than MAX_DROPOUT ahead, or MAX_MISORDER behind, is a restart or a bug;
# it is believed only when the next packet follows it in sequence.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
RTP_SEQ_MOD = 1 << 16


class InterarrivalJitter:
    """A.8: J += (|D(i-1,i)| - J) / 16, in timestamp units. Arrival time is an argument (seconds)."""

    __slots__ = ("_clock_rate", "_transit", "jitter")

    def __init__(self, clock_rate: int = 8000) -> None:
        self._clock_rate = clock_rate
        self._transit: float | None = None
        self.jitter = 0.0

    def update(self, rtp_timestamp: int, arrival: float) -> None:
        transit = arrival * self._clock_rate - rtp_timestamp
        previous = self._transit
        self._transit = transit
        if previous is None:
            return
        d = transit - previous
        # RTP timestamps wrap at 2**32: a wrap between two packets shows up as a huge d.
        if d > 0x80000000:
            d -= 0x100000000
        elif d < -0x80000000:
            d += 0x100000000
        if d < 0:
            d = -d
        self.jitter += (d - self.jitter) / 16.0

    def restart(self) -> None:
        """A new source: forget the previous transit, keep the jitter estimate."""
        self._transit = None

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self._clock_rate


class ReceptionStats:
    """A.1 sequence tracking + A.3 loss + A.8 jitter for one SSRC; builds RR/SR report blocks."""

    def __init__(self, ssrc: int, first_seq: int, clock_rate: int = 8000) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.jitter = InterarrivalJitter(clock_rate)
        self._init_seq(first_seq)
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self.last_sr_ntp_middle = 0  # LSR
        self.last_sr_arrival: float | None = None

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
        self.cycles = 0

    def on_packet(
        self, seq: int, rtp_timestamp: int, arrival: float, *, timing: bool = True
    ) -> bool:
        """Account one packet; False when A.1 rejects it as a wild sequence jump.

        `timing=False` for RFC 4733 event and comfort-noise packets: they take sequence numbers
        of the stream (so they must count as received, or every digit shows up as loss in our
        statistics and RTCP reports), but their timestamps do not advance with time (all packets
        of one event share the event's timestamp), so they would distort the A.8 jitter."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the peer restarted its sequence.
                self._init_seq(seq)
                self.received = 0
                self._expected_prior = 0
                self._received_prior = 0
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet, counted as received (A.3 allows lost < 0).
        self.received += 1
        if timing:
            self.jitter.update(rtp_timestamp, arrival)
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3): expected - received, negative with duplicates."""
        return self.expected - self.received

    def on_sender_report(self, ntp_middle32: int, arrival: float) -> None:
        self.last_sr_ntp_middle = ntp_middle32
        self.last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """A report block for this source; advances the 'since last report' interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = int((now - self.last_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.lost,
            highest_seq=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter.jitter),
            lsr=self.last_sr_ntp_middle,
            dlsr=dlsr,
        )


@dataclass(slots=True)
class StreamStats:
    """Counters of one call's RTP stream. Names are what ends up in metrics and call records."""

    # inbound
    packets_received: int = 0  # audio packets accepted from the latched source
    bytes_received: int = 0  # payload bytes of those
    lost: int = 0  # RFC 3550 A.3 cumulative, summed over sources (SSRC changes)
    duplicated: int = 0
    reordered: int = 0
    late: int = 0  # arrived after their playout slot (concealed already): dropped
    concealed: int = 0  # silence frames inserted for missing audio
    concealed_ms: float = 0.0
    # gaps left unfilled: filling them would have run ahead of real time (timestamps jumping
    # faster than the clock, jitter.py: a misbehaving or hostile sender)
    concealment_skipped: int = 0
    jitter_ms: float = 0.0  # A.8 interarrival jitter of the current source
    largest_gap_ms: float = 0.0  # longest time between two accepted inbound packets
    ssrc_changes: int = 0
    sequence_resyncs: int = 0  # large sequence/timestamp jumps within one SSRC
    dropped_foreign_source: int = 0  # RTP from an address that is not (or cannot be) latched
    dropped_probation: int = 0  # RTP of a learnable source still in probation (latch.py)
    dropped_rate: int = 0  # audio packets beyond real time (+ burst) from the latched source
    jitter_overflow: int = 0  # dropped: the jitter buffer was full (jitter.py max_packets)
    relatched: int = 0  # a source latched again after a re-INVITE/UPDATE moved the media
    dropped_malformed: int = 0
    dropped_unknown_pt: int = 0
    dtmf_packets: int = 0
    # SRTP (RTP and RTCP): dropped before anything else saw them
    srtp_auth_failed: int = 0  # forged, damaged, keyed otherwise, or plain RTP
    srtp_replayed: int = 0  # index seen already or older than the replay window
    srtp_malformed: int = 0  # too short or otherwise refused by libsrtp
    # outbound
    packets_sent: int = 0
    bytes_sent: int = 0  # payload octets, as in the SR octet count
    send_errors: int = 0
    # RTCP
    rtcp_sent: int = 0
    rtcp_received: int = 0
    rtcp_malformed: int = 0
    rtcp_dropped_foreign: int = 0  # RTCP not from the latched RTP source (latch.py)
    remote_fraction_lost: float = 0.0  # from the peer's last report about us, 0..1
    remote_cumulative_lost: int = 0
    remote_jitter_ms: float = 0.0
    round_trip_ms: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)
