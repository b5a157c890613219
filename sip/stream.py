"""One SIP stream over TCP or TLS (RFC 3261 18.3, 26): framing, keep-alive answers, activity
for the idle sweep and the slowloris deadline. The connection is owned by sip.transport.Transport,
which accepts or opens it, counts it against the caps and closes it; this module only runs it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol

from sip.address import TransportAddr
from sip.message import FramingError, StreamFramer

CRLF = b"\r\n"


class StreamOwner(Protocol):
    """What a connection needs from its transport (sip.transport.Transport)."""

    max_message_size: int
    max_header_size: int
    max_body_size: int
    counters: Any  # sip.transport.TransportCounters

    def _now(self) -> float: ...

    def _register_connection(self, conn: TcpConnection) -> bool: ...

    def _forget_connection(self, conn: TcpConnection) -> None: ...

    def _deliver(self, data: bytes, source: TransportAddr) -> None: ...

    def _log_limited(
        self, key: str, message: str, *args: object, event: str | None = None
    ) -> None: ...


def norm_host(host: str) -> str:
    # Sockets report IPv6 without brackets; callers may pass "[::1]" taken from a URI or Via.
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def tls_reason(exc: BaseException) -> str:
    """A short, loggable reason for a failed TLS handshake (no secrets in it)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "handshake timed out"
    return str(exc) or type(exc).__name__


class TcpConnection(asyncio.Protocol):
    """One TCP or TLS stream (inbound or outbound): frames messages and tracks activity for idle
    close. For TLS the asyncio transport is the SSL one, so this sees plaintext."""

    def __init__(
        self,
        owner: StreamOwner,
        outbound: bool,
        source_host: str = "",
        proto: str = "tcp",
        server_name: str = "",
    ) -> None:
        self._owner = owner
        self.proto = proto
        # Outbound TLS: the name the server's certificate was verified against ("" = its IP).
        self.server_name = server_name
        self.outbound = outbound
        # Inbound: the address counted against the per-source cap until the connection ends.
        self.source_host = source_host
        self._framer = StreamFramer(
            max_size=owner.max_message_size,
            max_header=owner.max_header_size,
            max_body=owner.max_body_size,
        )
        self._transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_activity = owner._now()
        # When the current wait for a whole message began: the connect, or the first byte of a
        # message still incomplete; None while nothing is pending (slowloris deadline).
        self.waiting_since: float | None = None if outbound else self.last_activity
        self.closed = False
        # Dialogs using this stream (set by the UA): an idle call must not lose its connection,
        # the peer may be behind NAT and unable to accept a new one.
        self.users = 0
        self.connected = asyncio.get_running_loop().create_future()
        # Single-CRLF pongs seen (RFC 5626 4.4.1): a keep-alive sender compares before/after.
        self.pongs = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass (issue 10: an isinstance
        # assertion here failed every TCP connection under uvloop); it has the same methods.
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (norm_host(str(peer[0])), int(peer[1])) if peer else ("", 0)
        if not self._owner._register_connection(self):
            transport.close()
            return
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = self._owner._now()
        self.last_activity = now
        counters = self._owner.counters
        pings_before = self._framer.keepalives_received
        pongs_before = self._framer.pongs_received
        try:
            messages = self._framer.feed(data)
        except FramingError as exc:
            counters.framing_errors += 1
            counters.dropped += 1
            if "exceeds maximum" in str(exc):
                counters.oversize_closed += 1
            self._owner._log_limited(
                "sip.tcp_framing_error",
                "closing SIP TCP connection from %s:%s: %s",
                self.peer[0],
                self.peer[1],
                str(exc),
            )
            self.close()
            return
        if self._framer.in_message:
            if messages or self.waiting_since is None:
                self.waiting_since = now
        else:
            self.waiting_since = None
        pings = self._framer.keepalives_received - pings_before
        if pings:
            # RFC 5626 3.5.1: each CRLFCRLF ping is answered with one CRLF pong.
            counters.keepalives += pings
            self.write(CRLF * pings)
        pongs = self._framer.pongs_received - pongs_before
        if pongs:
            self.pongs += pongs
            counters.pongs += pongs
        source = TransportAddr(self.proto, self.peer[0], self.peer[1], self)  # type: ignore[arg-type]
        for message in messages:
            self._owner._deliver(message, source)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.waiting_since = None
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("connection closed"))
        self._owner._forget_connection(self)

    def write(self, data: bytes) -> bool:
        if self.closed or self._transport is None or self._transport.is_closing():
            return False
        self._transport.write(data)
        self.last_activity = self._owner._now()
        return True

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self.closed = True


__all__ = ["CRLF", "StreamOwner", "TcpConnection", "norm_host", "tls_reason"]
