"""SDES-SRTP against a real peer, the building blocks alone (issue 13, first part):
baresip (srtp.so, mediaenc=srtp-mand) calls a minimal UAS in this test that answers with
sip/sdp_crypto.py and protects/unprotects media with gateway/media/srtp.py. Both directions
must decrypt: we unprotect baresip's SRTP and compare it with the caller's clear u-law, and
baresip reports the SRTP we echo back as received audio.

Signalling is plain UDP on loopback (`allow_sdes_over_plain` in the decision), to test the
blocks without TLS; the product path (TLS + SRTP through `run`) is tests/e2e/test_tls_srtp.py.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from gateway.media.g711 import ulaw_to_pcm16
from gateway.media.srtp import SrtpError, SrtpSession
from sip.sdp_crypto import SrtpAction, SrtpPolicy, decide_srtp, format_crypto
from tests.tools.baresip_secure import dial_command, require_baresip_srtp, write_config
from tests.tools.gateway_process import LOOPBACK
from tests.tools.media import MediaFiles
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log

pytestmark = pytest.mark.interop

CALL_S = 4


def _header(message: str, name: str) -> str:
    found = re.search(rf"^{name}:[ \t]*(.*?)\r?$", message, re.MULTILINE | re.IGNORECASE)
    assert found, f"no {name} in {message!r}"
    return found.group(1)


def _answer(invite: str, sdp: str, sip_port: int) -> bytes:
    vias = re.findall(r"^Via:[ \t]*(.*?)\r?$", invite, re.MULTILINE | re.IGNORECASE)
    lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in vias)]
    lines += [
        f"From: {_header(invite, 'From')}",
        f"To: {_header(invite, 'To')};tag=srtp-test",
        f"Call-ID: {_header(invite, 'Call-ID')}",
        f"CSeq: {_header(invite, 'CSeq')}",
        f"Contact: <sip:gw@{LOOPBACK}:{sip_port}>",
        "Content-Type: application/sdp",
        f"Content-Length: {len(sdp)}",
        "",
        sdp,
    ]
    return "\r\n".join(lines).encode()


def _ok(request: str) -> bytes:
    vias = re.findall(r"^Via:[ \t]*(.*?)\r?$", request, re.MULTILINE | re.IGNORECASE)
    lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in vias)]
    for name in ("From", "To", "Call-ID", "CSeq"):
        lines.append(f"{name}: {_header(request, name)}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def test_baresip_srtp_both_directions(
    tmp_path: Path,
    ports: InteropPorts,
    media_dir: MediaFiles,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> None:
    require_baresip_srtp()
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind((LOOPBACK, ports.gateway_sip))
    rtp.bind((LOOPBACK, ports.gateway_rtp[0]))
    try:
        process = ManagedProcess(
            "baresip",
            dial_command(
                write_config(tmp_path, ports, media_dir.padded_wav, srtp=True),
                f"sip:gw@{LOOPBACK}:{ports.gateway_sip}",
                CALL_S,
            ),
            cwd=tmp_path,
            log_path=tmp_path / "baresip.log",
        )
        interop_processes.append(process)
        attach_log(request, "baresip output", process.output)

        sip.settimeout(15)
        data, peer_sip = sip.recvfrom(65535)
        invite = data.decode()
        assert invite.startswith("INVITE ")
        m_line = re.search(r"^m=audio (\d+) (\S+) ", invite, re.MULTILINE)
        assert m_line, invite
        cryptos = re.findall(r"^a=crypto:(.*?)\r?$", invite, re.MULTILINE)
        decision = decide_srtp(
            m_line.group(2),
            cryptos,
            SrtpPolicy.REQUIRED,
            signalling_secure=False,
            allow_sdes_over_plain=True,
        )
        assert decision.action is SrtpAction.CRYPTO, decision.reason
        assert decision.choice is not None
        peer_rtp = (LOOPBACK, int(m_line.group(1)))
        sdp = "\r\n".join(
            [
                "v=0",
                f"o=- 1 1 IN IP4 {LOOPBACK}",
                "s=-",
                f"c=IN IP4 {LOOPBACK}",
                "t=0 0",
                f"m=audio {ports.gateway_rtp[0]} RTP/SAVP 0",
                "a=rtpmap:0 PCMU/8000",
                f"a=crypto:{format_crypto(decision.choice.local)}",
                "a=sendrecv",
                "",
            ]
        )
        srtp = SrtpSession(
            decision.choice.remote.key, decision.choice.local.key, decision.choice.remote.suite
        )
        answer = _answer(invite, sdp, ports.gateway_sip)
        sip.sendto(answer, peer_sip)

        # Media until baresip hangs up (-t): unprotect what arrives, echo it back protected.
        sip.setblocking(False)
        rtp.settimeout(0.2)
        clear_payload = bytearray()
        wire_payload = bytearray()
        got_bye = False
        deadline = time.monotonic() + CALL_S + 15
        while not got_bye and time.monotonic() < deadline:
            try:
                while True:
                    msg = sip.recv(65535).decode()
                    if msg.startswith("BYE "):
                        sip.sendto(_ok(msg), peer_sip)
                        got_bye = True
                    elif msg.startswith("INVITE "):  # our 200 OK was lost: send it again
                        sip.sendto(answer, peer_sip)
            except BlockingIOError:
                pass
            try:
                packet = rtp.recv(2048)
            except TimeoutError:
                continue
            try:
                clear = srtp.unprotect_rtp(packet)
            except SrtpError:
                continue  # counted in srtp.stats, checked below
            if clear[1] & 0x7F == 0:
                wire_payload += packet[12:-10]
                clear_payload += clear[12:]
            rtp.sendto(srtp.protect_rtp(clear), peer_rtp)
        assert got_bye, "baresip did not hang up"
        rc = process.wait(timeout=20)
    finally:
        sip.close()
        rtp.close()

    assert (srtp.stats.auth_failed, srtp.stats.replayed, srtp.stats.bad_packets) == (0, 0, 0)
    assert srtp.stats.unprotected >= 50, srtp.stats  # ~1 s of 20 ms packets at least
    # What we decrypted is the caller's speech, in order (baresip encodes the WAV with its own
    # u-law encoder, which rounds a few samples differently from sox's: compare as waveforms);
    # on the wire it was not in clear.
    speech = np.frombuffer(ulaw_to_pcm16(media_dir.speech_ulaw.read_bytes()), np.int16)
    heard = np.frombuffer(ulaw_to_pcm16(bytes(clear_payload)), np.int16)
    n = min(len(speech), len(heard))
    assert n >= 8000
    assert np.corrcoef(speech[:n].astype(float), heard[:n].astype(float))[0, 1] > 0.99
    assert bytes(clear_payload[160:1600]) not in bytes(wire_payload)
    log = process.output()
    assert rc == 0, log
    # baresip's end-of-call statistics: what it received from us decrypted without errors.
    packets = re.search(r"packets:\s+(\d+)\s+(\d+)", log)
    errors = re.search(r"errors:\s+(\d+)\s+(\d+)", log)
    assert packets and errors, log
    assert int(packets.group(2)) >= 50, log
    assert errors.groups() == ("0", "0"), log
