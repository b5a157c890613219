"""Which local address a call's RTP uses, per IP family (issue 10: IPv6 media).

A socket has one family, and an SDP answer must name an address the caller can send to: an
offer whose c= is IPv6 needs an IPv6 RTP socket and `c=IN IP6 <ours>`, an IPv4 offer the same in
IPv4. `MediaFamilies` says, from the configuration, where each family binds and what it writes
in c= (or that the family is not available: the offer then gets 488 with `Warning: 301`, RFC
3261 20.43, instead of a 200 whose media cannot flow).

- IPv4: sip.host when it is IPv4 (0.0.0.0 included); 0.0.0.0 when sip.host is "::"; otherwise
  only when sip.advertised_host is IPv4. c= is the advertised IPv4 address, else the bind address,
  else (wildcard) the local address the kernel uses towards the caller.
- IPv6: media.ipv6_address when set; else sip.host when it is IPv6. c= is that address, or the
  advertised IPv6 address, or (wildcard "::") the local address towards the caller.

Pure: no sockets except `local_ip_towards`, which asks the kernel for a route (no packet sent).
Which stream decides: the one the answer will use (RFC 3264 6: its m= line's c=, else the
session's), found by a dry run of `sip.sdp.answer_offer` on a placeholder port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from sip.sdp import CodecPrefs, SessionDescription, answer_offer
from sip.sdp_crypto import SdesTerms


async def sdp_address(
    loop: asyncio.AbstractEventLoop, sip_host: str, advertised_host: str
) -> str | None:
    """The IP written in our SDP c= line, or None to pick per call (wildcard bind).

    SDP needs an address, and peers handle IP literals far better than names (lessons 3.1:
    wrong c= addresses are the first cause of one-way audio), so a configured host name is
    resolved once at start."""
    if advertised_host:
        try:
            ipaddress.ip_address(advertised_host.strip("[]"))
            return advertised_host.strip("[]")
        except ValueError:
            pass
        try:
            infos = await loop.getaddrinfo(advertised_host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise OSError(
                exc.errno, f"sip.advertised_host {advertised_host!r} does not resolve: {exc}"
            ) from None
        return str(infos[0][4][0])
    if ipaddress.ip_address(sip_host).is_unspecified:
        return None
    return sip_host


__all__ = [
    "INCOMPATIBLE_ADDRESS",
    "MediaEndpoint",
    "MediaFamilies",
    "address_family",
    "answered_address",
    "local_ip_towards",
    "offer_problem",
    "reoffer_problem",
    "warning_301",
]

# RFC 3261 20.43 warn-code 301.
INCOMPATIBLE_ADDRESS = "Incompatible network address formats"


@dataclass(frozen=True, slots=True)
class MediaEndpoint:
    bind_host: str  # where the RTP/RTCP sockets bind (no brackets)
    sdp_address: str | None  # written in c=; None = the local address towards the peer


def address_family(host: str) -> int | None:
    """4 or 6 for an IP literal (IPv6 with or without brackets), None for anything else."""
    try:
        return ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MediaFamilies:
    ipv4: MediaEndpoint | None
    ipv6: MediaEndpoint | None

    @classmethod
    def from_config(
        cls, sip_host: str, advertised_ip: str | None, ipv6_address: str = ""
    ) -> MediaFamilies:
        """`advertised_ip`: sip.advertised_host resolved to an IP (None when not set)."""
        host = ipaddress.ip_address(sip_host.strip("[]"))
        advertised = ipaddress.ip_address(advertised_ip.strip("[]")) if advertised_ip else None
        adv4 = str(advertised) if advertised and advertised.version == 4 else None
        adv6 = str(advertised) if advertised and advertised.version == 6 else None

        ipv4: MediaEndpoint | None = None
        if host.version == 4:
            ipv4 = MediaEndpoint(str(host), adv4 or (None if host.is_unspecified else str(host)))
        elif host.is_unspecified or adv4:
            ipv4 = MediaEndpoint("0.0.0.0", adv4)

        ipv6: MediaEndpoint | None = None
        if ipv6_address:
            media6 = ipaddress.IPv6Address(ipv6_address.strip("[]"))
            ipv6 = MediaEndpoint(str(media6), None if media6.is_unspecified else str(media6))
        elif host.version == 6:
            ipv6 = MediaEndpoint(str(host), adv6 or (None if host.is_unspecified else str(host)))
        return cls(ipv4, ipv6)

    def endpoint(self, family: int) -> MediaEndpoint | None:
        return self.ipv6 if family == 6 else self.ipv4

    def for_peer(self, peer_host: str) -> MediaEndpoint | None:
        """No offer to follow (late offer, our own offer): the peer's family when we have it,
        else whichever family we have (the peer may still reach it: dual-stack)."""
        preferred = 6 if address_family(peer_host) == 6 else 4
        return self.endpoint(preferred) or self.endpoint(10 - preferred)

    @property
    def names(self) -> list[str]:
        return [name for name, e in (("IPv4", self.ipv4), ("IPv6", self.ipv6)) if e is not None]


def answered_address(
    offer: SessionDescription, prefs: CodecPrefs, srtp: SdesTerms | None = None
) -> str:
    """The c= address of the stream our answer would use (under the call's SRTP terms).
    Raises NoCommonCodec (-> 488; SrtpRefused when SRTP is why)."""
    return answer_offer(offer, "127.0.0.1", 9, prefs, srtp=srtp).media.remote_host


def offer_problem(families: MediaFamilies, remote_host: str) -> tuple[MediaEndpoint | None, str]:
    """The endpoint for an offer whose chosen stream has c= `remote_host`, or None and why
    (-> 488 + Warning: 301): a name instead of an IP, or a family we have no media for."""
    family = address_family(remote_host)
    if family is None:
        return None, f"c= address {remote_host[:60]!r} is not an IP address"
    endpoint = families.endpoint(family)
    if endpoint is None:
        hint = " (set media.ipv6_address)" if family == 6 else ""
        return None, (
            f"IPv{family} media offered (c= {remote_host}) but only "
            f"{'/'.join(families.names)} media is configured{hint}"
        )
    return endpoint, ""


def reoffer_problem(bind_host: str, remote_host: str, what: str = "re-offer") -> str | None:
    """Why the address of a re-offer (or of an answer to our offer) cannot be served by the
    socket bound on `bind_host` (the other family, or a name), or None. Hold addresses
    (0.0.0.0, ::) always fit."""
    if remote_host in ("0.0.0.0", "::"):
        return None
    family = address_family(remote_host)
    if family is not None and family == address_family(bind_host):
        return None
    return f"{what} puts media on {remote_host[:60]!r}, not IPv{address_family(bind_host)}"


def local_ip_towards(endpoint: MediaEndpoint, peer_host: str) -> str:
    """The address for our c= line: the configured one, else the local address the kernel
    would use to reach `peer_host` in the endpoint's family (no packet is sent)."""
    if endpoint.sdp_address is not None:
        return endpoint.sdp_address
    v6 = address_family(endpoint.bind_host) == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    peer = peer_host.strip("[]")
    if address_family(peer) != (6 if v6 else 4):
        peer = "2001:db8::1" if v6 else "192.0.2.1"  # a route in our family, not the peer's
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "::1" if v6 else "127.0.0.1"


def warning_301(agent_host: str, detail: str = INCOMPATIBLE_ADDRESS) -> str:
    """`Warning: 301 <agent> "<text>"` (RFC 3261 20.43); the agent is our host (IPv6 bracketed)."""
    agent = (
        f"[{agent_host}]" if ":" in agent_host and not agent_host.startswith("[") else agent_host
    )
    text = detail.replace("\\", "").replace('"', "'")
    return f'301 {agent} "{text}"'
