"""SIP user agent: binds transport, transactions and dialogs into calls the application drives.

sip.transaction's sans-I/O machines own every retransmission timer (A, B, E, F, G, H, the 2xx
retransmission until the ACK, RFC 6026 Accepted); this module feeds them messages and
`clock()` readings, runs their outputs (send, arm one loop timer for the earliest deadline) and
reacts to their events. sip.dialog keeps tags, CSeqs, route set and remote target.

Public API (stable; gateway/app.py codes against it)
----------------------------------------------------
    transport = Transport(host, port, transports=("udp", "tcp"))
    ua = UserAgent(
        transport,
        advertised_host="203.0.113.5", advertised_port=5060,   # default: bind address / port
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
- Inbound INVITE admission (sip/admission.py has the rule): closed by default, only loopback
  and the host's own addresses are trusted. Order: per-source rate (dropped silently, before a
  transaction exists) -> 403 for a source not admitted -> 400/482 -> 503 (max_calls, then
  max_calls_per_source) -> 401 digest. Every answer goes through the INVITE server transaction,
  so a retransmitted INVITE gets the same cached response and is not counted or logged again.
- Scanner floods (User-Agent friendly-scanner, sipvicious, sipcli, VaxSIPUserAgent...) are dropped
  silently, before any state is allocated: answering tells the scanner a SIP stack is listening.
- INFO with a body we don't understand gets 200 (RFC 6086 would allow 415/469, but peers such as
  Asterisk send INFO for things like media control; refusing them has no benefit).
- Out-of-dialog NOTIFY/SUBSCRIBE/MESSAGE/PUBLISH/REFER/REGISTER get 405 with Allow; unknown
  methods 501; BYE/INFO/UPDATE without a dialog 481.
- Request checks in RFC 3261 8.2 order: 416 (Request-URI scheme other than sip/sips), 420, 501,
  then for INVITE/UPDATE 415 (body not application/sdp) and 406 (Accept without SDP), see
  sip/uas_rules.py. Max-Forwards 0 is processed, not refused (483 is a proxy's answer).
- Session timers: when the INVITE has Session-Expires we honour it (422 below min_se), answer
  with Session-Expires (refresher as asked, else the UAC if it supports timer) and Require: timer
  when the UAC supports it. As refresher we send UPDATE at SE/2 (re-INVITE with our last SDP if
  the peer's Allow lacks UPDATE); if the peer refreshes and misses SE - min(32, SE/3), we BYE.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import inspect
import ipaddress
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sip.admission import (
    ADMITTING_KEYS,
    REFUSE,
    REGISTRAR,
    Admission,
    AdmissionPolicy,
    parse_address,
)
from sip.auth import REPLAYED, DigestCredentials, DigestServer
from sip.dialog import Dialog, DialogError
from sip.message import (
    Headers,
    Request,
    Response,
    SipParseError,
    apply_received_rport,
    generate_branch,
    generate_call_id,
    generate_tag,
    parse_message,
    response_destination,
)
from sip.sdp import (
    NoCommonCodec,
    SessionDescription,
    mirror_offer_direction,
    parse_sdp_or_none,
    sdp_body,
    versioned_sdp,
)
from sip.session_timer import (
    EXPIRED,
    REFRESH,
    SessionClock,
    SessionRefusal,
    SessionTimer,
    negotiate,
    refresh_method,
)
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
    make_cancel,
)
from sip.transport import Transport, TransportAddr
from sip.uac_auth import Credentials, DigestRetry
from sip.uas_rules import accept_refusal, content_refusal
from sip.uri import SipUri, UriError, parse_name_addr, parse_uri

log = logging.getLogger("sip")
# Refused INVITE transactions remembered so their retransmissions are counted once.
REFUSED_REMEMBERED = 1024

# Methods we accept (Allow). REFER is only sent by us (blind transfer), so it is not listed.
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
# Known methods we refuse with 405 (+Allow) when they arrive outside their context; anything else
# gets 501 (RFC 3261 8.2.1).
KNOWN_METHODS = frozenset(
    {*DEFAULT_ALLOW, "REFER", "REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "PRACK"}
)
DEFAULT_ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
# RFC 4028 session timers are the only extension we implement (no 100rel, no replaces).
DEFAULT_SUPPORTED: tuple[str, ...] = ("timer",)
# Scanner User-Agent fragments (lower case). Floods from these tools are dropped silently.
DEFAULT_SCANNERS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "sip-scan",
    "sundayddr",
    "iwar",
    "smap",
)
_DTMF_SIGNALS = {str(d): str(d) for d in range(10)} | {
    "*": "*",
    "#": "#",
    "10": "*",
    "11": "#",
    "A": "A",
    "B": "B",
    "C": "C",
    "D": "D",
    "12": "A",
    "13": "B",
    "14": "C",
    "15": "D",
}


@dataclass(frozen=True)
class InboundAuth:
    """Digest challenge for inbound INVITEs ([sip] inbound_auth)."""

    realm: str
    username: str
    password: str
    algorithm: str = "MD5"
    nonce_ttl: float = 300.0  # a nonce older than this gets 401 stale=true


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


# -- callbacks ---------------------------------------------------------------------------------
Callback = Callable[..., Any]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(eq=False)
class _ServerTxn:
    """A sip.transaction server machine plus what the UA core attaches to it (the call)."""

    machine: InviteServerTransaction | NonInviteServerTransaction
    call: Call | None = None
    final_status: int = 0

    @property
    def request(self) -> Request:
        return self.machine.request

    @property
    def dest(self) -> TransportAddr:
        return self.machine.dest  # type: ignore[no-any-return]

    @property
    def acked(self) -> bool:
        return bool(getattr(self.machine, "acked", False))


@dataclass(eq=False)
class _ClientTxn:
    """A sip.transaction client machine and the future its final response resolves."""

    machine: InviteClientTransaction | NonInviteClientTransaction
    future: asyncio.Future[Response | None]
    on_provisional: Callable[[Response], None] | None = None


class CallState:
    EARLY = "early"  # INVITE received, no final response yet
    CONFIRMED = "confirmed"  # 2xx sent (ACK may still be pending)
    TERMINATED = "terminated"


class Call:
    """What inbound and outbound calls share: the dialog and the in-dialog operations."""

    def __init__(self, ua: UserAgent, call_id: str, source: TransportAddr) -> None:
        self._ua = ua
        self.call_id = call_id
        self.source = source  # where the INVITE came from / went to
        self.local_tag: str = generate_tag()
        self.remote_tag: str | None = None
        self.from_header = ""
        self.to_header = ""
        self.remote_uri = ""
        self.remote_sdp: bytes | None = None
        self.local_sdp: bytes | None = None
        self.peer_allow: list[str] = []  # the peer's Allow (UPDATE for session refreshes)
        self.state: str = CallState.EARLY
        self.dialog: Dialog | None = None
        self.end_reason: str | None = None
        self.started_at = ua.clock()
        self.session_clock = SessionClock()  # RFC 4028 (sip/session_timer.py)
        self.answer_deadline: float | None = None  # inbound: 480 when nobody decides
        self._ack_waiter: asyncio.Event = asyncio.Event()
        self._reinvite_pending_out = False
        self._reinvite_in: _ServerTxn | None = None
        self._refer_queue: asyncio.Queue[tuple[int | None, bool]] | None = None
        self._ended_notified = False
        # What in-dialog requests answer challenges with (bound: sip.uac_auth); None = the UA's.
        self.credentials: Credentials | DigestCredentials | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id} {self.state}>"

    @property
    def session(self) -> SessionTimer | None:
        """The RFC 4028 session timer negotiated for this call (None: none)."""
        return self.session_clock.session

    @session.setter
    def session(self, session: SessionTimer | None) -> None:
        self.session_clock.session = session

    async def hangup(self, reason_header: str | None = None, timeout: float = 5.0) -> int | None:  # noqa: ASYNC109 - a SIP-level deadline, not a cancel scope
        """BYE; before the answer 480 (inbound) or CANCEL (outbound). Returns the BYE's final
        status, None on timeout or when no BYE was needed."""
        return await self._ua._hangup(self, reason_header, timeout)

    async def refer(self, target_uri: str, timeout: float = 30.0) -> int:  # noqa: ASYNC109 - a SIP-level deadline, not a cancel scope
        """Blind transfer (RFC 3515): the final status from the NOTIFY sipfrags, or the REFER's
        own failure status, or 408 when nothing final arrives in time."""
        return await self._ua._refer(self, target_uri, timeout)

    async def send_request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Response | None:
        """Any in-dialog request (INFO, UPDATE, OPTIONS, re-INVITE...); digest retry on 401/407."""
        return await self._ua._in_dialog_request(
            self, method, body, content_type, list(headers or ()), timeout
        )

    @property
    def duration(self) -> float:
        return self._ua.clock() - self.started_at


class IncomingCall(Call):
    """One inbound INVITE and, once accepted, its dialog. Created by the UA, driven by the app."""

    def __init__(
        self, ua: UserAgent, invite: Request, source: TransportAddr, txn: _ServerTxn
    ) -> None:
        super().__init__(ua, invite.call_id, source)
        self.invite = invite
        self._txn = txn
        self.remote_tag = invite.from_tag
        self.from_header = invite.headers.get("From") or ""
        self.to_header = invite.headers.get("To") or ""
        try:
            self.remote_uri = str(parse_name_addr(self.from_header).uri)
        except (UriError, ValueError):
            self.remote_uri = self.from_header
        self.request_uri: str = str(invite.uri)
        self.offer_sdp: bytes | None = sdp_body(invite)
        self.offer: SessionDescription | None = parse_sdp_or_none(self.offer_sdp)
        self.late_offer: bool = self.offer_sdp is None
        self.remote_sdp = self.offer_sdp
        self.peer_allow = [m.strip().upper() for m in invite.headers.get_all("Allow")]

    # -- application decisions ------------------------------------------------------------
    def accept(
        self, answer_sdp: bytes | None, headers: Sequence[tuple[str, str]] | None = None
    ) -> None:
        """Answer with 200 OK. With a late offer (INVITE without SDP) `answer_sdp` is our offer
        and the peer's answer comes in the ACK (`on_ack_sdp`)."""
        self._ua._accept(self, answer_sdp, list(headers or ()))

    def reject(
        self,
        status: int,
        reason: str | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """Final non-2xx response (e.g. 486, 488, 503)."""
        if not 300 <= status <= 699:
            raise ValueError(f"reject status {status} is not a 3xx-6xx final response")
        self._ua._reject(self, status, reason, list(headers or ()))


class OutgoingCall(Call):
    """A call we place with `await ua.invite(...)`; `status` is the INVITE's final status."""

    def __init__(self, ua: UserAgent, invite: Request, dest: TransportAddr) -> None:
        super().__init__(ua, invite.call_id, dest)
        self.invite = invite  # the latest INVITE sent (after a digest retry, the retried one)
        self.local_tag = invite.from_tag or self.local_tag
        self.from_header = invite.headers.get("From") or ""
        self.to_header = invite.headers.get("To") or ""
        self.remote_uri = str(invite.uri)
        self.local_sdp = sdp_body(invite)
        self.status: int | None = None  # final status of the INVITE (None: no answer)
        self.reason: str = ""
        self.challenge_refused: str = ""  # "host:port" whose 401/407 we did not answer
        self._cancel_requested = False
        self._provisional_seen = False
        self._settled = asyncio.Event()  # set once the INVITE has its final outcome


def _build_request(
    method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b""
) -> Request:
    hdrs = Headers()
    for name, value in headers:
        hdrs.add(name, value)
    return Request(method, uri, hdrs, body)


class UserAgent:
    """The gateway's SIP user agent (UAS for inbound calls, UAC for in-dialog and REGISTER)."""

    def __init__(
        self,
        transport: Transport,
        *,
        advertised_host: str | None = None,
        advertised_port: int | None = None,
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
        self._txns: dict[int, _ServerTxn | _ClientTxn] = {}  # id(machine) -> wrapper
        self._tick_handle: asyncio.TimerHandle | None = None
        # Call deadlines (answer deadline, session clocks), earliest first; stale entries are
        # harmless: _call_tick asks the call what is really due.
        self._call_deadlines: list[tuple[float, int, Call]] = []
        self._call_seq = 0
        self._tick_at: float | None = None
        self._acks_sent: dict[tuple[str, int], tuple[bytes, TransportAddr]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
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

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.transport.on_message = self.handle_datagram
        self.transport.on_send_error = self._on_send_error
        await self.transport.start()
        if not self._advertised_host:
            self._advertised_host = _default_advertised_host(self.transport.host)
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
        for txn in list(self._txns.values()):
            if isinstance(txn, _ClientTxn) and not txn.future.done():
                txn.future.cancel()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self.transport.close()
        await self.transport.wait_closed()

    @property
    def advertised_host(self) -> str:
        return self._advertised_host

    @property
    def advertised_port(self) -> int:
        return int(self._advertised_port or self.transport.port)

    @property
    def active_calls(self) -> int:
        return sum(1 for c in self.calls.values() if c.state != CallState.TERMINATED)

    def _hostport(self) -> str:
        host = self.advertised_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.advertised_port}"

    def via(self, proto: str, branch: str | None = None) -> str:
        return (
            f"SIP/2.0/{proto.upper()} {self._hostport()};branch={branch or generate_branch()};rport"
        )

    def contact(self, proto: str = "udp") -> str:
        suffix = ";transport=tcp" if proto == "tcp" else ""
        return f"<sip:{self.contact_user}@{self._hostport()}{suffix}>"

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
            self._spawn(self._await_callback(result))

    async def _await_callback(self, result: Awaitable[Any]) -> None:
        try:
            await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters.callback_errors += 1
            log.exception("application callback failed", extra={"event": "sip.callback_error"})

    # -- inbound -----------------------------------------------------------------------------
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

    def _on_parse_error(self, exc: SipParseError, source: TransportAddr) -> None:
        self.counters.parse_errors += 1
        now = self.clock()
        if now - self._last_parse_log >= 1.0:  # at most one line per second under a flood
            self._last_parse_log = now
            log.warning(
                "unparsable SIP message from %s:%s: %s",
                source.host,
                source.port,
                exc.reason,
                extra={"event": "sip.parse_error", "reason": exc.reason, "source": source.host},
            )
        req = exc.request
        if req is None or req.method == "ACK":
            self.counters.parse_dropped += 1
            return
        try:
            self._stamp_via(req, source)
            status = exc.status if 400 <= exc.status < 600 else 400
            phrase = {
                400: "Bad Request",
                416: "Unsupported URI Scheme",
                505: "Version Not Supported",
            }.get(status, "Error")
            reason = exc.reason if exc.reason.startswith(phrase) else f"{phrase} - {exc.reason}"
            reason = reason[:120].replace("\r", " ").replace("\n", " ")
            self._send_response(req, self._response_dest(req, source), status, reason)
        except Exception:  # the request was only half parsed: dropping is the safe fallback
            self.counters.parse_dropped += 1

    def _is_scanner(self, req: Request) -> bool:
        agent = (req.headers.get("User-Agent") or "").lower()
        return bool(agent) and any(s in agent for s in self.scanner_user_agents)

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
        reliable = dest.proto == "tcp"
        if method == "INVITE":
            machine = InviteServerTransaction(req, dest, reliable=reliable, timers=self.timers)
        else:
            machine = NonInviteServerTransaction(req, dest, reliable=reliable, timers=self.timers)
        txn = _ServerTxn(machine)
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

    def _scheme_ok(self, req: Request) -> bool:
        uri = str(req.uri)
        scheme = uri.split(":", 1)[0].lower()
        return scheme in ("sip", "sips")

    def _unsupported_requires(self, req: Request) -> list[str]:
        if req.method in ("ACK", "CANCEL"):
            return []
        wanted = [o.strip() for o in req.headers.get_all("Require") if o.strip()]
        supported = {s.lower() for s in self.supported}
        return [o for o in wanted if o.lower() not in supported]

    def _find_dialog(self, req: Request) -> Call | None:
        call = self.calls.get(req.call_id)
        if call is None or (call.state == CallState.TERMINATED and req.method != "ACK"):
            return None
        if req.to_tag != call.local_tag or req.from_tag != call.remote_tag:
            return None
        return call

    # -- responses ---------------------------------------------------------------------------
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
        txn: _ServerTxn,
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

    def _send_on(self, txn: _ServerTxn, resp: Response) -> bool:
        """Hand a response to its server transaction (which retransmits it as 17.2 says)."""
        try:
            outputs = txn.machine.send_response(resp, self.clock())
        except TransactionError:
            return False  # a final response was already sent (e.g. CANCEL raced accept)
        if resp.status >= 200:
            txn.final_status = resp.status
        self._execute(txn, outputs)
        return True

    def _options_answer(
        self, proto: str, in_dialog: bool
    ) -> tuple[int, str | None, list[tuple[str, str]]]:
        if not self.accepting and not in_dialog:
            # Draining: a load balancer's OPTIONS probe (Kamailio dispatcher) must see that new
            # calls belong elsewhere, while the calls we still carry keep their dialogs.
            return 503, "Service Unavailable - draining", [("Retry-After", str(self.retry_after))]
        return (
            200,
            None,
            [
                ("Accept", self.accept_types),
                ("Supported", ", ".join(self.supported)),
                ("Contact", self.contact(proto)),
            ],
        )

    def _reply_options(self, txn: _ServerTxn, in_dialog: bool = False) -> None:
        status, reason, extra = self._options_answer(txn.dest.proto, in_dialog)
        self._reply(txn, status, reason, extra=extra)

    def _stateless_tag(self, req: Request) -> str:
        """A To tag that is the same for every retransmission of `req` (8.2.7), unguessable
        from outside (keyed by this UA's secret)."""
        key = f"{req.call_id}|{req.from_tag}|{req.branch}".encode()
        return hmac.new(self._tag_secret, key, hashlib.sha256).hexdigest()[:16]

    def _answer_options_statelessly(self, req: Request, dest: TransportAddr) -> None:
        """Out-of-dialog OPTIONS (qualify, SBC and dispatcher pings, scanners) answered without
        a server transaction (RFC 3261 8.2.7 stateless UAS): a retransmission is simply answered
        again, and a flood of them leaves no state behind for 64*T1."""
        self.counters.options_stateless += 1
        if not self._scheme_ok(req):
            self._send_response(req, dest, 416)
            return
        unsupported = self._unsupported_requires(req)
        if unsupported:
            self._send_response(req, dest, 420, extra=[("Unsupported", ", ".join(unsupported))])
            return
        status, reason, extra = self._options_answer(dest.proto, in_dialog=False)
        self._send_response(req, dest, status, reason, extra=extra)

    def _make_room(self, source_host: str) -> bool:
        """Total cap reached (not this source's share): evict one finished transaction."""
        if not self._layer.source_room(source_host):
            return False
        evicted = self._layer.evict_completed()
        if evicted is None:
            return False
        self._txns.pop(id(evicted), None)
        self.counters.transactions_evicted += 1
        return True

    def _drop_over_transaction_cap(self, req: Request, source: TransportAddr) -> None:
        # Silent: a 503 per dropped request would answer a flood with a flood of our own.
        self.counters.transactions_dropped += 1
        now = self.clock()
        if self._last_cap_log is None or now - self._last_cap_log >= 5.0:
            self._last_cap_log = now
            log.warning(
                "dropping SIP %s from %s:%s: %d server transactions open (%d from this source)",
                req.method,
                source.host,
                source.port,
                self.server_transactions,
                self._layer.servers_from(source.host),
                extra={
                    "event": "sip.transaction_cap",
                    "method": req.method,
                    "source": source.host,
                    "dropped": self.counters.transactions_dropped,
                },
            )

    @property
    def server_transactions(self) -> int:
        """Server transactions held now (bounded by max_server_transactions)."""
        return len(self._layer.servers)

    def _stamp_via(self, req: Request, source: TransportAddr) -> None:
        """RFC 3581 + 18.2.1: record where the request really came from in the top Via."""
        apply_received_rport(req, source.host, source.port)

    def _response_dest(self, req: Request, source: TransportAddr) -> TransportAddr:
        """RFC 3261 18.2.2 + RFC 3581: TCP replies reuse the connection; UDP goes to
        received:rport when the client asked for rport, else to received:sent-by-port."""
        via = req.top_via
        if via is None:
            return source
        if source.proto == "tcp":
            # 18.2.2: if the connection is gone, open a new one to received + sent-by port
            # (the rport of a stream is an ephemeral client port nobody listens on).
            host = via.received or via.host
            return TransportAddr("tcp", host.strip("[]"), via.port or 5060, source.conn)
        host, port = response_destination(via, source.proto)
        return TransportAddr("udp", host, port)

    # -- INVITE (UAS) -------------------------------------------------------------------------
    def _calls_from(self, host: str) -> int:
        addr = parse_address(host)
        return sum(
            1
            for c in self.calls.values()
            if isinstance(c, IncomingCall)
            and c.state != CallState.TERMINATED
            and parse_address(c.source.host) == addr
        )

    def _refuse_source(self, req: Request, source: TransportAddr, dest: TransportAddr) -> None:
        """403 to a source that is not admitted, statelessly (RFC 3261 8.2.7): no transaction
        and so no Timer G retransmissions. A transaction would send the 403 up to ~10 times
        over 64*T1 to whatever address the INVITE claimed to come from, a reflection a spoofed
        flood could aim at a victim; now each INVITE received gets exactly one answer, with
        the same To tag for its retransmissions (8.2.7: a stateless UAS's tag is a function of
        the request)."""
        self._send_response(
            req, dest, 403, "Forbidden - source not allowed", to_tag=self._stateless_tag(req)
        )
        # Counted and logged once per transaction: its retransmissions are remembered (a
        # bounded set, so a flood of distinct INVITEs cannot grow it).
        key = (req.call_id, req.branch)
        if key in self._refused_recently:
            return
        self._refused_recently[key] = None
        if len(self._refused_recently) > REFUSED_REMEMBERED:
            self._refused_recently.popitem(last=False)
        self.counters.rejected_allowlist += 1
        refused = self.admission.refusal_to_log(source.host, self.clock())
        if refused is None:
            return
        keys = ", ".join(ADMITTING_KEYS)
        log.warning(
            "INVITE from %s refused with 403 (%d since the last line): not admitted; "
            "to admit it set one of %s",
            source.host,
            refused,
            keys,
            extra={
                "event": "sip.invite_refused",
                "source": source.host,
                "refused": refused,
                "keys": list(ADMITTING_KEYS),
                "call_id": req.call_id,
            },
        )

    def _on_new_invite(self, req: Request, source: TransportAddr, txn: _ServerTxn) -> None:
        if not req.headers.get_all("Contact"):
            # 8.1.1.8: without a Contact we could never send the BYE.
            self._reply(txn, 400, "Bad Request - missing Contact")
            return
        existing = self.calls.get(req.call_id)
        if existing is not None and existing.state != CallState.TERMINATED:
            # 8.2.2.2: same Call-ID and From tag on a new transaction is a merged/looped request.
            self._reply(txn, 482, "Loop Detected")
            return
        if not self.accepting or self.active_calls >= self.max_calls:
            self.counters.rejected_max_calls += 1
            self._reply(
                txn, 503, "Service Unavailable", extra=[("Retry-After", str(self.retry_after))]
            )
            return
        per_source = min(self.admission.policy.max_calls_per_source, self.max_calls)
        if self.admission.trusted_as(source.host) == REGISTRAR:
            # The PBX we registered to carries every call to this extension from one address:
            # only max_calls limits it (a per-source cap would silently shrink the gateway).
            per_source = self.max_calls
        if self._calls_from(source.host) >= per_source:
            self.counters.rejected_max_calls_per_source += 1
            self._reply(
                txn,
                503,
                "Service Unavailable - too many calls from this source",
                extra=[("Retry-After", str(self.retry_after))],
            )
            return
        if self.digest_server is not None and not self._inbound_auth_ok(req, txn):
            return
        session = self._negotiate_session_timer(req, txn)
        if isinstance(session, SessionRefusal):
            return
        # 100 at once (17.2.1: stops the caller's INVITE retransmissions).
        self._execute(txn, txn.machine.start(self.clock()))  # 100 Trying
        call = IncomingCall(self, req, source, txn)
        if source.conn is not None:
            source.conn.users += 1  # keep the caller's stream open while the call lives
        call.session = session
        txn.call = call
        self.calls[call.call_id] = call
        # 180 while the app prepares media and the Realtime session.
        self._reply(txn, 180, "Ringing", extra=[("Contact", self.contact(source.proto))])
        if self.answer_timeout > 0:
            # An INVITE server transaction has no timer in Proceeding (17.2.1): if the
            # application never decides, the caller gets 480 instead of ringing forever.
            call.answer_deadline = self.clock() + self.answer_timeout
            self._call_wakeup(call, call.answer_deadline)
        self._callback(self.on_invite, call)

    def _inbound_auth_ok(self, req: Request, txn: _ServerTxn) -> bool:
        server = self.digest_server
        assert server is not None
        authorization = req.headers.get("Authorization")
        now = self.wall_clock()
        stale = False
        if authorization:
            result = server.verify(req.method, authorization, now=now, body=req.body)
            if result.ok:
                return True
            stale = result.stale
            if result.reason == REPLAYED:
                self.counters.auth_replays += 1
            if not stale:
                log.info(
                    "inbound INVITE digest rejected: %s",
                    result.reason,
                    extra={"event": "sip.auth_failed", "call_id": req.call_id},
                )
        self.counters.auth_challenges += 1
        self._reply(
            txn,
            401,
            "Unauthorized",
            extra=[("WWW-Authenticate", server.challenge(now=now, stale=stale))],
        )
        return False

    def _negotiate_session_timer(
        self, req: Request, txn: _ServerTxn
    ) -> SessionTimer | SessionRefusal | None:
        """RFC 4028 9 (sip/session_timer.py); a refusal (400, 422) is answered here."""
        session = negotiate(
            req.headers.get("Session-Expires"), req.headers.get_all("Supported"), self.min_se
        )
        if isinstance(session, SessionRefusal):
            self._reply(txn, session.status, session.reason, extra=session.headers)
        return session

    def _accept(
        self, call: IncomingCall, sdp: bytes | None, headers: list[tuple[str, str]]
    ) -> None:
        txn = call._txn
        if call.state != CallState.EARLY or txn.final_status:
            log.warning(
                "accept() on a call that is %s",
                call.state,
                extra={"event": "sip.accept_ignored", "call_id": call.call_id},
            )
            return
        extra: list[tuple[str, str]] = [
            ("Contact", self.contact(call.source.proto)),
            ("Supported", ", ".join(self.supported)),
        ]
        if call.session is not None:
            extra += call.session.answer_headers()
        body = b""
        if sdp:
            call.local_sdp = sdp
            body = sdp
            extra.append(("Content-Type", "application/sdp"))
        extra += headers
        response = call.invite.make_response(
            200, "OK", to_tag=call.local_tag, headers=self._merge_headers(200, extra), body=body
        )
        try:
            call.dialog = Dialog.uas(call.invite, response)
        except DialogError as exc:  # e.g. no usable Contact: we could never reach the caller
            log.warning(
                "cannot create dialog: %s",
                exc,
                extra={"event": "sip.dialog_error", "call_id": call.call_id},
            )
            self._reply(txn, 400, f"Bad Request - {exc}"[:120], to_tag=call.local_tag)
            self._terminate(call, "rejected")
            return
        call.state = CallState.CONFIRMED
        # The INVITE server transaction retransmits the 2xx until the ACK (13.3.1.4, RFC 6026)
        # and reports AckTimeout at Timer H, on which we send BYE.
        self._send_on(txn, response)
        log.info("call answered", extra={"event": "sip.call.answered", "call_id": call.call_id})
        self._schedule_session_timer(call)

    def _reject(
        self, call: IncomingCall, status: int, reason: str | None, headers: list[tuple[str, str]]
    ) -> None:
        txn = call._txn
        if call.state != CallState.EARLY or txn.final_status:
            return
        self._reply(txn, status, reason, extra=headers, to_tag=call.local_tag)
        self._terminate(call, "rejected", notify=False)

    def _on_ack_received(self, txn: _ServerTxn, ack: Request) -> None:
        """The ACK completed an INVITE transaction (for a non-2xx it only stopped Timer G)."""
        call = txn.call
        if call is None or txn.final_status >= 300:
            return
        if call._reinvite_in is txn:
            call._reinvite_in = None
        elif getattr(call, "_txn", None) is txn:
            call._ack_waiter.set()
            sdp = sdp_body(ack)
            if sdp is not None:  # late offer: the answer to the offer in our 200
                call.remote_sdp = sdp
                self._callback(self.on_ack_sdp, call, sdp)
            self._callback(self.on_ack, call)
            return
        else:
            return
        sdp = sdp_body(ack)
        if sdp is not None:
            call.remote_sdp = sdp
            self._callback(self.on_ack_sdp, call, sdp)

    def _on_ack_timeout(self, txn: _ServerTxn) -> None:
        call = txn.call
        if call is None or call.state != CallState.CONFIRMED:
            return
        if self.on_ack_timeout is not None:
            # The application decides (its call state machine) and hangs up with its own
            # Reason header: call.hangup(reason_header).
            log.warning(
                "no ACK for our 2xx",
                extra={"event": "sip.call.ack_timeout", "call_id": call.call_id},
            )
            self._callback(self.on_ack_timeout, call)
            return
        log.warning(
            "no ACK for our 2xx: ending the call",
            extra={"event": "sip.call.ack_timeout", "call_id": call.call_id},
        )
        self._spawn(self._bye(call, None, self.timers.timeout, reason="ack timeout"))

    def _on_cancel(self, req: Request, txn: _ServerTxn) -> None:
        machine = self._layer.match_cancel(req)
        invite_txn = self._txns.get(id(machine)) if machine is not None else None
        if not isinstance(invite_txn, _ServerTxn) or invite_txn.call is None:
            self._reply(txn, 481, to_tag=req.to_tag or None)
            return
        call = invite_txn.call
        # 9.2: the CANCEL's 200 carries the same To tag as the INVITE's responses.
        self._reply(txn, 200, to_tag=call.local_tag)
        if invite_txn.final_status == 0 and call.state == CallState.EARLY:
            self._reply(invite_txn, 487, "Request Terminated", to_tag=call.local_tag)
            self._terminate(call, "cancelled")

    def _terminate(self, call: Call, reason: str, notify: bool = True) -> None:
        if call.state == CallState.TERMINATED:
            return
        call.state = CallState.TERMINATED
        call.end_reason = reason
        if isinstance(call, IncomingCall) and call.source.conn is not None:
            call.source.conn.users -= 1
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        if call._refer_queue is not None:
            call._refer_queue.put_nowait((None, True))
        log.info(
            "call ended: %s",
            reason,
            extra={"event": "sip.call.ended", "call_id": call.call_id, "reason": reason},
        )
        if notify and not call._ended_notified:
            call._ended_notified = True
            self._callback(self.on_call_ended, call, reason)

    # -- in-dialog requests (UAS side) -----------------------------------------------------
    def _on_bye(self, call: Call, req: Request, txn: _ServerTxn) -> None:
        self._reply(txn, 200)
        if isinstance(call, IncomingCall) and call._txn.final_status == 0:
            invite_txn = call._txn
            # 15.1.2: BYE on an early dialog: 487 the INVITE too.
            self._reply(invite_txn, 487, "Request Terminated", to_tag=call.local_tag)
        self._terminate(call, "bye")

    def _on_dialog_options(self, call: Call, req: Request, txn: _ServerTxn) -> None:
        self._reply_options(txn, in_dialog=True)

    def _on_reinvite(self, call: Call, req: Request, txn: _ServerTxn) -> None:
        if call._reinvite_pending_out:
            self._reply(txn, 491, "Request Pending")  # 14.2 glare
            return
        pending = call._reinvite_in
        unanswered = isinstance(call, IncomingCall) and call._txn.final_status == 0
        if unanswered or (pending is not None and not pending.acked):
            # 14.2: an INVITE while another is in progress -> 500 with Retry-After 0-10 s.
            self._reply(
                txn,
                500,
                "Server Internal Error - overlapping INVITE",
                extra=[("Retry-After", str(secrets.randbelow(11)))],
            )
            return
        self._answer_refresh(call, req, txn, is_invite=True)

    def _on_update(self, call: Call, req: Request, txn: _ServerTxn) -> None:
        self._answer_refresh(call, req, txn, is_invite=False)

    def _answer_refresh(self, call: Call, req: Request, txn: _ServerTxn, is_invite: bool) -> None:
        """re-INVITE / UPDATE: target refresh, session refresh, and hold/resume offers."""
        offer = sdp_body(req)
        extra: list[tuple[str, str]] = [("Contact", self.contact(call.source.proto))]
        if call.session is not None or req.headers.get("Session-Expires"):
            session = self._negotiate_session_timer(req, txn)
            if isinstance(session, SessionRefusal):
                return
            if session is not None:
                call.session = session
                extra += session.answer_headers()
            self._schedule_session_timer(call)
        if offer is not None:
            self._spawn(self._answer_offer(call, req, txn, offer, extra, is_invite))
            return
        body = b""
        if is_invite and call.local_sdp:
            # 14.2: an INVITE without an offer gets ours (unchanged: same o= version).
            body = call.local_sdp
            extra.append(("Content-Type", "application/sdp"))
        self._final_2xx(call, txn, extra, body, is_invite)

    async def _answer_offer(
        self,
        call: Call,
        req: Request,
        txn: _ServerTxn,
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
                warning = [("Warning", exc.warning)] if exc.warning else []
                self._reply(txn, 488, "Not Acceptable Here", extra=warning)
                return
            except Exception:
                self.counters.callback_errors += 1
                log.exception(
                    "on_reoffer failed",
                    extra={"event": "sip.callback_error", "call_id": call.call_id},
                )
        if answer is None and call.local_sdp is not None:
            answer = mirror_offer_direction(call.local_sdp, offer)
        if answer is None:
            self._reply(txn, 488, "Not Acceptable Here")
            return
        answer = versioned_sdp(call.local_sdp, answer)
        call.local_sdp = answer
        call.remote_sdp = offer
        self._final_2xx(call, txn, [*extra, ("Content-Type", "application/sdp")], answer, is_invite)

    def _final_2xx(
        self,
        call: Call,
        txn: _ServerTxn,
        extra: list[tuple[str, str]],
        body: bytes,
        is_invite: bool,
    ) -> None:
        extra = [*extra, ("Supported", ", ".join(self.supported))]
        if is_invite:
            call._reinvite_in = txn  # until its ACK; the transaction retransmits the 2xx
        self._reply(txn, 200, extra=extra, body=body)

    def _on_info(self, call: Call, req: Request, txn: _ServerTxn) -> None:
        ctype = req.content_type or ""
        digit, duration = None, 0
        if ctype == "application/dtmf-relay":
            fields: dict[str, str] = {}
            for line in req.body.decode("utf-8", "replace").splitlines():
                name, _, value = line.partition("=")
                fields[name.strip().lower()] = value.strip()
            digit = _DTMF_SIGNALS.get(fields.get("signal", "").upper())
            duration = int(fields["duration"]) if fields.get("duration", "").isdigit() else 0
        elif ctype == "application/dtmf":
            digit = _DTMF_SIGNALS.get(req.body.decode("utf-8", "replace").strip().upper())
        if ctype in ("application/dtmf-relay", "application/dtmf") and digit is None:
            self._reply(txn, 400, "Bad Request - unknown DTMF signal")
            return
        # Other INFO bodies (or none: an INFO keepalive) get 200; see the module docstring.
        self._reply(txn, 200)
        if digit is not None:
            self._callback(self.on_dtmf, call, digit, duration)

    def _on_notify(self, call: Call, req: Request, txn: _ServerTxn) -> None:
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer" or call._refer_queue is None:
            self._reply(txn, 481, "Subscription Does Not Exist")
            return
        self._reply(txn, 200)
        status = _sipfrag_status(req.body)
        state = (req.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        call._refer_queue.put_nowait((status, state == "terminated"))

    # -- call timers: session timers (RFC 4028) and the answer deadline ---------------------
    def _schedule_session_timer(self, call: Call) -> None:
        """A session was granted or refreshed: its clock restarts now (sip/session_timer.py)."""
        deadline = call.session_clock.restart(call.session, self.clock())
        if deadline is not None:
            self._call_wakeup(call, deadline)

    def _call_wakeup(self, call: Call, deadline: float) -> None:
        """Tick `call` at `deadline` (the same loop timer as the transactions)."""
        self._call_seq += 1
        heapq.heappush(self._call_deadlines, (deadline, self._call_seq, call))
        self._want_tick(deadline)

    def _call_tick(self, call: Call, now: float) -> None:
        """A call deadline passed: the answer deadline, or its session clock."""
        if call.state == CallState.TERMINATED:
            return
        if (
            isinstance(call, IncomingCall)
            and call.answer_deadline is not None
            and now >= call.answer_deadline
        ):
            call.answer_deadline = None
            if call.state == CallState.EARLY and not call._txn.final_status:
                self._reply(call._txn, 480, "Temporarily Unavailable", to_tag=call.local_tag)
                self._terminate(call, "no answer")
                return
        if call.state != CallState.CONFIRMED:
            return
        due = call.session_clock.tick(now)
        if due == REFRESH:
            self._spawn(self._refresh_session(call))
        elif due == EXPIRED:
            log.info(
                "session timer expired",
                extra={"event": "sip.call.session_expired", "call_id": call.call_id},
            )
            self._spawn(self._bye(call, None, self.timers.timeout, reason="session expired"))

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
        if call.session_clock.refresh_answered(status, granted, self.clock()) == EXPIRED:
            self._spawn(self._bye(call, None, self.timers.timeout, reason="session expired"))
            return
        if call.session_clock.deadline is not None:
            self._call_wakeup(call, call.session_clock.deadline)

    # -- client transactions (UAC) ------------------------------------------------------------
    async def resolve(self, uri: SipUri, proto: str | None = None) -> TransportAddr:
        """Next-hop address for a URI: IP literal or A/AAAA lookup (no NAPTR/SRV: the configured
        registrar/proxy address is used as given)."""
        proto = (proto or uri.transport or "udp").lower()
        if proto not in ("udp", "tcp"):
            proto = "udp"
        host = uri.host_no_brackets
        port = uri.port or 5060
        maddr = uri.params.get("maddr")
        if maddr:
            host = maddr.strip("[]")
        if not _is_ip_literal(host):
            loop = asyncio.get_running_loop()
            # Our socket's family decides which addresses we can reach at all.
            infos = await loop.getaddrinfo(
                host, port, family=self.transport.family, type=socket.SOCK_DGRAM
            )
            if not infos:
                raise OSError(f"cannot resolve {host}")
            host = str(infos[0][4][0])
        return TransportAddr(proto, host, port)  # type: ignore[arg-type]

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
        if dest is None:
            target = await self.resolve(ruri)
        elif isinstance(dest, TransportAddr):
            target = dest
        else:
            target = TransportAddr("udp", dest[0], int(dest[1]))
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
            req = _build_request(
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

    async def send_request(
        self,
        req: Request,
        dest: TransportAddr,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Response | None:
        """Run one client transaction (17.1, sip.transaction): retransmissions over UDP (Timer
        A/E), Timer B/F at 64*T1 (or `timeout` if shorter). Returns the final response or None."""
        txn = self._start_client(req, dest)
        future = txn.future
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

    def _start_client(
        self,
        req: Request,
        dest: TransportAddr,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> _ClientTxn:
        reliable = dest.proto == "tcp"
        machine: InviteClientTransaction | NonInviteClientTransaction
        if req.method == "INVITE":
            machine = InviteClientTransaction(req, dest, reliable=reliable, timers=self.timers)
        else:
            machine = NonInviteClientTransaction(req, dest, reliable=reliable, timers=self.timers)
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        txn = _ClientTxn(machine, future, on_provisional)
        self._txns[id(machine)] = txn
        self._layer.add_client(machine)
        self._execute(txn, machine.start(self.clock()))
        return txn

    # -- outbound calls (UAC INVITE) --------------------------------------------------------------
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
        if dest is None:
            target_addr = await self.resolve(ruri)
        elif isinstance(dest, TransportAddr):
            target_addr = dest
        else:
            target_addr = TransportAddr("udp", dest[0], int(dest[1]))
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
            extra = [("Content-Type", "application/sdp")] if offer_sdp else []
            req = _build_request(
                "INVITE",
                str(ruri),
                [
                    ("Via", self.via(target_addr.proto)),
                    ("Max-Forwards", "70"),
                    ("From", from_value),
                    ("To", f"<{ruri}>"),
                    ("Call-ID", call_id),
                    ("CSeq", f"{cseq} INVITE"),
                    ("Contact", self.contact(target_addr.proto)),
                    ("Allow", ", ".join(self.allow)),
                    ("Supported", ", ".join(self.supported)),
                    ("User-Agent", self.user_agent),
                    *headers,
                    *auth,
                    *extra,
                ],
                offer_sdp or b"",
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
        def provisional(resp: Response) -> None:
            first = not call._provisional_seen
            call._provisional_seen = True
            if first and call._cancel_requested:
                self._send_cancel(call)  # 9.1: CANCEL waits for a provisional
            if resp.status > 100:
                self._callback(on_progress, call, resp)

        txn = self._start_client(req, dest, provisional)
        try:
            done, _ = await asyncio.wait({txn.future}, timeout=ring_timeout)
            if not done:
                # Nobody answered in time (the TU's Timer C): CANCEL, then expect a 487.
                call._cancel_requested = True
                if call._provisional_seen:
                    self._send_cancel(call)
                done, _ = await asyncio.wait({txn.future}, timeout=self.timers.timeout)
            return txn.future.result() if done else None
        finally:
            if not txn.future.done():
                txn.future.cancel()
                self._forget(txn)

    def _send_cancel(self, call: OutgoingCall) -> None:
        """9.1: CANCEL with the INVITE's Request-URI, top Via (same branch), Call-ID, From, To,
        Route and CSeq number; it is its own non-INVITE transaction."""
        cancel = make_cancel(call.invite)
        cancel.headers.add("User-Agent", self.user_agent)
        self._spawn(self.send_request(cancel, call.source))

    def _finish_invite(
        self, call: OutgoingCall, resp: Response | None, dest: TransportAddr
    ) -> None:
        call.status = resp.status if resp is not None else None
        call.reason = resp.reason if resp is not None else "no answer"
        call._settled.set()
        if resp is None or resp.status >= 300:
            reason = "cancelled" if call._cancel_requested else "rejected"
            self._terminate(call, reason, notify=False)
            return
        try:
            call.dialog = Dialog.uac(call.invite, resp)
        except DialogError as exc:
            log.warning(
                "2xx without a usable dialog: %s",
                exc,
                extra={"event": "sip.dialog_error", "call_id": call.call_id},
            )
            call.status = 502
            self._terminate(call, "rejected", notify=False)
            return
        call.remote_tag = resp.to_tag
        call.to_header = resp.headers.get("To") or call.to_header
        call.remote_sdp = sdp_body(resp)
        call.peer_allow = [m.strip().upper() for m in resp.headers.get_all("Allow")]
        call.state = CallState.CONFIRMED
        self._ack_2xx(call, call.invite, resp, dest)
        log.info(
            "outbound call answered",
            extra={"event": "sip.call.answered", "call_id": call.call_id},
        )
        if call._cancel_requested:
            # 9.1 race: the 2xx crossed our CANCEL; the call exists now, so end it with BYE.
            self._spawn(self._bye(call, None, self.timers.timeout, reason="local bye"))

    async def _cancel_outgoing(self, call: OutgoingCall, timeout: float) -> None:  # noqa: ASYNC109
        call._cancel_requested = True
        if call._provisional_seen:
            self._send_cancel(call)
        try:
            await asyncio.wait_for(call._settled.wait(), timeout)
        except TimeoutError:
            pass

    def _on_response(self, resp: Response) -> None:
        machine = self._layer.match_response(resp)
        txn = self._txns.get(id(machine)) if machine is not None else None
        if machine is None or txn is None:
            if resp.cseq[1] == "INVITE" and 200 <= resp.status < 300:
                # A retransmitted 2xx of a re-INVITE we sent: repeat our ACK (13.2.2.4).
                sent = self._acks_sent.get((resp.call_id, resp.cseq[0]))
                if sent is not None:
                    self.transport.send(*sent)
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
                isinstance(txn, _ClientTxn)
                and isinstance(target, TransportAddr)
                and (target.proto, target.host, target.port) == (dest.proto, dest.host, dest.port)
            ):
                self._execute(txn, machine.transport_error(now))

    # -- running transaction outputs ------------------------------------------------------------
    def _execute(self, txn: _ServerTxn | _ClientTxn | None, outputs: list[Any]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                self.transport.send(out.message.to_bytes(), out.dest)
            elif isinstance(out, TimerAt):
                self._want_tick(out.deadline)
            elif txn is None:
                continue
            elif isinstance(out, ResponseReceived):
                if isinstance(txn, _ClientTxn):
                    self._client_response(txn, out.response)
            elif isinstance(out, AckReceived):
                if isinstance(txn, _ServerTxn):
                    self._on_ack_received(txn, out.ack)
            elif isinstance(out, AckTimeout):
                if isinstance(txn, _ServerTxn):
                    self._on_ack_timeout(txn)
            elif isinstance(out, Timeout | TransportFailed):
                if isinstance(txn, _ClientTxn) and not txn.future.done():
                    txn.future.set_result(None)
            elif isinstance(out, Terminated):
                self._forget(txn)

    def _client_response(self, txn: _ClientTxn, resp: Response) -> None:
        if resp.status < 200:
            if txn.on_provisional is not None:
                txn.on_provisional(resp)
            return
        if not txn.future.done():
            txn.future.set_result(resp)
        elif txn.machine.request.method == "INVITE" and resp.status < 300:
            sent = self._acks_sent.get((resp.call_id, resp.cseq[0]))
            if sent is not None:  # 2xx retransmission (RFC 6026 Accepted): ACK again
                self.transport.send(*sent)

    def _forget(self, txn: _ServerTxn | _ClientTxn) -> None:
        self._txns.pop(id(txn.machine), None)
        self._layer.remove(txn.machine)

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
        self._tick_handle = loop.call_later(delay, self._on_tick)

    @property
    def next_deadline(self) -> float | None:
        """The earliest transaction or call deadline (when tick() has something to do)."""
        deadlines = [self._layer.next_deadline]
        if self._call_deadlines:
            deadlines.append(self._call_deadlines[0][0])
        due = [d for d in deadlines if d is not None]
        return min(due) if due else None

    def tick(self) -> None:
        """Run every transaction and call timer due at clock() (the loop timer calls this)."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._on_tick()

    def _on_tick(self) -> None:
        self._tick_handle = None
        self._tick_at = None
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

    # -- in-dialog client requests ---------------------------------------------------------
    async def _dialog_dest(self, call: Call) -> TransportAddr:
        assert call.dialog is not None
        hop = call.dialog.next_hop()
        proto = hop.transport or call.source.proto
        target = await self.resolve(hop, proto)
        if target.proto == "tcp" and call.source.proto == "tcp":
            # Reuse the caller's connection (NAT-friendly); the transport reconnects if it died.
            return TransportAddr("tcp", target.host, target.port, call.source.conn)
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
                    self.advertised_port,
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

    def _ack_2xx(self, call: Call, invite: Request, resp: Response, dest: TransportAddr) -> None:
        """13.2.2.4: the ACK for a 2xx is a new in-dialog request with the INVITE's CSeq."""
        assert call.dialog is not None
        ack = call.dialog.create_ack(
            invite.cseq[0],
            self.advertised_host,
            self.advertised_port,
            dest.proto,
            extra_headers=[("User-Agent", self.user_agent)],
        )
        data = ack.to_bytes()
        self._acks_sent[(call.call_id, invite.cseq[0])] = (data, dest)
        asyncio.get_running_loop().call_later(
            self.timers.timeout, self._acks_sent.pop, (call.call_id, invite.cseq[0]), None
        )
        self.transport.send(data, dest)

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
        if call.state != CallState.CONFIRMED:
            return 481
        call._refer_queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            resp = await self._in_dialog_request(
                call,
                "REFER",
                b"",
                None,
                [("Refer-To", f"<{target_uri}>"), ("Referred-By", self.contact())],
                None,
            )
            if resp is None:
                return 408
            if resp.status >= 300:
                return resp.status
            last = 100
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return 408
                try:
                    status, terminated = await asyncio.wait_for(call._refer_queue.get(), remaining)
                except TimeoutError:
                    return 408
                if status is not None:
                    last = status
                if status is not None and status >= 200:
                    return status
                if terminated:
                    # Subscription ended without a final sipfrag (or the call ended).
                    return last if last >= 200 else 487
        finally:
            call._refer_queue = None
            log.info(
                "transfer finished",
                extra={"event": "sip.refer.done", "call_id": call.call_id, "target": target_uri},
            )


def _sipfrag_status(body: bytes) -> int | None:
    """Status code of a message/sipfrag body (`SIP/2.0 200 OK`), None if unreadable."""
    first = body.decode("utf-8", "replace").strip().split("\r\n")[0].split("\n")[0]
    parts = first.split()
    if len(parts) >= 2 and parts[0].upper() == "SIP/2.0" and parts[1].isdigit():
        return int(parts[1])
    return None


def _default_advertised_host(bind_host: str) -> str:
    """The bind address, or for a wildcard bind the address of the default route's interface."""
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    family = socket.AF_INET6 if bind_host == "::" else socket.AF_INET
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))  # no packet is sent: this only picks a route
            return str(s.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"
