"""sip.transport over real loopback sockets: UDP, TCP framing and reuse, keepalives, caps."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

import pytest

from sip.transport import Transport, TransportAddr

OPTIONS = (
    b"OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, TransportAddr]] = asyncio.Queue()

    def __call__(self, data: bytes, source: TransportAddr) -> None:
        self.queue.put_nowait((data, source))

    async def get(self) -> tuple[bytes, TransportAddr]:
        return await asyncio.wait_for(self.queue.get(), 2.0)


async def _started(host: str = "127.0.0.1", **kw: object) -> tuple[Transport, Inbox]:
    inbox = Inbox()
    t = Transport(host, 0, on_message=inbox, **kw)  # type: ignore[arg-type]
    await t.start()
    return t, inbox


async def test_udp_receive_and_send_back() -> None:
    t, inbox = await _started()
    try:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.sendto(OPTIONS, ("127.0.0.1", t.port))
        data, source = await inbox.get()
        assert data == OPTIONS
        assert source.proto == "udp" and source.port == sock.getsockname()[1]
        t.send(b"SIP/2.0 200 OK\r\n\r\n", source)
        reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2.0)
        assert reply.startswith(b"SIP/2.0 200")
        sock.close()
    finally:
        t.close()


async def test_udp_ping_pong_and_oversize_counted() -> None:
    t, inbox = await _started(max_message_size=1000)
    try:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.sendto(b"\r\n\r\n", ("127.0.0.1", t.port))
        pong = await asyncio.wait_for(loop.sock_recv(sock, 100), 2.0)
        assert pong == b"\r\n"
        sock.sendto(b"X" * 2000, ("127.0.0.1", t.port))
        sock.sendto(OPTIONS, ("127.0.0.1", t.port))
        data, _ = await inbox.get()
        assert data == OPTIONS  # the oversize datagram never reached the handler
        assert t.counters.oversize == 1 and t.counters.keepalives == 1
        sock.close()
    finally:
        t.close()


async def test_tcp_framing_split_and_coalesced_and_response_reuses_connection() -> None:
    t, inbox = await _started()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(OPTIONS[:30])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(OPTIONS[30:] + OPTIONS)  # the rest of one plus a whole second message
        await writer.drain()
        first, source = await inbox.get()
        second, _ = await inbox.get()
        assert first == OPTIONS and second == OPTIONS
        assert source.proto == "tcp" and source.conn is not None
        t.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)
        line = await asyncio.wait_for(reader.readline(), 2.0)
        assert line.startswith(b"SIP/2.0 200")
        # keepalive ping on the stream gets a pong
        writer.write(b"\r\n\r\n")
        await writer.drain()
        rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert rest.endswith(b"\r\n\r\n")
        pong = await asyncio.wait_for(reader.readexactly(2), 2.0)
        assert pong == b"\r\n"
        writer.close()
    finally:
        t.close()


async def test_tcp_framing_error_closes_connection() -> None:
    t, _inbox = await _started()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(OPTIONS.replace(b"Content-Length: 0\r\n", b""))  # no Content-Length on TCP
        await writer.drain()
        data = await asyncio.wait_for(reader.read(100), 2.0)
        assert data == b""  # closed by the transport
        assert t.counters.framing_errors == 1
        writer.close()
    finally:
        t.close()


async def test_outbound_tcp_connection_opened_once_and_reused() -> None:
    a, inbox_a = await _started()
    b, inbox_b = await _started()
    try:
        dest = TransportAddr("tcp", "127.0.0.1", b.port)
        a.send(OPTIONS, dest)
        a.send(OPTIONS, dest)  # while the first connect is still pending
        await inbox_b.get()
        await inbox_b.get()
        a.send(OPTIONS, dest)
        _, source = await inbox_b.get()
        assert a.connection_count == 1 and b.connection_count == 1
        # b answers on the connection a opened
        b.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)
        data, back = await inbox_a.get()
        assert data.startswith(b"SIP/2.0 200") and back.port == b.port
    finally:
        a.close()
        b.close()


async def test_connect_failure_reported() -> None:
    t, _ = await _started()
    errors: list[TransportAddr] = []
    reported = asyncio.Event()

    def send_error(dest: TransportAddr, exc: Exception) -> None:
        errors.append(dest)
        reported.set()

    t.on_send_error = send_error
    # a closed port: bind a listener, note its port, close it
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    try:
        t.send(OPTIONS, TransportAddr("tcp", "127.0.0.1", port))
        await asyncio.wait_for(reported.wait(), 2)
        assert errors and errors[0].port == port
        assert t.counters.send_errors == 1
    finally:
        t.close()


async def test_connection_cap_and_idle_sweep() -> None:
    t, _ = await _started(max_connections=1, idle_timeout=0)
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", t.port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", t.port)
        data = await asyncio.wait_for(r2.read(100), 2.0)
        assert data == b"" and t.counters.connections_rejected == 1
        assert t.connection_count == 1
        t.idle_timeout = -1.0  # everything counts as idle now: no wall clock in the assertion
        assert t.sweep_idle() == 1
        assert await asyncio.wait_for(r1.read(100), 2.0) == b""
        w1.close()
        w2.close()
    finally:
        t.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_ipv6_udp_and_tcp() -> None:
    t, inbox = await _started("::1")
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.sendto(OPTIONS, ("::1", t.port))
        _, source = await inbox.get()
        assert source.host == "::1"
        _, writer = await asyncio.open_connection("::1", t.port)
        writer.write(OPTIONS)
        await writer.drain()
        _, source = await inbox.get()
        assert source.proto == "tcp" and source.host == "::1"
        writer.close()
        sock.close()
    finally:
        t.close()


def test_uvloop_transport_roundtrip() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bytes:
        t, inbox = await _started()
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.sendto(OPTIONS, ("127.0.0.1", t.port))
            data, _ = await inbox.get()
            sock.close()
            return data
        finally:
            t.close()

    assert uvloop.run(main()) == OPTIONS


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_wildcard_ipv6_bind_accepts_ipv4_tcp_and_udp() -> None:
    t, inbox = await _started("::")
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(OPTIONS)
        await writer.drain()
        _, source = await inbox.get()
        assert source.proto == "tcp"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.sendto(OPTIONS, ("127.0.0.1", t.port))
        _, source = await inbox.get()
        assert source.proto == "udp" and source.host.endswith("127.0.0.1")
        # sending to a plain IPv4 address from the "::" socket works (v4-mapped)
        t.send(b"SIP/2.0 200 OK\r\n\r\n", ("127.0.0.1", sock.getsockname()[1]))
        loop = asyncio.get_running_loop()
        assert (await asyncio.wait_for(loop.sock_recv(sock, 100), 2.0)).startswith(b"SIP/2.0")
        writer.close()
        sock.close()
    finally:
        t.close()


async def test_idle_sweep_spares_connections_in_use() -> None:
    t, inbox = await _started(idle_timeout=0)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", t.port)
        writer.write(OPTIONS)
        await writer.drain()
        _, source = await inbox.get()
        assert source.conn is not None
        source.conn.users += 1  # what the UA does for a call on this stream
        t.idle_timeout = -1.0
        assert t.sweep_idle() == 0
        source.conn.users -= 1
        assert t.sweep_idle() == 1
        writer.close()
    finally:
        t.close()


# ---- resource limits (issue 9) ----------------------------------------------------------------


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition the event loop makes true (bounded: 2 s of loop turns)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(100), 2.0) == b""
    except ConnectionResetError:
        return True


async def test_per_source_connection_cap() -> None:
    t, inbox = await _started(max_connections_per_source=2)
    try:
        streams = [await asyncio.open_connection("127.0.0.1", t.port) for _ in range(3)]
        assert await _closed_by_peer(streams[2][0])
        assert t.counters.connections_rejected_per_source == 1
        await _until(lambda: t.connection_count == 2, "two connections")
        # Another source address is not affected by 127.0.0.1's share.
        r4, w4 = await asyncio.open_connection("127.0.0.1", t.port, local_addr=("127.0.0.2", 0))
        w4.write(OPTIONS)
        _, source = await inbox.get()
        assert source.host == "127.0.0.2"
        # A slot is given back when its connection ends.
        streams[0][1].close()
        await _until(lambda: t._per_source.get("127.0.0.1") == 1, "slot released")
        r5, w5 = await asyncio.open_connection("127.0.0.1", t.port)
        w5.write(OPTIONS)
        _, source = await inbox.get()
        assert source.host == "127.0.0.1"
        for _, w in [*streams[1:], (r4, w4), (r5, w5)]:
            w.close()
    finally:
        t.close()


async def test_slowloris_deadline_with_fake_clock() -> None:
    now = [0.0]
    t, inbox = await _started(message_deadline=10.0, idle_timeout=0, clock=lambda: now[0])
    try:
        silent_r, silent_w = await asyncio.open_connection("127.0.0.1", t.port)
        partial_r, partial_w = await asyncio.open_connection("127.0.0.1", t.port)
        _whole_r, whole_w = await asyncio.open_connection("127.0.0.1", t.port)
        whole_w.write(OPTIONS)
        await inbox.get()
        partial_w.write(OPTIONS[:40])
        await _until(
            lambda: sum(c._framer.in_message for c in t._connections) == 1, "partial message"
        )
        now[0] = 9.0
        assert t.sweep_deadlines() == 0
        now[0] = 10.5
        assert t.sweep_deadlines() == 2
        assert await _closed_by_peer(silent_r)
        assert await _closed_by_peer(partial_r)
        assert t.counters.connections_deadline_closed == 2
        # The connection that completed its message stays; a new partial one restarts its clock.
        whole_w.write(OPTIONS[:40])
        await _until(lambda: any(c.waiting_since == 10.5 for c in t._connections), "restart")
        now[0] = 20.0
        assert t.sweep_deadlines() == 0
        whole_w.write(OPTIONS[40:])
        await inbox.get()
        now[0] = 100.0
        assert t.sweep_deadlines() == 0
        for w in (silent_w, partial_w, whole_w):
            w.close()
    finally:
        t.close()


async def test_huge_header_and_content_length_close_the_connection() -> None:
    t, _ = await _started(max_header_size=2048, max_body_size=4096)
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", t.port)
        w1.write(b"OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nX-Pad: " + b"a" * 4000)
        assert await _closed_by_peer(r1)
        r2, w2 = await asyncio.open_connection("127.0.0.1", t.port)
        w2.write(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 50000"))
        assert await _closed_by_peer(r2)
        assert t.counters.oversize_closed == 2
        w1.close()
        w2.close()
    finally:
        t.close()


class _FailingListener:
    """accept() fails like a process out of descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, tuple[str, int]]:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")


async def test_accept_failure_pauses_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    t, _ = await _started(clock=lambda: now[0])
    try:
        failing = _FailingListener(t._listeners[0])
        with caplog.at_level(logging.WARNING, logger="sip"):
            t._on_acceptable(failing)  # type: ignore[arg-type]
            assert t._accept_paused is not None  # not accepting: no busy loop on EMFILE
            t._accept_paused.cancel()
            t._accept_paused = None
            now[0] = 1.0
            t._on_acceptable(failing)  # type: ignore[arg-type]
        assert failing.calls == 2 and t.counters.accept_errors == 2
        lines = [r for r in caplog.records if getattr(r, "event", "") == "sip.tcp_accept_error"]
        assert len(lines) == 1 and "EMFILE" in lines[0].getMessage()
        # Resuming puts the real listener back: connections are accepted again.
        t._resume_accepting()
        _, w = await asyncio.open_connection("127.0.0.1", t.port)
        await _until(lambda: t.connection_count == 1, "accepted after the pause")
        w.close()
    finally:
        t.close()


def test_uvloop_tcp_message_and_caps() -> None:
    """Issue 10: under uvloop every inbound TCP connection failed an isinstance assertion."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[bytes, int]:
        t, inbox = await _started(max_connections_per_source=1)
        try:
            r1, w1 = await asyncio.open_connection("127.0.0.1", t.port)
            w1.write(OPTIONS)
            data, source = await inbox.get()
            r2, w2 = await asyncio.open_connection("127.0.0.1", t.port)
            assert await _closed_by_peer(r2)
            t.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)
            assert (await asyncio.wait_for(r1.read(100), 2.0)).startswith(b"SIP/2.0 200")
            w1.close()
            w2.close()
            return data, t.counters.connections_rejected_per_source
        finally:
            t.close()

    assert uvloop.run(main()) == (OPTIONS, 1)


async def test_failed_adoption_gives_the_source_slot_back() -> None:
    t, _ = await _started()
    try:
        t._per_source["192.0.2.9"] = 1  # what _on_acceptable takes before adopting
        t._adopting += 1
        dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dead.close()
        await t._adopt(dead, "192.0.2.9")
        assert t._per_source == {} and t._adopting == 0
    finally:
        t.close()
