"""Issue 14: `run` warns at start when the RTP range cannot hold sip.max_calls plus the pairs
the port quarantine holds (media.port_range_small), and is quiet when it can."""

from __future__ import annotations

import logging

from tests.test_app import EventLog, events, start_gateway  # noqa: F401  (fixture)


async def test_small_range_is_a_warning_at_start(port_block: int, events: EventLog) -> None:  # noqa: F811
    # start_gateway's range holds 15 pairs: 10 calls with a 30 s quarantine need 15.
    gateway = await start_gateway(port_block, sip={"max_calls": 11})
    try:
        started = await events.wait("gateway.started")
        assert started
        (warning,) = events.find("media.port_range_small")
        assert (warning["port_pairs"], warning["pairs_needed"]) == (15, 17)
    finally:
        await gateway.stop()


async def test_range_that_fits_is_quiet(port_block: int, events: EventLog) -> None:  # noqa: F811
    gateway = await start_gateway(port_block, sip={"max_calls": 10})
    try:
        await events.wait("gateway.started")
        assert events.find("media.port_range_small") == []
    finally:
        await gateway.stop()
    # The same 11 calls fit once the quarantine is off (0 = off).
    gateway = await start_gateway(
        port_block, sip={"max_calls": 11}, media={"rtp_port_quarantine_s": 0}
    )
    try:
        await events.wait("gateway.started")
        assert events.find("media.port_range_small") == []
        assert gateway.ports.quarantine_s == 0  # the allocator uses the configured value
    finally:
        await gateway.stop()


def test_warning_level_is_warning(port_block: int, caplog) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def run() -> None:
        gateway = await start_gateway(port_block, sip={"max_calls": 100})
        await gateway.stop()

    with caplog.at_level(logging.INFO):
        asyncio.run(run())
    levels = [
        r.levelno for r in caplog.records if getattr(r, "event", "") == "media.port_range_small"
    ]
    assert levels == [logging.WARNING]
