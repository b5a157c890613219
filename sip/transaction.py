"""RFC 3261 section 17 transactions as sans-I/O state machines (with RFC 6026 for INVITE 2xx).

Every input is a plain call carrying `now` (monotonic seconds); every call returns a list of
outputs the caller executes in order:

- `Send(message, dest)`: hand the message to the transport (`dest` is whatever the caller passed
  when creating the transaction, typically a transport address; the transaction never looks at it).
- `TimerAt(name, deadline)`: a timer was (re)armed; call `tick(now)` at or after `deadline`.
  Stale deadlines are harmless: `tick` only fires timers that are still armed and due.
- events: `ResponseReceived`, `AckReceived`, `Timeout`, `AckTimeout`, `TransportFailed`,
  `Terminated` (always last; the caller may then forget the transaction).

Where the INVITE 2xx retransmission lives: in `InviteServerTransaction`. RFC 3261 13.3.1.4 gives
that job to the UAS core, and RFC 6026 7.1 adds an "Accepted" state to the server transaction so
that it outlives the 2xx. We put both in the transaction: after `send_response(2xx)` it enters
Accepted, re-sends the 2xx on Timer G (T1, 2*T1, ... capped at T2) until `receive_ack()` and gives
up on Timer H (64*T1) with `AckTimeout`, on which the UA ends the call with BYE (13.3.1.4). The
transaction then lingers until Timer L (64*T1) to absorb INVITE retransmissions. The ACK for a 2xx
carries a new branch, so `TransactionLayer.match_request` finds the Accepted transaction by
Call-ID, From tag and CSeq number instead. One object thus owns every timer of an incoming call
setup, and the UA stays free of retransmission logic. Per 13.3.1.4 the 2xx is retransmitted on
reliable transports too (the ACK travels end to end, possibly across UDP hops behind a proxy);
every other retransmission (A, E, G for non-2xx) is UDP-only and timers D, I, J, K are zero on
reliable transports (17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2).
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sip.message import BRANCH_MAGIC, Headers, Request, Response
from sip.timers import DEFAULT_TIMERS, TimerConfig

__all__ = [
    "AckReceived",
    "AckTimeout",
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Output",
    "ResponseReceived",
    "Send",
    "ServerTransaction",
    "Terminated",
    "Timeout",
    "TimerAt",
    "TransactionError",
    "TransactionLayer",
    "TransportFailed",
    "client_key",
    "make_ack_for_non2xx",
    "make_cancel",
    "server_key",
]


# ---- outputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: Request | Response
    dest: Any = None


@dataclass(frozen=True)
class TimerAt:
    name: str
    deadline: float


@dataclass(frozen=True)
class ResponseReceived:
    response: Response


@dataclass(frozen=True)
class AckReceived:
    ack: Request


@dataclass(frozen=True)
class Timeout:
    """Timer B/F (no final response) or H (no ACK for a non-2xx final response)."""

    timer: str


@dataclass(frozen=True)
class AckTimeout:
    """No ACK for our 2xx within 64*T1: the UA must end the dialog with BYE (13.3.1.4)."""


@dataclass(frozen=True)
class TransportFailed:
    """The transport reported an error for this transaction (17.1.4, 17.2.4)."""


@dataclass(frozen=True)
class Terminated:
    pass


Output = (
    Send
    | TimerAt
    | ResponseReceived
    | AckReceived
    | Timeout
    | AckTimeout
    | TransportFailed
    | Terminated
)


class TransactionError(Exception):
    """The caller drove a transaction in a way RFC 3261 17 does not allow (a bug)."""


# ---- keys (17.1.3, 17.2.3) ---------------------------------------------------------------


def server_key(request: Request) -> tuple[str, ...]:
    """Key matching a request to a server transaction (17.2.3).

    RFC 3261 branches: branch + sent-by + method, with ACK mapped to INVITE (so the ACK for a
    non-2xx final response finds its INVITE transaction). Pre-3261 peers (no magic cookie) are
    matched on Call-ID, From tag, CSeq number, top Via and method as 17.2.3 describes.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    sent_by = f"{via.host}:{via.port or ''}".lower() if via else ""
    branch = via.branch if via else None
    if branch and branch.startswith(BRANCH_MAGIC):
        return ("3261", branch, sent_by, method)
    return (
        "2543",
        request.call_id,
        request.from_tag or "",
        str(request.cseq[0]),
        str(via) if via else "",
        method,
    )


def client_key(message: Request | Response) -> tuple[str, ...]:
    """Key matching a response to a client transaction (17.1.3): top branch + CSeq method."""
    return (message.branch or "", message.cseq[1])


def _dialog_ack_key(message: Request) -> tuple[str, str, int]:
    return (message.call_id, message.from_tag or "", message.cseq[0])


def make_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """ACK for a 300-699 final response, built inside the transaction (17.1.1.3).

    Request-URI, Call-ID, From, CSeq number and Route come from the INVITE, To (with the tag the
    UAS added) from the response, and only the INVITE's top Via is kept, same branch.
    """
    headers = Headers()
    top = invite.headers.get("Via")
    if top is not None:
        headers.add("Via", top)
    headers.add("Max-Forwards", "70")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or invite.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq[0]} ACK")
    return Request("ACK", invite.uri, headers)


def make_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE we sent (9.1): same Request-URI, Call-ID, From, To, Route
    and CSeq number, and only the INVITE's top Via (same branch) so the UAS can match it."""
    headers = Headers()
    top = invite.headers.get("Via")
    if top is not None:
        headers.add("Via", top)
    headers.add("Max-Forwards", "70")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", invite.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
    return Request("CANCEL", invite.uri.copy(), headers)


# ---- base ----------------------------------------------------------------------------------


class _Transaction:
    state: str  # the initial state, as a class attribute of each concrete kind

    def __init__(
        self,
        request: Request,
        dest: Any = None,
        *,
        reliable: bool = False,
        timers: TimerConfig = DEFAULT_TIMERS,
    ) -> None:
        self._check_method(request.method)
        self.request = request
        self.dest = dest
        self.reliable = reliable
        self.timers = timers
        self.last_response: Response | None = None
        self._deadlines: dict[str, float] = {}
        # Current interval of the retransmit timer (A, E or G), doubled per RFC 3261 17.
        self._interval = timers.t1
        # Set by TransactionLayer: told of every armed deadline, so the layer's tick visits
        # only the transactions that are due instead of every one it holds.
        self.on_arm: Callable[[_Transaction, float], None] | None = None
        # The peer address a server transaction is counted against (TransactionLayer caps).
        self.source = ""

    @property
    def terminated(self) -> bool:
        return self.state == "Terminated"

    @property
    def next_deadline(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    @property
    def armed_timers(self) -> dict[str, float]:
        return dict(self._deadlines)

    def _arm(self, out: list[Output], name: str, now: float, delay: float) -> None:
        self._deadlines[name] = now + delay
        out.append(TimerAt(name, now + delay))
        if self.on_arm is not None:
            self.on_arm(self, now + delay)

    def _base(self, deadline: float, now: float) -> float:
        """Re-arm from the nominal deadline (exact schedules under a fake clock), unless the
        caller ticked so late that the next deadline is already past: then from `now`, so a
        stalled loop gives one retransmission rather than a burst."""
        return deadline if now < deadline + self._interval else now

    def _cancel(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _terminate(self, out: list[Output]) -> None:
        self.state = "Terminated"
        self._deadlines.clear()
        out.append(Terminated())

    def _check_method(self, method: str) -> None:
        """Raise TransactionError when this kind of transaction cannot carry `method`."""

    def tick(self, now: float) -> list[Output]:
        """Fire every armed timer whose deadline has passed, earliest first."""
        out: list[Output] = []
        # Bounded: each firing either disarms or re-arms in the future of `now`.
        for _ in range(64):
            due = [(d, n) for n, d in self._deadlines.items() if d <= now]
            if not due or self.terminated:
                break
            deadline, name = min(due)
            del self._deadlines[name]
            self._fire(name, deadline, now, out)
        return out

    def _fire(self, name: str, deadline: float, now: float, out: list[Output]) -> None:
        raise NotImplementedError

    def transport_error(self, now: float) -> list[Output]:
        """The transport could not send for this transaction (17.1.4 / 17.2.4)."""
        if self.terminated:
            return []
        out: list[Output] = [TransportFailed()]
        self._terminate(out)
        return out


# ---- client transactions -------------------------------------------------------------------


class ClientTransaction(_Transaction):
    """Common part of INVITE and non-INVITE client transactions."""

    state = "Init"

    @property
    def key(self) -> tuple[str, ...]:
        return client_key(self.request)


class InviteClientTransaction(ClientTransaction):
    """17.1.1 plus RFC 6026: Calling -> Proceeding -> Completed | Accepted -> Terminated."""

    def start(self, now: float) -> list[Output]:
        if self.state != "Init":
            raise TransactionError("INVITE client transaction already started")
        self.state = "Calling"
        out: list[Output] = [Send(self.request, self.dest)]
        if not self.reliable:
            self._arm(out, "A", now, self.timers.t1)
        self._arm(out, "B", now, self.timers.timeout)
        return out

    def receive_response(self, response: Response, now: float) -> list[Output]:
        out: list[Output] = []
        status = response.status
        if self.state in ("Calling", "Proceeding"):
            self.last_response = response
            if status < 200:
                self.state = "Proceeding"
                # 17.1.1.2: no INVITE retransmissions once a provisional arrived; Timer B only
                # guards the Calling state (the TU has its own Timer C / Expires).
                self._cancel("A", "B")
                out.append(ResponseReceived(response))
            elif status < 300:
                # RFC 6026 7.2: stay Accepted for 64*T1 so 2xx retransmissions (and 2xx from
                # other forks) reach the TU, which ACKs each of them itself.
                self.state = "Accepted"
                self._cancel("A", "B")
                out.append(ResponseReceived(response))
                self._arm(out, "M", now, self.timers.timeout)
            else:
                self.state = "Completed"
                self._cancel("A", "B")
                out.append(Send(make_ack_for_non2xx(self.request, response), self.dest))
                out.append(ResponseReceived(response))
                if self.reliable:
                    self._terminate(out)
                else:
                    self._arm(out, "D", now, self.timers.timer_d)
        elif self.state == "Completed":
            if status >= 300:
                # A retransmitted final response means our ACK was lost: ACK again, tell nobody.
                out.append(Send(make_ack_for_non2xx(self.request, response), self.dest))
        elif self.state == "Accepted" and 200 <= status < 300:
            out.append(ResponseReceived(response))
        return out

    def _fire(self, name: str, deadline: float, now: float, out: list[Output]) -> None:
        if name == "A" and self.state == "Calling":
            out.append(Send(self.request, self.dest))
            self._interval *= 2  # 17.1.1.2: A doubles without a cap (B ends it at 64*T1)
            self._arm(out, "A", self._base(deadline, now), self._interval)
        elif name == "B" and self.state == "Calling":
            out.append(Timeout("B"))
            self._terminate(out)
        elif (name == "D" and self.state == "Completed") or (
            name == "M" and self.state == "Accepted"
        ):
            self._terminate(out)


class NonInviteClientTransaction(ClientTransaction):
    """17.1.2: Trying -> Proceeding -> Completed -> Terminated."""

    def start(self, now: float) -> list[Output]:
        if self.state != "Init":
            raise TransactionError("non-INVITE client transaction already started")
        if self.request.method in ("INVITE", "ACK"):
            raise TransactionError(f"{self.request.method} cannot use a non-INVITE transaction")
        self.state = "Trying"
        out: list[Output] = [Send(self.request, self.dest)]
        if not self.reliable:
            self._arm(out, "E", now, self.timers.t1)
        self._arm(out, "F", now, self.timers.timeout)
        return out

    def receive_response(self, response: Response, now: float) -> list[Output]:
        out: list[Output] = []
        if self.state not in ("Trying", "Proceeding"):
            return out  # Completed absorbs retransmitted final responses
        self.last_response = response
        out.append(ResponseReceived(response))
        if response.status < 200:
            self.state = "Proceeding"
            return out
        self.state = "Completed"
        self._cancel("E", "F")
        if self.reliable:
            self._terminate(out)
        else:
            self._arm(out, "K", now, self.timers.t4)
        return out

    def _fire(self, name: str, deadline: float, now: float, out: list[Output]) -> None:
        if name == "E" and self.state in ("Trying", "Proceeding"):
            out.append(Send(self.request, self.dest))
            # 17.1.2.2: doubling up to T2 while Trying; a flat T2 once Proceeding.
            if self.state == "Trying":
                self._interval = min(self._interval * 2, self.timers.t2)
            else:
                self._interval = self.timers.t2
            self._arm(out, "E", self._base(deadline, now), self._interval)
        elif name == "F" and self.state in ("Trying", "Proceeding"):
            out.append(Timeout("F"))
            self._terminate(out)
        elif name == "K" and self.state == "Completed":
            self._terminate(out)


# ---- server transactions -------------------------------------------------------------------


class ServerTransaction(_Transaction):
    """Common part of INVITE and non-INVITE server transactions."""

    @functools.cached_property
    def key(self) -> tuple[str, ...]:
        return server_key(self.request)

    def _send_last(self, out: list[Output]) -> None:
        if self.last_response is not None:
            out.append(Send(self.last_response, self.dest))


class InviteServerTransaction(ServerTransaction):
    """17.2.1 plus RFC 6026: Proceeding -> Completed -> Confirmed | Accepted -> Terminated."""

    state = "Proceeding"
    acked = False

    def _check_method(self, method: str) -> None:
        if method != "INVITE":
            raise TransactionError(f"{method} is not an INVITE")

    @property
    def dialog_ack_key(self) -> tuple[str, str, int]:
        return _dialog_ack_key(self.request)

    def start(
        self, now: float, *, send_trying: bool = True, to_tag: str | None = None
    ) -> list[Output]:
        """Enter Proceeding; with `send_trying`, answer 100 Trying at once (17.2.1 lets the TU
        skip it only when it answers within 200 ms, which an AI call setup never does)."""
        if not send_trying:
            return []
        return self.send_response(self.request.make_response(100, to_tag=to_tag), now)

    def receive_request(self, request: Request, now: float) -> list[Output]:
        """A retransmitted INVITE (or the ACK, which is routed to `receive_ack`)."""
        if request.method == "ACK":
            return self.receive_ack(request, now)
        out: list[Output] = []
        if self.state in ("Proceeding", "Completed"):
            self._send_last(out)
        # Accepted: RFC 6026 7.1 absorbs INVITE retransmissions (Timer G keeps re-sending the 2xx).
        return out

    def send_response(self, response: Response, now: float) -> list[Output]:
        out: list[Output] = []
        if self.state != "Proceeding":
            raise TransactionError(f"cannot send {response.status} in state {self.state}")
        self.last_response = response
        out.append(Send(response, self.dest))
        status = response.status
        if status < 200:
            return out
        self._interval = self.timers.t1
        if status < 300:
            self.state = "Accepted"
            # 13.3.1.4: 2xx retransmitted on every transport until the ACK arrives.
            self._arm(out, "G", now, self._interval)
            self._arm(out, "H", now, self.timers.timeout)
            self._arm(out, "L", now, self.timers.timeout)
        else:
            self.state = "Completed"
            if not self.reliable:
                self._arm(out, "G", now, self._interval)
            self._arm(out, "H", now, self.timers.timeout)
        return out

    def receive_ack(self, ack: Request, now: float) -> list[Output]:
        out: list[Output] = []
        if self.state == "Completed":
            self.state = "Confirmed"
            self.acked = True
            self._cancel("G", "H")
            out.append(AckReceived(ack))
            if self.reliable:
                self._terminate(out)
            else:
                self._arm(out, "I", now, self.timers.t4)
        elif self.state == "Accepted" and not self.acked:
            self.acked = True
            self._cancel("G", "H")
            out.append(AckReceived(ack))
        # Confirmed / already-acked Accepted: ACK retransmissions are absorbed.
        return out

    def _fire(self, name: str, deadline: float, now: float, out: list[Output]) -> None:
        if name == "G" and self.state in ("Completed", "Accepted") and not self.acked:
            self._send_last(out)
            self._interval = min(self._interval * 2, self.timers.t2)
            self._arm(out, "G", self._base(deadline, now), self._interval)
        elif name == "H" and self.state == "Completed":
            out.append(Timeout("H"))
            self._terminate(out)
        elif name == "H" and self.state == "Accepted" and not self.acked:
            out.append(AckTimeout())
        elif (name == "I" and self.state == "Confirmed") or (
            name == "L" and self.state == "Accepted"
        ):
            self._terminate(out)


class NonInviteServerTransaction(ServerTransaction):
    """17.2.2: Trying -> Proceeding -> Completed -> Terminated."""

    state = "Trying"

    def _check_method(self, method: str) -> None:
        if method in ("INVITE", "ACK"):
            raise TransactionError(f"{method} cannot use a non-INVITE transaction")

    def receive_request(self, request: Request, now: float) -> list[Output]:
        """A retransmission: re-send the last response, if any (Trying absorbs it silently)."""
        out: list[Output] = []
        if self.state in ("Proceeding", "Completed"):
            self._send_last(out)
        return out

    def send_response(self, response: Response, now: float) -> list[Output]:
        if self.state not in ("Trying", "Proceeding"):
            raise TransactionError(f"cannot send {response.status} in state {self.state}")
        self.last_response = response
        out: list[Output] = [Send(response, self.dest)]
        if response.status < 200:
            self.state = "Proceeding"
            return out
        self.state = "Completed"
        if self.reliable:
            self._terminate(out)
        else:
            self._arm(out, "J", now, self.timers.timeout)
        return out

    def _fire(self, name: str, deadline: float, now: float, out: list[Output]) -> None:
        if name == "J" and self.state == "Completed":
            self._terminate(out)


# ---- the layer: find the transaction a message belongs to -------------------------------


class TransactionLayer:
    """Tables of live transactions and the matching rules of 17.1.3 and 17.2.3.

    It only stores and finds; the UA creates transactions, feeds them and executes outputs.

    Bounded (issue 9): at most `max_servers` server transactions, and at most
    `max_servers_per_source` from one source address, so a flood of distinct requests (each a
    new transaction that RFC 3261 keeps up to 64*T1 after its final response) cannot grow
    memory without limit, and one flooding source cannot take every slot. The UA asks
    `server_room(source)` before creating a server transaction. When only the total is
    reached, `evict_completed()` makes room by dropping the oldest transaction that has sent
    its final non-2xx response (Completed or Confirmed: it only waits to re-send that response
    or absorb an ACK; losing it costs the peer one retransmitted request at worst), so a flood
    of rejected requests from many addresses cannot lock out a legitimate caller. Calls being
    set up (Proceeding) or answered (Accepted) are never evicted. Timers are kept in a heap, so
    `tick` costs O(due log n), not O(n).
    """

    def __init__(self, max_servers: int = 10000, max_servers_per_source: int = 0) -> None:
        self.clients: dict[tuple[str, ...], ClientTransaction] = {}
        self.servers: dict[tuple[str, ...], ServerTransaction] = {}
        # ACKs for 2xx have their own branch: find the Accepted INVITE by dialog and CSeq.
        self._accepted: dict[tuple[str, str, int], InviteServerTransaction] = {}
        self.max_servers = max_servers
        # 0: half of max_servers, so a second source (a legitimate caller) always has room.
        self.max_servers_per_source = max_servers_per_source or max(1, max_servers // 2)
        self._per_source: dict[str, int] = {}
        # Server transactions oldest first, for eviction (re-queued when not evictable).
        self._age: OrderedDict[int, ServerTransaction] = OrderedDict()
        # Timer heap of (deadline, seq, id(txn)): ids, not the transactions, so a removed or
        # evicted transaction is freed at once instead of living until its last timer (a flood
        # of evictions would otherwise keep 64*T1 of them in memory). `_live` resolves ids.
        self._heap: list[tuple[float, int, int]] = []
        self._live: dict[int, ClientTransaction | ServerTransaction] = {}
        self._seq = itertools.count()

    # -- storing -------------------------------------------------------------------------
    def add_client(self, txn: ClientTransaction) -> None:
        self.clients[txn.key] = txn
        self._watch(txn)

    def server_room(self, source: str = "") -> bool:
        """Whether a new server transaction from `source` fits under the caps."""
        return len(self.servers) < self.max_servers and self.source_room(source)

    def source_room(self, source: str = "") -> bool:
        """Whether `source` is under its share (the total aside)."""
        return not source or self._per_source.get(source, 0) < self.max_servers_per_source

    def evict_completed(self, attempts: int = 64) -> ServerTransaction | None:
        """Remove and return the oldest server transaction whose final non-2xx response was
        sent (see the class docstring); None when the `attempts` oldest are all still needed."""
        age = self._age
        for _ in range(min(attempts, len(age))):
            key, txn = age.popitem(last=False)
            if not self._holds(txn):
                continue
            if txn.state in ("Completed", "Confirmed", "Terminated"):
                self.remove(txn)
                return txn
            age[key] = txn  # still in use: to the back of the queue
        return None

    def add_server(self, txn: ServerTransaction, source: str = "") -> None:
        self.servers[txn.key] = txn
        if isinstance(txn, InviteServerTransaction):
            self._accepted[txn.dialog_ack_key] = txn
        if source:
            txn.source = source
            self._per_source[source] = self._per_source.get(source, 0) + 1
        self._age[id(txn)] = txn
        self._watch(txn)

    def servers_from(self, source: str) -> int:
        return self._per_source.get(source, 0)

    def _watch(self, txn: ClientTransaction | ServerTransaction) -> None:
        self._live[id(txn)] = txn
        txn.on_arm = self._schedule  # type: ignore[assignment]
        for deadline in txn.armed_timers.values():
            self._schedule(txn, deadline)

    def _schedule(self, txn: ClientTransaction | ServerTransaction, deadline: float) -> None:
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._seq), id(txn)))
        if len(heap) > 4 * len(self._live) + 4096:
            # Mostly stale entries (cancelled timers, removed transactions): rebuild.
            heap[:] = [
                (d, next(self._seq), tid)
                for tid, live in self._live.items()
                for d in live.armed_timers.values()
            ]
            heapq.heapify(heap)

    def _unwatch(self, txn: ClientTransaction | ServerTransaction) -> None:
        if self._live.get(id(txn)) is txn:
            del self._live[id(txn)]
            txn.on_arm = None

    def _holds(self, txn: ClientTransaction | ServerTransaction) -> bool:
        table: dict[tuple[str, ...], Any] = (
            self.clients if isinstance(txn, ClientTransaction) else self.servers
        )
        return table.get(txn.key) is txn

    # -- matching ------------------------------------------------------------------------
    def match_response(self, response: Response) -> ClientTransaction | None:
        try:
            return self.clients.get(client_key(response))
        except ValueError:
            return None

    def match_request(self, request: Request) -> ServerTransaction | None:
        """The server transaction a request (retransmission or ACK) belongs to, if any."""
        try:
            txn = self.servers.get(server_key(request))
            if txn is None and request.method == "ACK":
                txn = self._accepted.get(_dialog_ack_key(request))
                if txn is not None and txn.state != "Accepted":
                    txn = None
        except ValueError:
            return None
        return txn

    def match_cancel(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE a CANCEL targets: same key with method INVITE (9.2)."""
        try:
            key = server_key(cancel)
        except ValueError:
            return None
        txn = self.servers.get((*key[:-1], "INVITE"))
        return txn if isinstance(txn, InviteServerTransaction) else None

    # -- time ----------------------------------------------------------------------------
    def tick(self, now: float) -> list[tuple[ClientTransaction | ServerTransaction, list[Output]]]:
        """Fire due timers; transactions that terminate are dropped from the tables."""
        results: list[tuple[ClientTransaction | ServerTransaction, list[Output]]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, tid = heapq.heappop(heap)
            txn = self._live.get(tid)
            if txn is None:
                continue  # removed since this deadline was armed
            due = txn.next_deadline
            if due is not None and due <= now:
                # Re-armed timers are pushed with deadlines after `now` (_base): no repeat here.
                outputs = txn.tick(now)
                if outputs:
                    results.append((txn, outputs))
            if txn.terminated:
                self.remove(txn)
        return results

    def remove(
        self, txn: ClientTransaction | ServerTransaction, key: tuple[str, ...] | None = None
    ) -> None:
        self._unwatch(txn)
        if isinstance(txn, ClientTransaction):
            self.clients.pop(key or txn.key, None)
            return
        self._age.pop(id(txn), None)
        if self.servers.get(key or txn.key) is txn:
            del self.servers[key or txn.key]
            if txn.source:
                left = self._per_source.get(txn.source, 0) - 1
                if left > 0:
                    self._per_source[txn.source] = left
                else:
                    self._per_source.pop(txn.source, None)
        if isinstance(txn, InviteServerTransaction):
            if self._accepted.get(txn.dialog_ack_key) is txn:
                del self._accepted[txn.dialog_ack_key]

    @property
    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, tid = heap[0]
            # An entry is current when it is its transaction's earliest armed deadline; a
            # cancelled or already fired timer leaves a stale entry, dropped here.
            txn = self._live.get(tid)
            if txn is not None and txn.next_deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None
