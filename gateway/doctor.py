"""`sip-realtime-gateway check`: a doctor that finds the usual set-up mistakes before a call does.

Each check returns `CheckResult`s (ok / warn / fail / skip) whose message says what was found and
whose `fix` says what to change. The checks, in order:

- configuration: loads through `gateway.config` (errors name the key);
- SIP port: the configured host:port is bindable for every configured transport (UDP and TCP);
- RTP ports: the range holds enough RTP/RTCP pairs for `sip.max_calls`, does not contain the SIP
  port or overlap the kernel's ephemeral range, and a sample of pairs is bindable;
- addresses (NAT): whether `sip.advertised_host` is an address of this host, and which address
  our Contact/SDP would carry towards each known peer (registrars, `allow_networks`). A private
  address sent to a public peer is the classic one-way-audio set-up (lessons 3.1);
- Realtime: opens a session at the configured URL and confirms `session.updated` with
  `audio/pcmu` and then `audio/pcma` (G.711 pass-through needs both), timing the connect;
- registrations: one REGISTER per registration from a temporary port, then an unregister;
- control API: no token (`control.token_required = false`) on a non-loopback bind fails;
- admission: who may place calls (closed by default); open admission (a /0 network in
  `sip.allow_networks`) without inbound digest is a warning;
- exposure: an API key sent over plain `ws://` to a host that is not loopback, record and
  recording directories (or files) readable by other users, `http://` tool/webhook URLs;
- RTP latching: `media.rtp_latch_any_host = true` is a warning.

Deliberately no `ip addr`/netlink parsing: "is X an address of this host" is answered by trying
to bind a UDP socket to X (the kernel refuses with EADDRNOTAVAIL otherwise), and "which address
would we use towards Y" by connecting a UDP socket to Y and reading its local address (no packet
is sent). Both work the same in containers and on any Linux/BSD/macOS host.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import errno
import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.config import ConfigError, GatewayConfig, RegistrationConfig, load_config, validate
from gateway.http_post import is_loopback_host

PROG = "sip-realtime-gateway check"
DEFAULT_TIMEOUT_S = 10.0
RTP_SAMPLE_PAIRS = 16
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
G711_FORMATS = ("audio/pcmu", "audio/pcma")
# A host is "a public peer" when its address is globally routable (not RFC 1918, CGNAT,
# loopback, link-local, documentation...). `ipaddress.is_global` encodes exactly that table.

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not checked (said so honestly, with the reason)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    message: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAIL

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


# ---------------------------------------------------------------------------------------------
# Small socket helpers (no packet leaves the host)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def try_bind(host: str, port: int, kind: int) -> OSError | None:
    """Bind (and for TCP listen) like the gateway would; None when it works."""
    host = host.strip("[]")
    sock = socket.socket(_family(host), kind)
    try:
        if kind == socket.SOCK_STREAM:
            # asyncio.start_server sets SO_REUSEADDR on POSIX: a port in TIME_WAIT is usable
            # by the gateway, so it must not be reported as busy here.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


def is_local_address(address: str) -> bool:
    """True when `address` belongs to this host (binding to it succeeds)."""
    return try_bind(address, 0, socket.SOCK_DGRAM) is None


def route_source(peer: str) -> str | None:
    """The local address the kernel would use to reach `peer` (None when there is no route)."""
    peer = peer.strip("[]")
    try:
        with socket.socket(_family(peer), socket.SOCK_DGRAM) as probe:
            probe.connect((peer, 9))  # UDP connect only picks a route; nothing is sent
            return str(probe.getsockname()[0])
    except OSError:
        return None


def _ip(value: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def _describe_bind_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "in use by another process"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this host's addresses"
    return exc.strerror or str(exc)


async def _resolve(host: str, timeout: float) -> list[str]:  # noqa: ASYNC109 (bounded by design)
    """IP literals as themselves; names through the resolver (OSError/TimeoutError on failure)."""
    if _ip(host) is not None:
        return [host.strip("[]")]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), timeout)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# ---------------------------------------------------------------------------------------------
# Checks


def check_config(config: GatewayConfig, source: str = "") -> CheckResult:
    try:
        validate(config)
    except ConfigError as exc:
        return CheckResult(
            "configuration",
            Status.FAIL,
            str(exc),
            "fix the key named above (examples/gateway.toml)",
        )
    where = f" ({source})" if source else ""
    regs = len(config.registrations)
    return CheckResult(
        "configuration",
        Status.OK,
        f"valid{where}: SIP {config.sip.host}:{config.sip.port} "
        f"({', '.join(config.sip.transports)}), {regs} registration{'s' if regs != 1 else ''}",
    )


def check_sip_port(config: GatewayConfig) -> list[CheckResult]:
    sip = config.sip
    results = []
    for transport in sip.transports:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        name = f"SIP port {transport}"
        address = f"{sip.host}:{sip.port}/{transport}"
        error = try_bind(sip.host, sip.port, kind)
        if error is None:
            results.append(CheckResult(name, Status.OK, f"{address} is free"))
            continue
        fix = {
            errno.EADDRINUSE: (
                "stop the other process (a PBX, another gateway; `ss -lunp`/`ss -ltnp` shows "
                "it) or set sip.port / --sip-port. If this gateway is already running, "
                "that is expected"
            ),
            errno.EACCES: "use a port >= 1024 or grant CAP_NET_BIND_SERVICE",
            errno.EADDRNOTAVAIL: "set sip.host to an address of this host, or 0.0.0.0",
        }.get(error.errno or 0, "check sip.host and sip.port")
        results.append(
            CheckResult(name, Status.FAIL, f"{address}: {_describe_bind_error(error)}", fix)
        )
    return results


def _ephemeral_range() -> tuple[int, int] | None:
    try:
        low, high = Path(EPHEMERAL_RANGE_FILE).read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _sample_pairs(first: int, last: int, count: int) -> list[int]:
    """Up to `count` even ports spread evenly over [first, last - 1], ends included."""
    pairs = (last - first + 1) // 2
    if pairs <= 0:
        return []
    if pairs <= count:
        return [first + 2 * i for i in range(pairs)]
    step = (pairs - 1) / (count - 1)
    return sorted({first + 2 * round(i * step) for i in range(count)})


def check_rtp_ports(
    config: GatewayConfig,
    sample: int = RTP_SAMPLE_PAIRS,
    ephemeral: tuple[int, int] | None = None,
) -> list[CheckResult]:
    media, sip = config.media, config.sip
    low, high = media.rtp_port_min, media.rtp_port_max
    first = low + (low % 2)  # RFC 3550 11: RTP on an even port, RTCP on the next odd one
    pairs = max(0, (high - first + 1) // 2)
    results = []
    name = "RTP port range"
    if pairs == 0:
        return [
            CheckResult(
                name,
                Status.FAIL,
                f"{low}-{high} holds no even RTP port with its RTCP port",
                "widen media.rtp_port_min/max (two ports per call)",
            )
        ]
    problems = []
    status = Status.OK
    if low <= sip.port <= high:
        status = Status.FAIL
        problems.append(f"contains the SIP port {sip.port}")
    if pairs < sip.max_calls:
        status = max(status, Status.WARN, key=_severity)
        problems.append(f"{pairs} RTP/RTCP pairs for sip.max_calls = {sip.max_calls}")
    ephemeral = ephemeral if ephemeral is not None else _ephemeral_range()
    if ephemeral is not None and low <= ephemeral[1] and ephemeral[0] <= high:
        # Outbound connections (the Realtime WebSocket, webhooks) take local ports from the
        # ephemeral range: an overlap makes RTP binds fail at random under load.
        status = max(status, Status.WARN, key=_severity)
        problems.append(f"overlaps the kernel's ephemeral port range {ephemeral[0]}-{ephemeral[1]}")
    if problems:
        results.append(
            CheckResult(
                name,
                status,
                f"{low}-{high}: " + "; ".join(problems),
                "choose media.rtp_port_min/max outside the SIP port and the ephemeral range "
                f"({EPHEMERAL_RANGE_FILE}), with at least 2 ports per concurrent call",
            )
        )
    else:
        results.append(
            CheckResult(name, Status.OK, f"{low}-{high}: {pairs} RTP/RTCP pairs (calls)")
        )

    sampled = _sample_pairs(first, high, sample)
    busy: list[str] = []
    for port in sampled:
        for p in (port, port + 1):
            error = try_bind(sip.host, p, socket.SOCK_DGRAM)
            if error is not None:
                busy.append(f"{p} ({_describe_bind_error(error)})")
    if not busy:
        results.append(
            CheckResult(
                "RTP ports bindable",
                Status.OK,
                f"{len(sampled)} sampled pairs bindable on {sip.host}",
            )
        )
    else:
        all_busy = len(busy) >= 2 * len(sampled)
        results.append(
            CheckResult(
                "RTP ports bindable",
                Status.FAIL if all_busy else Status.WARN,
                f"{len(busy)} of {2 * len(sampled)} sampled ports on {sip.host} not bindable: "
                + ", ".join(busy[:6])
                + (" ..." if len(busy) > 6 else ""),
                "another process holds ports in the RTP range: choose a range it does not use",
            )
        )
    return results


def _severity(status: Status) -> int:
    return {Status.OK: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}[status]


@dataclass(frozen=True, slots=True)
class _Peer:
    label: str  # what the operator wrote ("registrar sip:pbx.example.com")
    address: str  # one resolved IP


async def _known_peers(
    config: GatewayConfig,
    timeout: float,  # noqa: ASYNC109 (bounded by design)
) -> tuple[list[_Peer], list[str]]:
    """Registrars and allow_networks: the peers our Contact/SDP address will be sent to, and
    the registrars whose host did not resolve."""
    from sip.uri import UriError, parse_uri

    peers = []
    unresolved = []
    for reg in config.registrations:
        try:
            host = parse_uri(reg.registrar).host
        except (UriError, ValueError):
            continue  # the configuration check reports it
        try:
            addresses = await _resolve(host, timeout)
        except (OSError, TimeoutError):
            unresolved.append(reg.registrar)  # the registrations check says why
            continue
        peers.extend(_Peer(f"registrar {reg.registrar}", a) for a in addresses[:1])
    for net in config.sip.allow_networks:
        network = ipaddress.ip_network(net, strict=False)
        if network.prefixlen == 0:
            continue  # "everyone" says nothing about where callers are
        # A host inside the network: the network address itself (x.x.x.0) is not a peer.
        host = network.network_address + (1 if network.num_addresses > 2 else 0)
        peers.append(_Peer(f"allow_networks {net}", str(host)))
    return peers, unresolved


async def check_addresses(
    config: GatewayConfig,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> list[CheckResult]:
    """Is the advertised address ours, and what would Contact/SDP carry to each known peer."""
    sip = config.sip
    results: list[CheckResult] = []
    advertised_ip: str | None = None
    if sip.advertised_host:
        try:
            advertised_ip = (await _resolve(sip.advertised_host, timeout))[0]
        except (OSError, TimeoutError, IndexError) as exc:
            return [
                CheckResult(
                    "advertised address",
                    Status.FAIL,
                    f"sip.advertised_host {sip.advertised_host!r} does not resolve ({exc!r})",
                    "use an IP literal or a name this host can resolve",
                )
            ]
        if is_local_address(advertised_ip):
            results.append(
                CheckResult(
                    "advertised address",
                    Status.OK,
                    f"{sip.advertised_host} ({advertised_ip}) is an address of this host",
                )
            )
        else:
            results.append(
                CheckResult(
                    "advertised address",
                    Status.WARN,
                    f"advertised address not local: {sip.advertised_host} ({advertised_ip}) is "
                    "not an address of this host. That is right only when NAT is intended: a "
                    "router or firewall forwards the SIP port and the whole RTP range to this host",
                    "if there is no such NAT, set sip.advertised_host to an address of this host "
                    "or leave it empty (the gateway then picks the local address per peer)",
                )
            )
    elif not ipaddress.ip_address(sip.host).is_unspecified:
        advertised_ip = sip.host
        results.append(
            CheckResult(
                "advertised address",
                Status.OK,
                f"not set: Contact/SDP carry the bind address {sip.host}",
            )
        )
    else:
        results.append(
            CheckResult(
                "advertised address",
                Status.OK,
                f"not set: Contact/SDP carry the local address towards each peer "
                f"(default route: {route_source('192.0.2.1') or 'none'})",
            )
        )

    peers, unresolved = await _known_peers(config, timeout)
    if unresolved:
        results.append(
            CheckResult(
                "SDP address",
                Status.SKIP,
                f"not checked towards {', '.join(unresolved)}: the registrar host does not resolve",
                "see the registration check below",
            )
        )
    if not peers and not unresolved:
        results.append(
            CheckResult(
                "SDP address",
                Status.SKIP,
                "not checked: no registrations or allow_networks name the peers that will call",
            )
        )
    for peer in peers:
        results.append(_check_sdp_address(advertised_ip, peer))
    return results


def _check_sdp_address(advertised_ip: str | None, peer: _Peer) -> CheckResult:
    name = "SDP address"
    peer_ip = _ip(peer.address)
    ours = advertised_ip or route_source(peer.address)
    our_ip = _ip(ours) if ours else None
    if peer_ip is None or our_ip is None:
        return CheckResult(
            name,
            Status.WARN,
            f"no route from this host to {peer.label} ({peer.address})",
            "check the network/firewall between the gateway and that peer",
        )
    where = f"{peer.label} ({peer.address})"
    if our_ip.is_loopback and not peer_ip.is_loopback:
        return CheckResult(
            name,
            Status.WARN,
            f"SDP would carry {our_ip} to non-loopback peer {where}: it would send RTP to itself",
            "set sip.advertised_host (or sip.host) to an address the peer can reach",
        )
    if not our_ip.is_global and peer_ip.is_global:
        return CheckResult(
            name,
            Status.FAIL,
            f"private address {our_ip} in Contact/SDP towards public peer {where}: "
            "the peer cannot send SIP or RTP back (one-way or no audio)",
            "set sip.advertised_host to this site's public address and forward the SIP port and "
            "RTP range to this host (or use an SBC/the PBX's NAT settings)",
        )
    return CheckResult(name, Status.OK, f"Contact/SDP carry {our_ip} towards {where}")


def _realtime_endpoint(config: GatewayConfig) -> tuple[str, dict[str, str]]:
    """The URL and auth headers `run` would use (gateway/call_settings.py `endpoint_for`:
    Bearer for OpenAI, `api-key` for Azure). Raises ConfigError where `run` would."""
    from gateway.call_settings import endpoint_for

    endpoint = endpoint_for(config)
    return endpoint.url, dict(endpoint.headers)


async def check_realtime(
    config: GatewayConfig,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> CheckResult:
    """Open one session the way `run` would and confirm session.updated for audio/pcmu, then
    audio/pcma. Where `run` answers with the built-in simulator (no API key, `simulator =
    "auto"`, or `"always"`), the check opens its session on that simulator and says so."""
    from gateway.call_settings import use_simulator

    if not use_simulator(config):
        return await _check_realtime_at(config, timeout)
    from gateway.realtime.simulator import Simulator

    rt = config.realtime
    why = (
        "realtime.simulator = always"
        if rt.simulator == "always"
        else f"no API key in {rt.api_key_env or '(realtime.api_key_env unset)'}"
    )
    async with Simulator("127.0.0.1", 0) as simulator:
        result = await _check_realtime_at(config, timeout, simulator.url)
    if result.status is not Status.OK:
        return result
    detail = result.message.split(": ", 1)[-1]  # without the simulator's throwaway URL
    return CheckResult(
        result.name,
        Status.OK,
        f"built-in simulator ({why}): calls are answered by the local Realtime simulator, "
        f"not OpenAI; {detail}",
        f"export {rt.api_key_env or 'OPENAI_API_KEY'}=sk-... to use {rt.model}",
    )


async def _check_realtime_at(
    config: GatewayConfig,
    timeout: float,  # noqa: ASYNC109 (bounded by design)
    simulator_url: str | None = None,
) -> CheckResult:
    from gateway.call_settings import endpoint_for
    from gateway.realtime.client import RealtimeClient, RealtimeError
    from gateway.realtime.protocol import SessionConfig

    name = "Realtime API"
    try:
        endpoint = endpoint_for(config, simulator_url)
    except ConfigError as exc:  # the same refusal `run` gives
        key_env = config.realtime.api_key_env or "OPENAI_API_KEY"
        return CheckResult(
            name,
            Status.FAIL,
            f"no API key: {exc}",
            f"export {key_env}=sk-... (realtime.api_key_env), or realtime.simulator = auto",
        )
    url = endpoint.redacted()
    host = urlsplit(endpoint.url).hostname or ""
    if not endpoint.headers and host.endswith(("openai.com", "openai.azure.com")):
        return CheckResult(
            name,
            Status.FAIL,
            f"no API key: environment variable {config.realtime.api_key_env or '(none)'} is "
            f"empty or unset, and {host} requires one",
            f"export {config.realtime.api_key_env or 'OPENAI_API_KEY'}=sk-... (realtime.api_key_env)",
        )
    client = RealtimeClient(endpoint, open_timeout=timeout, ping_interval=None)
    started = time.perf_counter()
    try:
        try:
            await client.connect(timeout=timeout)
        except RealtimeError as exc:
            return CheckResult(
                name,
                Status.FAIL,
                f"cannot open a session at {url}: {exc.__cause__ or exc}",
                "check realtime.url, network access/proxy to that host, and the API key "
                "(a 401/403 in the error means the key is wrong)",
            )
        connect_ms = (time.perf_counter() - started) * 1000
        confirmed = []
        for fmt in G711_FORMATS:
            try:
                await client.configure(
                    SessionConfig(input_format=fmt, output_format=fmt), timeout=timeout
                )
            except RealtimeError as exc:
                return CheckResult(
                    name,
                    Status.FAIL,
                    f"connected to {url} in {connect_ms:.0f} ms but session.update with {fmt} "
                    f"failed: {exc}",
                    "the endpoint must support G.711 (audio/pcmu and audio/pcma): use a GA "
                    "Realtime model (realtime.model)",
                )
            confirmed.append(fmt)
    finally:
        await client.close()
    return CheckResult(
        name,
        Status.OK,
        f"{url}: connected in {connect_ms:.0f} ms; session.updated confirmed "
        f"{' and '.join(confirmed)}",
    )


async def _register_once(
    config: GatewayConfig,
    reg: RegistrationConfig,
    timeout: float,  # noqa: ASYNC109 (bounded by design)
) -> CheckResult:
    from sip.registration import RegistrationClient
    from sip.transport import Transport
    from sip.useragent import UserAgent

    name = f"registration {reg.username}@{reg.registrar}"
    # A temporary port: the Contact differs from the running gateway's, so the unregister
    # below removes only the doctor's own binding.
    transport = Transport(config.sip.host, 0, transports=config.sip.transports)
    ua = UserAgent(
        transport,
        advertised_host=config.sip.advertised_host or None,
        user_agent=config.sip.user_agent,
    )
    try:
        await ua.start()
    except OSError as exc:
        return CheckResult(
            name, Status.FAIL, f"cannot open a SIP socket on {config.sip.host}: {exc}"
        )
    try:
        client = RegistrationClient(
            ua,
            reg.registrar,
            reg.username,
            reg.password.reveal(),
            domain=reg.domain,
            expires=reg.expires,
            request_timeout=timeout,
        )
        try:
            async with asyncio.timeout(timeout + 1):
                outcome = await client.register_once(reg.expires)
        except TimeoutError:
            return CheckResult(
                name,
                Status.FAIL,
                f"no answer from {reg.registrar} within {timeout:.0f} s",
                "check the registrar host/port/transport and the firewall",
            )
        if outcome.status is not None and 200 <= outcome.status < 300:
            try:
                async with asyncio.timeout(timeout):
                    await client.register_once(0)
            except TimeoutError:
                pass  # the test binding then expires by itself
            return CheckResult(
                name,
                Status.OK,
                f"registered {client.aor} (granted {outcome.granted or reg.expires} s), "
                "then unregistered the test binding",
            )
        reason = outcome.reason or f"status {outcome.status}"
        fix = "check the registrar host/port/transport and the firewall"
        if outcome.status in (401, 403, 407) or "authentication" in reason:
            fix = f"check registrations username/password for {reg.username}"
        elif outcome.status == 404:
            fix = "the registrar does not know this user: check username/domain"
        return CheckResult(name, Status.FAIL, f"{client.aor}: {reason}", fix)
    finally:
        await ua.close()


async def check_registrations(
    config: GatewayConfig,
    sip_port_busy: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> list[CheckResult]:
    if not config.registrations:
        return [CheckResult("registrations", Status.SKIP, "not checked: none configured")]
    if sip_port_busy:
        # Registrars that keep one contact per AOR (Asterisk max_contacts=1 with
        # remove_existing) would swap the running gateway's binding for the test one.
        return [
            CheckResult(
                f"registration {reg.username}@{reg.registrar}",
                Status.SKIP,
                "not checked: the SIP port is in use (gateway already running?); a test "
                "REGISTER could replace its binding",
                "stop the gateway first, or use --skip-registrations",
            )
            for reg in config.registrations
        ]
    return list(
        await asyncio.gather(
            *(_register_once(config, reg, timeout) for reg in config.registrations)
        )
    )


# ---------------------------------------------------------------------------------------------
# Secrets and call data at rest and in transit (issue 9)


def check_realtime_transport(config: GatewayConfig) -> CheckResult:
    """The API key (and the call's audio) must not cross the network in clear: `ws://` is
    only for a local simulator or proxy."""
    name = "Realtime transport"
    url = config.realtime.url
    parts = urlsplit(url)
    if parts.scheme != "ws" or is_loopback_host(parts.hostname or ""):
        return CheckResult(name, Status.OK, f"{parts.scheme}:// to {parts.hostname}")
    if config.realtime.api_key:
        return CheckResult(
            name,
            Status.FAIL,
            f"realtime.url {url!r} is plain ws:// to a host that is not loopback, and an API "
            "key is set: the key and the calls' audio would cross the network unencrypted",
            "use wss:// (TLS), or reach a proxy on loopback",
        )
    return CheckResult(
        name,
        Status.WARN,
        f"realtime.url {url!r} is plain ws:// to a host that is not loopback: the calls' "
        "audio crosses the network unencrypted",
        "use wss:// (TLS)",
    )


def check_record_permissions(config: GatewayConfig) -> list[CheckResult]:
    """Call records and recordings (who called, what was said, the voices) readable only by
    the gateway's user: directories 0700, files 0600 (what the gateway creates)."""
    records = config.records
    directories = dict.fromkeys(d for d in (records.dir, records.recording_dir) if d)
    results = []
    for directory in directories:
        name = f"permissions of {directory}"
        path = Path(directory)
        if not path.exists():
            results.append(CheckResult(name, Status.OK, "does not exist yet (created 0700)"))
            continue
        try:
            mode = path.stat().st_mode & 0o777
            loose = [
                p.name
                for p in path.iterdir()
                if p.suffix in (".wav", ".json") and p.stat().st_mode & 0o077
            ]
        except OSError as exc:
            results.append(CheckResult(name, Status.WARN, f"cannot inspect: {exc}"))
            continue
        problems = []
        if mode & 0o077:
            problems.append(f"the directory is mode {mode:04o}")
        if loose:
            problems.append(
                f"{len(loose)} record/recording file(s) readable by others (e.g. {loose[0]})"
            )
        if problems:
            results.append(
                CheckResult(
                    name,
                    Status.WARN,
                    "; ".join(problems) + ": other users of this host can read call data",
                    f"chmod 700 {directory} && chmod 600 {directory}/*.wav {directory}/*.json",
                )
            )
        else:
            results.append(CheckResult(name, Status.OK, f"mode {mode:04o}, files private"))
    return results


def check_plain_http_urls(config: GatewayConfig) -> list[CheckResult]:
    """http:// tool and webhook URLs to hosts that are not loopback (allowed only with
    `allow_plain_http`): the call's data leaves the host unencrypted."""
    urls = [(f"tools[{i}].url", t.url, t.allow_plain_http) for i, t in enumerate(config.tools)]
    hooks = config.webhooks
    for key in ("call_started_url", "call_ended_url"):
        urls.append((f"webhooks.{key}", getattr(hooks, key), hooks.allow_plain_http))
    results = []
    for key, url, allowed in urls:
        parts = urlsplit(url)
        if url and parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            results.append(
                CheckResult(
                    f"plain HTTP {key}",
                    Status.WARN,
                    f"{url!r} sends call data unencrypted"
                    + (" (allow_plain_http = true)" if allowed else ""),
                    "use https://",
                )
            )
    return results


def check_exposure(config: GatewayConfig) -> list[CheckResult]:
    """The checks of this section, in order."""
    return [
        check_realtime_transport(config),
        *check_record_permissions(config),
        *check_plain_http_urls(config),
    ]


async def run_checks(
    config: GatewayConfig,
    *,
    realtime: bool = True,
    registrations: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
    source: str = "",
) -> list[CheckResult]:
    """Every check against `config` (already loaded); see the module docstring."""
    results = [check_config(config, source)]
    if results[0].status is Status.FAIL:
        return results
    sip_results = check_sip_port(config)
    results += sip_results
    results += check_rtp_ports(config)
    results += await check_addresses(config, timeout)
    if realtime:
        results.append(await check_realtime(config, timeout))
    else:
        results.append(CheckResult("Realtime API", Status.SKIP, "not checked (--skip-realtime)"))
    if registrations:
        busy = any(r.status is Status.FAIL and "in use" in r.message for r in sip_results)
        results += await check_registrations(config, sip_port_busy=busy, timeout=timeout)
    else:
        results.append(
            CheckResult("registrations", Status.SKIP, "not checked (--skip-registrations)")
        )
    results += check_control(config)
    results.append(check_admission(config))
    results += check_exposure(config)
    results += check_media_safety(config)
    results.append(check_descriptors(config))
    results += check_model(config)
    results.append(check_port_quarantine(config))
    return results


def check_control(config: GatewayConfig) -> list[CheckResult]:
    """The control API can place and hang up calls: without a token it must stay on loopback
    (issue 9). A token is required unless `control.token_required = false`."""
    control = config.control
    name = "control API"
    if not control.enabled:
        return [CheckResult(name, Status.OK, "disabled")]
    address = f"{control.host}:{control.port}"
    host = _ip(control.host)
    loopback = host is not None and host.is_loopback
    if control.token_env or control.token_file or control.token.reveal():
        source = f"${control.token_env}" if control.token_env else control.token_file or "given"
        return [CheckResult(name, Status.OK, f"{address}, bearer token from {source}")]
    if control.token_required:
        return [
            CheckResult(
                name,
                Status.OK,
                f"{address}, bearer token generated at first start into .srg/control.token "
                "in the working directory",
            )
        ]
    if not loopback:
        return [
            CheckResult(
                name,
                Status.FAIL,
                f"{address} has no token (control.token_required = false) on a non-loopback "
                "address: anyone who reaches it can place calls on your trunks and hang up "
                "live ones",
                "remove control.token_required = false (a token is then generated), or set "
                "control.token_env / control.token_file, or bind control.host = 127.0.0.1",
            )
        ]
    return [
        CheckResult(
            name,
            Status.WARN,
            f"{address} has no token (control.token_required = false): every local process "
            "can place calls",
            "remove control.token_required = false unless the gateway runs in its own "
            "network namespace (a container without published control port)",
        )
    ]


def check_admission(config: GatewayConfig) -> CheckResult:
    """Who may make the gateway place a Realtime session (gateway/config.py SipConfig has the
    rule): open admission (a /0 in sip.allow_networks) without digest is a warning."""
    sip = config.sip
    opened = [n for n in sip.allow_networks if ipaddress.ip_network(n, strict=False).prefixlen == 0]
    digest = bool(sip.inbound_auth.username)
    per_source = min(sip.max_calls_per_source, sip.max_calls)
    limits = (
        f"per source: {sip.invite_rate_per_source:g} INVITE/s (burst "
        f"{sip.invite_burst_per_source}), {per_source} concurrent calls"
    )
    if opened and not digest:
        return CheckResult(
            "admission",
            Status.WARN,
            f"open: sip.allow_networks contains {', '.join(opened)}, so any source may place "
            f"calls (each one a paid Realtime session); {limits}",
            "list the PBX/SBC networks in sip.allow_networks instead, or require digest "
            "credentials with sip.inbound_auth.username/password",
        )
    who = ["the host itself"]
    if sip.allow_networks:
        who.append(f"sip.allow_networks {', '.join(sip.allow_networks)}")
    if config.registrations:
        who.append("the registrars of [[registrations]]")
    if digest and not sip.allow_networks:
        who = ["any source with digest credentials (sip.inbound_auth)"]
    elif digest:
        who[-1] += ", with digest credentials (sip.inbound_auth)"
    message = f"INVITEs admitted from {', '.join(who)}; {limits}"
    if len(who) == 1 and not digest:
        message += (
            "; everyone else gets 403 (set sip.allow_networks, sip.inbound_auth.username or "
            "[[registrations]] to admit a PBX or phones)"
        )
    return CheckResult("admission", Status.OK, message)


def check_descriptors(config: GatewayConfig, fd_limit: int | None = None) -> CheckResult:
    """The open-file limit against what calls and SIP TCP connections need (issue 9)."""
    from gateway.limits import sip_limits

    limits = sip_limits(config, fd_limit)
    name = "open-file limit"
    if limits.fd_limit < 0:
        return CheckResult(name, Status.OK, "unlimited")
    room = (
        f"{limits.fd_limit}: {limits.fd_for_calls} descriptors for calls, "
        f"{limits.tcp_max_connections} SIP TCP connections"
    )
    if "tcp" not in config.sip.transports or not limits.tcp_lowered:
        return CheckResult(name, Status.OK, room)
    fix = "raise it (ulimit -n, LimitNOFILE= in the systemd unit, the container's nofile)"
    if limits.tcp_max_connections == 0:
        return CheckResult(name, Status.FAIL, f"{room}: no descriptor left for SIP TCP", fix)
    return CheckResult(
        name,
        Status.WARN,
        f"{room} (sip.tcp_max_connections {limits.tcp_configured} is lowered to fit)",
        fix,
    )


def check_port_quarantine(config: GatewayConfig) -> CheckResult:
    """The RTP range against sip.max_calls plus the pairs the port quarantine holds (issue 14)."""
    from gateway.media.ports import pair_count, pairs_needed, range_shortfall

    media = config.media
    name = "RTP range vs quarantine"
    short = range_shortfall(
        media.rtp_port_min, media.rtp_port_max, config.sip.max_calls, media.rtp_port_quarantine_s
    )
    if short:
        fix = (
            "widen media.rtp_port_min-rtp_port_max, lower sip.max_calls or "
            "media.rtp_port_quarantine_s (docs/deployment.md)"
        )
        return CheckResult(name, Status.WARN, short, fix)
    have = pair_count(media.rtp_port_min, media.rtp_port_max)
    need = pairs_needed(config.sip.max_calls, media.rtp_port_quarantine_s)
    return CheckResult(
        name,
        Status.OK,
        f"{have} pairs >= {need} for {config.sip.max_calls} calls with a "
        f"{media.rtp_port_quarantine_s:g} s quarantine",
    )


# ---------------------------------------------------------------------------------------------
# Command line

_LABELS = {Status.OK: " ok ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}


def check_media_safety(config: GatewayConfig) -> list[CheckResult]:
    """Strict RTP latching (issue 9): learning media sources on any host re-opens the door to
    RTP injection by whoever reaches a call's port first."""
    media = config.media
    name = "RTP latching"
    if media.rtp_latch_any_host:
        return [
            CheckResult(
                name,
                Status.WARN,
                "media.rtp_latch_any_host = true: any host that sends "
                f"{media.rtp_latch_packets} in-sequence packets to a fresh call's port "
                "before the caller does takes over its media (and hears the bot)",
                "set media.rtp_latch_any_host = false unless callers' media leaves from a host "
                "that is neither in their SDP nor their SIP source",
            )
        ]
    return [
        CheckResult(
            name,
            Status.OK,
            "strict: the SDP's address at once, other sources after "
            f"{media.rtp_latch_packets} in-sequence packets from the SDP's or SIP source's host",
        )
    ]


def configured_models(config: GatewayConfig) -> dict[str, str]:
    """model -> where it is set (`realtime.model`, or the first route overriding it)."""
    models = {config.realtime.model: "realtime.model"}
    for i, route in enumerate(config.routes):
        model = route.realtime.get("model")
        if isinstance(model, str) and model not in models:
            models[model] = f"routes[{i}].realtime.model"
    return models


def model_warnings(config: GatewayConfig, today: date | None = None) -> list[str]:
    """A sentence per configured model whose announced shutdown is within 60 days (the table
    and its source: gateway/realtime/models.py). `run` logs them, `check` reports them."""
    from gateway.realtime.models import shutdown_warning

    today = today or date.today()
    found = []
    for model, key in configured_models(config).items():
        warning = shutdown_warning(model, today)
        if warning is not None:
            found.append(warning.replace("realtime.model", key, 1))
    return found


def check_model(config: GatewayConfig, today: date | None = None) -> list[CheckResult]:
    """Models with an announced shutdown date within 60 days are a warning (issue 10)."""
    from gateway.realtime.models import DEFAULT_MODEL

    warnings = model_warnings(config, today)
    if not warnings:
        models = ", ".join(configured_models(config))
        return [CheckResult("Realtime model", Status.OK, f"{models}: no shutdown announced soon")]
    return [
        CheckResult(
            "Realtime model",
            Status.WARN,
            warning,
            f'set realtime.model = "{DEFAULT_MODEL}" (and the routes\' model overrides)',
        )
        for warning in warnings
    ]


def format_report(results: Sequence[CheckResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"[{_LABELS[result.status]}] {result.name}: {result.message}")
        if result.fix and result.status in (Status.WARN, Status.FAIL, Status.SKIP):
            lines.append(f"       fix: {result.fix}")
    counts = {status: sum(1 for r in results if r.status is status) for status in Status}
    lines.append(
        f"{counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} not checked"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `check` options (cli.py adds a `check` subparser and calls this)."""
    from gateway.cli import add_config_arguments  # cli imports this module lazily too

    add_config_arguments(parser)
    parser.add_argument(
        "--skip-realtime", action="store_true", help="do not open a Realtime session"
    )
    parser.add_argument(
        "--skip-registrations", action="store_true", help="do not send test REGISTERs"
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="per network check (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check the configuration, ports, addresses (NAT), the Realtime endpoint "
        "and registrations. Exit 0 when nothing failed (warnings allowed), 1 otherwise.",
    )
    add_arguments(parser)
    return parser


_OVERRIDE_FLAGS = (
    "sip_host",
    "sip_port",
    "advertised_host",
    "max_calls",
    "realtime_url",
    "log_level",
    "log_format",
    "rtp_ports",
    "control_port",
)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the doctor; `args` from cli.py's `check` subparser, or an argv list."""
    if not isinstance(args, argparse.Namespace):
        try:
            args = build_parser().parse_args(list(args) if args is not None else None)
        except SystemExit as exc:
            return int(exc.code or 0)
    from gateway.cli import overrides_from_args

    flags = argparse.Namespace(**{name: getattr(args, name, None) for name in _OVERRIDE_FLAGS})
    config_path = getattr(args, "config", None)
    if not logging.getLogger().handlers:
        # The SIP stack logs registration noise on its own; the report says what matters.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        config = load_config(config_path, os.environ, overrides_from_args(flags))
    except ConfigError as exc:
        results = [
            CheckResult(
                "configuration",
                Status.FAIL,
                str(exc),
                "fix the key named above (examples/gateway.toml documents every key)",
            ),
            CheckResult("other checks", Status.SKIP, "not checked: the configuration is invalid"),
        ]
    else:
        results = asyncio.run(
            run_checks(
                config,
                realtime=not getattr(args, "skip_realtime", False),
                registrations=not getattr(args, "skip_registrations", False),
                timeout=getattr(args, "timeout", DEFAULT_TIMEOUT_S),
                source=str(config_path) if config_path else "built-in defaults",
            )
        )
    if getattr(args, "json", False):
        payload: dict[str, Any] = {
            "ok": all(r.ok for r in results),
            "results": [r.to_dict() for r in results],
        }
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_report(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
