"""Ended calls' memory given back within seconds, not whenever CPython gets to it (issue 14).

A call's objects hold each other in reference cycles: bound-method callbacks handed down and
kept (the media leg keeps `LiveCall.on_dtmf` and `CallSession.on_audio`, the RTP stream's
methods are kept by the leg's output, the WebSocket link keeps `RealtimeClient` methods, the
transport keeps `pause_reading`), so when a call ends reference counting frees none of it:
only the cyclic collector does. By then the call's objects have lived long enough to sit in
the oldest generation, which CPython collects only once the objects promoted into it since
its last full collection exceed a quarter of those that survived it. Ended calls therefore
piled up for a minute or more before one full collection freed them (45 023 objects at once
at 40 calls of 10 s; a dump of that garbage held every object of 159 ended calls, `LiveCall`
down to the jitter buffer), and every time the pile outgrew the previous one the heap grew a
step that it never gave back: the soak's "+17.8 % from minute 1" (docs/benchmarks.md,
"Where the RSS growth came from").

`EndedCallCollector` runs one full collection `delay_s` after a call ends (one for every call
that ends within that window), so at most `delay_s` of ended calls wait for the collector.
A full collection walks only what is not frozen (`gateway.cli.settle_heap` froze the start-up
heap): the live calls and the garbage.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Protocol

DEFAULT_DELAY_S = 10.0


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


# loop.call_later's shape: (delay in seconds, callback) -> a handle that cancels it.
CallLater = Callable[[float, Callable[[], None]], TimerHandle]


def _running_loop_call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback)


class EndedCallCollector:
    """Call `call_ended()` when a call has ended and dropped its references (from the event
    loop: the default `call_later` is the running loop's); `close()` when the process stops
    (cancels a pending collection)."""

    def __init__(
        self,
        call_later: CallLater | None = None,
        delay_s: float = DEFAULT_DELAY_S,
        collect: Callable[[int], int] = gc.collect,
    ) -> None:
        self._call_later = call_later or _running_loop_call_later
        self.delay_s = delay_s
        self._collect = collect
        self._pending: TimerHandle | None = None
        self.collections = 0  # full collections run so far
        self.freed = 0  # unreachable objects those collections found

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def call_ended(self) -> None:
        if self._pending is None:
            self._pending = self._call_later(self.delay_s, self._run)

    def _run(self) -> None:
        self._pending = None
        self.freed += self._collect(2)
        self.collections += 1

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
