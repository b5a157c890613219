"""The addresses check (NAT): whether sip.advertised_host is an address of this host,
and which address Contact/SDP would carry towards each known peer. A private address sent to a
public peer is the classic one-way-audio set-up (lessons 3.1).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.doctor.network import ip_or_none, is_local_address, resolve_host, route_source
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status


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
            addresses = await resolve_host(host, timeout)
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
            advertised_ip = (await resolve_host(sip.advertised_host, timeout))[0]
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
    peer_ip = ip_or_none(peer.address)
    ours = advertised_ip or route_source(peer.address)
    our_ip = ip_or_none(ours) if ours else None
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
    # A host is "a public peer" when its address is globally routable (not RFC 1918, CGNAT,
    # loopback, link-local, documentation...). `ipaddress.is_global` encodes exactly that table.
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
