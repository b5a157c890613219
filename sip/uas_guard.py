"""What stands between the network and the INVITE server: scanner floods, stateless answers
(OPTIONS probes, 403 to sources not admitted), transaction caps, unparsable requests, and
where responses go (RFC 3261 18.2.2, RFC 3581).

- Scanner floods (User-Agent friendly-scanner, sipvicious, sipcli, VaxSIPUserAgent...) are
  dropped silently, before any state is allocated: answering tells the scanner a SIP stack is
  listening.
- Inbound INVITE admission (sip/admission.py has the rule): closed by default, only loopback and
  the host's own addresses are trusted. Order: per-source rate (dropped silently, before a
  transaction exists) -> 403 for a source not admitted -> 400/482 -> 503 (max_calls, then
  max_calls_per_source) -> 401 digest.

A mixin of UaCore (sip/ua_core.py): its methods run on the core's state (transactions,
calls, counters, admission) and answer through the core's `_reply`. No asyncio, no sockets:
time comes from `self.clock()`, and whatever must wait is handed to a hook the asyncio shell
(sip/useragent.py) implements.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from sip.address import TransportAddr, is_ip_literal
from sip.admission import ADMITTING_KEYS, parse_address
from sip.calls import CallState, IncomingCall, ServerTxn
from sip.message import Request, SipParseError, apply_received_rport, response_destination
from sip.sips import wants_sips

log = logging.getLogger("sip")

REFUSED_REMEMBERED = 1024
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


class UasGuard:
    """Scanner drop, stateless answers, transaction caps, response routing."""

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

    def _options_answer(
        self, proto: str, in_dialog: bool, secure: bool = False
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
                ("Contact", self.contact(proto, secure)),
            ],
        )

    def _reply_options(self, txn: ServerTxn, in_dialog: bool = False) -> None:
        status, reason, extra = self._options_answer(
            txn.dest.proto, in_dialog, wants_sips(txn.request)
        )
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
        status, reason, extra = self._options_answer(dest.proto, False, wants_sips(req))
        self._send_response(req, dest, status, reason, extra=extra)

    def _make_room(self, source_host: str) -> bool:
        """Total cap reached (not this source's share): evict one finished transaction."""
        if not self._layer.source_room(source_host):
            return False
        evicted = self._layer.evict_completed()
        if evicted is None:
            return False
        wrapper = self._txns.pop(id(evicted), None)
        if isinstance(wrapper, ServerTxn):
            wrapper.call = None  # see UaCore._forget
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
        if source.reliable:
            # 18.2.2: if the connection is gone, open a new one to received + sent-by port
            # (the rport of a stream is an ephemeral client port nobody listens on).
            host = via.received or via.host
            default_port = 5061 if source.proto == "tls" else 5060
            return TransportAddr(
                source.proto,
                host.strip("[]"),
                via.port or default_port,
                source.conn,
                server_name="" if is_ip_literal(via.host) else via.host,
            )
        host, port = response_destination(via, source.proto)
        return TransportAddr("udp", host, port)

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


__all__ = ["DEFAULT_SCANNERS", "REFUSED_REMEMBERED", "UasGuard"]
