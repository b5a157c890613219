"""Bounded waits on a condition: what a test uses instead of a fixed sleep.

A sleep guesses how long something takes and is either too short on a loaded machine (a flake)
or too long everywhere (a slow suite); polling the condition itself is neither.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_INTERVAL_S = 0.01


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    what: str | Callable[[], str] = "condition",
    *,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """Poll `predicate` until it returns a truthy value and return that value; after
    `timeout_s` seconds fail the test saying `what` did not happen (a callable is asked then,
    so the message can carry a peer's log as it was at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout_s))
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    what: str | Callable[[], str] = "condition",
    *,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """`wait_until` for a test on an event loop: yields to the loop between polls, so the code
    under test runs while the test waits. `predicate` may be a coroutine function (a request
    to the control API, say)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout_s))
        await asyncio.sleep(interval)


def _timed_out(what: str | Callable[[], str], timeout_s: float) -> str:
    text = what() if callable(what) else what
    return f"{text}: did not happen within {timeout_s} s"
