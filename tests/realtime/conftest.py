"""Realtime test fixtures: a simulator on a free loopback port whose whole exchange is checked
against the SDK's GA models at teardown (every client event, strictly; every server event)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from gateway.media import g711
from gateway.realtime.client import Endpoint, RealtimeClient
from gateway.realtime.simulator import Simulator, SimulatorOptions
from tests.realtime.validate import check_client_event, check_server_event, client_event_ok

SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
def expect_invalid() -> list[dict[str, Any]]:
    """Client events a test sends on purpose although they break the schema."""
    return []


@pytest.fixture
async def sim_factory(expect_invalid: list[dict[str, Any]]) -> AsyncIterator[SimFactory]:
    started: list[Simulator] = []

    async def factory(**options: Any) -> Simulator:
        sim = Simulator("127.0.0.1", 0, SimulatorOptions(**options))  # port 0: the OS picks
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()
    for sim in started:
        for session in sim.sessions.values():
            for record in session.client_events:
                if record.event in expect_invalid:
                    # Deliberately bad: the SDK schema must reject it too (cross-check).
                    assert not client_event_ok(record.event), f"SDK accepts {record.event}"
                    continue
                check_client_event(record.event)
            for record in session.server_events:
                check_server_event(record.event)
            # The SDK's verdict and the built-in tables' must agree on every event sent.
            assert session.schema_disagreements == [], session.schema_disagreements


@pytest.fixture
async def sim(sim_factory: SimFactory) -> Simulator:
    return await sim_factory()


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[[Simulator], Awaitable[RealtimeClient]]]:
    clients: list[RealtimeClient] = []

    async def factory(simulator: Simulator, **kwargs: Any) -> RealtimeClient:
        client = RealtimeClient(
            Endpoint.custom(simulator.url, {"Authorization": "Bearer sk-test"}), **kwargs
        )
        await client.connect(timeout=5)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def speech_like(ms: int, fmt: str = "audio/pcmu", level: float = 0.3, seed: int = 1) -> bytes:
    """A voiced-sounding burst: 150 Hz harmonics, syllable-rate envelope and a little noise."""
    rate = 8000
    n = rate * ms // 1000
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    signal = wave * envelope / 2.3 + rng.normal(0, 0.02, n)
    pcm = (np.clip(signal * level, -1, 1) * 32767).astype("<i2").tobytes()
    return g711.encode("PCMU" if fmt == "audio/pcmu" else "PCMA", pcm)


def silence(ms: int, fmt: str = "audio/pcmu") -> bytes:
    return (b"\xff" if fmt == "audio/pcmu" else b"\xd5") * (8 * ms)
