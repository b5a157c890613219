"""The gateway behind a real registrar: Kamailio with digest auth (auth_db over db_text).

The gateway registers as `gateway` (password in the db_text subscriber table), a SIPp caller
dials sip:gateway@<kamailio>, Kamailio looks the binding up and relays the INVITE with
Record-Route, and the gateway answers. Kamailio keeps bindings in memory only, so a restart
forgets the gateway: it must register again on its next refresh, after which calls through
the proxy work again.
"""

from __future__ import annotations

import pytest

from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.kamailio import KAMAILIO_PASSWORD, KAMAILIO_USER, Kamailio
from tests.tools.sipp import Sipp

pytestmark = pytest.mark.interop

# The smallest lifetime both sides accept (gateway config and the proxy's min_expires): 10 s.
# The gateway refreshes at half the granted time, so after a restart the binding is back within
# ~5 s; the bound also covers one failed attempt (refresh hitting the restart) plus backoff.
EXPIRES_S = 10
REREGISTER_TIMEOUT_S = 25
REGISTER_OK = f"REGISTER ok: sip:{KAMAILIO_USER}@{LOOPBACK}"


def _call_through_proxy(sipp: Sipp, kamailio: Kamailio) -> None:
    result = sipp.run(
        "uac_call.xml", f"{LOOPBACK}:{kamailio.port}", service=KAMAILIO_USER, hold_ms=500
    )
    assert result.rc == 0, result.describe() + "\n--- kamailio ---\n" + kamailio.log_text()[-3000:]
    # The proxy record-routed the call: in-dialog requests went through it.
    assert f"Record-Route: <sip:{LOOPBACK}:{kamailio.port}" in result.messages


def test_register_with_digest_then_call_through_kamailio(
    gateway, sipp: Sipp, kamailio: Kamailio
) -> None:
    gw: GatewayProcess = gateway(
        {
            "registrations": [
                {
                    "registrar": kamailio.uri,
                    "username": KAMAILIO_USER,
                    "password": KAMAILIO_PASSWORD,
                    "expires": EXPIRES_S,
                }
            ]
        }
    )
    gw.wait_event("registration.ok", timeout=10)
    assert not gw.find("registration.failed"), gw.log_tail()
    kamailio.wait_log(REGISTER_OK, timeout=5)

    _call_through_proxy(sipp, kamailio)
    offered = gw.wait_event("call.offered")
    gw.wait_event("call.answered", call_id=offered["call_id"])
    ended = gw.wait_event("call.ended", call_id=offered["call_id"])
    assert ended["cause"] == "remote_bye"

    # Restart: usrloc is memory-only, so the binding is gone until the gateway refreshes.
    # The registrar's log is the witness: the gateway logs only changes of state, and a
    # successful refresh is not one.
    kamailio.restart()
    waited = kamailio.wait_log(REGISTER_OK, timeout=REREGISTER_TIMEOUT_S)
    print(f"\nre-registered {waited:.1f} s after the Kamailio restart")

    mark = gw.mark()
    _call_through_proxy(sipp, kamailio)
    gw.wait_event("call.answered", since=mark)


def test_wrong_password_is_reported(gateway, kamailio: Kamailio) -> None:
    gw: GatewayProcess = gateway(
        {
            "registrations": [
                {
                    "registrar": kamailio.uri,
                    "username": KAMAILIO_USER,
                    "password": "not-the-password",
                    "expires": EXPIRES_S,
                }
            ]
        }
    )
    gw.wait_event("registration.failed", timeout=15)
    assert not gw.find("registration.ok")
    # No password ever reaches the log (the failure line names the problem instead).
    assert "not-the-password" not in gw.log_text()
