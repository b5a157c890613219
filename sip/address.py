"""Where a SIP message came from or goes to: plain values shared by the sans-I/O core and the
socket layer (sip/transport.py), so the core needs nothing that does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Proto = Literal["udp", "tcp"]


class Stream(Protocol):
    """What the core knows of a TCP connection (sip.transport.TcpConnection): how many calls
    keep it open."""

    users: int


@dataclass(frozen=True)
class TransportAddr:
    """Where a message came from / goes to. `conn` is set for TCP so replies reuse the stream."""

    proto: Proto
    host: str
    port: int
    conn: Stream | None = field(default=None, compare=False, repr=False)

    @property
    def hostport(self) -> tuple[str, int]:
        return (self.host, self.port)


class SipTransport(Protocol):
    """What the user agent needs from its transport (sip.transport.Transport; a test's fake)."""

    host: str
    port: int
    on_message: Callable[[bytes, TransportAddr], None] | None
    on_send_error: Callable[[TransportAddr, Exception], None] | None

    @property
    def family(self) -> int: ...

    def send(self, data: bytes, dest: TransportAddr) -> Any: ...


__all__ = ["Proto", "SipTransport", "Stream", "TransportAddr"]
