"""asyncio UDP + TCP (+ TLS) SIP transport: the only I/O in sip/.

Inbound messages go to `on_message(data, source)`; `source` is a `TransportAddr` whose `conn` is the
TCP connection the request came on, so responses reuse it (RFC 3261 18.2.2). Outbound TCP
connections are opened on demand and reused per (host, port). Keepalives (RFC 5626 3.5.1): a
CRLFCRLF ping is answered with a CRLF pong; bare CRLFs are ignored. Nothing here parses SIP beyond
TCP framing (sip.message.StreamFramer, run per connection by sip.stream.TcpConnection); the
transport logs nothing per packet, it counts.

Resource limits (issue 9): inbound TCP connections are accepted by our own bounded accept loop
(not `loop.create_server`) so the total and per-source caps are enforced before a transport is
built, the same way under uvloop and the stdlib loop, and so an accept() failure (EMFILE when
the process is out of descriptors) pauses accepting for a moment with one rate-limited log line
instead of a busy loop or a log flood. A connection that sends nothing, or holds a partial
message, for `message_deadline` seconds is closed (slowloris); header block and body have caps
checked before the bytes are buffered (see StreamFramer).

TLS (RFC 3261 26, issue 13) is the same stream machinery with an SSL layer: an optional listener
(`tls_context`, a ready server-side SSLContext, on `tls_port`, 5061 by default) accepted by the
same bounded accept loop, so the total and per-source caps, the EMFILE pause and the slowloris
deadline apply unchanged; the handshake has to finish within `message_deadline` (it counts
against the caps meanwhile). Outbound TLS uses `tls_client_context` with the destination's
`server_name` (the host of the URI we resolved) for SNI and hostname verification. The contexts
are used as given (protocol versions, client-certificate policy): nothing here overrides them.
A failed handshake closes the connection and logs one rate-limited line with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from sip.address import TransportAddr
from sip.stream import TcpConnection, norm_host, tls_reason

log = logging.getLogger("sip")

_CRLF = b"\r\n"
_PING = b"\r\n\r\n"
# RFC 3261 18.1.1: messages near the path MTU should go over TCP; we accept up to 64 KB on UDP
# (the IP limit) and the same cap on a TCP stream so one peer cannot make us buffer without bound.
DEFAULT_MAX_MESSAGE = 65535
# SIP header blocks seen from real peers are 1-3 KB; 16 KB leaves room for long Route sets.
DEFAULT_MAX_HEADER = 16384
# Accepting this many connections per wakeup at most lets UDP and RTP have the loop too.
_ACCEPTS_PER_WAKEUP = 64
# After accept() fails for lack of descriptors, stop accepting this long (asyncio's stdlib
# server waits 1 s too: base_events ACCEPT_RETRY_DELAY).
ACCEPT_BACKOFF = 1.0
# One log line per event kind and this many seconds at most, whatever the flood.
_LOG_INTERVAL = 5.0
# RFC 3261 26.2.2 / 18.2: SIP over TLS listens on 5061 unless told otherwise.
DEFAULT_TLS_PORT = 5061
_STREAM_PROTOS = ("tcp", "tls")


@dataclass
class TransportCounters:
    received: int = 0
    sent: int = 0
    dropped: int = 0  # datagrams/streams we could not use (oversize, framing, no handler)
    oversize: int = 0
    framing_errors: int = 0
    keepalives: int = 0
    connections_rejected: int = 0  # over the total connection cap
    connections_rejected_per_source: int = 0  # over the per-source connection cap
    connections_idle_closed: int = 0
    connections_deadline_closed: int = 0  # nothing, or a partial message, for too long
    oversize_closed: int = 0  # header block or body over its cap on a stream
    accept_errors: int = 0  # accept() failed (EMFILE, ENFILE, ENOBUFS...)
    send_errors: int = 0
    tls_handshake_failures: int = 0  # inbound or outbound handshakes that failed or timed out
    pongs: int = 0  # single-CRLF keep-alive answers received on our outbound streams


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
        owner._deliver(data, TransportAddr("udp", norm_host(str(addr[0])), int(addr[1])))  # type: ignore[call-overload]

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
        max_connections_per_source: int = 32,
        message_deadline: float = 10.0,
        max_header_size: int = DEFAULT_MAX_HEADER,
        max_body_size: int = DEFAULT_MAX_MESSAGE,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        tls_context: ssl.SSLContext | None = None,
        tls_port: int | None = None,
        tls_client_context: ssl.SSLContext | None = None,
    ) -> None:
        bad = [t for t in transports if t not in ("udp", "tcp")]
        if bad or not transports:
            raise ValueError(f"transports: {bad or transports!r} is not a list of 'udp'/'tcp'")
        self.host = norm_host(host)
        self.port = port
        self.transports = tuple(transports)
        # TLS listening is on when a server context is given; outbound TLS needs a client one.
        _check_server_context(tls_context)
        self.tls_context = tls_context
        self.tls_port = (DEFAULT_TLS_PORT if tls_port is None else tls_port) if tls_context else 0
        self.tls_client_context = tls_client_context
        self.on_message = on_message
        # Called with (dest, exception) when an outbound TCP connect or write fails, so the UA can
        # fail the transaction at once instead of waiting for Timer B/F (RFC 3261 17.1.4).
        self.on_send_error: Callable[[TransportAddr, Exception], None] | None = None
        # Observer of every SIP message in ("in") and out ("out"), e.g. for metrics: called
        # once per message with its bytes (keepalive CRLFs excluded), never allowed to raise.
        self.on_trace: Callable[[str, bytes], None] | None = None
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.max_connections_per_source = max_connections_per_source
        # <= 0 disables the slowloris deadline (tests of idle behaviour only).
        self.message_deadline = message_deadline
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._clock = clock
        self.counters = TransportCounters()
        self._udp: asyncio.DatagramTransport | None = None
        self._listeners: list[socket.socket] = []
        self._tls_listeners: list[socket.socket] = []
        self._accept_paused: asyncio.TimerHandle | None = None
        self._adopting = 0  # accepted sockets whose asyncio transport is being built
        self._per_source: dict[str, int] = {}  # inbound connections by peer address
        self._last_log: dict[str, float] = {}
        self._connections: set[TcpConnection] = set()
        # Open streams by _stream_key: requests to a peer reuse its connection.
        self._by_peer: dict[tuple[str, str, int, str], TcpConnection] = {}
        # Connects under way by (proto, host, port, TLS name to verify).
        self._pending: dict[tuple[str, str, int, str], asyncio.Task[TcpConnection | None]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def set_tls_contexts(
        self, server: ssl.SSLContext | None = None, client: ssl.SSLContext | None = None
    ) -> None:
        """Certificate reload (SIGHUP): new connections use the new contexts, open ones keep
        theirs. The TLS listener itself cannot be turned on or off here (restart for that)."""
        if server is not None:
            _check_server_context(server)
            if self.tls_context is None:
                raise ValueError("TLS is not listening: a server context needs a restart")
            self.tls_context = server
        if client is not None:
            self.tls_client_context = client

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
        if self.tls_context is not None:
            await self._bind_tls()
        streams = "tcp" in self.transports or self.tls_context is not None
        if streams and (self.idle_timeout > 0 or self.message_deadline > 0):
            self._sweeper = self._loop.create_task(self._sweep_loop())

    async def _bind(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        bound = port
        if "udp" in self.transports:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, port), family=self.family
            )
            self._udp = udp
            bound = udp.get_extra_info("sockname")[1]
        if "tcp" in self.transports:
            # IPv6 listeners are v6-only (as asyncio makes them), while a UDP socket on "::" is
            # dual-stack on Linux: listen on 0.0.0.0 as well so "::" means every address for both.
            hosts = ["::", "0.0.0.0"] if self.host == "::" else [self.host]
            for host in hosts:
                self._listeners.append(_listen(host, bound))
                bound = self._listeners[0].getsockname()[1]
            for listener in self._listeners:
                loop.add_reader(listener.fileno(), self._on_acceptable, listener)
        self.port = int(bound)

    async def _bind_tls(self) -> None:
        loop = asyncio.get_running_loop()
        hosts = ["::", "0.0.0.0"] if self.host == "::" else [self.host]
        port = self.tls_port
        try:
            for host in hosts:
                self._tls_listeners.append(_listen(host, port))
                port = self._tls_listeners[0].getsockname()[1]
        except OSError as exc:
            self._close_listeners()
            raise OSError(exc.errno, f"cannot listen for TLS on {self.host}:{port}: {exc}") from exc
        for listener in self._tls_listeners:
            loop.add_reader(listener.fileno(), self._on_acceptable, listener, "tls")
        self.tls_port = int(port)

    def _close_listeners(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._accept_paused is not None:
            self._accept_paused.cancel()
            self._accept_paused = None
        for listener in [*self._listeners, *self._tls_listeners]:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners = []
        self._tls_listeners = []

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
        """Send one message. TCP/TLS reuse `dest.conn` or an open stream to dest, else connect
        (TLS: verifying the server as `dest.server_name`, else its host).

        Never raises for network errors: they are counted and reported to `on_send_error`."""
        if self.on_trace is not None:
            self._trace("out", data)
        server_name = ""
        if isinstance(dest, TransportAddr):
            proto = transport or dest.proto
            host, port, conn = norm_host(dest.host), dest.port, dest.conn
            server_name = dest.server_name
        else:
            proto = transport or "udp"
            host, port, conn = norm_host(dest[0]), int(dest[1]), None
        if proto == "udp":
            self._udp_sendto(data, (host, port))
            return
        if proto not in _STREAM_PROTOS:
            raise ValueError(f"transport {proto!r} is not 'udp', 'tcp' or 'tls'")
        if isinstance(conn, TcpConnection) and conn.proto == proto and conn.write(data):
            self.counters.sent += 1
            return
        existing = self._by_peer.get(_stream_key(proto, host, port, server_name))
        if existing is not None and existing.write(data):
            self.counters.sent += 1
            return
        self._send_after_connect(data, (proto, host, port), server_name)

    def stream_to(self, dest: TransportAddr) -> TcpConnection | None:
        """The open stream a message to `dest` would use now (its `conn`, else the one to its
        address), or None."""
        conn = dest.conn
        if isinstance(conn, TcpConnection) and not conn.closed and conn.proto == dest.proto:
            return conn
        key = _stream_key(dest.proto, norm_host(dest.host), dest.port, dest.server_name)
        existing = self._by_peer.get(key)
        return existing if existing is not None and not existing.closed else None

    def ping(self, dest: TransportAddr) -> TcpConnection | None:
        """Send a CRLFCRLF keep-alive (RFC 5626 4.4.1) on the open stream to `dest`; returns the
        stream (its `pongs` counts the answers) or None when there is none to ping."""
        conn = self.stream_to(dest)
        if conn is None or not conn.write(_PING):
            return None
        return conn

    def close_stream(self, dest: TransportAddr) -> bool:
        """Close the open stream to `dest` (a dead flow): the next message opens a new one."""
        conn = self.stream_to(dest)
        if conn is None:
            return False
        conn.close()
        self._forget_connection(conn)
        return True

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

    def _send_after_connect(
        self, data: bytes, peer: tuple[str, str, int], server_name: str = ""
    ) -> None:
        loop = asyncio.get_running_loop()
        key = _stream_key(*peer, server_name)
        pending = self._pending.get(key)
        if pending is None:
            pending = loop.create_task(self._connect(peer, server_name))
            self._pending[key] = pending
            pending.add_done_callback(lambda _t: self._pending.pop(key, None))

        async def write_when_connected() -> None:
            conn = await pending
            if conn is not None and conn.write(data):
                self.counters.sent += 1

        task = loop.create_task(write_when_connected())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(
        self, peer: tuple[str, str, int], server_name: str = ""
    ) -> TcpConnection | None:
        loop = asyncio.get_running_loop()
        proto, host, port = peer
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        tls: dict[str, object] = {}
        if proto == "tls":
            if self.tls_client_context is None:
                exc: Exception = ConnectionError("no TLS client context configured")
                self._connect_failed(peer, server_name, exc)
                return None
            # SNI and hostname verification use the name we resolved, not the IP (RFC 5922).
            tls = {
                "ssl": self.tls_client_context,
                "server_hostname": server_name or host,
                "ssl_handshake_timeout": self.connect_timeout,
            }
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: TcpConnection(
                        self, outbound=True, proto=proto, server_name=server_name
                    ),
                    host,
                    port,
                    family=family,
                    **tls,  # type: ignore[arg-type]
                )
                await conn.connected
            return conn
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._connect_failed(peer, server_name, exc)
            return None

    def _connect_failed(self, peer: tuple[str, str, int], server_name: str, exc: Exception) -> None:
        proto, host, port = peer
        self.counters.send_errors += 1
        if proto == "tls":
            self.counters.tls_handshake_failures += 1
            self._log_limited(
                f"sip.tls_connect_failed:{host}:{port}",
                "SIP TLS connection to %s:%s (%s) failed: %s",
                host,
                port,
                server_name or host,
                tls_reason(exc),
                event="sip.tls_connect_failed",
            )
        if self.on_send_error is not None:
            self.on_send_error(
                TransportAddr(proto, host, port, server_name=server_name),  # type: ignore[arg-type]
                exc,
            )

    # -- connection bookkeeping --------------------------------------------------------------
    def _register_connection(self, conn: TcpConnection) -> bool:
        # Inbound connections passed the caps in _on_acceptable, before their transport existed.
        if conn.outbound and len(self._connections) >= self.max_connections:
            self.counters.connections_rejected += 1
            return False
        self._connections.add(conn)
        self._by_peer[_stream_key(conn.proto, *conn.peer, conn.server_name)] = conn
        return True

    def _forget_connection(self, conn: TcpConnection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            if conn.source_host:
                self._release_source(conn.source_host)
                conn.source_host = ""
        key = _stream_key(conn.proto, *conn.peer, conn.server_name)
        if self._by_peer.get(key) is conn:
            del self._by_peer[key]

    def _release_source(self, host: str) -> None:
        left = self._per_source.get(host, 0) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)

    # -- accepting (our own loop: see the module docstring) -----------------------------------
    def _on_acceptable(self, listener: socket.socket, proto: str = "tcp") -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the peer gave up while in the backlog
            except OSError as exc:
                # EMFILE / ENFILE / ENOBUFS / ENOMEM: the listening socket stays readable, so
                # retrying now would spin; pause, log once, count.
                self.counters.accept_errors += 1
                self._log_limited(
                    "sip.tcp_accept_error",
                    "SIP TCP accept failed (%s); not accepting for %.1f s",
                    errno.errorcode.get(exc.errno or 0, str(exc)),
                    ACCEPT_BACKOFF,
                )
                self._pause_accepting()
                return
            host = norm_host(str(addr[0]))
            if len(self._connections) + self._adopting >= self.max_connections:
                self.counters.connections_rejected += 1
                self._log_limited(
                    "sip.tcp_connection_cap",
                    "SIP TCP connection from %s refused: %d connections open"
                    " (sip.tcp_max_connections)",
                    host,
                    self.max_connections,
                )
                sock.close()
                continue
            if self._per_source.get(host, 0) >= self.max_connections_per_source:
                self.counters.connections_rejected_per_source += 1
                self._log_limited(
                    "sip.tcp_source_cap",
                    "SIP TCP connection from %s refused: %d open from it"
                    " (sip.tcp_max_connections_per_source)",
                    host,
                    self.max_connections_per_source,
                )
                sock.close()
                continue
            self._per_source[host] = self._per_source.get(host, 0) + 1
            self._adopting += 1
            task = asyncio.get_running_loop().create_task(self._adopt(sock, host, proto))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _adopt(self, sock: socket.socket, host: str, proto: str = "tcp") -> None:
        """Wrap an accepted socket in an asyncio transport (the per-source slot is already
        taken: the connection gives it back when it ends, or this does if it never starts).
        TLS: the handshake happens here, bounded by the message deadline, while the connection
        still counts against both caps (`_adopting` and its per-source slot)."""
        loop = asyncio.get_running_loop()
        made: list[TcpConnection] = []

        def make() -> TcpConnection:
            made.append(TcpConnection(self, outbound=False, source_host=host, proto=proto))
            return made[0]

        tls: dict[str, object] = {}
        if proto == "tls":
            deadline = self.message_deadline if self.message_deadline > 0 else 10.0
            tls = {"ssl": self.tls_context, "ssl_handshake_timeout": deadline}
        adopted = False
        try:
            await loop.connect_accepted_socket(make, sock, **tls)  # type: ignore[arg-type]
            adopted = True
        except (OSError, ValueError) as exc:
            # The peer reset it already (or the socket is gone); the slot is freed below.
            if proto == "tls":
                self.counters.tls_handshake_failures += 1
                if isinstance(exc, TimeoutError) or "handshake is taking longer" in str(exc):
                    self.counters.connections_deadline_closed += 1
                self._log_limited(
                    "sip.tls_handshake_failed",
                    "SIP TLS handshake from %s failed: %s",
                    host,
                    tls_reason(exc),
                )
        finally:
            self._adopting -= 1
            if not adopted and (not made or made[0] not in self._connections):
                sock.close()
                self._release_source(host)
                if made:
                    made[0].source_host = ""

    def _pause_accepting(self) -> None:
        loop = self._loop
        if loop is None or self._accept_paused is not None:
            return
        for listener in [*self._listeners, *self._tls_listeners]:
            loop.remove_reader(listener.fileno())
        self._accept_paused = loop.call_later(ACCEPT_BACKOFF, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_paused = None
        if self._loop is None:
            return
        for listener in self._listeners:
            self._loop.add_reader(listener.fileno(), self._on_acceptable, listener)
        for listener in self._tls_listeners:
            self._loop.add_reader(listener.fileno(), self._on_acceptable, listener, "tls")

    def _log_limited(self, key: str, message: str, *args: object, event: str | None = None) -> None:
        """One warning per `key` per _LOG_INTERVAL; `event` (default: the key) is its label."""
        now = self._now()
        last = self._last_log.get(key)
        if last is not None and now - last < _LOG_INTERVAL:
            return
        self._last_log[key] = now
        log.warning(message, *args, extra={"event": event or key})

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def _sweep_loop(self) -> None:
        periods = [t / 4 for t in (self.idle_timeout, self.message_deadline) if t > 0]
        interval = max(0.05, min([*periods, 30.0]))
        while True:
            await asyncio.sleep(interval)
            if self.idle_timeout > 0:
                self.sweep_idle()
            self.sweep_deadlines()

    def sweep_idle(self) -> int:
        """Close connections idle longer than idle_timeout (unless a dialog uses them); returns
        how many were closed."""
        limit = self._now() - self.idle_timeout
        stale = [c for c in self._connections if c.last_activity < limit and c.users <= 0]
        for conn in stale:
            conn.close()
            self.counters.connections_idle_closed += 1
        return len(stale)

    def sweep_deadlines(self) -> int:
        """Close inbound connections that sent nothing since they connected, or hold a partial
        message, for longer than message_deadline (slowloris); returns how many were closed."""
        if self.message_deadline <= 0:
            return 0
        limit = self._now() - self.message_deadline
        late = [
            c
            for c in self._connections
            if c.waiting_since is not None and c.waiting_since < limit and not c.closed
        ]
        for conn in late:
            self.counters.connections_deadline_closed += 1
            self._log_limited(
                "sip.tcp_deadline",
                "closing SIP TCP connection from %s:%s: no complete message within %.0f s",
                conn.peer[0],
                conn.peer[1],
                self.message_deadline,
            )
            conn.close()
        return len(late)

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
        if self._clock is not None:
            return self._clock()
        loop = self._loop
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        return loop.time() if loop is not None else 0.0


def _stream_key(proto: str, host: str, port: int, server_name: str) -> tuple[str, str, int, str]:
    """How streams are found for reuse: by address and, for TLS, by the name the peer's
    certificate was verified against ("" for an IP literal, and for inbound streams), so a
    request meant for one name never rides a connection verified for another."""
    return (proto, host, port, server_name if proto == "tls" else "")


def _check_server_context(ctx: ssl.SSLContext | None) -> None:
    if ctx is not None and ctx.check_hostname:
        raise ValueError("tls_context: a server-side context must not check hostnames")


def _listen(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket, as loop.create_server would have made it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
