"""sip.transport over TLS on loopback (issue 13): certificates from trustme, both event loops.

Each test runs under the stdlib loop and uvloop: TLS goes through each loop's own SSL layer
(asyncio's sslproto, uvloop's), and both must give the caps, the handshake deadline and the
failure logging TCP has."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme

from sip.transport import Transport, TransportAddr
from tests.sip.conftest import Pki

OPTIONS = (
    b"OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
OK = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, TransportAddr]] = asyncio.Queue()

    def __call__(self, data: bytes, source: TransportAddr) -> None:
        self.queue.put_nowait((data, source))

    async def get(self) -> tuple[bytes, TransportAddr]:
        return await asyncio.wait_for(self.queue.get(), 3.0)


async def _tls_transport(pki: Pki, **kw: Any) -> tuple[Transport, Inbox]:
    inbox = Inbox()
    kw.setdefault("tls_context", pki.server())
    t = Transport("127.0.0.1", 0, on_message=inbox, tls_port=0, **kw)
    await t.start()
    return t, inbox


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(100), 3.0) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


def test_tls_listener_receives_and_answers_on_the_same_connection(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        t, inbox = await _tls_transport(pki)
        try:
            assert t.tls_port not in (0, t.port)
            r, w = await asyncio.open_connection(
                "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
            )
            w.write(b"\r\n\r\n" + OPTIONS)
            data, source = await inbox.get()
            assert data == OPTIONS
            assert source.proto == "tls" and source.conn is not None
            assert await asyncio.wait_for(r.readexactly(2), 3.0) == b"\r\n"  # the pong
            t.send(OK, source)
            assert (await asyncio.wait_for(r.read(100), 3.0)).startswith(b"SIP/2.0 200")
            assert t.connection_count == 1 and t.counters.keepalives == 1
            w.close()
        finally:
            t.close()

    loop_run(main)


def test_default_tls_port_is_5061(pki: Pki) -> None:
    assert Transport("127.0.0.1", 0, tls_context=pki.server()).tls_port == 5061
    assert Transport("127.0.0.1", 0).tls_port == 0
    with pytest.raises(ValueError, match="server-side"):
        Transport("127.0.0.1", 0, tls_context=pki.client())


def test_outbound_tls_is_verified_and_reused(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        server, server_inbox = await _tls_transport(pki)
        client, client_inbox = await _tls_transport(pki, tls_client_context=pki.client())
        try:
            dest = TransportAddr("tls", "127.0.0.1", server.tls_port, server_name="localhost")
            client.send(OPTIONS, dest)
            _, source = await server_inbox.get()
            assert source.proto == "tls"
            server.send(OK, source)
            data, back = await client_inbox.get()
            assert data.startswith(b"SIP/2.0 200") and back.proto == "tls"
            client.send(OPTIONS, dest)  # a second request: the same connection
            await server_inbox.get()
            assert client.connection_count == 1 and server.connection_count == 1
            # A keep-alive ping on that flow is answered with a pong.
            conn = client.ping(dest)
            assert conn is not None
            await _until(lambda: conn.pongs == 1, "pong")
            assert client.close_stream(dest)
            assert client.stream_to(dest) is None
        finally:
            client.close()
            server.close()

    loop_run(main)


def test_wrong_hostname_is_refused_and_logged_once(
    loop_run: Any, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> list[Exception]:
        server, server_inbox = await _tls_transport(pki)
        client, _ = await _tls_transport(pki, tls_client_context=pki.client())
        errors: list[Exception] = []
        client.on_send_error = lambda _dest, exc: errors.append(exc)
        try:
            dest = TransportAddr("tls", "127.0.0.1", server.tls_port, server_name="evil.example")
            client.send(OPTIONS, dest)
            client.send(OPTIONS, dest)
            await _until(lambda: len(errors) >= 1, "the handshake failure")
            assert server_inbox.queue.empty()
            assert client.counters.tls_handshake_failures >= 1
            assert client.connection_count == 0
        finally:
            client.close()
            server.close()
        return errors

    with caplog.at_level(logging.WARNING, logger="sip"):
        errors = loop_run(main)
    assert isinstance(errors[0], ssl.SSLCertVerificationError)
    lines = [r for r in caplog.records if getattr(r, "event", "") == "sip.tls_connect_failed"]
    assert len(lines) == 1 and "evil.example" in lines[0].getMessage()
    assert "certificate verification failed" in lines[0].getMessage()


def test_no_client_context_fails_cleanly(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        server, _ = await _tls_transport(pki)
        client = Transport("127.0.0.1", 0)
        await client.start()
        errors: list[Exception] = []
        client.on_send_error = lambda _dest, exc: errors.append(exc)
        try:
            client.send(OPTIONS, TransportAddr("tls", "127.0.0.1", server.tls_port))
            await _until(lambda: bool(errors), "error")
            assert "no TLS client context" in str(errors[0])
        finally:
            client.close()
            server.close()

    loop_run(main)


def test_mutual_tls_refuses_a_client_without_a_valid_certificate(
    loop_run: Any, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        server, inbox = await _tls_transport(pki, tls_context=pki.server(require_client_cert=True))
        try:
            # No certificate at all.
            bare = Transport("127.0.0.1", 0, tls_client_context=pki.client())
            await bare.start()
            # A certificate from a CA the server does not trust.
            other = trustme.CA()
            untrusted_ctx = pki.client()
            other.issue_cert("client.example.test").configure_cert(untrusted_ctx)
            untrusted = Transport("127.0.0.1", 0, tls_client_context=untrusted_ctx)
            await untrusted.start()
            good = Transport("127.0.0.1", 0, tls_client_context=pki.client(with_cert=True))
            await good.start()
            dest = TransportAddr("tls", "127.0.0.1", server.tls_port, server_name="localhost")
            bare.send(OPTIONS, dest)
            untrusted.send(OPTIONS, dest)
            await _until(lambda: server.counters.tls_handshake_failures == 2, "two refusals")
            good.send(OPTIONS, dest)
            data, source = await inbox.get()
            assert data == OPTIONS and source.proto == "tls"
            assert inbox.queue.empty()  # nothing from the refused clients
            assert server.connection_count == 1
            for t in (bare, untrusted, good):
                t.close()
        finally:
            server.close()

    with caplog.at_level(logging.WARNING, logger="sip"):
        loop_run(main)
    lines = [r for r in caplog.records if getattr(r, "event", "") == "sip.tls_handshake_failed"]
    assert len(lines) == 1  # rate-limited: one line for the burst, with the reason
    assert "127.0.0.1" in lines[0].getMessage()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused_and_the_context_is_not_overridden(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        server_ctx = pki.server()
        t, inbox = await _tls_transport(pki, tls_context=server_ctx)
        try:
            old = pki.client()
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.open_connection(
                    "127.0.0.1", t.tls_port, ssl=old, server_hostname="localhost"
                )
            assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
            assert inbox.queue.empty()
            # A modern client still gets in.
            _, w = await asyncio.open_connection(
                "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
            )
            w.write(OPTIONS)
            await inbox.get()
            w.close()
        finally:
            t.close()

    loop_run(main)


def test_tls_connections_are_capped_per_source_and_in_total(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        t, inbox = await _tls_transport(pki, max_connections_per_source=2, max_connections=3)
        try:
            streams = []
            for _ in range(2):
                streams.append(
                    await asyncio.open_connection(
                        "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
                    )
                )
            await _until(lambda: t.connection_count == 2, "two TLS connections")
            # The third from 127.0.0.1 is closed before any handshake.
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                r3, _w3 = await asyncio.open_connection(
                    "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
                )
                assert await _closed_by_peer(r3)
                raise ConnectionError("closed")
            assert t.counters.connections_rejected_per_source == 1
            # Another source fills the total cap; then a fourth source is refused as well.
            r4, w4 = await asyncio.open_connection(
                "127.0.0.1",
                t.tls_port,
                ssl=pki.client(),
                server_hostname="localhost",
                local_addr=("127.0.0.2", 0),
            )
            w4.write(OPTIONS)
            _, source = await inbox.get()
            assert source.host == "127.0.0.2"
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                r5, _ = await asyncio.open_connection(
                    "127.0.0.1",
                    t.tls_port,
                    ssl=pki.client(),
                    server_hostname="localhost",
                    local_addr=("127.0.0.3", 0),
                )
                assert await _closed_by_peer(r5)
                raise ConnectionError("closed")
            assert t.counters.connections_rejected == 1
            for _, w in [*streams, (r4, w4)]:
                w.close()
        finally:
            t.close()

    loop_run(main)


def test_a_handshake_that_never_completes_is_closed_at_the_deadline(
    loop_run: Any, pki: Pki
) -> None:
    async def main() -> None:
        t, _ = await _tls_transport(pki, message_deadline=0.3, max_connections_per_source=1)
        try:
            # Plain TCP to the TLS port, and then silence: no ClientHello ever.
            r, w = await asyncio.open_connection("127.0.0.1", t.tls_port)
            # While it hangs in the handshake it holds its source's slot.
            await _until(lambda: t._per_source.get("127.0.0.1") == 1, "slot taken")
            assert await _closed_by_peer(r)
            await _until(lambda: t._per_source == {} and t._adopting == 0, "slot given back")
            assert t.counters.tls_handshake_failures == 1
            assert t.counters.connections_deadline_closed == 1
            w.close()
        finally:
            t.close()

    loop_run(main)


def test_new_server_certificate_applies_to_new_connections(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        t, inbox = await _tls_transport(pki)
        try:
            old_r, old_w = await asyncio.open_connection(
                "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
            )
            renewed = Pki()  # another CA: a client that trusts only it proves the swap
            t.set_tls_contexts(server=renewed.server(), client=renewed.client())
            assert t.tls_client_context is not None
            _, new_w = await asyncio.open_connection(
                "127.0.0.1", t.tls_port, ssl=renewed.client(), server_hostname="localhost"
            )
            new_w.write(OPTIONS)
            await inbox.get()
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection(
                    "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
                )
            old_w.write(OPTIONS)  # the open connection keeps working
            _, source = await inbox.get()
            t.send(OK, source)
            assert (await asyncio.wait_for(old_r.read(100), 3.0)).startswith(b"SIP/2.0 200")
            with pytest.raises(ValueError):
                t.set_tls_contexts(server=pki.client())
            for w in (old_w, new_w):
                w.close()
        finally:
            t.close()

    loop_run(main)


def test_a_connection_verified_for_one_name_is_not_reused_for_another(
    loop_run: Any, pki: Pki
) -> None:
    async def main() -> None:
        server, inbox = await _tls_transport(pki)
        client, _ = await _tls_transport(pki, tls_client_context=pki.client())
        errors: list[TransportAddr] = []
        client.on_send_error = lambda dest, _exc: errors.append(dest)
        try:
            good = TransportAddr("tls", "127.0.0.1", server.tls_port, server_name="localhost")
            bad = TransportAddr("tls", "127.0.0.1", server.tls_port, server_name="bad.example")
            client.send(OPTIONS, good)
            client.send(OPTIONS, bad)  # same address, while the first connect is under way
            await inbox.get()
            await _until(lambda: len(errors) == 1, "the bad name refused")
            assert errors[0].server_name == "bad.example"
            client.send(OPTIONS, bad)  # the open "localhost" stream is not used for it either
            await _until(lambda: len(errors) == 2, "refused again")
            assert client.stream_to(bad) is None and client.stream_to(good) is not None
            client.send(OPTIONS, good)
            await inbox.get()
            assert inbox.queue.empty() and client.connection_count == 1
        finally:
            client.close()
            server.close()

    loop_run(main)


def test_tls_accept_failure_pauses_both_listeners_and_resumes(loop_run: Any, pki: Pki) -> None:
    import errno
    import socket

    class Failing:
        def __init__(self, real: socket.socket) -> None:
            self.real = real

        def fileno(self) -> int:
            return self.real.fileno()

        def accept(self) -> tuple[socket.socket, tuple[str, int]]:
            raise OSError(errno.EMFILE, "Too many open files")

    async def main() -> None:
        t, inbox = await _tls_transport(pki)
        try:
            t._on_acceptable(Failing(t._tls_listeners[0]), "tls")  # type: ignore[arg-type]
            assert t._accept_paused is not None and t.counters.accept_errors == 1
            t._accept_paused.cancel()
            t._accept_paused = None
            t._resume_accepting()
            _, w = await asyncio.open_connection(
                "127.0.0.1", t.tls_port, ssl=pki.client(), server_hostname="localhost"
            )
            w.write(OPTIONS)
            _, source = await inbox.get()
            assert source.proto == "tls"
            w.close()
        finally:
            t.close()

    loop_run(main)
