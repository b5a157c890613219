"""The user agent over TLS (issue 13): OPTIONS and calls between two UAs on loopback with trustme
certificates, Via/Contact for TLS and sips:, and the sips:/TLS transport rules."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sip.message import parse_message
from sip.resolve import resolve
from sip.sips import InsecureTransportError, next_hop_transport, wants_sips
from sip.transport import Transport
from sip.uri import parse_uri
from sip.useragent import UserAgent, signalled
from tests.sip.conftest import Pki
from tests.sip.test_useragent import FAST, SDP_ANSWER, SDP_OFFER, Recorder


async def _tls_ua(pki: Pki, rec: Recorder, **kw: Any) -> UserAgent:
    transport = Transport(
        "127.0.0.1",
        0,
        tls_context=pki.server(),
        tls_port=0,
        tls_client_context=pki.client(),
    )
    ua = UserAgent(
        transport,
        timers=FAST,
        on_invite=rec.on_invite,
        on_call_ended=rec.on_call_ended,
        **kw,
    )
    await ua.start()
    return ua


def test_options_over_tls_gets_a_tls_contact(loop_run: Any, pki: Pki) -> None:
    async def main() -> None:
        a = await _tls_ua(pki, Recorder())
        b = await _tls_ua(pki, Recorder())
        try:
            port = b.transport.tls_port  # type: ignore[attr-defined]
            assert b.advertised_tls_port == port != b.advertised_port
            resp = await b_options(a, f"sip:gateway@127.0.0.1:{port};transport=tls")
            assert resp.status == 200
            assert resp.headers.get("Contact") == f"<sip:gateway@127.0.0.1:{port};transport=tls>"
            via = resp.top_via
            assert via is not None and via.transport == "TLS"
            assert via.port == a.advertised_tls_port
            # sips: by name: TLS to 5061's stand-in, verified as "localhost", sips: Contact back.
            resp = await b_options(a, f"sips:gateway@localhost:{port}")
            assert resp.headers.get("Contact") == f"<sips:gateway@127.0.0.1:{port}>"
            # Again by address: reuses the first connection (verified for 127.0.0.1); the sips:
            # request had its own, verified for "localhost".
            resp = await b_options(a, f"sip:gateway@127.0.0.1:{port};transport=tls")
            assert resp.status == 200
            assert a.transport.connection_count == 2  # type: ignore[attr-defined]
        finally:
            await a.close()
            await b.close()

    loop_run(main)


async def b_options(a: UserAgent, uri: str) -> Any:
    resp = await a.request("OPTIONS", uri, timeout=3)
    assert resp is not None
    return resp


@pytest.mark.parametrize("scheme", ["sip", "sips"])
def test_call_over_tls_answered_and_hung_up_on_the_same_connection(
    loop_run: Any, pki: Pki, scheme: str
) -> None:
    async def main() -> None:
        rec_a, rec_b = Recorder(), Recorder()
        a = await _tls_ua(pki, rec_a)
        b = await _tls_ua(pki, rec_b)
        try:
            port = b.transport.tls_port  # type: ignore[attr-defined]
            target = (
                f"sips:gateway@localhost:{port}"
                if scheme == "sips"
                else f"sip:gateway@127.0.0.1:{port};transport=tls"
            )
            call = await a.invite(target, SDP_OFFER.encode())
            assert call.status == 200 and call.remote_sdp == SDP_ANSWER
            callee = await asyncio.wait_for(rec_b.calls.get(), 3)
            await asyncio.wait_for(signalled(callee.acked), 3)
            assert callee.source.proto == "tls"
            invite = callee.invite
            assert invite.top_via is not None and invite.top_via.transport == "TLS"
            assert invite.top_via.port == a.advertised_tls_port
            a_port = a.advertised_tls_port
            if scheme == "sips":
                assert invite.headers.get("Contact") == f"<sips:gateway@127.0.0.1:{a_port}>"
                assert call.dialog is not None
                assert str(call.dialog.remote_target) == f"sips:gateway@127.0.0.1:{port}"
            else:
                contact = f"<sip:gateway@127.0.0.1:{a_port};transport=tls>"
                assert invite.headers.get("Contact") == contact
                assert call.dialog is not None
                assert call.dialog.remote_target.transport == "tls"
            # The callee hangs up: its BYE goes back over the caller's TLS connection.
            assert await callee.hangup() == 200
            assert await asyncio.wait_for(rec_a.ended.get(), 3) == (call, "bye")
            assert a.transport.connection_count == 1  # type: ignore[attr-defined]
            assert b.transport.connection_count == 1  # type: ignore[attr-defined]
        finally:
            await a.close()
            await b.close()

    loop_run(main)


async def test_in_dialog_request_from_the_caller_goes_over_tls(pki: Pki) -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a = await _tls_ua(pki, rec_a)
    b = await _tls_ua(pki, rec_b)
    try:
        port = b.transport.tls_port  # type: ignore[attr-defined]
        call = await a.invite(f"sip:gateway@127.0.0.1:{port};transport=tls", SDP_OFFER.encode())
        callee = await asyncio.wait_for(rec_b.calls.get(), 3)
        await asyncio.wait_for(signalled(callee.acked), 3)
        assert await call.hangup() == 200
        assert await asyncio.wait_for(rec_b.ended.get(), 3) == (callee, "bye")
        assert a.transport.connection_count == 1  # type: ignore[attr-defined]
    finally:
        await a.close()
        await b.close()


async def test_a_sips_target_is_never_sent_over_udp_or_tcp(pki: Pki) -> None:
    a = await _tls_ua(pki, Recorder())
    try:
        with pytest.raises(InsecureTransportError, match="TLS only"):
            await a.request("OPTIONS", "sips:gateway@127.0.0.1;transport=tcp")
        with pytest.raises(InsecureTransportError):
            await a.resolve(parse_uri("sips:gateway@127.0.0.1"), "udp")
        assert a.transport.counters.sent == 0  # type: ignore[attr-defined]
    finally:
        await a.close()


def test_next_hop_transport_and_default_ports() -> None:
    assert next_hop_transport(parse_uri("sip:a@h")) == ("udp", 5060)
    assert next_hop_transport(parse_uri("sip:a@h;transport=tcp")) == ("tcp", 5060)
    assert next_hop_transport(parse_uri("sip:a@h;transport=TLS")) == ("tls", 5061)
    assert next_hop_transport(parse_uri("sips:a@h")) == ("tls", 5061)
    assert next_hop_transport(parse_uri("sips:a@h:5071")) == ("tls", 5071)
    assert next_hop_transport(parse_uri("sip:a@h"), "tls") == ("tls", 5061)
    assert next_hop_transport(parse_uri("sip:a@h;transport=sctp")) == ("udp", 5060)
    for proto in ("udp", "tcp"):
        with pytest.raises(InsecureTransportError):
            next_hop_transport(parse_uri("sips:a@h"), proto)
    with pytest.raises(InsecureTransportError):
        next_hop_transport(parse_uri("sips:a@h;transport=udp"))


async def test_resolve_keeps_the_uri_host_as_tls_server_name() -> None:
    addr = await resolve(parse_uri("sips:gw@localhost"), None, socket.AF_INET)
    assert (addr.proto, addr.host, addr.port, addr.server_name) == (
        "tls",
        "127.0.0.1",
        5061,
        "localhost",
    )
    literal = await resolve(parse_uri("sip:gw@127.0.0.1;transport=tls"), None, socket.AF_INET)
    assert (literal.proto, literal.port, literal.server_name) == ("tls", 5061, "")


def test_wants_sips() -> None:
    def req(ruri: str, contact: str) -> Any:
        return parse_message(
            (
                f"OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/TLS h:5061;branch=z9hG4bK-1\r\n"
                f"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
                f"Contact: {contact}\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )

    assert wants_sips(req("sips:b@h", "<sip:a@h>"))
    assert wants_sips(req("sip:b@h", "<sips:a@h>"))
    assert not wants_sips(req("sip:b@h", "<sip:a@h;transport=tls>"))


async def test_record_route_over_tls_is_kept_and_followed(pki: Pki) -> None:
    """A Record-Route (here added by the caller, standing in for a TLS proxy) is copied into the
    2xx, becomes both route sets, and in-dialog requests carry it as Route and go over TLS."""
    rec_a, rec_b = Recorder(), Recorder()
    a = await _tls_ua(pki, rec_a)
    b = await _tls_ua(pki, rec_b)
    seen: list[bytes] = []
    b.transport.on_trace = lambda direction, data: seen.append(data) if direction == "in" else None  # type: ignore[attr-defined]
    try:
        port = b.transport.tls_port  # type: ignore[attr-defined]
        route = f"<sip:127.0.0.1:{port};transport=tls;lr>"
        call = await a.invite(
            f"sip:gateway@127.0.0.1:{port};transport=tls",
            SDP_OFFER.encode(),
            headers=[("Record-Route", route)],
        )
        assert call.status == 200 and call.dialog is not None
        assert [str(r) for r in call.dialog.route_set] == [route]
        callee = await asyncio.wait_for(rec_b.calls.get(), 3)
        await asyncio.wait_for(signalled(callee.acked), 3)
        assert callee.dialog is not None and [str(r) for r in callee.dialog.route_set] == [route]
        assert await call.hangup() == 200
        bye = next(m for m in seen if m.startswith(b"BYE "))
        assert f"Route: {route}".encode() in bye
        assert b"Via: SIP/2.0/TLS " in bye
    finally:
        await a.close()
        await b.close()
