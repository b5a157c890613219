"""Attacks on the control API and on originated calls, against `python -m gateway run` (issue 9).

- The API is closed by default: no token -> 401 (with `WWW-Authenticate: Bearer`), a
  `text/plain` POST (what an HTML form or a CORS-simple fetch can send) -> 415, a foreign
  `Host` (DNS rebinding: evil.example resolving to 127.0.0.1) -> 421, a cross-origin request
  -> 403. /healthz and /readyz answer probes without the token. With neither token_env nor an
  existing token_file, the gateway generates the token into a 0600 file, and that token works.
- Credential phishing: `POST /calls` to a URI the API client chose, whose host answers the
  INVITE with 401. The trunk's password must not answer it (a digest response can be cracked
  offline and replayed against the registrar): the responder receives no INVITE with
  Authorization and the API reports the refusal naming the host. The positive control: the
  same challenge from the registrar's own address is answered.
- Caller-ID spoofing: a `from` outside the registration's username and allowed_caller_ids is
  refused (403) before any INVITE leaves.

The responders are raw UDP sockets in the test, one on 127.0.0.1 (the registrar) and one on
127.0.0.2 (the foreign host): loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.tools.control import TEST_CONTROL_TOKEN, auth_header
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.ports import InteropPorts

pytestmark = pytest.mark.interop

FOREIGN = "127.0.0.2"
TRUNK_USER = "trunkuser"
CHALLENGE = 'WWW-Authenticate: Digest realm="trunk", nonce="8f3a1c", qop="auth", algorithm=MD5'


# -- a raw HTTP client (http.client adds Host unless given) ------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def api(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=40)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def post_json(
    base: str, path: str, payload: dict[str, Any], token: str = TEST_CONTROL_TOKEN
) -> Reply:
    return api(
        base,
        "POST",
        path,
        json.dumps(payload).encode(),
        {**auth_header(token), "Content-Type": "application/json"},
    )


def control_url(gw: GatewayProcess) -> str:
    url = gw.wait_event("gateway.started")["control"]
    assert url, "the control API did not start"
    return str(url)


# -- a scripted SIP responder ------------------------------------------------------------------
@dataclass
class Responder:
    """Answers REGISTER with 200, an INVITE without Authorization with 401 + a digest
    challenge, an INVITE with Authorization with 486; records every request it receives."""

    host: str
    port: int
    requests: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, self.port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"responder-{self.host}")
        self._thread.start()

    @property
    def uri_host(self) -> str:
        return f"{self.host}:{self.port}"

    def invites(self) -> list[str]:
        with self.changed:
            return [r for r in self.requests if r.startswith("INVITE ")]

    def wait_invites(self, count: int, timeout: float = 10.0) -> list[str]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.invites()) >= count, timeout)
            return self.invites()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            method = text.split(" ", 1)[0]
            if method.startswith("SIP/"):
                continue
            with self.changed:
                self.requests.append(text)
                self.changed.notify_all()
            if method == "REGISTER":
                contact = _header(text, "Contact") or ""
                self._answer(text, addr, 200, "OK", [f"Contact: {contact}", "Expires: 60"])
            elif method == "INVITE":
                if _header(text, "Authorization") is None:
                    self._answer(text, addr, 401, "Unauthorized", [CHALLENGE])
                else:
                    self._answer(text, addr, 486, "Busy Here", [])
            # ACK (for the 401/486): nothing to answer

    def _answer(
        self, request: str, addr: tuple[str, int], status: int, reason: str, extra: list[str]
    ) -> None:
        to = _header(request, "To") or ""
        if status >= 200 and ";tag=" not in to and request.startswith("INVITE "):
            to += ";tag=resp1"
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in _headers(request, "Via")]
        lines += [
            f"From: {_header(request, 'From')}",
            f"To: {to}",
            f"Call-ID: {_header(request, 'Call-ID')}",
            f"CSeq: {_header(request, 'CSeq')}",
            *extra,
            "Content-Length: 0",
        ]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), addr)


def _headers(message: str, name: str) -> list[str]:
    head = message.split("\r\n\r\n", 1)[0]
    pattern = re.compile(rf"^{re.escape(name)}\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
    return [m.group(1).strip() for m in pattern.finditer(head)]


def _header(message: str, name: str) -> str | None:
    found = _headers(message, name)
    return found[0] if found else None


@pytest.fixture
def responders(ports: InteropPorts) -> Iterator[tuple[Responder, Responder]]:
    # Different address AND port from the registrar: neither alone may pass for it.
    registrar = Responder(LOOPBACK, ports.base + 34)
    foreign = Responder(FOREIGN, ports.base + 36)
    try:
        yield registrar, foreign
    finally:
        registrar.close()
        foreign.close()


def trunk_gateway(gateway: Callable[..., GatewayProcess], registrar: Responder) -> GatewayProcess:
    return gateway(
        {
            "registrations": [
                {
                    "registrar": f"sip:{registrar.uri_host}",
                    "username": TRUNK_USER,
                    "password": "trunk-secret",
                    "name": "trunk",
                    "expires": 60,
                    "allowed_caller_ids": ["+15550001"],
                }
            ],
        },
        echo=False,  # originate needs a Realtime session: the built-in simulator
    )


# -- the API's own defences --------------------------------------------------------------------
def test_api_refuses_missing_token_text_plain_foreign_host_and_cross_origin(
    gateway: Callable[..., GatewayProcess],
) -> None:
    gw = gateway()
    base = control_url(gw)
    # Probes stay open.
    assert api(base, "GET", "/healthz").status == 200
    ready = api(base, "GET", "/readyz")
    assert ready.status == 200 and ready.json() == {"ready": True}

    for method, path in (("GET", "/calls"), ("GET", "/metrics"), ("DELETE", "/calls/x")):
        reply = api(base, method, path)
        assert reply.status == 401, (method, path, reply)
        assert reply.headers["www-authenticate"].startswith("Bearer")
    reply = api(base, "GET", "/calls", headers={"Authorization": "Bearer wrong-token"})
    assert reply.status == 401 and 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert api(base, "GET", "/calls", headers=auth_header()).status == 200

    # A form/CORS-simple POST: text/plain is refused even with the token.
    body = json.dumps({"to": "sip:a@127.0.0.1:9", "instructions": "x"}).encode()
    reply = api(base, "POST", "/calls", body, {**auth_header(), "Content-Type": "text/plain"})
    assert reply.status == 415

    # DNS rebinding: the attacker's name in Host, even with a valid token.
    reply = api(base, "GET", "/calls", headers={**auth_header(), "Host": "evil.example"})
    assert reply.status == 421
    assert api(base, "GET", "/healthz", headers={"Host": "evil.example:8080"}).status == 421
    assert api(base, "GET", "/healthz", headers={"Host": "localhost"}).status == 200

    # Cross-origin: refused, and no CORS header is ever granted.
    evil = {**auth_header(), "Origin": "http://evil.example"}
    reply = api(base, "GET", "/calls", headers=evil)
    assert reply.status == 403
    assert not [h for h in reply.headers if h.startswith("access-control-")]
    reply = api(base, "POST", "/calls", body, {**evil, "Content-Type": "application/json"})
    assert reply.status == 403
    same = {**auth_header(), "Origin": base}  # the API's own origin is fine
    assert api(base, "GET", "/calls", headers=same).status == 200
    # Waited for, not looked up: the log line is read by the harness's reader thread.
    gw.wait_event("control.refused", check="host")
    gw.wait_event("control.refused", check="origin")


def test_generated_token_file_is_0600_and_works(
    gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    token_file = tmp_path / "state" / "control.token"
    gw = gateway({"control": {"token_env": "", "token_file": str(token_file)}})
    base = control_url(gw)
    logged = gw.wait_event("control.token")
    assert logged["generated"] is True and logged["path"] == str(token_file)
    mode = stat.S_IMODE(os.stat(token_file).st_mode)
    assert mode == 0o600, oct(mode)
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert token not in gw.log_text()  # the path is logged, never the token
    assert api(base, "GET", "/calls").status == 401
    assert api(base, "GET", "/calls", headers=auth_header(token)).status == 200
    assert api(base, "GET", "/calls", headers=auth_header(TEST_CONTROL_TOKEN)).status == 401


# -- originated calls --------------------------------------------------------------------------
def test_originate_does_not_answer_a_foreign_hosts_challenge(
    gateway: Callable[..., GatewayProcess], responders: tuple[Responder, Responder]
) -> None:
    registrar, foreign = responders
    gw = trunk_gateway(gateway, registrar)
    base = control_url(gw)
    reply = post_json(
        base,
        "/calls",
        {"to": f"sip:victim@{foreign.uri_host}", "instructions": "x", "registration": "trunk"},
    )
    assert reply.status == 502, reply
    error = reply.json()["error"]
    assert foreign.uri_host in error and "registrar" in error
    refused = gw.wait_event("sip.auth.challenge_refused")
    assert (refused["host"], refused["port"]) == (FOREIGN, foreign.port)
    invites = foreign.invites()
    assert invites, "the INVITE never reached the foreign host"
    # Retransmissions aside, only the first INVITE (CSeq 1) and never any credentials.
    assert all(_header(i, "Authorization") is None for i in invites)
    assert all(_header(i, "Proxy-Authorization") is None for i in invites)
    assert {_header(i, "CSeq") for i in invites} == {"1 INVITE"}
    assert registrar.invites() == []


def test_originate_answers_the_registrars_challenge(
    gateway: Callable[..., GatewayProcess], responders: tuple[Responder, Responder]
) -> None:
    """Positive control: the same challenge from the registrar's address is answered."""
    registrar, _foreign = responders
    gw = trunk_gateway(gateway, registrar)
    base = control_url(gw)
    reply = post_json(base, "/calls", {"to": "+15551234", "instructions": "x"})
    assert reply.status == 502 and "486" in reply.json()["error"], reply  # busy after auth
    invites = registrar.wait_invites(2)
    answered = [i for i in invites if _header(i, "Authorization")]
    assert answered, invites
    assert f'username="{TRUNK_USER}"' in (_header(answered[0], "Authorization") or "")
    assert _header(answered[0], "CSeq") == "2 INVITE"
    assert not gw.find("sip.auth.challenge_refused")


def test_originate_refuses_a_caller_id_outside_the_allowed_set(
    gateway: Callable[..., GatewayProcess], responders: tuple[Responder, Responder]
) -> None:
    registrar, _foreign = responders
    gw = trunk_gateway(gateway, registrar)
    base = control_url(gw)
    for spoofed in ("+19998887777", "sip:ceo@bank.example"):
        reply = post_json(base, "/calls", {"to": "+15551234", "instructions": "x", "from": spoofed})
        assert reply.status == 403, reply
        assert "caller ID" in reply.json()["error"]
    assert registrar.invites() == []  # refused before any INVITE
    # An allowed caller ID goes out as the From user.
    reply = post_json(base, "/calls", {"to": "+15551234", "instructions": "x", "from": "+15550001"})
    assert reply.status == 502, reply  # the responder is busy; the call did go out
    invites = registrar.wait_invites(1)
    assert (_header(invites[0], "From") or "").startswith("<sip:+15550001@")
