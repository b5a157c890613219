"""Attack (or outage) in GPT-Live mode, end to end: the service cuts every session's TCP
connection a second after it opened (the simulator's drop_after_s: no close frame, no
session.closed).

Through `sip-realtime-gateway run` with `[realtime] api = "live"`: the per-call budget
(`realtime.reconnect_budget` attempts per `realtime.reconnect_window_s`) holds as it does for
Realtime (tests/security/test_realtime.py); past it the call ends with a BYE carrying
`Reason: SIP;cause=503;text="voice session unavailable"`, the end cause
`voice_session_unavailable` in the log and in /metrics, and the simulator saw exactly
1 + budget sessions.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

from tests.tools.control import auth_header
from tests.tools.gateway_process import GatewayProcess
from tests.tools.live_gateway import (  # noqa: F401  fixtures, registered by import
    LiveSimulatorThread,
    live_gateway,
    live_sim_factory,
)
from tests.tools.sipp import Sipp

pytestmark = pytest.mark.interop

BUDGET = 3


def test_live_reconnect_storm_ends_the_call_with_bye_and_a_503_reason(
    live_sim_factory: Callable[..., LiveSimulatorThread],  # noqa: F811
    live_gateway: Callable[..., GatewayProcess],  # noqa: F811
    sipp: Sipp,
) -> None:
    sim = live_sim_factory(drop_after_s=1.0)
    gw = live_gateway(sim, {"realtime": {"reconnect_budget": BUDGET, "reconnect_window_s": 60}})
    result = sipp.run("uac_wait_bye.xml", timeout_s=30)
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "voice_session_unavailable", ended
    assert 'cause=503;text="voice session unavailable"' in result.logs, result.describe()
    gw.wait_event("realtime.reconnect_budget_spent", call_id=call_id)
    reconnects = gw.find("realtime.reconnected", call_id=call_id)
    assert len(reconnects) == BUDGET, reconnects
    assert sim.live_count() == 1 + BUDGET  # no session opened past the budget
    address = gw.wait_event("control.started")["address"].rstrip("/")
    request = urllib.request.Request(f"{address}/metrics", headers=auth_header())
    with urllib.request.urlopen(request, timeout=5) as response:
        metrics = response.read().decode()
    assert 'outcome="voice_session_unavailable"' in metrics
