"""The gateway process with SIP over TLS and SRTP, in-process under the stdlib loop and uvloop
(issue 13): an INVITE with RTP/SAVP over TLS is answered with our a=crypto, the echo comes back
as SRTP that decrypts to what was sent, and replayed, forged or plain packets are dropped and
counted in call.ended. A plain-UDP RTP/SAVP offer gets 488 with a Warning (SDES over plain)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.app import Gateway
from gateway.config import (
    ConfigError,
    ControlConfig,
    GatewayConfig,
    MediaConfig,
    RealtimeConfig,
    RecordsConfig,
    SipConfig,
    TlsConfig,
)
from gateway.media.rtp import RtpPacket, decode_rtp
from gateway.media.srtp import SrtpSession
from sip.sdp_crypto import DEFAULT_SUITES, format_crypto, offer_crypto, parse_crypto
from tests.tools.eventlog import EventLog, captured_events

HOST = "127.0.0.1"


@pytest.fixture
def events() -> Iterator[EventLog]:
    with captured_events(logging.DEBUG) as handler:
        yield handler


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def runner(main: Callable[[], Awaitable[Any]]) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(main(), 20.0)

        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(bounded())

    return runner


def certificates(tmp_path: Path) -> tuple[str, TlsConfig]:
    ca = trustme.CA()
    leaf = ca.issue_cert(HOST)
    ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "gw.crt", tmp_path / "gw.key"
    ca_file.write_bytes(ca.cert_pem.bytes())
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(ca_file), TlsConfig(enabled=True, port=0, cert_file=str(cert), key_file=str(key))


def gateway_config(port_block: int, tls: TlsConfig) -> GatewayConfig:
    return GatewayConfig(
        sip=SipConfig(host=HOST, port=port_block, transports=("udp",), tls=tls),
        media=MediaConfig(
            rtp_port_min=port_block + 10, rtp_port_max=port_block + 39, echo=True, srtp="required"
        ),
        control=ControlConfig(enabled=False),
    )


def invite(proto: str, gw_port: int, rtp_port: int, crypto: str, call_id: str) -> bytes:
    sdp = (
        f"v=0\r\no=uac 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:{crypto}\r\na=sendrecv\r\n"
    ).encode()
    return request("INVITE", proto, gw_port, call_id, 1, sdp)


def request(
    method: str, proto: str, gw_port: int, call_id: str, cseq: int, body: bytes = b"", tag: str = ""
) -> bytes:
    lines = [
        f"{method} sip:gw@{HOST}:{gw_port};transport={proto.lower()} SIP/2.0",
        f"Via: SIP/2.0/{proto} {HOST}:9;branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
        "Max-Forwards: 70",
        f"From: <sip:uac@{HOST}>;tag=uac1",
        f"To: <sip:gw@{HOST}>" + (f";tag={tag}" if tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:uac@{HOST}:9;transport={proto.lower()}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?im)^(?:Content-Length|l):\s*(\d+)", head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return head + body


async def final_response(reader: asyncio.StreamReader) -> bytes:
    while True:
        message = await read_message(reader)
        status = int(message.split(b" ", 2)[1])
        if status >= 200:
            return message


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)


def test_tls_invite_with_srtp_echoes_encrypted_audio(
    loop_run: Any, port_block: int, tmp_path: Path, events: EventLog
) -> None:
    ca_file, tls = certificates(tmp_path)

    async def main() -> None:
        records = tmp_path / "records"
        config = dataclasses.replace(
            gateway_config(port_block, tls), records=RecordsConfig(dir=str(records))
        )
        gateway = Gateway(config)
        await gateway.start()
        loop = asyncio.get_running_loop()
        rtp, rtp_proto = await loop.create_datagram_endpoint(_Rtp, local_addr=(HOST, 0))
        writer = None
        try:
            assert gateway.transport is not None
            tls_port = gateway.transport.tls_port
            client = ssl.create_default_context(cafile=ca_file)
            reader, writer = await asyncio.open_connection(
                HOST, tls_port, ssl=client, server_hostname=HOST
            )
            ours = offer_crypto(("AES_CM_128_HMAC_SHA1_80",))[0]
            call_id = uuid.uuid4().hex
            rtp_port = rtp.get_extra_info("sockname")[1]
            writer.write(invite("TLS", tls_port, rtp_port, format_crypto(ours), call_id))
            final = await final_response(reader)
            assert final.startswith(b"SIP/2.0 200"), final
            assert b";transport=tls" in final or b"sips:" in final  # our Contact
            body = final.split(b"\r\n\r\n", 1)[1].decode()
            assert "m=audio" in body and " RTP/SAVP 0" in body, body
            answered = parse_crypto(re.search(r"a=crypto:(.*)\r\n", body).group(1))
            assert answered.tag == ours.tag and answered.key != ours.key
            gw_rtp = (HOST, int(re.search(r"m=audio (\d+)", body).group(1)))
            tag = re.search(rb"(?im)^To:.*;tag=([^;\s]+)", final).group(1).decode()
            writer.write(request("ACK", "TLS", tls_port, call_id, 1, tag=tag))
            peer = SrtpSession(answered.key, ours.key, ours.suite)

            pattern = bytes(range(0x20, 0x20 + 160))
            first = b""
            for seq in range(60):
                packet = peer.protect_rtp(
                    RtpPacket(0, 100 + seq, 160 * seq, 0x77, pattern).encode()
                )
                first = first or packet
                rtp.sendto(packet, gw_rtp)
                await asyncio.sleep(0.02)
                echoed = [rtp_proto.queue.get_nowait() for _ in range(rtp_proto.queue.qsize())]
                clear = [decode_rtp(peer.unprotect_rtp(p)).payload for p in echoed]
                assert all(pattern not in p for p in echoed)  # encrypted on the wire
                if pattern in clear:
                    break
            else:
                raise AssertionError("no echo of our audio")
            # What the control API lists for the call holds no key.
            listed = json.dumps(gateway.calls[call_id].summary(loop.time()))
            assert ours.key.inline() not in listed and answered.key.inline() not in listed
            rtp.sendto(first, gw_rtp)  # a replay
            rtp.sendto(RtpPacket(0, 999, 0, 0x77, pattern).encode(), gw_rtp)  # plain RTP
            forged = bytearray(peer.protect_rtp(RtpPacket(0, 1000, 0, 0x77, pattern).encode()))
            forged[-1] ^= 1
            rtp.sendto(bytes(forged), gw_rtp)
            await asyncio.sleep(0.1)
            writer.write(request("BYE", "TLS", tls_port, call_id, 2, tag=tag))
            bye_ok = await final_response(reader)
            assert bye_ok.startswith(b"SIP/2.0 200"), bye_ok
            ended = await events.wait("call.ended", call_id=call_id)
            srtp_counts = {k: ended["rtp"][k] for k in ("srtp_replayed", "srtp_auth_failed")}
            assert srtp_counts == {"srtp_replayed": 1, "srtp_auth_failed": 2}, ended["rtp"]
            offered = events.find("call.offered", call_id=call_id)[0]
            assert (offered["transport"], offered["srtp"]) == ("tls", "required")
            # The keys are in no log line and no call record.
            written = "".join(p.read_text() for p in records.rglob("*.json"))
            assert call_id in written
            for key in (ours.key, answered.key):
                assert key.inline() not in repr(events.events), "a key was logged"
                assert key.inline() not in written, "a key in the call record"
        finally:
            if writer is not None:
                writer.close()
            rtp.close()
            await gateway.stop(drain_timeout=1.0)

    loop_run(main)


def test_savp_over_plain_udp_gets_488_with_a_warning(
    loop_run: Any, port_block: int, tmp_path: Path, events: EventLog
) -> None:
    _, tls = certificates(tmp_path)

    async def main() -> None:
        gateway = Gateway(gateway_config(port_block, tls))
        await gateway.start()
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        class Sip(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                replies.put_nowait(data)

        udp, _ = await loop.create_datagram_endpoint(Sip, local_addr=(HOST, 0))
        try:
            line = format_crypto(offer_crypto(("AES_CM_128_HMAC_SHA1_80",))[0])
            udp.sendto(invite("UDP", port_block, 4000, line, uuid.uuid4().hex), (HOST, port_block))
            while True:
                reply = await replies.get()
                if not reply.startswith(b"SIP/2.0 1"):
                    break
            assert reply.startswith(b"SIP/2.0 488"), reply
            warning = re.search(rb"(?im)^Warning:\s*(.*)\r$", reply)
            assert warning and b"SDES keys over plain signalling" in warning.group(1), reply
            assert line.split("inline:")[1].encode() not in repr(events.events).encode()
        finally:
            udp.close()
            await gateway.stop(drain_timeout=1.0)

    loop_run(main)


def test_a_bad_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    tls = TlsConfig(enabled=True, cert_file=str(tmp_path / "missing.crt"), key_file="k")
    with pytest.raises(ConfigError, match=r"sip\.tls: cannot read .*missing\.crt"):
        Gateway(gateway_config(20000, tls))


def test_originated_call_over_tls_offers_srtp_and_encrypts_media(
    loop_run: Any, port_block: int, tmp_path: Path, events: EventLog
) -> None:
    """An originated call to a `;transport=tls` target: the INVITE goes over TLS (the server's
    certificate verified against sip.tls.ca_file), offers RTP/SAVP with a=crypto (SRTP
    required), and the callee's answer keys the media both ways. To a plain target the same
    policy refuses to originate (422), never sending keys in clear."""
    _, listener = certificates(tmp_path)
    ca = trustme.CA()  # the callee's own certificate, from a CA the gateway is told to trust
    callee_cert = ca.issue_cert(HOST)
    callee_ca = tmp_path / "callee-ca.pem"
    callee_ca.write_bytes(ca.cert_pem.bytes())

    async def main() -> None:
        from gateway.realtime.simulator import Simulator, SimulatorOptions

        simulator = Simulator(HOST, 0, SimulatorOptions())
        await simulator.start()
        tls = dataclasses.replace(listener, ca_file=str(callee_ca))
        config = gateway_config(port_block, tls)
        config = dataclasses.replace(
            config,
            media=dataclasses.replace(config.media, echo=False),
            realtime=RealtimeConfig(url=simulator.url, simulator="never"),
        )
        gateway = Gateway(config)
        await gateway.start()
        loop = asyncio.get_running_loop()
        rtp, rtp_proto = await loop.create_datagram_endpoint(_Rtp, local_addr=(HOST, 0))
        rtp_port = rtp.get_extra_info("sockname")[1]
        got: dict[str, Any] = {}
        acked = asyncio.Event()

        async def callee(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            invite = await read_message(reader)
            got["invite"] = invite
            text = invite.decode()
            lines = re.findall(r"a=crypto:(.*)\r\n", text)
            offered = parse_crypto(lines[0])
            answer_line = offer_crypto((offered.suite,))[0]
            answer_line = dataclasses.replace(answer_line, tag=offered.tag)
            got["keys"] = (offered, answer_line)
            sdp = (
                f"v=0\r\no=callee 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                f"m=audio {rtp_port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a=crypto:{format_crypto(answer_line)}\r\na=sendrecv\r\n"
            ).encode()
            head = invite.split(b"\r\n\r\n", 1)[0].decode()
            keep = [
                line
                for line in head.split("\r\n")[1:]
                if line.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")
            ]
            to = next(line for line in head.split("\r\n") if line.lower().startswith("to:"))
            response = "\r\n".join(
                [
                    "SIP/2.0 200 OK",
                    *keep,
                    f"{to};tag=callee1",
                    f"Contact: <sip:alice@{HOST}:{server_port};transport=tls>",
                    "Content-Type: application/sdp",
                    f"Content-Length: {len(sdp)}",
                    "",
                    "",
                ]
            ).encode()
            writer.write(response + sdp)
            ack = await read_message(reader)
            assert ack.startswith(b"ACK "), ack
            acked.set()
            while True:  # answer the BYE at shutdown
                message = await read_message(reader)
                if message.startswith(b"BYE "):
                    bye = message.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
                    writer.write(
                        ("\r\n".join(["SIP/2.0 200 OK", *bye, "", ""]))
                        .encode()
                        .replace(b"Content-Length: 0\r\n", b"")
                    )
                    return

        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        callee_cert.configure_cert(server_ctx)
        server = await asyncio.start_server(callee, HOST, 0, ssl=server_ctx)
        server_port = server.sockets[0].getsockname()[1]
        try:
            refused = await gateway.originate(f"sip:bob@{HOST}:{port_block + 7}", "x")
            assert getattr(refused, "status", None) == 422, refused
            assert "not TLS" in refused.text, refused
            call_id = await gateway.originate(f"sip:alice@{HOST}:{server_port};transport=tls", "x")
            assert isinstance(call_id, str), call_id
            await asyncio.wait_for(acked.wait(), 10)
            text = got["invite"].decode()
            assert text.startswith(f"INVITE sip:alice@{HOST}:{server_port};transport=tls")
            assert "SIP/2.0/TLS" in text and "m=audio" in text and " RTP/SAVP " in text
            offered, answer_line = got["keys"]
            peer = SrtpSession(offered.key, answer_line.key, offered.suite)  # the callee
            packet = await asyncio.wait_for(rtp_proto.queue.get(), 10)
            assert decode_rtp(peer.unprotect_rtp(packet)).payload_type == 0
            offer_key = offered.key.inline()
            assert offer_key not in repr(events.events)
        finally:
            await gateway.stop(drain_timeout=0)
            server.close()
            rtp.close()
            await simulator.stop()

    loop_run(main)


def sdp_with(rtp_port: int, proto: str, crypto: str | None, direction: str = "sendrecv") -> bytes:
    return (
        f"v=0\r\no=uac 1 2 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {rtp_port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n"
        + (f"a=crypto:{crypto}\r\n" if crypto else "")
        + f"a={direction}\r\n"
    ).encode()


def test_reinvite_keeps_the_keys_and_refuses_a_downgrade_and_late_offer_is_srtp(
    loop_run: Any, port_block: int, tmp_path: Path, events: EventLog
) -> None:
    """On an SRTP call a re-INVITE repeating the caller's line (hold, resume) is answered with
    the same key of ours and the media keeps decrypting; a re-INVITE to plain RTP/AVP gets 488
    and the call stays encrypted. A late-offer INVITE (no SDP) over TLS gets our RTP/SAVP offer
    in the 200, and the ACK's answer keys the media."""
    ca_file, tls = certificates(tmp_path)

    async def main() -> None:
        gateway = Gateway(gateway_config(port_block, tls))
        await gateway.start()
        loop = asyncio.get_running_loop()
        rtp, rtp_proto = await loop.create_datagram_endpoint(_Rtp, local_addr=(HOST, 0))
        rtp_port = rtp.get_extra_info("sockname")[1]
        writer = None
        try:
            assert gateway.transport is not None
            port = gateway.transport.tls_port
            client = ssl.create_default_context(cafile=ca_file)
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=client, server_hostname=HOST
            )
            ours = offer_crypto(("AES_CM_128_HMAC_SHA1_80",))[0]
            line = format_crypto(ours)
            call_id = uuid.uuid4().hex
            writer.write(
                request("INVITE", "TLS", port, call_id, 1, sdp_with(rtp_port, "RTP/SAVP", line))
            )
            final = await final_response(reader)
            body = final.split(b"\r\n\r\n", 1)[1].decode()
            answer_line = re.search(r"a=crypto:(.*)\r\n", body).group(1)
            tag = re.search(rb"(?im)^To:.*;tag=([^;\s]+)", final).group(1).decode()
            writer.write(request("ACK", "TLS", port, call_id, 1, tag=tag))
            answered = parse_crypto(answer_line)
            peer = SrtpSession(answered.key, ours.key, ours.suite)

            async def next_clear() -> bytes:
                while True:
                    packet = await asyncio.wait_for(rtp_proto.queue.get(), 5)
                    return peer.unprotect_rtp(packet)

            await next_clear()
            # Hold (sendonly) and resume with the same line: our line and key stay.
            for cseq, direction in ((2, "sendonly"), (3, "sendrecv")):
                sdp = sdp_with(rtp_port, "RTP/SAVP", line, direction)
                writer.write(request("INVITE", "TLS", port, call_id, cseq, sdp, tag=tag))
                reply = await final_response(reader)
                assert reply.startswith(b"SIP/2.0 200"), reply
                again = re.search(r"a=crypto:(.*)\r\n", reply.split(b"\r\n\r\n", 1)[1].decode())
                assert again and again.group(1) == answer_line
                writer.write(request("ACK", "TLS", port, call_id, cseq, tag=tag))
            while not rtp_proto.queue.empty():
                rtp_proto.queue.get_nowait()
            await next_clear()  # still decrypts with the same keys
            # A downgrade to plain RTP: 488, the call stays as it was.
            writer.write(
                request(
                    "INVITE", "TLS", port, call_id, 4, sdp_with(rtp_port, "RTP/AVP", None), tag=tag
                )
            )
            refused = await final_response(reader)
            assert refused.startswith(b"SIP/2.0 488"), refused
            assert b"SRTP required: the offer is RTP/AVP" in refused
            writer.write(request("ACK", "TLS", port, call_id, 4, tag=tag))
            while not rtp_proto.queue.empty():
                rtp_proto.queue.get_nowait()
            await next_clear()
            writer.write(request("BYE", "TLS", port, call_id, 5, tag=tag))
            assert (await final_response(reader)).startswith(b"SIP/2.0 200")

            # Late offer: our offer in the 200 is RTP/SAVP with a line per enabled suite.
            late_id = uuid.uuid4().hex
            writer.write(request("INVITE", "TLS", port, late_id, 1))
            offer200 = await final_response(reader)
            assert offer200.startswith(b"SIP/2.0 200"), offer200
            offer_body = offer200.split(b"\r\n\r\n", 1)[1].decode()
            assert " RTP/SAVP " in offer_body
            offered = [parse_crypto(v) for v in re.findall(r"a=crypto:(.*)\r\n", offer_body)]
            assert [o.suite for o in offered] == list(DEFAULT_SUITES)  # media.srtp_suites
            gw_rtp = (HOST, int(re.search(r"m=audio (\d+)", offer_body).group(1)))
            mine = dataclasses.replace(offer_crypto((offered[0].suite,))[0], tag=offered[0].tag)
            late_tag = re.search(rb"(?im)^To:.*;tag=([^;\s]+)", offer200).group(1).decode()
            ack_sdp = sdp_with(rtp_port, "RTP/SAVP", format_crypto(mine))
            writer.write(request("ACK", "TLS", port, late_id, 1, ack_sdp, tag=late_tag))
            late_peer = SrtpSession(offered[0].key, mine.key, mine.suite)
            pattern = bytes(range(0x30, 0x30 + 160))
            for seq in range(60):
                rtp.sendto(
                    late_peer.protect_rtp(RtpPacket(0, seq, 160 * seq, 0x99, pattern).encode()),
                    gw_rtp,
                )
                await asyncio.sleep(0.02)
                heard = []
                while not rtp_proto.queue.empty():
                    packet = rtp_proto.queue.get_nowait()
                    try:
                        heard.append(decode_rtp(late_peer.unprotect_rtp(packet)).payload)
                    except Exception:
                        pass  # the first call's last packets
                if pattern in heard:
                    break
            else:
                raise AssertionError("no SRTP echo on the late-offer call")
            writer.write(request("BYE", "TLS", port, late_id, 2, tag=late_tag))
            assert (await final_response(reader)).startswith(b"SIP/2.0 200")
        finally:
            if writer is not None:
                writer.close()
            rtp.close()
            await gateway.stop(drain_timeout=1.0)

    loop_run(main)
