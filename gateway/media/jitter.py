"""Inbound reorder/jitter buffer for G.711: RTP packets in, contiguous audio frames out.

Sans-I/O: `push(packet, arrival)` and `pop_ready(now)` take the time as an argument (seconds on
any monotonic clock), so every behaviour is testable with a fake clock.

How it plays out (timestamp driven, not packet-count driven: aiortc's buffer stalls on a single
loss because it waits for packets rather than time, see docs):
- The audio at RTP time T (extended, in samples) is due at `base + T / rate + delay`. `base`
  is the smallest `arrival - timestamp / rate` seen (the fastest transit: anchored on a source's
  first packet, it moves earlier whenever a packet beats the schedule), so `delay` is the window
  granted for jitter above the fastest packets.
- `pop_ready(now)` releases everything due, in timestamp order. A packet that is still missing
  when its slot is due, while later audio is already buffered, is concealed with silence of the
  codec (0xFF u-law, 0xD5 A-law) for one packet duration, so the audio handed on is continuous
  in time. A packet arriving after its slot was concealed is late: dropped and counted.
- When the buffer runs dry (underrun: network stall, silence suppression) nothing is invented;
  the next packet re-anchors the schedule no earlier than its own arrival + delay, and the
  timestamp gap up to it (lost packets, a short DTX pause) is filled with silence at its due time.
  The rest of a burst after a stall pulls `base` back (fastest transit), so the backlog drains
  at once rather than staying as extra latency. A gap over `max_gap_ms` (default 1 s), or a
  timestamp jump backwards, is a discontinuity: no fill, re-anchor.
- `delay` adapts. Its target is the largest of: the floor `min_delay_ms` (default 20 ms), the
  jitter_factor (4) x RFC 3550 A.8 interarrival jitter, and the reorder need (below), bounded by
  `max_delay_ms` (default 200 ms). It rises at once when the target rises or a packet comes
  late (by its lateness, if that stays within the maximum), and decays by 0.5 ms per released
  frame, which only makes frames leave slightly sooner: nothing is discarded and no gap is
  made (the consumer, the Realtime input, is not a loudspeaker).
- Reorder need: a packet that arrives after its successor (in time or late) shows how far above
  the fastest transit the window had to reach to hold it (`arrival - base - T / rate`). The
  target is kept at least that high, and that need decays like the delay (0.5 ms per released
  frame), so a reorder burst raises the window and a clean link brings it back to the floor.
- Why a 20 ms floor (one packet time of the usual 20 ms ptime) and not the former 40 ms: in-order
  packets never need the window (one that misses its slot while nothing later is buffered is
  an underrun: the schedule re-anchors on it, nothing is concealed), and a paced sender's own
  timer jitter keeps 4 x A.8 jitter under the floor (bench/latency.py at 100 calls on loopback:
  the window stayed at 20 ms, no packet late; docs/benchmarks.md, adaptive inbound hold). The
  window only saves a packet overtaken by a later one, which takes more than one packet time of
  extra transit: 20 ms holds a packet overtaken by one successor at 10 ms ptime outright; at
  20/30/60 ms ptimes measured jitter raises the window first, or the first late packet does.
- Release granularity: `pop_ready` can only release what is due when it is called. `stream.py`
  calls it right after each `push` (release on arrival) and once per 20 ms frame in the call's
  slot (`tick`, for what a stall or a reorder leaves due). With a window of one packet time,
  packet n is due when packet n+1 arrives, so the hold is ~20 ms whatever the phase between the
  peer's sending and the call's slot; released only on the tick, it would be `delay` plus
  0-20 ms. The factor is 4, not 3, because the tick no longer adds its slack: at 0-30 ms of
  jitter 3 x A.8 gave 1.1-1.2 % late packets, 4 x gives under 0.05 %. `next_due` says when the
  head frame becomes due, for a timer.
- Clock drift between the peer and us is absorbed by the same two mechanisms (a slow peer
  causes underruns that re-anchor later, a fast one moves `base` earlier); nothing stretches or
  resamples audio.
- Packet durations come from the payload (G.711: one byte per sample) and the timestamps, so any
  ptime from 10 to 60 ms (up to `max_packet_ms`) is accepted whatever the SDP said; concealment
  uses the duration of the last in-order packet.
- SSRC change (SBC failover, transfer): what is buffered from the old source is released at once
  (its gaps filled), sequence and timestamp state restart from the new source, and `media_time`
  carries on. Stragglers from the previous SSRC are dropped as late. A sequence jump of more than
  3000 (RFC 3550 A.1 MAX_DROPOUT) is believed only when the next packet confirms it.
- A packet whose timestamp is more than `max_gap_ms` from the stream's (before the newest
  in-order packet or after its end) is only believed as a forward step in sequence (a jump:
  re-anchor, as above); anything else is dropped as invalid. Buffered, one such packet (an older
  sequence number with a timestamp 2**31 ahead) pulled `base` back by days and made `pop_ready`
  conceal the whole distance: 13 million silence frames, 2 GB and 30 s of CPU from one datagram.
- Concealment never runs ahead of real time: it spends a credit of samples that refills at the
  clock rate (at most `max_gap`), and a gap that needs more is left unfilled (`conceal_skipped`);
  honest loss never conceals more than the time that passed. It also steps at least 10 ms, not
  the last packet's duration: 1-sample packets, each jumping its timestamp just under
  `max_gap`, had each gap concealed one sample per frame (~7000 frames per datagram, 14 million
  and 12 s of CPU for one second of them; with the stream's rate bound, at least 5 ms of audio
  per packet, and these two: ~300 frames a second).

- Bounded: at most `max_packets` (default 256, over 2 s of 10 ms packets, ten times what the
  200 ms window ever holds) are buffered; a packet beyond that is dropped and counted
  (`overflow`), so no sender can grow a call's memory.

`media_time` of a `Frame` is in samples (8 kHz) since the stream started: it is simply the count
of samples handed on before it, so it never has holes or overlaps, even across SSRC changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from gateway.media.g711 import PCMU, silence_byte
from gateway.media.rtp import RtpPacket, seq_delta
from gateway.media.stats import MAX_DROPOUT, MAX_MISORDER, InterarrivalJitter

T = TypeVar("T")

DEFAULT_MIN_DELAY_MS = 20.0  # one 20 ms packet time; see the module docstring
DEFAULT_MAX_DELAY_MS = 200.0
DEFAULT_JITTER_FACTOR = 4.0  # see 'Release granularity' above
DEFAULT_MAX_GAP_MS = 1000.0
DEFAULT_MAX_PACKET_MS = 120.0
DEFAULT_MAX_PACKETS = 256
_DECAY_PER_FRAME = 0.0005  # seconds of delay given back per released frame
_RECENT_SEQS = 512  # how far back duplicates are recognised (a power of two)


class Frame(NamedTuple):
    """G.711 audio handed on in order. `media_time` is in samples since the stream started.
    (A NamedTuple: built for every packet, and 3x cheaper to create than a frozen dataclass.)"""

    payload: bytes
    media_time: int
    concealed: bool = False

    @property
    def samples(self) -> int:
        return len(self.payload)


@dataclass(slots=True)
class JitterStats:
    pushed: int = 0
    released_frames: int = 0
    concealed_frames: int = 0
    concealed_samples: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    invalid: int = 0  # empty/oversized payloads, unconfirmed sequence jumps, far-off timestamps
    resyncs: int = 0  # discontinuities within one SSRC (sequence or timestamp jumps)
    overflow: int = 0  # dropped because `max_packets` were already buffered
    ssrc_changes: int = 0
    underruns: int = 0
    conceal_skipped: int = 0  # gaps left unfilled: more concealment than real time allows


class PyJitterBuffer:
    """The pure-Python jitter buffer. `JitterBuffer` (below) is the compiled twin in
    `_jitter.c` when it is built and not switched off, else this class."""

    def __init__(
        self,
        codec: str = PCMU,
        *,
        min_delay_ms: float = DEFAULT_MIN_DELAY_MS,
        max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
        jitter_factor: float = DEFAULT_JITTER_FACTOR,
        max_gap_ms: float = DEFAULT_MAX_GAP_MS,
        max_packet_ms: float = DEFAULT_MAX_PACKET_MS,
        clock_rate: int = 8000,
        max_packets: int = DEFAULT_MAX_PACKETS,
    ) -> None:
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError(
                f"jitter buffer needs 0 <= min_delay_ms <= max_delay_ms, got {min_delay_ms}/{max_delay_ms}"
            )
        if max_packets < 1:
            raise ValueError(f"jitter buffer needs max_packets >= 1, got {max_packets}")
        if not 1 <= clock_rate <= 1_000_000:
            raise ValueError(f"jitter buffer needs 1 <= clock_rate <= 1000000, got {clock_rate}")
        self._max_packets = max_packets
        self._silence = bytes((silence_byte(codec),))
        self._rate = clock_rate
        self._min_delay = min_delay_ms / 1000.0
        self._max_delay = max_delay_ms / 1000.0
        self._factor = jitter_factor
        self._max_gap = int(max_gap_ms * clock_rate / 1000)
        self._max_packet = int(max_packet_ms * clock_rate / 1000)
        self._delay = self._min_delay
        self._reorder_need = 0.0  # seconds above the fastest transit a reordered packet needed
        # max(min_delay, reorder need): the per-packet target computation uses it in place of
        # min_delay, so following reorders costs nothing per in-order packet.
        self._floor = self._min_delay
        self._target = self._min_delay  # max(floor, jitter_factor x A.8 jitter), bounded
        self._jitter = InterarrivalJitter(clock_rate)
        self._buffer: dict[int, bytes] = {}  # extended timestamp -> payload
        self._ready: list[Frame] = []
        self._media_time = 0
        self._frame_samples = clock_rate // 50  # 20 ms until a packet says otherwise
        self._min_conceal = max(clock_rate // 100, 1)  # the shortest concealment step: 10 ms
        # Concealment never runs ahead of real time: a credit of samples that refills at the
        # clock rate up to max_gap (see _take_credit).
        self._credit = float(self._max_gap)
        self._credit_at: float | None = None
        self._ssrc: int | None = None
        self._previous_ssrc: int | None = None
        self._probe: tuple[RtpPacket, float] | None = None
        # Ring of recently accepted extended sequence numbers, indexed by seq % _RECENT_SEQS:
        # one list store per packet instead of a set plus an eviction queue.
        self._recent: list[int | None] = [None] * _RECENT_SEQS
        self._reset_source_state(0, 0, 0, 0.0)
        self.stats = JitterStats()

    def set_codec(self, codec: str) -> None:
        """The codec changed (answer, re-INVITE): conceal with its silence byte from now on.
        Sequence, timing and media time carry on."""
        self._silence = bytes((silence_byte(codec),))

    # -- state -------------------------------------------------------------------------------

    def _reset_source_state(self, seq: int, raw_ts: int, ext_ts: int, arrival: float) -> None:
        self._highest_seq = seq  # extended, starts at the first packet's number
        self._highest_seq_raw = seq & 0xFFFF
        self._ts_ref = ext_ts  # extended timestamp of the newest in-order packet
        self._ts_ref_raw = raw_ts
        self._ts_end = ext_ts  # end (extended) of the newest in-order packet
        self._base = arrival - ext_ts / self._rate
        self._next_ts: int | None = None
        self._underrun = False
        self._recent = [None] * _RECENT_SEQS

    def _start_source(self, packet: RtpPacket, arrival: float) -> None:
        self._ssrc = packet.ssrc
        self._probe = None
        self._jitter.restart()
        self._reset_source_state(packet.sequence_number, packet.timestamp, 0, arrival)

    def _restart(self, packet: RtpPacket, arrival: float) -> None:
        """Discontinuity: hand on what is buffered, then anchor afresh on `packet`."""
        self._flush_buffered()
        self._start_source(packet, arrival)

    @property
    def delay_ms(self) -> float:
        return self._delay * 1000.0

    @property
    def target_ms(self) -> float:
        """What `delay` decays towards: max(floor, factor x A.8 jitter, reorder need)."""
        return self._target * 1000.0

    @property
    def next_due(self) -> float | None:
        """When (on the clock of `push`/`pop_ready`) the next buffered frame becomes due, or
        None when nothing is buffered. Polling at this time instead of on a fixed grid removes
        the wait for the next poll from the hold."""
        buffer = self._buffer
        if not buffer:
            return None
        ts = self._next_ts
        if ts is None:
            ts = min(buffer)
        return self._base + ts / self._rate + self._delay

    @property
    def jitter_ms(self) -> float:
        return self._jitter.jitter_ms

    @property
    def buffered_ms(self) -> float:
        samples = sum(len(p) for p in self._buffer.values())
        return samples * 1000.0 / self._rate

    @property
    def media_time(self) -> int:
        """Samples handed on so far (the media_time of the next frame)."""
        return self._media_time

    # -- input -------------------------------------------------------------------------------

    def push(self, packet: RtpPacket, arrival: float) -> None:
        """Add one audio packet (never RFC 4733 or CN: the stream routes those elsewhere)."""
        stats = self.stats
        stats.pushed += 1
        size = len(packet.payload)
        if size == 0 or size > self._max_packet:
            stats.invalid += 1
            return
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                if packet.ssrc == self._previous_ssrc:
                    stats.late += 1  # in flight from the source we already switched away from
                    return
                self._flush_buffered()
                self._previous_ssrc = self._ssrc
                stats.ssrc_changes += 1
            self._start_source(packet, arrival)
        # seq_delta inlined: this runs for every packet.
        ahead = ((packet.sequence_number - self._highest_seq_raw + 0x8000) & 0xFFFF) - 0x8000
        if ahead > MAX_DROPOUT or ahead < -MAX_MISORDER:
            probe = self._probe
            if probe is not None and packet.sequence_number == (
                (probe[0].sequence_number + 1) & 0xFFFF
            ):
                # RFC 3550 A.1: two sequential packets after a jump: the sender restarted.
                stats.resyncs += 1
                self._restart(probe[0], probe[1])
                self._accept(probe[0], probe[1], 0)
                ahead = seq_delta(packet.sequence_number, self._highest_seq_raw)
            else:
                self._probe = (packet, arrival)
                stats.invalid += 1
                return
        self._accept(packet, arrival, ahead)

    def _accept(self, packet: RtpPacket, arrival: float, ahead: int) -> None:
        stats = self.stats
        seq = self._highest_seq + ahead
        if self._recent[seq & (_RECENT_SEQS - 1)] == seq:
            stats.duplicates += 1
            return
        payload = packet.payload
        size = len(payload)
        ext_ts = self._ts_ref + (
            ((packet.timestamp - self._ts_ref_raw + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        )
        if ahead > 0 and ext_ts - self._ts_end > self._max_gap:
            # A long silence-suppression pause or a timestamp jump: not worth filling.
            stats.resyncs += 1
            self._restart(packet, arrival)
            self._accept(packet, arrival, 0)
            return
        next_ts = self._next_ts
        if next_ts is not None and ext_ts + size <= next_ts:
            if ahead > 0 and next_ts - ext_ts > self._max_gap:
                stats.resyncs += 1  # timestamps went backwards in sequence: sender reset them
                self._restart(packet, arrival)
                self._accept(packet, arrival, 0)
                return
            stats.late += 1
            if ahead < 0:
                stats.reordered += 1
            self._recent[seq & (_RECENT_SEQS - 1)] = seq  # a second copy is a duplicate
            # Widen the window by the lateness, unless no allowed window could have saved it
            # (an outlier after a stall): one straggler must not pin the delay at the maximum.
            lateness = arrival - (self._base + ext_ts / self._rate + self._delay)
            if 0 < lateness and self._delay + lateness <= self._max_delay:
                self._delay += lateness
                if ahead < 0:
                    # Overtaken by a later packet: keep the target there, decaying (a reorder
                    # burst would otherwise lose one packet per decay cycle).
                    self._raise_reorder_need(self._delay)
            return
        if ext_ts in self._buffer:
            stats.duplicates += 1  # same timestamp under another sequence number
            return
        if len(self._buffer) >= self._max_packets:
            stats.overflow += 1
            return
        if self._ts_ref - ext_ts > self._max_gap or ext_ts - self._ts_end > self._max_gap:
            # More than max_gap from the stream's timestamps although not a forward jump in
            # sequence (handled above): buffered, it would pull `base` back by up to 2**31
            # samples and make pop_ready conceal the whole distance (one packet, hours of
            # silence frames). Forward in sequence it is a timestamp reset; else hostile.
            if ahead > 0:
                stats.resyncs += 1
                self._restart(packet, arrival)
                self._accept(packet, arrival, 0)
                return
            stats.invalid += 1
            return
        if ahead < 0:
            stats.reordered += 1
            if not self._underrun:  # else the schedule re-anchors below: no need measured
                # In time, but only because the window reached this far above the fastest
                # transit (negative when this packet is the fastest yet: no need).
                self._raise_reorder_need(arrival - self._base - ext_ts / self._rate)
        else:
            self._highest_seq = seq
            self._highest_seq_raw = packet.sequence_number
            if ext_ts >= self._ts_ref:
                self._ts_ref = ext_ts
                self._ts_ref_raw = packet.timestamp
                if ext_ts + size > self._ts_end:
                    self._ts_end = ext_ts + size
                # Concealment steps follow the packets' duration, but never below 10 ms: a
                # sender of 1-sample packets with timestamp gaps would otherwise have each gap
                # concealed one sample per frame (thousands of frames per datagram).
                self._frame_samples = size if size > self._min_conceal else self._min_conceal
        self._recent[seq & (_RECENT_SEQS - 1)] = seq
        self._buffer[ext_ts] = payload
        self._jitter.update(ext_ts, arrival)
        implied_base = arrival - ext_ts / self._rate
        if self._underrun:
            # Re-anchor after running dry so the rest of the stream gets its full window again.
            self._base = max(self._base, implied_base)
            self._underrun = False
        elif implied_base < self._base:
            # The schedule follows the fastest packets (minimum transit); the window covers the
            # jitter above it. This also lets a burst after a stall drain at once instead of
            # keeping the stall as permanent extra latency.
            self._base = implied_base
        # min(max_delay, max(floor, factor x jitter)) without two builtin calls per packet
        # (bench/jitter_ab.py).
        target = self._factor * self._jitter.jitter / self._rate
        if target < self._floor:
            target = self._floor
        if target > self._max_delay:
            target = self._max_delay
        self._target = target
        if target > self._delay:
            self._delay = target

    def _raise_reorder_need(self, need: float) -> None:
        if need > self._reorder_need:
            need = self._reorder_need = min(need, self._max_delay)
            if need > self._floor:
                self._floor = need
            if need > self._target:
                self._target = need

    # -- output ------------------------------------------------------------------------------

    def pop_ready(self, now: float) -> list[Frame]:
        """Frames due at `now`, in order and contiguous in media time."""
        # Everything with a timestamp up to `due` is due: one float computation per call.
        due = (now - self._base - self._delay) * self._rate
        out = self._ready
        if not out:
            next_ts = self._next_ts
            if next_ts is not None and next_ts > due:
                # Nothing due (most clock ticks on a clean link: release on arrival took the
                # frame already): the loop below would break at once and the underrun mark
                # needs next_ts <= due, so skip the list swap, min() and the checks.
                return []
        self._ready = []
        buffer = self._buffer
        while buffer:
            head = min(buffer)
            next_ts = self._next_ts
            if next_ts is None:
                next_ts = head
            if next_ts > due:
                break
            if head == next_ts:
                # The in-order case, `_release` inlined (one call less per packet).
                payload = buffer.pop(head)
                size = len(payload)
                out.append(Frame(payload, self._media_time, False))
                self._media_time += size
                self._next_ts = head + size
                self.stats.released_frames += 1
                if self._reorder_need:
                    self._decay_reorder_need()
                if self._delay > self._target:
                    delay = self._delay - _DECAY_PER_FRAME
                    self._delay = delay if delay > self._target else self._target
            elif head < next_ts:
                self._release(buffer.pop(head), head, next_ts, out)
                if self._reorder_need:
                    self._decay_reorder_need()
                if self._delay > self._target:
                    self._delay = max(self._target, self._delay - _DECAY_PER_FRAME)
            else:
                step = min(self._frame_samples, head - next_ts)
                if not self._take_credit(step, now):
                    # More concealment than real time allows (a sender whose timestamps run
                    # ahead): the rest of this gap is skipped, not filled.
                    self.stats.conceal_skipped += 1
                    self._next_ts = head
                    continue
                self._conceal(step, out)
                self._next_ts = next_ts + step
        if not buffer and not self._underrun and self._next_ts is not None:
            if self._next_ts <= due:
                self._underrun = True
                self.stats.underruns += 1
        return out

    def _take_credit(self, samples: int, now: float) -> bool:
        """Spend `samples` of concealment credit, refilled by the real time since the last
        refill, at most max_gap; False when there is not enough.
        Loss never conceals more than the time that passed, so a legitimate stream always has
        the credit; a sender whose timestamps run ahead of real time (gaps of up to max_gap in
        every datagram) would otherwise have the buffer conceal up to a second per packet."""
        credit = self._credit
        at = self._credit_at
        if at is None:
            self._credit_at = now
        elif now > at:
            credit += (now - at) * self._rate
            if credit > self._max_gap:
                credit = float(self._max_gap)
            self._credit_at = now
        if credit < samples:
            self._credit = credit
            return False
        self._credit = credit - samples
        return True

    def _decay_reorder_need(self) -> None:
        need = self._reorder_need - _DECAY_PER_FRAME
        if need < 0.0:
            need = 0.0
        self._reorder_need = need
        floor = self._floor = max(self._min_delay, need)
        jitter_target = self._factor * self._jitter.jitter / self._rate
        self._target = min(self._max_delay, max(floor, jitter_target))

    def _release(self, payload: bytes, ts: int, next_ts: int, out: list[Frame]) -> None:
        if ts < next_ts:
            # Overlaps audio already handed on (a peer changing ptime mid-stream): keep the rest.
            payload = payload[next_ts - ts :]
            ts = next_ts
        out.append(Frame(payload, self._media_time, False))
        self._media_time += len(payload)
        self._next_ts = ts + len(payload)
        self.stats.released_frames += 1

    def _conceal(self, samples: int, out: list[Frame]) -> None:
        out.append(Frame(self._silence * samples, self._media_time, True))
        self._media_time += samples
        self.stats.concealed_frames += 1
        self.stats.concealed_samples += samples

    def _flush_buffered(self) -> None:
        """Hand on everything buffered now, filling the gaps between packets (they were lost)."""
        out = self._ready
        next_ts = self._next_ts
        for ts in sorted(self._buffer):
            payload = self._buffer[ts]
            if next_ts is None:
                next_ts = ts
            if ts + len(payload) <= next_ts:
                self.stats.late += 1
                continue
            if ts > next_ts:
                if ts - next_ts <= self._max_gap:
                    while next_ts < ts:
                        step = min(self._frame_samples, ts - next_ts)
                        self._conceal(step, out)
                        next_ts += step
                next_ts = ts
            self._release(payload, ts, next_ts, out)
            next_ts = self._next_ts
        self._buffer.clear()
        self._next_ts = None


# -- the implementation in use -------------------------------------------------------------------
# As websockets ships its C speedups: `_jitter.c` is an optional extension (setup.py); where it is
# built it replaces the pure class, which stays importable as `PyJitterBuffer` and is used where
# the extension is missing (a machine without a compiler) or when SRG_PURE_PYTHON=1 is set.
# tests/media/test_jitter_parity.py holds the two to identical output on the same input. The same
# extension holds the other compiled twins (the RTP paths, the playout queue, the pacer's tick),
# bound by `compiled_twin` and selected by this switch too (`select_twin`).
PURE_PYTHON_ENV = "SRG_PURE_PYTHON"
JitterBuffer: type[PyJitterBuffer] = PyJitterBuffer
IMPLEMENTATION = "python"  # what `run` logs and `check` reports: "c" or "python"
IMPLEMENTATION_REASON = "the extension gateway.media._jitter is not built"


def compiled_twin(name: str, bind: str, *bind_args: Any) -> Any | None:
    """The extension's `name`, after `_jitter.<bind>(*bind_args)` handed it the Python objects it
    builds, reads or updates; None when the extension is not built, or was built from sources
    older than `name`."""
    try:
        from gateway.media import _jitter  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not hasattr(_jitter, name):
        return None
    getattr(_jitter, bind)(*bind_args)
    return getattr(_jitter, name)


def _bind_extension() -> type[PyJitterBuffer] | None:
    """The compiled class, bound to this module's Frame/JitterStats, or None when not built."""
    return compiled_twin(  # type: ignore[no-any-return]
        "JitterBuffer", "_bind", Frame, JitterStats, silence_byte
    )


def _select() -> None:
    global JitterBuffer, IMPLEMENTATION, IMPLEMENTATION_REASON
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        IMPLEMENTATION_REASON = f"{PURE_PYTHON_ENV} is set"
        return
    extension = _bind_extension()
    if extension is None:
        return
    JitterBuffer = extension
    IMPLEMENTATION = "c"
    IMPLEMENTATION_REASON = "compiled extension gateway.media._jitter"


_select()


# -- the other compiled pieces of the same extension --------------------------------------------
# The inbound and outbound RTP paths (inbound.py, outbound.py), the playout queue (playout.py)
# and the pacer's tick (pacer.py) have their compiled twins in this extension too, selected by
# the same switch: one helper binds and selects each.


def select_twin(pure: T, bind: Callable[[], T | None]) -> tuple[T, str]:
    """(the implementation in use, "c" or "python"): the compiled twin from `bind()` when the
    jitter buffer is compiled (so SRG_PURE_PYTHON switches every piece) and the twin is built,
    else `pure`."""
    if IMPLEMENTATION != "c":
        return pure, "python"
    compiled = bind()
    return (pure, "python") if compiled is None else (compiled, "c")
