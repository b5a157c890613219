"""Issue 14: `run` says once at start which jitter buffer the media uses (the compiled one or the
pure-Python fallback), in the structured gateway.started line."""

from __future__ import annotations

from gateway import wsock
from gateway.media import jitter
from tests.test_app import EventLog, events, start_gateway  # noqa: F401  (fixture)


async def test_started_line_names_the_jitter_buffer(port_block: int, events: EventLog) -> None:  # noqa: F811
    gateway = await start_gateway(port_block)
    try:
        started = await events.wait("gateway.started")
        assert started["jitter_buffer"] == jitter.IMPLEMENTATION
        assert jitter.IMPLEMENTATION in ("c", "python")
        assert started["ws_frames"] == wsock.FRAME_IMPLEMENTATION  # the append frame builder
        assert wsock.FRAME_IMPLEMENTATION in ("c", "python")
    finally:
        await gateway.stop()
