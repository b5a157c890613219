"""Next-hop addresses: DNS for the user agent, kept out of its sans-I/O core.

A/AAAA only (no NAPTR/SRV: the configured registrar/proxy address is used as given); the
transport's address family decides which addresses we can reach at all. Transport and default
port follow sip/sips.py: sips: and ;transport=tls go to 5061 over TLS, and a sips: URI is never
sent over UDP/TCP (InsecureTransportError, an OSError). The host name of the URI (not the
address it resolves to) is kept as the TLS server name for SNI and certificate checks.
"""

from __future__ import annotations

import asyncio
import socket

from sip.address import TransportAddr, is_ip_literal
from sip.sips import next_hop_transport
from sip.uri import SipUri


async def resolve(uri: SipUri, proto: str | None, family: int) -> TransportAddr:
    """Next-hop address for a URI: IP literal (or maddr) as is, else an A/AAAA lookup."""
    proto, port = next_hop_transport(uri, proto)
    host = uri.host_no_brackets
    server_name = "" if is_ip_literal(host) else host
    maddr = uri.params.get("maddr")
    if maddr:
        host = maddr.strip("[]")
    if not is_ip_literal(host):
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"cannot resolve {host}")
        host = str(infos[0][4][0])
    return TransportAddr(proto, host, port, server_name=server_name)  # type: ignore[arg-type]


def default_advertised_host(bind_host: str) -> str:
    """The bind address, or for a wildcard bind the address of the default route's interface."""
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    family = socket.AF_INET6 if bind_host == "::" else socket.AF_INET
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))  # no packet is sent: this only picks a route
            return str(s.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


__all__ = ["default_advertised_host", "is_ip_literal", "resolve"]
