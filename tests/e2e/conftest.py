"""End-to-end fixtures: real callers (SIPp, baresip) -> `sip-realtime-gateway run` -> simulator.

The shared real-peer fixtures (ports, interop_processes, gateway, sipp, baresip, tshark) are in
tests/conftest.py; the harnesses in tests/tools/ (realtime_gateway.py: the simulator thread
and the bridged gateway; caller_audio.py; wire.py).
"""

from __future__ import annotations

from tests.tools.live_gateway import (  # noqa: F401  fixtures, registered by import
    live_gateway,
    live_sim_factory,
)
from tests.tools.realtime_fixtures import (  # noqa: F401  fixtures, registered by import
    realtime_gateway,
    sim_factory,
    utterances,
)
