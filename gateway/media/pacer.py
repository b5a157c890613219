"""One shared media clock per process, and the per-call outbound tick built on it.

Why: relative sleeps (`asyncio.sleep(0.02)` or `call_later` re-armed in the callback) drift by
0.5-1.8 s per minute because every wakeup is rounded up; absolute `call_at(epoch + k * 20 ms)`
deadlines drift by at most a millisecond per minute (measurements, section 7). One clock for all
calls with staggered slots costs about half the CPU of a timer per call and keeps 500 calls from
waking at the same instant.

`MediaClock`
- `register(tick) -> ClockRegistration`; `tick(frame_index: int, deadline: float)` is called once
  per 20 ms frame. `frame_index` counts periods since the clock epoch (so the gap between two
  calls says how many frames were skipped), `deadline` is the absolute `loop.time()` at which the
  frame was due. `registration.cancel()` (or `clock.unregister(reg)`) stops it.
- Each registration gets a slot: `slot * period / slots` is added to its deadlines (20 slots of
  1 ms by default, least-loaded slot first), so calls are spread over the period.
- Deadlines are `epoch + k * period + slot_offset`, scheduled with `loop.call_at`: lateness of
  one wakeup never shifts the next deadline, so drift cannot accumulate.
- Late-tick policy (explicit, counted in `LatenessStats`): when a slot wakes up with several
  frames already due (the loop was blocked), it runs at most `max_catchup` frames at once per call
  (burst bound: `max_catchup` packets, default 3 = 60 ms of audio, which a peer jitter buffer
  absorbs) and skips the older due frames. A skipped frame consumes no audio: the model audio is
  delayed rather than lost, and the per-call tick sees the jump in `frame_index`, so the RTP
  timestamp can jump with it and the marker bit is set on the next frame.
- Time source: `loop.time()` (monotonic). The clock only needs `time()` and `call_at()`, so tests
  drive it with a fake loop.
- Exceptions in a tick are caught (a bug in one call must not stop the media of 499 others),
  counted in `stats.tick_errors`, and logged once per registration.

`CallOutput` (one per call): what one tick sends. Per tick it calls exactly one of
- `send_frame(payload, marker)`: a 160-byte G.711 frame (audio or silence). The stream stamps it
  with its current media timestamp, then advances that timestamp by 160.
- `send_event(payload, marker, timestamp_offset)`: an RFC 4733 packet (PT telephone-event). Its
  RTP timestamp is `current media timestamp - timestamp_offset` (the event start, RFC 4733
  2.3.5); the media timestamp then advances by 160 like any tick.
- `send_comfort_noise(payload)`: an RFC 3389 packet (PT 13); media timestamp then += 160.
- `advance(samples)`: nothing is sent this tick (idle policy NOTHING, between CN refreshes, or
  frames skipped by the clock); the media timestamp advances so timestamps stay continuous.
Only `send_frame` is mandatory. Without `send_event` DTMF sending is refused; without
`send_comfort_noise` the CN policy falls back to silence frames; without `advance` gaps are not
reflected in timestamps. Received DTMF never reaches this object, so it cannot be echoed.

`PlayoutQueue` lives in `playout.py` and is re-exported here (the architecture names `pacer`).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.media import jitter as _jitter_module
from gateway.media.dtmf import Rfc4733Sender
from gateway.media.playout import (
    FRAME_SAMPLES,
    FlushReport,
    FrameKind,
    IdlePolicy,
    PlayoutFrame,
    PlayoutQueue,
)

__all__ = [
    "CallOutput",
    "ClockRegistration",
    "FlushReport",
    "IdlePolicy",
    "LatenessStats",
    "MediaClock",
    "PlayoutFrame",
    "PlayoutQueue",
    "PyCallOutput",
    "PyTickWatch",
    "TickWatch",
    "run_slot",
    "shared_clock",
]

log = logging.getLogger(__name__)

PERIOD = 0.020
DEFAULT_SLOTS = 20
DEFAULT_MAX_CATCHUP = 3

TickFn = Callable[[int, float], None]
# Module constants: one global load per tick instead of a class attribute lookup.
_AUDIO = FrameKind.AUDIO
_SILENCE = FrameKind.SILENCE


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class TickHost(Protocol):
    """An object whose own clock callback runs `output_tick` after its work, then
    `after_tick` (RtpStream)."""

    output_tick: TickFn | None
    after_tick: Callable[[], None] | None
    tick_watch: Any


class ClockLoop(Protocol):
    """The part of an asyncio loop the clock uses (a fake loop in tests)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...


# Lateness histogram bucket upper bounds, seconds (Prometheus-style, `le`).
LATENESS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.010, 0.020, 0.050, 0.100, 0.500)


@dataclass
class LatenessStats:
    """Slot wakeup lateness (now - deadline of the first due frame), plus the late-tick policy."""

    wakeups: int = 0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS) + 1))
    max_lateness: float = 0.0
    sum_lateness: float = 0.0
    catchup_frames: int = 0  # frames run immediately because they were already overdue
    skipped_frames: int = 0  # per-call frames skipped (beyond max_catchup)
    ticks: int = 0  # per-call tick calls
    tick_errors: int = 0

    def observe(self, lateness: float) -> None:
        self.wakeups += 1
        lateness = max(lateness, 0.0)
        self.sum_lateness += lateness
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        self.bucket_counts[bisect.bisect_left(LATENESS_BUCKETS, lateness)] += 1

    def quantile(self, q: float) -> float:
        """Upper bound of the histogram bucket holding quantile q (inf past the last bucket)."""
        if not self.wakeups:
            return 0.0
        target = q * self.wakeups
        seen = 0
        for bound, count in zip((*LATENESS_BUCKETS, float("inf")), self.bucket_counts, strict=True):
            seen += count
            if seen >= target:
                return bound
        return float("inf")


class ClockRegistration:
    __slots__ = ("_clock", "active", "error_logged", "slot", "tick")

    def __init__(self, clock: MediaClock, tick: TickFn, slot: int) -> None:
        self._clock = clock
        self.tick = tick
        self.slot = slot
        self.active = True
        self.error_logged = False

    def cancel(self) -> None:
        self._clock.unregister(self)


class _Slot:
    __slots__ = ("frame", "handle", "members", "offset")

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.members: tuple[ClockRegistration, ...] = ()
        self.handle: TimerHandle | None = None
        self.frame = 0  # index of the next frame this slot fires for


class MediaClock:
    def __init__(
        self,
        loop: ClockLoop | None = None,
        *,
        period: float = PERIOD,
        slots: int = DEFAULT_SLOTS,
        max_catchup: int = DEFAULT_MAX_CATCHUP,
        lead: float = 0.0,
    ) -> None:
        """`lead`: arm each slot timer this many seconds before its deadline. uvloop's timers have 1 ms granularity and fire after the deadline
        (measured p50 lateness ~0.8 ms with one call); a lead makes the wakeup straddle the
        deadline instead, so frames go out up to `lead` early rather than ~1 ms late. A
        constant offset is not jitter to the peer; the deadlines themselves do not move."""
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if max_catchup < 1:
            raise ValueError(f"max_catchup must be >= 1, got {max_catchup}")
        if not 0 <= lead < period / 2:
            raise ValueError(f"lead must be >= 0 and < period/2, got {lead}")
        self.lead = lead
        self._loop: ClockLoop = loop if loop is not None else asyncio.get_running_loop()
        self.period = period
        self.max_catchup = max_catchup
        self.epoch = self._loop.time()
        self._slots = [_Slot(i * period / slots) for i in range(slots)]
        self.stats = LatenessStats()
        self._closed = False

    @property
    def registrations(self) -> int:
        return sum(len(s.members) for s in self._slots)

    def deadline(self, frame_index: int, slot: int) -> float:
        return self.epoch + frame_index * self.period + self._slots[slot].offset

    def register(self, tick: TickFn) -> ClockRegistration:
        if self._closed:
            raise RuntimeError("MediaClock is closed")
        index = min(range(len(self._slots)), key=lambda i: len(self._slots[i].members))
        slot = self._slots[index]
        reg = ClockRegistration(self, tick, index)
        slot.members = (*slot.members, reg)
        if slot.handle is None:
            # First frame of this slot whose deadline is not in the past.
            now = self._loop.time()
            k = -(-(now - self.epoch - slot.offset) // self.period)
            slot.frame = max(int(k), 0)
            slot.handle = self._loop.call_at(
                self.deadline(slot.frame, index) - self.lead, self._fire, index
            )
        return reg

    def unregister(self, reg: ClockRegistration) -> None:
        if not reg.active:
            return
        reg.active = False
        slot = self._slots[reg.slot]
        slot.members = tuple(m for m in slot.members if m is not reg)
        if not slot.members and slot.handle is not None:
            slot.handle.cancel()
            slot.handle = None

    def close(self) -> None:
        self._closed = True
        for slot in self._slots:
            for reg in slot.members:
                reg.active = False
            slot.members = ()
            if slot.handle is not None:
                slot.handle.cancel()
                slot.handle = None

    def _fire(self, index: int) -> None:
        slot = self._slots[index]
        slot.handle = None
        if not slot.members:
            return
        now = self._loop.time()
        first = slot.frame
        first_deadline = self.deadline(first, index)
        lateness = now - first_deadline
        self.stats.observe(lateness)
        # Frames due now: deadline <= now. A timer may fire a hair early (uvloop rounds to 1 ms);
        # that still counts as the one frame it was armed for.
        due = max(1, int(lateness // self.period) + 1)
        run_from = first
        if due > self.max_catchup:
            skipped = due - self.max_catchup
            run_from = first + skipped
            self.stats.skipped_frames += skipped * len(slot.members)
        self.stats.catchup_frames += (first + due - 1 - run_from) * len(slot.members)
        # Arm the next wakeup before running the ticks, so a tick that registers or cancels
        # calls sees a consistent slot (register joins this timer, the last cancel disarms it).
        slot.frame = first + due
        if not self._closed:
            slot.handle = self._loop.call_at(
                self.deadline(slot.frame, index) - self.lead, self._fire, index
            )
        # Every member's tick for each due frame: one C call for the wakeup where built.
        run_slot(
            slot.members,
            run_from,
            first + due,
            first,
            first_deadline,
            self.epoch,
            self.period,
            slot.offset,
            self.stats,
            self._tick_failed,
            index,
        )

    def _tick_failed(self, index: int, reg: ClockRegistration, frame: int, exc: Exception) -> None:
        """A member's tick raised: counted, logged once per registration, never propagated."""
        self.stats.tick_errors += 1
        if not reg.error_logged:
            reg.error_logged = True
            log.error("media clock tick failed (slot %d, frame %d)", index, frame, exc_info=exc)


def _py_run_slot(
    members: tuple[ClockRegistration, ...],
    run_from: int,
    stop: int,
    first: int,
    first_deadline: float,
    epoch: float,
    period: float,
    offset: float,
    stats: LatenessStats,
    on_error: Callable[[int, ClockRegistration, int, Exception], None],
    index: int,
) -> None:
    """The member loop of one slot wakeup (pure): frames `run_from` up to `stop`, each
    member's tick in registration order, skipping members cancelled meanwhile (by another
    member's tick, or the clock closed from one). `run_slot` in `_clock.c` is the compiled
    twin: a member that is an RtpStream built on the compiled StreamTickCore runs its whole
    tick (release, DTMF, inactivity, RTCP, output tick, the session's hook when it has work)
    with no Python frame unless there is Python work (stream.py PyStreamTick)."""
    for frame in range(run_from, stop):
        # The usual wakeup runs one frame, the one whose deadline the clock computed.
        deadline = first_deadline if frame == first else epoch + frame * period + offset
        ticks = 0  # counted here, added once per frame: one stats store per frame, not per call
        for reg in members:
            if not reg.active:
                continue
            ticks += 1
            try:
                reg.tick(frame, deadline)
            except Exception as exc:
                on_error(index, reg, frame, exc)
        stats.ticks += ticks


_shared: weakref.WeakKeyDictionary[Any, MediaClock] = weakref.WeakKeyDictionary()


def shared_clock(loop: asyncio.AbstractEventLoop | None = None) -> MediaClock:
    """The process's media clock for this event loop (created on first use)."""
    loop = loop if loop is not None else asyncio.get_running_loop()
    clock = _shared.get(loop)
    if clock is None or clock._closed:
        clock = MediaClock(loop)
        _shared[loop] = clock
    return clock


@dataclass
class CallOutputStats:
    audio_frames: int = 0
    idle_frames: int = 0
    cn_frames: int = 0
    event_packets: int = 0
    gap_frames: int = 0  # frames the clock skipped (delivered late)
    nothing_ticks: int = 0


class _OutputControl:
    """What a call does with its output besides the tick (both implementations share it)."""

    # Set by `start` / `ride` (class defaults: the compiled core has no such fields).
    _registration: ClockRegistration | None = None
    _host: TickHost | None = None
    tick: TickFn
    dtmf: Rfc4733Sender
    _send_event: Callable[[bytes, bool, int], None] | None
    _dtmf_busy: bool

    def start(self, clock: MediaClock) -> ClockRegistration:
        if self._registration is not None and self._registration.active:
            return self._registration
        self._registration = clock.register(self.tick)
        return self._registration

    def ride(
        self,
        host: TickHost,
        after: Callable[[], None] | None = None,
        watch: TickWatch | None = None,
    ) -> None:
        """Run this output from `host`'s clock callback instead of a registration of its own.

        Why: a call's RtpStream already has a clock registration (inbound release); one
        callback per call per 20 ms doing inbound release, then this tick, then `after` (the
        session's per-tick hook) costs less than two or three registrations and wrapped
        senders (docs/benchmarks.md). `after` runs after the frame went out: on every tick,
        or, with a `watch` (the session's TickWatch), on the ticks its `has_work` says."""
        if self._registration is not None:
            self._registration.cancel()
            self._registration = None
        host.output_tick = self.tick
        host.after_tick = after  # the host calls it after `output_tick` (no wrapper frame)
        host.tick_watch = watch
        self._host = host

    def stop(self) -> None:
        if self._registration is not None:
            self._registration.cancel()
            self._registration = None
        host = self._host
        if host is not None:
            host.output_tick = None
            host.after_tick = None
            host.tick_watch = None
            self._host = None

    def send_digits(self, digits: str) -> None:
        """Queue RFC 4733 digits; raises ValueError naming a bad digit, or if the peer has no
        telephone-event payload type (no `send_event`)."""
        if self._send_event is None:
            raise ValueError("peer did not negotiate telephone-event: cannot send RFC 4733 DTMF")
        self.dtmf.queue_digits(digits)
        self._dtmf_busy = True


class PyCallOutput(_OutputControl):
    """One call's outbound tick: DTMF event packets, else playout audio/idle frames. The pure
    class; `CallOutput` (below) is the compiled twin when built."""

    def __init__(
        self,
        queue: PlayoutQueue,
        send_frame: Callable[[bytes, bool], None],
        *,
        send_event: Callable[[bytes, bool, int], None] | None = None,
        send_comfort_noise: Callable[[bytes], None] | None = None,
        advance: Callable[[int], None] | None = None,
        dtmf_sender: Rfc4733Sender | None = None,
    ) -> None:
        self.queue = queue
        self._send_frame = send_frame
        self._send_event = send_event
        self._send_cn = send_comfort_noise
        self._advance = advance
        self.dtmf = dtmf_sender if dtmf_sender is not None else Rfc4733Sender()
        # Digits may be under way (queued through `send_digits`): only then does the tick ask
        # the sender, and on the first tick it is idle again the playout resumes. Most ticks of
        # a call have no DTMF and skip both questions (issue 14: two property calls per tick).
        self._dtmf_busy = self.dtmf.active
        self._last_frame: int | None = None
        self._force_marker = False
        self._silence = queue.silence_frame
        self.stats = CallOutputStats()

    def tick(self, frame_index: int, deadline: float) -> None:
        last = self._last_frame
        if last is not None and frame_index > last + 1:
            # The clock skipped frames (loop was blocked): keep timestamps locked to time, and
            # mark the next packet so the peer's jitter buffer resynchronises (RFC 3551 4.1).
            skipped = frame_index - last - 1
            self.stats.gap_frames += skipped
            if self._advance is not None:
                self._advance(skipped * FRAME_SAMPLES)
            self._force_marker = True
        self._last_frame = frame_index

        if self._dtmf_busy:
            dtmf = self.dtmf
            if dtmf.active:
                self.queue.pause_for_dtmf()
                packet = dtmf.next_packet()
                if packet is not None and self._send_event is not None:
                    self.stats.event_packets += 1
                    self._send_event(packet.payload, packet.marker, packet.timestamp_offset)
                    # Audio after the event starts a new talkspurt.
                    self._force_marker = True
                    return
                # Between digits: keep the stream alive with silence, audio stays held. The
                # marker stays pending for the audio that follows (silence does not start a
                # talkspurt).
                self.stats.idle_frames += 1
                self._send_frame(self._silence, False)
                return
            self._dtmf_busy = False
            if self.queue.paused:
                self.queue.resume_after_dtmf()

        frame = self.queue.next_frame()
        if frame is None:
            self.stats.nothing_ticks += 1
            if self._advance is not None:
                self._advance(FRAME_SAMPLES)
            return
        kind = frame.kind
        if kind is _AUDIO:
            self.stats.audio_frames += 1
            if self._force_marker:
                self._force_marker = False
                self._send_frame(frame.payload, True)
            else:
                self._send_frame(frame.payload, frame.marker)
            return
        marker = frame.marker or self._force_marker
        self._force_marker = False
        if kind is _SILENCE:
            self.stats.idle_frames += 1
            self._send_frame(frame.payload, marker)
        elif self._send_cn is not None:  # comfort noise, and the peer takes RFC 3389
            self.stats.cn_frames += 1
            self._send_cn(frame.payload)
        else:
            self.stats.idle_frames += 1
            self._send_frame(self._silence, marker)


# -- the implementation in use -------------------------------------------------------------------
# `_tick.c` in the extension gateway.media._jitter is the compiled twin of PyCallOutput.tick
# (issue 14): with the compiled PlayoutQueue and the compiled outbound path's own senders (what
# MediaLeg.start_output passes) a tick makes no Python call; anything else is called as the pure
# tick calls it. Selected with the jitter buffer (SRG_PURE_PYTHON forces pure);
# tests/media/test_tick_parity.py holds the two to identical sends, counters and queue states.
# Its `stats` is a new CallOutputStats of its counters on every read.


@functools.cache
def _with_control(core: type[Any]) -> type[PyCallOutput]:
    """The compiled core with `_OutputControl` mixed in: one class per core (tests bind again)."""

    class CallOutput(_OutputControl, core):  # type: ignore[misc, valid-type]
        __doc__ = PyCallOutput.__doc__
        __qualname__ = "CallOutput"

    return CallOutput  # type: ignore[return-value]


def _bind_extension() -> type[PyCallOutput] | None:
    """The compiled class (its core with `_OutputControl` mixed in), or None."""
    core = _jitter_module.compiled_twin(
        "CallOutputCore", "_bind_tick", CallOutputStats, Rfc4733Sender
    )
    return None if core is None else _with_control(core)


# "c" or "python"
CallOutput, IMPLEMENTATION = _jitter_module.select_twin(PyCallOutput, _bind_extension)


class PyTickWatch:
    """What the clock reads to decide that a session's per-tick hook has work (pure).

    The hook (`CallSession.on_output_tick`) has work on a tick when the playout just drained
    (`playout_nonempty` and the queue empty), when hold fill is due (audio time started at
    `audio_t0` trails real time: `(now - audio_t0 - fill_after_s) * sample_rate -
    audio_samples >= frame_bytes`, the hook's own test), or always (`always`: the session
    gathers appends, whose timing the hook checks). The session keeps these numbers current
    where they change; the hook still decides, so a tick it is not called on is one on which
    it would have done nothing. `TickWatch` is the compiled twin (`_clock.c`) when built."""

    __slots__ = (
        "always",
        "audio_samples",
        "audio_t0",
        "fill_after_s",
        "frame_bytes",
        "playout_nonempty",
        "queue",
        "sample_rate",
    )

    def __init__(
        self, queue: Any, *, fill_after_s: float, sample_rate: float, frame_bytes: int
    ) -> None:
        self.queue = queue
        self.fill_after_s = fill_after_s
        self.sample_rate = sample_rate
        self.frame_bytes = frame_bytes
        self.playout_nonempty = False
        self.audio_t0: float | None = None
        self.audio_samples = 0
        self.always = False

    def has_work(self, time: Callable[[], float] | None) -> bool:
        """`time`: the stream's loop time (None: no loop; the hook decides)."""
        if self.always:
            return True
        if self.playout_nonempty and self.queue.queued_bytes == 0:
            return True
        t0 = self.audio_t0
        if t0 is None:
            return False
        if time is None:
            return True
        behind = (time() - t0 - self.fill_after_s) * self.sample_rate - self.audio_samples
        return bool(behind >= self.frame_bytes)


def _bind_clock(name: str) -> Any:
    return _jitter_module.compiled_twin(name, "_bind_clock")


TickWatch, WATCH_IMPLEMENTATION = _jitter_module.select_twin(
    PyTickWatch, lambda: _bind_clock("TickWatch")
)
run_slot, RUN_SLOT_IMPLEMENTATION = _jitter_module.select_twin(
    _py_run_slot, lambda: _bind_clock("run_slot")
)
