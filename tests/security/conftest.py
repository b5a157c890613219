"""Attack tests: each reproduces an attack against `sip-realtime-gateway run` on loopback (or
from a network namespace the test builds) and asserts the defence (issue 9).

The real-peer fixtures (gateway, sipp, baresip, tshark, ...) are in tests/conftest.py; these
are the end-to-end ones (the simulator and the gateway bridged to it), built from the same
tests/tools harnesses as tests/e2e/conftest.py's.
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
    with realtime_gateways(tmp_path, ports, interop_processes, request) as start:
        yield start


@pytest.fixture(scope="session")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> Utterances:
    require_peer("espeak-ng", "sox")
    return make_utterances(tmp_path_factory.mktemp("e2e_speech"))
