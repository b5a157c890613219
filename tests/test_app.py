"""The Gateway in-process: a tiny in-test UAC over loopback UDP drives whole calls."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import re
import struct
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import (
    CallsConfig,
    ControlConfig,
    GatewayConfig,
    MediaConfig,
    RegistrationConfig,
    SipConfig,
)
from tests.tools.eventlog import EventLog, captured_events
from tests.tools.wait import async_wait_until

TIMEOUT = 10.0


# -- log capture -------------------------------------------------------------------------------
@pytest.fixture
def events() -> Iterator[EventLog]:
    with captured_events(logging.DEBUG) as handler:
        yield handler


# -- a tiny UAC ----------------------------------------------------------------------------------
class _Proto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.sources: list[Any] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sources.append(addr)
        self.queue.put_nowait(data)


def rtp_packet(pt: int, seq: int, ts: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, 0x1234ABCD) + payload


def rtp_fields(packet: bytes) -> tuple[int, bool, bytes]:
    """(payload type, marker, payload) of a plain RTP packet (no CSRC/extension)."""
    return packet[1] & 0x7F, bool(packet[1] & 0x80), packet[12:]


def header(message: bytes, name: str) -> str:
    match = re.search(rb"^" + name.encode() + rb":\s*(.*?)\r$", message, re.M | re.I)
    return match.group(1).decode() if match else ""


def status_of(message: bytes) -> int | None:
    if message.startswith(b"SIP/2.0 "):
        return int(message[8:11])
    return None


def body_of(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[1]


class Uac:
    """Just enough of a UAC to place one call: INVITE, ACK, INFO, BYE, and answer a BYE."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _Proto, gw_port: int) -> None:
        self.transport = transport
        self.proto = proto
        self.gw = ("127.0.0.1", gw_port)
        self.port = transport.get_extra_info("sockname")[1]
        self.call_id = uuid.uuid4().hex + "@127.0.0.1"
        self.from_tag = uuid.uuid4().hex[:8]
        self.to_tag = ""
        self.cseq = 1
        self.contact = f"<sip:uac@127.0.0.1:{self.port}>"

    def send(self, data: bytes) -> None:
        self.transport.sendto(data, self.gw)

    def request(
        self, method: str, body: bytes = b"", ctype: str = "", cseq: int | None = None
    ) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to = f"<sip:gw@127.0.0.1:{self.gw[1]}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{method} sip:gw@127.0.0.1:{self.gw[1]} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
            "Max-Forwards: 70",
            f"From: <sip:uac@127.0.0.1>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: {self.contact}",
        ]
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def recv(self, timeout: float = TIMEOUT) -> bytes:  # noqa: ASYNC109
        return await asyncio.wait_for(self.proto.queue.get(), timeout)

    async def final_response(self, method: str) -> bytes:
        while True:
            message = await self.recv()
            status = status_of(message)
            if status is not None and status >= 200 and method in header(message, "CSeq"):
                return message

    async def invite(self, sdp: bytes) -> bytes:
        self.cseq = 1
        self.send(self.request("INVITE", sdp, "application/sdp" if sdp else "", cseq=1))
        final = await self.final_response("INVITE")
        to = header(final, "To")
        tag = re.search(r"tag=([^;>\s]+)", to)
        self.to_tag = tag.group(1) if tag else ""
        return final

    def ack(self, final: bytes, body: bytes = b"") -> None:
        # For a non-2xx the ACK is part of the INVITE transaction (same branch); a loopback
        # test only needs the gateway to stop retransmitting, which either form achieves here.
        cseq = int(header(final, "CSeq").split()[0])
        ctype = "application/sdp" if body else ""
        self.send(self.request("ACK", body, ctype, cseq=cseq))

    async def expect_request(self, method: str) -> bytes:
        while True:
            message = await self.recv()
            if message.startswith(method.encode() + b" "):
                return message

    def respond(self, request: bytes, status: int, reason: str) -> None:
        lines = [f"SIP/2.0 {status} {reason}"]
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            lines.append(f"{name}: {header(request, name)}")
        lines.append("Content-Length: 0")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())


def offer_sdp(port: int, payloads: str = "0 8 101", rtpmaps: str | None = None) -> bytes:
    if rtpmaps is None:
        rtpmaps = (
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        )
    return (
        "v=0\r\n"
        "o=uac 1 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP {payloads}\r\n"
        f"{rtpmaps}"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    ).encode()


@dataclasses.dataclass
class Harness:
    gateway: Gateway
    uac: Uac
    rtp_port: int
    rtp: _Proto
    rtp_transport: asyncio.DatagramTransport

    async def rtp_recv(self, timeout: float = TIMEOUT) -> bytes:  # noqa: ASYNC109
        return await asyncio.wait_for(self.rtp.queue.get(), timeout)


async def start_gateway(
    port_block: int,
    media: dict[str, Any] | None = None,
    calls: dict[str, Any] | None = None,
    sip: dict[str, Any] | None = None,
) -> Gateway:
    config = GatewayConfig(
        sip=SipConfig(host="127.0.0.1", port=port_block, transports=("udp",), **(sip or {})),
        media=MediaConfig(
            rtp_port_min=port_block + 10, rtp_port_max=port_block + 39, **(media or {})
        ),
        calls=CallsConfig(**(calls or {})),
        # No control API here (tests/test_product.py covers it): never bind the fixed 8080.
        control=ControlConfig(enabled=False),
    )
    gateway = Gateway(config)
    await asyncio.wait_for(gateway.start(), TIMEOUT)
    return gateway


@pytest.fixture
async def harness(port_block: int, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    gateway = await start_gateway(port_block, **getattr(request, "param", {}))
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 1)
    )
    # The UAC's RTP port: a bound socket so the gateway's RTP has somewhere to go.
    rtp_transport, rtp_proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 2)
    )
    try:
        yield Harness(
            gateway, Uac(transport, proto, port_block), port_block + 2, rtp_proto, rtp_transport
        )
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=2.0), TIMEOUT)
        transport.close()
        rtp_transport.close()


# -- tests -----------------------------------------------------------------------------------------
async def test_answers_invite_with_valid_sdp(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    answer = body_of(final).decode()
    assert header(final, "Content-Type").startswith("application/sdp")
    # One codec, telephone-event echoed with the offered PT, a real port from our range.
    media = re.search(r"^m=audio (\d+) RTP/AVP ([\d ]+)\r$", answer, re.M)
    assert media, answer
    port = int(media.group(1))
    cfg = harness.gateway.config.media
    assert cfg.rtp_port_min <= port <= cfg.rtp_port_max and port % 2 == 0
    assert media.group(2).split()[0] == "0"
    assert "101" in media.group(2).split()
    assert re.search(r"^c=IN IP4 127\.0\.0\.1\r$", answer, re.M)
    assert re.search(r"^a=rtpmap:0 PCMU/8000\r$", answer, re.M)

    offered = await events.wait("call.offered", call_id=uac.call_id)
    assert offered["source"].startswith("127.0.0.1:")
    await events.wait("call.answered", call_id=uac.call_id)
    assert harness.gateway.active_calls == 1

    uac.send(uac.request("BYE"))
    bye_ok = await uac.final_response("BYE")
    assert status_of(bye_ok) == 200
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "remote_bye"
    assert ended["duration_s"] >= 0
    assert harness.gateway.active_calls == 0


async def test_an_ended_call_is_freed_by_reference_counting(
    harness: Harness, events: EventLog
) -> None:
    """A LiveCall's teardown breaks the cycles between its objects (issue 14), so the call
    is freed when the gateway forgets it, with the cyclic collector off and no collection
    run (tests/test_call_freed.py covers both backends, 503, CANCEL, outbound, transfer)."""
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    await events.wait("call.answered", call_id=uac.call_id)
    live = weakref.ref(harness.gateway.calls[uac.call_id])
    was = gc.isenabled()
    gc.disable()
    try:
        uac.send(uac.request("BYE"))
        assert status_of(await uac.final_response("BYE")) == 200
        await events.wait("call.ended", call_id=uac.call_id)
        await async_wait_until(lambda: not harness.gateway._owned_tasks, TIMEOUT, "clean-ups done")
        await async_wait_until(lambda: live() is None, TIMEOUT, "the LiveCall freed")
    finally:
        if was:
            gc.enable()


async def test_g729_only_offer_gets_488(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    sdp = offer_sdp(harness.rtp_port, payloads="18", rtpmaps="a=rtpmap:18 G729/8000\r\n")
    final = await uac.invite(sdp)
    assert status_of(final) == 488
    uac.ack(final)
    rejected = await events.wait("call.rejected", call_id=uac.call_id)
    assert rejected["status"] == 488
    assert "G729" in str(rejected["offered_codecs"])
    await events.wait("call.ended", call_id=uac.call_id, cause="rejected")
    assert harness.gateway.active_calls == 0


@pytest.mark.parametrize("harness", [{"calls": {"max_duration_s": 0.5}}], indirect=True)
async def test_max_duration_sends_bye_with_reason(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    bye = await uac.expect_request("BYE")
    assert header(bye, "Reason") == 'SIP;cause=200;text="max duration"'
    uac.respond(bye, 200, "OK")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "max_duration"


async def test_dtmf_info_is_logged(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    uac.send(uac.request("INFO", b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay"))
    assert status_of(await uac.final_response("INFO")) == 200
    dtmf = await events.wait("dtmf.received", call_id=uac.call_id)
    assert dtmf["digit"] == "5"
    assert dtmf["source"] == "info"
    assert dtmf["duration_ms"] == 160
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")


@pytest.mark.parametrize("harness", [{"calls": {"max_dtmf_per_s": 1.0}}], indirect=True)
async def test_dtmf_flood_is_cut_to_the_per_call_rate(harness: Harness, events: EventLog) -> None:
    """Issue 9, input bounded by real time: a caller sending digits faster than any keypad
    gets the burst (2 at 1/s) through; the rest is dropped, counted and logged once."""
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    started = time.monotonic()
    for _ in range(10):
        uac.send(uac.request("INFO", b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay"))
        assert status_of(await uac.final_response("INFO")) == 200
    elapsed = time.monotonic() - started
    dropped = await events.wait("dtmf.dropped", call_id=uac.call_id)
    assert dropped["source"] == "info"
    received = events.find("dtmf.received", call_id=uac.call_id)
    # Burst of 2, plus one token per second the loop took (bounded, not timed).
    assert 2 <= len(received) <= 2 + int(elapsed) + 1
    assert len(events.find("dtmf.dropped", call_id=uac.call_id)) == 1
    metrics = harness.gateway.prometheus
    assert metrics.dtmf_dropped.labels(source="info")._value.get() == 10 - len(received)
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")


@pytest.mark.parametrize("harness", [{"sip": {"admit_local": False}}], indirect=True)
async def test_admit_local_false_refuses_the_host_itself(harness: Harness) -> None:
    """sip.admit_local = false: loopback is a stranger like any other (a shared host)."""
    final = await harness.uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 403
    assert harness.gateway.active_calls == 0


async def test_stop_hangs_up_live_calls(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)

    async def answer_bye() -> bytes:
        bye = await uac.expect_request("BYE")
        uac.respond(bye, 200, "OK")
        return bye

    answering = asyncio.create_task(answer_bye())
    # The call may go on for the drain window (it does not end by itself here), then BYE.
    await asyncio.wait_for(harness.gateway.stop(drain_timeout=0.5), TIMEOUT)
    await events.wait("gateway.draining")
    bye = await asyncio.wait_for(answering, TIMEOUT)
    assert "shutdown" in header(bye, "Reason")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "shutdown"
    await events.wait("gateway.stopped")


def answered_rtp_port(final: bytes) -> int:
    match = re.search(rb"^m=audio (\d+) ", body_of(final), re.M)
    assert match, final
    return int(match.group(1))


async def test_sends_silence_rtp_after_answer_and_reports_stats(
    harness: Harness, events: EventLog
) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    # idle_audio = "silence": 20 ms PCMU frames of 0xFF, so PBX RTP timeouts never fire.
    for _ in range(5):
        pt, _marker, payload = rtp_fields(await harness.rtp_recv())
        assert pt == 0
        assert payload == b"\xff" * 160
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["rtp_packets_out"] >= 5
    assert {"rtp_packets_in", "rtp_lost", "rtp_jitter_ms"} <= ended.keys()


@pytest.mark.parametrize("harness", [{"media": {"echo": True}}], indirect=True)
async def test_echo_mode_plays_caller_audio_back(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    gw_rtp = ("127.0.0.1", answered_rtp_port(final))
    pattern = bytes(range(0x10, 0x10 + 160))
    received: list[bytes] = []

    async def collect() -> None:
        while True:
            _pt, _marker, payload = rtp_fields(await harness.rtp_recv())
            if payload == pattern:
                received.append(payload)
                return

    collector = asyncio.create_task(collect())
    try:
        for seq in range(50):  # 1 s of caller audio at the real 20 ms pace
            harness.rtp_transport.sendto(rtp_packet(0, 100 + seq, 160 * seq, pattern), gw_rtp)
            if collector.done():
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(collector, TIMEOUT)
    finally:
        collector.cancel()
    assert received == [pattern]
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["rtp_packets_in"] >= 1


async def test_rfc4733_dtmf_is_logged(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    gw_rtp = ("127.0.0.1", answered_rtp_port(final))
    seq = 1000
    ts = 8000
    # Digit 7: start (marker), two updates, then the end packet three times (RFC 4733 2.5.1.4).
    for i, (end, duration) in enumerate(
        [(0, 160), (0, 320), (0, 480), (1, 640), (1, 640), (1, 640)]
    ):
        payload = struct.pack("!BBH", 7, (0x80 if end else 0) | 10, duration)
        harness.rtp_transport.sendto(rtp_packet(101, seq + i, ts, payload, marker=i == 0), gw_rtp)
        await asyncio.sleep(0.02)
    dtmf = await events.wait("dtmf.received", call_id=uac.call_id)
    assert dtmf["digit"] == "7"
    assert dtmf["source"] == "rfc4733"
    assert dtmf["duration_ms"] == 80
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    await events.wait("call.ended", call_id=uac.call_id)
    assert len(events.find("dtmf.received", call_id=uac.call_id)) == 1


@pytest.mark.parametrize("harness", [{"media": {"rtp_timeout_s": 0.3}}], indirect=True)
async def test_rtp_timeout_sends_bye(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    # The caller never sends RTP.
    bye = await uac.expect_request("BYE")
    assert header(bye, "Reason") == 'SIP;cause=408;text="RTP timeout"'
    uac.respond(bye, 200, "OK")
    await events.wait("call.rtp_timeout", call_id=uac.call_id)
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "rtp_timeout"


async def test_reinvite_hold_and_resume(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    held = offer_sdp(harness.rtp_port).replace(b"a=sendrecv", b"a=sendonly")
    uac.send(uac.request("INVITE", held, "application/sdp"))
    reply = await uac.final_response("INVITE")
    assert status_of(reply) == 200
    assert b"a=recvonly" in body_of(reply)
    uac.ack(reply)
    hold = await events.wait("call.hold", call_id=uac.call_id)
    assert hold["direction"] == "recvonly"
    uac.send(uac.request("INVITE", offer_sdp(harness.rtp_port), "application/sdp"))
    reply = await uac.final_response("INVITE")
    assert status_of(reply) == 200
    assert b"a=sendrecv" in body_of(reply)
    uac.ack(reply)
    await events.wait("call.resumed", call_id=uac.call_id)
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")


async def test_late_offer_media_starts_after_ack(harness: Harness, events: EventLog) -> None:
    uac = harness.uac
    final = await uac.invite(b"")  # no SDP: we offer in the 200, the answer is in the ACK
    assert status_of(final) == 200
    offer = body_of(final)
    assert re.search(rb"^m=audio \d+ RTP/AVP 0 8 101\r$", offer, re.M), offer
    answer = offer_sdp(harness.rtp_port, payloads="8 101").replace(b"a=rtpmap:0 PCMU/8000\r\n", b"")
    uac.ack(final, answer)
    pt, _marker, payload = rtp_fields(await harness.rtp_recv())
    assert pt == 8
    assert payload == b"\xd5" * 160  # A-law silence: the codec from the ACK's answer
    await events.wait("call.answered", call_id=uac.call_id)
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    await events.wait("call.ended", call_id=uac.call_id, cause="remote_bye")


async def test_registers_and_unregisters_on_stop(port_block: int, events: EventLog) -> None:
    loop = asyncio.get_running_loop()
    registrar_port = port_block + 3
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", registrar_port)
    )
    registrar = Uac(transport, proto, 0)  # only its respond() helper is used

    async def answer_registers(count: int) -> list[bytes]:
        seen = []
        while len(seen) < count:
            message = await registrar.recv()
            if not message.startswith(b"REGISTER "):
                continue
            seen.append(message)
            registrar.gw = proto.sources[-1]
            lines = [
                "SIP/2.0 200 OK",
                *(f"{n}: {header(message, n)}" for n in ("Via", "From", "To", "Call-ID", "CSeq")),
                f"Contact: {header(message, 'Contact').split(';expires=')[0]};expires="
                f"{header(message, 'Expires')}",
                "Content-Length: 0",
            ]
            registrar.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return seen

    config = GatewayConfig(
        sip=SipConfig(host="127.0.0.1", port=port_block, transports=("udp",)),
        media=MediaConfig(rtp_port_min=port_block + 10, rtp_port_max=port_block + 39),
        registrations=(
            RegistrationConfig(
                registrar=f"sip:127.0.0.1:{registrar_port}", username="gateway", expires=120
            ),
        ),
        control=ControlConfig(enabled=False),
    )
    gateway = Gateway(config)
    try:
        await asyncio.wait_for(gateway.start(), TIMEOUT)
        first = await asyncio.wait_for(answer_registers(1), TIMEOUT)
        assert header(first[0], "Expires") == "120"
        assert "sip:gateway@127.0.0.1" in header(first[0], "To")
        await events.wait("registration.ok")
        unregister = asyncio.create_task(answer_registers(1))
        await asyncio.wait_for(gateway.stop(drain_timeout=2.0), TIMEOUT)
        last = await asyncio.wait_for(unregister, TIMEOUT)
        assert header(last[0], "Expires") == "0"
    finally:
        await gateway.stop(drain_timeout=0)
        transport.close()


async def test_late_offer_with_unusable_answer_is_hung_up(
    harness: Harness, events: EventLog
) -> None:
    uac = harness.uac
    final = await uac.invite(b"")
    assert status_of(final) == 200
    answer = offer_sdp(harness.rtp_port, payloads="18", rtpmaps="a=rtpmap:18 G729/8000\r\n")
    uac.ack(final, answer)
    bye = await uac.expect_request("BYE")
    assert header(bye, "Reason") == 'SIP;cause=488;text="unusable SDP answer"'
    uac.respond(bye, 200, "OK")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "bad_answer"


@pytest.mark.parametrize("harness", [{"calls": {"answer_delay_ms": 3000}}], indirect=True)
@pytest.mark.parametrize("wait_for_ringing", [True, False])
async def test_cancel_while_ringing(
    harness: Harness, events: EventLog, wait_for_ringing: bool
) -> None:
    uac = harness.uac
    invite = uac.request("INVITE", offer_sdp(harness.rtp_port), "application/sdp", cseq=1)
    uac.send(invite)
    # Without waiting, the CANCEL is processed before the application's INVITE handler runs.
    while wait_for_ringing and status_of(await uac.recv()) != 180:
        pass
    # CANCEL: same Via branch, Call-ID, From, To (no tag) and CSeq number (RFC 3261 9.1).
    cancel = re.sub(rb"^INVITE ", b"CANCEL ", invite.split(b"\r\n\r\n")[0], flags=re.M)
    cancel = re.sub(rb"CSeq: 1 INVITE", b"CSeq: 1 CANCEL", cancel)
    cancel = re.sub(rb"Content-Type: [^\r]*\r\n", b"", cancel)
    cancel = re.sub(rb"Content-Length: \d+", b"Content-Length: 0", cancel) + b"\r\n\r\n"
    uac.send(cancel)
    statuses = set()
    while 487 not in statuses:
        message = await uac.recv()
        statuses.add(status_of(message))
        assert status_of(message) != 200 or b"CANCEL" in header(message, "CSeq").encode()
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "cancelled"
    assert ended["answered"] is False
    assert not events.find("call.answered", call_id=uac.call_id)
    assert harness.gateway.active_calls == 0
    assert harness.gateway.ports.in_use == 0  # the RTP port went back (into quarantine)


async def test_call_cancelled_before_the_invite_handler_ran(
    port_block: int, events: EventLog
) -> None:
    """Under load (seen with SIPp + uvloop) the UA can process a CANCEL before the gateway's
    INVITE handler task starts: the handler then gets a call that is already over."""
    from sip.message import Headers, Request
    from sip.transport import TransportAddr

    class EndedCall:
        call_id = "early-cancel@test"
        from_header = "<sip:a@127.0.0.1>;tag=1"
        to_header = "<sip:gw@127.0.0.1>"
        source = TransportAddr("udp", "127.0.0.1", 5999)
        offer_sdp = offer_sdp(port_block + 2)
        state = "terminated"
        end_reason = "cancelled"
        request_uri = "sip:gw@127.0.0.1"
        local_tag = "gw-tag"
        remote_tag = "1"
        invite = Request("INVITE", "sip:gw@127.0.0.1", Headers([("X-Route", "sales")]))

        def accept(self, body: bytes) -> None:
            raise AssertionError("a cancelled call must not be answered")

        def reject(self, status: int) -> None:
            raise AssertionError("a cancelled call must not be rejected")

    gateway = await start_gateway(port_block)
    try:
        await gateway._on_invite(EndedCall())  # type: ignore[arg-type]
        ended = await events.wait("call.ended", call_id="early-cancel@test")
        assert ended["cause"] == "cancelled"
        assert gateway.active_calls == 0
        assert gateway.ports.in_use == 0
    finally:
        await gateway.stop(drain_timeout=0)
