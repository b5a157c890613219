"""Per-call playout queue: model audio in, exact 20 ms G.711 frames out.

Interface (plain, sans-I/O; the shared clock in `pacer.py` drives it once per 20 ms tick):

- `enqueue(item_id, g711_bytes)`: a chunk of any size from the Realtime item `item_id`.
  Remainders are carried across chunks (and across items of one response) so frames are always
  exactly `FRAME_BYTES` (160 bytes = 20 ms at 8 kHz, 1 byte per sample for G.711).
- `end_of_item(item_id)` / `end_of_response()`: no more audio for that item / for anything queued.
  Only then may the last partial frame be padded with the codec's silence byte: padding in the
  middle of a talkspurt would put a click and a timing slip into the caller's ear.
- `next_frame() -> PlayoutFrame | None`: the frame to send now. `PlayoutFrame` is a named tuple
  `(payload, marker, item_id, kind)`; `kind` is `AUDIO`, `SILENCE` (160 silence bytes) or
  `COMFORT_NOISE` (a 1-byte RFC 3389 payload to send with PT 13). `None` means "send nothing this
  tick" (idle policy `NOTHING`, or between comfort-noise refreshes). The marker bit is set on the
  first audio frame of every talkspurt (RFC 3551 4.1), i.e. after any tick that was not audio.
- `played_bytes(item_id)`: bytes of that item handed out for the wire (padding not counted).
- `flush() -> FlushReport`: drop everything queued; report what was dropped per item, and the
  item that was being played with its `played_bytes`. Barge-in truncation
  (`conversation.item.truncate audio_end_ms = played_bytes / 8`) is built on these two numbers.
- `pause_for_dtmf()` / `resume_after_dtmf()`: while an RFC 4733 event is being sent, queued audio
  is held (not consumed, not counted) and idle frames are produced instead.
- `is_complete(item_id)` / `completed_items`: which items have had their end signalled.

Bound: at most `max_queued_bytes` (default 120 s of G.711) wait in the queue. The Realtime
service streams a response faster than real time, so the bound is generous; a chunk past it is
dropped, and so is every later chunk of the same item (a hole in the middle of a sentence,
then the rest of it, would be worse than a sentence cut short). `enqueue` returns False for a
dropped chunk; `stats.overflow_bytes` / `overflow_items` count them.

Idle policy (what goes out when there is nothing to play): the stream must keep sending so PBX
RTP timeouts (Asterisk `rtp_timeout`) and NAT bindings stay alive, hence `SILENCE` by default.
`COMFORT_NOISE` sends one RFC 3389 CN packet when a talkspurt ends (or the call starts idle) and
then refreshes it every `cn_refresh_frames` ticks (default 10 = 200 ms; RFC 3389 leaves the update
rate to the sender, and a refresh well under common 1-2 s NAT/RTP timeouts keeps bindings alive);
nothing is sent in between. `NOTHING` sends nothing (only for peers that tolerate silence
suppression).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.media import jitter as _jitter_module
from gateway.media.g711 import PCMU, silence_byte

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_BYTES = FRAME_SAMPLES  # G.711: one byte per sample
DEFAULT_MAX_QUEUED_BYTES = 120 * 8000  # 120 s of G.711

# RFC 3389 3: noise level in -dBov. 70 is a quiet line, well below speech, what PBXes typically
# send when they have no measured background level.
DEFAULT_CN_LEVEL = 70


class IdlePolicy(enum.Enum):
    SILENCE = "silence"
    COMFORT_NOISE = "comfort_noise"
    NOTHING = "nothing"


class FrameKind(enum.Enum):
    AUDIO = "audio"
    SILENCE = "silence"
    COMFORT_NOISE = "comfort_noise"


class PlayoutFrame(NamedTuple):
    payload: bytes
    marker: bool
    item_id: str | None
    kind: FrameKind


@dataclass(frozen=True)
class FlushReport:
    """What `flush()` dropped, for barge-in truncation."""

    dropped_bytes: dict[str, int]  # item id -> queued bytes that never went out
    playing_item_id: str | None  # item of the last audio frame sent (None: nothing played yet)
    playing_played_bytes: int  # played_bytes of that item at the flush

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped_bytes.values())


@dataclass
class PlayoutStats:
    audio_frames: int = 0
    idle_frames: int = 0  # silence or CN frames produced
    underruns: int = 0  # ticks where a talkspurt was in progress but no full frame was ready
    held_frames: int = 0  # idle ticks a new talkspurt waited (start_delay_frames)
    padded_frames: int = 0
    flushes: int = 0
    dropped_bytes: int = 0
    overflow_bytes: int = 0  # model audio dropped because the queue was full
    overflow_items: int = 0  # items cut short by the bound


@dataclass
class _Chunk:
    item_id: str
    data: bytes
    offset: int = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset


@dataclass
class _ItemState:
    played: int = 0
    complete: bool = False


@dataclass
class PyPlayoutQueue:
    """The pure-Python queue; `PlayoutQueue` (below) is the compiled twin when built."""

    codec: str = PCMU
    idle_policy: IdlePolicy = IdlePolicy.SILENCE
    cn_refresh_frames: int = 10
    cn_level: int = DEFAULT_CN_LEVEL
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    # Ticks a talkspurt waits after its first audio arrives before it starts (0: at once).
    # A real-time source (GPT-Live paces its output at 1x) leaves the queue empty just as its
    # next chunk is due, so without this margin any late chunk puts idle frames inside speech.
    start_delay_frames: int = 0
    stats: PlayoutStats = field(default_factory=PlayoutStats)

    def __post_init__(self) -> None:
        if self.cn_refresh_frames < 1:
            raise ValueError(f"cn_refresh_frames must be >= 1, got {self.cn_refresh_frames}")
        if not 0 <= self.cn_level <= 127:
            raise ValueError(f"cn_level must be 0..127 (-dBov), got {self.cn_level}")
        if self.max_queued_bytes < FRAME_BYTES:
            raise ValueError(
                f"max_queued_bytes must be >= {FRAME_BYTES}, got {self.max_queued_bytes}"
            )
        self._silence_byte = silence_byte(self.codec)
        self._silence_frame = bytes([self._silence_byte]) * FRAME_BYTES
        # Idle ticks of every call hand out this one immutable frame (no allocation per tick).
        self._silence_playout = PlayoutFrame(self._silence_frame, False, None, FrameKind.SILENCE)
        self._cn_payload = bytes([self.cn_level])
        self._chunks: deque[_Chunk] = deque()
        self._queued = 0
        self._items: dict[str, _ItemState] = {}
        self._in_talkspurt = False  # last tick produced audio
        self._held_ticks = 0  # ticks audio has waited for start_delay_frames
        self._idle_ticks = 0  # ticks since the last CN packet while idle
        self._paused = False
        self._playing: str | None = None
        self._last_item: str | None = None
        self._overflowed: set[str] = set()  # items whose further audio is dropped

    # -- input -------------------------------------------------------------------------------

    def enqueue(self, item_id: str, g711: bytes) -> bool:
        """Queue a chunk; False when it was dropped by the bound (see the module docstring)."""
        if not item_id:
            raise ValueError("enqueue needs a non-empty item_id")
        if item_id in self._overflowed or self._queued + len(g711) > self.max_queued_bytes:
            if item_id not in self._overflowed:
                self._overflowed.add(item_id)
                self.stats.overflow_items += 1
            self.stats.overflow_bytes += len(g711)
            return False
        state = self._items.get(item_id)  # not setdefault: no _ItemState built per delta
        if state is None:
            state = self._items[item_id] = _ItemState()
        elif state.complete:
            # The model does not send audio after `response.output_audio.done`; if it does,
            # the item is reopened rather than losing audio.
            state.complete = False
        if g711:
            self._chunks.append(_Chunk(item_id, bytes(g711)))
            self._queued += len(g711)
        return True

    def end_of_item(self, item_id: str) -> None:
        self._items.setdefault(item_id, _ItemState()).complete = True

    def end_of_response(self) -> None:
        # Every item of the response is done, whether its audio is still queued or already out.
        for state in self._items.values():
            state.complete = True

    # -- queries -----------------------------------------------------------------------------

    @property
    def silence_frame(self) -> bytes:
        """One 20 ms frame of this codec's silence (0xFF u-law, 0xD5 a-law)."""
        return self._silence_frame

    @property
    def queued_bytes(self) -> int:
        return self._queued

    @property
    def paused(self) -> bool:
        return self._paused

    def played_bytes(self, item_id: str) -> int:
        state = self._items.get(item_id)
        return state.played if state else 0

    def is_complete(self, item_id: str) -> bool:
        state = self._items.get(item_id)
        return bool(state and state.complete)

    @property
    def completed_items(self) -> frozenset[str]:
        return frozenset(i for i, s in self._items.items() if s.complete)

    def pending_items(self) -> list[str]:
        """Items not yet fully out: the one being played (if its audio is still queued or not
        complete) and every item with queued audio, in playout order. Barge-in decides per item
        from these and `played_bytes`."""
        items: list[str] = []
        playing = self._playing
        if playing is not None and not (
            self._items.get(playing, _ItemState()).complete
            and not any(c.item_id == playing for c in self._chunks)
        ):
            items.append(playing)
        for chunk in self._chunks:
            if chunk.item_id not in items:
                items.append(chunk.item_id)
        return items

    def forget(self, item_id: str) -> None:
        """Drop the bookkeeping of an item the caller no longer needs (long calls)."""
        if not any(c.item_id == item_id for c in self._chunks):
            self._items.pop(item_id, None)
            self._overflowed.discard(item_id)
            if self._playing == item_id:
                self._playing = None

    # -- control -----------------------------------------------------------------------------

    def flush(self) -> FlushReport:
        dropped: dict[str, int] = {}
        for chunk in self._chunks:
            dropped[chunk.item_id] = dropped.get(chunk.item_id, 0) + chunk.remaining
        self._chunks.clear()
        self._queued = 0
        self._overflowed.clear()  # barge-in: the cut items are gone anyway
        self.stats.flushes += 1
        self.stats.dropped_bytes += sum(dropped.values())
        playing = self._playing
        report = FlushReport(dropped, playing, self.played_bytes(playing) if playing else 0)
        # The next audio after a barge-in is a new talkspurt.
        self._in_talkspurt = False
        return report

    def drop_oldest(self, nbytes: int) -> int:
        """Drop up to `nbytes` of the oldest queued audio, unplayed (counted in
        `stats.dropped_bytes`); returns the bytes dropped. For a backend that streams in real
        time (GPT-Live): its queue is kept shallow so that when the model falls silent the
        caller stops hearing it at once; audio that piles up beyond that is stale."""
        dropped = 0
        chunks = self._chunks
        while chunks and dropped < nbytes:
            chunk = chunks[0]
            take = min(chunk.remaining, nbytes - dropped)
            chunk.offset += take
            dropped += take
            if chunk.remaining == 0:
                chunks.popleft()
        self._queued -= dropped
        self.stats.dropped_bytes += dropped
        return dropped

    def pause_for_dtmf(self) -> None:
        self._paused = True

    def resume_after_dtmf(self) -> None:
        self._paused = False

    # -- output (one call per 20 ms tick) ----------------------------------------------------

    def next_frame(self) -> PlayoutFrame | None:
        if not self._queued:
            # Nothing to play (the bot is silent: most ticks of a call). What the path below
            # would do, without its two calls and a tuple: `_held` resets its count (when not
            # paused), `_cut_frame` finds nothing, and no underrun is counted.
            if not self._paused:
                self._held_ticks = 0
            return self._idle_frame()
        if not self._paused and self._held():
            self.stats.held_frames += 1
            return self._idle_frame()
        if not self._paused:
            payload, item_id, padded = self._cut_frame()
            if payload is not None:
                marker = not self._in_talkspurt
                self._in_talkspurt = True
                self._idle_ticks = 0
                self._playing = item_id
                self.stats.audio_frames += 1
                if padded:
                    self.stats.padded_frames += 1
                return PlayoutFrame(payload, marker, item_id, FrameKind.AUDIO)
            if self._queued:
                self.stats.underruns += 1
        return self._idle_frame()

    def _held(self) -> bool:
        """A new talkspurt waits start_delay_frames ticks (unless what it has is complete)."""
        if self._in_talkspurt or not self.start_delay_frames or not self._queued:
            self._held_ticks = 0
            return False
        if self._held_ticks >= self.start_delay_frames or all(
            self._items[c.item_id].complete for c in self._chunks
        ):
            self._held_ticks = 0
            return False
        self._held_ticks += 1
        return True

    def _idle_frame(self) -> PlayoutFrame | None:
        was_talking = self._in_talkspurt
        self._in_talkspurt = False
        if self.idle_policy is IdlePolicy.SILENCE:
            self.stats.idle_frames += 1
            return self._silence_playout
        if self.idle_policy is IdlePolicy.COMFORT_NOISE:
            # CN right at the end of a talkspurt, then every cn_refresh_frames ticks.
            send = was_talking or self._idle_ticks % self.cn_refresh_frames == 0
            self._idle_ticks += 1
            if send:
                self.stats.idle_frames += 1
                return PlayoutFrame(self._cn_payload, False, None, FrameKind.COMFORT_NOISE)
            return None
        return None

    def _cut_frame(self) -> tuple[bytes | None, str | None, bool]:
        """Take FRAME_BYTES from the queue; pad only a tail whose items are all complete."""
        if self._queued >= FRAME_BYTES:
            return self._take(FRAME_BYTES), self._last_item, False
        if self._queued and all(self._items[c.item_id].complete for c in self._chunks):
            tail = self._take(self._queued)
            pad = bytes([self._silence_byte]) * (FRAME_BYTES - len(tail))
            return tail + pad, self._last_item, True
        return None, None, False

    def _take(self, n: int) -> bytes:
        chunks = self._chunks
        first = chunks[0]
        if first.remaining > n:
            # Hot path (every tick of a talking call): the frame lies inside one chunk.
            start = first.offset
            first.offset = start + n
            self._queued -= n
            self._items[first.item_id].played += n
            self._last_item = first.item_id
            return first.data[start : start + n]
        parts: list[bytes] = []
        while n:
            chunk = chunks[0]
            take = min(n, chunk.remaining)
            start = chunk.offset
            if start == 0 and take == len(chunk.data):
                parts.append(chunk.data)
            else:
                parts.append(chunk.data[start : start + take])
            chunk.offset += take
            n -= take
            self._queued -= take
            self._items[chunk.item_id].played += take
            # A frame spanning two items is reported under the newer one: that is the item
            # whose audio the caller is hearing when the frame ends.
            self._last_item = chunk.item_id
            if chunk.offset == len(chunk.data):
                chunks.popleft()
        return parts[0] if len(parts) == 1 else b"".join(parts)


# -- the implementation in use -------------------------------------------------------------------
# `_playout.c` in the extension gateway.media._jitter is the compiled twin of PyPlayoutQueue (the
# whole queue state in one C struct: issue 14), selected with the jitter buffer (SRG_PURE_PYTHON
# forces pure); tests/media/test_playout_parity.py holds the two to identical frames, reports,
# statistics and queries. Its `stats` is a new PlayoutStats of its counters on every read.


def _bind_extension() -> type[PyPlayoutQueue] | None:
    """The compiled class, bound to the Python types it builds, or None."""
    return _jitter_module.compiled_twin(  # type: ignore[no-any-return]
        "PlayoutQueue",
        "_bind_playout",
        PlayoutFrame,
        FlushReport,
        PlayoutStats,
        (IdlePolicy.SILENCE, IdlePolicy.COMFORT_NOISE, IdlePolicy.NOTHING),
        (FrameKind.AUDIO, FrameKind.SILENCE, FrameKind.COMFORT_NOISE),
        PCMU,
        DEFAULT_MAX_QUEUED_BYTES,
        DEFAULT_CN_LEVEL,
    )


# "c" or "python"
PlayoutQueue, IMPLEMENTATION = _jitter_module.select_twin(PyPlayoutQueue, _bind_extension)
