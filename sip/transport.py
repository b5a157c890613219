"""asyncio UDP + TCP SIP transport on one host:port: the only I/O in sip/.

Inbound messages go to `on_message(data, source)`; `source` is a `TransportAddr` whose `conn` is the
TCP connection the request came on, so responses reuse it (RFC 3261 18.2.2). Outbound TCP
connections are opened on demand and reused per (host, port). Keepalives (RFC 5626 3.5.1): a
CRLFCRLF ping is answered with a CRLF pong; bare CRLFs are ignored. Nothing here parses SIP beyond
TCP framing (sip.message.StreamFramer); the transport logs nothing per packet, it counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sip.message import FramingError, StreamFramer

log = logging.getLogger("sip")

Proto = Literal["udp", "tcp"]
_CRLF = b"\r\n"
_PING = b"\r\n\r\n"
# RFC 3261 18.1.1: messages near the path MTU should go over TCP; we accept up to 64 KB on UDP
# (the IP limit) and the same cap on a TCP stream so one peer cannot make us buffer without bound.
DEFAULT_MAX_MESSAGE = 65535


@dataclass(frozen=True)
class TransportAddr:
    """Where a message came from / goes to. `conn` is set for TCP so replies reuse the stream."""

    proto: Proto
    host: str
    port: int
    conn: TcpConnection | None = field(default=None, compare=False, repr=False)

    @property
    def hostport(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass
class TransportCounters:
    received: int = 0
    sent: int = 0
    dropped: int = 0  # datagrams/streams we could not use (oversize, framing, no handler)
    oversize: int = 0
    framing_errors: int = 0
    keepalives: int = 0
    connections_rejected: int = 0  # over the connection cap
    connections_idle_closed: int = 0
    send_errors: int = 0


def _norm_host(host: str) -> str:
    # Sockets report IPv6 without brackets; callers may pass "[::1]" taken from a URI or Via.
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class TcpConnection(asyncio.Protocol):
    """One TCP stream (inbound or outbound): frames messages and tracks activity for idle close."""

    def __init__(self, owner: Transport, outbound: bool) -> None:
        self._owner = owner
        self.outbound = outbound
        self._framer = StreamFramer(max_size=owner.max_message_size)
        self._transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_activity = owner._now()
        self.closed = False
        # Dialogs using this stream (set by the UA): an idle call must not lose its connection,
        # the peer may be behind NAT and unable to accept a new one.
        self.users = 0
        self.connected = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (_norm_host(str(peer[0])), int(peer[1])) if peer else ("", 0)
        if not self._owner._register_connection(self):
            transport.close()
            return
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._owner._now()
        counters = self._owner.counters
        pings_before = self._framer.keepalives_received
        try:
            messages = self._framer.feed(data)
        except FramingError:
            counters.framing_errors += 1
            counters.dropped += 1
            self.close()
            return
        pings = self._framer.keepalives_received - pings_before
        if pings:
            # RFC 5626 3.5.1: each CRLFCRLF ping is answered with one CRLF pong.
            counters.keepalives += pings
            self.write(_CRLF * pings)
        source = TransportAddr("tcp", self.peer[0], self.peer[1], self)
        for message in messages:
            self._owner._deliver(message, source)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
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


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: Transport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        owner = self._owner
        if len(data) > owner.max_message_size:
            owner.counters.oversize += 1
            owner.counters.dropped += 1
            return
        if not data.strip(b"\r\n"):
            owner.counters.keepalives += 1
            if data.startswith(_PING):
                owner._udp_sendto(_CRLF, (str(addr[0]), int(addr[1])))  # type: ignore[call-overload]
            return
        owner._deliver(data, TransportAddr("udp", _norm_host(str(addr[0])), int(addr[1])))  # type: ignore[call-overload]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc.: the transaction layer times out on its own.
        self._owner.counters.send_errors += 1


MessageHandler = Callable[[bytes, TransportAddr], None]


class Transport:
    """UDP and TCP listening on the same host:port, IPv4 or IPv6 ("::", "::1").

    `port=0` picks a free port (UDP first, then TCP on the same number)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        transports: tuple[str, ...] | list[str] = ("udp", "tcp"),
        on_message: MessageHandler | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        max_connections: int = 1024,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
    ) -> None:
        bad = [t for t in transports if t not in ("udp", "tcp")]
        if bad or not transports:
            raise ValueError(f"transports: {bad or transports!r} is not a list of 'udp'/'tcp'")
        self.host = _norm_host(host)
        self.port = port
        self.transports = tuple(transports)
        self.on_message = on_message
        # Called with (dest, exception) when an outbound TCP connect or write fails, so the UA can
        # fail the transaction at once instead of waiting for Timer B/F (RFC 3261 17.1.4).
        self.on_send_error: Callable[[TransportAddr, Exception], None] | None = None
        # Observer of every SIP message in ("in") and out ("out"), e.g. for metrics: called
        # once per message with its bytes (keepalive CRLFs excluded), never allowed to raise.
        self.on_trace: Callable[[str, bytes], None] | None = None
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.counters = TransportCounters()
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[TcpConnection] = set()
        self._by_peer: dict[tuple[str, int], TcpConnection] = {}
        self._pending: dict[tuple[str, int], asyncio.Task[TcpConnection | None]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        attempts = 20 if self.port == 0 else 1
        last_error: OSError | None = None
        for _ in range(attempts):
            try:
                await self._bind(self.port)
                break
            except OSError as exc:  # port 0: TCP may collide with the UDP-chosen number; retry
                last_error = exc
                self._close_listeners()
        else:
            assert last_error is not None
            raise OSError(
                last_error.errno, f"cannot listen on {self.host}:{self.port}: {last_error}"
            )
        if "tcp" in self.transports and self.idle_timeout > 0:
            self._sweeper = self._loop.create_task(self._sweep_idle())

    async def _bind(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        bound = port
        if "udp" in self.transports:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, port), family=self.family
            )
            self._udp = udp
            bound = udp.get_extra_info("sockname")[1]
        if "tcp" in self.transports:
            # asyncio makes IPv6 TCP listeners v6-only, while a UDP socket on "::" is dual-stack
            # on Linux: listen on 0.0.0.0 as well so "::" means every address for both.
            hosts: str | list[str] = ["::", "0.0.0.0"] if self.host == "::" else self.host
            self._server = await loop.create_server(
                lambda: TcpConnection(self, outbound=False),
                hosts,
                bound,
                family=self.family if self.host != "::" else socket.AF_UNSPEC,
                reuse_address=True,
            )
            bound = self._server.sockets[0].getsockname()[1]
        self.port = int(bound)

    def _close_listeners(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def close(self) -> None:
        """Stop listening and close every connection (idempotent)."""
        self._close_listeners()
        for conn in list(self._connections):
            conn.close()
        for task in [*self._pending.values(), *self._tasks]:
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def wait_closed(self) -> None:
        tasks = [t for t in [*self._pending.values(), *self._tasks, self._sweeper] if t]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    # -- sending ---------------------------------------------------------------------------
    def send(
        self, data: bytes, dest: TransportAddr | tuple[str, int], transport: str | None = None
    ) -> None:
        """Send one message. TCP reuses `dest.conn` or an open stream to dest, else connects.

        Never raises for network errors: they are counted and reported to `on_send_error`."""
        if self.on_trace is not None:
            self._trace("out", data)
        if isinstance(dest, TransportAddr):
            proto = transport or dest.proto
            host, port, conn = _norm_host(dest.host), dest.port, dest.conn
        else:
            proto = transport or "udp"
            host, port, conn = _norm_host(dest[0]), int(dest[1]), None
        if proto == "udp":
            self._udp_sendto(data, (host, port))
            return
        if proto != "tcp":
            raise ValueError(f"transport {proto!r} is not 'udp' or 'tcp'")
        if conn is not None and conn.write(data):
            self.counters.sent += 1
            return
        existing = self._by_peer.get((host, port))
        if existing is not None and existing.write(data):
            self.counters.sent += 1
            return
        self._send_after_connect(data, (host, port))

    def _udp_sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._udp is None:
            self.counters.send_errors += 1
            return
        if self.family == socket.AF_INET6 and "." in addr[0] and ":" not in addr[0]:
            # A dual-stack "::" socket reaches IPv4 peers through v4-mapped addresses.
            addr = ("::ffff:" + addr[0], addr[1])
        try:
            self._udp.sendto(data, addr)
            self.counters.sent += 1
        except (OSError, ValueError):
            self.counters.send_errors += 1

    def _send_after_connect(self, data: bytes, peer: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        pending = self._pending.get(peer)
        if pending is None:
            pending = loop.create_task(self._connect(peer))
            self._pending[peer] = pending
            pending.add_done_callback(lambda _t: self._pending.pop(peer, None))

        async def write_when_connected() -> None:
            conn = await pending
            if conn is not None and conn.write(data):
                self.counters.sent += 1

        task = loop.create_task(write_when_connected())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, peer: tuple[str, int]) -> TcpConnection | None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: TcpConnection(self, outbound=True), peer[0], peer[1], family=family
                )
                await conn.connected
            return conn
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.counters.send_errors += 1
            if self.on_send_error is not None:
                self.on_send_error(TransportAddr("tcp", peer[0], peer[1]), exc)
            return None

    # -- connection bookkeeping --------------------------------------------------------------
    def _register_connection(self, conn: TcpConnection) -> bool:
        if len(self._connections) >= self.max_connections:
            self.counters.connections_rejected += 1
            return False
        self._connections.add(conn)
        self._by_peer[conn.peer] = conn
        return True

    def _forget_connection(self, conn: TcpConnection) -> None:
        self._connections.discard(conn)
        if self._by_peer.get(conn.peer) is conn:
            del self._by_peer[conn.peer]

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def _sweep_idle(self) -> None:
        interval = max(0.05, min(self.idle_timeout / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            self.sweep_idle()

    def sweep_idle(self) -> int:
        """Close connections idle longer than idle_timeout (unless a dialog uses them); returns
        how many were closed."""
        limit = self._now() - self.idle_timeout
        stale = [c for c in self._connections if c.last_activity < limit and c.users <= 0]
        for conn in stale:
            conn.close()
            self.counters.connections_idle_closed += 1
        return len(stale)

    # -- inbound -----------------------------------------------------------------------------
    def _trace(self, direction: str, data: bytes) -> None:
        try:
            self.on_trace(direction, data)  # type: ignore[misc]
        except Exception:
            log.exception("sip trace observer failed", extra={"event": "sip.trace_error"})

    def _deliver(self, data: bytes, source: TransportAddr) -> None:
        self.counters.received += 1
        if self.on_trace is not None:
            self._trace("in", data)
        handler = self.on_message
        if handler is None:
            self.counters.dropped += 1
            return
        try:
            handler(data, source)
        except Exception:  # a bug in the UA must not kill the socket's protocol
            self.counters.dropped += 1
            log.exception("sip message handler failed", extra={"event": "sip.handler_error"})

    def _now(self) -> float:
        loop = self._loop
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        return loop.time() if loop is not None else 0.0
