"""The user agent's sans-I/O core: bytes and time in; messages to send, timer requests and call
events out. No asyncio and no sockets here: `handle_datagram(data, source)` feeds a message,
`tick()` runs what fell due at `clock()`, `next_deadline` says when to tick again, and what it
sends goes to the injected transport's `send(data, dest)`. Whatever has to wait (a BYE on its
dialog's resolved next hop, a session refresh, an application's asynchronous answer) is handed
to a hook the asyncio shell, sip/useragent.py, implements: `_start_bye`, `_start_refresh`,
`_start_reoffer`, `_refer_finished`, `_run_awaitable`, `_want_tick`.

Split the way libre (baresip/re) splits sipsess, one job per module, all mixins of UaCore:
    sip/invite_server.py   INVITE server: new calls, accept/reject, ACK, Timer H, CANCEL
    sip/invite_client.py   INVITE client: our INVITE, its CANCEL, the answer and its ACK
    sip/dialog_server.py   in-dialog requests: BYE, re-INVITE/UPDATE, OPTIONS, INFO, NOTIFY
    sip/uas_guard.py       scanners, stateless answers, transaction caps, response routing
with pure helpers in sip/session_timer.py (RFC 4028), sip/refer.py (RFC 3515), sip/info.py
(DTMF INFO) and sip/calls.py (the call objects). sip.transaction's sans-I/O machines own every
retransmission timer; this core feeds them and runs their outputs.

Request checks in RFC 3261 8.2 order: 416 (Request-URI scheme other than sip/sips), 420, 501,
then for INVITE/UPDATE 415 (body not application/sdp) and 406 (Accept without SDP), see
sip/uas_rules.py. Max-Forwards 0 is processed, not refused (483 is a proxy's answer).
Out-of-dialog NOTIFY/SUBSCRIBE/MESSAGE/PUBLISH/REFER/REGISTER get 405 with Allow; unknown
methods 501; BYE/INFO/UPDATE without a dialog 481.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sip.address import SipTransport, TransportAddr
from sip.admission import REFUSE, Admission, AdmissionPolicy
from sip.auth import DigestServer
from sip.calls import Call, CallState, ClientTxn, IncomingCall, ServerTxn
from sip.dialog_server import DialogServer
from sip.invite_client import InviteClient
from sip.invite_server import InboundAuth, InviteServer
from sip.message import (
    Request,
    Response,
    SipParseError,
    generate_branch,
    generate_tag,
    parse_message,
)
from sip.sdp import NoCommonCodec
from sip.session_timer import EXPIRED, REFRESH
from sip.timers import TimerConfig
from sip.transaction import (
    AckReceived,
    AckTimeout,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ResponseReceived,
    Send,
    Terminated,
    Timeout,
    TimerAt,
    TransactionError,
    TransactionLayer,
    TransportFailed,
)
from sip.uac_auth import Credentials
from sip.uas_guard import DEFAULT_SCANNERS, UasGuard
from sip.uas_rules import accept_refusal, content_refusal

log = logging.getLogger("sip")

DEFAULT_ALLOW: tuple[str, ...] = (
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "NOTIFY",
)
KNOWN_METHODS = frozenset(
    {*DEFAULT_ALLOW, "REFER", "REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "PRACK"}
)
DEFAULT_ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
DEFAULT_SUPPORTED: tuple[str, ...] = ("timer",)
Callback = Callable[..., Any]


@dataclass
class UaCounters:
    parse_errors: int = 0
    parse_dropped: int = 0
    scanner_dropped: int = 0
    stray_responses: int = 0
    retransmissions_absorbed: int = 0
    rejected_max_calls: int = 0
    rejected_max_calls_per_source: int = 0
    rejected_allowlist: int = 0  # 403: source not admitted (sip/admission.py)
    auth_challenges: int = 0
    auth_replays: int = 0  # a used nonce sent again with no higher nc (sip/auth.py)
    callback_errors: int = 0
    options_stateless: int = 0  # out-of-dialog OPTIONS answered without a transaction
    transactions_dropped: int = 0  # requests dropped: server transaction caps reached
    transactions_evicted: int = 0  # finished transactions dropped to make room (total cap)


class UaCore(InviteServer, InviteClient, DialogServer, UasGuard):
    """The user agent minus its event loop (see the module docstring)."""

    def __init__(
        self,
        transport: SipTransport,
        *,
        advertised_host: str | None = None,
        advertised_port: int | None = None,
        advertised_tls_port: int | None = None,
        user_agent: str = "sip-realtime-gateway",
        contact_user: str = "gateway",
        allow: Sequence[str] = DEFAULT_ALLOW,
        supported: Sequence[str] = DEFAULT_SUPPORTED,
        accept: str = DEFAULT_ACCEPT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        timers: TimerConfig | None = None,
        max_calls: int = 100,
        max_server_transactions: int = 10000,
        max_server_transactions_per_source: int = 0,
        allow_networks: Sequence[str] = (),
        admission: Admission | None = None,
        inbound_auth: InboundAuth | None = None,
        credentials: Credentials | None = None,
        min_se: int = 90,
        session_expires: int = 1800,
        retry_after: int = 5,
        answer_timeout: float = 60.0,
        scanner_user_agents: Sequence[str] = DEFAULT_SCANNERS,
        on_invite: Callback | None = None,
        on_call_ended: Callback | None = None,
        on_ack_sdp: Callback | None = None,
        on_reoffer: Callback | None = None,
        on_dtmf: Callback | None = None,
        on_ack: Callback | None = None,
        on_ack_timeout: Callback | None = None,
    ) -> None:
        self.transport = transport
        self._advertised_host = advertised_host or ""
        self._advertised_port = advertised_port
        self._advertised_tls_port = advertised_tls_port
        self.user_agent = user_agent
        self.contact_user = contact_user
        self.allow = tuple(allow)
        self.supported = tuple(supported)
        self.accept_types = accept
        self.clock = clock
        self.wall_clock = wall_clock
        self.timers = timers or TimerConfig()
        self.max_calls = max_calls
        # ValueError here names the bad CIDR, so config validation can report it.
        self.admission = admission or Admission(
            AdmissionPolicy(allow_networks=tuple(allow_networks))
        )
        self.inbound_auth: InboundAuth | None = None
        self.digest_server: DigestServer | None = None
        self.configure_inbound_auth(inbound_auth)
        self.credentials = credentials
        self.min_se = min_se
        self.session_expires = max(session_expires, min_se)
        self.retry_after = retry_after
        self.answer_timeout = answer_timeout
        self.scanner_user_agents = tuple(s.lower() for s in scanner_user_agents)
        self.on_invite = on_invite
        self.on_call_ended = on_call_ended
        self.on_ack_sdp = on_ack_sdp
        self.on_reoffer = on_reoffer
        self.on_dtmf = on_dtmf
        self.on_ack = on_ack
        self.on_ack_timeout = on_ack_timeout
        self.accepting = True  # False during shutdown: new INVITEs get 503
        self._tag_secret = secrets.token_bytes(16)  # stateless To tags (_stateless_tag)
        self._refused_recently: OrderedDict[tuple[str, str | None], None] = OrderedDict()
        self.counters = UaCounters()
        self.calls: dict[str, Call] = {}  # by Call-ID (+ our tag inside)
        # Transactions are sip.transaction's sans-I/O machines; the UA only runs their outputs
        # and one loop timer for the earliest deadline.
        self._layer = TransactionLayer(
            max_servers=max_server_transactions,
            max_servers_per_source=max_server_transactions_per_source,
        )
        self._txns: dict[int, ServerTxn | ClientTxn] = {}  # id(machine) -> wrapper
        # Call deadlines (answer deadline, session clocks), earliest first; stale entries are
        # harmless: _call_tick asks the call what is really due.
        self._call_deadlines: list[tuple[float, int, Call]] = []
        self._call_seq = 0
        # ACKs we sent for 2xx responses, repeated when the 2xx is (13.2.2.4), until expiry.
        self._acks_sent: dict[tuple[str, int], tuple[bytes, TransportAddr, float]] = {}
        self._last_parse_log = 0.0
        self._last_cap_log: float | None = None

    def configure_inbound_auth(self, inbound_auth: InboundAuth | None) -> None:
        """Set (or with None / an empty username, remove) the digest challenge on inbound
        INVITEs. Unchanged settings keep the current server, so outstanding nonces stay valid."""
        if inbound_auth is not None and not inbound_auth.username:
            inbound_auth = None
        if inbound_auth == self.inbound_auth and (inbound_auth is None) == (
            self.digest_server is None
        ):
            return
        self.inbound_auth = inbound_auth
        self.digest_server = (
            DigestServer(
                inbound_auth.realm,
                inbound_auth.username,
                inbound_auth.password,
                algorithm=inbound_auth.algorithm,
                nonce_ttl=inbound_auth.nonce_ttl,
            )
            if inbound_auth is not None
            else None
        )

    @property
    def advertised_host(self) -> str:
        return self._advertised_host

    @property
    def advertised_port(self) -> int:
        return int(self._advertised_port or self.transport.port)

    @property
    def active_calls(self) -> int:
        return sum(1 for c in self.calls.values() if c.state != CallState.TERMINATED)

    @property
    def advertised_tls_port(self) -> int:
        """The port our TLS Via/Contact carry: as configured, else the transport's TLS port."""
        return int(self._advertised_tls_port or getattr(self.transport, "tls_port", 0) or 5061)

    def port_for(self, proto: str) -> int:
        """The advertised port of one transport (TLS listens on its own port)."""
        return self.advertised_tls_port if proto == "tls" else self.advertised_port

    def _hostport(self, proto: str = "udp") -> str:
        host = self.advertised_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port_for(proto)}"

    def via(self, proto: str, branch: str | None = None) -> str:
        sent_by = self._hostport(proto)
        return f"SIP/2.0/{proto.upper()} {sent_by};branch={branch or generate_branch()};rport"

    def contact(self, proto: str = "udp", secure: bool = False) -> str:
        """Our Contact for a message sent over `proto`. `secure`: the peer used sips: (RFC 5630
        4.1), so we answer with a sips: Contact (TLS implied, no transport parameter)."""
        if secure:
            return f"<sips:{self.contact_user}@{self._hostport('tls')}>"
        suffix = f";transport={proto}" if proto in ("tcp", "tls") else ""
        return f"<sip:{self.contact_user}@{self._hostport(proto)}{suffix}>"

    # -- hooks the asyncio shell implements -----------------------------------------------------
    def _start_bye(self, call: Call, reason: str) -> None:
        """End a confirmed call with BYE (Timer H, session expiry, a 2xx after our CANCEL)."""
        raise NotImplementedError

    def _start_refresh(self, call: Call) -> None:
        """Send our RFC 4028 session refresh and report it to `call.session_clock`."""
        raise NotImplementedError

    def _start_reoffer(
        self,
        call: Call,
        txn: ServerTxn,
        offer: bytes,
        extra: list[tuple[str, str]],
        is_invite: bool,
    ) -> None:
        """Ask the application (on_reoffer, maybe a coroutine) for the answer to a re-offer,
        then `_answer_reoffer` or `_refuse_offer`. Without a loop: answered at once."""
        answer: bytes | None = None
        if self.on_reoffer is not None:
            try:
                result = self.on_reoffer(call, offer)
            except NoCommonCodec as exc:
                self._refuse_offer(txn, exc)
                return
            if inspect.isawaitable(result):
                self._run_awaitable(result)  # no loop to wait on: answered as if it gave none
            else:
                answer = result
        self._answer_reoffer(call, txn, offer, answer, extra, is_invite)

    def _refer_finished(self, call: Call, outcome: int) -> None:
        """A transfer's NOTIFYs (or the call's end) decided its outcome."""

    def _run_awaitable(self, result: Any) -> None:
        """A callback returned an awaitable: the shell runs it as a task."""
        if inspect.iscoroutine(result):
            result.close()

    def _want_tick(self, deadline: float) -> None:
        """Call tick() at `deadline` (the shell arms one loop timer; tests read next_deadline)."""

    def _callback(self, fn: Callback | None, *args: Any) -> None:
        """Run an app callback (plain or coroutine) without letting it break the UA."""
        if fn is None:
            return
        try:
            result = fn(*args)
        except Exception:
            self.counters.callback_errors += 1
            log.exception("application callback failed", extra={"event": "sip.callback_error"})
            return
        if inspect.isawaitable(result):
            self._run_awaitable(result)

    # -- inbound -------------------------------------------------------------------------------
    def handle_datagram(self, data: bytes, source: TransportAddr) -> None:
        """Transport callback: one framed SIP message from `source`."""
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self._on_parse_error(exc, source)
            return
        if isinstance(msg, Response):
            self._on_response(msg)
            return
        self._on_request(msg, source)

    def _on_request(self, req: Request, source: TransportAddr) -> None:
        if self._is_scanner(req):
            # Dropped silently before any state: an answer confirms a SIP stack to the scanner.
            self.counters.scanner_dropped += 1
            return
        self._stamp_via(req, source)
        dest = self._response_dest(req, source)
        method = req.method
        now = self.clock()
        machine = self._layer.match_request(req)
        if machine is not None:
            # A retransmission (the machine re-sends the last response) or an ACK.
            if method != "ACK":
                self.counters.retransmissions_absorbed += 1
            self._execute(self._txns.get(id(machine)), machine.receive_request(req, now))
            return
        if method == "ACK":
            return  # an ACK matching nothing (late, or for a transaction long gone): ignore
        if (
            method == "INVITE"
            and not req.to_tag
            and not self.admission.take_invite_token(source.host, now)
        ):
            # Over this source's INVITE rate: no answer and no transaction (a flood must not
            # buy state or responses; the caller's retransmission tries again later).
            return
        if method == "OPTIONS" and not req.to_tag:
            self._answer_options_statelessly(req, dest)
            return
        if (
            method == "INVITE"
            and not req.to_tag
            and self.admission.decide(source.host, self.digest_server is not None)[0] == REFUSE
        ):
            self._refuse_source(req, source, dest)
            return
        if not self._layer.server_room(source.host) and not self._make_room(source.host):
            self._drop_over_transaction_cap(req, source)
            return
        reliable = dest.reliable
        if method == "INVITE":
            machine = InviteServerTransaction(req, dest, reliable=reliable, timers=self.timers)
        else:
            machine = NonInviteServerTransaction(req, dest, reliable=reliable, timers=self.timers)
        txn = ServerTxn(machine)
        self._txns[id(machine)] = txn
        self._layer.add_server(machine, source.host)
        if method == "CANCEL":
            self._on_cancel(req, txn)
            return
        # Max-Forwards 0 is no reason to refuse here: 483 is a proxy's answer (16.3), and a
        # request that reached its UAS with 0 left is processed (8.2; RFC 3261 20.22).
        if not self._scheme_ok(req):
            self._reply(txn, 416)
            return
        unsupported = self._unsupported_requires(req)
        if unsupported:
            self._reply(txn, 420, extra=[("Unsupported", ", ".join(unsupported))])
            return
        if method not in KNOWN_METHODS:
            self._reply(txn, 501)
            return
        refusal = content_refusal(req) or accept_refusal(req)  # 8.2.3 content processing
        if refusal is not None:
            self._reply(txn, refusal.status, refusal.reason, extra=refusal.headers)
            return
        to_tag = req.to_tag
        if method == "INVITE" and not to_tag:
            self._on_new_invite(req, source, txn)
            return
        if not to_tag:
            # Known method outside any dialog: INFO/BYE/UPDATE need one (481 per 12.2.2);
            # the rest we simply do not do.
            if method in ("BYE", "INFO", "UPDATE", "PRACK"):
                self._reply(txn, 481)
            else:
                self._reply(txn, 405, extra=[("Allow", ", ".join(self.allow))])
            return
        call = self._find_dialog(req)
        if call is None:
            self._reply(txn, 481)
            return
        txn.call = call
        if call.dialog is not None and call.dialog.receive_request(req) is not None:
            # 12.2.2: lower CSeq than the last one (target refresh is applied otherwise).
            self._reply(txn, 500, "Server Internal Error - CSeq out of order")
            return
        handler = {
            "BYE": self._on_bye,
            "INVITE": self._on_reinvite,
            "UPDATE": self._on_update,
            "INFO": self._on_info,
            "OPTIONS": self._on_dialog_options,
            "NOTIFY": self._on_notify,
        }.get(method)
        if handler is None:
            self._reply(txn, 405, extra=[("Allow", ", ".join(self.allow))])
            return
        handler(call, req, txn)

    def _find_dialog(self, req: Request) -> Call | None:
        call = self.calls.get(req.call_id)
        if call is None or (call.state == CallState.TERMINATED and req.method != "ACK"):
            return None
        if req.to_tag != call.local_tag or req.from_tag != call.remote_tag:
            return None
        return call

    # -- responses -----------------------------------------------------------------------------
    def _common_response_headers(self, status: int) -> list[tuple[str, str]]:
        headers = [("Server", self.user_agent)]
        if status in (405, 501) or 200 <= status < 300:
            headers.append(("Allow", ", ".join(self.allow)))
        return headers

    def _merge_headers(
        self, status: int, extra: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Our standard response headers, overridden by same-named `extra` ones."""
        headers = self._common_response_headers(status)
        names = {n.lower() for n, _ in headers}
        for name, value in extra:
            if name.lower() in names:
                headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
            headers.append((name, value))
        return headers

    def _send_response(
        self,
        req: Request,
        dest: TransportAddr,
        status: int,
        reason: str | None = None,
        to_tag: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bytes:
        headers = self._merge_headers(status, extra)
        if to_tag is None and req.to_tag is None and status > 100:
            # 8.2.6.2: a response that could create or end a dialog needs a To tag.
            to_tag = generate_tag()
        resp = req.make_response(status, reason, to_tag=to_tag, headers=headers, body=body)
        data = resp.to_bytes()
        self.transport.send(data, dest)
        return data

    def _reply(
        self,
        txn: ServerTxn,
        status: int,
        reason: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> None:
        req = txn.request
        if to_tag is None and txn.call is not None and req.method != "CANCEL":
            to_tag = txn.call.local_tag
        if to_tag is None and req.to_tag:
            to_tag = req.to_tag
        if to_tag is None and status > 100:
            # 8.2.6.2: a response that could create or end a dialog needs a To tag.
            to_tag = generate_tag()
        resp = req.make_response(
            status, reason, to_tag=to_tag, headers=self._merge_headers(status, extra), body=body
        )
        self._send_on(txn, resp)

    def _send_on(self, txn: ServerTxn, resp: Response) -> bool:
        """Hand a response to its server transaction (which retransmits it as 17.2 says)."""
        try:
            outputs = txn.machine.send_response(resp, self.clock())
        except TransactionError:
            return False  # a final response was already sent (e.g. CANCEL raced accept)
        if resp.status >= 200:
            txn.final_status = resp.status
        self._execute(txn, outputs)
        return True

    # -- the end of a call ---------------------------------------------------------------------
    def _terminate(self, call: Call, reason: str, notify: bool = True) -> None:
        if call.state == CallState.TERMINATED:
            return
        call.state = CallState.TERMINATED
        call.end_reason = reason
        if isinstance(call, IncomingCall) and call.source.conn is not None:
            call.source.conn.users -= 1
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        if call.refer_progress is not None:
            self._refer_finished(call, call.refer_progress.call_ended())
        log.info(
            "call ended: %s",
            reason,
            extra={"event": "sip.call.ended", "call_id": call.call_id, "reason": reason},
        )
        if notify and not call._ended_notified:
            call._ended_notified = True
            self._callback(self.on_call_ended, call, reason)

    # -- call timers: the answer deadline and session timers (RFC 4028) ------------------------
    def _schedule_session_timer(self, call: Call) -> None:
        """A session was granted or refreshed: its clock restarts now (sip/session_timer.py)."""
        deadline = call.session_clock.restart(call.session, self.clock())
        if deadline is not None:
            self._call_wakeup(call, deadline)

    def _call_wakeup(self, call: Call, deadline: float) -> None:
        """Tick `call` at `deadline` (the same loop timer as the transactions)."""
        self._call_seq += 1
        heapq.heappush(self._call_deadlines, (deadline, self._call_seq, call))
        if len(self._call_deadlines) > 2 * len(self.calls) + 64:
            # Ended calls' deadlines (an answer deadline a minute out, a session clock half an
            # hour out) would keep those calls in memory until then: drop them now.
            self._call_deadlines = [
                entry for entry in self._call_deadlines if entry[2].state != CallState.TERMINATED
            ]
            heapq.heapify(self._call_deadlines)
        self._want_tick(deadline)

    def _call_tick(self, call: Call, now: float) -> None:
        """A call deadline passed: the answer deadline, or its session clock."""
        if call.state == CallState.TERMINATED or self._answer_deadline_passed(call, now):
            return
        if call.state == CallState.EARLY:
            self._ring_deadline_passed(call, now)
            return
        if call.state != CallState.CONFIRMED:
            return
        due = call.session_clock.tick(now)
        if due == REFRESH:
            self._start_refresh(call)
        elif due == EXPIRED:
            log.info(
                "session timer expired",
                extra={"event": "sip.call.session_expired", "call_id": call.call_id},
            )
            self._start_bye(call, "session expired")

    # -- client transactions ---------------------------------------------------------------------
    def _start_client(
        self,
        req: Request,
        dest: TransportAddr,
        on_provisional: Callable[[Response], None] | None = None,
        on_final: Callable[[Response | None], None] | None = None,
    ) -> ClientTxn:
        reliable = dest.reliable
        machine: InviteClientTransaction | NonInviteClientTransaction
        if req.method == "INVITE":
            machine = InviteClientTransaction(req, dest, reliable=reliable, timers=self.timers)
        else:
            machine = NonInviteClientTransaction(req, dest, reliable=reliable, timers=self.timers)
        txn = ClientTxn(machine, on_final, on_provisional)
        self._txns[id(machine)] = txn
        self._layer.add_client(machine)
        self._execute(txn, machine.start(self.clock()))
        return txn

    def _ack_2xx(self, call: Call, invite: Request, resp: Response, dest: TransportAddr) -> None:
        """13.2.2.4: the ACK for a 2xx is a new in-dialog request with the INVITE's CSeq."""
        assert call.dialog is not None
        ack = call.dialog.create_ack(
            invite.cseq[0],
            self.advertised_host,
            self.port_for(dest.proto),
            dest.proto,
            extra_headers=[("User-Agent", self.user_agent)],
        )
        data = ack.to_bytes()
        now = self.clock()
        # Insertion order is expiry order (one lifetime for all): drop the expired from the front.
        while self._acks_sent:
            oldest = next(iter(self._acks_sent))
            if self._acks_sent[oldest][2] > now:
                break
            del self._acks_sent[oldest]
        key = (call.call_id, invite.cseq[0])
        self._acks_sent.pop(key, None)  # re-inserted at the back with its new expiry
        self._acks_sent[key] = (data, dest, now + self.timers.timeout)
        self.transport.send(data, dest)

    def _repeat_ack(self, resp: Response) -> bool:
        """A 2xx to an INVITE we ACKed came again: send the same ACK (13.2.2.4)."""
        sent = self._acks_sent.get((resp.call_id, resp.cseq[0]))
        if sent is None or sent[2] <= self.clock():
            return False
        self.transport.send(sent[0], sent[1])
        return True

    def _on_response(self, resp: Response) -> None:
        machine = self._layer.match_response(resp)
        txn = self._txns.get(id(machine)) if machine is not None else None
        if machine is None or txn is None:
            if resp.cseq[1] == "INVITE" and 200 <= resp.status < 300:
                # A retransmitted 2xx of a re-INVITE we sent: repeat our ACK (13.2.2.4).
                if self._repeat_ack(resp):
                    return
            self.counters.stray_responses += 1
            return
        self._execute(txn, machine.receive_response(resp, self.clock()))

    def _on_send_error(self, dest: TransportAddr, exc: Exception) -> None:
        """17.1.4: a TCP connect failure fails the client transactions bound for it at once."""
        now = self.clock()
        for txn in list(self._txns.values()):
            machine = txn.machine
            target = machine.dest
            if (
                isinstance(txn, ClientTxn)
                and isinstance(target, TransportAddr)
                and (target.proto, target.host, target.port) == (dest.proto, dest.host, dest.port)
            ):
                self._execute(txn, machine.transport_error(now))

    # -- running transaction outputs ---------------------------------------------------------------
    def _execute(self, txn: ServerTxn | ClientTxn | None, outputs: list[Any]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                self.transport.send(out.message.to_bytes(), out.dest)
            elif isinstance(out, TimerAt):
                self._want_tick(out.deadline)
            elif txn is None:
                continue
            elif isinstance(out, ResponseReceived):
                if isinstance(txn, ClientTxn):
                    self._client_response(txn, out.response)
            elif isinstance(out, AckReceived):
                if isinstance(txn, ServerTxn):
                    self._on_ack_received(txn, out.ack)
            elif isinstance(out, AckTimeout):
                if isinstance(txn, ServerTxn):
                    self._on_ack_timeout(txn)
            elif isinstance(out, Timeout | TransportFailed):
                if isinstance(txn, ClientTxn):
                    txn.finish(None)
            elif isinstance(out, Terminated):
                self._forget(txn)

    def _client_response(self, txn: ClientTxn, resp: Response) -> None:
        if resp.status < 200:
            if txn.on_provisional is not None:
                txn.on_provisional(resp)
            return
        if not txn.finished:
            txn.finish(resp)
        elif txn.machine.request.method == "INVITE" and resp.status < 300:
            self._repeat_ack(resp)  # 2xx retransmission (RFC 6026 Accepted): ACK again

    def _forget(self, txn: ServerTxn | ClientTxn) -> None:
        self._txns.pop(id(txn.machine), None)
        self._layer.remove(txn.machine)
        # A call keeps its INVITE transaction, which refers back to it (the server side's
        # `call`, the client side's provisional callback): without this the pair is a cycle
        # that outlives the call until a full collection. `on_final` goes when it has run.
        if isinstance(txn, ServerTxn):
            txn.call = None
        else:
            txn.on_provisional = None

    @property
    def next_deadline(self) -> float | None:
        """The earliest transaction or call deadline (when tick() has something to do)."""
        deadlines = [self._layer.next_deadline]
        if self._call_deadlines:
            deadlines.append(self._call_deadlines[0][0])
        due = [d for d in deadlines if d is not None]
        return min(due) if due else None

    def tick(self) -> None:
        """Run every transaction and call timer due at clock()."""
        self._on_tick()

    def _on_tick(self) -> None:
        for machine, outputs in self._layer.tick(self.clock()):
            txn = self._txns.get(id(machine))
            self._execute(txn, outputs)
            if machine.terminated and txn is not None:
                self._forget(txn)
        now = self.clock()
        while self._call_deadlines and self._call_deadlines[0][0] <= now:
            _, _, call = heapq.heappop(self._call_deadlines)
            self._call_tick(call, now)
        deadline = self.next_deadline
        if deadline is not None:
            self._want_tick(deadline)


__all__ = [
    "DEFAULT_ACCEPT",
    "DEFAULT_ALLOW",
    "DEFAULT_SUPPORTED",
    "KNOWN_METHODS",
    "Callback",
    "UaCore",
    "UaCounters",
]
