"""Control API over real loopback HTTP, against a fake ControlTarget."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.control import (
    ControlError,
    ControlServer,
    ControlTarget,
    Limits,
    OriginateRequest,
    bearer_ok,
    host_allowed,
    parse_originate,
    parse_say,
    same_origin,
)
from gateway.control_failure import ControlFailure
from tests.tools.wait import async_wait_until

TOKEN = "s3cret-token"


@dataclass
class FakeTarget:
    is_ready: tuple[bool, str] = (True, "")
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    originated: list[OriginateRequest] = field(default_factory=list)
    said: list[tuple[str, str, str, bool]] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    originate_error: ControlError | None = None
    failure: ControlFailure | None = None  # what originate, hangup and say return instead
    originate_delay: float = 0.0
    crash_on_list: bool = False

    def healthy(self) -> bool:
        return True

    def ready(self) -> tuple[bool, str]:
        return self.is_ready

    def metrics(self) -> tuple[bytes, str]:
        return (
            b"# TYPE srg_calls_total counter\nsrg_calls_total 3\n",
            "text/plain; version=0.0.4; charset=utf-8",
        )

    def list_calls(self) -> list[dict[str, Any]]:
        if self.crash_on_list:
            raise RuntimeError("boom")
        return list(self.calls.values())

    async def hangup(self, call_id: str) -> bool | ControlFailure:
        if self.failure is not None:
            return self.failure
        if call_id not in self.calls:
            return False
        self.hung_up.append(call_id)
        del self.calls[call_id]
        return True

    async def originate(self, request: OriginateRequest) -> str | ControlFailure:
        if self.failure is not None:
            return self.failure
        if self.originate_delay:
            await asyncio.sleep(self.originate_delay)
        if self.originate_error is not None:
            raise self.originate_error
        self.originated.append(request)
        call_id = f"out-{len(self.originated)}@gw"
        self.calls[call_id] = {"call_id": call_id, "state": "calling", "to": request.to}
        return call_id

    def say(self, call_id: str, text: str, role: str, respond: bool) -> bool | ControlFailure:
        if self.failure is not None:
            return self.failure
        if call_id not in self.calls:
            return False
        self.said.append((call_id, text, role, respond))
        return True


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_reply(reader: asyncio.StreamReader, head_only: bool = False) -> HttpReply:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = b""
    if length and not head_only:
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    return HttpReply(status, headers, body)


async def raw(server: ControlServer, data: bytes, head_only: bool = False) -> HttpReply:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 5)
    try:
        writer.write(data)
        await writer.drain()
        return await read_reply(reader, head_only)
    finally:
        writer.close()


def build(
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
    extra: str = "",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode() + (body or b"")


async def request(
    server: ControlServer,
    method: str,
    path: str,
    payload: Any = None,
    token: str | None = None,
) -> HttpReply:
    body = None if payload is None else json.dumps(payload).encode()
    return await raw(server, build(method, path, body, token))


@pytest.fixture
def target() -> FakeTarget:
    return FakeTarget(calls={"abc@host": {"call_id": "abc@host", "state": "talking"}})


@pytest.fixture
async def server(target: FakeTarget) -> AsyncIterator[ControlServer]:
    srv = ControlServer(target, "127.0.0.1", 0)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def secured(target: FakeTarget) -> AsyncIterator[ControlServer]:
    srv = ControlServer(target, "127.0.0.1", 0, token=TOKEN)
    await srv.start()
    yield srv
    await srv.stop()


def test_fake_satisfies_protocol() -> None:
    assert isinstance(FakeTarget(), ControlTarget)


# -- endpoints -------------------------------------------------------------------------------


async def test_healthz(server: ControlServer) -> None:
    reply = await request(server, "GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}
    assert reply.headers["content-type"] == "application/json"


async def test_readyz_ready_and_not_ready(server: ControlServer, target: FakeTarget) -> None:
    reply = await request(server, "GET", "/readyz")
    assert (reply.status, reply.json()) == (200, {"ready": True})
    target.is_ready = (False, "registration sip:100@pbx: 403 Forbidden")
    reply = await request(server, "GET", "/readyz")
    assert reply.status == 503
    assert reply.json() == {"ready": False, "reason": "registration sip:100@pbx: 403 Forbidden"}


async def test_metrics_passes_exposition_through(server: ControlServer) -> None:
    reply = await request(server, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"srg_calls_total 3" in reply.body


async def test_list_calls(server: ControlServer) -> None:
    reply = await request(server, "GET", "/calls")
    assert reply.status == 200
    assert reply.json() == {"calls": [{"call_id": "abc@host", "state": "talking"}]}


async def test_hangup_known_and_unknown(server: ControlServer, target: FakeTarget) -> None:
    reply = await request(server, "DELETE", "/calls/abc%40host")
    assert reply.status == 204
    assert reply.body == b""
    assert target.hung_up == ["abc@host"]
    reply = await request(server, "DELETE", "/calls/abc%40host")
    assert reply.status == 404
    assert "abc@host" in reply.json()["error"]


async def test_call_id_with_slash_is_percent_decoded_per_segment(
    server: ControlServer, target: FakeTarget
) -> None:
    target.calls["a/b"] = {"call_id": "a/b"}
    reply = await request(server, "DELETE", "/calls/a%2Fb")
    assert reply.status == 204
    assert target.hung_up == ["a/b"]


async def test_originate(server: ControlServer, target: FakeTarget) -> None:
    reply = await request(
        server,
        "POST",
        "/calls",
        {
            "to": "sip:200@127.0.0.1:5070",
            "instructions": "Remind the caller about the dentist.",
            "registration": "pbx",
            "from": "+4930123456",
        },
    )
    assert reply.status == 202
    assert reply.json() == {"call_id": "out-1@gw"}
    assert reply.headers["location"] == "/calls/out-1@gw"
    assert target.originated == [
        OriginateRequest(
            to="sip:200@127.0.0.1:5070",
            instructions="Remind the caller about the dentist.",
            registration="pbx",
            from_="+4930123456",
        )
    ]


async def test_originate_number(server: ControlServer, target: FakeTarget) -> None:
    reply = await request(server, "POST", "/calls", {"to": "+49 30 1234-56", "instructions": "x"})
    assert reply.status == 202
    assert target.originated[0].to == "+49 30 1234-56"


@pytest.mark.parametrize(
    ("payload", "field_name"),
    [
        ({"instructions": "x"}, "to"),
        ({"to": "", "instructions": "x"}, "to"),
        ({"to": 42, "instructions": "x"}, "to"),
        ({"to": "not a number", "instructions": "x"}, "to"),
        ({"to": "sip:", "instructions": "x"}, "to"),
        ({"to": "sip:1@h"}, "instructions"),
        ({"to": "sip:1@h", "instructions": ["x"]}, "instructions"),
        ({"to": "sip:1@h", "instructions": "x", "registration": 3}, "registration"),
        ({"to": "sip:1@h", "instructions": "x", "from": "alice smith"}, "from"),
        ({"to": "sip:1@h", "instruction": "x"}, "instruction"),
    ],
)
async def test_originate_validation_names_field(
    server: ControlServer, target: FakeTarget, payload: dict[str, Any], field_name: str
) -> None:
    reply = await request(server, "POST", "/calls", payload)
    assert reply.status == 400
    assert reply.json()["error"].startswith(f"{field_name}:"), reply.json()
    assert target.originated == []


async def test_originate_error_from_application(server: ControlServer, target: FakeTarget) -> None:
    target.originate_error = ControlError(400, "registration: no registration named 'pbx2'")
    reply = await request(
        server, "POST", "/calls", {"to": "100", "instructions": "x", "registration": "pbx2"}
    )
    assert reply.status == 400
    assert reply.json() == {"error": "registration: no registration named 'pbx2'"}


async def test_say(server: ControlServer, target: FakeTarget) -> None:
    reply = await request(server, "POST", "/calls/abc%40host/say", {"text": "Your taxi is here."})
    assert reply.status == 202
    assert target.said == [("abc@host", "Your taxi is here.", "system", True)]
    reply = await request(
        server,
        "POST",
        "/calls/abc%40host/say",
        {"text": "caller pressed 5", "role": "user", "respond": False},
    )
    assert reply.status == 202
    assert target.said[-1] == ("abc@host", "caller pressed 5", "user", False)


async def test_say_errors(server: ControlServer) -> None:
    reply = await request(server, "POST", "/calls/nope/say", {"text": "hi"})
    assert reply.status == 404
    reply = await request(server, "POST", "/calls/abc%40host/say", {"text": "hi", "role": "bot"})
    assert reply.status == 400
    assert reply.json()["error"].startswith("role:")
    reply = await request(server, "POST", "/calls/abc%40host/say", {"text": "hi", "respond": "yes"})
    assert reply.json()["error"].startswith("respond:")
    reply = await request(server, "POST", "/calls/abc%40host/say", {})
    assert reply.json()["error"] == "text: required"


async def test_bad_json_and_non_object(server: ControlServer) -> None:
    reply = await raw(server, build("POST", "/calls", b"{not json"))
    assert reply.status == 400
    assert reply.json()["error"].startswith("body is not valid JSON")
    reply = await raw(server, build("POST", "/calls", b"[1, 2]"))
    assert (reply.status, reply.json()["error"]) == (400, "body: expected a JSON object")
    reply = await raw(server, build("POST", "/calls"))
    assert reply.status == 400


async def test_unknown_path_and_wrong_method(server: ControlServer) -> None:
    reply = await request(server, "GET", "/nope")
    assert reply.status == 404
    assert "error" in reply.json()
    reply = await request(server, "GET", "/calls/abc%40host/say/more")
    assert reply.status == 404
    reply = await request(server, "POST", "/healthz", {})
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    reply = await request(server, "PUT", "/calls")
    assert (reply.status, reply.headers["allow"]) == (405, "GET, POST, HEAD")
    reply = await request(server, "GET", "/calls/abc%40host")
    assert (reply.status, reply.headers["allow"]) == (405, "DELETE")
    reply = await request(server, "GET", "/calls/abc%40host/say")
    assert (reply.status, reply.headers["allow"]) == (405, "POST")


async def test_head_has_no_body(server: ControlServer) -> None:
    reply = await raw(server, build("HEAD", "/healthz"), head_only=True)
    assert reply.status == 200
    assert int(reply.headers["content-length"]) > 0


async def test_application_bug_gives_500_and_server_keeps_serving(
    server: ControlServer, target: FakeTarget
) -> None:
    target.crash_on_list = True
    reply = await request(server, "GET", "/calls")
    assert reply.status == 500
    assert "internal error" in reply.json()["error"]
    assert (await request(server, "GET", "/healthz")).status == 200


async def test_slow_application_gives_504(target: FakeTarget) -> None:
    target.originate_delay = 5.0
    async with ControlServer(target, "127.0.0.1", 0, limits=Limits(handler_timeout=0.2)) as srv:
        reply = await request(srv, "POST", "/calls", {"to": "100", "instructions": "x"})
    assert reply.status == 504


# -- auth ------------------------------------------------------------------------------------


async def test_auth_required_except_probes(secured: ControlServer, target: FakeTarget) -> None:
    """/healthz and /readyz stay open for probes (issue 9); the readiness reason, which can
    name registrars, only comes with the token."""
    assert (await request(secured, "GET", "/healthz")).status == 200
    assert (await request(secured, "GET", "/readyz")).json() == {"ready": True}
    target.is_ready = (False, "registration pbx (sip:100@10.0.0.5): 403 Forbidden")
    reply = await request(secured, "GET", "/readyz")
    assert reply.status == 503 and reply.json() == {"ready": False}
    reply = await request(secured, "GET", "/readyz", token=TOKEN)
    assert reply.status == 503 and "registration pbx" in reply.json()["reason"]
    for method, path in (("GET", "/metrics"), ("GET", "/calls"), ("POST", "/calls")):
        reply = await request(secured, method, path)
        assert reply.status == 401, path
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert "invalid_token" not in reply.headers["www-authenticate"]
        assert reply.json() == {"error": "missing bearer token"}


async def test_wrong_token_rejected(secured: ControlServer, target: FakeTarget) -> None:
    reply = await request(secured, "DELETE", "/calls/abc%40host", token="wrong")
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert target.hung_up == []
    reply = await raw(secured, build("GET", "/calls", extra=f"Authorization: Basic {TOKEN}\r\n"))
    assert reply.status == 401


async def test_right_token_accepted(secured: ControlServer, target: FakeTarget) -> None:
    reply = await request(secured, "GET", "/calls", token=TOKEN)
    assert reply.status == 200
    reply = await request(secured, "DELETE", "/calls/abc%40host", token=TOKEN)
    assert reply.status == 204


def test_bearer_ok() -> None:
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN)
    assert bearer_ok(f"bearer   {TOKEN} ", TOKEN)
    assert not bearer_ok(None, TOKEN)
    assert not bearer_ok(f"Bearer {TOKEN}x", TOKEN)
    assert not bearer_ok("Bearer ", TOKEN)
    assert not bearer_ok(TOKEN, TOKEN)


# -- protocol robustness ---------------------------------------------------------------------


async def test_oversized_body_rejected_without_reading_it(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0, limits=Limits(max_body_bytes=100)) as srv:
        head = b"POST /calls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
        reply = await raw(srv, head)
    assert reply.status == 413
    assert "100000" in reply.json()["error"]
    assert reply.headers["connection"] == "close"


async def test_oversized_head_rejected(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0, limits=Limits(max_head_bytes=1024)) as srv:
        data = build("GET", "/calls", extra=f"X-Big: {'a' * 4000}\r\n")
        reply = await raw(srv, data)
    assert reply.status == 431


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505),
        (b"GET healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"POST /calls HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /calls HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST /calls HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ],
)
async def test_malformed_requests(server: ControlServer, data: bytes, status: int) -> None:
    reply = await raw(server, data)
    assert reply.status == status
    assert "error" in reply.json()


async def test_incomplete_request_times_out(target: FakeTarget) -> None:
    """Slowloris: a client that drips a request head never completes it; the server answers
    408 and closes once the head budget is spent, however steadily bytes arrive."""
    limits = Limits(head_timeout=0.3, body_timeout=0.3)
    async with ControlServer(target, "127.0.0.1", 0, limits=limits) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)

        async def drip() -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(b"GET /calls HTTP/1.1\r\n")
                for _ in range(200):  # 10 s of header lines, never the blank line: longer than
                    # read_reply waits, so only a budget for the whole head passes
                    await asyncio.sleep(0.05)
                    writer.write(b"X-A: b\r\n")
                    await writer.drain()

        dripping = asyncio.create_task(drip())
        try:
            reply = await read_reply(reader)
            assert reply.status == 408
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
            writer.close()


async def test_an_error_response_survives_input_the_server_did_not_read(
    target: FakeTarget,
) -> None:
    """A client still sending after a bad request: closed at once, the server's socket answers
    that input with a TCP reset, which destroys the 400 in the client's socket if the client
    has not read it yet. The server half-closes and drains first (lingering close): the client
    reads the whole response, then a clean end of stream."""
    async with ControlServer(target, "127.0.0.1", 0) as srv:
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)

            async def keep_sending(writer: asyncio.StreamWriter = writer) -> None:
                with contextlib.suppress(ConnectionError):
                    writer.write(b"BAD\r\n\r\n")
                    for _ in range(100):  # still sending while the server answers and closes
                        writer.write(b"x" * 100)
                        await asyncio.sleep(0.001)

            sending = asyncio.create_task(keep_sending())
            try:
                await sending
                reply = await read_reply(reader)
                assert reply.status == 400
                assert await asyncio.wait_for(reader.read(), 5) == b""
            finally:
                sending.cancel()
                writer.close()


async def test_incomplete_body_times_out(target: FakeTarget) -> None:
    limits = Limits(body_timeout=0.2)
    async with ControlServer(target, "127.0.0.1", 0, limits=limits) as srv:
        reply = await raw(srv, b'POST /calls HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"to"')
    assert reply.status == 408


async def test_silent_connection_closed(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0, limits=Limits(head_timeout=0.2)) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        finally:
            writer.close()


async def test_keep_alive_serves_several_requests(server: ControlServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for path in ("/healthz", "/readyz", "/calls"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            reply = await read_reply(reader)
            assert reply.status == 200
            assert reply.headers["connection"] == "keep-alive"
        # Pipelined: two requests in one write, answered in order.
        writer.write(
            b"GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        assert (await read_reply(reader)).status == 200
        last = await read_reply(reader)
        assert (last.status, last.headers["connection"]) == (404, "close")
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


async def test_http10_closes_by_default(server: ControlServer) -> None:
    reply = await raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert reply.headers["connection"] == "close"


async def test_concurrent_requests(server: ControlServer, target: FakeTarget) -> None:
    async def one(i: int) -> int:
        reply = await request(server, "POST", "/calls", {"to": f"{100 + i}", "instructions": "x"})
        return reply.status

    statuses = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(20))), 20)
    assert statuses == [202] * 20
    assert sorted(r.to for r in target.originated) == sorted(str(100 + i) for i in range(20))
    reply = await request(server, "GET", "/calls")
    assert len(reply.json()["calls"]) == 21


async def test_connection_cap(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0, limits=Limits(max_connections=2)) as srv:
        held = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(2)]
        try:
            # Both held connections are being served (the cap counts served connections).
            await async_wait_until(lambda: len(srv._handlers) == 2, 5, "2 connections served")
            reply = await request(srv, "GET", "/healthz")
            assert reply.status == 503
        finally:
            for _, writer in held:
                writer.close()


async def test_urllib_client(server: ControlServer, target: FakeTarget) -> None:
    """A stock HTTP client (what curl/Prometheus-style tools look like) works end to end."""

    def fetch() -> tuple[int, Any, int]:
        with urllib.request.urlopen(f"{server.url}/calls", timeout=5) as resp:
            listed = (resp.status, json.loads(resp.read()))
        post = urllib.request.Request(
            f"{server.url}/calls",
            data=json.dumps({"to": "sip:300@127.0.0.1", "instructions": "hi"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(post, timeout=5) as resp:
            assert resp.status == 202
        try:
            urllib.request.urlopen(
                urllib.request.Request(f"{server.url}/calls/zzz", method="DELETE"), timeout=5
            )
        except urllib.error.HTTPError as exc:
            return listed[0], listed[1], exc.code
        return listed[0], listed[1], 0

    status, listed, delete_status = await asyncio.wait_for(asyncio.to_thread(fetch), 20)
    assert status == 200
    assert listed["calls"][0]["call_id"] == "abc@host"
    assert delete_status == 404
    assert target.originated[0].to == "sip:300@127.0.0.1"


async def test_port_in_use_names_address(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0) as first:
        second = ControlServer(target, "127.0.0.1", first.port)
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            await second.start()


async def test_stop_closes_open_connections(target: FakeTarget) -> None:
    srv = ControlServer(target, "127.0.0.1", 0)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
    await writer.drain()
    assert (await read_reply(reader)).status == 200
    await asyncio.wait_for(srv.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


# -- pure validation ---------------------------------------------------------------------------


def test_parse_originate_and_say_defaults() -> None:
    req = parse_originate({"to": " sip:1@h ", "instructions": "  keep spacing "})
    assert req.to == "sip:1@h"
    assert req.instructions == "  keep spacing "
    assert req.registration is None and req.from_ is None
    say = parse_say({"text": "hello"})
    assert (say.role, say.respond) == ("system", True)


# -- browser defences (issue 9) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("127.0.0.1", True),
        ("[::1]:8080", True),
        ("10.0.0.21:8080", True),  # an IP literal can't be a rebound name
        ("localhost:8080", True),
        ("LOCALHOST.", True),
        ("gw.internal:8080", True),  # in allowed_hosts
        ("evil.example", False),
        ("evil.example:8080", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    assert host_allowed(host, frozenset({"gw.internal"})) is allowed


def test_same_origin() -> None:
    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert same_origin("http://localhost", "localhost:80")
    assert not same_origin("http://evil.example", "127.0.0.1:8080")
    assert not same_origin("http://127.0.0.1:9999", "127.0.0.1:8080")
    assert not same_origin("null", "127.0.0.1:8080")
    assert not same_origin("http://127.0.0.1:8080", None)


async def test_foreign_host_and_cross_origin_refused_before_the_token(
    secured: ControlServer, target: FakeTarget
) -> None:
    for extra, status in (
        ("Host: evil.example\r\n", 421),
        ("Origin: http://evil.example\r\n", 403),
        ("Origin: null\r\n", 403),
    ):
        data = build("DELETE", "/calls/abc%40host", token=TOKEN, extra=extra)
        if extra.startswith("Host"):
            data = data.replace(b"Host: 127.0.0.1\r\n", b"")
        reply = await raw(secured, data)
        assert reply.status == status, extra
        assert not [h for h in reply.headers if h.startswith("access-control-")]
    assert target.hung_up == []
    reply = await raw(secured, build("GET", "/healthz", extra="Host: evil.example\r\n"))
    assert reply.status in (400, 421)  # two Host headers or a foreign one: never served


async def test_allowed_host_served(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0, allowed_hosts=("gw.internal",)) as srv:
        data = build("GET", "/calls").replace(b"Host: 127.0.0.1", b"Host: gw.internal:8080")
        assert (await raw(srv, data)).status == 200


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
async def test_body_must_be_json(
    secured: ControlServer, target: FakeTarget, content_type: str
) -> None:
    body = json.dumps({"to": "sip:300@127.0.0.1", "instructions": "hi"}).encode()
    data = build("POST", "/calls", body, token=TOKEN).replace(
        b"Content-Type: application/json\r\n",
        f"Content-Type: {content_type}\r\n".encode() if content_type else b"",
    )
    reply = await raw(secured, data)
    assert reply.status == 415
    assert target.originated == []
    ok = build("POST", "/calls", body, token=TOKEN).replace(
        b"application/json", b"application/json; charset=utf-8"
    )
    assert (await raw(secured, ok)).status == 202


async def test_metrics_public_opens_metrics_only(target: FakeTarget) -> None:
    async with ControlServer(target, "127.0.0.1", 0, token=TOKEN, metrics_public=True) as srv:
        assert (await request(srv, "GET", "/metrics")).status == 200
        assert (await request(srv, "GET", "/calls")).status == 401


async def test_failure_values_become_http_errors(server: ControlServer, target: FakeTarget) -> None:
    """The gateway returns ControlFailure values (it does not speak HTTP); the API answers with
    their status and `{"error": text}`."""
    target.failure = ControlFailure(409, "the call has no Realtime session (echo mode)")
    reply = await request(server, "POST", "/calls/abc%40host/say", {"text": "hello"})
    assert reply.status == 409 and reply.json() == {"error": target.failure.text}
    target.failure = ControlFailure(503, "the gateway is not accepting calls")
    reply = await request(server, "POST", "/calls", {"to": "sip:a@b", "instructions": "hi"})
    assert reply.status == 503 and reply.json() == {"error": target.failure.text}
    reply = await request(server, "DELETE", "/calls/abc%40host")
    assert reply.status == 503 and reply.json() == {"error": target.failure.text}
    assert target.calls  # nothing was hung up
