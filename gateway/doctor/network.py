"""Small socket helpers (no packet leaves the host): bindability, local addresses, the
source address towards a peer, name resolution with a bound.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def ip_or_none(value: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def describe_bind_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "in use by another process"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this host's addresses"
    return exc.strerror or str(exc)


async def resolve_host(host: str, timeout: float) -> list[str]:  # noqa: ASYNC109 (bounded by design)
    """IP literals as themselves; names through the resolver (OSError/TimeoutError on failure)."""
    if ip_or_none(host) is not None:
        return [host.strip("[]")]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), timeout)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
