"""RFC 3261 17 transaction state machines, every timer driven by a fake clock."""

from __future__ import annotations

import itertools

import pytest

from sip.message import Request, Response, parse_message
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
    make_ack_for_non2xx,
    make_cancel,
)

DEST = ("192.0.2.40", 5060)


def request(
    method: str = "INVITE", branch: str = "z9hG4bKtx1", cseq: int = 1, call_id: str = "c1"
) -> Request:
    return Request(
        method,
        "sip:agent@192.0.2.40",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.41:5060;branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("Route", "<sip:proxy.example.net;lr>"),
            ("From", "<sip:caller@192.0.2.41>;tag=ft"),
            ("To", "<sip:agent@192.0.2.40>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
        ],
    )


def response_to(req: Request, status: int, to_tag: str | None = "tt") -> Response:
    return req.make_response(status, to_tag=to_tag if status > 100 else None)


class Clock:
    """Runs a transaction's timers in deadline order and records what happened when."""

    def __init__(self, txn) -> None:
        self.txn = txn
        self.now = 0.0
        self.log: list[tuple[float, object]] = []

    def record(self, outputs: list) -> list:
        self.log += [(self.now, o) for o in outputs]
        return outputs

    def run_until(self, limit: float) -> None:
        for _ in range(10_000):  # bounded
            deadline = self.txn.next_deadline
            if deadline is None or deadline > limit:
                break
            self.now = deadline
            self.record(self.txn.tick(self.now))
        self.now = max(self.now, limit)

    def sends(self) -> list[float]:
        return [t for t, o in self.log if isinstance(o, Send)]

    def events(self) -> list[tuple[float, object]]:
        return [(t, o) for t, o in self.log if not isinstance(o, Send | TimerAt)]


# ---- INVITE client: A, B, D (and RFC 6026 M) ---------------------------------------------


def test_timer_a_doubles_until_timer_b() -> None:
    txn = InviteClientTransaction(request(), DEST)
    clock = Clock(txn)
    out = clock.record(txn.start(0.0))
    assert out[0] == Send(txn.request, DEST)
    assert TimerAt("A", 0.5) in out and TimerAt("B", 32.0) in out
    clock.run_until(100)
    assert clock.sends() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert clock.events() == [(32.0, Timeout("B")), (32.0, Terminated())]
    assert txn.terminated and txn.next_deadline is None


def test_timer_a_not_used_on_reliable_transport() -> None:
    txn = InviteClientTransaction(request(), DEST, reliable=True)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    clock.run_until(100)
    assert clock.sends() == [0.0]
    assert clock.events() == [(32.0, Timeout("B")), (32.0, Terminated())]


def test_provisional_stops_a_and_b() -> None:
    txn = InviteClientTransaction(request(), DEST)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    clock.run_until(0.6)
    ringing = response_to(txn.request, 180)
    assert txn.receive_response(ringing, 0.7) == [ResponseReceived(ringing)]
    assert txn.state == "Proceeding" and txn.next_deadline is None
    clock.run_until(200)
    assert clock.sends() == [0.0, 0.5]


def test_timer_d_absorbs_final_retransmissions_with_ack() -> None:
    txn = InviteClientTransaction(request(), DEST)
    txn.start(0.0)
    busy = response_to(txn.request, 486)
    out = txn.receive_response(busy, 1.0)
    ack = out[0]
    assert isinstance(ack, Send) and ack.message.method == "ACK" and ack.dest == DEST
    assert out[1] == ResponseReceived(busy)
    assert TimerAt("D", 33.0) in out and txn.state == "Completed"
    again = txn.receive_response(busy, 2.0)
    assert len(again) == 1 and isinstance(again[0], Send) and again[0].message.method == "ACK"
    assert txn.tick(32.9) == []
    assert txn.tick(33.0) == [Terminated()]


def test_timer_d_zero_on_reliable() -> None:
    txn = InviteClientTransaction(request(), DEST, reliable=True)
    txn.start(0.0)
    out = txn.receive_response(response_to(txn.request, 603), 1.0)
    assert out[-1] == Terminated() and txn.terminated


def test_ack_for_non_2xx_fields() -> None:
    invite = request()
    busy = response_to(invite, 486, to_tag="busy-tag")
    ack = make_ack_for_non2xx(invite, busy)
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.branch == invite.branch
    assert ack.cseq == (1, "ACK")
    assert ack.to_tag == "busy-tag" and ack.from_tag == "ft"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.net;lr>"]
    assert parse_message(ack.to_bytes()) == ack


def test_cancel_for_pending_invite_matches_it() -> None:
    invite = request()
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.branch == invite.branch and cancel.cseq == (1, "CANCEL")
    assert cancel.headers.get_all("Via") == [invite.headers.get("Via")]
    assert cancel.headers.get_all("Route") == invite.headers.get_all("Route")
    layer = TransactionLayer()
    server = InviteServerTransaction(invite, DEST)
    layer.add_server(server)
    assert layer.match_cancel(parse_message(cancel.to_bytes())) is server


def test_2xx_enters_accepted_and_timer_m() -> None:
    txn = InviteClientTransaction(request(), DEST)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    ok = response_to(txn.request, 200)
    out = txn.receive_response(ok, 1.0)
    assert out[0] == ResponseReceived(ok) and txn.state == "Accepted"
    # Retransmitted 2xx go to the TU (it re-sends the ACK), no ACK from the transaction.
    assert txn.receive_response(ok, 2.0) == [ResponseReceived(ok)]
    assert txn.tick(33.0) == [Terminated()]


# ---- non-INVITE client: E, F, K -----------------------------------------------------------


def test_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), DEST)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    clock.run_until(100)
    assert clock.sends() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert clock.events() == [(32.0, Timeout("F")), (32.0, Terminated())]


def test_timer_e_is_t2_once_proceeding() -> None:
    txn = NonInviteClientTransaction(request("BYE"), DEST)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    clock.run_until(0.5)
    clock.record(txn.receive_response(response_to(txn.request, 100), 0.6))
    clock.run_until(20)
    # After the 100 at 0.6 the next retransmission (due 1.5 from the 0.5 one) uses T2 spacing.
    assert clock.sends() == [0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5]


def test_timer_e_absent_on_reliable() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), DEST, reliable=True)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    clock.run_until(40)
    assert clock.sends() == [0.0]
    assert clock.events()[-1] == (32.0, Terminated())


def test_timer_k_then_terminated() -> None:
    txn = NonInviteClientTransaction(request("BYE"), DEST)
    txn.start(0.0)
    ok = response_to(txn.request, 200)
    out = txn.receive_response(ok, 1.0)
    assert out == [ResponseReceived(ok), TimerAt("K", 6.0)]
    assert txn.receive_response(ok, 2.0) == []  # absorbed
    assert txn.tick(5.9) == []
    assert txn.tick(6.0) == [Terminated()]


def test_timer_k_zero_on_reliable() -> None:
    txn = NonInviteClientTransaction(request("BYE"), DEST, reliable=True)
    txn.start(0.0)
    ok = response_to(txn.request, 200)
    assert txn.receive_response(ok, 1.0) == [ResponseReceived(ok), Terminated()]


def test_client_misuse_is_an_error() -> None:
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(request("INVITE"), DEST).start(0.0)
    txn = InviteClientTransaction(request(), DEST)
    txn.start(0.0)
    with pytest.raises(TransactionError):
        txn.start(1.0)


def test_transport_error_terminates() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), DEST)
    txn.start(0.0)
    assert txn.transport_error(0.1) == [TransportFailed(), Terminated()]
    assert txn.transport_error(0.2) == []


# ---- INVITE server: 100 Trying, G, H, I, 2xx retransmission, L ------------------------------


def test_invite_server_sends_trying_at_once_and_absorbs_retransmissions() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    out = txn.start(0.0)
    assert len(out) == 1 and isinstance(out[0], Send) and out[0].message.status == 100
    # A retransmitted INVITE gets the last provisional again.
    again = txn.receive_request(invite, 0.5)
    assert again == [Send(out[0].message, DEST)]
    ringing = response_to(invite, 180)
    txn.send_response(ringing, 1.0)
    assert txn.receive_request(invite, 1.5) == [Send(ringing, DEST)]


def test_2xx_retransmit_schedule_until_ack() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    ok = response_to(invite, 200)
    clock.now = 1.0
    clock.record(txn.send_response(ok, 1.0))
    clock.run_until(20.0)
    sent_ok = [t for t, o in clock.log if isinstance(o, Send) and o.message.status == 200]
    # 0.5, 1, 2, 4, 4, 4 ... after the first send at 1.0
    assert sent_ok == [1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5]
    ack = Request("ACK", "sip:agent@192.0.2.40", [("Via", "SIP/2.0/UDP x;branch=z9hG4bKnew")])
    assert txn.receive_ack(ack, 20.0) == [AckReceived(ack)]
    assert txn.receive_ack(ack, 20.1) == []  # retransmitted ACK absorbed
    clock.run_until(100.0)
    sent_ok = [t for t, o in clock.log if isinstance(o, Send) and o.message.status == 200]
    assert sent_ok[-1] == 16.5  # nothing after the ACK
    # Timer L ends the Accepted state 64*T1 after the 2xx.
    assert clock.events() == [(33.0, Terminated())]


def test_2xx_without_ack_times_out_with_event() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    clock = Clock(txn)
    txn.start(0.0, send_trying=False)
    clock.record(txn.send_response(response_to(invite, 200), 0.0))
    clock.run_until(100.0)
    sent = clock.sends()
    assert sent[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert sent[-1] == 31.5 and all(b - a <= 4.0 for a, b in itertools.pairwise(sent))
    assert clock.events() == [(32.0, AckTimeout()), (32.0, Terminated())]


def test_invite_retransmission_absorbed_once_accepted() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    txn.start(0.0)
    txn.send_response(response_to(invite, 200), 0.1)
    assert txn.receive_request(invite, 0.2) == []


def test_2xx_is_retransmitted_on_reliable_transport_too() -> None:
    # RFC 3261 13.3.1.4: the UAS core retransmits the 2xx whatever the transport.
    invite = request()
    txn = InviteServerTransaction(invite, DEST, reliable=True)
    clock = Clock(txn)
    clock.record(txn.send_response(response_to(invite, 200), 0.0))
    clock.run_until(2.0)
    assert clock.sends() == [0.0, 0.5, 1.5]


def test_timer_g_h_for_non_2xx_final() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    clock = Clock(txn)
    txn.start(0.0, send_trying=False)
    clock.record(txn.send_response(response_to(invite, 486), 0.0))
    clock.run_until(100.0)
    assert clock.sends() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert clock.events() == [(32.0, Timeout("H")), (32.0, Terminated())]


def test_timer_i_after_ack() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    clock = Clock(txn)
    txn.start(0.0, send_trying=False)
    busy = response_to(invite, 486)
    clock.record(txn.send_response(busy, 0.0))
    clock.run_until(1.0)
    assert txn.receive_request(invite, 1.2) == [Send(busy, DEST)]  # Completed: resend final
    ack = make_ack_for_non2xx(invite, busy)
    out = txn.receive_request(ack, 2.0)
    assert out == [AckReceived(ack), TimerAt("I", 7.0)]
    assert txn.state == "Confirmed"
    assert txn.receive_request(ack, 2.5) == []  # absorbed
    clock.now = 2.0
    clock.run_until(50.0)
    assert clock.sends() == [0.0, 0.5]  # G stopped by the ACK
    assert clock.events() == [(7.0, Terminated())]


def test_reliable_non_2xx_no_g_and_i_zero() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST, reliable=True)
    clock = Clock(txn)
    busy = response_to(invite, 486)
    clock.record(txn.send_response(busy, 0.0))
    assert txn.armed_timers == {"H": 32.0}
    out = txn.receive_ack(make_ack_for_non2xx(invite, busy), 1.0)
    assert out[-1] == Terminated()


def test_invite_server_rejects_second_final() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    txn.send_response(response_to(invite, 486), 0.0)
    with pytest.raises(TransactionError):
        txn.send_response(response_to(invite, 200), 0.1)


# ---- non-INVITE server: J -----------------------------------------------------------------


def test_non_invite_server_timer_j_and_retransmissions() -> None:
    bye = request("BYE")
    txn = NonInviteServerTransaction(bye, DEST)
    assert txn.receive_request(bye, 0.0) == []  # Trying: absorbed silently
    trying = response_to(bye, 100)
    assert txn.send_response(trying, 0.1) == [Send(trying, DEST)]
    assert txn.receive_request(bye, 0.2) == [Send(trying, DEST)]
    ok = response_to(bye, 200)
    assert txn.send_response(ok, 0.3) == [Send(ok, DEST), TimerAt("J", 32.3)]
    assert txn.receive_request(bye, 5.0) == [Send(ok, DEST)]
    assert txn.tick(32.2) == []
    assert txn.tick(32.3) == [Terminated()]


def test_non_invite_server_timer_j_zero_on_reliable() -> None:
    bye = request("BYE")
    txn = NonInviteServerTransaction(bye, DEST, reliable=True)
    ok = response_to(bye, 200)
    assert txn.send_response(ok, 0.0) == [Send(ok, DEST), Terminated()]


def test_custom_timer_values() -> None:
    timers = TimerConfig(t1=0.1, t2=0.4, t4=1.0)
    txn = NonInviteClientTransaction(request("OPTIONS"), DEST, timers=timers)
    clock = Clock(txn)
    clock.record(txn.start(0.0))
    clock.run_until(1.0)
    assert clock.sends() == pytest.approx([0.0, 0.1, 0.3, 0.7])
    assert txn.armed_timers["F"] == pytest.approx(6.4)


def test_late_tick_gives_one_retransmission_not_a_burst() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), DEST)
    txn.start(0.0)
    out = txn.tick(10.0)  # the loop stalled for 10 s
    assert sum(isinstance(o, Send) for o in out) == 1
    assert txn.armed_timers["E"] == 11.0


# ---- matching (17.1.3, 17.2.3) ------------------------------------------------------------


def test_layer_matches_retransmission_ack_and_cancel() -> None:
    layer = TransactionLayer()
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    layer.add_server(txn)
    assert layer.match_request(invite) is txn
    # Same branch from another sent-by is a different transaction.
    other = request()
    other.headers.replace_first_value("Via", "SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKtx1")
    assert layer.match_request(other) is None
    # CANCEL: same branch, its own transaction, but it targets the INVITE.
    cancel = request("CANCEL")
    assert layer.match_request(cancel) is None
    assert layer.match_cancel(cancel) is txn
    # ACK for a non-2xx: same branch, matched to the INVITE transaction.
    busy = response_to(invite, 486)
    txn.send_response(busy, 0.0)
    assert layer.match_request(make_ack_for_non2xx(invite, busy)) is txn


def test_layer_matches_2xx_ack_with_new_branch() -> None:
    layer = TransactionLayer()
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    layer.add_server(txn)
    txn.send_response(response_to(invite, 200), 0.0)
    ack = request("ACK", branch="z9hG4bKbrandnew")
    assert layer.match_request(ack) is txn
    assert layer.match_request(request("ACK", branch="z9hG4bKx", cseq=2)) is None


def test_layer_client_matching_and_tick_cleanup() -> None:
    layer = TransactionLayer()
    bye = request("BYE", branch="z9hG4bKbye")
    txn = NonInviteClientTransaction(bye, DEST)
    layer.add_client(txn)
    txn.start(0.0)
    ok = response_to(bye, 200)
    assert layer.match_response(ok) is txn
    wrong_method = response_to(request("INFO", branch="z9hG4bKbye"), 200)
    assert layer.match_response(wrong_method) is None
    txn.receive_response(ok, 0.1)
    assert layer.next_deadline == pytest.approx(5.1)
    results = layer.tick(5.1)
    assert results == [(txn, [Terminated()])]
    assert layer.clients == {}


def test_rfc2543_peer_without_magic_cookie() -> None:
    layer = TransactionLayer()
    old = request("OPTIONS", branch="1234")
    txn = NonInviteServerTransaction(old, DEST)
    layer.add_server(txn)
    assert layer.match_request(request("OPTIONS", branch="1234")) is txn
    assert layer.match_request(request("OPTIONS", branch="1234", cseq=2)) is None


# ---- bounds and reaping (issue 9) ---------------------------------------------------------


def test_layer_caps_total_and_per_source() -> None:
    layer = TransactionLayer(max_servers=4, max_servers_per_source=3)
    for n in range(3):
        assert layer.server_room("192.0.2.66")
        layer.add_server(
            NonInviteServerTransaction(request("BYE", branch=f"z9hG4bKb{n}"), DEST), "192.0.2.66"
        )
    assert not layer.server_room("192.0.2.66")  # its share is used
    assert layer.server_room("192.0.2.7")  # another source still fits
    layer.add_server(NonInviteServerTransaction(request("BYE", branch="z9hG4bKo"), DEST), "x")
    assert not layer.server_room("192.0.2.7")  # the total is reached
    first = layer.match_request(request("BYE", branch="z9hG4bKb0"))
    assert first is not None
    layer.remove(first)
    assert layer.servers_from("192.0.2.66") == 2
    assert layer.server_room("192.0.2.66")


def test_default_per_source_share_is_half() -> None:
    assert TransactionLayer(max_servers=100).max_servers_per_source == 50


def test_flood_of_rejected_invites_is_reaped_by_timer_h() -> None:
    """10000 INVITEs answered 403 and never ACKed (a flood): all gone 64*T1 later, and a tick
    before then visits only the transactions that are due."""
    layer = TransactionLayer(max_servers=20000)
    for n in range(10000):
        invite = request(branch=f"z9hG4bKflood{n}", call_id=f"flood-{n}")
        txn = InviteServerTransaction(invite, DEST)
        layer.add_server(txn, "192.0.2.66")
        txn.send_response(response_to(invite, 403), now=n * 0.001)
    assert layer.next_deadline == pytest.approx(0.5)  # first Timer G
    results = layer.tick(0.6)  # only the first 100 are due for a retransmission
    assert len(results) == 101
    assert len(layer.servers) == 10000
    now = 0.6
    while (deadline := layer.next_deadline) is not None:
        now = deadline
        layer.tick(now)
    assert layer.servers == {} and layer.servers_from("192.0.2.66") == 0
    assert now == pytest.approx(9.999 + 32.0)  # the last one's Timer H
    assert layer._heap == []


def test_layer_tick_skips_cancelled_timers() -> None:
    layer = TransactionLayer()
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    layer.add_server(txn)
    txn.send_response(response_to(invite, 486), 0.0)
    txn.receive_ack(make_ack_for_non2xx(invite, response_to(invite, 486)), 0.1)  # G, H off; I on
    assert layer.next_deadline == pytest.approx(0.1 + 5.0)  # Timer I (T4), not the stale G
    assert layer.tick(1.0) == []
    assert layer.tick(5.2) == [(txn, [Terminated()])]
    assert layer.servers == {}


def test_evict_completed_takes_the_oldest_finished_and_spares_calls() -> None:
    layer = TransactionLayer(max_servers=4, max_servers_per_source=4)
    ringing = InviteServerTransaction(request(branch="z9hG4bKring"), DEST)  # Proceeding
    layer.add_server(ringing, "a")
    answered_invite = request(branch="z9hG4bKans", call_id="c2")
    answered = InviteServerTransaction(answered_invite, DEST)
    layer.add_server(answered, "a")
    answered.send_response(response_to(answered_invite, 200), 0.0)  # Accepted
    byes = []
    for n in range(2):
        bye = request("BYE", branch=f"z9hG4bKbye{n}", call_id=f"b{n}")
        txn = NonInviteServerTransaction(bye, DEST)
        layer.add_server(txn, "b")
        txn.send_response(response_to(bye, 481), 0.0)  # Completed (Timer J)
        byes.append(txn)
    assert not layer.server_room("c") and layer.source_room("c")
    assert layer.evict_completed() is byes[0]
    assert layer.evict_completed() is byes[1]
    assert layer.servers_from("b") == 0
    assert layer.evict_completed() is None  # a call ringing and an answered one remain
    assert set(layer.servers.values()) == {ringing, answered}
    # A rejected INVITE (Completed, waiting for its ACK) may go too.
    ringing.send_response(response_to(ringing.request, 486), 0.0)
    assert layer.evict_completed() is ringing
    assert layer.next_deadline is not None  # the answered call's timers are still scheduled


def test_removed_transaction_is_freed_before_its_timers_fire() -> None:
    """The timer heap holds ids, not transactions: an evicted one is garbage at once, not
    64*T1 later (a flood of evictions must not keep 32 s of requests in memory)."""
    import gc
    import weakref

    layer = TransactionLayer(max_servers=1, max_servers_per_source=1)
    invite = request()
    txn = InviteServerTransaction(invite, DEST)
    layer.add_server(txn, "a")
    txn.send_response(response_to(invite, 403), 0.0)  # G and H armed
    ref = weakref.ref(txn)
    assert layer.evict_completed() is txn
    del txn
    gc.collect()
    assert ref() is None
    assert layer.next_deadline is None and layer.tick(100.0) == []


def test_timer_heap_is_compacted_when_mostly_stale() -> None:
    layer = TransactionLayer(max_servers=100000)
    for n in range(3000):
        invite = request(branch=f"z9hG4bKc{n}", call_id=f"c{n}")
        txn = InviteServerTransaction(invite, DEST)
        layer.add_server(txn)
        txn.send_response(response_to(invite, 403), 0.0)
        layer.remove(txn)  # stale entries only
    assert len(layer._heap) <= 4096 + 2
