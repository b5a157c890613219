"""Deployment material: the files parse, agree with each other, and the real tools accept them.

No Docker engine or Kubernetes cluster runs here, so the compose file and manifests get
structural checks (required fields, selectors, probes, port ranges consistent with the gateway
configuration); Kamailio's dispatcher config is checked by `kamailio -c` and by a real run that
spreads INVITEs over two fake gateway instances and fails over on 503; the systemd unit by
`systemd-analyze verify`; the gateway TOML files by `gateway.config.load_config` itself.
"""

from __future__ import annotations

import configparser
import contextlib
import itertools
import json
import re
import selectors
import shutil
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig, load_config
from gateway.media.ports import pairs_needed
from gateway.observe.metrics import Metrics
from tests.tools.kamailio import DISPATCHER_CFG, Kamailio, check_config
from tests.tools.one_host import (
    INSTANCE_KEYS,
    ONE_HOST_LIST,
    SHARED_TOML,
    SHIPPED_HOST,
    TEMPLATE_UNIT,
    dispatcher_destinations,
    instance_files,
    read_env_file,
)
from tests.tools.peers import require_peer
from tests.tools.process import ManagedProcess

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SECRETS_ENV = {"SIP_PASSWORD": "test-password", "OPENAI_API_KEY": ""}


def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def _published(service: dict[str, Any]) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """`"20000-20049:20000-20049/udp"` -> [("udp", host range, container range)]."""
    out = []
    for entry in service.get("ports", []):
        spec, _, proto = str(entry).partition("/")
        parts = spec.split(":")
        host, container = parts[-2], parts[-1]
        out.append((proto or "tcp", _port_range(host), _port_range(container)))
    return out


def _drain_timeout(args: list[str]) -> float:
    assert "--drain-timeout" in args, args
    return float(args[args.index("--drain-timeout") + 1])


# ---------------------------------------------------------------------------------------------
# Every YAML and JSON file parses


def test_every_yaml_and_json_file_parses() -> None:
    files = [ROOT / "docker-compose.yml", *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    assert len(files) >= 6
    for path in files:
        assert _yaml_docs(path), f"{path} is empty"
    for path in DEPLOY.rglob("*.json"):
        json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# Gateway configuration files


@pytest.mark.parametrize("name", ["gateway.toml", "image.toml"])
def test_gateway_tomls_load_with_the_gateways_own_loader(name: str) -> None:
    config = load_config(DEPLOY / "gateway" / name, env=SECRETS_ENV)
    assert config.media.rtp_port_min < config.media.rtp_port_max


def test_compose_gateway_registers_to_the_asterisk_container() -> None:
    config = load_config(DEPLOY / "gateway" / "gateway.toml", env=SECRETS_ENV)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    asterisk_ip = compose["services"]["asterisk"]["networks"]["voice"]["ipv4_address"]
    (reg,) = config.registrations
    assert reg.registrar == f"sip:{asterisk_ip}:5060"
    assert reg.username == "gateway" and reg.password_env == "SIP_PASSWORD"
    # The password compose passes by default is the one Asterisk expects.
    default = re.fullmatch(
        r"\$\{SIP_PASSWORD:-(.+)\}", compose["services"]["gateway"]["environment"]["SIP_PASSWORD"]
    )
    assert default is not None
    pjsip = _asterisk_sections(DEPLOY / "asterisk" / "pjsip.conf")
    assert pjsip["gateway-auth"][0]["password"] == default.group(1)
    assert pjsip["gateway-auth"][0]["username"] == reg.username


def test_compose_gateway_admits_its_asterisk_and_nothing_else() -> None:
    config = load_config(DEPLOY / "gateway" / "gateway.toml", env=SECRETS_ENV)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    asterisk_ip = compose["services"]["asterisk"]["networks"]["voice"]["ipv4_address"]
    assert config.sip.allow_networks == (f"{asterisk_ip}/32",)
    # All calls come from that one address: the per-source cap must not undercut max_calls.
    assert config.sip.max_calls_per_source >= config.sip.max_calls
    image = load_config(DEPLOY / "gateway" / "image.toml", env=SECRETS_ENV)
    assert image.sip.allow_networks == ()  # closed by default


# ---------------------------------------------------------------------------------------------
# docker-compose.yml

# Keys of the compose specification used by a service here (a subset: a typo such as `port:`
# or `healtcheck:` fails the test instead of being ignored by a reader).
_SERVICE_KEYS = {
    "build",
    "image",
    "restart",
    "networks",
    "ports",
    "healthcheck",
    "depends_on",
    "environment",
    "volumes",
    "command",
    "stop_grace_period",
    "network_mode",
    "env_file",
}
_TOP_KEYS = {"name", "services", "networks", "volumes", "secrets", "configs"}


def test_compose_structure() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose) <= _TOP_KEYS
    services = compose["services"]
    assert set(services) == {"asterisk", "gateway"}
    subnet = compose["networks"]["voice"]["ipam"]["config"][0]["subnet"]
    prefix = subnet.rsplit(".", 1)[0] + "."
    for name, service in services.items():
        assert set(service) <= _SERVICE_KEYS, (name, set(service) - _SERVICE_KEYS)
        assert (ROOT / service["build"] / "Dockerfile").is_file(), name
        assert service["healthcheck"]["test"][0] == "CMD"
        assert service["networks"]["voice"]["ipv4_address"].startswith(prefix)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), source
    gateway = services["gateway"]
    assert gateway["depends_on"]["asterisk"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["command"][0] == "run"
    grace = int(gateway["stop_grace_period"].removesuffix("s"))
    assert grace > _drain_timeout(gateway["command"])


def test_compose_published_rtp_ranges_match_the_applications() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    config = load_config(DEPLOY / "gateway" / "gateway.toml", env=SECRETS_ENV)
    gateway_udp = [(h, c) for proto, h, c in _published(services["gateway"]) if proto == "udp"]
    rtp = (config.media.rtp_port_min, config.media.rtp_port_max)
    assert (rtp, rtp) in gateway_udp  # published 1:1, so the SDP port is the reachable port
    assert ((5070, 5070), (config.sip.port, config.sip.port)) in gateway_udp

    rtp_conf = configparser.ConfigParser(inline_comment_prefixes=(";",), comment_prefixes=(";",))
    rtp_conf.read_string((DEPLOY / "asterisk" / "rtp.conf").read_text())
    ast_rtp = (int(rtp_conf["general"]["rtpstart"]), int(rtp_conf["general"]["rtpend"]))
    asterisk_udp = [(h, c) for proto, h, c in _published(services["asterisk"]) if proto == "udp"]
    assert (ast_rtp, ast_rtp) in asterisk_udp
    assert ((5060, 5060), (5060, 5060)) in asterisk_udp
    # Two ranges on one host must not overlap.
    assert ast_rtp[1] < rtp[0] or rtp[1] < ast_rtp[0]


# ---------------------------------------------------------------------------------------------
# Asterisk configuration


def _asterisk_sections(path: Path) -> dict[str, list[dict[str, str]]]:
    """Asterisk .conf files repeat section names (`[gateway]` endpoint and aor): keep each."""
    sections: dict[str, list[dict[str, str]]] = {}
    current: dict[str, str] | None = None
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line)
        if header:
            current = {"__template__": header.group(2) or ""}
            sections.setdefault(header.group(1), []).append(current)
            continue
        assert current is not None, f"{path.name}: option outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key = value: {raw!r}"
        current[key.strip().rstrip(">").strip()] = value.strip()
    return sections


def test_asterisk_pjsip_has_gateway_and_softphones() -> None:
    sections = _asterisk_sections(DEPLOY / "asterisk" / "pjsip.conf")
    templates = {name: bodies[0] for name, bodies in sections.items() if "type" in bodies[0]}
    for ext in ("gateway", "200", "201"):
        endpoint, aor = sections[ext]
        assert endpoint["__template__"] == "endpoint-common"
        assert aor["__template__"] == "aor-common"
        assert endpoint["auth"] == f"{ext}-auth" and endpoint["aors"] == ext
        assert sections[f"{ext}-auth"][0]["__template__"] == "auth-common"
    common = templates["endpoint-common"]
    assert common["allow"] == "ulaw,alaw" and common["direct_media"] == "no"
    assert common["dtmf_mode"] == "rfc4733"
    assert templates["aor-common"]["max_contacts"] == "1"
    assert {s[0]["protocol"] for n, s in sections.items() if n.startswith("transport")} == {
        "udp",
        "tcp",
    }


def test_asterisk_dialplan_routes_100_to_the_gateway() -> None:
    dialplan = (DEPLOY / "asterisk" / "extensions.conf").read_text()
    assert "[from-internal]" in dialplan
    assert re.search(r"exten => 100,1,", dialplan)
    assert "Dial(${PJSIP_DIAL_CONTACTS(gateway)}" in dialplan
    modules = _asterisk_sections(DEPLOY / "asterisk" / "modules.conf")
    assert modules["modules"][0]["autoload"] == "yes"
    dockerfile = (DEPLOY / "asterisk" / "Dockerfile").read_text()
    copied = re.search(r"^COPY (.+) /etc/asterisk/$", dockerfile, re.M)
    assert copied is not None
    for name in copied.group(1).split():
        assert (DEPLOY / "asterisk" / name).is_file(), name


# ---------------------------------------------------------------------------------------------
# Dockerfile


def _dockerfile_instructions(text: str) -> list[str]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued instruction"
    return out


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = _dockerfile_instructions(text)
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2 and froms[-1].startswith("FROM python:3.12-slim")
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthcheck = next(ln for ln in lines if ln.startswith("HEALTHCHECK "))
    assert " CMD " in healthcheck
    assert "127.0.0.1:8080/healthz" in text and "urllib" in text
    assert 'ENTRYPOINT ["sip-realtime-gateway"]' in text
    cmd = json.loads(next(ln for ln in lines if ln.startswith("CMD "))[4:])
    assert cmd[:2] == ["run", "--config"]
    assert "uvloop" in text
    # EXPOSE covers the baked-in config's SIP port and RTP range.
    baked = re.search(r"^COPY (deploy/gateway/\S+) (\S+)$", text, re.M)
    assert baked is not None and baked.group(2) == cmd[2]
    config = load_config(ROOT / baked.group(1), env=SECRETS_ENV)
    expose = " ".join(ln for ln in lines if ln.startswith("EXPOSE "))
    assert f"{config.sip.port}/udp" in expose
    assert f"{config.media.rtp_port_min}-{config.media.rtp_port_max}/udp" in expose


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
                assert not any(
                    source == pattern or source.startswith(pattern.rstrip("/") + "/")
                    for pattern in ignored
                ), f"{source} is excluded by .dockerignore"


# ---------------------------------------------------------------------------------------------
# Kubernetes


def _k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _yaml_docs(path):
            assert doc.get("apiVersion") and doc.get("kind"), path.name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path.name
            docs[doc["kind"]] = doc
    return docs


def test_k8s_manifests_have_required_fields_and_matching_selectors() -> None:
    docs = _k8s()
    assert {"Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Kustomization"} <= set(
        docs
    )
    listed = set(docs["Kustomization"]["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    dep = docs["Deployment"]
    selector = dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod = dep["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True


def _exec_probe_url(probe: dict[str, Any]) -> str:
    command = " ".join(probe["exec"]["command"])
    found = re.search(r"'(http://[^']+)'", command)
    assert found is not None, command
    return found.group(1)


def test_k8s_probes_prestop_drain_and_ports(tmp_path: Path) -> None:
    docs = _k8s()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = _k8s_config(tmp_path)
    # The probes reach the control API where the ConfigMap binds it. It is on loopback, so
    # they must be exec probes inside the container (an httpGet from the kubelet would need
    # the API on the node address).
    assert config.control.enabled and config.control.host == "127.0.0.1"
    base = f"http://127.0.0.1:{config.control.port}"
    ready, live = container["readinessProbe"], container["livenessProbe"]
    assert "httpGet" not in ready and "httpGet" not in live
    assert _exec_probe_url(ready) == f"{base}/readyz"
    assert _exec_probe_url(live) == f"{base}/healthz"
    # /readyz needs the bearer token when one is configured; the probe reads the same
    # variable the gateway does (/healthz never needs it).
    assert config.control.token_env
    assert f"os.environ['{config.control.token_env}']" in " ".join(ready["exec"]["command"])
    assert "Bearer" in " ".join(ready["exec"]["command"])
    control_ports = [p for p in container["ports"] if p["name"] == "control"]
    assert [p["containerPort"] for p in control_ports] == [config.control.port]

    # Drain timing: --drain-timeout and [shutdown] agree; the preStop hook waits for the drain
    # plus the BYEs and the unregister when peers do not answer (gateway.app: BYEs guarded at
    # 10 s, unregister 5 s, tasks 1 s); the kubelet's SIGKILL deadline comes after the hook.
    prestop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "SIGTERM" in prestop
    drain = _drain_timeout(container["args"])
    assert config.shutdown.drain_timeout_s == drain
    waited = re.search(r"time\.monotonic\(\) \+ (\d+)", prestop)
    assert waited is not None
    assert drain + 16 <= int(waited.group(1)) < pod["terminationGracePeriodSeconds"]
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert {(5060, "UDP"), (5060, "TCP")} <= ports
    assert container["resources"]["requests"]["memory"]
    # Every secret the pod reads exists in the Secret, and the config loads with them.
    secret = docs["Secret"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs <= set(secret["stringData"])
    assert config.control.token_env in refs
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert f"{mount['mountPath']}/gateway.toml" == container["args"][2]
    # Call records land on a writable volume (the root filesystem is read-only).
    if config.records.dir:
        assert any(
            config.records.dir.startswith(m["mountPath"] + "/")
            for m in container["volumeMounts"]
            if not m.get("readOnly")
        )


def _k8s_config(tmp_path: Path) -> GatewayConfig:
    """The ConfigMap's gateway.toml loaded with the environment the Deployment gives the pod."""
    text = _k8s()["ConfigMap"]["data"]["gateway.toml"]
    tomllib.loads(text)
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    secret = _k8s()["Secret"]["stringData"]
    env = dict(SECRETS_ENV, SRG_SIP_ADVERTISED_HOST="10.0.0.21", CONTROL_TOKEN="probe-token")
    assert set(env) - {"SRG_SIP_ADVERTISED_HOST"} <= set(secret)
    return load_config(path, env=env)


def test_k8s_configmap_gateway_toml_loads(tmp_path: Path) -> None:
    config = _k8s_config(tmp_path)
    assert config.sip.advertised_host == "10.0.0.21"
    assert config.registrations[0].password.reveal() == "test-password"
    assert config.control.token.reveal() == "probe-token"


def test_compose_and_image_drain_and_health_agree_with_the_gateway_config() -> None:
    """docker-compose.yml runs deploy/gateway/gateway.toml; the image bakes image.toml."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]
    config = load_config(DEPLOY / "gateway" / "gateway.toml", env=SECRETS_ENV)
    # Own network namespace: the container's loopback is private, so loopback + no token is
    # enough for the in-container healthcheck.
    assert config.control.enabled and config.control.host == "127.0.0.1"
    health = " ".join(gateway["healthcheck"]["test"])
    assert f"http://127.0.0.1:{config.control.port}/healthz" in health
    drain = _drain_timeout(gateway["command"])
    assert config.shutdown.drain_timeout_s == drain
    grace = int(gateway["stop_grace_period"].removesuffix("s"))
    assert grace >= drain + 10  # BYEs + unregister after the drain
    image = load_config(DEPLOY / "gateway" / "image.toml", env=SECRETS_ENV)
    assert image.control.enabled and image.control.host == "127.0.0.1"
    assert f"http://127.0.0.1:{image.control.port}/healthz" in (ROOT / "Dockerfile").read_text()


# ---------------------------------------------------------------------------------------------
# Grafana


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "sip-realtime-gateway.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_grafana_uses_only_defined_metrics_and_covers_them() -> None:
    metrics = Metrics()
    defined = metrics.sample_names()
    exprs = _dashboard_exprs()
    used = {m for e in exprs for m in re.findall(r"\bsrg_[a-z0-9_]+", e)}
    assert used, "dashboard has no srg_ queries"
    assert used <= defined, used - defined
    for family in metrics.registry.collect():
        assert any(u == family.name or u.startswith(family.name + "_") for u in used), (
            f"{family.name} is not on the dashboard"
        )


# ---------------------------------------------------------------------------------------------
# systemd


@pytest.mark.parametrize("name", ["sip-realtime-gateway.service", "sip-realtime-gateway@.service"])
def test_systemd_unit(name: str, tmp_path: Path) -> None:
    path = DEPLOY / "systemd" / name
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(path.read_text())
    service = unit["Service"]
    exec_start = service["ExecStart"].split()
    assert exec_start[1] == "run"
    assert int(service["TimeoutStopSec"]) > _drain_timeout(exec_start)
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"].split()[-2:] == ["-HUP", "$MAINPID"]  # SIGHUP reloads routes
    assert service.get("DynamicUser") == "yes" or service.get("User")
    assert service["EnvironmentFile"].startswith("/etc/")
    assert "AmbientCapabilities" not in service  # 5060 and RTP are above 1023
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    # verify checks that ExecStart exists: point it at a binary this machine has. A template
    # is verified as its instance 1.
    copy = tmp_path / name.replace("@.", "@1.")
    copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", path.read_text(), flags=re.M))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_template_instances_agree_with_the_dispatcher_list() -> None:
    """One process per core (sip-realtime-gateway@.service): every instance loads the shared
    TOML with its own env file, on its own SIP port, RTP range and control port; the ranges
    hold max_calls plus the quarantine's churn; dispatcher-one-host.list lists exactly these
    instances; the unit reads the files the header tells the operator to install."""
    unit_text = TEMPLATE_UNIT.read_text()
    assert "EnvironmentFile=/etc/sip-realtime-gateway/instance-%i.env" in unit_text
    assert "--config /etc/sip-realtime-gateway/instances.toml" in unit_text
    assert "StateDirectory=sip-realtime-gateway/%i" in unit_text  # own token, own records
    files = instance_files()
    assert [f.name for f in files] == [f"instance-{n}.env" for n in range(1, len(files) + 1)]
    assert len(files) >= 2
    configs = []
    for path in files:
        env = read_env_file(path)
        assert set(env) == set(INSTANCE_KEYS), path
        assert f"install -m 0644 deploy/systemd/instances/{path.name}" in unit_text
        configs.append(load_config(SHARED_TOML, env={**SECRETS_ENV, **env}))
    sip_ports = [c.sip.port for c in configs]
    control_ports = [c.control.port for c in configs]
    assert len(set(sip_ports)) == len(configs) and len(set(control_ports)) == len(configs)
    ranges = sorted((c.media.rtp_port_min, c.media.rtp_port_max) for c in configs)
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high < low, ranges  # no overlap
    for c in configs:
        assert c.sip.host == SHIPPED_HOST
        assert c.sip.allow_networks == (f"{SHIPPED_HOST}/32",)  # only Kamailio
        assert c.sip.max_calls_per_source == c.sip.max_calls  # every call comes from Kamailio
        assert c.sip.transports == ("udp",)  # deploy/kamailio/kamailio.cfg: disable_tcp=yes
        pairs = (c.media.rtp_port_max - c.media.rtp_port_min + 1) // 2
        assert pairs >= pairs_needed(c.sip.max_calls, c.media.rtp_port_quarantine_s)
        # ... and the worst case, every call ending at once (docs/deployment.md).
        assert pairs >= 2 * c.sip.max_calls
        assert c.sip.port not in (5060,)  # Kamailio's
    assert dispatcher_destinations() == [(SHIPPED_HOST, p) for p in sip_ports]


# ---------------------------------------------------------------------------------------------
# Kamailio dispatcher


@pytest.mark.parametrize("listfile", ["dispatcher.list", ONE_HOST_LIST.name])
def test_kamailio_dispatcher_config_is_valid(listfile: str) -> None:
    require_peer("kamailio")
    result = check_config(DISPATCHER_CFG, (f'DISPATCHER_LIST="{DEPLOY / "kamailio" / listfile}"',))
    assert result.returncode == 0 and "config file ok" in result.stderr, result.stderr[-3000:]
    entries = [
        ln.split()
        for ln in (DEPLOY / "kamailio" / listfile).read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert len(entries) >= 2 and {e[0] for e in entries} == {"1"}
    assert all(e[1].startswith("sip:") for e in entries)


class _FakeGateway:
    """A UDP endpoint that answers OPTIONS 200 and INVITE with a fixed status.

    Status 180 stands for an instance that rings and then dies: 180, and nothing after."""

    def __init__(self, port: int, invite_status: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.port = port
        self.invite_status = invite_status
        self.invites: list[str] = []

    def handle(self) -> None:
        data, addr = self.sock.recvfrom(65535)
        text = data.decode(errors="replace")
        method = text.split(" ", 1)[0]
        if method == "INVITE":
            self.invites.append(text)
            self.sock.sendto(_response(text, self.invite_status, self.port), addr)
        elif method == "OPTIONS":
            self.sock.sendto(_response(text, 200, self.port), addr)


def _response(request: str, status: int, port: int) -> bytes:
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    reason = {180: "Ringing", 200: "OK", 503: "Service Unavailable"}.get(status, "X")
    lines = [f"SIP/2.0 {status} {reason}"]
    for line in head[1:]:
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq", "record-route"):
            lines.append(line)
        elif name in ("to", "t"):
            lines.append(line if ";tag=" in line else line + f";tag=gw{port}")
    if status in (180, 200):
        lines.append(f"Contact: <sip:gw@127.0.0.1:{port}>")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


@contextlib.contextmanager
def _dispatcher(
    port: int, destinations: list[str], work: Path, defines: tuple[str, ...] = ()
) -> Iterator[Kamailio]:
    """Run deploy/kamailio/kamailio.cfg on 127.0.0.1:`port` in front of `destinations`
    ("host:port"), ready (it answers OPTIONS); stopped on exit."""
    require_peer("kamailio")
    processes: list[ManagedProcess] = []
    kamailio = Kamailio.dispatcher(work, port, destinations, processes, defines=defines)
    try:
        kamailio.start()
        yield kamailio
    finally:
        for process in reversed(processes):
            process.stop(timeout=10)


@pytest.fixture
def kamailio_dispatcher(port_block: int, tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    """Kamailio with deploy/kamailio/kamailio.cfg in front of gateways on port_block+1 and +2."""
    gateways = [f"127.0.0.1:{port_block + 1}", f"127.0.0.1:{port_block + 2}"]
    with _dispatcher(port_block, gateways, tmp_path):
        yield port_block, port_block + 1, port_block + 2


def _invite(n: int, kam_port: int, client_port: int) -> bytes:
    call_id = f"deploy-test-{n}-{time.monotonic_ns()}"
    return (
        f"INVITE sip:100@127.0.0.1:{kam_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK-dt{n}-{time.monotonic_ns()}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:caller@127.0.0.1:{client_port}>;tag=c{n}\r\n"
        f"To: <sip:100@127.0.0.1:{kam_port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: <sip:caller@127.0.0.1:{client_port}>\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def _pump(
    sel: selectors.DefaultSelector,
    client: socket.socket,
    until_final: bool,
    timeout: float,
    call_id: str | None = None,
) -> int | None:
    """Serve the fake gateways until the client gets a final response (or `timeout`).

    With `call_id`, only a final response of that call counts (a late retransmission of an
    earlier call's reply must not be taken for this one's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            if key.data is None:
                data = client.recv(65535).decode(errors="replace")
                status = int(data.split(" ", 2)[1]) if data.startswith("SIP/2.0 ") else 0
                if call_id is not None and f"\r\nCall-ID: {call_id}\r\n" not in data:
                    continue
                if status >= 200 and until_final:
                    return status
            else:
                key.data.handle()
    return None


def _place_call(
    sel: selectors.DefaultSelector, client: socket.socket, n: int, kam_port: int, timeout: float
) -> int | None:
    """Send INVITE number `n` through Kamailio; the final status the caller got (None: none)."""
    invite = _invite(n, kam_port, client.getsockname()[1])
    call_id = re.search(rb"\r\nCall-ID: (\S+)\r\n", invite)
    assert call_id is not None
    client.sendto(invite, ("127.0.0.1", kam_port))
    return _pump(sel, client, True, timeout, call_id.group(1).decode())


@contextlib.contextmanager
def _peers(
    client_port: int, *gateways: _FakeGateway
) -> Iterator[tuple[selectors.DefaultSelector, socket.socket]]:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", client_port))
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, None)
    for gw in gateways:
        sel.register(gw.sock, selectors.EVENT_READ, gw)
    try:
        yield sel, client
    finally:
        sel.close()
        for s in (client, *(gw.sock for gw in gateways)):
            s.close()


def test_kamailio_dispatcher_spreads_and_fails_over(
    kamailio_dispatcher: tuple[int, int, int], port_block: int
) -> None:
    kam_port, gw1_port, gw2_port = kamailio_dispatcher
    gw1, gw2 = _FakeGateway(gw1_port, 200), _FakeGateway(gw2_port, 200)
    with _peers(port_block + 3, gw1, gw2) as (sel, client):
        # Both instances healthy: round-robin gives each one call.
        for n in range(2):
            assert _place_call(sel, client, n, kam_port, 5.0) == 200
        assert len(gw1.invites) == 1 and len(gw2.invites) == 1
        for invite in gw1.invites + gw2.invites:
            assert f"Record-Route: <sip:127.0.0.1:{kam_port};lr" in invite

        # gw1 starts draining (503 to new INVITEs): every call still succeeds, on gw2.
        gw1.invite_status = 503
        for n in range(2, 5):
            assert _place_call(sel, client, n, kam_port, 5.0) == 200
        assert len(gw2.invites) == 4
        assert len(gw1.invites) <= 2  # marked inactive after its first 503


def test_kamailio_dispatcher_fails_over_when_the_send_itself_fails(
    port_block: int, tmp_path: Path
) -> None:
    # A destination the kernel refuses at once (sendto a broadcast address without
    # SO_BROADCAST: EACCES) stands for every immediate send failure (no route, a refused TCP
    # connect): t_relay() fails before any reply, so no failure_route runs. Before the fix tm
    # and the script answered the caller 477 instead of trying the next instance.
    gw2 = _FakeGateway(port_block + 2, 200)
    gateways = [f"255.255.255.255:{port_block + 1}", f"127.0.0.1:{port_block + 2}"]
    with (
        _dispatcher(port_block, gateways, tmp_path) as kamailio,
        _peers(port_block + 3, gw2) as (sel, client),
    ):
        # Round robin picks the unreachable instance for one of the first two calls.
        statuses = [_place_call(sel, client, n, port_block, 5.0) for n in range(4)]
        assert statuses == [200] * 4, kamailio.log_text()[-3000:]
        assert len(gw2.invites) == 4
        # Tried once, then marked inactive: later calls are not sent there again.
        assert kamailio.log_text().count("cannot send") == 1


def test_kamailio_dispatcher_fails_over_when_an_instance_dies_while_ringing(
    port_block: int, tmp_path: Path
) -> None:
    # gw1 sends 180 and then nothing (died between 180 and 200): after fr_inv_timer (shortened
    # here) tm ends the branch with a local 408, which must fail over, not reach the caller.
    gw1, gw2 = _FakeGateway(port_block + 1, 180), _FakeGateway(port_block + 2, 200)
    gateways = [f"127.0.0.1:{port_block + 1}", f"127.0.0.1:{port_block + 2}"]
    with (
        _dispatcher(port_block, gateways, tmp_path, ("FR_INV_TIMER=1000",)) as kamailio,
        _peers(port_block + 3, gw1, gw2) as (sel, client),
    ):
        statuses = [_place_call(sel, client, n, port_block, 10.0) for n in range(3)]
        assert statuses == [200] * 3, kamailio.log_text()[-3000:]
        assert len(gw1.invites) == 1  # tried once, then marked inactive
        assert len(gw2.invites) == 3


@pytest.mark.parametrize("gone", ["127.0.0.1", "255.255.255.255"], ids=["silent", "unsendable"])
def test_kamailio_dispatcher_answers_503_when_every_instance_fails(
    gone: str, port_block: int, tmp_path: Path
) -> None:
    # gw1 draining (503), gw2 gone: nothing listens (no reply, local 408 after fr_timer) or
    # the send fails at once (in the request route or in the failure_route, depending on
    # which one round robin picks first). The caller gets one clear 503 (a PBX with a second
    # route fails over on it), not the last instance's 408 or a 477; the next call is refused
    # at once, both instances being inactive.
    gw1 = _FakeGateway(port_block + 1, 503)
    gateways = [f"127.0.0.1:{port_block + 1}", f"{gone}:{port_block + 2}"]
    with (
        _dispatcher(port_block, gateways, tmp_path) as kamailio,
        _peers(port_block + 3, gw1) as (sel, client),
    ):
        assert _place_call(sel, client, 0, port_block, 10.0) == 503, kamailio.log_text()[-3000:]
        assert _place_call(sel, client, 1, port_block, 5.0) == 503
        assert len(gw1.invites) == 1
        assert "no gateway instance available" in kamailio.log_text()


def test_tls_port_and_certificate_mounts(tmp_path: Path) -> None:
    """SIP over TLS (issue 13): k8s and compose expose 5061/tcp and mount the certificate where
    [sip.tls] reads it; the key is never world-readable and never in an image."""
    docs = _k8s()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = _k8s_config(tmp_path)
    tls = config.sip.tls
    assert tls.enabled and tls.port == 5061
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert (tls.port, "TCP") in ports
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    assert mount["readOnly"] is True
    for path in (tls.cert_file, tls.key_file):
        assert path.startswith(mount["mountPath"] + "/"), path
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "sip-realtime-gateway-tls"
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable
    assert {Path(tls.cert_file).name, Path(tls.key_file).name} == {"tls.crt", "tls.key"}

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]
    assert "5061:5061/tcp" in gateway["ports"]
    assert any(
        v.startswith("./deploy/gateway/tls:/etc/sip-realtime-gateway/tls:ro")
        for v in gateway["volumes"]
    )
    assert "deploy/gateway/tls" in (ROOT / ".dockerignore").read_text().splitlines()
    assert "5061/tcp" in (ROOT / "Dockerfile").read_text()
