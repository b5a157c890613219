"""SIP user agent: the asyncio shell over the sans-I/O core (sip/ua_core.py and its parts).

The core takes messages and `clock()` readings and gives messages to send, timer requests and
call events; this module is the only place with tasks, loop timers and futures: it arms one loop
timer for the core's earliest deadline, runs coroutine callbacks, resolves next hops
(sip/resolve.py) and lets the application await client requests, outbound calls, hang-ups and
transfers. sip.dialog keeps tags, CSeqs, route set and remote target.

Public API (stable; gateway/app.py codes against it)
----------------------------------------------------
    transport = Transport(host, port, transports=("udp", "tcp"),
                          tls_context=server_ctx, tls_port=5061,  # optional TLS listener
                          tls_client_context=client_ctx)          # outbound TLS (issue 13)
    ua = UserAgent(
        transport,
        advertised_host="203.0.113.5", advertised_port=5060,   # default: bind address / port
        advertised_tls_port=5061,               # default: transport.tls_port (Via/Contact on TLS)
        user_agent="sip-realtime-gateway",
        max_calls=100,                          # more -> 503 + Retry-After (retry_after=5)
        allow_networks=["10.0.0.0/8"],          # besides loopback; others 403 (sip.admission)
        admission=Admission(AdmissionPolicy(...)) | None,  # instead of allow_networks: rate,
                                                # per-source calls, registrars, local addresses
        inbound_auth=InboundAuth(realm, user, password) | None,   # 401 challenge on INVITE
        credentials=Credentials(user, password) | None,  # answers 401/407 to our BYE/REFER/...
        min_se=90, session_expires=1800,        # RFC 4028
        timers=TimerConfig(t1=0.5),             # tests inject short timers
        on_invite=..., on_call_ended=..., on_ack_sdp=..., on_reoffer=..., on_dtmf=...,
        on_ack=..., on_ack_timeout=...,
    )
    await ua.start()            # starts the transport too; sets transport.on_message
    ua.accepting = False        # shutdown: new INVITEs get 503
    ua.configure_inbound_auth(InboundAuth | None)   # SIGHUP; ua.admission.configure(policy)
    await ua.close()            # stops timers and the transport (hang calls up first)
    ua.calls (Call-ID -> IncomingCall | OutgoingCall, both subclasses of Call), ua.active_calls,
    ua.counters, transport.counters

Callbacks (plain callables or coroutine functions; exceptions are logged, never fatal):
    on_invite(call: IncomingCall)                      a new call (100 and 180 already sent);
                                                       decide later: call.accept(answer_sdp)
                                                       or call.reject(status)
    on_call_ended(call: IncomingCall, reason: str)     reason: "bye" (peer hung up), "cancelled",
                                                       "ack timeout", "session expired",
                                                       "local bye" (call.hangup()), "no answer"
                                                       (no accept/reject within answer_timeout,
                                                       default 60 s: 480 sent). Not called
                                                       for the app's own call.reject().
    on_ack_sdp(call: IncomingCall, sdp: bytes)         late offer: the answer that came in the ACK
    on_reoffer(call, offer_sdp: bytes) -> bytes|None   re-INVITE/UPDATE with SDP (hold/resume);
                                                       return our answer body (may be a coroutine).
                                                       None or no callback: the UA mirrors the
                                                       direction on our last SDP itself. The UA
                                                       keeps the o= version when the body is
                                                       unchanged and bumps it otherwise (RFC 3264 8).
    on_dtmf(call, digit: str, duration_ms: int)        SIP INFO dtmf-relay / dtmf (0 = unknown)
    on_ack(call)                                       the ACK for our 200 to the initial INVITE
                                                       arrived (after on_ack_sdp for late offers)
    on_ack_timeout(call)                               Timer H: no ACK for our 2xx. When set, the
                                                       UA sends no BYE itself: the application
                                                       decides and calls call.hangup(reason).
                                                       Unset: the UA sends BYE ("ack timeout").

IncomingCall: call_id, local_tag, remote_tag, remote_uri, request_uri, from_header, to_header,
source (TransportAddr), invite (Request), offer_sdp (bytes | None), offer (sip.sdp
SessionDescription or None), late_offer, state ("early" | "confirmed" | "terminated"), dialog
(sip.dialog.Dialog once accepted), local_sdp, remote_sdp, end_reason, duration
    call.accept(answer_sdp: bytes | None, headers=None)   # late offer: answer_sdp is our offer
    call.reject(status, reason=None, headers=None)        # 3xx-6xx
    await call.hangup(reason_header=None, timeout=5.0) -> int | None   (BYE's final status;
                                                       480 instead when not answered yet)
    await call.refer(target_uri, timeout=30.0) -> int  (final sipfrag status, the REFER's error
                                                       status, or 408 on timeout)
    await call.send_request(method, body=b"", content_type=None, headers=None) -> Response | None

Outbound calls: call = await ua.invite(target_uri, offer_sdp, from_user=None, display_name=None,
headers=(), dest=None, credentials=None, ring_timeout=60.0, on_progress=None) -> OutgoingCall
    call.status: final INVITE status (200, 486, 487 after ring_timeout/hangup, None = no answer);
    on 2xx the ACK is sent and call.remote_sdp holds the answer; then hangup/refer/send_request as
    above. call.hangup() while ringing sends CANCEL. Digest 401/407 answered with credentials.
    No session timer is started for outbound calls (we do not ask for one).

Generic client requests: await ua.request(method, uri, dest=None, headers=(), body=b"",
content_type=None, credentials=None, timeout=None) -> Response | None  (None = Timer F/B timeout).

Decisions documented here:
- Admission, scanner drops, stateless answers and transaction caps: sip/uas_guard.py.
- INFO: sip/info.py. Request checks (RFC 3261 8.2 order) and out-of-dialog methods:
  sip/ua_core.py.
- Session timers: when the INVITE has Session-Expires we honour it (422 below min_se), answer
  with Session-Expires (refresher as asked, else the UAC if it supports timer) and Require: timer
  when the UAC supports it. As refresher we send UPDATE at SE/2 (re-INVITE with our last SDP if
  the peer's Allow lacks UPDATE), retried after RFC 3261 14.1's delay when it meets glare (491,
  sip/glare.py); if the peer refreshes and misses SE - min(32, SE/3), we BYE (sip/session_timer.py).
- Time: every timer (transactions, Timer C, the answer deadline, session clocks) is a deadline
  of the core; `ua.next_deadline` says when, `ua.tick()` runs what is due at `clock()`. Here one
  loop timer calls it; a test with a fake clock calls it itself (tests/tools/fake_sip.py).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sip.auth import DigestCredentials
from sip.calls import (
    Call,
    CallState,
    ClientTxn,
    IncomingCall,
    OutgoingCall,
    ServerTxn,
    Signal,
    build_request,
)
from sip.glare import retry_delay
from sip.invite_server import InboundAuth
from sip.message import Request, Response, generate_call_id, generate_tag
from sip.refer import NO_ANSWER, ReferProgress, refer_headers
from sip.resolve import default_advertised_host
from sip.resolve import resolve as resolve_uri
from sip.sdp import NoCommonCodec, mirror_offer_direction, versioned_sdp
from sip.session_timer import EXPIRED, refresh_method
from sip.stream import norm_host, tls_reason
from sip.transport import TransportAddr
from sip.ua_core import (
    DEFAULT_ACCEPT,
    DEFAULT_ALLOW,
    DEFAULT_SUPPORTED,
    KNOWN_METHODS,
    Callback,
    UaCore,
    UaCounters,
)
from sip.uac_auth import Credentials, DigestRetry
from sip.uas_guard import DEFAULT_SCANNERS
from sip.uri import SipUri, parse_uri

log = logging.getLogger("sip")


async def signalled(signal: Signal) -> None:
    """Wait until a core Signal (sip/calls.py) is set."""
    if signal.is_set():
        return
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    signal.when_set(lambda: done.done() or done.set_result(None))
    await done


class UserAgent(UaCore):
    """The gateway's SIP user agent (UAS for inbound calls, UAC for in-dialog and REGISTER).
    Constructed with UaCore's keyword arguments (sip/ua_core.py; listed in the module
    docstring)."""

    _tick_handle: asyncio.TimerHandle | None = None
    _tick_at: float | None = None

    @functools.cached_property
    def _tasks(self) -> set[asyncio.Task[Any]]:
        return set()

    @functools.cached_property
    def _waiting(self) -> set[asyncio.Future[Response | None]]:
        """Futures of client requests someone awaits (cancelled by close())."""
        return set()

    @functools.cached_property
    def send_failures(self) -> dict[tuple[str, str, int], str]:
        """(proto, host, port) -> why the last TCP/TLS connection to it failed (a refused
        certificate, a refused connect): a request that got no response can say why
        (registration.py). A few entries at most; cleared when it grows."""
        return {}

    def _on_send_error(self, dest: TransportAddr, exc: Exception) -> None:
        failures = self.send_failures
        if len(failures) >= 64:
            failures.clear()
        failures[(dest.proto, norm_host(dest.host), dest.port)] = tls_reason(exc)
        super()._on_send_error(dest, exc)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.transport.on_message = self.handle_datagram
        self.transport.on_send_error = self._on_send_error
        await self.transport.start()
        if not self._advertised_host:
            self._advertised_host = default_advertised_host(self.transport.host)
        if not self._advertised_port:
            self._advertised_port = self.transport.port

    async def close(self) -> None:
        """Stop everything this UA started (calls are not BYE'd here: the app hangs up first)."""
        self.accepting = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for future in list(self._waiting):
            if not future.done():
                future.cancel()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self.transport.close()
        await self.transport.wait_closed()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _run_awaitable(self, result: Any) -> None:
        self._spawn(self._await_callback(result))

    async def _await_callback(self, result: Awaitable[Any]) -> None:
        try:
            await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters.callback_errors += 1
            log.exception("application callback failed", extra={"event": "sip.callback_error"})

    # -- the loop timer --------------------------------------------------------------------------
    def _want_tick(self, deadline: float) -> None:
        """Keep one loop timer armed for the earliest transaction deadline."""
        if self._tick_handle is not None and self._tick_at is not None:
            if self._tick_at <= deadline:
                return
            self._tick_handle.cancel()
        self._tick_at = deadline
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: a fake-clock test drives tick() itself (next_deadline says when)
        # +1 ms so the tick never lands a hair before the deadline and finds nothing due.
        delay = max(0.0, deadline - self.clock()) + 0.001
        self._tick_handle = loop.call_later(delay, self._fire_tick)

    def _fire_tick(self) -> None:
        self._tick_handle = None
        self._tick_at = None
        self._on_tick()

    def tick(self) -> None:
        """Run every transaction and call timer due at clock() (the loop timer calls this)."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        self._tick_at = None
        self._on_tick()

    # -- hooks of the core ----------------------------------------------------------------------
    def _start_bye(self, call: Call, reason: str) -> None:
        self._spawn(self._bye(call, None, self.timers.timeout, reason=reason))

    def _start_refresh(self, call: Call) -> None:
        self._spawn(self._refresh_session(call))

    def _start_reoffer(
        self,
        call: Call,
        txn: ServerTxn,
        offer: bytes,
        extra: list[tuple[str, str]],
        is_invite: bool,
    ) -> None:
        self._spawn(self._answer_offer(call, txn, offer, extra, is_invite))

    def _refer_finished(self, call: Call, outcome: int) -> None:
        waiter = call._refer_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def _answer_offer(
        self,
        call: Call,
        txn: ServerTxn,
        offer: bytes,
        extra: list[tuple[str, str]],
        is_invite: bool,
    ) -> None:
        answer: bytes | None = None
        if self.on_reoffer is not None:
            try:
                result = self.on_reoffer(call, offer)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, timeout=self.timers.t2 * 2)
                answer = result
            except asyncio.CancelledError:
                raise
            except NoCommonCodec as exc:
                # The application refuses this offer (RFC 3264 8: the session stays as it was).
                self._refuse_offer(txn, exc)
                return
            except Exception:
                self.counters.callback_errors += 1
                log.exception(
                    "on_reoffer failed",
                    extra={"event": "sip.callback_error", "call_id": call.call_id},
                )
        self._answer_reoffer(call, txn, offer, answer, extra, is_invite)

    async def _refresh_session(self, call: Call) -> None:
        session = call.session
        if session is None:
            return
        headers = session.refresh_headers()
        if refresh_method(call.peer_allow) == "UPDATE":
            resp = await self._in_dialog_request(call, "UPDATE", b"", None, headers, None)
        else:
            body = call.local_sdp or b""
            resp = await self._in_dialog_request(
                call, "INVITE", body, "application/sdp" if body else None, headers, None
            )
        if call.state != CallState.CONFIRMED:
            return
        status = resp.status if resp is not None else None
        granted = resp.headers.get("Session-Expires") if resp is not None else None
        retry = retry_delay(owns_call_id=isinstance(call, OutgoingCall))
        if call.session_clock.refresh_answered(status, granted, self.clock(), retry) == EXPIRED:
            self._start_bye(call, "session expired")
            return
        if call.session_clock.deadline is not None:
            self._call_wakeup(call, call.session_clock.deadline)

    # -- client transactions (UAC) ------------------------------------------------------------
    async def resolve(self, uri: SipUri, proto: str | None = None) -> TransportAddr:
        """Next-hop address for a URI: IP literal or A/AAAA lookup (no NAPTR/SRV: the configured
        registrar/proxy address is used as given); sip/resolve.py."""
        return await resolve_uri(uri, proto, self.transport.family)

    async def _next_hop(
        self, ruri: SipUri, dest: TransportAddr | tuple[str, int] | None
    ) -> TransportAddr:
        """Where an out-of-dialog request goes: `dest` as given ((host, port) means UDP), else
        the Request-URI resolved."""
        if dest is None:
            return await self.resolve(ruri)
        if isinstance(dest, TransportAddr):
            return dest
        return TransportAddr("udp", dest[0], int(dest[1]))

    async def request(
        self,
        method: str,
        uri: str | SipUri,
        *,
        dest: TransportAddr | tuple[str, int] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        credentials: Credentials | DigestCredentials | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Response | None:
        """Send an out-of-dialog request and return its final response (None on Timer F/B).

        From/To/Call-ID/CSeq are generated unless given in `headers`. With `credentials`, a 401
        or 407 is answered once per challenge (stale nonces retried, wrong passwords not)."""
        ruri = parse_uri(uri) if isinstance(uri, str) else uri
        target = await self._next_hop(ruri, dest)
        given = {name.lower() for name, _ in headers}
        base: list[tuple[str, str]] = []
        if "from" not in given:
            base.append(
                ("From", f"<sip:{self.contact_user}@{self._hostport()}>;tag={generate_tag()}")
            )
        if "to" not in given:
            base.append(("To", f"<{ruri}>"))
        if "call-id" not in given:
            base.append(("Call-ID", generate_call_id(self.advertised_host)))
        cseq = 1
        for name, value in headers:
            if name.lower() == "cseq":
                cseq = int(value.split()[0])
        extra = [(n, v) for n, v in headers if n.lower() != "cseq"]
        if content_type and body:
            extra.append(("Content-Type", content_type))
        retry = DigestRetry(credentials, target, method, max_sends=4)
        auth_headers: list[tuple[str, str]] = []
        while True:  # challenge rounds: DigestRetry bounds them
            req = build_request(
                method,
                str(ruri),
                [
                    ("Via", self.via(target.proto)),
                    ("Max-Forwards", "70"),
                    *base,
                    *extra,
                    ("CSeq", f"{cseq} {method}"),
                    ("User-Agent", self.user_agent),
                    *auth_headers,
                ],
                body,
            )
            resp = await self.send_request(req, target, timeout)
            retry.call_id = req.call_id
            answer = retry.answer(resp, str(ruri), body)
            if answer is None:
                return resp
            auth_headers = answer
            cseq += 1

    def _client_future(
        self,
        req: Request,
        dest: TransportAddr,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> tuple[ClientTxn, asyncio.Future[Response | None]]:
        """Start a client transaction whose final response (None: Timer B/F, transport
        failure) resolves the returned future."""
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)

        def final(resp: Response | None) -> None:
            if not future.done():
                future.set_result(resp)

        return self._start_client(req, dest, on_provisional, final), future

    async def send_request(
        self,
        req: Request,
        dest: TransportAddr,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Response | None:
        """Run one client transaction (17.1, sip.transaction): retransmissions over UDP (Timer
        A/E), Timer B/F at 64*T1 (or `timeout` if shorter). Returns the final response or None."""
        txn, future = self._client_future(req, dest)
        # An INVITE past its provisional has no Timer B any more: bound it ourselves.
        limit = timeout if timeout is not None else self.timers.timeout + self.timers.t2
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            return None
        finally:
            if not future.done():
                future.cancel()
                self._forget(txn)

    # -- outbound calls (UAC INVITE, sip/invite_client.py) ---------------------------------------
    async def invite(
        self,
        target: str | SipUri,
        offer_sdp: bytes | None,
        *,
        from_user: str | None = None,
        display_name: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        dest: TransportAddr | tuple[str, int] | None = None,
        credentials: Credentials | DigestCredentials | None = None,
        ring_timeout: float = 60.0,
        on_progress: Callback | None = None,
    ) -> OutgoingCall:
        """Place a call and wait for the final answer. The returned call has `status` (None:
        nobody answered in time and the INVITE was cancelled); with a 2xx it is confirmed (ACK
        sent, `remote_sdp` holds the answer) and behaves like an answered inbound call: hangup,
        refer, send_request, and the same on_call_ended/on_reoffer/on_dtmf callbacks.
        `on_progress(call, response)` sees the provisional responses (180/183)."""
        ruri = parse_uri(target) if isinstance(target, str) else target
        target_addr = await self._next_hop(ruri, dest)
        user = from_user or self.contact_user
        display = f'"{display_name}" ' if display_name else ""
        from_value = f"{display}<sip:{user}@{self._hostport()}>;tag={generate_tag()}"
        call_id = generate_call_id(self.advertised_host)
        credentials = credentials or self.credentials
        retry = DigestRetry(credentials, target_addr, "INVITE", call_id)
        auth: list[tuple[str, str]] = []
        cseq = 1
        call: OutgoingCall | None = None
        resp: Response | None = None
        while True:  # initial attempt + digest answers (DigestRetry bounds them)
            req = self._invite_request(
                ruri, target_addr, from_value, call_id, cseq, offer_sdp, headers, auth
            )
            if call is None:
                call = OutgoingCall(self, req, target_addr)
                call.credentials = credentials
                self.calls[call_id] = call
            else:
                call.invite = req
                call._provisional_seen = False
            resp = await self._run_invite(call, req, target_addr, ring_timeout, on_progress)
            answer = retry.answer(resp, str(ruri), offer_sdp or b"")
            if retry.refused:
                call.challenge_refused = f"{target_addr.host}:{target_addr.port}"
            if answer is None:
                break
            auth = answer
            cseq += 1
        assert call is not None
        self._finish_invite(call, resp, target_addr)
        return call

    async def _run_invite(
        self,
        call: OutgoingCall,
        req: Request,
        dest: TransportAddr,
        ring_timeout: float,
        on_progress: Callback | None,
    ) -> Response | None:
        txn, future = self._client_future(req, dest, self._invite_provisional(call, on_progress))
        # Timer C runs on the core's clock: CANCEL at ring_timeout, None a transaction timeout
        # later (sip/invite_client.py).
        self._ring(call, txn, ring_timeout)
        try:
            return await future
        finally:
            if not future.done():
                future.cancel()
                self._forget(txn)

    async def _cancel_outgoing(self, call: OutgoingCall, timeout: float) -> None:  # noqa: ASYNC109
        self._request_cancel(call)
        try:
            await asyncio.wait_for(signalled(call.settled), timeout)
        except TimeoutError:
            pass

    # -- in-dialog client requests ---------------------------------------------------------
    async def _dialog_dest(self, call: Call) -> TransportAddr:
        assert call.dialog is not None
        hop = call.dialog.next_hop()
        # A sips: hop is TLS whatever the call came over (sip/resolve.py refuses UDP/TCP).
        proto = hop.transport or (None if hop.scheme == "sips" else call.source.proto)
        target = await self.resolve(hop, proto)
        if target.reliable and target.proto == call.source.proto:
            # Reuse the caller's connection (NAT-friendly); the transport reconnects if it died.
            return TransportAddr(
                target.proto, target.host, target.port, call.source.conn, target.server_name
            )
        return target

    async def _in_dialog_request(
        self,
        call: Call,
        method: str,
        body: bytes,
        content_type: str | None,
        headers: list[tuple[str, str]],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Response | None:
        if call.dialog is None or (call.state == CallState.TERMINATED and method != "BYE"):
            return None
        dest = await self._dialog_dest(call)
        extra = [("User-Agent", self.user_agent), *headers]
        retry = DigestRetry(call.credentials or self.credentials, dest, method, call.call_id)
        auth: list[tuple[str, str]] = []
        if method == "INVITE":
            call._reinvite_pending_out = True
        try:
            while True:  # digest answers: DigestRetry bounds them
                req = call.dialog.create_request(
                    method,
                    self.advertised_host,
                    self.port_for(dest.proto),
                    dest.proto,
                    body=body,
                    content_type=content_type,
                    extra_headers=[*extra, *auth],
                )
                resp = await self.send_request(req, dest, timeout)
                if resp is not None:
                    call.dialog.receive_response(req, resp)
                if method == "INVITE" and resp is not None and 200 <= resp.status < 300:
                    self._ack_2xx(call, req, resp, dest)
                answer = retry.answer(resp, str(req.uri), body)
                if answer is None:
                    return resp
                auth = answer
        finally:
            if method == "INVITE":
                call._reinvite_pending_out = False

    async def _hangup(
        self,
        call: Call,
        reason_header: str | None,
        timeout: float,  # noqa: ASYNC109
    ) -> int | None:
        if call.state == CallState.TERMINATED:
            return None
        if isinstance(call, OutgoingCall) and call.state == CallState.EARLY:
            # 15: before the answer an outbound call is ended with CANCEL, not BYE.
            await self._cancel_outgoing(call, timeout)
            return None
        if isinstance(call, IncomingCall) and call.state == CallState.EARLY:
            # Not answered yet: a BYE is not allowed (15); decline instead.
            if not call._txn.final_status:
                self._reply(call._txn, 480, "Temporarily Unavailable", to_tag=call.local_tag)
            self._terminate(call, "local bye")
            return None
        return await self._bye(call, reason_header, timeout, reason="local bye")

    async def _bye(
        self,
        call: Call,
        reason_header: str | None,
        timeout: float,  # noqa: ASYNC109
        reason: str,
    ) -> int | None:
        if call.state == CallState.TERMINATED or call.dialog is None:
            return None
        self._terminate(call, reason)  # the dialog ends when the BYE is sent (15.1.1)
        headers = [("Reason", reason_header)] if reason_header else []
        try:
            resp = await asyncio.wait_for(
                self._in_dialog_request(call, "BYE", b"", None, headers, timeout), timeout
            )
        except TimeoutError:
            return None
        return resp.status if resp is not None else None

    async def _refer(self, call: Call, target_uri: str, timeout: float) -> int:  # noqa: ASYNC109 - a SIP-level deadline, not a cancel scope
        """Blind transfer: the REFER, then the NOTIFYs' outcome (sip/refer.py)."""
        if call.state != CallState.CONFIRMED:
            return 481
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        progress = call.refer_progress = ReferProgress()
        waiter: asyncio.Future[int] = loop.create_future()
        call._refer_waiter = waiter
        try:
            resp = await self._in_dialog_request(
                call, "REFER", b"", None, refer_headers(target_uri, self.contact()), None
            )
            outcome = progress.refer_answered(resp.status if resp is not None else None)
            if outcome is not None:
                return outcome
            remaining = deadline - loop.time()
            if remaining <= 0:
                return NO_ANSWER
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), remaining)
            except TimeoutError:
                return NO_ANSWER
        finally:
            call.refer_progress = None
            call._refer_waiter = None
            log.info(
                "transfer finished",
                extra={"event": "sip.refer.done", "call_id": call.call_id, "target": target_uri},
            )


__all__ = [
    "DEFAULT_ACCEPT",
    "DEFAULT_ALLOW",
    "DEFAULT_SCANNERS",
    "DEFAULT_SUPPORTED",
    "KNOWN_METHODS",
    "Call",
    "CallState",
    "Credentials",
    "InboundAuth",
    "IncomingCall",
    "OutgoingCall",
    "UaCounters",
    "UserAgent",
    "mirror_offer_direction",
    "signalled",
    "versioned_sdp",
]
