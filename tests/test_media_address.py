"""gateway/media_address.py: which family a call's RTP uses (issue 10, IPv6 media), as a table,
and the Gateway in-process answering IPv6 offers (the test_app.py harness and UAC)."""

# ruff: noqa: F811  (the test_app.py fixtures are imported, then named as parameters)
from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load_config
from gateway.media_address import (
    MediaEndpoint,
    MediaFamilies,
    address_family,
    answered_address,
    local_ip_towards,
    offer_problem,
    reoffer_problem,
    warning_301,
)
from sip.sdp import CodecPrefs, NoCommonCodec, parse_sdp
from tests.test_app import (  # noqa: F401
    TIMEOUT,
    EventLog,
    Harness,
    _Proto,
    body_of,
    events,
    harness,
    header,
    offer_sdp,
    rtp_packet,
    status_of,
)

E = MediaEndpoint


@pytest.mark.parametrize(
    ("sip_host", "advertised", "ipv6_address", "ipv4", "ipv6"),
    [
        # IPv4 only, as shipped: an IPv6 offer has no media address.
        ("0.0.0.0", None, "", E("0.0.0.0", None), None),
        ("127.0.0.1", "127.0.0.1", "", E("127.0.0.1", "127.0.0.1"), None),
        ("0.0.0.0", "203.0.113.5", "", E("0.0.0.0", "203.0.113.5"), None),
        # media.ipv6_address adds IPv6 media to an IPv4 SIP bind.
        ("127.0.0.1", "127.0.0.1", "::1", E("127.0.0.1", "127.0.0.1"), E("::1", "::1")),
        ("0.0.0.0", None, "::", E("0.0.0.0", None), E("::", None)),
        ("0.0.0.0", None, "[2001:db8::5]", E("0.0.0.0", None), E("2001:db8::5", "2001:db8::5")),
        # SIP on IPv6: IPv6 media there; IPv4 only with "::" or an IPv4 advertised address.
        ("::1", "::1", "", None, E("::1", "::1")),
        ("::", None, "", E("0.0.0.0", None), E("::", None)),
        ("::", "2001:db8::7", "", E("0.0.0.0", None), E("::", "2001:db8::7")),
        ("::", "198.51.100.2", "", E("0.0.0.0", "198.51.100.2"), E("::", None)),
        ("2001:db8::1", "198.51.100.2", "", E("0.0.0.0", "198.51.100.2"), E("2001:db8::1", "2001:db8::1")),
    ],
)  # fmt: skip
def test_families_from_config(
    sip_host: str,
    advertised: str | None,
    ipv6_address: str,
    ipv4: MediaEndpoint | None,
    ipv6: MediaEndpoint | None,
) -> None:
    families = MediaFamilies.from_config(sip_host, advertised, ipv6_address)
    assert (families.ipv4, families.ipv6) == (ipv4, ipv6)
    assert families.endpoint(4) == ipv4 and families.endpoint(6) == ipv6


def test_for_peer_prefers_the_peer_family_and_falls_back() -> None:
    both = MediaFamilies(E("0.0.0.0", None), E("::", None))
    assert both.for_peer("2001:db8::9") == E("::", None)
    assert both.for_peer("[::1]") == E("::", None)
    assert both.for_peer("192.0.2.1") == E("0.0.0.0", None)
    v4 = MediaFamilies(E("127.0.0.1", "127.0.0.1"), None)
    assert v4.for_peer("::1") == E("127.0.0.1", "127.0.0.1")
    assert v4.names == ["IPv4"] and both.names == ["IPv4", "IPv6"]


def test_address_family() -> None:
    assert address_family("192.0.2.1") == 4
    assert address_family("::1") == 6
    assert address_family("[2001:db8::1]") == 6
    assert address_family("pbx.example.com") is None
    assert address_family("") is None


def test_local_ip_towards() -> None:
    assert local_ip_towards(E("0.0.0.0", "203.0.113.5"), "::1") == "203.0.113.5"
    assert local_ip_towards(E("0.0.0.0", None), "127.0.0.1") == "127.0.0.1"
    assert address_family(local_ip_towards(E("::", None), "::1")) == 6


def test_answered_address_is_the_chosen_streams() -> None:
    # Session c= IPv4, the video stream IPv6, the audio stream (the one we answer) IPv6 too.
    sdp = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=video 5000 RTP/AVP 96\r\nc=IN IP6 2001:db8::9\r\n"
        "m=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\n"
        "m=audio 4100 RTP/AVP 0\r\n"
    )
    assert answered_address(sdp, CodecPrefs()) == "2001:db8::1"
    g729 = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 18\r\n"
    )
    with pytest.raises(NoCommonCodec):
        answered_address(g729, CodecPrefs())


def test_offer_problem() -> None:
    v4 = MediaFamilies(E("127.0.0.1", "127.0.0.1"), None)
    assert offer_problem(v4, "192.0.2.1") == (E("127.0.0.1", "127.0.0.1"), "")
    endpoint, why = offer_problem(v4, "2001:db8::1")
    assert endpoint is None and "IPv6 media offered" in why and "media.ipv6_address" in why
    endpoint, why = offer_problem(v4, "pbx.example.com")
    assert endpoint is None and "not an IP address" in why
    v6 = MediaFamilies(None, E("::1", "::1"))
    assert offer_problem(v6, "::1") == (E("::1", "::1"), "")
    assert offer_problem(v6, "192.0.2.1")[0] is None


def test_reoffer_problem() -> None:
    assert reoffer_problem("127.0.0.1", "192.0.2.7") is None
    assert reoffer_problem("0.0.0.0", "0.0.0.0") is None
    assert reoffer_problem("127.0.0.1", "::") is None  # hold, whatever the family
    assert reoffer_problem("::1", "2001:db8::2") is None
    assert "not IPv4" in (reoffer_problem("127.0.0.1", "::1") or "")
    assert "not IPv6" in (reoffer_problem("::", "192.0.2.7") or "")
    assert reoffer_problem("127.0.0.1", "pbx.example.com") is not None


def test_warning_301() -> None:
    assert warning_301("::1") == '301 [::1] "Incompatible network address formats"'
    assert warning_301("gw.example.net", 'bad "x"') == "301 gw.example.net \"bad 'x'\""


# -- the Gateway in-process --------------------------------------------------------------------


def _v6_offer(port: int, host: str = "::1") -> bytes:
    return offer_sdp(port).replace(b"IN IP4 127.0.0.1", f"IN IP6 {host}".encode())


async def _v6_rtp_socket() -> tuple[asyncio.DatagramTransport, _Proto]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(_Proto, local_addr=("::1", 0))


def _needs_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")


async def test_ipv6_offer_without_ipv6_media_gets_488_warning_301(
    harness: Harness,
    events: EventLog,
) -> None:
    uac = harness.uac
    final = await uac.invite(_v6_offer(harness.rtp_port))
    assert status_of(final) == 488
    uac.ack(final)
    assert re.fullmatch(
        r'301 127\.0\.0\.1 "Incompatible network address formats"', header(final, "Warning")
    ), final
    rejected = await events.wait("call.rejected", call_id=uac.call_id)
    assert "IPv6 media offered" in rejected["reason"] and "media.ipv6_address" in rejected["reason"]
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["status"] == 488
    assert harness.gateway.active_calls == 0
    assert harness.gateway.ports.in_use == 0  # refused before any port was bound


async def test_offer_with_host_name_in_c_line_gets_488(
    harness: Harness,
    events: EventLog,
) -> None:
    uac = harness.uac
    offer = offer_sdp(harness.rtp_port).replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 pbx.example")
    final = await uac.invite(offer)
    assert status_of(final) == 488
    assert header(final, "Warning").startswith("301 ")
    uac.ack(final)
    await events.wait("call.ended", call_id=uac.call_id)
    assert harness.gateway.active_calls == 0


@pytest.mark.parametrize("harness", [{"media": {"ipv6_address": "::1"}}], indirect=True)
async def test_ipv6_offer_gets_ipv6_media(harness: Harness, events: EventLog) -> None:
    _needs_ipv6()
    uac = harness.uac
    rtp6, proto6 = await _v6_rtp_socket()
    try:
        port6 = rtp6.get_extra_info("sockname")[1]
        final = await uac.invite(_v6_offer(port6))
        assert status_of(final) == 200, final
        uac.ack(final)
        answer = body_of(final).decode()
        assert re.search(r"^c=IN IP6 ::1\r$", answer, re.M), answer
        assert re.search(r"^o=\S+ \d+ \d+ IN IP6 ::1\r$", answer, re.M), answer
        gw_port = int(re.search(r"^m=audio (\d+) ", answer, re.M).group(1))  # type: ignore[union-attr]
        rtp6.sendto(rtp_packet(0, 1, 160, b"\xff" * 160), ("::1", gw_port))
        packet = await asyncio.wait_for(proto6.queue.get(), TIMEOUT)
        assert packet[1] & 0x7F == 0  # PCMU from the gateway, over IPv6
        assert proto6.sources[0][:2] == ("::1", gw_port)
        uac.send(uac.request("BYE"))
        assert status_of(await uac.final_response("BYE")) == 200
        ended = await events.wait("call.ended", call_id=uac.call_id)
        assert ended["rtp_packets_in"] >= 1 and ended["rtp_packets_out"] >= 1
        assert harness.gateway.active_calls == 0
    finally:
        rtp6.close()


@pytest.mark.parametrize("harness", [{"media": {"ipv6_address": "::1"}}], indirect=True)
async def test_reoffer_moving_to_the_other_family_gets_488(
    harness: Harness,
    events: EventLog,
) -> None:
    uac = harness.uac
    final = await uac.invite(offer_sdp(harness.rtp_port))
    assert status_of(final) == 200
    assert b"c=IN IP4 127.0.0.1" in body_of(final)
    uac.ack(final)
    uac.send(uac.request("INVITE", _v6_offer(harness.rtp_port), "application/sdp"))
    reply = await uac.final_response("INVITE")
    assert status_of(reply) == 488
    assert header(reply, "Warning").startswith("301 ")
    uac.ack(reply)
    failed: dict[str, Any] = await events.wait("call.reoffer_failed", call_id=uac.call_id)
    assert "::1" in failed["reason"]
    # The call goes on as it was: media still flows to the IPv4 address.
    await harness.rtp_recv()
    uac.send(uac.request("BYE"))
    assert status_of(await uac.final_response("BYE")) == 200
    await events.wait("call.ended", call_id=uac.call_id, cause="remote_bye")


async def test_late_offer_answered_in_the_other_family_is_hung_up(
    harness: Harness,
    events: EventLog,
) -> None:
    """We offered IPv4 in the 200 (no SDP in the INVITE); an IPv6 answer in the ACK cannot be
    served by our IPv4 socket: BYE with Reason 488, like any unusable answer."""
    uac = harness.uac
    final = await uac.invite(b"")
    assert status_of(final) == 200
    assert b"c=IN IP4 127.0.0.1" in body_of(final)
    uac.ack(final, _v6_offer(harness.rtp_port))
    bye = await uac.expect_request("BYE")
    assert header(bye, "Reason") == 'SIP;cause=488;text="unusable SDP answer"'
    uac.respond(bye, 200, "OK")
    failed = await events.wait("call.media_failed", call_id=uac.call_id)
    assert "not IPv4" in failed["reason"]
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "bad_answer"
    assert harness.gateway.active_calls == 0


# -- the configuration key -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["192.0.2.1", "localhost", "::1/128", "::g"])
def test_ipv6_address_key_is_validated(tmp_path: Path, value: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[media]\nipv6_address = "{value}"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={})
    assert "media.ipv6_address" in str(excinfo.value)


def test_ipv6_address_key_default_and_env() -> None:
    assert load_config(None, env={}).media.ipv6_address == ""
    media = load_config(None, env={"SRG_MEDIA_IPV6_ADDRESS": "::1"}).media
    assert media.ipv6_address == "::1"
