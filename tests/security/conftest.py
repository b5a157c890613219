"""Attack tests: each reproduces an attack against `sip-realtime-gateway run` on loopback (or
from a network namespace the test builds) and asserts the defence (issue 9).

The fixtures are the end-to-end ones (real peers, the simulator, the gateway subprocess),
re-exported here so each test module stays about its attack.
"""

from __future__ import annotations

from tests.e2e.conftest import (  # noqa: F401  (fixtures and the log hook, re-exported)
    SimulatorThread,
    baresip,
    interop_processes,
    ports,
    pytest_runtest_makereport,
    realtime_gateway,
    sim_factory,
    sipp,
    tshark,
    utterances,
)
from tests.interop.conftest import gateway  # noqa: F401
