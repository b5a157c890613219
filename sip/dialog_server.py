"""Requests inside a dialog, server side (libre's sipsess modify/info/close): BYE, re-INVITE
and UPDATE (hold/resume offers, target and session refreshes, 14.2 glare and overlap), OPTIONS,
INFO (DTMF, sip/info.py) and the NOTIFYs of a transfer we started (sip/refer.py).

A mixin of UaCore (sip/ua_core.py): its methods run on the core's state (transactions,
calls, counters, admission) and answer through the core's `_reply`. No asyncio, no sockets:
time comes from `self.clock()`, and whatever must wait is handed to a hook the asyncio shell
(sip/useragent.py) implements.
"""

from __future__ import annotations

import secrets

from sip.calls import Call, IncomingCall, ServerTxn
from sip.info import read_info
from sip.message import Request
from sip.refer import sipfrag_status
from sip.sdp import NoCommonCodec, mirror_offer_direction, sdp_body, versioned_sdp
from sip.session_timer import SessionRefusal
from sip.sips import wants_sips


class DialogServer:
    """BYE, re-INVITE/UPDATE, OPTIONS, INFO and NOTIFY on an existing dialog."""

    def _on_bye(self, call: Call, req: Request, txn: ServerTxn) -> None:
        self._reply(txn, 200)
        if isinstance(call, IncomingCall) and call._txn.final_status == 0:
            invite_txn = call._txn
            # 15.1.2: BYE on an early dialog: 487 the INVITE too.
            self._reply(invite_txn, 487, "Request Terminated", to_tag=call.local_tag)
        self._terminate(call, "bye")

    def _on_dialog_options(self, call: Call, req: Request, txn: ServerTxn) -> None:
        self._reply_options(txn, in_dialog=True)

    def _on_reinvite(self, call: Call, req: Request, txn: ServerTxn) -> None:
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

    def _on_update(self, call: Call, req: Request, txn: ServerTxn) -> None:
        self._answer_refresh(call, req, txn, is_invite=False)

    def _answer_refresh(self, call: Call, req: Request, txn: ServerTxn, is_invite: bool) -> None:
        """re-INVITE / UPDATE: target refresh, session refresh, and hold/resume offers."""
        offer = sdp_body(req)
        contact = self.contact(call.source.proto, wants_sips(call.invite))
        extra: list[tuple[str, str]] = [("Contact", contact)]
        if call.session is not None or req.headers.get("Session-Expires"):
            session = self._negotiate_session_timer(req, txn)
            if isinstance(session, SessionRefusal):
                return
            if session is not None:
                call.session = session
                extra += session.answer_headers()
            self._schedule_session_timer(call)
        if offer is not None:
            # The application may answer asynchronously (on_reoffer): the shell asks it.
            self._start_reoffer(call, txn, offer, extra, is_invite)
            return
        body = b""
        if is_invite and call.local_sdp:
            # 14.2: an INVITE without an offer gets ours (unchanged: same o= version).
            body = call.local_sdp
            extra.append(("Content-Type", "application/sdp"))
        self._final_2xx(call, txn, extra, body, is_invite)

    def _refuse_offer(self, txn: ServerTxn, exc: NoCommonCodec | None) -> None:
        """488: the application refuses this offer (RFC 3264 8: the session stays as it was)."""
        warning = [("Warning", exc.warning)] if exc is not None and exc.warning else []
        self._reply(txn, 488, "Not Acceptable Here", extra=warning)

    def _answer_reoffer(
        self,
        call: Call,
        txn: ServerTxn,
        offer: bytes,
        answer: bytes | None,
        extra: list[tuple[str, str]],
        is_invite: bool,
    ) -> None:
        """The application's answer to a re-offer (None: it gave none, so we mirror the
        offer's direction on our last SDP), versioned as RFC 3264 8 wants."""
        if answer is None and call.local_sdp is not None:
            answer = mirror_offer_direction(call.local_sdp, offer)
        if answer is None:
            self._refuse_offer(txn, None)
            return
        answer = versioned_sdp(call.local_sdp, answer)
        call.local_sdp = answer
        call.remote_sdp = offer
        self._final_2xx(call, txn, [*extra, ("Content-Type", "application/sdp")], answer, is_invite)

    def _final_2xx(
        self,
        call: Call,
        txn: ServerTxn,
        extra: list[tuple[str, str]],
        body: bytes,
        is_invite: bool,
    ) -> None:
        extra = [*extra, ("Supported", ", ".join(self.supported))]
        if is_invite:
            call._reinvite_in = txn  # until its ACK; the transaction retransmits the 2xx
        self._reply(txn, 200, extra=extra, body=body)

    def _on_info(self, call: Call, req: Request, txn: ServerTxn) -> None:
        info = read_info(req.content_type, req.body)
        self._reply(txn, info.status, info.reason)
        if info.digit is not None:
            self._callback(self.on_dtmf, call, info.digit, info.duration_ms)

    def _on_notify(self, call: Call, req: Request, txn: ServerTxn) -> None:
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        progress = call.refer_progress
        if event != "refer" or progress is None:
            self._reply(txn, 481, "Subscription Does Not Exist")
            return
        self._reply(txn, 200)
        state = (req.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        outcome = progress.notify(sipfrag_status(req.body), state == "terminated")
        if outcome is not None:
            self._refer_finished(call, outcome)


__all__ = ["DialogServer"]
