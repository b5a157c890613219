"""A bare SIP caller over one UDP socket, blocking (no asyncio, no SIPp): for attack tests that
need full control of every packet (no ACK, a chosen source address, RTP from threads).

`RawUac(local_ip, gateway)`: `invite()` sends an INVITE with a PCMU SDP offer naming this UAC's
RTP socket; `final_response()` reads until a final response (answering nothing else);
`ack()` / `bye()` complete or end the dialog. `RtpSink` counts what arrives on a socket, and
`rtp(seq, ts, ssrc, payload)` builds one packet.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import threading
import time


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


class RtpSink:
    """A UDP socket on `ip` that counts (and keeps the sources of) every datagram it gets."""

    def __init__(self, ip: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.2)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.received = 0
        self.sources: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-sink-{port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _, source = self.sock.recvfrom(4096)
            except OSError:
                continue
            self.received += 1
            self.sources.add(source)

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        self.sock.sendto(data, dest)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.received >= count:
                return True
            time.sleep(0.01)
        return self.received >= count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class RawUac:
    """One call from `local_ip` to the gateway at `gateway` (host, port), over UDP."""

    def __init__(self, local_ip: str, gateway: tuple[str, int], rtp_sink: RtpSink) -> None:
        self.gateway = gateway
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local_ip, 0))
        self.local = self.sock.getsockname()
        self.rtp = rtp_sink
        self.call_id = f"{secrets.token_hex(8)}@{local_ip}"
        self.from_tag = secrets.token_hex(4)
        self.to_tag = ""
        self.remote_target = f"sip:bot@{gateway[0]}:{gateway[1]}"
        self.cseq = 1

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch=z9hG4bK{secrets.token_hex(6)};rport"

    def _request(self, method: str, uri: str, cseq: int, body: bytes = b"") -> bytes:
        to = f"<sip:bot@{self.gateway[0]}:{self.gateway[1]}>"
        if self.to_tag:
            to += f";tag={self.to_tag}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: {self._via()}",
            "Max-Forwards: 70",
            f"From: <sip:caller@{self.local[0]}>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:caller@{self.local[0]}:{self.local[1]}>",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def sdp(self) -> bytes:
        ip, port = self.rtp.addr
        return (
            f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
        ).encode()

    def invite(self) -> None:
        self.sock.sendto(self._request("INVITE", self.remote_target, 1, self.sdp()), self.gateway)

    def final_response(self, method: str = "INVITE", timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            if not data.startswith(b"SIP/2.0 "):
                continue  # a request from the gateway (BYE): not what we wait for here
            status = int(data[8:11])
            if status >= 200 and f" {method}".encode() in _header(data, b"CSeq"):
                if method == "INVITE":
                    tag = re.search(rb"tag=([^;>\s]+)", _header(data, b"To"))
                    self.to_tag = tag.group(1).decode() if tag else ""
                    contact = re.search(rb"<([^>]+)>", _header(data, b"Contact"))
                    if contact:
                        self.remote_target = contact.group(1).decode()
                return data
        raise AssertionError(f"no final response to {method} within {timeout} s")

    def ack(self) -> None:
        self.sock.sendto(self._request("ACK", self.remote_target, 1), self.gateway)

    def bye(self) -> bytes:
        self.cseq += 1
        self.sock.sendto(self._request("BYE", self.remote_target, self.cseq), self.gateway)
        return self.final_response("BYE")

    def close(self) -> None:
        self.sock.close()


def _header(message: bytes, name: bytes) -> bytes:
    match = re.search(rb"^" + name + rb":\s*(.*?)\r$", message, re.M | re.I)
    return match.group(1) if match else b""


def answer_media(message: bytes) -> tuple[str, int]:
    """The (host, port) of the audio in a response's SDP."""
    host = re.search(rb"^c=IN IP4 (\S+)", message, re.M)
    port = re.search(rb"^m=audio (\d+) ", message, re.M)
    assert host and port, message
    return host.group(1).decode(), int(port.group(1))
