"""End to end, SIP transports and IP families through `python -m gateway run` (uvloop, as
shipped: gateway/cli.py installs it), issue 10.

- SIPp calls over TCP (`-t t1`): INVITE/100/180/200/ACK/BYE on one connection, the caller's
  speech reaches the simulator and the bot's reply reaches the caller's RTP port verbatim;
  the same call over UDP is test_audio.py's.
- An offer whose `c=` is IPv6 gets IPv6 media when IPv6 media is configured (SIP on ::1, or
  `media.ipv6_address`): the answer says `c=IN IP6 ::1`, RTP sent from [::1] comes back over
  IPv6; without an IPv6 media address it gets `488` with `Warning: 301` and the call is
  accounted (srg_calls_active back to 0, `call.ended` logged).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools import rawsip
from tests.tools.caller_audio import Utterances, silence_ms, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.control import auth_header
from tests.tools.gateway_process import GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.raw_uac import rtp
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp, codec_play_call
from tests.tools.wire import gateway_rtp, locate, reply_audio

pytestmark = pytest.mark.interop

PREFIX_MS = 300
SILENCE_MS = 500
V6 = "::1"


def _needs_raw_socket() -> None:
    if os.geteuid() != 0:
        pytest.skip("SIPp play_pcap_audio needs a raw socket (root or CAP_NET_RAW)")


def _needs_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind((V6, 0))
    except OSError:
        pytest.skip("no IPv6 loopback (::1) on this machine")


def test_sipp_call_over_tcp_with_audio_both_ways(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    _needs_raw_socket()
    sim = sim_factory()  # the bot plays the caller's utterance back
    gw = realtime_gateway(sim.url)
    pcap = tmp_path / "caller.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(1500))
    reply_ms_expected = len(utterances.hello) // 8 + PREFIX_MS + SILENCE_MS
    result = codec_play_call(sipp, tshark, pcap, play_ms + reply_ms_expected + 500, transport="tcp")
    # Every SIP message of the call went over TCP (SIPp's own trace of what it sent/received).
    assert "SIP/2.0/TCP" in result.messages and "SIP/2.0/UDP" not in result.messages
    for start_line in ("INVITE sip:", "SIP/2.0 200 OK", "ACK sip:", "BYE sip:"):
        assert start_line in result.messages, start_line
    offered = gw.wait_event("call.offered")
    assert offered["transport"] == "tcp", offered
    call_id = offered["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended
    assert ended["rtp_packets_in"] > 100, ended

    # Caller -> model: the simulator's VAD heard one utterance and echoed it.
    server = sim.server_events(0)
    assert sum(r.type == "input_audio_buffer.speech_started" for r in server) == 1
    replies = reply_audio(server)
    assert len(replies) == 1, list(replies)
    ((_, reply),) = replies.items()
    assert len(reply) >= len(utterances.hello)
    # Model -> caller: the reply is on the wire to SIPp's media port, byte for byte.
    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    assert packets, "no RTP from the gateway in the capture"
    assert locate(reply, packets) is not None, "the bot's audio is not on the wire verbatim"


# ---------------------------------------------------------------------------------------------
# IPv6 media


def _v6_offer(rtp_port: int) -> str:
    return (
        "v=0\r\n"
        f"o=v6caller 1 1 IN IP6 {V6}\r\n"
        "s=-\r\n"
        f"c=IN IP6 {V6}\r\n"
        "t=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    )


class _V6Rtp:
    """The caller's RTP socket on [::1]."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.bind((V6, 0))
        self.port: int = self.sock.getsockname()[1]

    def exchange(self, dest: tuple[str, int], payload: bytes, seconds: float) -> list[bytes]:
        """Send 20 ms PCMU frames of `payload` to `dest` for `seconds`; return what came back."""
        got: list[bytes] = []
        ssrc = secrets.randbits(32)
        self.sock.settimeout(0.02)
        deadline = time.monotonic() + seconds
        seq = 0
        while time.monotonic() < deadline:
            self.sock.sendto(rtp(seq, seq * 160, ssrc, payload), dest)
            seq += 1
            end = time.monotonic() + 0.02
            while (left := end - time.monotonic()) > 0:
                self.sock.settimeout(left)
                try:
                    data, source = self.sock.recvfrom(2048)
                except TimeoutError:
                    break
                assert source[0] == V6 and source[1] == dest[1], source
                got.append(data)
        return got

    def close(self) -> None:
        self.sock.close()


def _answer_media(reply: rawsip.Reply) -> tuple[str, str, int]:
    body = reply.raw.split(b"\r\n\r\n", 1)[1].decode()
    conn = re.search(r"^c=IN (IP[46]) (\S+)\r?$", body, re.M)
    media = re.search(r"^m=audio (\d+) ", body, re.M)
    assert conn and media, body
    return conn.group(1), conn.group(2), int(media.group(1))


def _calls_active(gw: GatewayProcess) -> float:
    url = gw.find("gateway.started")[0]["control"].rstrip("/") + "/metrics"
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth_header())) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("srg_calls_active")
    )


class _V6Peer(rawsip.UdpPeer):
    """rawsip.UdpPeer over IPv6 (signalling to a gateway bound to ::1); `local` and `target`
    hold bracketed hosts, as they are written in SIP."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.bind((V6, 0))
        self.local = (f"[{V6}]", self.sock.getsockname()[1])
        self.target = (f"[{V6}]", port)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (V6, self.target[1]))


def _ipv6_call(gw: GatewayProcess, peer: rawsip.UdpPeer, *, echo: bool) -> None:
    """An IPv6 offer (sent over `peer`): 200 with c=IN IP6 ::1, RTP back over IPv6 (our own
    frames when the gateway echoes)."""
    media = _V6Rtp()
    dialog = rawsip.new_dialog()
    try:
        peer.send(
            rawsip.request("INVITE", dialog, peer.local, peer.target, body=_v6_offer(media.port))
        )
        reply = peer.final(10)
        assert reply is not None and reply.status == 200, reply
        peer.ack(dialog, reply)
        addrtype, address, port = _answer_media(reply)
        assert (addrtype, address) == ("IP6", V6)
        speech = bytes(range(1, 161))
        back = media.exchange((V6, port), speech, seconds=1.5)
        assert back, "no RTP came back over IPv6"
        if echo:
            assert any(packet[12:] == speech for packet in back), "our audio was not echoed"
        dialog.cseq = 2
        peer.send(
            rawsip.request(
                "BYE",
                dialog,
                peer.local,
                peer.target,
                to_tag=reply.to_tag,
                branch=f"z9hG4bK{secrets.token_hex(6)}",
            )
        )
        bye = peer.final(10, "BYE")
        assert bye is not None and bye.status == 200, bye
        ended = gw.wait_event("call.ended", call_id=dialog.call_id)
        assert ended["cause"] == "remote_bye" and ended["rtp_packets_in"] > 0, ended
        assert ended["rtp_packets_out"] > 0, ended
    finally:
        media.close()
        peer.close()


def test_ipv6_offer_gets_ipv6_media_with_ipv6_media_address(
    gateway: Callable[..., GatewayProcess],
    ports: InteropPorts,
) -> None:
    """SIP over IPv4, `media.ipv6_address = "::1"`: the IPv6 offer is answered on ::1."""
    _needs_ipv6_loopback()
    gw = gateway({"media": {"ipv6_address": V6}}, echo=True)
    peer = rawsip.UdpPeer("127.0.0.1", ("127.0.0.1", ports.gateway_sip))
    _ipv6_call(gw, peer, echo=True)
    assert _calls_active(gw) == 0


def test_ipv6_offer_gets_ipv6_media_with_sip_on_ipv6_loopback(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    ports: InteropPorts,
) -> None:
    """SIP bound to ::1 (signalling and media over IPv6), bridged to the simulator: the
    gateway's stream (idle audio, then the bot) reaches the caller over IPv6."""
    _needs_ipv6_loopback()
    sim = sim_factory()
    gw = realtime_gateway(sim.url, sip_host=V6)
    _ipv6_call(gw, _V6Peer(ports.gateway_sip), echo=False)
    assert _calls_active(gw) == 0


def test_ipv6_offer_to_ipv4_only_gateway_gets_488_with_warning(
    gateway: Callable[..., GatewayProcess],
    ports: InteropPorts,
) -> None:
    gw = gateway(echo=True)
    peer = rawsip.UdpPeer("127.0.0.1", ("127.0.0.1", ports.gateway_sip))
    dialog = rawsip.new_dialog()
    try:
        peer.send(
            rawsip.request(
                "INVITE", dialog, peer.local, peer.target, body=_v6_offer(peer.local[1] + 2)
            )
        )
        reply = peer.final(10)
        assert reply is not None and reply.status == 488, reply
        peer.ack(dialog, reply)
        warning = reply.header("Warning") or ""
        assert re.fullmatch(r'301 \S+ "[^"]+"', warning), warning
    finally:
        peer.close()
    ended = gw.wait_event("call.ended", call_id=dialog.call_id)
    assert ended["status"] == 488, ended
    assert _calls_active(gw) == 0
