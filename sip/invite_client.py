"""The INVITE client (libre's sipsess connect): the INVITE we send for an outbound call,
its CANCEL (RFC 3261 9.1: only after a provisional; a 2xx that crosses the CANCEL is ACKed and
ended with BYE), and the final answer that confirms the dialog (ACK for the 2xx, 13.2.2.4).
The waiting (ring timeout, the TU's Timer C) is the shell's: UserAgent.invite.

A mixin of UaCore (sip/ua_core.py): its methods run on the core's state (transactions,
calls, counters, admission) and answer through the core's `_reply`. No asyncio, no sockets:
time comes from `self.clock()`, and whatever must wait is handed to a hook the asyncio shell
(sip/useragent.py) implements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sip.address import TransportAddr
from sip.calls import Call, CallState, ClientTxn, OutgoingCall, build_request
from sip.dialog import Dialog, DialogError
from sip.message import Request, Response
from sip.sdp import sdp_body
from sip.transaction import make_cancel
from sip.uri import SipUri

log = logging.getLogger("sip")


class InviteClient:
    """Outbound INVITE: build it, cancel it, settle it."""

    def _invite_request(
        self,
        ruri: SipUri,
        dest: TransportAddr,
        from_value: str,
        call_id: str,
        cseq: int,
        offer_sdp: bytes | None,
        headers: Sequence[tuple[str, str]],
        auth: Sequence[tuple[str, str]],
    ) -> Request:
        extra = [("Content-Type", "application/sdp")] if offer_sdp else []
        return build_request(
            "INVITE",
            str(ruri),
            [
                ("Via", self.via(dest.proto)),
                ("Max-Forwards", "70"),
                ("From", from_value),
                ("To", f"<{ruri}>"),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} INVITE"),
                ("Contact", self.contact(dest.proto, ruri.scheme == "sips")),
                ("Allow", ", ".join(self.allow)),
                ("Supported", ", ".join(self.supported)),
                ("User-Agent", self.user_agent),
                *headers,
                *auth,
                *extra,
            ],
            offer_sdp or b"",
        )

    def _invite_provisional(
        self, call: OutgoingCall, on_progress: Callable[..., Any] | None
    ) -> Callable[[Response], None]:
        def provisional(resp: Response) -> None:
            first = not call._provisional_seen
            call._provisional_seen = True
            if first and call._cancel_requested:
                self._send_cancel(call)  # 9.1: CANCEL waits for a provisional
            if resp.status > 100:
                self._callback(on_progress, call, resp)

        return provisional

    def _ring(self, call: OutgoingCall, txn: ClientTxn, ring_timeout: float) -> None:
        """Our INVITE is out: nobody answering within `ring_timeout` gets it cancelled."""
        call._invite_txn = txn
        call.give_up_deadline = None
        call.ring_deadline = self.clock() + ring_timeout
        self._call_wakeup(call, call.ring_deadline)

    def _ring_deadline_passed(self, call: Call, now: float) -> None:
        """Timer C: CANCEL, then expect a 487; no final response a transaction timeout after
        that and the INVITE is over with none (status None)."""
        if not isinstance(call, OutgoingCall) or call.state != CallState.EARLY:
            return
        txn = call._invite_txn
        if txn is None or txn.finished:
            return
        if call.ring_deadline is not None and now >= call.ring_deadline:
            call.ring_deadline = None
            self._request_cancel(call)
            call.give_up_deadline = now + self.timers.timeout
            self._call_wakeup(call, call.give_up_deadline)
        elif call.give_up_deadline is not None and now >= call.give_up_deadline:
            call.give_up_deadline = None
            self._forget(txn)
            txn.finish(None)

    def _request_cancel(self, call: OutgoingCall) -> None:
        """Ring timeout or hangup before the answer: CANCEL now if a provisional came, else
        as soon as one does (9.1)."""
        call._cancel_requested = True
        if call._provisional_seen:
            self._send_cancel(call)

    def _send_cancel(self, call: OutgoingCall) -> None:
        """9.1: CANCEL with the INVITE's Request-URI, top Via (same branch), Call-ID, From, To,
        Route and CSeq number; it is its own non-INVITE transaction."""
        cancel = make_cancel(call.invite)
        cancel.headers.add("User-Agent", self.user_agent)
        # Its own non-INVITE transaction; nobody waits for its answer (the INVITE's
        # final response tells): Timer F or its response ends it.
        self._start_client(cancel, call.source)

    def _finish_invite(
        self, call: OutgoingCall, resp: Response | None, dest: TransportAddr
    ) -> None:
        call.status = resp.status if resp is not None else None
        call.reason = resp.reason if resp is not None else "no answer"
        call.settled.set()
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
            self._start_bye(call, "local bye")


__all__ = ["InviteClient"]
