"""The per-call clock callback of `RtpStream` (stream.py), and its compiled twin's selection.

`PyStreamTick` is the pure base class of `RtpStream`: `_on_clock(frame_index, deadline)`, the
callback the shared media clock runs per 20 ms, and `tick(now)`. `StreamTickCore` in
`_clock.c` (the extension gateway.media._jitter) is the compiled twin, the base of
`RtpStream` where built (`SRG_PURE_PYTHON` forces the pure one): with it the media clock's slot
wakeup (`pacer.run_slot`) runs a call's whole tick with no Python frame unless there is Python
work. The Python work itself is RtpStream's (`_release`, `_dtmf_due`, `_timeout_due`,
`_rtcp_due`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.media import jitter as _jitter_module
from gateway.media.jitter import Frame

__all__ = ["TICK_IMPLEMENTATION", "PyStreamTick", "StreamTick", "TickWatchLike"]


class TickWatchLike(Protocol):
    def has_work(self, time: Callable[[], float] | None) -> bool: ...


class PyStreamTick:
    """The stream's clock callback (pure): what one 20 ms tick does for one call.

    `_on_clock` = `tick(now)` (release what a stall or a reorder left due, RFC 4733 end
    timeouts, inactivity, RTCP), then the call's output tick (`CallOutput.ride`), then the
    session's hook when its `tick_watch` says it has work (every tick without a watch).
    Python work is in RtpStream's `_release`, `_dtmf_due`, `_timeout_due`, `_rtcp_due`; the
    checks that decide whether it is due read the fields below. `StreamTickCore` in
    `_clock.c` is the compiled twin (the base of RtpStream where built): the media clock's
    slot wakeup (`pacer.run_slot`) then runs these ticks with no Python frame in the common
    case (issue 14; tests/media/test_clock_parity.py holds the two to the same calls)."""

    # The state the tick reads has one owner: these fields (C fields in the compiled twin).
    __slots__ = (
        "_activity_since",
        "_closed",
        "_dtmf_deadline",
        "_expect_media",
        "_inactivity_timeout",
        "_next_rtcp",
        "_time",
        "_timed_out",
        "after_tick",
        "jitter",
        "output_tick",
        "tick_watch",
    )
    jitter: Any
    output_tick: Callable[[int, float], None] | None  # see CallOutput.ride
    after_tick: Callable[[], None] | None  # runs after output_tick (ride)
    tick_watch: TickWatchLike | None  # when after_tick has work (None: every tick)
    _time: Callable[[], float] | None  # the loop's time (None: no loop, `deadline` stands in)
    _activity_since: float  # last accepted RTP (the receive side writes it)
    _next_rtcp: float
    _dtmf_deadline: float  # the RFC 4733 receiver's next end deadline, inf when none is open
    _inactivity_timeout: float  # config.inactivity_timeout_s as constructed, 0 disables
    _timed_out: bool
    _expect_media: bool
    _closed: bool

    def _release(self, frames: list[Frame]) -> None:
        raise NotImplementedError

    def _dtmf_due(self, now: float) -> None:
        raise NotImplementedError

    def _timeout_due(self) -> None:
        raise NotImplementedError

    def _rtcp_due(self, now: float) -> None:
        raise NotImplementedError

    def _on_clock(self, frame_index: int, deadline: float) -> None:
        time_fn = self._time
        # The class's own tick, as the compiled twin calls its own: a subclass that overrides
        # `tick` does not change what the clock runs (review of i14-clock).
        PyStreamTick.tick(self, time_fn() if time_fn is not None else deadline)
        output_tick = self.output_tick
        if output_tick is not None and not self._closed:
            # The call's outbound tick (CallOutput.ride): same clock callback, after release,
            # then the session's hook right after the frame went out, when it has work.
            output_tick(frame_index, deadline)
            after = self.after_tick
            if after is not None:
                watch = self.tick_watch
                if watch is None or watch.has_work(time_fn):
                    after()

    def tick(self, now: float) -> None:
        """The periodic work: release audio, DTMF end timeouts, inactivity, RTCP."""
        if self._closed:
            return
        frames = self.jitter.pop_ready(now)
        if frames:
            self._release(frames)
        if now >= self._dtmf_deadline:
            self._dtmf_due(now)
        timeout = self._inactivity_timeout
        if (
            timeout > 0
            and self._expect_media
            and not self._timed_out
            and now - self._activity_since >= timeout
        ):
            self._timed_out = True
            self._timeout_due()
        if now >= self._next_rtcp:
            self._rtcp_due(now)


# "c" or "python": the compiled StreamTickCore when the extension is built (SRG_PURE_PYTHON
# forces pure).
StreamTick, TICK_IMPLEMENTATION = _jitter_module.select_twin(
    PyStreamTick, lambda: _jitter_module.compiled_twin("StreamTickCore", "_bind_clock")
)
