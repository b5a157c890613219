"""Operations against real peers: SIGTERM drain behind Kamailio, and the control API placing a
call to a SIPp UAS.

Drain: the gateway registers with Kamailio, a SIPp caller reaches it through the proxy and holds
the call; SIGTERM arrives mid-call. The call is not cut: SIPp hangs up on its own schedule (its
BYE gets 200), then the gateway unregisters (Kamailio logs the REGISTER with Expires 0) and
exits 0.

Originate: `POST /calls` makes the gateway INVITE SIPp's built-in UAS (`-sn uas`), bridge the
answered call to the built-in Realtime simulator, and the greeting (simulator audio) reaches
SIPp: tshark captures non-silent G.711 from the gateway to SIPp's media port. `DELETE /calls/{id}`
then hangs up with BYE.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.tools.capture import Capture
from tests.tools.control import auth_header
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.kamailio import KAMAILIO_PASSWORD, KAMAILIO_USER, Kamailio
from tests.tools.pcap import read_udp
from tests.tools.peers import require_peer, which_peer
from tests.tools.ports import InteropPorts, udp_port_bound
from tests.tools.process import ManagedProcess
from tests.tools.sipp import Sipp
from tests.tools.wait import wait_until

pytestmark = pytest.mark.interop

HOLD_MS = 4000  # the caller's call length: SIGTERM comes ~1 s in
DRAIN_S = 20


def _control_port(ports: InteropPorts) -> int:
    return ports.base + 32  # unused by the other parties of the block


def test_sigterm_lets_the_call_finish_then_unregisters(
    gateway, sipp: Sipp, kamailio: Kamailio, ports: InteropPorts
) -> None:
    gw: GatewayProcess = gateway(
        {
            "registrations": [
                {
                    "registrar": kamailio.uri,
                    "username": KAMAILIO_USER,
                    "password": KAMAILIO_PASSWORD,
                    "expires": 60,
                }
            ],
            "shutdown": {"drain_timeout_s": DRAIN_S},
            "control": {"port": _control_port(ports)},
        }
    )
    gw.wait_event("registration.ok", timeout=10)
    run = sipp.start(
        "uac_call.xml", f"{LOOPBACK}:{kamailio.port}", service=KAMAILIO_USER, hold_ms=HOLD_MS
    )
    answered = gw.wait_event("call.answered", timeout=10)
    call_id = answered["call_id"]
    signalled = time.monotonic()
    os.kill(gw.process.pid, signal.SIGTERM)
    draining = gw.wait_event("gateway.draining", timeout=5)
    assert draining["calls"] == 1

    result = run.wait()
    assert result.rc == 0, result.describe()
    ended = gw.wait_event("call.ended", call_id=call_id, timeout=DRAIN_S)
    assert ended["cause"] == "remote_bye"  # the caller's BYE, inside the drain window
    assert not gw.find("call.hangup", call_id=call_id)
    assert gw.process.wait(timeout=15) == 0
    assert time.monotonic() - signalled < DRAIN_S  # did not sit out the whole window
    # The registrar saw the unregister (REGISTER with Expires: 0) after the call.
    kamailio.wait_log(f"REGISTER ok: sip:{KAMAILIO_USER}@{LOOPBACK}", timeout=5)
    unregister = [
        line
        for line in kamailio.log_text().splitlines()
        if "REGISTER ok" in line and "(expires 0)" in line
    ]
    assert unregister, kamailio.log_text()[-3000:]
    stopped = gw.wait_event("registration.stopped", timeout=5)
    assert stopped["confirmed"] is True


def _api(
    port: int, method: str, path: str, body: dict[str, object] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            **auth_header(),
            **({"Content-Type": "application/json"} if body is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _sipp_uas(
    tmp_path: Path, ports: InteropPorts, processes: list[ManagedProcess]
) -> ManagedProcess:
    work = tmp_path / "uas"
    work.mkdir()
    process = ManagedProcess(
        "sipp uas",
        [
            which_peer("sipp"), "-sn", "uas",
            "-i", LOOPBACK, "-p", str(ports.sipp_sip),
            "-mi", LOOPBACK, "-mp", str(ports.sipp_media),
            # No -rtp_echo: our own greeting echoed back would barge in on it (the
            # simulator's VAD hears it as the callee talking).
            "-nostdin", "-m", "1",
            "-timeout", "40s", "-trace_msg", "-message_file", str(work / "messages.log"),
        ],
        cwd=work,
        log_path=work / "screen.log",
    )  # fmt: skip
    processes.append(process)
    # The gateway's INVITE must find SIPp listening: wait until its SIP port is bound.
    wait_until(lambda: udp_port_bound(ports.sipp_sip), 10, "SIPp UAS bound its SIP port")
    return process


def test_control_api_originates_a_call_to_a_sipp_uas(
    gateway,
    tshark: Capture,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    tmp_path: Path,
) -> None:
    require_peer("sipp")
    control = _control_port(ports)
    gw: GatewayProcess = gateway(
        {
            "control": {"port": control},
            "realtime": {"greeting": "Greet the callee and remind them of the appointment."},
        },
        echo=False,  # bridged to the built-in simulator (no API key in the test environment)
    )
    uas = _sipp_uas(tmp_path, ports, interop_processes)
    tshark.start()
    status, body = _api(
        control,
        "POST",
        "/calls",
        {
            "to": f"sip:alice@{LOOPBACK}:{ports.sipp_sip}",
            "instructions": "You are calling to remind Alice of her appointment.",
        },
    )
    assert status == 202, body
    call_id = json.loads(body)["call_id"]
    gw.wait_event("call.originated", call_id=call_id)
    gw.wait_event("realtime.connected", call_id=call_id, timeout=10)

    # Let the greeting play out (bot_speaking, then back to listening once its playout
    # drained), then hang up over the API.
    def call_state() -> str:
        _, listing = _api(control, "GET", "/calls")
        calls = json.loads(listing)["calls"]
        return calls[0]["state"] if calls else ""

    wait_until(lambda: call_state() == "bot_speaking", 10, "the greeting playing", interval=0.05)
    wait_until(lambda: call_state() == "listening", 10, "the greeting played out", interval=0.05)
    status, _ = _api(control, "DELETE", f"/calls/{quote(call_id, safe='')}")
    assert status == 204
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "local_bye"
    assert uas.wait(timeout=15) == 0  # SIPp's UAS saw the whole call, BYE included
    pcap = tshark.stop()

    # What SIPp heard: RTP from the gateway's RTP range to SIPp's media port, with sound.
    low, high = ports.gateway_rtp
    to_uas = [
        d
        for d in read_udp(pcap)
        if d.dst[1] == ports.sipp_media and low <= d.src[1] <= high and len(d.payload) == 172
    ]
    # The greeting is 1 s (50 frames); the hang-up follows its playout at once, so on a busy
    # machine the capture may hold just those 50.
    assert len(to_uas) >= 50
    loud = [d for d in to_uas if len(set(d.payload[12:])) > 8]  # not a silence frame
    # The simulator's default reply is 1 s of audio: ~50 frames.
    assert len(loud) >= 25, f"{len(loud)} non-silent packets of {len(to_uas)}"

    status, body = _api(control, "GET", "/metrics")
    assert b'srg_calls_total{outcome="local_bye",route="outbound"} 1.0' in body
