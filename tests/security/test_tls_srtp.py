"""Attacks on SIP over TLS and SRTP through `sip-realtime-gateway run` (issue 13): SDES keys
over plain signalling refused, garbage `a=crypto` lines answered 488 (never a crash), an SRTP
replay/forgery flood and plain RTP into an SRTP call dropped and counted, and TLS handshake
slowloris bounded by the stream caps and deadline (sip/transport.py). Keys never reach the log.
"""

from __future__ import annotations

import base64
import re
import secrets
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.media.rtp import RtpPacket, decode_rtp
from gateway.media.srtp import SrtpSession
from sip.sdp_crypto import format_crypto, offer_crypto, parse_crypto
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.ports import InteropPorts
from tests.tools.tls_uac import TlsUac, savp_sdp, sip_request

pytestmark = pytest.mark.interop

TOKEN_ENV = "TLSSEC_TEST_CONTROL_TOKEN"
SUITE = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture
def control_token(monkeypatch: pytest.MonkeyPatch) -> str:
    token = secrets.token_hex(16)
    monkeypatch.setenv(TOKEN_ENV, token)
    return token


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    leaf = ca.issue_cert(LOOPBACK)
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "gw.crt", "key": tmp_path / "gw.key"}
    files["ca"].write_bytes(ca.cert_pem.bytes())
    files["cert"].write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    files["key"].write_bytes(leaf.private_key_pem.bytes())
    return {k: str(v) for k, v in files.items()}


def _config(ports: InteropPorts, pki: dict[str, str], srtp: str = "required", **sip: Any) -> Any:
    tls = {"enabled": True, "port": ports.gateway_tls, "cert_file": pki["cert"]}
    tls["key_file"] = pki["key"]
    return {
        "sip": {"tls": tls, **sip},
        "media": {"srtp": srtp},
        "control": {"token_env": TOKEN_ENV},
    }


def _metrics(gw: GatewayProcess, token: str) -> str:
    url = gw.find("gateway.started")[0]["control"].rstrip("/") + "/metrics"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _warning(reply: bytes) -> str:
    found = re.search(rb"(?im)^Warning:\s*(.*?)\r$", reply)
    return found.group(1).decode() if found else ""


def test_sdes_over_plain_udp_is_refused_by_default(
    gateway, ports: InteropPorts, pki: dict[str, str], control_token: str
) -> None:
    """Keys in a plain-UDP INVITE could be read by anyone on the path: 488 naming why, the
    key never logged (RFC 4568 8.3; only with sip.tls.allow_sdes_over_plain)."""
    gw: GatewayProcess = gateway(_config(ports, pki, srtp="optional"))
    line = format_crypto(offer_crypto((SUITE,))[0])
    key = line.split("inline:")[1]
    call_id = f"plain-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((LOOPBACK, 0))
        udp.settimeout(10)
        invite = sip_request(
            "INVITE", "UDP", ports.gateway_sip, call_id, 1, savp_sdp(4000, "RTP/SAVP", [line])
        )
        udp.sendto(invite, (LOOPBACK, ports.gateway_sip))
        while True:
            reply = udp.recv(65535)
            if not reply.startswith(b"SIP/2.0 1"):
                break
    assert reply.startswith(b"SIP/2.0 488"), reply
    assert "SDES keys over plain signalling are not allowed" in _warning(reply)
    rejected = gw.wait_event("call.rejected", call_id=call_id)
    assert rejected["status"] == 488
    assert key not in gw.log_text()


GARBAGE = {
    "bad base64": ["1 AES_CM_128_HMAC_SHA1_80 inline:!!!!"],
    "short key": ["1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"x" * 10).decode()],
    "mki": [
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"k" * 30).decode() + "|2^20|1:4"
    ],
    "kdr": ["1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"k" * 30).decode() + " KDR=1"],
    "unknown suite": ["1 F8_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"k" * 30).decode()],
    "tiny lifetime": [
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"k" * 30).decode() + "|1024"
    ],
    "huge line": ["1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 8000],
    "many lines": [f"{i} AES_CM_128_HMAC_SHA1_80 inline:####" for i in range(1, 200)],
    "no crypto": [],
    "binary": ["1 \x00\x01\x02 inline:\x7f"],
}


def test_savp_with_garbage_crypto_gets_488_and_the_gateway_carries_on(
    gateway, ports: InteropPorts, pki: dict[str, str], control_token: str
) -> None:
    gw: GatewayProcess = gateway(_config(ports, pki))
    uac = TlsUac(ports.gateway_tls, pki["ca"])
    try:
        for name, lines in GARBAGE.items():
            call_id = f"garbage-{name.replace(' ', '-')}"
            uac.send(
                sip_request(
                    "INVITE",
                    "TLS",
                    ports.gateway_tls,
                    call_id,
                    1,
                    savp_sdp(4000, "RTP/SAVP", lines),
                )
            )
            reply = uac.final()
            assert reply.startswith(b"SIP/2.0 488"), (name, reply[:300])
            assert _warning(reply).startswith("399 "), (name, reply[:300])
            uac.send(sip_request("ACK", "TLS", ports.gateway_tls, call_id, 1))
        # Still answering: a good offer gets its 200.
        good = format_crypto(offer_crypto((SUITE,))[0])
        uac.send(
            sip_request(
                "INVITE", "TLS", ports.gateway_tls, "good", 1, savp_sdp(4000, "RTP/SAVP", [good])
            )
        )
        ok = uac.final()
        assert ok.startswith(b"SIP/2.0 200"), ok[:300]
        tag = re.search(rb"(?im)^To:.*;tag=([^;\s]+)", ok).group(1).decode()
        uac.send(sip_request("ACK", "TLS", ports.gateway_tls, "good", 1, tag=tag))
        uac.send(sip_request("BYE", "TLS", ports.gateway_tls, "good", 2, tag=tag))
        assert uac.final().startswith(b"SIP/2.0 200")
    finally:
        uac.close()
    assert not [e for e in gw.events if e.get("level") in ("error", "critical")], gw.log_tail()


def test_srtp_replay_forgery_and_plain_rtp_flood_are_dropped_and_counted(
    gateway, ports: InteropPorts, pki: dict[str, str], control_token: str
) -> None:
    gw: GatewayProcess = gateway(_config(ports, pki))
    ours = offer_crypto((SUITE,))[0]
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind((LOOPBACK, ports.baresip_rtp[0]))
    uac = TlsUac(ports.gateway_tls, pki["ca"])
    call_id = f"flood-{secrets.token_hex(4)}"
    try:
        sdp = savp_sdp(ports.baresip_rtp[0], "RTP/SAVP", [format_crypto(ours)])
        uac.send(sip_request("INVITE", "TLS", ports.gateway_tls, call_id, 1, sdp))
        ok = uac.final()
        assert ok.startswith(b"SIP/2.0 200"), ok[:300]
        body = ok.split(b"\r\n\r\n", 1)[1].decode()
        answer = parse_crypto(re.search(r"a=crypto:(.*)\r\n", body).group(1))
        gw_rtp = (LOOPBACK, int(re.search(r"m=audio (\d+)", body).group(1)))
        tag = re.search(rb"(?im)^To:.*;tag=([^;\s]+)", ok).group(1).decode()
        uac.send(sip_request("ACK", "TLS", ports.gateway_tls, call_id, 1, tag=tag))
        peer = SrtpSession(answer.key, ours.key, SUITE)

        genuine = [
            peer.protect_rtp(RtpPacket(0, 1000 + i, 160 * i, 0x1234, b"\x55" * 160).encode())
            for i in range(50)
        ]
        for packet in genuine:  # real time: 1 s of audio
            rtp.sendto(packet, gw_rtp)
            time.sleep(0.02)
        # The flood, in bursts (a burst larger than the socket buffer would only be dropped
        # by the kernel): every genuine packet replayed 5 times; forged packets with new
        # indices (one bit of the tag flipped; a forged copy of a packet already seen is a
        # replay for libsrtp, which checks the index first); plain RTP into the SRTP call.
        forged = []
        for i in range(200):
            packet = bytearray(
                peer.protect_rtp(RtpPacket(0, 1100 + i, 0, 0x1234, b"\x55" * 160).encode())
            )
            packet[-1 - (i % 10)] ^= 0x40
            forged.append(bytes(packet))
        plain = [RtpPacket(0, 1400 + i, 0, 0x1234, b"\x55" * 160).encode() for i in range(100)]
        flood = genuine * 5 + forged + plain
        for start in range(0, len(flood), 25):
            for packet in flood[start : start + 25]:
                rtp.sendto(packet, gw_rtp)
            time.sleep(0.005)
        # The gateway keeps sending us SRTP that decrypts.
        rtp.settimeout(5)
        clear = decode_rtp(peer.unprotect_rtp(rtp.recv(2048)))
        assert clear.payload_type == 0
        uac.send(sip_request("BYE", "TLS", ports.gateway_tls, call_id, 2, tag=tag))
        assert uac.final().startswith(b"SIP/2.0 200")
    finally:
        uac.close()
        rtp.close()
    ended = gw.wait_event("call.ended", call_id=call_id)
    stats = ended["rtp"]
    assert stats["packets_received"] == 50, stats  # nothing of the flood got through
    # Every flood packet that reached the socket was dropped and counted by kind (bounds, not
    # equality: under load the kernel may drop a few of a burst before the gateway reads).
    assert 200 <= stats["srtp_replayed"] <= 250, stats
    assert 240 <= stats["srtp_auth_failed"] <= 300, stats  # forged + plain
    assert stats["srtp_malformed"] == 0, stats
    text = _metrics(gw, control_token)
    replay_metric = 'srg_rtp_dropped_packets_total{reason="srtp_replay"}'
    assert _metric(text, replay_metric) == stats["srtp_replayed"]
    auth_metric = 'srg_rtp_dropped_packets_total{reason="srtp_auth"}'
    assert _metric(text, auth_metric) == stats["srtp_auth_failed"]
    assert ours.key.inline() not in gw.log_text()
    assert answer.key.inline() not in gw.log_text()


def _closed_by_gateway(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_tls_handshake_slowloris_is_bounded(
    gateway, ports: InteropPorts, pki: dict[str, str], control_token: str
) -> None:
    """Connections to the TLS port that never finish the handshake (silent, or a ClientHello
    byte by byte) are closed after sip.tcp_message_deadline_s; past the per-source cap they
    are closed at once; a real TLS client from another source is served meanwhile."""
    gw: GatewayProcess = gateway(
        _config(ports, pki, tcp_message_deadline_s=3.0, tcp_max_connections_per_source=3)
    )
    address = (LOOPBACK, ports.gateway_tls)
    silent = [socket.create_connection(address, timeout=5) for _ in range(2)]
    trickle = socket.create_connection(address, timeout=5)
    trickle.sendall(b"\x16\x03\x01")  # the start of a TLS record header, then nothing
    extra = [socket.create_connection(address, timeout=5) for _ in range(2)]
    try:
        for sock in extra:
            assert _closed_by_gateway(sock, timeout=5), "connection past the cap kept"
        # A legitimate client (another source address) completes its handshake meanwhile.
        context = ssl.create_default_context(cafile=pki["ca"])
        raw = socket.create_connection(address, timeout=5, source_address=("127.0.0.2", 0))
        with context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
            tls.sendall(sip_request("OPTIONS", "TLS", ports.gateway_tls, "legit", 1))
            assert tls.recv(4096).startswith(b"SIP/2.0 200")
        for sock in [*silent, trickle]:
            assert _closed_by_gateway(sock, timeout=20), "handshake slowloris still open"
    finally:
        for sock in [*silent, trickle, *extra]:
            sock.close()
    gw.wait_event("sip.tcp_source_cap")
    text = _metrics(gw, control_token)
    assert _metric(text, 'srg_sip_tcp_connections_refused_total{reason="source_cap"}') == 2
    assert _metric(text, 'srg_sip_tcp_connections_closed_total{reason="deadline"}') >= 3
