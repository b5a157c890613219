"""Scale-out: two gateway instances behind Kamailio's dispatcher (deploy/kamailio/kamailio.cfg).

The deploy configuration is used as shipped, only its listen address, dispatcher list and
control socket overridden with -A (as the file documents). Round robin gives each instance a
share of the calls; once one instance is stopped (SIGTERM: drain, unregister, exit 0) every new
call is answered by the other one: a 503 or no answer at all makes the failure_route mark the
instance inactive and try the next.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import free_port_block, require_peer
from tests.interop.conftest import (
    LOOPBACK,
    REPO_ROOT,
    GatewayProcess,
    InteropPorts,
    ManagedProcess,
    Sipp,
    _hermetic_env,
    _python,
    _which,
    to_toml,
)

pytestmark = pytest.mark.interop

DEPLOY_CFG = REPO_ROOT / "deploy" / "kamailio" / "kamailio.cfg"


def _start_gateway(
    name: str,
    sip_port: int,
    rtp: tuple[int, int],
    control_port: int,
    tmp_path: Path,
    procs: list[ManagedProcess],
) -> GatewayProcess:
    config = {
        "sip": {"host": LOOPBACK, "port": sip_port, "transports": ["udp"]},
        "media": {"rtp_port_min": rtp[0], "rtp_port_max": rtp[1], "echo": True},
        "control": {"port": control_port},
        "shutdown": {"drain_timeout_s": 10},
        "log": {"level": "INFO", "format": "json"},
    }
    path = tmp_path / f"{name}.toml"
    path.write_text(to_toml(config))
    process = ManagedProcess(
        name,
        [_python(), "-m", "gateway", "run", "--config", str(path)],
        cwd=REPO_ROOT,
        log_path=tmp_path / f"{name}.stdout.log",
        env=_hermetic_env(),
        capture_stderr=True,
    )
    procs.append(process)
    gw = GatewayProcess(process, path, InteropPorts(sip_port))
    gw.wait_event("gateway.started", timeout=20)
    return gw


def _start_dispatcher(
    port: int, targets: list[int], tmp_path: Path, procs: list[ManagedProcess]
) -> ManagedProcess:
    work = tmp_path / "dispatcher"
    (work / "run").mkdir(parents=True)
    ds_list = work / "dispatcher.list"
    ds_list.write_text(
        "".join(f"1 sip:{LOOPBACK}:{p} 0 0 duid=gw{i}\n" for i, p in enumerate(targets, 1))
    )
    process = ManagedProcess(
        "kamailio dispatcher",
        [
            _which("kamailio"), "-f", str(DEPLOY_CFG), "-DD", "-E",
            "-n", "1", "-m", "32", "-M", "8", "-Y", str(work / "run"),
            "-A", f"SIP_LISTEN=udp:{LOOPBACK}:{port}",
            "-A", f'DISPATCHER_LIST="{ds_list}"',
            "-A", f'CTL_SOCKET="unix:{work / "run" / "ctl"}"',
            "-A", 'DS_ALG="4"',  # round robin: the spread is deterministic
        ],
        cwd=work,
        log_path=work / "kamailio.log",
    )  # fmt: skip
    procs.append(process)
    return process


def _call(sipp: Sipp, kam_port: int, ports: InteropPorts) -> None:
    # Local ports apart from the long call's SIPp (which has the fixture's defaults).
    result = sipp.run(
        "uac_call.xml",
        f"{LOOPBACK}:{kam_port}",
        service="100",
        hold_ms=300,
        local_port=ports.base + 34,
        media_port=ports.base + 36,
    )
    assert result.rc == 0, result.describe()


def test_two_gateways_share_calls_and_fail_over(
    sipp: Sipp, ports: InteropPorts, interop_processes: list[ManagedProcess], tmp_path: Path
) -> None:
    require_peer("kamailio")
    base = ports.base
    # RTP ports come from a second block: a released port is quarantined for 30 s, and these
    # instances take up to six calls each within that time.
    rtp = free_port_block()
    gw1 = _start_gateway("gw1", base, (rtp, rtp + 19), base + 32, tmp_path, interop_processes)
    gw2 = _start_gateway(
        "gw2", base + 8, (rtp + 20, rtp + 39), base + 33, tmp_path, interop_processes
    )
    kam_port = ports.kamailio_sip
    kamailio = _start_dispatcher(kam_port, [base, base + 8], tmp_path, interop_processes)

    # Both up: round robin spreads two calls, one each (the first call also proves Kamailio
    # is listening: SIPp retransmits the INVITE until it is).
    _call(sipp, kam_port, ports)
    _call(sipp, kam_port, ports)
    assert len(gw1.find("call.offered")) == 1, kamailio.output()[-3000:]
    assert len(gw2.find("call.offered")) == 1, kamailio.output()[-3000:]
    for gw in (gw1, gw2):
        assert gw.wait_event("call.ended")["cause"] == "remote_bye"

    # A long call lands on one of them; that one is then stopped (SIGTERM) mid-call.
    long_call = sipp.start("uac_call.xml", f"{LOOPBACK}:{kam_port}", service="100", hold_ms=6000)
    marks = {gw1: gw1.mark(), gw2: gw2.mark()}
    deadline = time.monotonic() + 10
    busy = None
    while busy is None and time.monotonic() < deadline:
        busy = next((gw for gw in (gw1, gw2) if gw.find("call.answered", since=marks[gw])), None)
        time.sleep(0.05)
    assert busy is not None, kamailio.output()[-3000:]
    other = gw2 if busy is gw1 else gw1
    before = len(other.find("call.offered"))
    os.kill(busy.process.pid, signal.SIGTERM)
    busy.wait_event("gateway.draining", timeout=5)

    # While it drains (503 to new INVITEs) every new call is answered by the other instance.
    for _ in range(3):
        _call(sipp, kam_port, ports)
    assert len(other.find("call.offered")) == before + 3
    assert len(busy.find("call.answered", since=marks[busy])) == 1  # only the long call
    refused = busy.find("call.ended", since=marks[busy], cause="shutdown")
    assert len(refused) <= 1  # the first one got 503, then Kamailio marked it inactive

    # The live call was not cut: the caller hung up, then the instance exited cleanly.
    result = long_call.wait()
    assert result.rc == 0, result.describe()
    assert busy.process.wait(timeout=20) == 0
    assert busy.find("call.ended", cause="remote_bye", since=marks[busy])

    # Stopped for good: the next call goes to the other one too.
    _call(sipp, kam_port, ports)
    assert len(other.find("call.offered")) == before + 4
