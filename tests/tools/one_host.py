"""The shipped one-host scale-out set, read as an operator installs it and rendered for tests.

deploy/systemd/sip-realtime-gateway@.service runs one gateway per core; each instance reads
the shared deploy/systemd/instances/gateway.toml plus its own instance-N.env (SIP port, RTP
range, control port as SRG_* overrides), and deploy/kamailio/dispatcher-one-host.list lists
them for deploy/kamailio/kamailio.cfg. The files use the documentation address 192.0.2.10 and
production ports; `render()` maps that address and every port to free loopback ones, keeping
everything else as shipped, so tests/interop/test_dispatcher.py runs exactly that set and
tests/test_deploy.py checks that its parts agree.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.tools.gateway_process import LOOPBACK, REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
TEMPLATE_UNIT = DEPLOY / "systemd" / "sip-realtime-gateway@.service"
INSTANCES_DIR = DEPLOY / "systemd" / "instances"
SHARED_TOML = INSTANCES_DIR / "gateway.toml"
ONE_HOST_LIST = DEPLOY / "kamailio" / "dispatcher-one-host.list"
SHIPPED_HOST = "192.0.2.10"  # RFC 5737 documentation address, replaced by the operator

# The SRG_* keys an instance file sets (and only those: the rest is shared).
INSTANCE_KEYS = (
    "SRG_SIP_PORT",
    "SRG_MEDIA_RTP_PORT_MIN",
    "SRG_MEDIA_RTP_PORT_MAX",
    "SRG_CONTROL_PORT",
)


def read_env_file(path: Path) -> dict[str, str]:
    """systemd EnvironmentFile= syntax as the shipped files use it: KEY=value, # comments."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path}: bad line {line!r}"
        env[key] = value
    return env


def instance_files() -> list[Path]:
    """instance-1.env, instance-2.env, ... in instance order."""
    files = list(INSTANCES_DIR.glob("instance-*.env"))
    return sorted(files, key=lambda p: int(p.stem.split("-")[1]))


def dispatcher_destinations(path: Path = ONE_HOST_LIST) -> list[tuple[str, int]]:
    """(host, port) of each set-1 line of a dispatcher list, in order."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        setid, uri, *_ = line.split()
        assert setid == "1", line
        match = re.fullmatch(r"sip:([^:;]+):(\d+)", uri)
        assert match, line
        out.append((match.group(1), int(match.group(2))))
    return out


@dataclass(frozen=True)
class RenderedInstance:
    env: dict[str, str]  # the instance file, ports mapped
    sip_port: int
    rtp: tuple[int, int]
    control_port: int


@dataclass(frozen=True)
class OneHostSet:
    config: dict[str, Any]  # the shared TOML, the address mapped
    instances: list[RenderedInstance]
    destinations: list[str]  # the dispatcher list's "host:port", mapped


def render(
    sip_ports: list[int], rtp_ranges: list[tuple[int, int]], control_ports: list[int]
) -> OneHostSet:
    """The shipped set with 192.0.2.10 -> 127.0.0.1 and each instance's ports -> the given ones
    (instance i gets sip_ports[i], rtp_ranges[i], control_ports[i]). The dispatcher list is
    mapped through the same port table, so a list that names a port no instance uses fails."""
    files = instance_files()
    assert len(files) == len(sip_ports) == len(rtp_ranges) == len(control_ports), files
    text = SHARED_TOML.read_text().replace(SHIPPED_HOST, LOOPBACK)
    config = tomllib.loads(text)
    instances, port_map = [], {}
    for path, sip, rtp, control in zip(files, sip_ports, rtp_ranges, control_ports, strict=True):
        shipped = read_env_file(path)
        assert set(shipped) == set(INSTANCE_KEYS), (path, set(shipped) ^ set(INSTANCE_KEYS))
        port_map[int(shipped["SRG_SIP_PORT"])] = sip
        env = {
            "SRG_SIP_PORT": str(sip),
            "SRG_MEDIA_RTP_PORT_MIN": str(rtp[0]),
            "SRG_MEDIA_RTP_PORT_MAX": str(rtp[1]),
            "SRG_CONTROL_PORT": str(control),
        }
        instances.append(RenderedInstance(env, sip, rtp, control))
    destinations = []
    for host, port in dispatcher_destinations():
        assert host == SHIPPED_HOST, host
        assert port in port_map, f"{ONE_HOST_LIST.name} lists port {port}, no instance has it"
        destinations.append(f"{LOOPBACK}:{port_map[port]}")
    return OneHostSet(config, instances, destinations)
