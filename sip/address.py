"""Where a SIP message came from or goes to: plain values shared by the sans-I/O core and the
socket layer (sip/transport.py), so the core needs nothing that does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Proto = Literal["udp", "tcp", "tls"]
# Streams: responses go back on the connection the request came on (RFC 3261 18.2.2).
RELIABLE_PROTOS = frozenset({"tcp", "tls"})


class Stream(Protocol):
    """What the core knows of a TCP/TLS connection (sip.stream.TcpConnection): how many calls
    keep it open."""

    users: int


@dataclass(frozen=True)
class TransportAddr:
    """Where a message came from / goes to. `conn` is set for TCP/TLS so replies reuse the
    stream. `server_name` is the host name TLS verifies the peer's certificate against (and
    sends as SNI): the host part of the URI we resolved, not the IP (RFC 5922 / 3261 26.3.1)."""

    proto: Proto
    host: str
    port: int
    conn: Stream | None = field(default=None, compare=False, repr=False)
    server_name: str = field(default="", compare=False)

    @property
    def reliable(self) -> bool:
        return self.proto in RELIABLE_PROTOS

    @property
    def hostport(self) -> tuple[str, int]:
        return (self.host, self.port)


def is_ip_literal(host: str) -> bool:
    """True for an IPv4/IPv6 address (brackets allowed), False for a host name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class SipTransport(Protocol):
    """What the user agent needs from its transport (sip.transport.Transport; a test's fake)."""

    host: str
    port: int
    on_message: Callable[[bytes, TransportAddr], None] | None
    on_send_error: Callable[[TransportAddr, Exception], None] | None

    @property
    def family(self) -> int: ...

    def send(self, data: bytes, dest: TransportAddr) -> Any: ...


__all__ = ["RELIABLE_PROTOS", "Proto", "SipTransport", "Stream", "TransportAddr", "is_ip_literal"]
