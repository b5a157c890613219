"""gateway/heap.py: ended calls, which are reference cycles, are freed by the collection that
`EndedCallCollector` schedules after they end, not whenever CPython's oldest generation fills."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from gateway.heap import DEFAULT_DELAY_S, EndedCallCollector


class FakeTimers:
    """loop.call_later with a hand-driven clock."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, Callable[[], None], FakeHandle]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle()
        self.scheduled.append((delay, callback, handle))
        return handle

    def fire_all(self) -> None:
        due, self.scheduled = self.scheduled, []
        for _, callback, handle in due:
            if not handle.cancelled:
                callback()


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class CycleCall:
    """The shape of a LiveCall graph: a leg that keeps a bound method of its call, and audio."""

    def __init__(self) -> None:
        self.leg = CycleLeg(self.on_dtmf)
        self.audio = bytearray(8000)

    def on_dtmf(self, digit: str) -> None:
        pass


class CycleLeg:
    def __init__(self, on_dtmf: Callable[[str], None]) -> None:
        self.on_dtmf = on_dtmf


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def _calls_in_oldest_generation(n: int) -> list[weakref.ref[CycleCall]]:
    """n ended calls whose objects, like a real call's, reached generation 2 while they were
    live, then ended (nothing refers to them from outside their cycle)."""
    calls = [CycleCall() for _ in range(n)]
    gc.collect(1)  # survivors of a generation-1 collection are promoted into generation 2
    refs = [weakref.ref(call) for call in calls]
    del calls
    return refs


def test_one_collection_for_every_call_ending_within_the_delay() -> None:
    timers = FakeTimers()
    runs: list[int] = []
    heap = EndedCallCollector(timers.call_later, delay_s=7.0, collect=lambda g: runs.append(g) or 3)
    for _ in range(5):
        heap.call_ended()
    assert [d for d, _, _ in timers.scheduled] == [7.0] and heap.pending
    timers.fire_all()
    assert runs == [2] and heap.collections == 1 and heap.freed == 3 and not heap.pending
    heap.call_ended()  # a later end schedules the next one
    assert len(timers.scheduled) == 1
    timers.fire_all()
    assert runs == [2, 2] and heap.collections == 2


def test_close_cancels_the_pending_collection() -> None:
    timers = FakeTimers()
    runs: list[int] = []
    heap = EndedCallCollector(timers.call_later, collect=lambda g: runs.append(g) or 0)
    heap.call_ended()
    heap.close()
    timers.fire_all()
    assert runs == [] and not heap.pending
    assert timers.scheduled == [] and DEFAULT_DELAY_S > 0


def test_ended_calls_in_the_oldest_generation_wait_for_a_full_collection(gc_enabled: None) -> None:
    """Why the collector exists: young collections never free them."""
    refs = _calls_in_oldest_generation(50)
    gc.collect(0)
    gc.collect(1)
    assert sum(r() is not None for r in refs) == 50
    gc.collect(2)
    assert all(r() is None for r in refs)


def test_ended_calls_are_freed_by_the_scheduled_collection(gc_enabled: None) -> None:
    timers = FakeTimers()
    heap = EndedCallCollector(timers.call_later)
    refs = _calls_in_oldest_generation(50)
    for _ in refs:
        heap.call_ended()
    assert sum(r() is not None for r in refs) == 50
    timers.fire_all()
    assert all(r() is None for r in refs)
    assert heap.freed >= 50 * 3  # call, leg, bound method (at least) each


def test_churn_keeps_at_most_one_window_of_ended_calls(gc_enabled: None) -> None:
    """N calls through the collector: what is still alive never exceeds one window's ends."""
    timers = FakeTimers()
    heap = EndedCallCollector(timers.call_later)
    alive: list[weakref.ref[CycleCall]] = []
    for _window in range(20):
        refs = _calls_in_oldest_generation(25)
        for _ in refs:
            heap.call_ended()
        alive = [r for r in alive + refs if r() is not None]
        assert len(alive) <= 25
        timers.fire_all()
    assert all(r() is None for r in alive)


async def test_default_timer_is_the_running_loops() -> None:
    collected = asyncio.Event()
    heap = EndedCallCollector(delay_s=0.0, collect=lambda g: collected.set() or 0)
    heap.call_ended()
    await asyncio.wait_for(collected.wait(), 5)
    assert heap.collections == 1
