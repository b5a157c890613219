"""Attack (or outage) in GPT-Live mode at call setup, end to end through `sip-realtime-gateway run`
with `[realtime] api = "live"`: the service refuses `session.start` (an error, then the socket
closes) or never answers it (the socket stays open). Either way the caller gets `503` with a
`Retry-After` header (a trunk tries another gateway), within `realtime.setup_timeout_s` for the
silent service, the log names the problem (the end cause of `call.state`), and the next call,
once the service behaves, is answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.tools.gateway_process import GatewayProcess
from tests.tools.live_gateway import (  # noqa: F401  fixtures, registered by import
    LiveSimulatorThread,
    live_gateway,
    live_sim_factory,
)
from tests.tools.raw_uac import RawUac, RtpSink

pytestmark = pytest.mark.interop

CALLER_IP = "127.0.0.1"
SETUP_TIMEOUT_S = 1.0


def _invite(gw: GatewayProcess) -> bytes:
    sink = RtpSink(CALLER_IP)
    uac = RawUac(CALLER_IP, (CALLER_IP, gw.ports.gateway_sip), sink)
    try:
        uac.invite()
        final = uac.final_response(timeout=20)
        if final.startswith(b"SIP/2.0 200"):
            uac.ack()
            uac.bye()
        return final
    finally:
        uac.close()
        sink.close()


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("ignore_starts", "not ready within realtime.setup_timeout_s"),
        ("reject_starts", "server refused the session: server_error"),
    ],
)
def test_live_setup_failure_is_a_503_with_retry_after(
    live_sim_factory: Callable[..., LiveSimulatorThread],  # noqa: F811
    live_gateway: Callable[..., GatewayProcess],  # noqa: F811
    fault: str,
    problem: str,
) -> None:
    sim = live_sim_factory(**{fault: 1})
    gw = live_gateway(sim, {"realtime": {"setup_timeout_s": SETUP_TIMEOUT_S}})
    final = _invite(gw)
    assert final.startswith(b"SIP/2.0 503 "), final[:200]
    retry = re.search(rb"\r\nRetry-After: *(\d+)", final)
    assert retry is not None and int(retry.group(1)) > 0, final[:400]
    # The log names the problem: the call's end cause, and the refusal when there was one.
    ended = [e for e in gw.find("call.state") if "cause" in e]
    assert ended and problem in ended[0]["cause"], ended
    # The service behaves again: the next call is answered.
    final = _invite(gw)
    assert final.startswith(b"SIP/2.0 200"), final[:200]
    assert sim.live_count() >= 2
