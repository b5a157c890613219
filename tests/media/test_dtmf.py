"""DTMF: RFC 4733 streams shaped like real peers (SIPp stock pcaps, baresip, linphone), loss and
retransmission, long events, the sender's packet sequence, and in-band Goertzel detection."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media import g711
from gateway.media.dtmf import (
    EVENT_DIGITS,
    HIGH_FREQS,
    LOW_FREQS,
    DtmfDigit,
    InbandConfig,
    InbandDtmfDetector,
    Rfc4733Receiver,
    Rfc4733Sender,
    validate_digits,
)
from tests.tools.peers import require_peer

SIPP_PCAPS = Path("/usr/share/sip-tester")


@dataclass
class Rtp:
    pt: int
    marker: bool
    seq: int
    ts: int
    ssrc: int
    payload: bytes


def encode_rtp(p: Rtp) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, (0x80 if p.marker else 0) | p.pt, p.seq, p.ts, p.ssrc)
        + p.payload
    )


def decode_rtp(data: bytes) -> Rtp:
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    assert b0 >> 6 == 2
    offset = 12 + 4 * (b0 & 0x0F)
    return Rtp(b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[offset:])


def read_pcap_udp_payloads(path: Path) -> list[bytes]:
    """A tiny libpcap reader: Ethernet / IPv4 / UDP payloads (enough for SIPp's stock pcaps)."""
    data = path.read_bytes()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    assert linktype == 1, "Ethernet captures only"
    out = []
    offset = 24
    while offset + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        if struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue
        udp_len = struct.unpack_from("!H", ip, ihl + 4)[0]
        out.append(ip[ihl + 8 : ihl + udp_len])
    return out


class Demux:
    """What the stream does: feed only telephone-event packets (PT from SDP) to the receiver."""

    def __init__(self, pt: int, end_timeout: float = 0.5) -> None:
        self.rx = Rfc4733Receiver(pt, end_timeout=end_timeout)
        self.digits: list[DtmfDigit] = []
        self.now = 0.0

    def feed(self, packets: list[Rtp], *, spacing: float = 0.02) -> None:
        for p in packets:
            self.now += spacing
            if p.pt == self.rx.payload_type:
                self.digits += self.rx.feed(p.payload, p.ts, p.marker, p.seq, p.ssrc, self.now)
            self.digits += self.rx.poll(self.now)

    def idle(self, seconds: float) -> None:
        self.now += seconds
        self.digits += self.rx.poll(self.now)

    @property
    def text(self) -> str:
        return "".join(d.digit for d in self.digits)


def event_packets(
    digit: str,
    *,
    ts: int,
    seq: int,
    ssrc: int = 0x1234,
    pt: int = 101,
    duration_ms: int = 160,
    update_ms: int = 20,
    ends: int = 3,
    same_seq_ends: bool = False,
    marker: bool = True,
    first_duration_zero: bool = False,
) -> list[Rtp]:
    event = EVENT_DIGITS.index(digit)
    total = duration_ms * 8
    step = update_ms * 8
    pkts = []
    d = 0 if first_duration_zero else step
    while d < total:
        payload = struct.pack("!BBH", event, 10, d)
        pkts.append(Rtp(pt, marker and not pkts, seq, ts, ssrc, payload))
        seq += 1
        d += step
    for i in range(ends):
        payload = struct.pack("!BBH", event, 0x80 | 10, total)
        pkts.append(Rtp(pt, marker and not pkts, seq, ts, ssrc, payload))
        if not same_seq_ends or i == ends - 1:
            seq += 1
    return pkts


def audio_packets(n: int, *, ts: int, seq: int, ssrc: int = 0x1234) -> list[Rtp]:
    return [Rtp(0, i == 0, seq + i, ts + 160 * i, ssrc, b"\x7f" * 160) for i in range(n)]


# -- SIPp stock pcaps ---------------------------------------------------------------------------


def sipp_pcap(name: str) -> Path:
    require_peer("sipp")
    path = SIPP_PCAPS / name
    if not path.exists():
        pytest.skip(f"{path} not shipped by this sip-tester package")
    return path


def test_sipp_dtmf_2833_1_pcap_is_one_digit() -> None:
    packets = [decode_rtp(p) for p in read_pcap_udp_payloads(sipp_pcap("dtmf_2833_1.pcap"))]
    assert len(packets) == 10
    # The quirk this test is about: the three end packets repeat one sequence number.
    ends = [p for p in packets if p.payload[1] & 0x80]
    assert len(ends) == 3 and len({p.seq for p in ends}) == 1
    demux = Demux(pt=packets[0].pt)
    demux.feed(packets)
    demux.idle(2.0)
    assert demux.text == "1"
    (digit,) = demux.digits
    assert digit.ended and digit.duration_ms == 280
    assert digit.ssrc == packets[0].ssrc and digit.timestamp == packets[0].ts
    assert demux.rx.stats.duplicates == 2


@pytest.mark.parametrize(
    ("name", "digit"),
    [(f"dtmf_2833_{d}.pcap", d) for d in "0123456789"]
    + [("dtmf_2833_star.pcap", "*"), ("dtmf_2833_pound.pcap", "#")],
)
def test_sipp_stock_pcaps(name: str, digit: str) -> None:
    packets = [decode_rtp(p) for p in read_pcap_udp_payloads(sipp_pcap(name))]
    demux = Demux(pt=101)
    demux.feed(packets)
    demux.idle(2.0)
    assert demux.text == digit


def test_sipp_pcap_played_twice_from_its_fixed_ssrc_and_timestamp_is_deduplicated() -> None:
    # SIPp replays the same pcap verbatim: same SSRC, same event timestamp. A retransmission of
    # a whole event must not become a second digit.
    packets = [decode_rtp(p) for p in read_pcap_udp_payloads(sipp_pcap("dtmf_2833_5.pcap"))]
    demux = Demux(pt=101)
    demux.feed(packets + packets)
    assert demux.text == "5"
    # The same pcap replayed seconds later (a scenario playing it twice for "55") is a new press.
    demux.idle(3.0)
    demux.feed(packets)
    assert demux.text == "55"


# -- peer-shaped synthetic streams ---------------------------------------------------------


def test_baresip_shape_audio_interleaved_incrementing_seq_ends() -> None:
    # baresip 1.0: PT 101, 180 ms events, 3 ends with incrementing seq, audio keeps flowing
    # in between (same SSRC, audio timestamps advance while the event timestamp stays).
    stream: list[Rtp] = []
    seq, ts = 5000, 80000
    for digit in "123#":
        ev = event_packets(digit, ts=ts, seq=0, duration_ms=180)
        for e in ev:
            a = audio_packets(1, ts=ts, seq=seq)[0]
            a.marker = False
            stream.append(a)
            seq += 1
            e.seq = seq
            stream.append(e)
            seq += 1
            ts += 160
        stream += audio_packets(5, ts=ts, seq=seq)
        seq += 5
        ts += 800
    demux = Demux(pt=101)
    demux.feed(stream, spacing=0.01)
    assert demux.text == "123#"
    assert all(d.ended and d.duration_ms == 180 for d in demux.digits)
    assert demux.rx.stats.duplicates == 8


def test_linphone_shape_pt96_same_seq_ends() -> None:
    stream: list[Rtp] = []
    seq, ts = 100, 16000
    for digit in "123#":
        stream += event_packets(digit, ts=ts, seq=seq, pt=96, duration_ms=100, same_seq_ends=True)
        seq += 10
        ts += 8000  # one digit per second
    demux = Demux(pt=96)
    demux.feed(stream)
    assert demux.text == "123#"
    assert [d.duration_ms for d in demux.digits] == [100] * 4
    # PT 101 packets are not ours when the SDP said 96.
    other = Demux(pt=101)
    other.feed(stream)
    assert other.text == ""


def test_events_without_marker_bit() -> None:
    stream = event_packets("7", ts=1000, seq=1, marker=False) + event_packets(
        "7", ts=5000, seq=20, marker=False
    )
    demux = Demux(pt=101)
    demux.feed(stream)
    assert demux.text == "77"


def test_lost_start_packet() -> None:
    stream = event_packets("9", ts=1000, seq=1)[2:]
    demux = Demux(pt=101)
    demux.feed(stream)
    assert demux.text == "9"
    assert demux.digits[0].duration_ms == 160


def test_lost_end_packets_reported_on_timeout() -> None:
    stream = event_packets("4", ts=1000, seq=1, ends=0, duration_ms=200)
    demux = Demux(pt=101, end_timeout=0.5)
    demux.feed(stream)
    assert demux.text == ""
    assert demux.rx.next_deadline == pytest.approx(demux.now + 0.5)
    demux.idle(0.6)
    assert demux.text == "4"
    (d,) = demux.digits
    assert not d.ended
    assert d.duration_ms == 180  # the last update seen
    assert demux.rx.stats.timeouts == 1
    # A straggling end packet afterwards is not a second digit.
    demux.feed(event_packets("4", ts=1000, seq=50, duration_ms=200)[-3:])
    demux.idle(1.0)
    assert demux.text == "4"


def test_lost_end_packets_reported_when_next_event_starts() -> None:
    stream = event_packets("1", ts=1000, seq=1, ends=0) + event_packets("2", ts=3000, seq=20)
    demux = Demux(pt=101, end_timeout=10.0)
    demux.feed(stream)
    assert demux.text == "12"
    assert [d.ended for d in demux.digits] == [False, True]


def test_retransmissions_and_reordering_are_deduplicated() -> None:
    base = event_packets("#", ts=1000, seq=1, duration_ms=120)
    doubled = [p for p in base for _ in (0, 1)]
    # Swap two updates and add a late update after the ends.
    doubled[2], doubled[4] = doubled[4], doubled[2]
    doubled.append(base[1])
    demux = Demux(pt=101)
    demux.feed(doubled)
    demux.idle(1.0)
    assert demux.text == "#"
    assert demux.digits[0].duration_ms == 120


def test_same_digit_twice_is_two_events() -> None:
    stream = event_packets("5", ts=1000, seq=1) + event_packets("5", ts=3000, seq=20)
    demux = Demux(pt=101)
    demux.feed(stream)
    assert demux.text == "55"


def test_events_from_two_ssrcs_are_independent() -> None:
    a = event_packets("1", ts=1000, seq=1, ssrc=1)
    b = event_packets("2", ts=1000, seq=1, ssrc=2)
    interleaved = [p for pair in zip(a, b, strict=True) for p in pair]
    demux = Demux(pt=101)
    demux.feed(interleaved)
    assert sorted(demux.text) == ["1", "2"]


def test_long_event_segments_are_one_digit() -> None:
    # RFC 4733 2.5.1.3: a 10 s press: segment 1 ends at duration 0xFFFF (no E bit), segment 2
    # starts at ts + 0xFFFF and carries the E bit.
    seg1 = [
        Rtp(101, i == 0, i, 1000, 9, struct.pack("!BBH", 2, 10, d))
        for i, d in enumerate(range(8000, 65535, 8000))
    ]
    seg1.append(Rtp(101, False, 20, 1000, 9, struct.pack("!BBH", 2, 10, 0xFFFF)))
    ts2 = 1000 + 0xFFFF
    seg2 = [
        Rtp(101, False, 21 + i, ts2, 9, struct.pack("!BBH", 2, 10, d))
        for i, d in enumerate(range(1600, 14465, 1600))
    ]
    end = [
        Rtp(101, False, 40 + i, ts2, 9, struct.pack("!BBH", 2, 0x80 | 10, 14465)) for i in range(3)
    ]
    demux = Demux(pt=101, end_timeout=5.0)
    demux.feed(seg1 + seg2 + end)
    demux.idle(10.0)
    assert demux.text == "2"
    assert demux.digits[0].duration_ms == round((0xFFFF + 14465) / 8)
    assert demux.digits[0].ended


def test_duration_wrap_within_one_timestamp_is_not_a_new_digit() -> None:
    durations = [*range(16000, 65536, 16000), 65000, 400, 16400]  # wraps after 65000
    pkts = [
        Rtp(101, i == 0, i, 7000, 3, struct.pack("!BBH", 3, 10, d)) for i, d in enumerate(durations)
    ]
    pkts.append(Rtp(101, False, 99, 7000, 3, struct.pack("!BBH", 3, 0x80 | 10, 16400)))
    demux = Demux(pt=101)
    demux.feed(pkts)
    assert demux.text == "3"
    assert demux.digits[0].duration_ms == round((65536 + 16400) / 8)


def test_flash_and_letters_and_bad_packets() -> None:
    stream = event_packets("F", ts=1000, seq=1) + event_packets("D", ts=4000, seq=20)
    junk = [
        Rtp(101, True, 90, 9000, 0x1234, b"\x01"),  # too short
        Rtp(101, True, 91, 9500, 0x1234, struct.pack("!BBH", 40, 0x80, 800)),  # a tone event
    ]
    demux = Demux(pt=101)
    demux.feed(stream + junk)
    assert demux.text == "FD"
    assert demux.rx.stats.malformed == 1
    assert demux.rx.stats.unsupported_events == 1


def test_receiver_rejects_bad_payload_type() -> None:
    with pytest.raises(ValueError, match="payload type"):
        Rfc4733Receiver(200)


# -- sender -------------------------------------------------------------------------------


def test_sender_packet_sequence() -> None:
    sender = Rfc4733Sender(duration_ms=100, gap_ms=60, volume=12)
    sender.queue_digits("1#")
    ticks = []
    for _ in range(100):
        if not sender.active:
            break
        ticks.append(sender.next_packet())
    assert not sender.active
    first = ticks[:7]
    assert all(p is not None for p in first)
    assert [p.marker for p in first] == [True] + [False] * 6
    assert [p.timestamp_offset for p in first] == [160 * i for i in range(7)]
    assert [p.duration for p in first] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.end for p in first] == [False] * 4 + [True] * 3
    for p in first:
        event, flags, duration = struct.unpack("!BBH", p.payload)
        assert (event, flags & 0x3F, duration) == (1, 12, p.duration)
        assert bool(flags & 0x80) == p.end
    assert ticks[7:10] == [None, None, None]  # 60 ms gap
    second = ticks[10:17]
    assert [struct.unpack("!BBH", p.payload)[0] for p in second] == [11] * 7
    assert second[0].marker and second[0].timestamp_offset == 0
    assert len(ticks) == 20 and ticks[17:] == [None, None, None]
    assert sender.digits_sent == 2


def test_sender_duration_not_multiple_of_frame() -> None:
    sender = Rfc4733Sender(duration_ms=70, gap_ms=0)
    sender.queue_digits("*")
    pkts = []
    while sender.active:
        pkts.append(sender.next_packet())
    # 560 samples: 4 ticks, the last (E bit) carrying the exact total, then 2 more ends.
    assert [p.duration for p in pkts] == [160, 320, 480, 560, 560, 560]
    assert [p.end for p in pkts] == [False, False, False, True, True, True]


def test_sender_output_is_received_as_sent() -> None:
    sender = Rfc4733Sender(duration_ms=120, gap_ms=40)
    digits = "0123456789*#ABCDF"
    sender.queue_digits(digits.lower())
    demux = Demux(pt=101)
    media_ts, seq = 50000, 0
    packets: list[Rtp] = []
    while sender.active:
        p = sender.next_packet()
        if p is not None:
            packets.append(Rtp(101, p.marker, seq, media_ts - p.timestamp_offset, 77, p.payload))
            seq += 1
        media_ts += 160
    demux.feed(packets)
    assert demux.text == digits
    assert {d.duration_ms for d in demux.digits} == {120}
    assert all(d.ended for d in demux.digits)


def test_sender_validation() -> None:
    sender = Rfc4733Sender()
    with pytest.raises(ValueError, match="not a DTMF digit: 'x'"):
        sender.queue_digits("12x")
    assert not sender.active  # nothing queued from a rejected string
    assert validate_digits("") == "no digits given"
    assert validate_digits("0*#aF") is None
    with pytest.raises(ValueError, match="duration"):
        Rfc4733Sender(duration_ms=10)
    with pytest.raises(ValueError, match="gap"):
        Rfc4733Sender(gap_ms=-1)


def test_sender_cancel_finishes_current_event() -> None:
    sender = Rfc4733Sender(duration_ms=60, gap_ms=0)
    sender.queue_digits("123")
    sender.next_packet()
    sender.cancel()
    pkts = []
    while sender.active:
        pkts.append(sender.next_packet())
    assert {struct.unpack("!BBH", p.payload)[0] for p in pkts} == {1}
    assert [p.end for p in pkts][-3:] == [True, True, True]


# -- in-band -----------------------------------------------------------------------------

FS = 8000
KEYPAD = ("123A", "456B", "789C", "*0#D")


def dtmf_tone(
    digit: str,
    ms: int,
    *,
    low_dbfs: float = -10.0,
    high_dbfs: float = -10.0,
    deviation: float = 0.0,
    rng: np.random.Generator,
) -> np.ndarray:
    row = next(i for i, r in enumerate(KEYPAD) if digit in r)
    col = KEYPAD[row].index(digit)
    t = np.arange(FS * ms // 1000) / FS
    amp = lambda db: 32767 * 10 ** (db / 20)  # noqa: E731
    return amp(low_dbfs) * np.sin(
        2 * np.pi * LOW_FREQS[row] * (1 + deviation) * t + rng.uniform(0, 2 * np.pi)
    ) + amp(high_dbfs) * np.sin(
        2 * np.pi * HIGH_FREQS[col] * (1 + deviation) * t + rng.uniform(0, 2 * np.pi)
    )


def through_ulaw(x: np.ndarray) -> np.ndarray:
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return np.frombuffer(g711.decode(g711.PCMU, g711.encode(g711.PCMU, pcm)), dtype="<i2")


def detect(
    x: np.ndarray, chunk: int | None = None, config: InbandConfig | None = None
) -> list[DtmfDigit]:
    det = InbandDtmfDetector(config)
    out: list[DtmfDigit] = []
    if chunk is None:
        out += det.feed(x)
    else:
        for i in range(0, len(x), chunk):
            out += det.feed(x[i : i + chunk].astype("<i2").tobytes())
    return out + det.finish()


ALL_DIGITS = "0123456789*#ABCD"


@pytest.mark.parametrize(
    ("twist_low_db", "twist_high_db", "snr_db", "deviation"),
    [
        (0, 0, None, 0.0),
        (0, -6, 20, 0.0),  # normal twist: high group 6 dB weaker (line loss)
        (-3, 0, 20, 0.0),  # reverse twist: high group 3 dB stronger
        (0, 0, 10, 0.015),  # noisy line, frequencies 1.5% high
        (0, -4, 12, -0.015),
    ],
)
def test_inband_all_16_digits_with_twist_and_noise(
    twist_low_db: float, twist_high_db: float, snr_db: float | None, deviation: float
) -> None:
    rng = np.random.default_rng(4733)
    parts = []
    for d in ALL_DIGITS:
        parts.append(
            dtmf_tone(
                d,
                100,
                low_dbfs=-12 + twist_low_db,
                high_dbfs=-12 + twist_high_db,
                deviation=deviation,
                rng=rng,
            )
        )
        parts.append(np.zeros(FS * 60 // 1000))
    x = np.concatenate(parts)
    if snr_db is not None:
        tone_power = np.mean(np.concatenate(parts[::2]) ** 2)
        x = x + rng.normal(0, np.sqrt(tone_power / 10 ** (snr_db / 10)), x.size)
    digits = detect(through_ulaw(x))
    assert "".join(d.digit for d in digits) == ALL_DIGITS
    assert all(80 <= d.duration_ms <= 120 for d in digits)
    assert all(d.source == "inband" for d in digits)


def test_inband_rejects_excess_twist_and_single_tones_and_short_blips() -> None:
    rng = np.random.default_rng(1)
    too_much_twist = dtmf_tone("5", 200, low_dbfs=-8, high_dbfs=-22, rng=rng)
    t = np.arange(FS // 5) / FS
    single_tone = 8000 * np.sin(2 * np.pi * 941 * t)
    blip = dtmf_tone("5", 15, rng=rng)  # shorter than one block: never 2 consecutive hits
    quiet = dtmf_tone("5", 200, low_dbfs=-50, high_dbfs=-50, rng=rng)
    gap = np.zeros(800)
    x = np.concatenate([too_much_twist, gap, single_tone, gap, blip, gap, quiet, gap])
    assert detect(through_ulaw(x)) == []


def test_inband_chunked_input_and_gap_handling() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            dtmf_tone("1", 100, rng=rng),
            np.zeros(400),  # 50 ms pause between identical digits
            dtmf_tone("1", 100, rng=rng),
            dtmf_tone("2", 100, rng=rng),  # no pause: a change of digit
            np.zeros(800),
        ]
    )
    whole = detect(x)
    chunked = detect(x, chunk=37)
    assert "".join(d.digit for d in whole) == "112"
    assert [(d.digit, d.duration_ms) for d in chunked] == [(d.digit, d.duration_ms) for d in whole]


def test_inband_single_corrupt_block_does_not_split_a_digit() -> None:
    rng = np.random.default_rng(3)
    tone = dtmf_tone("8", 200, rng=rng)
    tone[800:960] = rng.normal(0, 3000, 160)  # one 20 ms block of noise mid-tone
    digits = detect(np.concatenate([tone, np.zeros(800)]))
    assert [d.digit for d in digits] == ["8"]


def make_speech(tmp_path: Path, text: str) -> np.ndarray:
    require_peer("espeak-ng", "sox")
    wav = tmp_path / "speech.wav"
    raw = tmp_path / "speech.raw"
    subprocess.run(
        [shutil.which("espeak-ng") or "espeak-ng", "-w", str(wav), text],
        check=True,
        timeout=60,
        capture_output=True,
    )
    subprocess.run(
        [
            shutil.which("sox") or "sox",
            str(wav),
            "-D",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            str(raw),
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )
    return np.fromfile(raw, dtype="<i2").astype(np.float64)


SPEECH = (
    "Hello, thank you for calling. Please say your account number: one two three four five "
    "six seven eight nine zero. The quick brown fox jumps over the lazy dog. How can I help "
    "you today? Press star or pound, or hold the line for an operator. Beep beep, ring ring."
)


def test_inband_no_false_digits_on_speech(tmp_path: Path) -> None:
    speech = make_speech(tmp_path, SPEECH)
    assert speech.size > FS * 5
    for gain in (0.5, 1.0, 2.5):  # quiet to hot (clipped) levels
        x = through_ulaw(np.clip(speech * gain, -32768, 32767))
        assert detect(x) == [], f"false digits at gain {gain}"
    det = InbandDtmfDetector()
    det.feed(through_ulaw(speech))
    assert det.stats.hit_frames == 0


def test_inband_digits_between_speech(tmp_path: Path) -> None:
    speech = make_speech(tmp_path, "Please enter your code now.")
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            speech,
            np.zeros(800),
            dtmf_tone("4", 120, rng=rng),
            np.zeros(600),
            dtmf_tone("2", 120, rng=rng),
            speech,
        ]
    )
    assert "".join(d.digit for d in detect(through_ulaw(x))) == "42"


# -- property: loss, duplication and local reordering never add or merge digits ---------------


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_property_each_digit_reported_exactly_once(data: st.DataObject) -> None:
    digits = data.draw(st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=6), label="digits")
    stream: list[Rtp] = []
    ts, seq = data.draw(st.integers(0, 2**32 - 1), label="ts0"), 0
    for digit in digits:
        pkts = event_packets(
            digit,
            ts=ts,
            seq=seq,
            duration_ms=data.draw(st.sampled_from([60, 100, 160, 180, 300])),
            update_ms=data.draw(st.sampled_from([20, 50])),
            same_seq_ends=data.draw(st.booleans()),
            marker=data.draw(st.booleans()),
            first_duration_zero=data.draw(st.booleans()),
        )
        # Loss (but keep at least one packet of the event), duplicates, and swaps of neighbours.
        drop = data.draw(
            st.lists(st.booleans(), min_size=len(pkts), max_size=len(pkts)), label="drop"
        )
        keep = [p for p, d in zip(pkts, drop, strict=True) if not d] or [pkts[-1]]
        dup = data.draw(
            st.lists(st.booleans(), min_size=len(keep), max_size=len(keep)), label="dup"
        )
        out = [q for p, d in zip(keep, dup, strict=True) for q in ((p, p) if d else (p,))]
        for i in data.draw(
            st.lists(st.integers(0, max(len(out) - 2, 0)), max_size=3), label="swaps"
        ):
            if i + 1 < len(out):
                out[i], out[i + 1] = out[i + 1], out[i]
        stream += out
        seq += len(pkts)
        ts = (ts + data.draw(st.integers(2400, 16000), label="gap")) & 0xFFFFFFFF
    demux = Demux(pt=101)
    demux.feed(stream)
    demux.idle(5.0)
    assert demux.text == digits
