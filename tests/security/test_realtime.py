"""Attack (or outage): the Realtime service drops every session right after it opens.

Without a budget the gateway would reconnect forever while the caller hears silence, and every
call would hammer the service. The gateway gets a per-call budget (`realtime.reconnect_budget`
attempts per `realtime.reconnect_window_s`, with backoff between attempts); past it the call
ends with a BYE carrying `Reason: SIP;cause=503;text="voice session unavailable"`, the end cause
`voice_session_unavailable` in the log, the call record's metrics label and /metrics.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import pytest

from tests.tools.control import auth_header
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
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


# Frames a hostile (or broken) voice service can send, each refused by the read side of the
# link: the compiled read fast path (gateway/wsock.py `read_text_messages`) stops at them and
# hands the bytes to websockets, which fails the connection (1002, 1009) with these reasons.
HOSTILE_FRAMES = {
    "masked": [bytes([0x81, 0x80 | 2]) + b"\x01\x02\x03\x04" + bytes([0x7B ^ 1, 0x7D ^ 2])],
    "oversized": [bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big") + b"{}"],
    # A text fragment without FIN, read on its own, then a whole text frame where the
    # continuation is due: the fast path must leave the second read to websockets.
    "fragment_then_text": [bytes([0x01, 2]) + b"{}", bytes([0x81, 2]) + b"{}"],
}


async def _send_raw(sim: SimulatorThread, writes: list[bytes]) -> None:
    """Each write straight onto the first session's socket, the next only once the gateway has
    read it (a ping after it answered: the pong comes back after the bytes before it)."""
    ws = sim.sim.sessions[next(iter(sim.sim.sessions))].ws
    *first, last = writes
    for data in first:
        ws.transport.write(data)
        await asyncio.wait_for(await ws.ping(), 5)
    ws.transport.write(last)  # the one the link fails on: no pong will come


CLOSE_REASONS = {
    "masked": "incorrect masking",
    "oversized": "exceeds limit",
    "fragment_then_text": "expected a continuation frame",
}


@pytest.mark.parametrize("kind", list(HOSTILE_FRAMES))
def test_a_hostile_frame_from_the_voice_service_loses_the_link_not_the_call(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    kind: str,
) -> None:
    """Through `run`: the session's link is lost with websockets' close reason, the call
    reconnects to a new session and goes on until the caller hangs up, nothing delivered of
    the hostile frame, the gateway still serving."""
    sim = sim_factory()
    gw = realtime_gateway(sim.url)
    call = sipp.start("uac_call.xml", f"{LOOPBACK}:{gw.ports.gateway_sip}", hold_ms=8000)
    try:
        call_id = gw.wait_event("realtime.connected", timeout=15)["call_id"]
        asyncio.run_coroutine_threadsafe(_send_raw(sim, HOSTILE_FRAMES[kind]), sim.loop).result(10)
        lost = gw.wait_event("realtime.lost", call_id=call_id)
        assert CLOSE_REASONS[kind] in str(lost.get("reason")), lost
        gw.wait_event("realtime.reconnected", call_id=call_id)
    finally:
        result = call.wait()
    assert result.rc == 0, result.describe()
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended
    assert sim.session_count() == 2
    assert not gw.find("realtime.error", call_id=call_id)  # nothing of the frame was parsed
