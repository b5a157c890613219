"""Attack (or outage): the Realtime service drops every session right after it opens.

Without a budget the gateway would reconnect forever while the caller hears silence, and every
call would hammer the service. The gateway gets a per-call budget (`realtime.reconnect_budget`
attempts per `realtime.reconnect_window_s`, with backoff between attempts); past it the call
ends with a BYE carrying `Reason: SIP;cause=503;text="voice session unavailable"`, the end cause
`voice_session_unavailable` in the log, the call record's metrics label and /metrics.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

from tests.tools.control import auth_header
from tests.tools.gateway_process import GatewayProcess
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp

pytestmark = pytest.mark.interop

BUDGET = 3


def test_reconnect_storm_ends_the_call_with_bye_and_a_503_reason(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
) -> None:
    sim = sim_factory(drop_after_s=1.0)  # every session cut 1 s after it opened
    gw = realtime_gateway(
        sim.url, {"realtime": {"reconnect_budget": BUDGET, "reconnect_window_s": 60}}
    )
    # The UAC answers the gateway's BYE (within 15 s of the ACK) and logs its Reason header.
    result = sipp.run("uac_wait_bye.xml", timeout_s=30)
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "voice_session_unavailable", ended
    assert gw.wait_event("call.hangup", call_id=call_id)["cause"] == "voice_session_unavailable"
    assert 'cause=503;text="voice session unavailable"' in result.logs, result.describe()
    spent = gw.wait_event("realtime.reconnect_budget_spent", call_id=call_id)
    reconnects = gw.find("realtime.reconnected", call_id=call_id)
    # The first session plus one per allowed reconnect; no further attempt after the budget.
    assert len(reconnects) == BUDGET, reconnects
    assert sim.session_count() == 1 + BUDGET
    print(f"\n{len(reconnects)} reconnects, then BYE: {spent['message']}")
    address = gw.wait_event("control.started")["address"].rstrip("/")
    request = urllib.request.Request(f"{address}/metrics", headers=auth_header())
    with urllib.request.urlopen(request, timeout=5) as response:
        metrics = response.read().decode()
    assert 'outcome="voice_session_unavailable"' in metrics
