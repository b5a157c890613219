"""SIGHUP and admission (issue 9): a changed allowlist or limit is applied to the running
gateway and logged; a changed key that needs a restart (sip.port) refuses the reload with an
ERROR naming it, and the gateway keeps serving on the old port."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import load_config
from tests.security.admission_tools import (  # noqa: F401  (fixtures)
    LOOPBACK,
    loopback_peer,
    netns,
)
from tests.tools.gateway_process import GatewayProcess
from tests.tools.netns import NetnsPair
from tests.tools.rawsip import Reply, UdpPeer, invite, new_dialog, request

Factory = Callable[..., GatewayProcess]


def _add_to_sip_section(gw: GatewayProcess, lines: str) -> None:
    path = Path(gw.config_path)
    text = path.read_text()
    assert "[sip]\n" in text
    path.write_text(text.replace("[sip]\n", f"[sip]\n{lines}\n", 1))


def _sighup(gw: GatewayProcess) -> None:
    os.kill(gw.process.pid, signal.SIGHUP)


def _answers_until_options(peer: UdpPeer) -> list[Reply]:
    """Every reply up to the 200 of an OPTIONS sent now (the UA answers in arrival order)."""
    peer.send(request("OPTIONS", new_dialog(), peer.local, peer.target))
    got: list[Reply] = []
    for _ in range(20):
        got += peer.replies(1.0, until_final=True)
        if any(r.cseq_method == "OPTIONS" for r in got):
            return got
    raise AssertionError(f"no answer to OPTIONS: {got}")


def test_sighup_admits_a_source_added_to_allow_networks(
    netns: NetnsPair,  # noqa: F811 (the fixture)
    realtime_gateway: Factory,
    sim_factory: Callable[..., Any],
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, sip_host=netns.host_addr)
    target = (netns.host_addr, gw.ports.gateway_sip)
    assert netns.uac(target)["final"] == 403

    subnet = ipaddress.ip_interface(f"{netns.ns_addr}/30").network
    mark = gw.mark()
    _add_to_sip_section(gw, f'allow_networks = ["{subnet}"]')
    _sighup(gw)
    reloaded = gw.wait_event("config.reloaded", since=mark)
    assert reloaded["keys"] == ["sip.allow_networks"]

    result = netns.uac(target)
    assert result["final"] == 200, result
    gw.wait_event("call.ended")
    assert len(sim.sessions()) == 1


def test_sighup_applies_a_new_invite_rate(
    realtime_gateway: Factory, sim_factory: Callable[..., Any]
) -> None:
    """Loopback only: a bucket of 1 that never refills drops the second INVITE; after SIGHUP
    with a faster rate the next one is answered (401: digest keeps it cheap)."""
    sim = sim_factory()
    auth = {"realm": "gw", "username": "alice", "password": "s3cret"}
    gw = realtime_gateway(
        sim.url,
        {
            "sip": {
                "invite_burst_per_source": 1,
                "invite_rate_per_source": 0.01,
                "inbound_auth": auth,
            }
        },
    )
    peer = loopback_peer(gw)
    try:
        first, second = new_dialog(), new_dialog()
        peer.send(invite(first, peer.local, peer.target))
        peer.send(invite(second, peer.local, peer.target))
        answered = {r.header("Call-ID") for r in _answers_until_options(peer)}
        assert first.call_id in answered and second.call_id not in answered

        mark = gw.mark()
        text = Path(gw.config_path).read_text()
        Path(gw.config_path).write_text(
            text.replace("invite_rate_per_source = 0.01", "invite_rate_per_source = 1000.0")
        )
        _sighup(gw)
        reloaded = gw.wait_event("config.reloaded", since=mark)
        assert reloaded["keys"] == ["sip.invite_rate_per_source"]

        third = new_dialog()
        peer.send(invite(third, peer.local, peer.target))
        replies = _answers_until_options(peer)
        assert any(r.header("Call-ID") == third.call_id and r.status == 401 for r in replies)
    finally:
        peer.close()
    assert sim.sessions() == []


def test_sighup_refuses_a_new_sip_port_and_keeps_the_old_one(gateway: Factory) -> None:
    gw = gateway()
    old_port = gw.ports.gateway_sip
    mark = gw.mark()
    path = Path(gw.config_path)
    path.write_text(path.read_text().replace(f"port = {old_port}\n", f"port = {old_port + 1}\n", 1))
    _sighup(gw)
    refused = gw.wait_event("config.reload_refused", since=mark)
    assert refused["level"] == "error"
    assert "sip.port" in refused["message"]
    assert any(key.startswith("sip.port") for key in refused["keys"])
    assert gw.find("config.reloaded", since=mark) == []

    peer = UdpPeer(LOOPBACK, (LOOPBACK, old_port))
    try:
        replies = _answers_until_options(peer)
    finally:
        peer.close()
    assert any(r.cseq_method == "OPTIONS" and r.status == 200 for r in replies)


# -- in process: the reload decision without a running gateway ------------------------------------
def _write(path: Path, sip: str) -> None:
    path.write_text(f'[sip]\nhost = "127.0.0.1"\nport = 5080\n{sip}\n[control]\nenabled = false\n')


def test_reload_applies_admission_keys_and_refuses_restart_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gateway.toml"
    _write(path, "")
    gateway = Gateway(load_config(path, env={}), config_path=str(path))
    caplog.set_level(logging.INFO, logger="gateway")

    _write(path, 'allow_networks = ["192.0.2.0/24"]\nmax_calls_per_source = 3')
    assert gateway.reload(env={}) is True
    assert gateway.config.sip.allow_networks == ("192.0.2.0/24",)
    applied = [r for r in caplog.records if getattr(r, "event", "") == "config.reloaded"]
    assert applied[-1].fields["keys"] == ["sip.allow_networks", "sip.max_calls_per_source"]

    text = path.read_text().replace("port = 5080", "port = 5082").replace("192.0.2", "198.51.100")
    path.write_text(text)
    assert gateway.reload(env={}) is False
    refused = [r for r in caplog.records if getattr(r, "event", "") == "config.reload_refused"]
    assert refused[-1].levelno == logging.ERROR
    assert refused[-1].fields["keys"] == ["sip.port"]
    assert gateway.config.sip.port == 5080
    assert gateway.config.sip.allow_networks == ("192.0.2.0/24",)  # nothing applied


def test_reload_refuses_a_file_change_to_a_key_the_command_line_sets(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    _write(path, "max_calls = 10")
    overrides = {"sip.max_calls": 50}
    gateway = Gateway(load_config(path, env={}, overrides=overrides), str(path), overrides)
    _write(path, "max_calls = 20")
    assert gateway.reload(env={}) is False
    assert gateway.config.sip.max_calls == 50
