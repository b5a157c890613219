"""The INVITE server (libre's sipsess accept/reply): a new INVITE becomes an IncomingCall
(100, 180, the application decides later), accept/reject, the ACK (late offers), Timer H, CANCEL
(RFC 3261 9.2: 200 to the CANCEL, 487 to the INVITE when it has no final response yet), and the
answer deadline (480 when the application never decides).

A mixin of UaCore (sip/ua_core.py): its methods run on the core's state (transactions,
calls, counters, admission) and answer through the core's `_reply`. No asyncio, no sockets:
time comes from `self.clock()`, and whatever must wait is handed to a hook the asyncio shell
(sip/useragent.py) implements.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sip.address import TransportAddr
from sip.admission import REGISTRAR
from sip.auth import REPLAYED
from sip.calls import Call, CallState, IncomingCall, ServerTxn
from sip.dialog import Dialog, DialogError
from sip.message import Request
from sip.sdp import sdp_body
from sip.session_timer import SessionRefusal, SessionTimer, negotiate
from sip.sips import wants_sips

log = logging.getLogger("sip")


@dataclass(frozen=True)
class InboundAuth:
    """Digest challenge for inbound INVITEs ([sip] inbound_auth)."""

    realm: str
    username: str
    password: str
    algorithm: str = "MD5"
    nonce_ttl: float = 300.0  # a nonce older than this gets 401 stale=true


class InviteServer:
    """Inbound INVITEs and the calls they create, until the dialog is confirmed or gone."""

    def _on_new_invite(self, req: Request, source: TransportAddr, txn: ServerTxn) -> None:
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
        contact = self.contact(source.proto, wants_sips(req))
        self._reply(txn, 180, "Ringing", extra=[("Contact", contact)])
        if self.answer_timeout > 0:
            # No timer in Proceeding (17.2.1): _answer_deadline_passed answers 480.
            call.answer_deadline = self.clock() + self.answer_timeout
            self._call_wakeup(call, call.answer_deadline)
        self._callback(self.on_invite, call)

    def _inbound_auth_ok(self, req: Request, txn: ServerTxn) -> bool:
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
        self, req: Request, txn: ServerTxn
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
            ("Contact", self.contact(call.source.proto, wants_sips(call.invite))),
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

    def _on_ack_received(self, txn: ServerTxn, ack: Request) -> None:
        """The ACK completed an INVITE transaction (for a non-2xx it only stopped Timer G)."""
        call = txn.call
        if call is None or txn.final_status >= 300:
            return
        if call._reinvite_in is txn:
            call._reinvite_in = None
        elif getattr(call, "_txn", None) is txn:
            call.acked.set()
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

    def _on_ack_timeout(self, txn: ServerTxn) -> None:
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
        self._start_bye(call, "ack timeout")

    def _on_cancel(self, req: Request, txn: ServerTxn) -> None:
        machine = self._layer.match_cancel(req)
        invite_txn = self._txns.get(id(machine)) if machine is not None else None
        if not isinstance(invite_txn, ServerTxn) or invite_txn.call is None:
            self._reply(txn, 481, to_tag=req.to_tag or None)
            return
        call = invite_txn.call
        # 9.2: the CANCEL's 200 carries the same To tag as the INVITE's responses.
        self._reply(txn, 200, to_tag=call.local_tag)
        if invite_txn.final_status == 0 and call.state == CallState.EARLY:
            self._reply(invite_txn, 487, "Request Terminated", to_tag=call.local_tag)
            self._terminate(call, "cancelled")

    def _answer_deadline_passed(self, call: Call, now: float) -> bool:
        """An INVITE server transaction has no timer in Proceeding (17.2.1): at the answer
        deadline an undecided call gets 480. True when that ended the call."""
        if (
            not isinstance(call, IncomingCall)
            or call.answer_deadline is None
            or now < call.answer_deadline
        ):
            return False
        call.answer_deadline = None
        if call.state == CallState.EARLY and not call._txn.final_status:
            self._reply(call._txn, 480, "Temporarily Unavailable", to_tag=call.local_tag)
            self._terminate(call, "no answer")
            return True
        return False


__all__ = ["InboundAuth", "InviteServer"]
