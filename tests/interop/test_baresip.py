"""baresip (a real softphone stack, libre) calls the gateway and hangs up after a few seconds."""

from __future__ import annotations

import pytest

from tests.tools.baresip import Baresip
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.media import MediaFiles
from tests.tools.ports import InteropPorts

pytestmark = pytest.mark.interop

CALL_SECONDS = 5


def test_baresip_call_is_answered_and_ends_normally(
    gateway, baresip: Baresip, media_dir: MediaFiles, ports: InteropPorts
) -> None:
    gw: GatewayProcess = gateway()
    result = baresip.call(
        f"sip:gateway@{LOOPBACK}:{ports.gateway_sip}",
        audio_wav=media_dir.padded_wav,
        duration_s=CALL_SECONDS,
    )
    assert result.rc == 0, result.log[-3000:]
    assert "Call established" in result.log, result.log[-3000:]
    offered = gw.wait_event("call.offered")
    call_id = offered["call_id"]
    answered = gw.wait_event("call.answered", call_id=call_id)
    assert answered["codec"] in ("PCMU", "PCMA")
    # baresip offers telephone-event as 101 (fmtp 0-15): the answer must keep it.
    assert answered["telephone_event_pt"] == 101
    ended = gw.wait_event("call.ended", call_id=call_id, timeout=15)
    assert ended["cause"] == "remote_bye", ended
    assert ended["answered"] is True
    assert ended["duration_s"] > 1.0
    # baresip streamed its microphone file: the gateway received RTP.
    assert ended.get("rtp_packets_in", 0) > 0, ended
