"""Helpers for the "freed by reference counting" tests (tests/test_call_freed.py,
tests/realtime/test_simulator_freed.py): both event loops, the cyclic collector switched off
with explicit collections recorded, and what still holds an object that should be gone."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest


def loop_policy(name: str) -> asyncio.AbstractEventLoopPolicy:
    """ "uvloop" (what `run` uses, gateway/cli.py; its transports are not asyncio's) or the
    stdlib loop: for an `event_loop_policy` fixture parametrised over both."""
    if name == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


class RefcountOnly:
    """The cyclic collector off (restored after the test), explicit collections recorded
    instead of run, and a way to see what a call left for the collector: `mark()` before the
    call, `cyclic_garbage()` after it."""

    def __init__(self) -> None:
        self.collect = gc.collect  # the real one, for mark() and cyclic_garbage() only
        self.collections: list[int] = []

    def record(self, generation: int = 2) -> int:
        self.collections.append(generation)
        return 0

    def mark(self) -> None:
        """Collect what the set-up (start-up, the simulator) left: not the call's."""
        self.collect()

    def cyclic_garbage(self, *, tcp_self_cycles: int = 0) -> list[str]:
        """The types of what only the cyclic collector could free since `mark()`.

        `tcp_self_cycles`: closed TCP transports allowed to be left as CPython 3.11 leaves
        every one of them (`_read_ready_cb`, a bound method of itself: python/cpython#100348),
        with what only they refer to: the control API's HTTP connections, which are not the
        call's (gateway/wsock.py clears the voice link's own)."""
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            self.collect()
        finally:
            gc.set_debug(0)
        garbage = list(gc.garbage)
        gc.garbage.clear()
        transports = [o for o in garbage if type(o).__name__ == "_SelectorSocketTransport"]
        assert len(transports) <= tcp_self_cycles, f"{len(transports)} closed TCP transports"
        excluded: set[int] = set()
        for transport in transports:
            if getattr(transport, "_read_ready_cb", None) is None:
                continue  # not the 3.11 self-cycle: counted as garbage below
            pending = [transport]
            while pending:
                obj = pending.pop()
                if id(obj) not in excluded:
                    excluded.add(id(obj))
                    pending += [r for r in gc.get_referents(obj) if any(r is g for g in garbage)]
        return [
            f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage if id(o) not in excluded
        ]


def collector_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefcountOnly]:
    """The body of a fixture: the cyclic collector off for the test (restored after), nothing
    of an earlier test pending, `gc.collect` recorded instead of run."""
    was = gc.isenabled()
    refcount = RefcountOnly()
    refcount.collect()  # nothing of an earlier test pending
    monkeypatch.setattr(gc, "collect", refcount.record)
    gc.disable()
    try:
        yield refcount
    finally:
        if was:
            gc.enable()


def holders(obj: Any, depth: int = 5) -> str:
    """What refers to `obj` (types, a few levels up): the debugging aid the brief asks for."""
    lines: list[str] = []
    seen: set[int] = set()

    def walk(target: Any, level: int) -> None:
        for referrer in gc.get_referrers(target):
            if isinstance(referrer, FrameType) or id(referrer) in seen:
                continue
            if referrer is lines or referrer is seen:
                continue
            seen.add(id(referrer))
            desc = type(referrer).__qualname__
            if isinstance(referrer, dict):
                keys = [k for k, v in referrer.items() if v is target][:3]
                desc += f" keys={keys}"
            elif callable(referrer) and hasattr(referrer, "__qualname__"):
                desc += f" {referrer.__qualname__}"
            elif hasattr(referrer, "__func__"):
                desc += f" {referrer.__func__.__qualname__}"  # a bound method
            lines.append("  " * (depth - level) + desc)
            if level > 1:
                walk(referrer, level - 1)

    walk(obj, depth)
    return "\n".join(lines[:60])
