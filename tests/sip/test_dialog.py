"""Dialog rules of RFC 3261 12: ids, CSeq, route set, remote target, in-dialog requests."""

from __future__ import annotations

import pytest

from sip.dialog import Dialog, DialogError
from sip.message import Request, Response, parse_message
from sip.uri import parse_uri


def inbound_invite(
    record_route: list[str] | None = None, contact: str = "<sip:caller@192.0.2.50:5062>"
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1"),
        ("Via", "SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bKc1;rport"),
        ("Max-Forwards", "69"),
    ]
    headers += [("Record-Route", rr) for rr in record_route or []]
    headers += [
        ("From", '"Caller" <sip:caller@example.org>;tag=remote1'),
        ("To", "<sip:agent@gw.example.net>"),
        ("Call-ID", "dlg-call-1"),
        ("CSeq", "100 INVITE"),
        ("Contact", contact),
    ]
    return Request("INVITE", "sip:agent@gw.example.net", headers)


def our_answer(invite: Request) -> Response:
    return invite.make_response(
        200, to_tag="local1", headers=[("Contact", "<sip:agent@203.0.113.5:5060>")]
    )


def uas_dialog(record_route: list[str] | None = None) -> Dialog:
    invite = inbound_invite(record_route)
    return Dialog.uas(invite, our_answer(invite))


def test_uas_dialog_state() -> None:
    d = uas_dialog(["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"])
    assert d.id == ("dlg-call-1", "local1", "remote1")
    assert d.remote_cseq == 100
    assert 1 <= d.local_cseq < 2**31
    assert str(d.remote_target) == "sip:caller@192.0.2.50:5062"
    # UAS keeps the Record-Route order (12.1.1).
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.net;lr", "sip:p2.example.net;lr"]
    assert str(d.local_uri) == "<sip:agent@gw.example.net>"
    assert str(d.remote_uri) == '"Caller" <sip:caller@example.org>'
    assert d.state == "confirmed" and d.local_contact == "<sip:agent@203.0.113.5:5060>"


def test_local_cseq_random_start_and_increments() -> None:
    starts = {uas_dialog().local_cseq for _ in range(5)}
    assert len(starts) > 1  # random, not a constant
    d = uas_dialog()
    first = d.local_cseq
    bye = d.create_request("INFO", "203.0.113.5", 5060)
    info = d.create_request("INFO", "203.0.113.5", 5060)
    assert bye.cseq == (first + 1, "INFO") and info.cseq == (first + 2, "INFO")


def test_remote_cseq_lower_rejected_with_500() -> None:
    d = uas_dialog()
    reinvite = inbound_invite()
    reinvite.headers.set("CSeq", "101 INVITE")
    assert d.receive_request(reinvite) is None and d.remote_cseq == 101
    stale = inbound_invite()
    stale.headers.set("CSeq", "99 INFO")
    stale.method = "INFO"
    assert d.receive_request(stale) == 500
    assert d.remote_cseq == 101
    # ACK carries the INVITE's number: never out of order, never moves the counter.
    ack = inbound_invite()
    ack.method = "ACK"
    ack.headers.set("CSeq", "100 ACK")
    assert d.receive_request(ack) is None and d.remote_cseq == 101
    assert d.check_remote_cseq(101) and not d.check_remote_cseq(50)


def test_target_refresh_by_reinvite_and_update_only() -> None:
    d = uas_dialog()
    info = inbound_invite(contact="<sip:elsewhere@192.0.2.77>")
    info.method = "INFO"
    info.headers.set("CSeq", "101 INFO")
    d.receive_request(info)
    assert str(d.remote_target) == "sip:caller@192.0.2.50:5062"  # INFO is not a target refresh
    update = inbound_invite(contact="<sip:moved@192.0.2.77:5070>")
    update.method = "UPDATE"
    update.headers.set("CSeq", "102 UPDATE")
    d.receive_request(update)
    assert str(d.remote_target) == "sip:moved@192.0.2.77:5070"


def test_create_request_loose_routing() -> None:
    d = uas_dialog(["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr;transport=tcp>"])
    bye = d.create_request(
        "BYE", "203.0.113.5", 5060, "udp", extra_headers=[("Reason", "Q.850;cause=16")]
    )
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:caller@192.0.2.50:5062"  # Request-URI = remote target
    assert bye.headers.get_all("Route") == [
        "<sip:p1.example.net;lr>",
        "<sip:p2.example.net;lr;transport=tcp>",
    ]
    via = bye.top_via
    assert via is not None and (via.transport, via.host, via.port) == ("UDP", "203.0.113.5", 5060)
    assert via.branch is not None and via.branch.startswith("z9hG4bK") and via.has_rport
    assert bye.headers.get("Max-Forwards") == "70"
    assert bye.from_tag == "local1" and bye.to_tag == "remote1"
    assert bye.headers.get("From") == "<sip:agent@gw.example.net>;tag=local1"
    assert bye.call_id == "dlg-call-1"
    assert "Contact" not in bye.headers  # BYE is not a target refresh
    assert bye.headers.get("Reason") == "Q.850;cause=16"
    assert str(d.next_hop()) == "sip:p1.example.net;lr"
    assert parse_message(bye.to_bytes()) == bye


def test_fresh_branch_per_request() -> None:
    d = uas_dialog()
    a = d.create_request("INFO", "203.0.113.5")
    b = d.create_request("INFO", "203.0.113.5")
    assert a.branch != b.branch


def test_reinvite_has_contact_and_body() -> None:
    d = uas_dialog()
    reinvite = d.create_request("INVITE", "[2001:db8::5]", 5070, "TCP", body=b"v=0\r\n")
    assert reinvite.headers.get("Contact") == "<sip:agent@203.0.113.5:5060>"
    assert reinvite.content_type == "application/sdp" and reinvite.body == b"v=0\r\n"
    assert reinvite.top_via is not None and reinvite.top_via.host == "[2001:db8::5]"
    assert str(reinvite.top_via).startswith("SIP/2.0/TCP [2001:db8::5]:5070;branch=")


def test_strict_routing() -> None:
    d = uas_dialog(
        ["<sip:strict.example.net;maddr=10.0.0.1;method=INVITE>", "<sip:p2.example.net;lr>"]
    )
    bye = d.create_request("BYE", "203.0.113.5", 5060)
    # 12.2.1.1: first route (minus disallowed params) becomes the Request-URI...
    assert str(bye.uri) == "sip:strict.example.net;maddr=10.0.0.1"
    # ...and the remote target goes last in Route.
    assert bye.headers.get_all("Route") == [
        "<sip:p2.example.net;lr>",
        "<sip:caller@192.0.2.50:5062>",
    ]
    assert str(d.next_hop()) == "sip:strict.example.net;maddr=10.0.0.1;method=INVITE"


def test_no_route_set_next_hop_is_target() -> None:
    d = uas_dialog()
    assert d.next_hop() == parse_uri("sip:caller@192.0.2.50:5062")
    req = d.create_request("BYE", "203.0.113.5")
    assert "Route" not in req.headers


def our_invite() -> Request:
    return Request(
        "INVITE",
        "sip:bob@example.org",
        [
            ("Via", "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKout1;rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:gateway@gw.example.net>;tag=ours"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "out-1"),
            ("CSeq", "4711 INVITE"),
            ("Contact", "<sip:gateway@203.0.113.5:5060>"),
        ],
    )


def answer(invite: Request, status: int, rr: list[str], contact: str | None) -> Response:
    extra = [("Record-Route", r) for r in rr]
    if contact:
        extra.append(("Contact", contact))
    resp = invite.make_response(status, to_tag="theirs", headers=extra)
    return resp


def test_uac_dialog_reverses_record_route() -> None:
    invite = our_invite()
    ok = answer(
        invite,
        200,
        ["<sip:near.example.net;lr>, <sip:far.example.net;lr>"],
        "<sip:bob@198.51.100.9>",
    )
    # make_response only copies Record-Route from the request; the response's own RR came in extra.
    d = Dialog.uac(invite, ok)
    assert d.id == ("out-1", "ours", "theirs")
    assert d.local_cseq == 4711 and d.remote_cseq is None
    assert [str(r.uri) for r in d.route_set] == [
        "sip:far.example.net;lr",
        "sip:near.example.net;lr",
    ]
    assert str(d.remote_target) == "sip:bob@198.51.100.9"
    bye = d.create_request("BYE", "203.0.113.5", 5060)
    assert bye.cseq == (4712, "BYE")
    assert bye.headers.get("To") == "<sip:bob@example.org>;tag=theirs"
    # The first request from the peer sets the remote CSeq (it was empty).
    incoming = Request(
        "INFO", "sip:gateway@203.0.113.5", [("CSeq", "1 INFO"), ("Call-ID", "out-1")]
    )
    assert d.receive_request(incoming) is None and d.remote_cseq == 1


def test_uac_early_dialog_confirmed_by_2xx_recomputes_routes() -> None:
    invite = our_invite()
    ringing = answer(invite, 180, ["<sip:early.example.net;lr>"], "<sip:bob@198.51.100.9>")
    d = Dialog.uac(invite, ringing)
    assert d.state == "early"
    ok = answer(invite, 200, ["<sip:final.example.net;lr>"], "<sip:bob@198.51.100.10>")
    d.receive_response(invite, ok)
    assert d.state == "confirmed"
    assert [str(r.uri) for r in d.route_set] == ["sip:final.example.net;lr"]
    assert str(d.remote_target) == "sip:bob@198.51.100.10"


def test_create_ack_for_2xx() -> None:
    invite = our_invite()
    d = Dialog.uac(invite, answer(invite, 200, [], "<sip:bob@198.51.100.9>"))
    ack = d.create_ack(4711, "203.0.113.5", 5060)
    assert ack.method == "ACK" and ack.cseq == (4711, "ACK")
    assert ack.branch != invite.branch
    assert d.local_cseq == 4711  # ACK does not advance the CSeq
    with pytest.raises(ValueError):
        d.create_request("ACK", "203.0.113.5")


def test_dialog_ids_for_incoming_messages() -> None:
    d = uas_dialog()
    bye = Request(
        "BYE",
        "sip:agent@203.0.113.5",
        [
            ("Call-ID", "dlg-call-1"),
            ("From", "<sip:c@e>;tag=remote1"),
            ("To", "<sip:a@g>;tag=local1"),
        ],
    )
    assert Dialog.id_for_request(bye) == d.id
    invite = our_invite()
    ok = answer(invite, 200, [], "<sip:bob@198.51.100.9>")
    assert Dialog.id_for_response(ok) == ("out-1", "ours", "theirs")


@pytest.mark.parametrize("status", [100, 300, 486])
def test_no_dialog_from_wrong_status(status: int) -> None:
    invite = inbound_invite()
    with pytest.raises(DialogError):
        Dialog.uas(invite, invite.make_response(status, to_tag="x"))


def test_no_dialog_without_tags_or_contact() -> None:
    invite = inbound_invite()
    with pytest.raises(DialogError, match="To tag"):
        Dialog.uas(invite, invite.make_response(200))
    no_contact = inbound_invite()
    no_contact.headers.remove("Contact")
    with pytest.raises(DialogError, match="Contact"):
        Dialog.uas(no_contact, no_contact.make_response(200, to_tag="x"))
    out = our_invite()
    with pytest.raises(DialogError, match="Contact"):
        Dialog.uac(out, answer(out, 200, [], None))
    bad_rr = inbound_invite(["<sip:broken"])
    with pytest.raises(DialogError, match="Record-Route"):
        Dialog.uas(bad_rr, our_answer(bad_rr))
