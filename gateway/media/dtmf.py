"""DTMF: RFC 4733 telephone-event receive and send, and in-band (Goertzel) detection.

Digits are strings: '0'-'9', '*', '#', 'A'-'D', and 'F' for hook flash (event 16; 'F' is what
Asterisk's SendDTMF uses for flash).

`Rfc4733Receiver(payload_type)` (the stream matches the payload type from the SDP, which may be
101, 96 (linphone) or anything dynamic, and feeds only those packets):
- `feed(payload, timestamp, marker, seq, ssrc, now) -> list[DtmfDigit]`: decoded RTP fields of
  one telephone-event packet, `now` = monotonic seconds. Events are keyed on (ssrc, RTP
  timestamp): every packet of one event carries the event's start timestamp (RFC 4733 2.3.5).
  A digit is reported on its first end packet; the other two end packets and any retransmission
  (same seq, as SIPp's stock pcaps and linphone send, or incrementing seq, as baresip) are dropped.
  The marker bit is not relied on: starts without it, or a lost start packet, still open the event.
  De-duplication lasts `dedup_window` seconds (2 s) after an event's last packet: the same
  (ssrc, timestamp) after that is a new press (SIPp replaying one pcap twice sends identical packets).
- `poll(now) -> list[DtmfDigit]`: reports events whose end packets were all lost, `end_timeout`
  seconds after their last packet (also done when a newer event from the same SSRC starts). Call
  it from any periodic path (each received RTP packet, or a timer at `next_deadline`).
- Long events (RFC 4733 2.5.1.3): a segment whose duration reached 0xFFFF is continued by a new
  timestamp = old + old duration; those are merged into one digit, and a duration that wraps past
  0xFFFF inside one timestamp (non-conforming senders) is extended, never double-reported.

`Rfc4733Sender(duration_ms, gap_ms)`, driven one 20 ms tick at a time by `pacer.CallOutput`:
- `queue_digits("123#")` (ValueError naming a bad digit), `active`, `next_packet()`.
- `next_packet() -> DtmfPacket | None`: `None` during the inter-digit gap. A `DtmfPacket` has
  `payload` (4 bytes), `marker` (first packet of the event only), `timestamp_offset` (samples
  since the event start: the RTP timestamp is the tick's media timestamp minus this, so all
  packets of one event share the start timestamp), `duration` (samples, growing by 160 per tick)
  and `end`. The final packet has the E bit and is sent three times on consecutive ticks
  (RFC 4733 2.5.1.4: "at the interval used by the source for updates"). Audio is held meanwhile
  (CallOutput pauses the playout queue).

`InbandDtmfDetector` (off by default, enable per call for trunks that send tones as audio):
- `feed(pcm16) -> list[DtmfDigit]`: 8 kHz PCM16 (bytes little-endian, or a numpy array), any
  length. 20 ms blocks; the power at the 8 DTMF frequencies is computed for all blocks at once
  as a dot product with precomputed cos/sin tables, which is exactly the Goertzel magnitude at
  those frequencies without a per-sample Python recursion. A block is a hit when one low and one
  high tone each dominate their group, are loud enough, respect the twist limits and carry most
  of the block's energy; a digit needs `min_on_frames` (2 = 40 ms) consecutive hits and is
  reported on release (`min_off_frames` misses) with its duration.

Received DTMF is only ever reported upward; nothing here can send it back to the peer (echoing
RFC 4733 events to Asterisk made a 3,300 packet loop in 140 ms: peers.md).
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

FLASH = "F"
EVENT_DIGITS = "0123456789*#ABCD" + FLASH  # RFC 4733 3.2: events 0-15 DTMF, 16 flash
DIGIT_EVENTS = {d: i for i, d in enumerate(EVENT_DIGITS)}

CLOCK_RATE = 8000
FRAME_SAMPLES = 160
_MAX_DURATION = 0xFFFF
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True)
class DtmfDigit:
    digit: str
    duration_ms: int
    source: str  # "rfc4733" or "inband"
    ended: bool  # True: end packet seen / tone released; False: reported on timeout
    ssrc: int | None = None
    timestamp: int | None = None  # RFC 4733 event timestamp


def validate_digits(digits: str) -> str | None:
    """None if every character is a sendable digit, else an error naming the first bad one."""
    if not digits:
        return "no digits given"
    for ch in digits:
        if ch.upper() not in DIGIT_EVENTS:
            return f"not a DTMF digit: {ch!r} (allowed: 0-9 * # A-D, F = flash)"
    return None


# ------------------------------------------------------------------------------------------
# RFC 4733 receive


@dataclass
class ReceiverStats:
    packets: int = 0
    digits: int = 0
    duplicates: int = 0  # retransmitted ends, late updates of a reported event
    timeouts: int = 0  # digits reported without an end packet
    malformed: int = 0
    unsupported_events: int = 0  # events > 16 (tones, RFC 4734 codes)
    stale: int = 0  # packets of an older event arriving after a newer one


@dataclass
class _OpenEvent:
    ssrc: int
    timestamp: int  # start timestamp of the first segment (the key reported)
    segment_ts: int  # timestamp of the current segment
    event: int
    base: int = 0  # samples of earlier segments / wraps
    raw: int = 0  # largest duration field seen in the current segment
    last_seen: float = 0.0


def _ts_after(a: int, b: int) -> bool:
    """RTP timestamp a is later than b (modulo 2^32)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


class Rfc4733Receiver:
    def __init__(
        self,
        payload_type: int,
        *,
        clock_rate: int = CLOCK_RATE,
        end_timeout: float = 0.5,
        remember: int = 64,
        dedup_window: float = 2.0,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"telephone-event payload type must be 0..127, got {payload_type}")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self._open: dict[int, _OpenEvent] = {}
        # The same dict, read-only for callers: empty when no event waits for its end, so a
        # periodic caller tests it before asking `next_deadline` (a property, issue 14).
        self.open_events: Mapping[int, object] = self._open
        # (ssrc, event timestamp) -> when it was reported. Retransmitted ends arrive within
        # ~60 ms (RFC 4733 2.5.1.4); an identical event seen again after `dedup_window` is a new
        # key press from a sender that replays fixed packets (SIPp playing one pcap twice).
        self._done: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._remember = remember
        self.dedup_window = dedup_window
        self.stats = ReceiverStats()

    @property
    def next_deadline(self) -> float | None:
        if not self._open:
            return None
        return min(e.last_seen for e in self._open.values()) + self.end_timeout

    def feed(
        self, payload: bytes, timestamp: int, marker: bool, seq: int, ssrc: int, now: float
    ) -> list[DtmfDigit]:
        stats = self.stats
        stats.packets += 1
        if len(payload) < 4:
            stats.malformed += 1
            return []
        event, flags, duration = _EVENT.unpack_from(payload)
        end = bool(flags & 0x80)
        if event >= len(EVENT_DIGITS):
            stats.unsupported_events += 1
            return []
        key = (ssrc, timestamp)
        reported_at = self._done.get(key)
        if reported_at is not None:
            if now - reported_at < self.dedup_window:
                stats.duplicates += 1
                return []
            del self._done[key]
        out: list[DtmfDigit] = []
        current = self._open.get(ssrc)
        if current is not None and current.segment_ts != timestamp:
            if self._is_continuation(current, event, timestamp):
                self._remember_key((ssrc, current.segment_ts), now)
                current.base += current.raw
                current.raw = 0
                current.segment_ts = timestamp
            elif _ts_after(timestamp, current.segment_ts):
                out.append(self._report(current, ended=False))  # its end packets were lost
                current = None
            else:
                stats.stale += 1
                return out
        if current is None:
            current = _OpenEvent(ssrc, timestamp, timestamp, event)
            self._open[ssrc] = current
        if duration >= current.raw:
            current.raw = duration
        elif current.raw - duration > 0x8000:
            # The 16-bit duration wrapped within one timestamp (RFC 4733 forbids it, some
            # senders do it on events longer than 8.19 s): keep counting.
            current.base += 0x10000
            current.raw = duration
        current.last_seen = now
        if end:
            out.append(self._report(current, ended=True))
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        expired = [e for e in self._open.values() if now - e.last_seen >= self.end_timeout]
        return [self._report(e, ended=False) for e in expired]

    def _is_continuation(self, current: _OpenEvent, event: int, timestamp: int) -> bool:
        # RFC 4733 2.5.1.3: the next segment starts at old timestamp + 0xFFFF, without E bit
        # on the old segment. Allow one packet interval of slack for senders that round.
        if event != current.event or current.raw < _MAX_DURATION - FRAME_SAMPLES:
            return False
        gap = (timestamp - current.segment_ts) & 0xFFFFFFFF
        return abs(gap - current.raw) <= FRAME_SAMPLES

    def _remember_key(self, key: tuple[int, int], now: float) -> None:
        self._done[key] = now
        while len(self._done) > self._remember:
            self._done.popitem(last=False)

    def _report(self, e: _OpenEvent, *, ended: bool) -> DtmfDigit:
        del self._open[e.ssrc]
        self._remember_key((e.ssrc, e.segment_ts), e.last_seen)
        self._remember_key((e.ssrc, e.timestamp), e.last_seen)
        self.stats.digits += 1
        if not ended:
            self.stats.timeouts += 1
        samples = e.base + e.raw
        return DtmfDigit(
            digit=EVENT_DIGITS[e.event],
            duration_ms=round(samples * 1000 / self.clock_rate),
            source="rfc4733",
            ended=ended,
            ssrc=e.ssrc,
            timestamp=e.timestamp,
        )


# ------------------------------------------------------------------------------------------
# RFC 4733 send


@dataclass(frozen=True)
class DtmfPacket:
    payload: bytes
    marker: bool
    timestamp_offset: int  # samples since the event start; RTP ts = media ts - this
    duration: int  # samples, as in the payload
    end: bool
    digit: str


@dataclass
class _SendPlan:
    digit: str
    event: int
    total: int  # duration in samples
    tick: int = 0  # ticks sent for this event


class Rfc4733Sender:
    def __init__(
        self,
        *,
        duration_ms: int = 100,
        gap_ms: int = 60,
        volume: int = 10,
        end_repeats: int = 3,
        clock_rate: int = CLOCK_RATE,
    ) -> None:
        # 40 ms is the shortest digit Q.24 receivers must accept; a single segment caps at
        # 0xFFFF samples (8.19 s), and a voice bot never needs longer.
        if not 40 <= duration_ms <= 8000:
            raise ValueError(f"DTMF duration must be 40..8000 ms, got {duration_ms}")
        if not 0 <= gap_ms <= 5000:
            raise ValueError(f"DTMF gap must be 0..5000 ms, got {gap_ms}")
        if not 0 <= volume <= 63:
            raise ValueError(f"DTMF volume must be 0..63 (-dBm0), got {volume}")
        if end_repeats < 1:
            raise ValueError(f"end_repeats must be >= 1, got {end_repeats}")
        self.duration_samples = duration_ms * clock_rate // 1000
        self.gap_ticks = math.ceil(gap_ms * clock_rate / 1000 / FRAME_SAMPLES)
        self.volume = volume
        self.end_repeats = end_repeats
        self._pending: deque[str] = deque()
        self._current: _SendPlan | None = None
        self._gap_left = 0
        self.digits_sent = 0

    @property
    def active(self) -> bool:
        return self._current is not None or self._gap_left > 0 or bool(self._pending)

    def queue_digits(self, digits: str) -> None:
        error = validate_digits(digits)
        if error is not None:
            raise ValueError(error)
        self._pending.extend(ch.upper() for ch in digits)

    def cancel(self) -> None:
        """Drop digits not yet started (an event in progress still ends properly)."""
        self._pending.clear()

    def next_packet(self) -> DtmfPacket | None:
        if self._current is None:
            if self._gap_left > 0:
                self._gap_left -= 1
                return None
            if not self._pending:
                return None
            digit = self._pending.popleft()
            self._current = _SendPlan(digit, DIGIT_EVENTS[digit], self.duration_samples)
        plan = self._current
        k = plan.tick
        plan.tick += 1
        updates = math.ceil(plan.total / FRAME_SAMPLES)  # ticks until the E bit
        end = k >= updates - 1
        duration = plan.total if end else (k + 1) * FRAME_SAMPLES
        if k >= updates - 1 + self.end_repeats - 1:
            self._current = None
            self.digits_sent += 1
            self._gap_left = self.gap_ticks
        flags = (0x80 if end else 0) | self.volume
        return DtmfPacket(
            payload=_EVENT.pack(plan.event, flags, duration),
            marker=k == 0,
            timestamp_offset=k * FRAME_SAMPLES,
            duration=duration,
            end=end,
            digit=plan.digit,
        )


# ------------------------------------------------------------------------------------------
# In-band detection

LOW_FREQS = (697.0, 770.0, 852.0, 941.0)
HIGH_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
# Keypad: row = low tone, column = high tone.
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_FREQ_TOLERANCE = 0.015


@dataclass
class InbandConfig:
    enabled: bool = False  # per call; only trunks that send tones as audio need it
    min_level_dbfs: float = -36.0  # each tone's peak amplitude
    normal_twist_db: float = 8.0  # low tone may be this much louder than high (line loss)
    reverse_twist_db: float = 4.0  # high tone may be this much louder than low
    relative_peak_db: float = 8.0  # other tones of a group at least this far below its peak
    min_tone_fraction: float = 0.6  # the two tones' share of the block energy
    min_on_frames: int = 2  # 40 ms
    min_off_frames: int = 2


@dataclass
class InbandStats:
    frames: int = 0
    hit_frames: int = 0
    digits: int = 0


class InbandDtmfDetector:
    def __init__(self, config: InbandConfig | None = None, *, sample_rate: int = CLOCK_RATE):
        self.config = config if config is not None else InbandConfig()
        self.sample_rate = sample_rate
        self.block = sample_rate * 20 // 1000
        n = np.arange(self.block)
        # Each tone is probed at its nominal frequency and +-1.5% (the deviation Q.24 receivers
        # must accept): a 20 ms block's main lobe is only +-50 Hz wide, so a 1633 Hz tone 1.5%
        # off would otherwise lose 4 dB and fail the twist and energy tests.
        nominal = np.array(LOW_FREQS + HIGH_FREQS)
        freqs = np.concatenate(
            [nominal * (1 + d) for d in (-_FREQ_TOLERANCE, 0.0, _FREQ_TOLERANCE)]
        )
        phase = 2 * np.pi * np.outer(n, freqs) / sample_rate  # (block, 24)
        self._basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1).astype(np.float64)
        cfg = self.config
        min_amp = 32768.0 * 10 ** (cfg.min_level_dbfs / 20)
        self._min_power = (min_amp * self.block / 2) ** 2
        self._normal_twist = 10 ** (cfg.normal_twist_db / 10)
        self._reverse_twist = 10 ** (cfg.reverse_twist_db / 10)
        self._relative_peak = 10 ** (cfg.relative_peak_db / 10)
        self._pending = np.zeros(0, dtype=np.float64)
        self._digit: str | None = None  # candidate or active digit
        self._on = 0
        self._off = 0
        self.stats = InbandStats()

    def feed(self, pcm16: bytes | np.ndarray) -> list[DtmfDigit]:
        if isinstance(pcm16, bytes | bytearray | memoryview):
            samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
        else:
            samples = np.asarray(pcm16, dtype=np.float64)
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        count = samples.size // self.block
        self._pending = samples[count * self.block :]
        if not count:
            return []
        blocks = samples[: count * self.block].reshape(count, self.block)
        return [d for d in map(self._step, self._classify(blocks)) if d is not None]

    def finish(self) -> list[DtmfDigit]:
        """End of audio: report a digit still held."""
        out = (
            self._release()
            if self._digit is not None and self._on >= self.config.min_on_frames
            else None
        )
        self._digit, self._on, self._off = None, 0, 0
        return [out] if out else []

    def _classify(self, blocks: np.ndarray) -> list[str | None]:
        # One matrix product for all blocks; the per-block decisions on 8 numbers are cheaper
        # in plain Python than as a dozen tiny numpy operations (one block per call is the
        # common case: 20 ms of audio per received packet).
        proj = blocks @ self._basis  # (frames, 48): real and imaginary parts
        probes = proj[:, :24] ** 2 + proj[:, 24:] ** 2  # |X(f)|^2, as Goertzel gives
        power = probes.reshape(-1, 3, 8).max(axis=1).tolist()  # best of 3 probes per tone
        energy = np.einsum("ij,ij->i", blocks, blocks).tolist()
        out = [self._classify_block(p, e) for p, e in zip(power, energy, strict=True)]
        self.stats.frames += len(out)
        self.stats.hit_frames += sum(1 for d in out if d is not None)
        return out

    def _classify_block(self, power: list[float], energy: float) -> str | None:
        low, high = power[:4], power[4:]
        low_peak, high_peak = max(low), max(high)
        # A sine of amplitude A gives |X|^2 = (A * N / 2)^2.
        if low_peak < self._min_power or high_peak < self._min_power:
            return None
        if low_peak > high_peak * self._normal_twist or high_peak > low_peak * self._reverse_twist:
            return None
        row, col = low.index(low_peak), high.index(high_peak)
        if sorted(low)[-2] * self._relative_peak > low_peak:
            return None
        if sorted(high)[-2] * self._relative_peak > high_peak:
            return None
        # Energy of the two sines over the block is 2 |X|^2 / N each.
        if 2.0 * (low_peak + high_peak) / self.block < self.config.min_tone_fraction * energy:
            return None
        return _KEYPAD[row][col]

    def _step(self, hit: str | None) -> DtmfDigit | None:
        cfg = self.config
        out: DtmfDigit | None = None
        if hit is not None and hit == self._digit:
            self._on += 1
            self._off = 0
            return None
        if self._digit is not None and self._on >= cfg.min_on_frames:
            # Active digit: a different tone releases it at once; silence needs min_off_frames
            # so a single corrupted block does not split one key press into two.
            if hit is None:
                self._off += 1
                if self._off < cfg.min_off_frames:
                    return None
            out = self._release()
        if hit is not None:
            self._digit, self._on, self._off = hit, 1, 0
        else:
            self._digit, self._on, self._off = None, 0, 0
        return out

    def _release(self) -> DtmfDigit:
        self.stats.digits += 1
        assert self._digit is not None
        return DtmfDigit(digit=self._digit, duration_ms=self._on * 20, source="inband", ended=True)


@dataclass
class DtmfConfig:
    """Per-call DTMF settings (the `[dtmf]` config section maps onto this)."""

    send_duration_ms: int = 100
    send_gap_ms: int = 60
    send_volume: int = 10
    end_timeout: float = 0.5
    inband: InbandConfig = field(default_factory=InbandConfig)
