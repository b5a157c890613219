"""Raw SIP over UDP for attack tests: build an INVITE byte for byte, send it (again: the same
branch is the same transaction), read what comes back. Stdlib only, so it also runs inside a
network namespace (`python -m tests.tools.netns uac ...`)."""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass

SDP = (
    "v=0\r\n"
    "o=attacker 1 1 IN IP4 {host}\r\n"
    "s=-\r\n"
    "c=IN IP4 {host}\r\n"
    "t=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


@dataclass
class Dialog:
    """Enough of one INVITE's identity to retransmit it, ACK its answer and BYE it."""

    call_id: str
    branch: str
    from_tag: str
    cseq: int = 1


def new_dialog(call_id: str | None = None) -> Dialog:
    token = secrets.token_hex(6)
    return Dialog(call_id or f"raw-{token}", f"z9hG4bK{token}", f"f{token}")


def request(
    method: str,
    dialog: Dialog,
    local: tuple[str, int],
    target: tuple[str, int],
    *,
    to_tag: str = "",
    cseq: int | None = None,
    branch: str | None = None,
    extra: str = "",
    body: str = "",
) -> bytes:
    lhost, lport = local
    thost, tport = target
    uri = f"sip:bot@{thost}:{tport}"
    to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
    seq = dialog.cseq if cseq is None else cseq
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {lhost}:{lport};branch={branch or dialog.branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:caller@{lhost}>;tag={dialog.from_tag}",
        f"To: {to}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {seq} {method}",
        f"Contact: <sip:caller@{lhost}:{lport}>",
    ]
    if extra:
        lines.append(extra.rstrip("\r\n"))
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def invite(
    dialog: Dialog, local: tuple[str, int], target: tuple[str, int], extra: str = ""
) -> bytes:
    body = SDP.format(host=local[0], rtp=local[1] + 2)
    return request("INVITE", dialog, local, target, extra=extra, body=body)


@dataclass(frozen=True)
class Reply:
    status: int
    raw: bytes

    def header(self, name: str) -> str | None:
        text = self.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        for line in text.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def to_tag(self) -> str:
        to = self.header("To") or ""
        return to.split(";tag=", 1)[1].split(";")[0] if ";tag=" in to else ""

    @property
    def cseq_method(self) -> str:
        return (self.header("CSeq") or " ").split()[-1]


def parse_reply(data: bytes) -> Reply | None:
    if not data.startswith(b"SIP/2.0 "):
        return None
    code = data[8:11]
    return Reply(int(code), data) if code.isdigit() else None


class UdpPeer:
    """One UDP socket bound to `host` (port 0 = any) that sends to `target`."""

    def __init__(self, host: str, target: tuple[str, int], port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.local: tuple[str, int] = self.sock.getsockname()
        self.target = target

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def replies(self, window_s: float, until_final: bool = False) -> list[Reply]:
        """Responses arriving within `window_s` (stops early at a final one if asked)."""
        got: list[Reply] = []
        deadline = time.monotonic() + window_s
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            reply = parse_reply(data)
            if reply is None:
                continue
            got.append(reply)
            if until_final and reply.status >= 200:
                break
        return got

    def final(self, timeout_s: float, method: str = "INVITE") -> Reply | None:
        """The first final response to `method` within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            for reply in self.replies(remaining, until_final=True):
                if reply.status >= 200 and reply.cseq_method == method:
                    return reply
        return None

    def ack(self, dialog: Dialog, reply: Reply) -> None:
        """ACK a final response (a non-2xx ACK reuses the INVITE's branch, 17.1.1.3)."""
        branch = dialog.branch if reply.status >= 300 else None
        if branch is None:
            branch = f"z9hG4bK{secrets.token_hex(6)}"
        self.send(
            request("ACK", dialog, self.local, self.target, to_tag=reply.to_tag, branch=branch)
        )

    def close(self) -> None:
        self.sock.close()
