"""The e2e harness itself: the simulator thread records what a client sends, and the teardown
check really rejects a client event the GA schema does not allow (so a green e2e run means the
gateway's events were checked, not that nothing was)."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from gateway.realtime.simulator import SimulatorOptions
from tests.tools.realtime_gateway import SimulatorThread, invalid_client_events

GOOD = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcmu"}}},
    },
}
# Beta-era field name: the GA service (and the SDK's models) reject it.
BAD = {"type": "response.create", "response": {"modalities": ["audio"]}}


async def _send(url: str, *events: dict) -> None:
    async with asyncio.timeout(10):
        async with connect(url, compression=None) as ws:
            await ws.recv()  # session.created
            for event in events:
                await ws.send(orjson.dumps(event).decode())
                await ws.recv()  # session.updated or error


def test_teardown_check_rejects_an_invalid_client_event() -> None:
    sim = SimulatorThread(SimulatorOptions())
    sim.start()
    try:
        asyncio.run(_send(sim.url, GOOD, BAD))
        sim.wait_until("two client events", lambda: len(sim.sim.client_events) == 2, timeout=5)
        records = sim.all_client_events()
    finally:
        sim.stop()
    assert [r.type for r in records] == ["session.update", "response.create"]
    problems = invalid_client_events(records)
    assert len(problems) == 1 and "response.create" in problems[0], problems
