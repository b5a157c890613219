"""Capturing the gateway's contract log events in-process (record.event + fields), so a test
can find one or await it instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from gateway.observe.logs import record_fields

TIMEOUT = 10.0


class EventLog(logging.Handler):
    """Collects contract events (record.event + fields) and lets a test await one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if not event:
            return
        self.events.append({"event": event, **record_fields(record)})
        self._changed.set()

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["event"] == event and all(e.get(k) == v for k, v in match.items())
        ]

    async def wait(self, event: str, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:  # noqa: ASYNC109
        async def poll() -> dict[str, Any]:
            while True:
                found = self.find(event, **match)
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            seen = [e["event"] for e in self.events]
            raise AssertionError(f"no {event} {match} in {seen}") from None


@contextlib.contextmanager
def captured_events(level: int) -> Iterator[EventLog]:
    """An EventLog on the root logger at `level` for the duration of the block."""
    handler = EventLog()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
