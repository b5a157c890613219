"""Fixtures of the GPT-Live simulator's tests: a `Simulator` on a free loopback port whose every
GPT-Live server event is validated at teardown against `openai.types.live` (strictly, unknown
keys rejected; tests/live_simulator/validate_server.py), and every client event the tests sent
against the SDK's client models (bar those a test sends broken on purpose)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.live.simulator.options import LiveSimulatorOptions
from gateway.realtime.simulator import Simulator
from tests.live_simulator.raw_client import RawLiveClient
from tests.live_simulator.validate_server import check_server_event, sdk_client_problem


@pytest.fixture
def expect_invalid() -> list[dict[str, Any]]:
    """Client events a test sends on purpose although they break the schema."""
    return []


@pytest.fixture
async def live_sim(
    expect_invalid: list[dict[str, Any]],
) -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    started: list[Simulator] = []

    async def factory(**options: Any) -> Simulator:
        sim = Simulator("127.0.0.1", 0, live_options=LiveSimulatorOptions(**options))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()
    for sim in started:
        for session in sim.live_sessions.values():
            for record in session.server_events:
                check_server_event(record.event)
            for record in session.client_events:
                if record.event in expect_invalid or "_raw" in record.event:
                    continue
                problem = sdk_client_problem(record.event)
                assert problem is None, f"{record.event.get('type')}: {problem}"


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Awaitable[RawLiveClient]]]:
    clients: list[RawLiveClient] = []

    async def factory(sim: Simulator, token: str | None = "sk-test") -> RawLiveClient:
        opened = await RawLiveClient.open(sim.live_url, token)
        clients.append(opened)
        return opened

    yield factory
    for opened in clients:
        await opened.close()
