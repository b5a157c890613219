"""Next-hop addresses: DNS for the user agent, kept out of its sans-I/O core.

A/AAAA only (no NAPTR/SRV: the configured registrar/proxy address is used as given); the
transport's address family decides which addresses we can reach at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from sip.transport import TransportAddr
from sip.uri import SipUri


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve(uri: SipUri, proto: str | None, family: int) -> TransportAddr:
    """Next-hop address for a URI: IP literal (or maddr) as is, else an A/AAAA lookup."""
    proto = (proto or uri.transport or "udp").lower()
    if proto not in ("udp", "tcp"):
        proto = "udp"
    host = uri.host_no_brackets
    port = uri.port or 5060
    maddr = uri.params.get("maddr")
    if maddr:
        host = maddr.strip("[]")
    if not is_ip_literal(host):
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"cannot resolve {host}")
        host = str(infos[0][4][0])
    return TransportAddr(proto, host, port)  # type: ignore[arg-type]


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
