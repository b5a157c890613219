"""SIP URI and name-addr parsing (RFC 3261 19.1, 20.10, 25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.uri import NameAddr, Params, SipUri, UriError, parse_name_addr, parse_uri


def test_full_sip_uri_fields() -> None:
    uri = parse_uri("sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr?subject=hi&x=1")
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "Atlanta.example.com"
    assert uri.port == 5061
    assert uri.params.get("TRANSPORT") == "TCP"
    assert uri.transport == "tcp"
    assert "lr" in uri.params and uri.params["lr"] is None
    assert uri.headers.get("subject") == "hi"
    assert str(uri) == "sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr?subject=hi&x=1"


def test_host_only_and_scheme_case() -> None:
    uri = parse_uri("SIP:10.0.0.1")
    assert uri.scheme == "sip" and uri.user is None and uri.host == "10.0.0.1" and uri.port is None
    assert str(uri) == "sip:10.0.0.1"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:alice@[2001:db8::1]:5070", "[2001:db8::1]", 5070),
        ("sip:[::1]", "[::1]", None),
        ("sip:bob@[2001:db8::10:5]", "[2001:db8::10:5]", None),
        ("sip:[::ffff:192.0.2.1]:5060;transport=udp", "[::ffff:192.0.2.1]", 5060),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert (uri.host, uri.port) == (host, port)
    assert uri.host_no_brackets == host[1:-1]
    assert parse_uri(str(uri)) == uri


def test_escaped_user_is_decoded_and_reescaped() -> None:
    uri = parse_uri("sip:%61lice%20smith%40home@example.com")
    assert uri.user == "alice smith@home"
    text = str(uri)
    assert text == "sip:alice%20smith%40home@example.com"
    assert parse_uri(text) == uri
    # Escaping of the same user in two spellings compares equal (19.1.4).
    assert parse_uri("sip:%61lice@h") == parse_uri("sip:alice@h")


def test_user_with_phone_chars_and_semicolon() -> None:
    uri = parse_uri("sip:+1-212-555-1212;isub=1234@gw.example.com;user=phone")
    assert uri.user == "+1-212-555-1212;isub=1234"
    assert uri.params.get("user") == "phone"
    assert parse_uri(str(uri)) == uri


def test_tel_uri_tolerated() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert uri.scheme == "tel" and uri.user == "+1-201-555-0123" and uri.host == ""
    assert uri.params.get("phone-context") == "example.com"
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "missing scheme"),
        ("alice@example.com", "missing scheme"),
        ("http://example.com", "unsupported URI scheme"),
        ("sip:", "empty URI"),
        ("sip:@example.com", "empty user"),
        ("sip:alice@", "empty URI host"),
        ("sip:alice@example.com:", "empty port"),
        ("sip:alice@example.com:99999", "out of range"),
        ("sip:alice@example.com:50a", "invalid port"),
        ("sip:alice@[2001:db8::1", "unterminated IPv6"),
        ("sip:alice@[zz::1]", "invalid IPv6"),
        ("sip:alice@[::1]x", "junk after IPv6"),
        ("sip:al ice@example.com", "invalid character"),
        ("sip:alice@exa_mple!.com", "invalid character"),
        ("sip:%zzalice@example.com", "bad %-escape"),
        ("sip:alice@example.com;;lr", "empty URI parameter name"),
        ("sip:alice@example.com?=x", "empty header name"),
    ],
)
def test_bad_uris_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(UriError) as info:
        parse_uri(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_params_case_insensitive_ordered() -> None:
    p = Params([("Transport", "udp"), ("lr", None)])
    assert p.get("transport") == "udp" and "LR" in p
    p["TRANSPORT"] = "tcp"
    assert p.items() == [("Transport", "tcp"), ("lr", None)]
    del p["Lr"]
    assert list(p) == ["Transport"]
    assert p == Params({"transport": "tcp"})
    assert str(p) == ";Transport=tcp"
    with pytest.raises(KeyError):
        _ = p["missing"]


def test_name_addr_with_quoted_display_escapes_and_commas() -> None:
    addr = parse_name_addr(
        '"Smith, \\"Bob\\" \\\\ Jr" <sip:bob@biloxi.example.com;lr>;tag=a73kszlfl'
    )
    assert addr.display_name == 'Smith, "Bob" \\ Jr'
    assert addr.uri.params.get("lr") is None and "lr" in addr.uri.params
    assert addr.tag == "a73kszlfl"
    assert parse_name_addr(str(addr)) == addr


def test_name_addr_token_display_name() -> None:
    addr = parse_name_addr("Bob  Smith <sip:bob@h>;expires=60;q=0.5")
    assert addr.display_name == "Bob Smith"
    assert addr.params.get("expires") == "60" and addr.params.get("q") == "0.5"


def test_name_addr_without_display_name() -> None:
    addr = parse_name_addr("<sip:bob@h:5062;transport=tcp>")
    assert addr.display_name is None and addr.uri.port == 5062 and not addr.params


def test_addr_spec_params_belong_to_header() -> None:
    addr = parse_name_addr("sip:bob@h;tag=1;expires=30")
    assert addr.uri == parse_uri("sip:bob@h")
    assert addr.tag == "1" and addr.params.get("expires") == "30"
    # Serialised as name-addr so the tag stays a header parameter.
    assert str(addr) == "<sip:bob@h>;tag=1;expires=30"


def test_quoted_param_value_with_separators() -> None:
    addr = parse_name_addr(
        '<sip:a@h>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1'
    )
    assert addr.params.get("+sip.instance") == '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    assert addr.params.get("reg-id") == "1"
    assert parse_name_addr(str(addr)) == addr


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@h>',
        '"Bob" sip:a@h',
        "<sip:a@h",
        "Bob <sip:a@h> junk",
        "<1http:x>",
        "<ht%tp:x>",
        "<sip:a@h>;=1",
    ],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(UriError):
        parse_name_addr(text)


def test_unknown_scheme_only_in_name_addr() -> None:
    # RFC 4475 3.1.1.8: an unknown scheme in From/To must not make the request fail.
    addr = parse_name_addr("Service <urn:service:sos>;tag=u1")
    assert addr.uri.scheme == "urn" and addr.uri.user == "service:sos" and addr.tag == "u1"
    assert str(addr) == '"Service" <urn:service:sos>;tag=u1'
    assert parse_name_addr("soap.beep://192.0.2.1:3002;tag=b").uri.user == "//192.0.2.1:3002"
    with pytest.raises(UriError, match="unsupported URI scheme"):
        parse_uri("urn:service:sos")
    assert str(parse_uri("urn:service:sos", any_scheme=True)) == "urn:service:sos"


def test_display_name_cannot_inject_lines() -> None:
    addr = NameAddr(parse_uri("sip:a@h"), "Evil\r\nVia: x")
    assert "\r" not in str(addr) and "\n" not in str(addr)


def test_name_addr_round_trip_constructed() -> None:
    addr = NameAddr(SipUri(user="bob", host="[2001:db8::5]", port=5080), 'Bob "the" builder')
    addr.params["tag"] = "xyz"
    text = str(addr)
    assert text == '"Bob \\"the\\" builder" <sip:bob@[2001:db8::5]:5080>;tag=xyz'
    assert parse_name_addr(text) == addr


# ---- property tests -------------------------------------------------------------------------

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_hosts = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
        lambda g: "[" + ":".join(f"{x:x}" for x in g) + "]"
    ),
)
_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_.!~*'", min_size=1, max_size=8)
_params = st.lists(
    st.tuples(_token, st.one_of(st.none(), _token)), max_size=4, unique_by=lambda t: t[0].lower()
)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    user = draw(st.one_of(st.none(), st.text(min_size=1, max_size=12)))
    password = draw(st.one_of(st.none(), st.text(min_size=1, max_size=6))) if user else None
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=password,
        host=draw(_hosts),
        port=draw(st.one_of(st.none(), st.integers(0, 65535))),
        params=Params(draw(_params)),
        headers=Params([(k, v or "") for k, v in draw(_params)]),
    )


@settings(max_examples=300, deadline=None)
@given(sip_uris())
def test_uri_round_trip_property(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


@settings(max_examples=200, deadline=None)
@given(
    sip_uris(),
    st.one_of(st.none(), st.text(st.characters(blacklist_characters="\r\n"), max_size=15)),
    _params,
)
def test_name_addr_round_trip_property(uri: SipUri, display: str | None, params: list) -> None:
    addr = NameAddr(uri, display, Params(params))
    parsed = parse_name_addr(str(addr))
    # Token display names are whitespace-normalised only when unquoted; we always quote.
    assert parsed == addr


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_uri_only_raises_uri_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except UriError:
        return
    assert parse_uri(str(uri)) == uri
