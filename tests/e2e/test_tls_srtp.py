"""SIP over TLS and SRTP through `sip-realtime-gateway run` (issue 13): baresip (libre's TLS
and its srtp module, `mediaenc=srtp-mand`) calls the gateway's TLS listener with SRTP required;
the simulator hears the caller (the gateway decrypted it) and its reply reaches baresip (which
decrypts it without errors). tshark proves the wire: the signalling port carries TLS records and
no SIP in clear, and neither the caller's G.711 (byte for byte what the gateway handed the
voice session) nor the bot's reply appears in any captured datagram.

Certificates come from trustme; everything stays on loopback. A mutual-TLS listener refuses a
client without a certificate (the handshake fails, no call is offered).
"""

from __future__ import annotations

import base64
import re
import secrets
import signal
import socket
import ssl
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from gateway.media.g711 import decode
from gateway.media.rtp import RtpPacket
from gateway.media.srtp import SrtpSession
from gateway.realtime.simulator.options import ToolCallRule
from sip.sdp_crypto import format_crypto, offer_crypto, parse_crypto
from tests.tools.baresip_secure import dial_command, require_baresip_srtp, write_config
from tests.tools.caller_audio import Utterances, silence_ms
from tests.tools.capture import Capture
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.tls_uac import TlsUac, savp_sdp, sip_request
from tests.tools.wire import gateway_rtp, is_silent, locate, reply_audio

CALL_S = 8
TLS_APPLICATION_DATA = "23"  # RFC 8446 5.1 ContentType application_data


def _certificates(tmp_path: Path) -> tuple[trustme.CA, dict[str, str]]:
    """A CA and the gateway's certificate for 127.0.0.1; `[sip.tls]` keys pointing at them."""
    ca = trustme.CA()
    leaf = ca.issue_cert(LOOPBACK)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "gw.crt", tmp_path / "gw.key"
    ca_file.write_bytes(ca.cert_pem.bytes())
    cert_file.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    return ca, {"ca": str(ca_file), "cert_file": str(cert_file), "key_file": str(key_file)}


def _tls_section(ports: InteropPorts, files: dict[str, str], **extra: object) -> dict[str, object]:
    return {
        "enabled": True,
        "port": ports.gateway_tls,
        "cert_file": files["cert_file"],
        "key_file": files["key_file"],
        **extra,
    }


def _caller_audio(sim: SimulatorThread) -> bytes:
    """The caller's G.711 as the gateway handed it to the voice session (decrypted SRTP)."""
    audio = bytearray()
    for record in sim.client_events(0):
        if record.type == "input_audio_buffer.append":
            audio += base64.b64decode(record.event["audio"])
    return bytes(audio)


def _received_pcm(rec_dir: Path) -> bytes:
    """What baresip played out (its sndfile module's dump-*-dec.wav), 16-bit PCM."""
    dumps = sorted(rec_dir.glob("dump-*-dec.wav"))
    assert dumps, f"baresip wrote no decoded dump into {rec_dir}"
    with wave.open(str(dumps[-1]), "rb") as dump:
        return dump.readframes(dump.getnframes())


def test_baresip_over_tls_with_srtp_required_hears_the_bot(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    tshark: Capture,
    ports: InteropPorts,
    utterances: Utterances,
    interop_processes: list[ManagedProcess],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    require_baresip_srtp()
    _, files = _certificates(tmp_path)
    sim = sim_factory()
    gw = realtime_gateway(
        sim.url,
        {"sip": {"tls": _tls_section(ports, files)}, "media": {"srtp": "required"}},
    )
    started = gw.wait_event("gateway.started")
    assert started["tls_port"] == ports.gateway_tls, started
    tshark.tcp = True
    tshark.start()
    work = tmp_path / "baresip"
    config_dir = write_config(
        work, ports, utterances.hello_wav, srtp=True, ca_file=Path(files["ca"])
    )
    uri = f"sip:gateway@{LOOPBACK}:{ports.gateway_tls};transport=tls"
    process = ManagedProcess(
        "baresip",
        dial_command(config_dir, uri, CALL_S),
        cwd=work,
        log_path=work / "baresip.log",
    )
    interop_processes.append(process)
    attach_log(request, "baresip output", process.output)
    rc = process.wait(timeout=CALL_S + 25)
    log = process.output()
    assert rc == 0, log[-3000:]
    assert "Call established" in log, log[-3000:]

    offered = gw.wait_event("call.offered")
    assert (offered["transport"], offered["srtp"]) == ("tls", "required"), offered
    call_id = offered["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id, timeout=15)
    tshark.stop()
    assert ended["cause"] == "remote_bye", ended
    rtp = ended["rtp"]
    assert rtp["packets_received"] >= 50, rtp
    # No SRTP packet failed authentication or replay. baresip also sends two RTCP packets that
    # are not SRTCP (a 16-byte APP packet without an SRTCP trailer, and its closing BYE):
    # libsrtp refuses them, the stream drops and counts them as malformed.
    assert (rtp["srtp_auth_failed"], rtp["srtp_replayed"]) == (0, 0), rtp
    assert rtp["srtp_malformed"] <= 2, rtp

    # Inbound: the gateway decrypted the caller's SRTP, the voice session heard speech.
    caller = _caller_audio(sim)
    assert len(caller) >= 8000, len(caller)
    replies = reply_audio(sim.server_events(0))
    assert replies, "the simulator never answered (no speech reached it)"
    # Outbound: baresip decrypted what we sent without errors and played the bot's reply.
    packets = re.search(r"packets:\s+(\d+)\s+(\d+)", log)
    errors = re.search(r"errors:\s+(\d+)\s+(\d+)", log)
    assert packets and errors, log[-3000:]
    assert int(packets.group(2)) >= 50, log[-3000:]
    assert errors.groups() == ("0", "0"), log[-3000:]
    reply = next(iter(replies.values()))
    played = _received_pcm(work / "rec")
    reply_pcm = decode("PCMU", reply[800:1120])  # 40 ms from inside the reply
    assert reply_pcm in played, "the bot's reply is not in what baresip played"

    # The wire: TLS records both ways on the signalling port, no SIP or key in clear.
    records = tshark.tls_records(ports.gateway_tls)
    to_gw = [r for r in records if r[1] == ports.gateway_tls]
    from_gw = [r for r in records if r[0] == ports.gateway_tls]
    assert any(TLS_APPLICATION_DATA in r[2].split(",") for r in to_gw), records[:20]
    assert any(TLS_APPLICATION_DATA in r[2].split(",") for r in from_gw), records[:20]
    raw = tshark.pcap.read_bytes()
    for clear_text in (b"INVITE sip:", b"a=crypto:", b"SIP/2.0 200"):
        assert clear_text not in raw, f"{clear_text!r} in clear on the wire"
    # ... and no RTP payload in clear: neither a frame of the caller's speech (byte for byte
    # what the gateway decrypted and forwarded: G.711 is passed through, never re-encoded) nor
    # the bot's reply.
    datagrams = read_udp(tshark.pcap)
    wire_payloads = b"".join(d.payload for d in datagrams)
    speech_frames = [
        caller[i : i + 160]
        for i in range(0, len(caller) - 160, 160)
        if not is_silent(caller[i : i + 160])
    ]
    assert len(speech_frames) >= 25, len(speech_frames)
    in_clear = [f for f in speech_frames if f in wire_payloads]
    assert not in_clear, f"{len(in_clear)} of the caller's frames in clear on the wire"
    low, high = ports.baresip_rtp
    sent = [p for port in range(low, high + 1) for p in gateway_rtp(datagrams, ports, port)]
    assert len(sent) >= 50, "no RTP from the gateway to baresip"
    assert locate(reply, sent) is None, "the bot's reply is in clear on the wire"
    assert reply[800:1120] not in wire_payloads


def test_mutual_tls_refuses_a_client_without_a_certificate(
    realtime_gateway: Callable[..., GatewayProcess],
    sim_factory: Callable[..., SimulatorThread],
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """`verify_client`: a TLS client that presents no certificate, or one from another CA, is
    refused in the handshake; one with a certificate from `client_ca_file` gets an answer."""
    ca, files = _certificates(tmp_path)
    sim = sim_factory()
    gw = realtime_gateway(
        sim.url,
        {
            "sip": {
                "tls": _tls_section(ports, files, verify_client=True, client_ca_file=files["ca"])
            }
        },
    )
    options = (
        f"OPTIONS sip:gateway@{LOOPBACK}:{ports.gateway_tls};transport=tls SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {LOOPBACK}:9;branch=z9hG4bK-mtls-1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@example.test>;tag=1\r\n"
        f"To: <sip:gateway@{LOOPBACK}>\r\nCall-ID: mtls-probe\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()

    def exchange(client: ssl.SSLContext) -> bytes:
        with socket.create_connection((LOOPBACK, ports.gateway_tls), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
                tls.sendall(options)
                return tls.recv(4096)

    def client_context(certificate: trustme.LeafCert | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=files["ca"])
        if certificate is not None:
            certificate.configure_cert(context)
        return context

    # TLS 1.3 reports a refused client certificate at the first read, not in the handshake.
    for refused in (client_context(None), client_context(trustme.CA().issue_cert("x.test"))):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            reply = exchange(refused)
            if not reply:
                raise ConnectionResetError("closed without a reply")
    gw.wait_event("sip.tls_handshake_failed")
    accepted = exchange(client_context(ca.issue_cert("trunk.example.test")))
    assert accepted.startswith(b"SIP/2.0 200"), accepted[:200]
    assert not gw.find("call.offered")


def _served_certificate(port: int, ca_files: list[str]) -> bytes:
    context = ssl.create_default_context()
    for ca_file in ca_files:
        context.load_verify_locations(cafile=ca_file)
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_sighup_reloads_the_certificate_and_keeps_it_when_the_new_one_is_broken(
    gateway: Callable[..., GatewayProcess], ports: InteropPorts, tmp_path: Path
) -> None:
    """Certificates renewed in place (same paths) are served after SIGHUP; a broken pair is
    refused with an ERROR naming the problem and the running certificate stays."""
    first_ca, files = _certificates(tmp_path)
    gw = gateway({"sip": {"tls": _tls_section(ports, files)}})
    first = _served_certificate(ports.gateway_tls, [files["ca"]])

    second_ca = trustme.CA()
    renewed = second_ca.issue_cert(LOOPBACK)
    second_ca_file = tmp_path / "ca2.pem"
    second_ca_file.write_bytes(second_ca.cert_pem.bytes())
    Path(files["cert_file"]).write_bytes(b"".join(p.bytes() for p in renewed.cert_chain_pems))
    Path(files["key_file"]).write_bytes(renewed.private_key_pem.bytes())
    since = gw.mark()
    gw.process.popen.send_signal(signal.SIGHUP)
    gw.wait_event("sip.tls_reloaded", since=since)
    second = _served_certificate(ports.gateway_tls, [str(second_ca_file)])
    assert second != first
    assert second == ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())

    # A key of another certificate: refused, the renewed certificate stays in use.
    Path(files["key_file"]).write_bytes(first_ca.issue_cert(LOOPBACK).private_key_pem.bytes())
    since = gw.mark()
    gw.process.popen.send_signal(signal.SIGHUP)
    failed = gw.wait_event("sip.tls_reload_failed", since=since)
    assert failed["level"] == "error" and files["cert_file"] in failed["message"], failed
    assert not gw.find("routes.reloaded", since=since)
    assert _served_certificate(ports.gateway_tls, [str(second_ca_file)]) == second


def test_transfer_on_a_tls_srtp_call_sends_the_refer_over_the_callers_tls_connection(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    ports: InteropPorts,
    utterances: Utterances,
    tmp_path: Path,
) -> None:
    """The model transfers a caller who came over TLS with SRTP: the REFER (to a `sips:`
    target) goes back on the caller's TLS connection, the caller's 202 and NOTIFY 200 end the
    call as transferred, with the BYE on the same connection."""
    _, files = _certificates(tmp_path)
    operator = f"sips:op@{LOOPBACK}:{ports.base + 35}"
    sim = sim_factory(
        tool_calls=(ToolCallRule("transfer_call", {"target": "operator"}, on_turn=1),)
    )
    gw = realtime_gateway(
        sim.url,
        {
            "sip": {"tls": _tls_section(ports, files)},
            "media": {"srtp": "required"},
            "calls": {"transfer_targets": [{"name": "operator", "uri": operator}]},
        },
    )
    suite = "AES_CM_128_HMAC_SHA1_80"
    ours = offer_crypto((suite,))[0]
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind((LOOPBACK, ports.baresip_rtp[0]))
    uac = TlsUac(ports.gateway_tls, files["ca"])
    uac.sock.settimeout(30)
    call_id = f"tls-transfer-{secrets.token_hex(4)}"
    port = ports.gateway_tls
    try:
        sdp = savp_sdp(ports.baresip_rtp[0], "RTP/SAVP", [format_crypto(ours)])
        uac.send(sip_request("INVITE", "TLS", port, call_id, 1, sdp))
        ok = uac.final()
        assert ok.startswith(b"SIP/2.0 200"), ok[:300]
        body = ok.split(b"\r\n\r\n", 1)[1].decode()
        answer = parse_crypto(re.search(r"a=crypto:(.*)\r\n", body).group(1))
        gw_rtp = (LOOPBACK, int(re.search(r"m=audio (\d+)", body).group(1)))
        tag = re.search(rb"(?im)^To:.*;tag=([^;\s]+)", ok).group(1).decode()
        uac.send(sip_request("ACK", "TLS", port, call_id, 1, tag=tag))
        caller = SrtpSession(answer.key, ours.key, suite)
        speech = silence_ms(600) + utterances.hello + silence_ms(1500)
        for seq, at in enumerate(range(0, len(speech) - 159, 160)):
            packet = RtpPacket(0, seq, 160 * seq, 0x4242, speech[at : at + 160]).encode()
            rtp.sendto(caller.protect_rtp(packet), gw_rtp)
            time.sleep(0.02)
        refer = uac.request_of("REFER")
        refer_to = re.search(rb"(?im)^Refer-To:\s*(.*?)\r$", refer)
        assert refer_to and operator.encode() in refer_to.group(1), refer[:400]
        assert b"SIP/2.0/TLS" in refer.split(b"\r\n\r\n")[0]
        uac.respond(refer, 202, "Accepted")
        notify = sip_request("NOTIFY", "TLS", port, call_id, 2, tag=tag).replace(
            b"Content-Length: 0\r\n\r\n",
            b"Event: refer\r\nSubscription-State: terminated;reason=noresource\r\n"
            b"Content-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n",
        )
        uac.send(notify)
        assert uac.final().startswith(b"SIP/2.0 200")
        bye = uac.request_of("BYE")
        uac.respond(bye, 200, "OK")
    finally:
        uac.close()
        rtp.close()
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "transferred", ended
    assert (ended["rtp"]["srtp_auth_failed"], ended["rtp"]["srtp_replayed"]) == (0, 0)
