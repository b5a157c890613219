"""The user agent over real loopback sockets, driven by a tiny scripted SIP peer (UDP and TCP).

Timers are shortened (T1 = 20 ms) so Timer H tests finish quickly; nothing asserts wall-clock
durations, only message sequences and counts, and nothing waits a fixed time: tests wait for a
message, a callback's event, or `barrier()` (an OPTIONS round trip), and what is about time alone
(retransmissions until the ACK, Timer J) is driven with a fake clock (tests/tools/fake_sip.py).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

import pytest

from sip.admission import Admission, AdmissionPolicy
from sip.auth import DigestChallenge, build_authorization
from sip.message import Request, Response, StreamFramer, parse_message
from sip.timers import TimerConfig
from sip.transport import Transport, TransportAddr
from sip.useragent import (
    Credentials,
    InboundAuth,
    IncomingCall,
    UserAgent,
    signalled,
)
from tests.tools.fake_sip import SDP_ANSWER, SDP_OFFER, FakeSip


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, peer: SipPeer) -> None:
        self.peer = peer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peer._got(data)


class _Tcp(asyncio.Protocol):
    def __init__(self, peer: SipPeer) -> None:
        self.peer = peer
        self.framer = StreamFramer()

    def data_received(self, data: bytes) -> None:
        for msg in self.framer.feed(data):
            self.peer._got(msg)


class SipPeer:
    """One SIP endpoint on loopback talking to `target` (host, port) over `proto`."""

    def __init__(self, target: tuple[str, int], proto: str = "udp", host: str = "127.0.0.1"):
        self.target = target
        self.proto = proto
        self.host = host
        self.port = 0
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.raw: list[bytes] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Transport | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> SipPeer:
        loop = asyncio.get_running_loop()
        if self.proto == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, 0)
            )
            self.port = self._udp.get_extra_info("sockname")[1]
        else:
            self._tcp, _ = await loop.create_connection(lambda: _Tcp(self), *self.target)
            self.port = self._tcp.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _got(self, data: bytes) -> None:
        self.raw.append(data)
        self.inbox.put_nowait(parse_message(data))

    def send(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if self._udp is not None:
            self._udp.sendto(raw, self.target)
        else:
            assert self._tcp is not None
            self._tcp.write(raw)

    async def recv(self, timeout: float = 3.0) -> Request | Response:  # noqa: ASYNC109
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def expect_status(self, status: int, timeout: float = 3.0) -> Response:  # noqa: ASYNC109
        """Next response with this status, skipping provisionals and retransmissions before it."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.inbox.get()
                if isinstance(msg, Response) and msg.status == status:
                    return msg

    async def expect_request(self, method: str, timeout: float = 3.0) -> Request:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.inbox.get()
                if isinstance(msg, Request) and msg.method == method:
                    return msg

    def drain(self) -> list[Request | Response]:
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    # -- message builders ----------------------------------------------------------------------
    def request(
        self,
        method: str,
        *,
        call_id: str,
        cseq: int = 1,
        from_tag: str = "caller1",
        to_tag: str | None = None,
        uri: str | None = None,
        branch: str | None = None,
        body: bytes | str = b"",
        content_type: str | None = None,
        extra: str = "",
        cseq_method: str | None = None,
    ) -> bytes:
        body_b = body.encode() if isinstance(body, str) else body
        ruri = (
            uri
            or f"sip:gateway@{self.target[0] if ':' not in self.target[0] else '[' + self.target[0] + ']'}:{self.target[1]}"
        )
        host = f"[{self.target[0]}]" if ":" in self.target[0] else self.target[0]
        to = f"<sip:gateway@{host}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/{self.proto.upper()} {self.hostport};branch={branch or 'z9hG4bK' + secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:caller@{self.hostport}>;tag={from_tag}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {cseq_method or method}",
            f"Contact: <sip:caller@{self.hostport}{';transport=tcp' if self.proto == 'tcp' else ''}>",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if extra:
            lines.extend(x for x in extra.strip("\r\n").split("\r\n") if x)
        lines.append(f"Content-Length: {len(body_b)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body_b

    def invite(self, call_id: str, sdp: str | None = SDP_OFFER, **kw: object) -> bytes:
        if sdp:
            return self.request(
                "INVITE", call_id=call_id, body=sdp, content_type="application/sdp", **kw
            )  # type: ignore[arg-type]
        return self.request("INVITE", call_id=call_id, **kw)  # type: ignore[arg-type]

    def respond(self, req: Request, status: int, reason: str = "OK", extra: str = "") -> None:
        """Answer a request the UA sent us (BYE, REFER, re-INVITE...)."""
        headers = [
            (n, v) for n, v in req.headers if n.lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        resp = Response(status, reason, headers)
        for line in extra.strip("\r\n").split("\r\n"):
            if line:
                name, _, value = line.partition(":")
                resp.headers.add(name.strip(), value.strip())
        self.send(resp.to_bytes())


# -- fixtures --------------------------------------------------------------------------------
FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1)  # Timer H/F = 64*T1 = 1.28 s


class Recorder:
    """App callbacks that record what the UA reports."""

    def __init__(self, auto_accept: bool = True) -> None:
        self.auto_accept = auto_accept
        self.calls: asyncio.Queue[IncomingCall] = asyncio.Queue()
        self.ended: asyncio.Queue[tuple[IncomingCall, str]] = asyncio.Queue()
        self.dtmf: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.ack_sdp: asyncio.Queue[bytes] = asyncio.Queue()
        self.reoffers: list[bytes] = []

    def on_invite(self, call: IncomingCall) -> None:
        self.calls.put_nowait(call)
        if self.auto_accept:
            call.accept(SDP_ANSWER)

    def on_call_ended(self, call: IncomingCall, reason: str) -> None:
        self.ended.put_nowait((call, reason))

    def on_dtmf(self, call: IncomingCall, digit: str, duration: int) -> None:
        self.dtmf.put_nowait((digit, duration))

    def on_ack_sdp(self, call: IncomingCall, sdp: bytes) -> None:
        self.ack_sdp.put_nowait(sdp)


async def start_ua(rec: Recorder, host: str = "127.0.0.1", **kw: Any) -> UserAgent:
    ua = UserAgent(
        Transport(host, 0),
        timers=FAST,
        on_invite=rec.on_invite,
        on_call_ended=rec.on_call_ended,
        on_dtmf=rec.on_dtmf,
        on_ack_sdp=rec.on_ack_sdp,
        **kw,
    )
    await ua.start()
    return ua


@pytest.fixture
async def env():
    rec = Recorder()
    ua = await start_ua(rec)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    yield ua, rec, peer
    peer.close()
    await ua.close()


def ack_for(peer: SipPeer, call_id: str, resp: Response, cseq: int = 1, body: str = "") -> bytes:
    return peer.request(
        "ACK",
        call_id=call_id,
        cseq=cseq,
        to_tag=resp.to_tag,
        body=body,
        content_type="application/sdp" if body else None,
    )


async def establish(peer: SipPeer, rec: Recorder, call_id: str) -> tuple[IncomingCall, Response]:
    peer.send(peer.invite(call_id))
    ok = await peer.expect_status(200)
    peer.send(ack_for(peer, call_id, ok))
    call = await asyncio.wait_for(rec.calls.get(), 2)
    await asyncio.wait_for(signalled(call.acked), 2)
    return call, ok


async def barrier(peer: SipPeer) -> list[Request | Response]:
    """Everything the UA sent `peer` up to now: an OPTIONS round trip (UDP on loopback keeps
    the order, and the UA handles datagrams one at a time, so whatever it was going to send
    for what came before arrives before this 200). A condition, not a sleep."""
    call_id = "barrier-" + secrets.token_hex(4)
    peer.send(peer.request("OPTIONS", call_id=call_id))
    before: list[Request | Response] = []
    while True:
        msg = await peer.recv()
        if isinstance(msg, Response) and msg.call_id == call_id:
            return before
        before.append(msg)


# -- basic call flow -------------------------------------------------------------------------
@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_invite_100_180_200_ack_bye(proto: str) -> None:
    rec = Recorder()
    ua = await start_ua(rec)
    peer = await SipPeer(("127.0.0.1", ua.transport.port), proto).start()
    try:
        peer.send(peer.invite("basic-1"))
        trying = await peer.recv()
        assert isinstance(trying, Response) and trying.status == 100
        ringing = await peer.recv()
        assert isinstance(ringing, Response) and ringing.status == 180 and ringing.to_tag
        ok = await peer.expect_status(200)
        assert ok.to_tag == ringing.to_tag
        assert ok.body == SDP_ANSWER
        assert ok.headers.get("Content-Type") == "application/sdp"
        contact = ok.headers.get("Contact") or ""
        assert f"127.0.0.1:{ua.transport.port}" in contact
        assert (";transport=tcp" in contact) == (proto == "tcp")
        via = ok.top_via
        assert via is not None and via.rport == peer.port  # RFC 3581 stamped
        call = await rec.calls.get()
        assert call.offer_sdp is not None and call.remote_tag == "caller1"
        peer.send(ack_for(peer, "basic-1", ok))
        await asyncio.wait_for(signalled(call.acked), 2)
        assert call.state == "confirmed" and ua.active_calls == 1
        peer.send(peer.request("BYE", call_id="basic-1", cseq=2, to_tag=ok.to_tag))
        bye_ok = await peer.expect_status(200)
        assert bye_ok.cseq == (2, "BYE")
        ended, reason = await asyncio.wait_for(rec.ended.get(), 2)
        assert ended is call and reason == "bye" and ua.active_calls == 0
    finally:
        peer.close()
        await ua.close()


async def test_invite_retransmission_absorbed(env) -> None:
    ua, rec, peer = env
    rec.auto_accept = False
    data = peer.invite("retx-1")
    peer.send(data)
    await peer.expect_status(180)
    peer.send(data)  # retransmitted INVITE: the last response is repeated, no second call
    again = await peer.expect_status(180)
    assert again.call_id == "retx-1"
    assert rec.calls.qsize() == 1 and ua.counters.retransmissions_absorbed == 1


def test_reject_non2xx_retransmitted_until_ack() -> None:
    """Driven with a fake clock (tests/tools/fake_sip.py): Timer G retransmits the 486 until
    the ACK, and nothing after it however long we wait."""
    sip = FakeSip(on_invite=None)
    sip.deliver(sip.invite("rej-1", branch="z9hG4bK-rej-1"))
    assert sip.statuses() == [100, 180]
    call = sip.ua.calls["rej-1"]
    assert isinstance(call, IncomingCall)
    call.reject(486, "Busy Here")
    (busy,) = sip.sent()
    assert isinstance(busy, Response) and busy.status == 486
    sip.advance(sip.ua.timers.t1)
    assert sip.statuses() == [486]  # Timer G retransmission
    sip.deliver(sip.ack("rej-1", to_tag=str(busy.to_tag), branch="z9hG4bK-rej-1"))
    sip.advance(sip.ua.timers.t2 * 6)
    assert sip.statuses() == []
    assert call.state == "terminated"


async def test_cancel_gives_200_and_487(env) -> None:
    _ua, rec, peer = env
    rec.auto_accept = False
    branch = "z9hG4bK-cancel-1"
    peer.send(peer.invite("cancel-1", branch=branch))
    call = await asyncio.wait_for(rec.calls.get(), 2)
    await peer.expect_status(180)
    peer.send(peer.request("CANCEL", call_id="cancel-1", branch=branch))
    cancel_ok = await peer.expect_status(200)
    assert cancel_ok.cseq == (1, "CANCEL")
    terminated = await peer.expect_status(487)
    assert terminated.cseq == (1, "INVITE")
    assert await asyncio.wait_for(rec.ended.get(), 2) == (call, "cancelled")
    call.accept(SDP_ANSWER)  # too late: ignored, no 200
    peer.send(peer.request("ACK", call_id="cancel-1", branch=branch, to_tag=terminated.to_tag))
    sent = await barrier(peer)
    assert not [m for m in sent if isinstance(m, Response) and m.status == 200]


async def test_cancel_unknown_transaction_481(env) -> None:
    _ua, _rec, peer = env
    peer.send(peer.request("CANCEL", call_id="nothing", branch="z9hG4bK-none"))
    await peer.expect_status(481)


# -- lost ACK, Timer H -------------------------------------------------------------------------
def test_lost_ack_2xx_retransmitted_until_ack() -> None:
    """Driven with a fake clock: the 2xx goes again at T1, then 2*T1 (13.3.1.4), all with the
    same To tag, until the ACK; after it, several T2 intervals bring no more 200s."""
    sip = FakeSip()
    sip.deliver(sip.invite("lostack-1", branch="z9hG4bK-lost-1"))
    call = sip.invites[0]
    call.accept(SDP_ANSWER)
    first = [m for m in sip.sent() if isinstance(m, Response) and m.status == 200]
    sip.advance(sip.ua.timers.t1)
    second = [m for m in sip.sent() if isinstance(m, Response)]  # retransmitted at T1
    sip.advance(2 * sip.ua.timers.t1)
    third = [m for m in sip.sent() if isinstance(m, Response)]  # then 2*T1
    assert [len(first), len(second), len(third)] == [1, 1, 1]
    assert first[0].to_tag == second[0].to_tag == third[0].to_tag
    sip.deliver(sip.ack("lostack-1", to_tag=str(first[0].to_tag)))
    assert sip.acks == [call]
    sip.advance(sip.ua.timers.t2 * 5)  # several T2 intervals: no more 200s
    assert not [m for m in sip.sent() if isinstance(m, Response)]
    assert call.state == "confirmed"


async def test_timer_h_sends_bye(env) -> None:
    _ua, rec, peer = env
    peer.send(peer.invite("timerh-1"))
    ok = await peer.expect_status(200)
    bye = await peer.expect_request("BYE", timeout=5)
    assert bye.call_id == "timerh-1" and bye.from_tag == ok.to_tag and bye.to_tag == "caller1"
    call, reason = await asyncio.wait_for(rec.ended.get(), 2)
    assert reason == "ack timeout" and call.state == "terminated"
    peer.respond(bye, 200)


async def test_timer_h_goes_to_on_ack_timeout_and_the_app_sends_the_bye() -> None:
    """With on_ack_timeout set the UA reports Timer H and sends no BYE itself: the gateway's
    call machine decides and hangs up with its own Reason (issue 11)."""
    rec = Recorder()
    timed_out: asyncio.Queue[IncomingCall] = asyncio.Queue()
    ua = await start_ua(rec, on_ack_timeout=timed_out.put_nowait)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(peer.invite("timerh-app-1"))
        ok = await peer.expect_status(200)
        call = await asyncio.wait_for(timed_out.get(), 5)
        assert call.call_id == "timerh-app-1" and call.state == "confirmed"
        assert not [m for m in peer.drain() if isinstance(m, Request) and m.method == "BYE"]
        hangup = asyncio.ensure_future(call.hangup('SIP;cause=408;text="no ACK"'))
        bye = await peer.expect_request("BYE", timeout=5)
        assert bye.from_tag == ok.to_tag
        assert bye.headers.get("Reason") == 'SIP;cause=408;text="no ACK"'
        peer.respond(bye, 200)
        assert await asyncio.wait_for(hangup, 5) == 200
        _call, reason = await asyncio.wait_for(rec.ended.get(), 2)
        assert reason == "local bye"
    finally:
        peer.close()
        await ua.close()


# -- BYE from us -----------------------------------------------------------------------------
async def test_hangup_sends_bye_and_returns_status(env) -> None:
    ua, rec, peer = env
    call, _ok = await establish(peer, rec, "hangup-1")
    task = asyncio.ensure_future(call.hangup(reason_header='SIP;cause=200;text="bye"'))
    bye = await peer.expect_request("BYE")
    assert bye.headers.get("Reason") == 'SIP;cause=200;text="bye"'
    assert str(bye.uri).startswith("sip:caller@127.0.0.1")  # the Contact of the INVITE
    assert bye.cseq[1] == "BYE"
    peer.respond(bye, 200)
    assert await asyncio.wait_for(task, 3) == 200
    assert await asyncio.wait_for(rec.ended.get(), 2) == (call, "local bye")
    assert ua.active_calls == 0


async def test_hangup_with_proxy_challenge_retries_with_credentials() -> None:
    rec = Recorder()
    ua = await start_ua(rec, credentials=Credentials("gw", "pw"))
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        call, _ok = await establish(peer, rec, "hangup-auth")
        task = asyncio.ensure_future(call.hangup())
        bye = await peer.expect_request("BYE")
        peer.respond(
            bye,
            407,
            "Proxy Authentication Required",
            extra='Proxy-Authenticate: Digest realm="proxy", nonce="n1", qop="auth"',
        )
        bye2 = await peer.expect_request("BYE")
        auth = bye2.headers.get("Proxy-Authorization") or ""
        assert 'username="gw"' in auth and 'realm="proxy"' in auth
        assert bye2.cseq[0] == bye.cseq[0] + 1
        peer.respond(bye2, 200)
        assert await asyncio.wait_for(task, 3) == 200
    finally:
        peer.close()
        await ua.close()


async def test_hangup_timeout_returns_none(env) -> None:
    _ua, rec, peer = env
    call, _ = await establish(peer, rec, "hangup-2")
    assert await call.hangup(timeout=0.3) is None  # peer never answers the BYE
    assert call.state == "terminated"


# -- OPTIONS ---------------------------------------------------------------------------------
async def test_options_out_of_dialog(env) -> None:
    _ua, rec, peer = env
    peer.send(peer.request("OPTIONS", call_id="opt-1"))
    ok = await peer.expect_status(200)
    allow = ok.headers.get_all("Allow")
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE"} <= set(allow)
    accept = ok.headers.get("Accept") or ""
    assert "application/sdp" in (ok.headers.get_all("Accept") or [accept])
    assert "application/dtmf-relay" in ok.headers.get_all("Accept")
    assert "timer" in ok.headers.get_all("Supported")
    assert rec.calls.empty()


async def test_options_while_draining_says_503_but_dialogs_keep_200(env) -> None:
    ua, rec, peer = env
    _call, ok = await establish(peer, rec, "opt-drain")
    ua.accepting = False
    peer.send(peer.request("OPTIONS", call_id="opt-3"))
    busy = await peer.expect_status(503)
    assert busy.headers.get("Retry-After")
    peer.send(peer.request("OPTIONS", call_id="opt-drain", cseq=2, to_tag=ok.to_tag))
    await peer.expect_status(200)


async def test_options_in_dialog_and_unknown_dialog(env) -> None:
    _ua, rec, peer = env
    _call, ok = await establish(peer, rec, "opt-2")
    peer.send(peer.request("OPTIONS", call_id="opt-2", cseq=2, to_tag=ok.to_tag))
    in_dialog = await peer.expect_status(200)
    assert in_dialog.cseq == (2, "OPTIONS")
    peer.send(peer.request("OPTIONS", call_id="opt-2", cseq=3, to_tag="not-ours"))
    await peer.expect_status(481)


# -- re-INVITE / UPDATE ------------------------------------------------------------------------
def _sdp_version(sdp: bytes) -> int:
    line = next(ln for ln in sdp.decode().splitlines() if ln.startswith("o="))
    return int(line.split()[2])


async def test_reinvite_hold_and_resume_mirrors_direction(env) -> None:
    _ua, rec, peer = env
    _call, ok = await establish(peer, rec, "hold-1")
    hold = SDP_OFFER.replace("o=peer 1000 1000", "o=peer 1000 1001").replace("sendrecv", "sendonly")
    peer.send(peer.invite("hold-1", sdp=hold, cseq=2, to_tag=ok.to_tag))
    held = await peer.expect_status(200)
    assert b"a=recvonly" in held.body and b"a=sendrecv" not in held.body
    assert _sdp_version(held.body) == _sdp_version(SDP_ANSWER) + 1
    peer.send(ack_for(peer, "hold-1", held, cseq=2))
    resume = SDP_OFFER.replace("o=peer 1000 1000", "o=peer 1000 1002")
    peer.send(peer.invite("hold-1", sdp=resume, cseq=3, to_tag=ok.to_tag))
    resumed = await peer.expect_status(200)
    assert b"a=sendrecv" in resumed.body and b"a=recvonly" not in resumed.body
    assert _sdp_version(resumed.body) == _sdp_version(SDP_ANSWER) + 2
    peer.send(ack_for(peer, "hold-1", resumed, cseq=3))
    # a session refresh with the same offer: same o= version (RFC 3264 8)
    peer.send(peer.invite("hold-1", sdp=resume, cseq=4, to_tag=ok.to_tag))
    refreshed = await peer.expect_status(200)
    assert _sdp_version(refreshed.body) == _sdp_version(resumed.body)
    peer.send(ack_for(peer, "hold-1", refreshed, cseq=4))


async def test_reoffer_callback_answer_used(env) -> None:
    ua, rec, peer = env
    seen: list[bytes] = []

    async def on_reoffer(call: IncomingCall, offer: bytes) -> bytes:
        seen.append(offer)
        return SDP_ANSWER.replace(b"a=sendrecv", b"a=inactive")

    ua.on_reoffer = on_reoffer
    _call, ok = await establish(peer, rec, "reoffer-1")
    inactive = SDP_OFFER.replace("sendrecv", "inactive")
    peer.send(
        peer.request(
            "UPDATE",
            call_id="reoffer-1",
            cseq=2,
            to_tag=ok.to_tag,
            body=inactive,
            content_type="application/sdp",
        )
    )
    upd = await peer.expect_status(200)
    assert b"a=inactive" in upd.body and seen and b"a=inactive" in seen[0]
    assert _sdp_version(upd.body) == _sdp_version(SDP_ANSWER) + 1


async def test_reinvite_while_previous_unacked_gets_500_retry_after(env) -> None:
    _ua, rec, peer = env
    _call, ok = await establish(peer, rec, "overlap-1")
    peer.send(peer.invite("overlap-1", cseq=2, to_tag=ok.to_tag))
    await peer.expect_status(200)  # not ACKed yet
    peer.send(peer.invite("overlap-1", cseq=3, to_tag=ok.to_tag))
    err = await peer.expect_status(500)
    assert err.headers.get("Retry-After") is not None


async def test_reinvite_glare_491(env) -> None:
    _ua, rec, peer = env
    call, ok = await establish(peer, rec, "glare-1")
    task = asyncio.ensure_future(call.send_request("INVITE", SDP_ANSWER, "application/sdp"))
    ours = await peer.expect_request("INVITE")
    peer.send(peer.invite("glare-1", cseq=2, to_tag=ok.to_tag))
    await peer.expect_status(491)
    peer.respond(ours, 491, "Request Pending")
    resp = await asyncio.wait_for(task, 3)
    assert resp is not None and resp.status == 491


async def test_late_offer_answer_in_ack(env) -> None:
    _ua, rec, peer = env
    peer.send(peer.invite("late-1", sdp=None))
    call = await asyncio.wait_for(rec.calls.get(), 2)
    assert call.late_offer and call.offer_sdp is None
    ok = await peer.expect_status(200)
    assert ok.body == SDP_ANSWER  # the app's offer
    acked: list[IncomingCall] = []
    _ua.on_ack = acked.append
    peer.send(ack_for(peer, "late-1", ok, body=SDP_OFFER))
    assert await asyncio.wait_for(rec.ack_sdp.get(), 2) == SDP_OFFER.encode()
    assert acked == [call]  # on_ack after on_ack_sdp


# -- INFO DTMF -----------------------------------------------------------------------------
async def test_info_dtmf_relay_and_dtmf(env) -> None:
    _ua, rec, peer = env
    _call, ok = await establish(peer, rec, "info-1")
    peer.send(
        peer.request(
            "INFO",
            call_id="info-1",
            cseq=2,
            to_tag=ok.to_tag,
            body="Signal=5\r\nDuration=160\r\n",
            content_type="application/dtmf-relay",
        )
    )
    await peer.expect_status(200)
    assert await asyncio.wait_for(rec.dtmf.get(), 2) == ("5", 160)
    peer.send(
        peer.request(
            "INFO",
            call_id="info-1",
            cseq=3,
            to_tag=ok.to_tag,
            body="#",
            content_type="application/dtmf",
        )
    )
    await peer.expect_status(200)
    assert await asyncio.wait_for(rec.dtmf.get(), 2) == ("#", 0)
    peer.send(
        peer.request(
            "INFO",
            call_id="info-1",
            cseq=4,
            to_tag=ok.to_tag,
            body="<xml/>",
            content_type="application/media_control+xml",
        )
    )
    await peer.expect_status(200)  # other bodies: accepted, not DTMF
    assert rec.dtmf.empty()


async def test_info_outside_dialog_481(env) -> None:
    _ua, _rec, peer = env
    peer.send(peer.request("INFO", call_id="info-x", body="5", content_type="application/dtmf"))
    await peer.expect_status(481)
    peer.send(peer.request("BYE", call_id="info-x", cseq=2, to_tag="zzz"))
    await peer.expect_status(481)


# -- REFER -----------------------------------------------------------------------------------
def _notify(peer: SipPeer, call_id: str, cseq: int, to_tag: str, frag: str, state: str) -> bytes:
    return peer.request(
        "NOTIFY",
        call_id=call_id,
        cseq=cseq,
        to_tag=to_tag,
        body=frag,
        content_type="message/sipfrag;version=2.0",
        extra=f"Event: refer\r\nSubscription-State: {state}",
    )


@pytest.mark.parametrize(
    ("final", "expected"), [("SIP/2.0 200 OK", 200), ("SIP/2.0 486 Busy Here", 486)]
)
async def test_refer_follows_notify_sipfrag(env, final: str, expected: int) -> None:
    _ua, rec, peer = env
    call, ok = await establish(peer, rec, f"refer-{expected}")
    task = asyncio.ensure_future(call.refer("sip:agent@127.0.0.1:5999", timeout=5))
    refer = await peer.expect_request("REFER")
    assert refer.headers.get("Refer-To") == "<sip:agent@127.0.0.1:5999>"
    peer.respond(refer, 202, "Accepted")
    cid = f"refer-{expected}"
    peer.send(_notify(peer, cid, 2, ok.to_tag or "", "SIP/2.0 100 Trying", "active;expires=60"))
    await peer.expect_status(200)
    assert not task.done()
    peer.send(_notify(peer, cid, 3, ok.to_tag or "", final, "terminated;reason=noresource"))
    await peer.expect_status(200)
    assert await asyncio.wait_for(task, 3) == expected


async def test_refer_rejected_returns_status(env) -> None:
    _ua, rec, peer = env
    call, _ok = await establish(peer, rec, "refer-rej")
    task = asyncio.ensure_future(call.refer("sip:x@127.0.0.1", timeout=5))
    refer = await peer.expect_request("REFER")
    peer.respond(refer, 603, "Decline")
    assert await asyncio.wait_for(task, 3) == 603


# -- errors and admission ----------------------------------------------------------------------
async def test_malformed_but_answerable_gets_400(env) -> None:
    ua, _rec, peer = env
    data = peer.request("OPTIONS", call_id="bad-1").replace(
        b"Content-Length: 0", b"Content-Length: abc"
    )
    peer.send(data)
    bad = await peer.expect_status(400)
    assert "Content-Length" in bad.reason
    peer.send(peer.request("OPTIONS", call_id="bad-2", uri="tel:+15551234"))
    await peer.expect_status(416)
    peer.send(b"\x00\x01garbage that is not SIP\r\n\r\n")
    await barrier(peer)
    assert (
        ua.counters.parse_errors == 2 and ua.counters.parse_dropped == 1
    )  # tel: parses; 416 by the UA


async def test_unknown_method_501_and_known_out_of_context_405(env) -> None:
    _ua, _rec, peer = env
    peer.send(peer.request("FOOBAR", call_id="m-1"))
    await peer.expect_status(501)
    peer.send(peer.request("SUBSCRIBE", call_id="m-2", extra="Event: presence"))
    not_allowed = await peer.expect_status(405)
    assert "INVITE" in not_allowed.headers.get_all("Allow")
    peer.send(peer.request("MESSAGE", call_id="m-3", body="hi", content_type="text/plain"))
    await peer.expect_status(405)


async def test_max_forwards_scheme_require(env) -> None:
    _ua, rec, peer = env
    # Max-Forwards 0 at its UAS is processed (RFC 3261 8.2, 16.3: 483 is a proxy's answer).
    peer.send(peer.invite("mf-1").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    ok = await peer.expect_status(200)
    peer.send(ack_for(peer, "mf-1", ok))
    call = await asyncio.wait_for(rec.calls.get(), 2)
    assert call.call_id == "mf-1"
    peer.send(peer.invite("req-1", extra="Require: 100rel, foo"))
    unsupported = await peer.expect_status(420)
    assert set(unsupported.headers.get_all("Unsupported")) == {"100rel", "foo"}
    assert rec.calls.empty()


async def test_unknown_dialog_481(env) -> None:
    _ua, _rec, peer = env
    peer.send(peer.invite("ghost", cseq=5, to_tag="nope"))
    await peer.expect_status(481)
    peer.send(peer.request("UPDATE", call_id="ghost", cseq=6, to_tag="nope"))
    await peer.expect_status(481)


async def test_max_calls_503_retry_after() -> None:
    rec = Recorder()
    ua = await start_ua(rec, max_calls=1, retry_after=7)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        await establish(peer, rec, "max-1")
        peer.send(peer.invite("max-2"))
        busy = await peer.expect_status(503)
        assert busy.headers.get("Retry-After") == "7"
        assert ua.counters.rejected_max_calls == 1
    finally:
        peer.close()
        await ua.close()


async def test_allowlist_403() -> None:
    rec = Recorder()
    # Loopback is trusted by default (sip/admission.py): this test distrusts it to stand for a
    # foreign source.
    admission = Admission(AdmissionPolicy(allow_networks=("10.0.0.0/8",)), local_networks=())
    ua = await start_ua(rec, admission=admission)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(peer.invite("allow-1"))
        await peer.expect_status(403)
        assert rec.calls.empty()
        peer.send(peer.request("OPTIONS", call_id="allow-2"))  # OPTIONS still answered
        await peer.expect_status(200)
    finally:
        peer.close()
        await ua.close()


async def test_scanner_dropped_silently(env) -> None:
    ua, rec, peer = env
    peer.send(peer.invite("scan-1", extra="User-Agent: friendly-scanner"))
    peer.send(peer.request("OPTIONS", call_id="scan-2", extra="User-Agent: sipvicious"))
    peer.send(peer.request("OPTIONS", call_id="normal"))
    ok = await peer.expect_status(200)
    assert ok.call_id == "normal" and peer.drain() == []
    assert ua.counters.scanner_dropped == 2 and rec.calls.empty()


async def test_inbound_digest_challenge() -> None:
    rec = Recorder()
    ua = await start_ua(rec, inbound_auth=InboundAuth("gateway", "alice", "s3cret"))
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(peer.invite("auth-1"))
        challenge = await peer.expect_status(401)
        peer.send(
            peer.request("ACK", call_id="auth-1", to_tag=challenge.to_tag, branch=challenge.branch)
        )
        ch = DigestChallenge.parse(challenge.headers.get("WWW-Authenticate") or "")
        uri = f"sip:gateway@127.0.0.1:{ua.transport.port}"
        wrong = build_authorization(ch, "alice", "nope", "INVITE", uri)
        peer.send(peer.invite("auth-1", cseq=2, extra=f"Authorization: {wrong}"))
        await peer.expect_status(401)
        assert rec.calls.empty()
        right = build_authorization(ch, "alice", "s3cret", "INVITE", uri)
        peer.send(peer.invite("auth-1", cseq=3, extra=f"Authorization: {right}"))
        await peer.expect_status(200)
        assert (await rec.calls.get()).call_id == "auth-1"
    finally:
        peer.close()
        await ua.close()


# -- session timers (RFC 4028) ---------------------------------------------------------------
async def test_session_timer_too_small_422(env) -> None:
    _ua, rec, peer = env
    peer.send(peer.invite("st-1", extra="Supported: timer\r\nSession-Expires: 60"))
    too_small = await peer.expect_status(422)
    assert too_small.headers.get("Min-SE") == "90"
    assert rec.calls.empty()


async def test_session_timer_accepted_and_peer_refresh_keeps_call() -> None:
    rec = Recorder()
    ua = await start_ua(rec, min_se=1)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(peer.invite("st-2", extra="Supported: timer\r\nSession-Expires: 2;refresher=uac"))
        ok = await peer.expect_status(200)
        assert ok.headers.get("Session-Expires") == "2;refresher=uac"
        assert "timer" in ok.headers.get_all("Require")
        peer.send(ack_for(peer, "st-2", ok))
        # the peer refreshes with UPDATE before SE - SE/3: the call survives
        peer.send(
            peer.request(
                "UPDATE",
                call_id="st-2",
                cseq=2,
                to_tag=ok.to_tag,
                extra="Supported: timer\r\nSession-Expires: 2;refresher=uac",
            )
        )
        upd = await peer.expect_status(200)
        assert upd.headers.get("Session-Expires") == "2;refresher=uac"
        # no further refresh: the UA ends the call with BYE
        bye = await peer.expect_request("BYE", timeout=5)
        peer.respond(bye, 200)
        _call, reason = await asyncio.wait_for(rec.ended.get(), 2)
        assert reason == "session expired"
    finally:
        peer.close()
        await ua.close()


async def test_session_timer_we_refresh_with_update() -> None:
    rec = Recorder()
    ua = await start_ua(rec, min_se=1)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(
            peer.invite(
                "st-3",
                extra="Session-Expires: 2;refresher=uas\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE",
            )
        )
        ok = await peer.expect_status(200)
        assert ok.headers.get("Session-Expires") == "2;refresher=uas"
        assert "timer" not in ok.headers.get_all("Require")  # the UAC did not say Supported: timer
        peer.send(ack_for(peer, "st-3", ok))
        update = await peer.expect_request("UPDATE", timeout=5)  # at SE/2
        assert (update.headers.get("Session-Expires") or "").startswith("2")
        peer.respond(update, 200, extra="Session-Expires: 2;refresher=uac")
        update2 = await peer.expect_request("UPDATE", timeout=5)  # and again
        assert update2.cseq[0] > update.cseq[0]
        peer.respond(update2, 200, extra="Session-Expires: 2;refresher=uac")
        assert rec.ended.empty()
    finally:
        peer.close()
        await ua.close()


# -- client requests and IPv6 -----------------------------------------------------------------
async def test_generic_request_timer_f_timeout() -> None:
    rec = Recorder()
    ua = await start_ua(rec)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        resp = await ua.request("OPTIONS", f"sip:nobody@127.0.0.1:{port}")
        assert resp is None
        silent.setblocking(False)
        copies = 0
        while True:
            try:
                silent.recv(4096)
                copies += 1
            except BlockingIOError:
                break
        assert copies >= 5  # Timer E retransmissions over UDP
    finally:
        silent.close()
        await ua.close()


async def test_generic_request_between_two_uas() -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a = await start_ua(rec_a)
    b = await start_ua(rec_b)
    try:
        resp = await a.request("OPTIONS", f"sip:gateway@127.0.0.1:{b.transport.port}")
        assert resp is not None and resp.status == 200
        tcp = await a.request("OPTIONS", f"sip:gateway@127.0.0.1:{b.transport.port};transport=tcp")
        assert tcp is not None and tcp.status == 200
    finally:
        await a.close()
        await b.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_ipv6_call() -> None:
    rec = Recorder()
    ua = await start_ua(rec, host="::1")
    peer = await SipPeer(("::1", ua.transport.port), host="::1").start()
    try:
        call, ok = await establish(peer, rec, "v6-1")
        assert f"[::1]:{ua.transport.port}" in (ok.headers.get("Contact") or "")
        task = asyncio.ensure_future(call.hangup())
        bye = await peer.expect_request("BYE")
        peer.respond(bye, 200)
        assert await asyncio.wait_for(task, 3) == 200
    finally:
        peer.close()
        await ua.close()


async def test_callback_exception_does_not_kill_ua(env) -> None:
    ua, _rec, peer = env

    def broken(call: IncomingCall) -> None:
        raise RuntimeError("app bug")

    ua.on_invite = broken
    peer.send(peer.invite("cb-1"))
    await peer.expect_status(180)
    peer.send(peer.request("OPTIONS", call_id="cb-2"))
    await peer.expect_status(200)
    assert ua.counters.callback_errors == 1


async def test_tcp_hangup_reuses_callers_connection() -> None:
    rec = Recorder()
    ua = await start_ua(rec)
    peer = await SipPeer(("127.0.0.1", ua.transport.port), "tcp").start()
    try:
        call, _ok = await establish(peer, rec, "tcp-bye")
        assert call.offer is not None and call.offer.media[0].port == 40000  # parsed via sip.sdp
        task = asyncio.ensure_future(call.hangup())
        bye = await peer.expect_request("BYE")  # arrives on the connection the peer opened
        assert (bye.top_via.transport if bye.top_via else "") == "TCP"
        peer.respond(bye, 200)
        assert await asyncio.wait_for(task, 3) == 200
        assert ua.transport.connection_count == 1
    finally:
        peer.close()
        await ua.close()


async def test_hangup_before_answer_declines_480(env) -> None:
    _ua, rec, peer = env
    rec.auto_accept = False
    peer.send(peer.invite("early-1"))
    call = await asyncio.wait_for(rec.calls.get(), 2)
    assert await call.hangup() is None
    await peer.expect_status(480)
    assert await asyncio.wait_for(rec.ended.get(), 2) == (call, "local bye")


async def test_invite_without_contact_400(env) -> None:
    _ua, rec, peer = env
    data = b"\r\n".join(
        line for line in peer.invite("noc-1").split(b"\r\n") if not line.startswith(b"Contact:")
    )
    peer.send(data)
    bad = await peer.expect_status(400)
    assert "Contact" in bad.reason and rec.calls.empty()


def test_user_agent_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        rec = Recorder()
        ua = await start_ua(rec)
        peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
        try:
            _call, _ok = await establish(peer, rec, "uv-1")
            peer.send(peer.request("OPTIONS", call_id="uv-2"))
            return (await peer.expect_status(200)).status
        finally:
            peer.close()
            await ua.close()

    assert uvloop.run(main()) == 200


async def test_undecided_call_gets_480_after_answer_timeout() -> None:
    rec = Recorder(auto_accept=False)
    ua = await start_ua(rec, answer_timeout=0.2)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(peer.invite("undecided-1"))
        await peer.expect_status(480)
        call, reason = await asyncio.wait_for(rec.ended.get(), 2)
        assert reason == "no answer" and call.state == "terminated"
    finally:
        peer.close()
        await ua.close()


async def test_bye_retransmission_absorbed_and_cseq_out_of_order_500(env) -> None:
    ua, rec, peer = env
    _call, ok = await establish(peer, rec, "order-1")
    peer.send(peer.request("INFO", call_id="order-1", cseq=5, to_tag=ok.to_tag))
    await peer.expect_status(200)
    peer.send(peer.request("INFO", call_id="order-1", cseq=4, to_tag=ok.to_tag))
    late = await peer.expect_status(500)
    assert "CSeq" in late.reason
    bye = peer.request("BYE", call_id="order-1", cseq=6, to_tag=ok.to_tag, branch="z9hG4bK-bye-r")
    peer.send(bye)
    await peer.expect_status(200)
    peer.send(bye)  # lost 200: the retransmitted BYE gets the same answer, not a 481
    again = await peer.expect_status(200)
    assert again.cseq == (6, "BYE") and ua.counters.retransmissions_absorbed == 1
    assert rec.ended.qsize() == 1


async def test_refer_challenged_by_proxy_then_accepted() -> None:
    rec = Recorder()
    ua = await start_ua(rec, credentials=Credentials("gw", "pw"))
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        call, ok = await establish(peer, rec, "refer-auth")
        task = asyncio.ensure_future(call.refer("sip:agent@127.0.0.1", timeout=5))
        refer = await peer.expect_request("REFER")
        peer.respond(
            refer, 401, "Unauthorized", extra='WWW-Authenticate: Digest realm="r", nonce="n"'
        )
        refer2 = await peer.expect_request("REFER")
        assert refer2.headers.get("Authorization")
        peer.respond(refer2, 202, "Accepted")
        peer.send(_notify(peer, "refer-auth", 2, ok.to_tag or "", "SIP/2.0 200 OK", "terminated"))
        await peer.expect_status(200)
        assert await asyncio.wait_for(task, 3) == 200
    finally:
        peer.close()
        await ua.close()


async def test_notify_without_subscription_481(env) -> None:
    _ua, rec, peer = env
    _call, ok = await establish(peer, rec, "notify-1")
    peer.send(_notify(peer, "notify-1", 2, ok.to_tag or "", "SIP/2.0 200 OK", "terminated"))
    await peer.expect_status(481)
    peer.send(peer.request("NOTIFY", call_id="notify-2", extra="Event: message-summary"))
    await peer.expect_status(405)  # unsolicited out-of-dialog NOTIFY (e.g. MWI)


async def test_options_over_tcp() -> None:
    rec = Recorder()
    ua = await start_ua(rec)
    peer = await SipPeer(("127.0.0.1", ua.transport.port), "tcp").start()
    try:
        peer.send(peer.request("OPTIONS", call_id="tcp-opt"))
        ok = await peer.expect_status(200)
        assert "transport=tcp" in (ok.headers.get("Contact") or "")
    finally:
        peer.close()
        await ua.close()


# -- outbound calls (ua.invite) ------------------------------------------------------------------
@pytest.fixture
async def two_uas():
    rec_a, rec_b = Recorder(), Recorder()
    a = await start_ua(rec_a)
    b = await start_ua(rec_b, inbound_auth=None)
    yield a, rec_a, b, rec_b
    await a.close()
    await b.close()


def _target(ua: UserAgent, proto: str = "udp") -> str:
    suffix = ";transport=tcp" if proto == "tcp" else ""
    return f"sip:gateway@127.0.0.1:{ua.transport.port}{suffix}"


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_outbound_call_answered_then_hung_up(two_uas, proto: str) -> None:
    a, rec_a, b, rec_b = two_uas
    progress: list[int] = []
    call = await a.invite(
        _target(b, proto),
        SDP_OFFER.encode(),
        on_progress=lambda c, r: progress.append(r.status),
    )
    assert call.status == 200 and call.state == "confirmed"
    assert call.remote_sdp == SDP_ANSWER and progress == [180]
    callee = await asyncio.wait_for(rec_b.calls.get(), 2)
    await asyncio.wait_for(signalled(callee.acked), 2)  # our ACK arrived
    assert callee.offer_sdp == SDP_OFFER.encode()
    assert await call.hangup() == 200
    assert await asyncio.wait_for(rec_b.ended.get(), 2) == (callee, "bye")
    assert await asyncio.wait_for(rec_a.ended.get(), 2) == (call, "local bye")


async def test_outbound_call_rejected(two_uas) -> None:
    a, _rec_a, _b, rec_b = two_uas
    rec_b.auto_accept = False

    def busy(call: IncomingCall) -> None:
        call.reject(486, "Busy Here")

    _b.on_invite = busy
    call = await a.invite(_target(_b), SDP_OFFER.encode())
    assert call.status == 486 and call.state == "terminated" and a.active_calls == 0


async def test_outbound_ring_timeout_cancels(two_uas) -> None:
    a, _rec_a, b, rec_b = two_uas
    rec_b.auto_accept = False
    call = await a.invite(_target(b), SDP_OFFER.encode(), ring_timeout=0.3)
    assert call.status == 487 and call.state == "terminated"
    callee, reason = await asyncio.wait_for(rec_b.ended.get(), 2)
    assert reason == "cancelled" and callee.call_id == call.call_id


async def test_outbound_hangup_while_ringing_sends_cancel(two_uas) -> None:
    a, _rec_a, b, rec_b = two_uas
    rec_b.auto_accept = False
    ringing = asyncio.Event()
    placing = asyncio.ensure_future(
        a.invite(
            _target(b),
            SDP_OFFER.encode(),
            on_progress=lambda _call, resp: resp.status == 180 and ringing.set(),
        )
    )
    await asyncio.wait_for(rec_b.calls.get(), 2)
    call = next(iter(a.calls.values()))
    await asyncio.wait_for(ringing.wait(), 2)  # CANCEL only after a provisional (9.1)
    assert await call.hangup(timeout=2) is None
    placed = await asyncio.wait_for(placing, 3)
    assert placed is call and call.status == 487


async def test_outbound_call_answers_digest_challenge() -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a = await start_ua(rec_a, credentials=Credentials("alice", "pw"))
    b = await start_ua(rec_b, inbound_auth=InboundAuth("gw", "alice", "pw"))
    try:
        call = await a.invite(_target(b), SDP_OFFER.encode())
        assert call.status == 200 and call.invite.cseq[0] == 2
        assert call.invite.headers.get("Authorization")
        await call.hangup()
    finally:
        await a.close()
        await b.close()


async def test_merged_invite_same_call_id_new_branch_482(env) -> None:
    _ua, rec, peer = env
    rec.auto_accept = False
    peer.send(peer.invite("merge-1", branch="z9hG4bK-path-a"))
    await peer.expect_status(180)
    peer.send(peer.invite("merge-1", branch="z9hG4bK-path-b"))  # same request via another path
    await peer.expect_status(482)
    assert rec.calls.qsize() == 1


# -- admission (sip/admission.py) ----------------------------------------------------------------
async def test_403_is_sent_once_per_transaction_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()
    ua = await start_ua(rec, admission=Admission(local_networks=()))  # loopback as a stranger
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        invite = peer.invite("refused-1", branch="z9hG4bKrefused1")
        answers = []
        for _ in range(3):  # the same transaction, retransmitted
            peer.send(invite)
            answers.append(await peer.expect_status(403))
        assert len({a.to_tag for a in answers}) == 1  # the same answer, not a new one
        assert ua.counters.rejected_allowlist == 1
        # Answered statelessly: no transaction, so no Timer G retransmissions of the 403 to an
        # address that may be spoofed (one answer per INVITE received, never more).
        assert ua.server_transactions == 0
        peer.send(peer.invite("refused-2"))  # a new transaction: counted, not logged again
        await peer.expect_status(403)
        assert ua.counters.rejected_allowlist == 2
        lines = [r for r in caplog.records if getattr(r, "event", "") == "sip.invite_refused"]
        assert len(lines) == 1 and "sip.allow_networks" in lines[0].getMessage()
        assert rec.calls.empty()
    finally:
        peer.close()
        await ua.close()


async def test_invites_past_the_source_bucket_get_no_answer() -> None:
    rec = Recorder(auto_accept=False)
    admission = Admission(AdmissionPolicy(invite_rate=0.001, invite_burst=1))
    ua = await start_ua(rec, admission=admission)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        peer.send(peer.invite("bucket-1"))
        peer.send(peer.invite("bucket-2"))
        peer.send(peer.request("OPTIONS", call_id="bucket-barrier"))
        await peer.expect_status(200)  # the OPTIONS: everything before it was handled
        seen = {m.call_id for m in peer.drain()}
        assert "bucket-2" not in seen
        assert admission.counters.rate_limited == 1
        assert (await rec.calls.get()).call_id == "bucket-1"
    finally:
        peer.close()
        await ua.close()


async def test_max_calls_per_source_503() -> None:
    rec = Recorder()
    admission = Admission(AdmissionPolicy(max_calls_per_source=1))
    ua = await start_ua(rec, max_calls=10, admission=admission)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        await establish(peer, rec, "per-source-1")
        peer.send(peer.invite("per-source-2"))
        busy = await peer.expect_status(503)
        assert "source" in busy.reason and busy.headers.get("Retry-After")
        assert ua.counters.rejected_max_calls_per_source == 1
        assert ua.counters.rejected_max_calls == 0
    finally:
        peer.close()
        await ua.close()


async def test_registrar_is_limited_by_max_calls_only() -> None:
    """The PBX we register to sends every call from one address: the per-source call cap does
    not apply to it (only max_calls does), while other sources keep theirs."""
    rec = Recorder()
    admission = Admission(AdmissionPolicy(max_calls_per_source=1), local_networks=())
    admission.set_registrars(["127.0.0.1"])
    ua = await start_ua(rec, max_calls=2, admission=admission)
    peer = await SipPeer(("127.0.0.1", ua.transport.port)).start()
    try:
        await establish(peer, rec, "registrar-1")
        await establish(peer, rec, "registrar-2")  # past the per-source cap of 1
        peer.send(peer.invite("registrar-3"))
        busy = await peer.expect_status(503)  # max_calls = 2 still holds
        assert "source" not in busy.reason
        assert ua.counters.rejected_max_calls == 1
        assert ua.counters.rejected_max_calls_per_source == 0
    finally:
        peer.close()


# -- resource limits (issue 9) ------------------------------------------------------------------
async def test_out_of_dialog_options_is_stateless(env) -> None:
    ua, _rec, peer = env
    sent = peer.request("OPTIONS", call_id="stateless-1", branch="z9hG4bKstateless1")
    for _ in range(3):  # retransmissions are simply answered again
        peer.send(sent)
        ok = await peer.expect_status(200)
        assert ok.to_tag  # 8.2.6.2
        assert ok.top_via is not None and ok.top_via.branch == "z9hG4bKstateless1"
        assert "OPTIONS" in ok.headers.get_all("Allow")
        assert ok.headers.get_all("Accept") and ok.headers.get_all("Supported")
    assert ua.server_transactions == 0
    assert ua.counters.options_stateless == 3
    assert ua.counters.retransmissions_absorbed == 0
    ua.accepting = False
    peer.send(peer.request("OPTIONS", call_id="stateless-2"))
    busy = await peer.expect_status(503)
    assert busy.headers.get("Retry-After") and busy.to_tag
    peer.send(peer.request("OPTIONS", call_id="stateless-3", extra="Require: foo"))
    bad = await peer.expect_status(420)
    assert bad.headers.get("Unsupported") == "foo"
    assert ua.server_transactions == 0


def test_server_transaction_cap_drops_silently_and_per_source_share() -> None:
    """Driven with a fake clock: Timer J is a clock reading, not a wait."""
    sip = FakeSip(max_server_transactions=4, max_server_transactions_per_source=2, max_calls=10)
    ua = sip.ua
    other = TransportAddr("udp", "192.0.2.11", 5062)
    for n in range(5):
        sip.deliver(sip.request("BYE", f"flood-{n}"))  # 481 each, then Timer J
    # Two answered; nothing for the dropped ones: no reflection.
    assert sip.statuses() == [481, 481]
    # The other source still has its share.
    sip.deliver(sip.request("BYE", "other-1"), other)
    assert sip.statuses() == [481]
    assert ua.server_transactions == 3
    assert ua.counters.transactions_dropped == 3
    # Timer J (64*T1) reaps them; the source has room again.
    sip.advance(ua.timers.timeout)
    assert ua.server_transactions == 0
    sip.deliver(sip.request("BYE", "flood-late"))
    assert sip.statuses() == [481]


async def test_total_transaction_cap_evicts_finished_ones_for_a_new_caller() -> None:
    """A flood of rejected requests from several addresses fills the total; a caller from yet
    another address still gets in because finished (Completed) transactions are evicted."""
    rec = Recorder()
    ua = await start_ua(rec, max_server_transactions=4, max_server_transactions_per_source=2)
    floods = [
        await SipPeer(("127.0.0.1", ua.transport.port), host=f"127.0.0.{n}").start() for n in (2, 3)
    ]
    caller = await SipPeer(("127.0.0.1", ua.transport.port), host="127.0.0.4").start()
    try:
        for peer in floods:
            for n in range(2):
                peer.send(peer.request("BYE", call_id=f"{peer.host}-{n}"))
                await peer.expect_status(481)
        assert ua.server_transactions == 4
        await establish(caller, rec, "evict-1")
        assert ua.counters.transactions_evicted >= 1
        assert ua.counters.transactions_dropped == 0
        assert ua.server_transactions <= 4
    finally:
        for peer in (*floods, caller):
            peer.close()
        await ua.close()
