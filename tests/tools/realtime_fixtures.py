"""The end-to-end fixtures shared by tests/e2e and tests/security: the simulator (run in a thread)
and `sip-realtime-gateway run` bridged to it. Both conftests import them from here, so they are
defined once; they live outside tests/conftest.py because building them imports the simulator
(numpy, websockets), which the unit tests should not pay for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tools.caller_audio import Utterances, make_utterances
from tests.tools.gateway_process import GatewayProcess
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess
from tests.tools.realtime_gateway import SimulatorThread, realtime_gateways, simulators


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimulatorThread]]:
    """Factory: `sim = sim_factory(reply_audio=..., tool_calls=(...))` (SimulatorOptions).

    Teardown: every client event of every session validates against openai.types.realtime.
    """
    with simulators() as factory:
        yield factory


@pytest.fixture
def realtime_gateway(
    sim_factory: Callable[..., SimulatorThread],  # first: torn down after the gateway stopped
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., GatewayProcess]]:
    """Factory: `gw = realtime_gateway(sim.url, {"calls": {...}})`, see
    tests.tools.realtime_gateway.realtime_gateways. Teardown: no gateway logged an error."""
    with realtime_gateways(tmp_path, ports, interop_processes, request) as start:
        yield start


@pytest.fixture(scope="session")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> Utterances:
    require_peer("espeak-ng", "sox")
    return make_utterances(tmp_path_factory.mktemp("e2e_speech"))
