"""Scale-out on one host: the shipped one-process-per-core set behind Kamailio's dispatcher.

Everything comes from deploy/ as an operator installs it (tests/tools/one_host.py renders it):
deploy/kamailio/kamailio.cfg as shipped, only its listen address and control socket overridden
with -A (as the file documents), in front of deploy/kamailio/dispatcher-one-host.list; two
gateway processes, each started as sip-realtime-gateway@.service starts it: the shared
deploy/systemd/instances/gateway.toml plus its instance-N.env (SIP port, RTP range, control
port). The documentation address 192.0.2.10 and the production ports are mapped to free
loopback ones; the only test settings on top are echo media (no voice backend), the control
token variable and, in one test, a ring delay. Round robin gives each instance a share of the
calls; once one instance is stopped (SIGTERM: drain, exit 0) or killed, every new call is
answered by the other one: a 503 or no answer at all makes the failure_route mark the
instance inactive and try the next.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.tools.control import TEST_CONTROL_TOKEN_ENV
from tests.tools.gateway_process import LOOPBACK, GatewayProcess, launch_gateway, merge_config
from tests.tools.kamailio import Kamailio
from tests.tools.one_host import render
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts, free_port_block
from tests.tools.process import ManagedProcess
from tests.tools.sipp import Sipp
from tests.tools.wait import wait_until

pytestmark = pytest.mark.interop


def _start_instances(
    base: int,
    tmp_path: Path,
    procs: list[ManagedProcess],
    answer_delay_ms: tuple[int, int] = (0, 0),
) -> tuple[GatewayProcess, GatewayProcess, list[str]]:
    """Both shipped instances on distinct SIP ports (base, base + 8), RTP ranges (20 ports
    each from a second block: a released port is quarantined for 30 s, and these instances take
    up to six calls each within that time) and control ports; returns them and the rendered
    dispatcher destinations."""
    rtp = free_port_block()
    shipped = render(
        sip_ports=[base, base + 8],
        rtp_ranges=[(rtp, rtp + 19), (rtp + 20, rtp + 39)],
        control_ports=[base + 32, base + 33],
    )
    gateways = []
    for n, (instance, delay) in enumerate(zip(shipped.instances, answer_delay_ms, strict=True), 1):
        config = merge_config(
            shipped.config,
            {
                "media": {"echo": True},
                "calls": {"answer_delay_ms": delay},
                "control": {"token_env": TEST_CONTROL_TOKEN_ENV},
            },
        )
        gateways.append(
            launch_gateway(
                f"gw{n}",
                config,
                tmp_path,
                ports=InteropPorts(instance.sip_port),
                processes=procs,
                env=instance.env,
            )
        )
    gw1, gw2 = gateways
    # The rendered files really gave the two processes distinct ports and ranges.
    for gw, instance in zip(gateways, shipped.instances, strict=True):
        started = gw.wait_event("gateway.started")
        assert started["port"] == instance.sip_port, started
        assert started["rtp_ports"] == f"{instance.rtp[0]}-{instance.rtp[1]}", started
    assert shipped.destinations == [f"{LOOPBACK}:{base}", f"{LOOPBACK}:{base + 8}"]
    return gw1, gw2, shipped.destinations


def _start_dispatcher(
    port: int,
    destinations: list[str],
    tmp_path: Path,
    procs: list[ManagedProcess],
    defines: tuple[str, ...] = (),
) -> Kamailio:
    kamailio = Kamailio.dispatcher(
        tmp_path / "dispatcher",
        port,
        destinations,
        procs,
        defines=('DS_ALG="4"', *defines),  # round robin: the spread is deterministic
    )
    kamailio.start()
    return kamailio


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
    gw1, gw2, destinations = _start_instances(ports.base, tmp_path, interop_processes)
    kam_port = ports.kamailio_sip
    kamailio = _start_dispatcher(kam_port, destinations, tmp_path, interop_processes)

    # Both up: round robin spreads two calls, one each (the first call also proves Kamailio
    # is listening: SIPp retransmits the INVITE until it is).
    _call(sipp, kam_port, ports)
    _call(sipp, kam_port, ports)
    assert len(gw1.find("call.offered")) == 1, kamailio.log_text()[-3000:]
    assert len(gw2.find("call.offered")) == 1, kamailio.log_text()[-3000:]
    for gw in (gw1, gw2):
        assert gw.wait_event("call.ended")["cause"] == "remote_bye"

    # A long call lands on one of them; that one is then stopped (SIGTERM) mid-call.
    long_call = sipp.start("uac_call.xml", f"{LOOPBACK}:{kam_port}", service="100", hold_ms=6000)
    marks = {gw1: gw1.mark(), gw2: gw2.mark()}
    busy = wait_until(
        lambda: next((gw for gw in (gw1, gw2) if gw.find("call.answered", since=marks[gw])), None),
        10,
        lambda: "the long call answered by one instance\n" + kamailio.log_text()[-3000:],
    )
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


def test_dead_instance_fails_over_before_probing_notices(
    sipp: Sipp, ports: InteropPorts, interop_processes: list[ManagedProcess], tmp_path: Path
) -> None:
    """An instance that is gone (SIGKILL: no drain, no 503, port closed) must not cost a call.

    Calls are placed right after the kill, long before two failed OPTIONS probes (20 s) mark
    the instance inactive, so Kamailio still picks it: the send fails at once (ICMP port
    unreachable) or nothing answers, and the call must go to the live instance instead of
    ending in a local 500/408.
    """
    require_peer("kamailio")
    base = ports.base
    gw1, gw2, destinations = _start_instances(base, tmp_path, interop_processes)
    kam_port = ports.kamailio_sip
    kamailio = _start_dispatcher(kam_port, destinations, tmp_path, interop_processes)

    # Both up and both used (round robin): the next pick is gw1 again.
    _call(sipp, kam_port, ports)
    _call(sipp, kam_port, ports)
    assert len(gw1.find("call.offered")) == 1, kamailio.log_text()[-3000:]
    assert len(gw2.find("call.offered")) == 1, kamailio.log_text()[-3000:]
    for gw in (gw1, gw2):
        gw.wait_event("call.ended")

    os.kill(gw1.process.pid, signal.SIGKILL)
    assert gw1.process.wait(timeout=10) == -signal.SIGKILL

    # Two calls at once right after the kill: one of them is dispatched to the dead instance
    # first. Both must be answered by gw2. Own local SIP/media ports, in slots of the block this
    # test leaves unused (SIPp also binds media port + 2).
    concurrent = [
        sipp.start(
            "uac_call.xml",
            f"{LOOPBACK}:{kam_port}",
            service="100",
            hold_ms=300,
            local_port=base + local,
            media_port=base + media,
        )
        for local, media in ((1, 3), (22, 24))
    ]
    for run in concurrent:
        result = run.wait()
        assert result.rc == 0, result.describe() + "\n" + kamailio.log_text()[-3000:]
    # And the calls after that, one by one (gw1 is now marked inactive or fails over again).
    for _ in range(2):
        _call(sipp, kam_port, ports)
    assert len(gw2.find("call.offered")) == 1 + 4, kamailio.log_text()[-3000:]
    assert len(gw1.find("call.offered")) == 1
    # Kamailio did try the dead instance and failed over (not only probing luck).
    assert f"gateway sip:{LOOPBACK}:{base} failed" in kamailio.log_text(), kamailio.log_text()[
        -3000:
    ]


def _tolerate_second_ringing(sipp: Sipp, tmp_path: Path) -> str:
    """uac_call.xml, but a second 180 (from the instance tried next) is not an error.

    A caller behind a failing-over proxy sees 180 from the dead instance, then 180 from the
    live one (another To tag). SIPp aborts on that unless the 180 step is optional: the
    derived scenario lives in this test's directory, looked up before the project's."""
    text = sipp.scenario_path("uac_call.xml").read_text()
    assert text.count('<recv response="180"/>') == 1
    scenarios = tmp_path / "sipp-scenarios"
    scenarios.mkdir()
    name = "uac_call_failover.xml"
    (scenarios / name).write_text(
        text.replace('<recv response="180"/>', '<recv response="180" optional="true"/>')
    )
    sipp.scenario_dirs = (scenarios, *sipp.scenario_dirs)
    return name


def test_instance_killed_while_ringing_fails_over(
    sipp: Sipp,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    tmp_path: Path,
) -> None:
    """A gateway that sent 180 and then died: the call must go to the other instance.

    gw1 rings 2.5 s before answering (calls.answer_delay_ms) and is SIGKILLed while a call
    rings on it. Nothing more comes from it, so after fr_inv_timer (shortened to 5 s here with
    FR_INV_TIMER, still above gw1's ring time) tm ends the branch with a local 408; the
    failure_route must retry on gw2 instead of relaying the 408 to the caller.
    """
    require_peer("kamailio")
    base = ports.base
    gw1, gw2, destinations = _start_instances(
        base, tmp_path, interop_processes, answer_delay_ms=(2500, 0)
    )
    kam_port = ports.kamailio_sip
    kamailio = _start_dispatcher(
        kam_port, destinations, tmp_path, interop_processes, ("FR_INV_TIMER=5000",)
    )

    # Both up and both used, the slow ringer included (its 2.5 s ring is within the timer).
    _call(sipp, kam_port, ports)
    _call(sipp, kam_port, ports)
    assert len(gw1.find("call.answered")) == 1, kamailio.log_text()[-3000:]
    assert len(gw2.find("call.answered")) == 1, kamailio.log_text()[-3000:]

    # Two calls: round robin sends one of them to gw1, which rings; kill it right then.
    scenario = _tolerate_second_ringing(sipp, tmp_path)
    mark1, mark2 = gw1.mark(), gw2.mark()
    runs = [
        sipp.start(
            scenario,
            f"{LOOPBACK}:{kam_port}",
            service="100",
            hold_ms=300,
            local_port=base + local,
            media_port=base + media,
        )
        for local, media in ((1, 3), (22, 24))
    ]
    gw1.wait_event("call.offered", timeout=10, since=mark1)
    os.kill(gw1.process.pid, signal.SIGKILL)
    assert gw1.process.wait(timeout=10) == -signal.SIGKILL
    for run in runs:
        result = run.wait()
        assert result.rc == 0, result.describe() + "\n" + kamailio.log_text()[-3000:]
    assert len(gw2.find("call.answered", since=mark2)) == 2, kamailio.log_text()[-3000:]
    assert "status 408" in kamailio.log_text(), kamailio.log_text()[-3000:]
