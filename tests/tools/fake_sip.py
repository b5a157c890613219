"""A user agent driven by hand: a fake transport that records what it sends and a fake clock.

No sockets and no event loop: `FakeSip.deliver(bytes)` feeds a message to the UA core, `advance`
moves the clock and runs the timers that fell due (UserAgent.tick), `sent()` reads what the UA
put on the wire. CANCEL races, Timer H, the answer deadline and glare become plain function
calls (issue 11). Callbacks are plain callables that record into lists.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from typing import Any

from sip.message import Request, Response, parse_message
from sip.timers import TimerConfig
from sip.transport import TransportAddr
from sip.useragent import IncomingCall, UserAgent

PEER = TransportAddr("udp", "192.0.2.10", 5062)
SDP_OFFER = (
    "v=0\r\n"
    "o=peer 1000 1000 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)
SDP_ANSWER = (
    SDP_OFFER.replace("o=peer 1000 1000", "o=gw 2000 2000")
    .replace("m=audio 40000", "m=audio 41000")
    .encode()
)


# A caller's audio offer (PCMU, PCMA, RFC 4733) and an answer to it, for the UA tests.
SDP_OFFER = (
    "v=0\r\n"
    "o=peer 1000 1000 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=sendrecv\r\n"
)
SDP_ANSWER = (
    b"v=0\r\n"
    b"o=gw 2000 2000 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 41000 RTP/AVP 0 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeTransport:
    """What UserAgent needs from sip.transport.Transport, recording every send."""

    host = "127.0.0.1"
    port = 5060
    family = socket.AF_INET

    def __init__(self) -> None:
        self.wire: list[tuple[bytes, TransportAddr]] = []
        self.on_message: Any = None
        self.on_send_error: Any = None

    def send(self, data: bytes, dest: TransportAddr) -> None:
        self.wire.append((data, dest))


class FakeSip:
    """One UA core plus the far end's message builders."""

    def __init__(self, **ua_kwargs: Any) -> None:
        self.clock = FakeClock()
        self.transport = FakeTransport()
        self.invites: list[IncomingCall] = []
        self.ended: list[tuple[Any, str]] = []
        self.acks: list[Any] = []
        self.ack_timeouts: list[Any] = []
        kwargs: dict[str, Any] = {
            "advertised_host": "127.0.0.1",
            "advertised_port": 5060,
            "clock": self.clock,
            "wall_clock": self.clock,
            "timers": TimerConfig(t1=0.5, t2=4.0, t4=5.0),
            "allow_networks": ["192.0.2.0/24"],
            "on_invite": self.invites.append,
            "on_call_ended": lambda call, reason: self.ended.append((call, reason)),
            "on_ack": self.acks.append,
        }
        kwargs.update(ua_kwargs)
        self.ua = UserAgent(self.transport, **kwargs)  # type: ignore[arg-type]
        self._read = 0

    # -- time ----------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock, running every timer that falls due on the way, in order."""
        end = self.clock.now + seconds
        while True:
            deadline = self.ua.next_deadline
            if deadline is None or deadline > end:
                break
            self.clock.now = max(self.clock.now, deadline)
            self.ua.tick()
        self.clock.now = end

    # -- wire ----------------------------------------------------------------------------------
    def deliver(self, data: bytes, source: TransportAddr = PEER) -> None:
        self.ua.handle_datagram(data, source)

    def sent(self) -> list[Request | Response]:
        """Messages sent since the last call."""
        out = [parse_message(data) for data, _ in self.transport.wire[self._read :]]
        self._read = len(self.transport.wire)
        return out

    def unread(self) -> list[Request | Response]:
        """What was sent since the last `sent()`, without consuming it."""
        return [parse_message(data) for data, _ in self.transport.wire[self._read :]]

    def statuses(self) -> list[int]:
        return [m.status for m in self.sent() if isinstance(m, Response)]

    # -- the far end's messages ----------------------------------------------------------------
    def request(
        self,
        method: str,
        call_id: str,
        *,
        cseq: int = 1,
        to_tag: str | None = None,
        branch: str | None = None,
        body: str = "",
        extra: tuple[str, ...] = (),
    ) -> bytes:
        to = "<sip:gateway@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} sip:gateway@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP {PEER.host}:{PEER.port};branch="
            f"{branch or 'z9hG4bK' + secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:caller@{PEER.host}>;tag=caller1",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:caller@{PEER.host}:{PEER.port}>",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body.encode()

    def invite(self, call_id: str, *, branch: str, extra: tuple[str, ...] = ()) -> bytes:
        return self.request("INVITE", call_id, branch=branch, body=SDP_OFFER, extra=extra)

    def cancel(self, call_id: str, *, branch: str) -> bytes:
        return self.request("CANCEL", call_id, branch=branch)

    def ack(self, call_id: str, *, to_tag: str, branch: str | None = None, cseq: int = 1) -> bytes:
        return self.request("ACK", call_id, to_tag=to_tag, branch=branch, cseq=cseq)

    def respond(self, req: Request, status: int, *extra: tuple[str, str]) -> bytes:
        headers = [
            (n, v) for n, v in req.headers if n.lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        resp = Response(status, "OK" if status == 200 else "Whatever", headers)
        if resp.to_tag is None and status > 100:
            resp.headers.set("To", f"{req.headers.get('To')};tag=caller1")
        for name, value in extra:
            resp.headers.add(name, value)
        return resp.to_bytes()


async def settle_until(condition: Callable[[], bool]) -> None:
    """Let the UA's tasks run until `condition` holds (they do no I/O here: no timing)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
