"""SIPp against `python -m gateway run`: the signalling cases of issue 2 ("Must show").

Each test runs one SIPp scenario from tests/interop/sipp/ against a freshly started gateway
(echo mode, so no Realtime connection is involved) and checks both sides: SIPp's exit code
(0 = the scenario, including its own regexp checks, passed) and the gateway's JSON log.
"""

from __future__ import annotations

import pytest

from tests.tools.gateway_process import GatewayProcess
from tests.tools.sipp import Sipp

pytestmark = pytest.mark.interop


def _call_events(gw: GatewayProcess, timeout: float = 10.0) -> tuple[dict, dict, dict]:
    offered = gw.wait_event("call.offered", timeout=timeout)
    call_id = offered["call_id"]
    answered = gw.wait_event("call.answered", timeout=timeout, call_id=call_id)
    ended = gw.wait_event("call.ended", timeout=timeout, call_id=call_id)
    return offered, answered, ended


def test_basic_call_invite_100_180_200_ack_bye(gateway, sipp: Sipp) -> None:
    gw = gateway()
    result = sipp.run("uac_call.xml", hold_ms=1000)
    assert result.rc == 0, result.describe()
    _offered, answered, ended = _call_events(gw)
    assert answered["codec"] in ("PCMU", "PCMA")
    assert ended["cause"] == "remote_bye"
    assert ended["answered"] is True
    # One call, one record: exactly one offered/ended pair.
    assert len(gw.find("call.offered")) == 1
    assert len(gw.find("call.ended")) == 1


def test_cancel_before_answer_gets_487(gateway, sipp: Sipp) -> None:
    # Ring for 3 s before answering so our CANCEL (sent on 180) reliably arrives first.
    gw = gateway({"calls": {"answer_delay_ms": 3000}})
    result = sipp.run("uac_cancel.xml", timeout_s=20)
    assert result.rc == 0, result.describe()
    assert "path=cancelled" in result.logs, (
        "the gateway answered before the CANCEL was processed\n" + result.describe()
    )
    offered = gw.wait_event("call.offered")
    ended = gw.wait_event("call.ended", call_id=offered["call_id"])
    assert ended["cause"] == "cancelled"
    assert ended["answered"] is False
    assert not gw.find("call.answered", call_id=offered["call_id"])
    assert "SIP/2.0 487" in result.messages


def test_reinvite_hold_and_resume(gateway, sipp: Sipp) -> None:
    gw = gateway()
    result = sipp.run("uac_hold_resume.xml", timeout_s=20)
    # The scenario fails (rc 1) unless the answers carry a=recvonly, then a=sendrecv.
    assert result.rc == 0, result.describe()
    assert "answer direction recvonly" in result.logs
    assert "answer direction sendrecv" in result.logs
    offered, _answered, ended = _call_events(gw)
    assert ended["cause"] == "remote_bye"
    call_id = offered["call_id"]
    assert gw.find("call.hold", call_id=call_id), gw.log_tail()
    assert gw.find("call.resumed", call_id=call_id), gw.log_tail()


def test_options_out_of_dialog(gateway, sipp: Sipp) -> None:
    gw = gateway()
    result = sipp.run("options.xml", timeout_s=10)
    # regexp checks in the scenario: Allow lists INVITE/BYE/CANCEL/OPTIONS, Accept has
    # application/sdp, a Supported header is present.
    assert result.rc == 0, result.describe()
    print(result.logs.strip())
    assert not gw.find("call.offered")


def test_lost_ack_gets_2xx_retransmission(gateway, sipp: Sipp) -> None:
    gw = gateway()
    # -nr: see the scenario; SIPp would otherwise drop the retransmitted 200 as a duplicate.
    result = sipp.run("uac_lost_ack.xml", timeout_s=20, extra_args=("-nr",))
    assert result.rc == 0, result.describe()
    assert "retransmitted 200 received" in result.logs
    assert result.messages.count("SIP/2.0 200") >= 3  # 200 INVITE twice + 200 BYE
    _offered, _answered, ended = _call_events(gw)
    assert ended["cause"] == "remote_bye"


def test_gateway_sends_bye_at_max_duration(gateway, sipp: Sipp) -> None:
    gw = gateway({"calls": {"max_duration_s": 2}})
    result = sipp.run("uac_wait_bye.xml", timeout_s=20)
    assert result.rc == 0, result.describe()
    _offered, _answered, ended = _call_events(gw)
    assert ended["cause"] == "max_duration"
    assert ended["answered"] is True
    # RFC 3326 Reason on our BYE: the call completed normally (cause 200).
    assert "cause=200" in result.logs, result.describe()
