"""The call objects the application holds, and the transaction wrappers the UA core keeps.

`Call` is what inbound and outbound calls share (the dialog and the in-dialog operations:
hangup, refer, send_request); `IncomingCall` adds accept/reject, `OutgoingCall` the INVITE's
final status. Their methods hand the work to the user agent that made them (sip/useragent.py),
which they know only through the `CallOwner` protocol below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sip.address import TransportAddr
from sip.auth import DigestCredentials
from sip.dialog import Dialog
from sip.message import Headers, Request, Response, generate_tag
from sip.refer import ReferProgress
from sip.sdp import SessionDescription, parse_sdp_or_none, sdp_body
from sip.session_timer import SessionClock, SessionTimer
from sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
)
from sip.uac_auth import Credentials
from sip.uri import UriError, parse_name_addr

# Why a call ended, as on_call_ended reports it (and call.end_reason). Every reason the user
# agent produces is one of these (tests/sip/test_calls.py reads the source to keep it so).
END_REASONS = (
    "bye",  # the peer hung up
    "cancelled",  # CANCEL before the answer (or our own, for an outbound call)
    "ack timeout",  # Timer H: no ACK for our 2xx
    "session expired",  # RFC 4028: no refresh in time, or ours failed
    "local bye",  # call.hangup()
    "no answer",  # nobody decided within answer_timeout (480 sent)
    "rejected",  # call.reject() / a final non-2xx to our INVITE (not reported to on_call_ended)
)


class Signal:
    """A one-shot flag the core sets and the asyncio shell (or a test) waits on: no event loop
    here. `when_set` runs a callback once it is set (at once if it already is)."""

    __slots__ = ("_callbacks", "_set")

    def __init__(self) -> None:
        self._set = False
        self._callbacks: list[Callable[[], None]] = []

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def is_set(self) -> bool:
        return self._set

    def when_set(self, callback: Callable[[], None]) -> None:
        if self._set:
            callback()
        else:
            self._callbacks.append(callback)


class CallOwner(Protocol):
    """What a call needs from its user agent."""

    def clock(self) -> float: ...

    async def _hangup(
        self,
        call: Call,
        reason_header: str | None,
        timeout: float,  # noqa: ASYNC109
    ) -> int | None: ...

    async def _refer(self, call: Call, target_uri: str, timeout: float) -> int: ...  # noqa: ASYNC109

    async def _in_dialog_request(
        self,
        call: Call,
        method: str,
        body: bytes,
        content_type: str | None,
        headers: list[tuple[str, str]],
        timeout: float | None,  # noqa: ASYNC109
    ) -> Response | None: ...

    def _accept(
        self, call: IncomingCall, sdp: bytes | None, headers: list[tuple[str, str]]
    ) -> None: ...

    def _reject(
        self, call: IncomingCall, status: int, reason: str | None, headers: list[tuple[str, str]]
    ) -> None: ...


@dataclass(eq=False)
class ServerTxn:
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
class ClientTxn:
    """A sip.transaction client machine and who waits for its final response (`on_final`,
    called once: the response, or None on Timer B/F or a transport failure)."""

    machine: InviteClientTransaction | NonInviteClientTransaction
    on_final: Callable[[Response | None], None] | None = None
    on_provisional: Callable[[Response], None] | None = None
    finished: bool = False

    def finish(self, resp: Response | None) -> None:
        if self.finished:
            return
        self.finished = True
        # Called once: dropped, as `on_provisional` is when the UA forgets the transaction
        # (both are closures over the call, which keeps this transaction: a cycle otherwise).
        on_final, self.on_final = self.on_final, None
        if on_final is not None:
            on_final(resp)


class CallState:
    EARLY = "early"  # INVITE received, no final response yet
    CONFIRMED = "confirmed"  # 2xx sent (ACK may still be pending)
    TERMINATED = "terminated"


class Call:
    """What inbound and outbound calls share: the dialog and the in-dialog operations."""

    def __init__(self, ua: CallOwner, call_id: str, source: TransportAddr) -> None:
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
        self.acked = Signal()  # the ACK for our 2xx to the initial INVITE arrived
        self._reinvite_pending_out = False
        self._reinvite_in: ServerTxn | None = None
        self.refer_progress: ReferProgress | None = None  # a transfer we are waiting on
        self._refer_waiter: Any = None  # the shell's future for that outcome
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
        self, ua: CallOwner, invite: Request, source: TransportAddr, txn: ServerTxn
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

    def __init__(self, ua: CallOwner, invite: Request, dest: TransportAddr) -> None:
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
        self.settled = Signal()  # the INVITE has its final outcome
        # The TU's Timer C (ring_timeout): CANCEL when it passes, then give up on a final
        # response one transaction timeout later (sip/invite_client.py).
        self.ring_deadline: float | None = None
        self.give_up_deadline: float | None = None
        self._invite_txn: ClientTxn | None = None


def build_request(
    method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b""
) -> Request:
    hdrs = Headers()
    for name, value in headers:
        hdrs.add(name, value)
    return Request(method, uri, hdrs, body)


__all__ = [
    "END_REASONS",
    "Call",
    "CallOwner",
    "CallState",
    "ClientTxn",
    "IncomingCall",
    "OutgoingCall",
    "ServerTxn",
    "Signal",
    "build_request",
]
