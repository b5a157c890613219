"""A raw SIP caller over TLS for the TLS/SRTP tests (issue 13): blocking `ssl` sockets, one
stream, requests written by hand so a test controls every header and SDP line."""

from __future__ import annotations

import re
import secrets
import socket
import ssl

from tests.tools.gateway_process import LOOPBACK


def savp_sdp(rtp_port: int, proto: str, cryptos: list[str]) -> bytes:
    lines = [
        "v=0",
        f"o=uac 1 1 IN IP4 {LOOPBACK}",
        "s=-",
        f"c=IN IP4 {LOOPBACK}",
        "t=0 0",
        f"m=audio {rtp_port} {proto} 0",
        "a=rtpmap:0 PCMU/8000",
        *(f"a=crypto:{c}" for c in cryptos),
        "a=sendrecv",
        "",
    ]
    return "\r\n".join(lines).encode()


def sip_request(
    method: str,
    transport: str,
    port: int,
    call_id: str,
    cseq: int,
    body: bytes = b"",
    tag: str = "",
) -> bytes:
    lines = [
        f"{method} sip:gateway@{LOOPBACK}:{port};transport={transport.lower()} SIP/2.0",
        f"Via: SIP/2.0/{transport} {LOOPBACK}:9;branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:attacker@{LOOPBACK}>;tag=a1",
        f"To: <sip:gateway@{LOOPBACK}>" + (f";tag={tag}" if tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:attacker@{LOOPBACK}:9;transport={transport.lower()}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class TlsUac:
    """A blocking TLS client that sends requests and reads responses (one stream)."""

    def __init__(self, port: int, ca_file: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        raw = socket.create_connection((LOOPBACK, port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname=LOOPBACK)
        self.port = port
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def message(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the gateway closed the stream"
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        size = int(length.group(1)) if length else 0
        while len(rest) < size:
            rest += self.sock.recv(65536)
        self.buffer = rest[size:]
        return head + b"\r\n\r\n" + rest[:size]

    def final(self) -> bytes:
        while True:
            message = self.message()
            if message.startswith(b"SIP/2.0 ") and int(message.split(b" ", 2)[1]) >= 200:
                return message

    def close(self) -> None:
        self.sock.close()

    def respond(self, request: bytes, status: int, reason: str) -> None:
        """A response to a request the gateway sent us (REFER, NOTIFY, BYE): its Via, From,
        To, Call-ID and CSeq, no body."""
        head = request.split(b"\r\n\r\n", 1)[0].decode()
        keep = [
            line
            for line in head.split("\r\n")[1:]
            if line.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        self.send(
            (
                "\r\n".join([f"SIP/2.0 {status} {reason}", *keep, "Content-Length: 0", "", ""])
            ).encode()
        )

    def request_of(self, method: str) -> bytes:
        """The next request `method` the gateway sends (responses and others are skipped)."""
        while True:
            message = self.message()
            if message.startswith(method.encode() + b" "):
                return message


__all__ = ["TlsUac", "savp_sdp", "sip_request"]
