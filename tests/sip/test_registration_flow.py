"""Registrations over TCP and TLS (issue 13): one connection for REGISTER and its refreshes,
RFC 5626 CRLF keep-alives on it, and a dead flow (no pong) re-registered on a new connection.
The keep-alive schedule is a pure core (sip/keepalive.py) tested on a fake clock; the driver runs
on a fake clock too, against a small stream registrar on loopback, and is poked when the clock
moves."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from sip.keepalive import DEAD, PING, KeepAliveCore, KeepAlivePolicy
from sip.message import Request, StreamFramer, parse_message
from sip.registration import REGISTERED, RegistrationClient, RegistrationCore
from sip.timers import TimerConfig
from sip.transport import Transport
from sip.useragent import UserAgent
from tests.sip.conftest import Pki
from tests.sip.test_registration import ok_with_contact

FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1)


# -- the pure keep-alive schedule ------------------------------------------------------------------
def test_keepalive_schedule_ping_pong_and_dead_flow() -> None:
    ka = KeepAliveCore(KeepAlivePolicy(interval=30, pong_timeout=10, spread=0.2), lambda: 0.5)
    assert not ka.running and ka.next_deadline is None and ka.due(1000) is None
    ka.start(0.0)
    assert ka.next_deadline == pytest.approx(27.0)  # 30 * (1 - 0.2 * 0.5)
    assert ka.due(26.9) is None
    assert ka.due(27.0) == PING
    ka.pinged(27.0)
    assert ka.next_deadline == pytest.approx(37.0) and ka.due(36.9) is None
    ka.pong(30.0)  # the next ping is one interval after the previous one
    assert ka.next_deadline == pytest.approx(54.0) and ka.due(53.0) is None
    assert ka.due(54.0) == PING
    ka.pinged(54.0)
    assert ka.due(63.9) is None
    assert ka.due(64.0) == DEAD
    ka.flow_dead()
    assert not ka.running and ka.dead_flows == 1 and (ka.pings, ka.pongs) == (2, 1)
    ka.pong(70.0)  # a late CRLF after the flow was given up changes nothing
    assert ka.pongs == 1 and not ka.running


def test_keepalive_interval_spread_is_80_to_100_percent() -> None:
    for r, expected in ((0.0, 100.0), (1.0, 80.0)):
        ka = KeepAliveCore(KeepAlivePolicy(interval=100), lambda r=r: r)
        ka.start(0.0)
        assert ka.next_deadline == pytest.approx(expected)
    with pytest.raises(ValueError):
        KeepAlivePolicy(interval=0)
    with pytest.raises(ValueError):
        KeepAlivePolicy(spread=1.0)


def test_core_flow_failed_registers_again_now_keeping_state() -> None:
    core = RegistrationCore(60)
    core.start(0.0)
    from sip.registration import Outcome

    core.on_outcome(Outcome(200, granted=60), 0.0)
    assert core.next_at == 30.0
    core.flow_failed(12.0)
    assert core.next_at == 12.0 and core.state == REGISTERED


# -- the driver against a stream registrar -------------------------------------------------------
class StreamRegistrar:
    """A TCP or TLS registrar on loopback: answers REGISTER with 200, pongs pings unless told
    not to, and records which connection each request and ping came on."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl = ssl_context
        self.requests: list[tuple[int, Request]] = []  # (connection number, request)
        self.pings: list[int] = []
        self.answer_pings = True
        self.connections = 0
        self.closed: list[int] = []
        self.changed = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> StreamRegistrar:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                before = framer.keepalives_received
                for raw in framer.feed(data):
                    req = parse_message(raw)
                    assert isinstance(req, Request)
                    self.requests.append((number, req))
                    writer.write(ok_with_contact(req).to_bytes())
                for _ in range(framer.keepalives_received - before):
                    self.pings.append(number)
                    if self.answer_pings:
                        writer.write(b"\r\n")
                self.changed.set()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.append(number)
            self.changed.set()
            writer.close()

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        async with asyncio.timeout(5):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.mark.parametrize("proto", ["tcp", "tls", "sips"])
def test_registration_keeps_its_connection_pings_and_replaces_a_dead_flow(
    loop_run: Any, pki: Pki, proto: str
) -> None:
    async def main() -> None:
        now = [0.0]
        reg = await StreamRegistrar(pki.server() if proto != "tcp" else None).start()
        transport = Transport("127.0.0.1", 0, tls_client_context=pki.client())
        ua = UserAgent(transport, timers=FAST)
        await ua.start()
        uri = {
            "tcp": f"sip:127.0.0.1:{reg.port};transport=tcp",
            "tls": f"sip:127.0.0.1:{reg.port};transport=tls",
            "sips": f"sips:localhost:{reg.port}",
        }[proto]
        client = RegistrationClient(
            ua,
            uri,
            "gateway",
            "secret",
            expires=60,
            clock=lambda: now[0],
            request_timeout=2.0,
            keepalive=KeepAlivePolicy(interval=20, pong_timeout=10),
            keepalive_random=lambda: 0.0,
        )

        def tick(t: float) -> None:
            now[0] = t
            client.poke()

        try:
            await client.start()
            await reg.until(lambda: len(reg.requests) == 1, "REGISTER")
            await _until(lambda: client.state == REGISTERED)
            first = reg.requests[0][1]
            contact = first.headers.get("Contact") or ""
            if proto == "sips":
                assert contact.startswith("<sips:gateway@127.0.0.1:")
            else:
                assert f";transport={proto}>" in contact
            assert first.top_via is not None and first.top_via.transport == proto.upper().replace(
                "SIPS", "TLS"
            )
            # t=20: the keep-alive ping goes on the registration's connection; pong back.
            tick(20.0)
            await reg.until(lambda: reg.pings == [1], "ping")
            # t=30: the refresh reuses the same connection; the pong was seen.
            tick(30.0)
            await reg.until(lambda: len(reg.requests) == 2, "refresh")
            assert [n for n, _ in reg.requests] == [1, 1]
            await _until(lambda: client.core.next_at == 60.0)  # the 200 was processed at t=30
            assert client.keepalive is not None and client.keepalive.pongs == 1
            assert transport.connection_count == 1
            # The flow dies silently: the ping at t=40 gets no pong; at t=50 it is dead.
            reg.answer_pings = False
            tick(40.0)
            await reg.until(lambda: reg.pings == [1, 1], "second ping")
            tick(49.0)
            await asyncio.sleep(0)  # the driver looks and waits on
            assert len(reg.requests) == 2
            tick(50.0)
            await reg.until(lambda: len(reg.requests) == 3, "re-REGISTER")
            assert reg.requests[2][0] == 2  # on a new connection
            await reg.until(lambda: 1 in reg.closed, "old flow closed")
            await _until(lambda: client.core.next_at == 80.0)  # re-registered at t=50
            assert client.keepalive.next_deadline == 70.0
            assert client.keepalive.dead_flows == 1
            assert client.state == REGISTERED
            # Keep-alives carry on on the new flow.
            reg.answer_pings = True
            tick(70.0)
            await reg.until(lambda: reg.pings[-1:] == [2], "ping on the new flow")
        finally:
            await client.stop(timeout=1.0)
            await ua.close()
            reg.close()

    loop_run(main)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - polling a plain attribute
            await asyncio.sleep(0.01)


async def test_udp_registration_sends_no_keepalives(pki: Pki) -> None:
    from tests.sip.test_registration import Registrar

    now = [0.0]
    reg = await Registrar(lambda r, req: ok_with_contact(req)).start()
    ua = UserAgent(Transport("127.0.0.1", 0), timers=FAST)
    await ua.start()
    client = RegistrationClient(
        ua, f"sip:127.0.0.1:{reg.port}", "gateway", "pw", expires=60, clock=lambda: now[0]
    )
    try:
        await client.start()
        await reg.wait_for(1)
        await _until(lambda: client.state == REGISTERED)
        assert client.keepalive is not None and not client.keepalive.running
        assert "transport=" not in (reg.requests[0].headers.get("Contact") or "")
    finally:
        await client.stop(timeout=1.0)
        await ua.close()
        reg.close()
