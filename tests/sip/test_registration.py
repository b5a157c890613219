"""REGISTER client: the pure core with a fake clock, and the driver against an in-test registrar
on loopback UDP (401 MD5/SHA-256, 407, stale nonces, wrong password, 423, refresh, unregister)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sip.auth import DigestServer
from sip.message import Request, Response, parse_message
from sip.registration import (
    FAILED,
    REGISTERED,
    REGISTERING,
    UNREGISTERED,
    Backoff,
    Outcome,
    RegistrationClient,
    RegistrationCore,
    granted_expiry,
)
from sip.timers import TimerConfig
from sip.transport import Transport
from sip.useragent import UserAgent

FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1)


# -- pure core, fake clock ---------------------------------------------------------------------
def test_refresh_at_half_or_margin_before_expiry() -> None:
    core = RegistrationCore(3600, Backoff(refresh_margin=30))
    core.start(now=100.0)
    assert core.next_at == 100.0
    core.on_outcome(Outcome(200, granted=3600), now=100.0)
    assert core.state == REGISTERED and core.next_at == 100.0 + 3570
    core.on_outcome(Outcome(200, granted=60), now=200.0)  # registrar shortened it
    assert core.next_at == 200.0 + 30 and core.expires_at == 260.0
    core.on_outcome(Outcome(200, granted=None), now=300.0)  # nothing granted: what we asked
    assert core.granted == 3600


def test_backoff_doubles_to_cap_and_resets_on_success() -> None:
    core = RegistrationCore(300, Backoff(min_backoff=2, max_backoff=20))
    core.start(0.0)
    delays = []
    now = 0.0
    for _ in range(6):
        core.on_outcome(Outcome(None, reason="timeout"), now)
        delays.append(core.next_at - now)
        now = core.next_at
    assert delays == [2, 4, 8, 16, 20, 20]
    assert core.state == FAILED and core.reason == "timeout"
    core.on_outcome(Outcome(200, granted=300), now)
    assert core.failures == 0 and core.state == REGISTERED
    core.on_outcome(Outcome(500, reason="500 Server Error"), now)
    assert core.next_at - now == 2  # back to the minimum


def test_503_retry_after_honoured() -> None:
    core = RegistrationCore(300)
    core.start(0.0)
    core.on_outcome(Outcome(503, retry_after=42), now=10.0)
    assert core.next_at == 52.0 and core.state == FAILED


def test_423_raises_expires_and_retries_now() -> None:
    core = RegistrationCore(60)
    core.start(0.0)
    core.on_outcome(Outcome(423, min_expires=600), now=5.0)
    assert core.expires == 600 and core.next_at == 5.0 and core.state == REGISTERING
    # a 423 that does not raise the interval is a failure, not a loop
    core.on_outcome(Outcome(423, min_expires=600), now=6.0)
    assert core.state == FAILED and core.next_at > 6.0


def test_failed_refresh_keeps_binding_until_it_expires() -> None:
    core = RegistrationCore(100, Backoff(min_backoff=2, refresh_margin=30))
    core.start(0.0)
    core.on_outcome(Outcome(200, granted=100), now=0.0)
    core.on_outcome(Outcome(None), now=70.0)  # refresh timed out; binding valid until 100
    assert core.state == REGISTERED and core.next_at == 72.0


def test_granted_expiry_prefers_our_contact() -> None:
    resp = Response(
        200,
        "OK",
        [
            ("Contact", "<sip:other@10.0.0.9:5060>;expires=3600"),
            ("Contact", "<sip:gw@127.0.0.1:5070>;expires=120"),
            ("Expires", "900"),
        ],
    )
    assert granted_expiry(resp, "sip:gw@127.0.0.1:5070") == 120
    assert granted_expiry(resp, "sip:gw@127.0.0.1:5999") == 900
    assert granted_expiry(Response(200, "OK", []), "sip:gw@h") is None


# -- in-test registrar -------------------------------------------------------------------------
class Registrar(asyncio.DatagramProtocol):
    """Loopback registrar; `policy(req)` returns the response (or None to stay silent)."""

    def __init__(self, policy: Callable[[Registrar, Request], Response | None]) -> None:
        self.policy = policy
        self.requests: list[Request] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> Registrar:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        req = parse_message(data)
        assert isinstance(req, Request)
        self.requests.append(req)
        self.arrived.set()
        resp = self.policy(self, req)
        if resp is not None and self.transport is not None:
            self.transport.sendto(resp.to_bytes(), addr)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def ok_with_contact(req: Request, expires: int | None = None) -> Response:
    contact = req.headers.get("Contact") or ""
    asked = int(req.headers.get("Expires") or "0")
    granted = asked if expires is None else expires
    uri_part = contact.split(";expires")[0]
    return req.make_response(
        200, "OK", to_tag="reg", headers=[("Contact", f"{uri_part};expires={granted}")]
    )


def digest_policy(
    server: DigestServer, header: str = "WWW-Authenticate", stale_once: bool = False
) -> Callable[[Registrar, Request], Response | None]:
    answer_header = "Authorization" if header == "WWW-Authenticate" else "Proxy-Authorization"
    status = 401 if header == "WWW-Authenticate" else 407
    state = {"stale_sent": False}

    def policy(reg: Registrar, req: Request) -> Response:
        auth = req.headers.get(answer_header)
        if auth:
            result = server.verify("REGISTER", auth)
            if result.ok:
                if stale_once and not state["stale_sent"]:
                    state["stale_sent"] = True
                    return req.make_response(
                        status, None, to_tag="reg", headers=[(header, server.challenge(stale=True))]
                    )
                return ok_with_contact(req)
        return req.make_response(status, None, to_tag="reg", headers=[(header, server.challenge())])

    return policy


@pytest.fixture
async def ua():
    agent = UserAgent(Transport("127.0.0.1", 0), timers=FAST)
    await agent.start()
    yield agent
    await agent.close()


async def _registered(client: RegistrationClient, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while client.state != REGISTERED:  # noqa: ASYNC110 - polling a plain attribute
            await asyncio.sleep(0.01)


def _client(ua: UserAgent, reg: Registrar, password: str = "secret", **kw) -> RegistrationClient:
    return RegistrationClient(
        ua,
        f"sip:127.0.0.1:{reg.port}",
        kw.pop("username", "gateway"),
        password,
        expires=kw.pop("expires", 60),
        request_timeout=kw.pop("request_timeout", 1.0),
        **kw,
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_register_with_401_digest(ua: UserAgent, algorithm: str) -> None:
    server = DigestServer("gateway-test", "gateway", "secret", algorithm=algorithm)
    reg = await Registrar(digest_policy(server)).start()
    states: list[str] = []
    client = _client(ua, reg, on_state=lambda c, state, reason: states.append(state))
    try:
        await client.start()
        await _registered(client)
        first, second = reg.requests[:2]
        assert first.headers.get("Authorization") is None
        auth = second.headers.get("Authorization") or ""
        assert f"algorithm={algorithm}" in auth and "qop=auth" in auth and "nc=00000001" in auth
        assert first.call_id == second.call_id
        assert second.cseq[0] == first.cseq[0] + 1
        assert client.core.granted == 60 and states == [REGISTERED]
        assert (second.headers.get("Contact") or "").startswith("<sip:gateway@127.0.0.1:")
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_register_with_407_proxy_auth(ua: UserAgent) -> None:
    server = DigestServer("proxy", "gateway", "secret")
    reg = await Registrar(digest_policy(server, header="Proxy-Authenticate")).start()
    client = _client(ua, reg)
    try:
        await client.start()
        await _registered(client)
        assert reg.requests[1].headers.get("Proxy-Authorization")
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_stale_nonce_retried_silently(ua: UserAgent) -> None:
    server = DigestServer("gateway-test", "gateway", "secret")
    reg = await Registrar(digest_policy(server, stale_once=True)).start()
    client = _client(ua, reg)
    try:
        await client.start()
        await _registered(client)
        assert len(reg.requests) == 3  # challenge, stale=true, accepted
        assert client.core.failures == 0
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_wrong_password_gives_up_without_loop(ua: UserAgent) -> None:
    server = DigestServer("gateway-test", "gateway", "secret")
    reg = await Registrar(digest_policy(server)).start()
    reasons: list[tuple[str, str]] = []
    client = _client(
        ua,
        reg,
        password="wrong",
        policy=Backoff(min_backoff=30),
        on_state=lambda c, state, reason: reasons.append((state, reason)),
    )
    try:
        await client.start()
        async with asyncio.timeout(5):
            while client.state != FAILED:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        count = len(reg.requests)
        # initial + answers to at most two fresh nonces (sip.auth's policy), then it backs off
        assert 2 <= count <= 3
        # It backs off: the core's next REGISTER is min_backoff away (no wait needed to see it).
        assert client.core.next_at - client.clock() >= 29.0
        assert len(reg.requests) == count
        assert reasons and reasons[0][0] == FAILED and "authentication failed" in reasons[0][1]
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_423_interval_too_brief(ua: UserAgent) -> None:
    def policy(reg: Registrar, req: Request) -> Response:
        if int(req.headers.get("Expires") or "0") < 600:
            return req.make_response(423, None, to_tag="r", headers=[("Min-Expires", "600")])
        return ok_with_contact(req)

    reg = await Registrar(policy).start()
    client = _client(ua, reg, expires=60)
    try:
        await client.start()
        await _registered(client)
        assert [r.headers.get("Expires") for r in reg.requests] == ["60", "600"]
        assert client.core.granted == 600
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_refresh_before_expiry_same_call_id(ua: UserAgent) -> None:
    reg = await Registrar(lambda r, req: ok_with_contact(req, expires=1)).start()
    client = _client(ua, reg, policy=Backoff(refresh_margin=30))
    try:
        await client.start()
        await reg.wait_for(3)  # granted 1 s -> refreshed every 0.5 s
        ids = {r.call_id for r in reg.requests}
        cseqs = [r.cseq[0] for r in reg.requests]
        assert len(ids) == 1 and cseqs == sorted(cseqs) and len(set(cseqs)) == len(cseqs)
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_backoff_after_timeout_then_recovers(ua: UserAgent) -> None:
    answers = {"n": 0}

    def policy(reg: Registrar, req: Request) -> Response | None:
        answers["n"] += 1
        return None if answers["n"] <= 1 else ok_with_contact(req)

    reg = await Registrar(policy).start()
    client = _client(ua, reg, request_timeout=0.2, policy=Backoff(min_backoff=0.1))
    try:
        await client.start()
        await _registered(client)
        assert client.core.failures == 0
        # the first (unanswered) REGISTER was retransmitted (Timer E) with the same CSeq
        assert reg.requests[0].cseq == reg.requests[1].cseq
    finally:
        await client.stop(timeout=0.5)
        reg.close()


async def test_stop_unregisters(ua: UserAgent) -> None:
    reg = await Registrar(lambda r, req: ok_with_contact(req)).start()
    states: list[str] = []
    client = _client(ua, reg, on_state=lambda c, state, reason: states.append(state))
    await client.start()
    await _registered(client)
    try:
        assert await client.stop(timeout=1.0) is True
        last = reg.requests[-1]
        assert last.headers.get("Expires") == "0"
        assert (last.headers.get("Contact") or "").endswith(";expires=0")
        assert client.state == UNREGISTERED and states[-1] == UNREGISTERED
    finally:
        reg.close()


async def test_several_registrations_at_once(ua: UserAgent) -> None:
    server_a = DigestServer("realm-a", "alice", "pa")
    server_b = DigestServer("realm-b", "bob", "pb")
    reg_a = await Registrar(digest_policy(server_a)).start()
    reg_b = await Registrar(digest_policy(server_b)).start()
    a = _client(ua, reg_a, password="pa", username="alice")
    b = _client(ua, reg_b, password="pb", username="bob")
    try:
        await asyncio.gather(a.start(), b.start())
        await asyncio.gather(_registered(a), _registered(b))
        assert a.call_id != b.call_id
        assert reg_a.requests[-1].headers.get("To") == "<sip:alice@127.0.0.1>"
        assert reg_b.requests[-1].headers.get("To") == "<sip:bob@127.0.0.1>"
    finally:
        await asyncio.gather(a.stop(timeout=0.5), b.stop(timeout=0.5))
        reg_a.close()
        reg_b.close()
