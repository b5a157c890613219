"""The one message for a port that cannot be bound: says "in use" and names the flag to change.

Used by `run` (SIP port: --sip-port; control API: --control-port) and `simulator` (--port), so a
newcomer whose port 5060 is taken by a softphone or a PBX reads what to type next.
"""

from __future__ import annotations

import errno
import socket


def bind_failure(what: str, address: str, exc: OSError, flag: str, key: str = "") -> str:
    """`what` ("SIP port"), `address` ("127.0.0.1:5060"), the flag (and config key) to change."""
    setting = f"{flag} ({key})" if key else flag
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{what} {address} is in use by another process; stop it (`ss -ltunp` shows it) "
            f"or choose another port with {setting}"
        )
    if exc.errno == errno.EACCES:
        return (
            f"{what} {address}: permission denied (ports below 1024 need root or "
            f"CAP_NET_BIND_SERVICE); choose a port >= 1024 with {setting}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{what} {address}: the address is not one of this host's addresses"
    return f"{what} {address}: cannot bind ({exc.strerror or exc})"


def probe_errno(host: str, port: int, transports: tuple[str, ...] = ("udp", "tcp")) -> int | None:
    """The errno binding `host:port` gives now, for errors that lost theirs (uvloop's "could
    not bind to local_addr" carries none); None when every transport binds."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for transport in transports:
        kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            try:
                sock.bind((host, port))
            except OSError as exc:
                return exc.errno
    return None


def with_errno(exc: OSError, host: str, port: int, transports: tuple[str, ...]) -> OSError:
    """`exc`, or an OSError carrying the errno a fresh bind of the same address gives."""
    if exc.errno is not None or port == 0:
        return exc
    found = probe_errno(host, port, transports)
    return OSError(found, exc.strerror or str(exc)) if found is not None else exc
