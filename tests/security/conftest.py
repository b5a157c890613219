"""Attack tests: each reproduces an attack against `sip-realtime-gateway run` on loopback (or
from a network namespace the test builds) and asserts the defence (issue 9).

The real-peer fixtures (gateway, sipp, baresip, tshark, ...) are in tests/conftest.py; these
are the end-to-end ones (the simulator and the gateway bridged to it), the same as
tests/e2e's (tests/tools/realtime_fixtures.py).
"""

from __future__ import annotations

from tests.tools.realtime_fixtures import (  # noqa: F401  fixtures, registered by import
    realtime_gateway,
    sim_factory,
    utterances,
)
