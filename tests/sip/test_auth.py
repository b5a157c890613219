"""Digest authentication: RFC test vectors, challenge parsing, client retry policy, server."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.auth import (
    AuthError,
    DigestChallenge,
    DigestCredentials,
    DigestResponse,
    DigestServer,
    build_authorization,
    choose_challenge,
    compute_ha1,
    compute_response,
    parse_challenges,
)
from tests.conftest import require_peer

# RFC 7616 section 3.9.1 inputs.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _params(value: str) -> dict[str, str]:
    parsed = DigestResponse.parse(value)
    return {k: v for k, v in vars(parsed).items() if v is not None}


# --- test vectors ----------------------------------------------------------------------------


def test_rfc2617_section_3_5_example() -> None:
    challenge = DigestChallenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = build_authorization(
        challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", cnonce="0a4f113b", nc=1
    )
    params = _params(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["qop"] == "auth"
    assert params["nc"] == "00000001"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    # Tokens stay unquoted (RFC 3261 25.1), strings quoted.
    assert "qop=auth," in value and "nc=00000001" in value and "algorithm=MD5" in value
    assert 'uri="/dir/index.html"' in value


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, expected: str) -> None:
    challenge = DigestChallenge.parse(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    assert challenge.algorithm == algorithm
    assert challenge.qop == ("auth", "auth-int")
    value = build_authorization(
        challenge, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=RFC7616_CNONCE
    )
    params = _params(value)
    assert params["response"] == expected
    assert params["algorithm"] == algorithm
    assert params["cnonce"] == RFC7616_CNONCE


def test_sip_register_example_matches_hand_computation() -> None:
    # A Kamailio-style REGISTER challenge; the expected value is computed step by step from
    # RFC 2617 3.2.2 so a change in argument order in the library would show up.
    challenge = DigestChallenge.parse(
        'Digest realm="127.0.0.1", nonce="Z2l2ZW1lYW5vbmNl", qop="auth"'
    )
    value = build_authorization(
        challenge, "gateway", "secret", "REGISTER", "sip:127.0.0.1:5060", cnonce="abc123", nc=1
    )
    ha1 = _md5("gateway:127.0.0.1:secret")
    ha2 = _md5("REGISTER:sip:127.0.0.1:5060")
    expected = _md5(f"{ha1}:Z2l2ZW1lYW5vbmNl:00000001:abc123:auth:{ha2}")
    assert _params(value)["response"] == expected
    assert _params(value)["uri"] == "sip:127.0.0.1:5060"


def test_rfc2069_compatibility_without_qop() -> None:
    challenge = DigestChallenge.parse('Digest realm="asterisk", nonce="4d8c2a1f"')
    assert challenge.qop == ()
    value = build_authorization(challenge, "100", "pw", "INVITE", "sip:200@10.0.0.1")
    ha1 = _md5("100:asterisk:pw")
    ha2 = _md5("INVITE:sip:200@10.0.0.1")
    params = _params(value)
    assert params["response"] == _md5(f"{ha1}:4d8c2a1f:{ha2}")
    assert "cnonce" not in params and "nc" not in params and "qop" not in params


def test_md5_sess_and_auth_int() -> None:
    challenge = DigestChallenge.parse(
        'Digest realm="r", nonce="n", qop="auth-int", algorithm=MD5-sess'
    )
    body = b"v=0\r\n"
    value = build_authorization(challenge, "u", "p", "INVITE", "sip:x", body=body, cnonce="c", nc=2)
    ha1 = _md5(f"{_md5('u:r:p')}:n:c")
    ha2 = _md5(f"INVITE:sip:x:{hashlib.md5(body).hexdigest()}")
    params = _params(value)
    assert params["qop"] == "auth-int"
    assert params["nc"] == "00000002"
    assert params["response"] == _md5(f"{ha1}:n:00000002:c:auth-int:{ha2}")


def test_sha256_sess_differs_from_sha256() -> None:
    common = {"ha1": compute_ha1("SHA-256", "u", "r", "p"), "nonce": "n", "method": "M"}
    plain = compute_response(
        algorithm="SHA-256", uri="sip:x", qop="auth", cnonce="c", nc="00000001", **common
    )
    sess = compute_response(
        algorithm="SHA-256-sess", uri="sip:x", qop="auth", cnonce="c", nc="00000001", **common
    )
    assert len(plain) == 64 and len(sess) == 64 and plain != sess


# --- challenge parsing -------------------------------------------------------------------------


def test_parse_is_tolerant_of_case_spacing_and_escapes() -> None:
    challenge = DigestChallenge.parse(
        'digest   REALM = "a \\"quoted\\" realm" ,nonce=abc/def==,  Algorithm=sha-256 ,'
        ' QOP="Auth, auth-int",stale=TRUE, opaque="", domain="sip:a sip:b"'
    )
    assert challenge.realm == 'a "quoted" realm'
    assert challenge.nonce == "abc/def=="
    assert challenge.algorithm == "SHA-256"
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.stale is True
    assert challenge.opaque == ""
    assert challenge.domain == ("sip:a", "sip:b")


def test_stale_false_and_absent_algorithm_means_md5() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", stale=false')
    assert challenge.stale is False
    assert challenge.algorithm == "MD5"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "SHA-512-256"),
        ('Digest realm="r", nonce="n", algorithm=AKAv1-MD5', "AKAv1-MD5"),
        ('Digest nonce="n"', "realm"),
        ('Digest realm="r"', "nonce"),
        ('Basic realm="r"', "Basic"),
        ('Digest nonce="n", realm="r', "unterminated"),
        ('Digest realm="r, nonce="n"', "unexpected character"),
        ('realm="r", nonce="n"', "scheme"),
        ("", "empty"),
        ('Digest realm="r", realm="s", nonce="n"', "duplicate"),
    ],
)
def test_parse_errors_name_the_problem(header: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        DigestChallenge.parse(header)


def test_qop_we_cannot_answer_is_reported() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth-conf"')
    with pytest.raises(AuthError, match="auth-conf"):
        build_authorization(challenge, "u", "p", "REGISTER", "sip:r")


def test_several_challenges_in_one_header_value() -> None:
    challenges = parse_challenges(
        'Basic realm="x", Digest realm="r", nonce="1", algorithm=MD5, '
        'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"'
    )
    assert [c.nonce for c in challenges] == ["1", "2"]


def test_choose_challenge_prefers_sha256_and_skips_unusable() -> None:
    headers = [
        'Digest realm="r", nonce="md5", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="weird", algorithm=Foo',
        'Digest realm="r", nonce="sha", algorithm=SHA-256, qop="auth"',
        "Basic realm=x",
    ]
    chosen = choose_challenge(headers)
    assert chosen is not None and chosen.nonce == "sha"
    assert choose_challenge(headers[:2]).nonce == "md5"  # type: ignore[union-attr]
    assert choose_challenge(['Digest realm="r", nonce="n", algorithm=Foo', "junk ="]) is None


def test_challenge_to_header_round_trips() -> None:
    original = DigestChallenge(
        realm='re"alm', nonce="n/+=", algorithm="SHA-256", qop=("auth",), opaque="o", stale=True
    )
    parsed = DigestChallenge.parse(original.to_header())
    assert (
        parsed.realm,
        parsed.nonce,
        parsed.algorithm,
        parsed.qop,
        parsed.opaque,
        parsed.stale,
    ) == (
        're"alm',
        "n/+=",
        "SHA-256",
        ("auth",),
        "o",
        True,
    )


def test_username_with_quote_is_escaped() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth"')
    value = build_authorization(challenge, 'we"ird\\user', "p", "REGISTER", "sip:r")
    assert DigestResponse.parse(value).username == 'we"ird\\user'


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from('Digest realm="nonce,=\\ qop algorithm MD5 a\t'), max_size=80)
)
def test_challenge_parser_fuzz_only_raises_auth_error(text: str) -> None:
    try:
        challenges = parse_challenges(text)
    except AuthError:
        return
    for challenge in challenges:
        assert challenge.nonce
        assert DigestChallenge.parse(challenge.to_header()).nonce == challenge.nonce


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_challenge_parser_fuzz_arbitrary_text(text: str) -> None:
    try:
        parse_challenges(text)
        DigestResponse.parse(text)
    except AuthError:
        pass


_field = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(realm=_field, nonce=_field, opaque=_field)
def test_challenge_round_trip_property(realm: str, nonce: str, opaque: str) -> None:
    challenge = DigestChallenge(realm=realm, nonce=nonce, opaque=opaque, qop=("auth",))
    parsed = DigestChallenge.parse(challenge.to_header())
    assert (parsed.realm, parsed.nonce, parsed.opaque) == (realm, nonce, opaque)


# --- client retry policy -----------------------------------------------------------------------


def _challenge(nonce: str, stale: bool = False, realm: str = "pbx") -> DigestChallenge:
    return DigestChallenge(realm=realm, nonce=nonce, qop=("auth",), stale=stale)


def test_credentials_give_up_on_same_nonce_rechallenge() -> None:
    creds = DigestCredentials("gateway", "wrong")
    first = creds.authorize(_challenge("n1"), "REGISTER", "sip:pbx")
    assert first is not None and "nc=00000001" in first
    assert creds.authorize(_challenge("n1"), "REGISTER", "sip:pbx") is None
    assert creds.failure_reason is not None and "rejected" in creds.failure_reason


def test_credentials_retry_on_stale_with_new_nonce_and_reset_nc() -> None:
    creds = DigestCredentials("gateway", "secret")
    assert creds.authorize(_challenge("n1"), "REGISTER", "sip:pbx") is not None
    assert "nc=00000002" in creds.preemptive("REGISTER", "sip:pbx")[0]
    retry = creds.authorize(_challenge("n2", stale=True), "REGISTER", "sip:pbx")
    assert retry is not None
    params = _params(retry)
    assert params["nonce"] == "n2" and params["nc"] == "00000001"


def test_credentials_fresh_nonce_rechallenges_are_bounded() -> None:
    # Asterisk/Kamailio send a new nonce with every 401, so a wrong password never repeats one.
    creds = DigestCredentials("gateway", "wrong", max_rejections=1)
    assert creds.authorize(_challenge("a"), "REGISTER", "sip:pbx") is not None
    assert creds.authorize(_challenge("b"), "REGISTER", "sip:pbx") is not None
    assert creds.authorize(_challenge("c"), "REGISTER", "sip:pbx") is None
    assert "2 times" in (creds.failure_reason or "")


def test_stale_loops_are_bounded() -> None:
    creds = DigestCredentials("gateway", "secret", max_stale=2)
    assert creds.authorize(_challenge("a"), "REGISTER", "sip:pbx") is not None
    assert creds.authorize(_challenge("b", stale=True), "REGISTER", "sip:pbx") is not None
    assert creds.authorize(_challenge("c", stale=True), "REGISTER", "sip:pbx") is not None
    assert creds.authorize(_challenge("d", stale=True), "REGISTER", "sip:pbx") is None


def test_accepted_resets_so_a_refresh_can_be_challenged_again() -> None:
    creds = DigestCredentials("gateway", "secret")
    assert creds.authorize(_challenge("a"), "REGISTER", "sip:pbx") is not None
    creds.accepted()
    # Registration refresh 5 minutes later: challenged with the same nonce, not a rejection.
    again = creds.authorize(_challenge("a"), "REGISTER", "sip:pbx")
    assert again is not None and "nc=00000002" in again


def test_proxy_and_registrar_realms_are_tracked_separately() -> None:
    creds = DigestCredentials("gateway", "secret")
    assert creds.authorize(_challenge("p1", realm="proxy"), "INVITE", "sip:b") is not None
    assert creds.authorize(_challenge("r1", realm="pbx"), "INVITE", "sip:b") is not None
    assert len(creds.preemptive("INVITE", "sip:b")) == 2


def test_unsupported_qop_is_a_give_up_not_a_crash() -> None:
    creds = DigestCredentials("gateway", "secret")
    challenge = DigestChallenge(realm="r", nonce="n", qop=("auth-conf",))
    assert creds.authorize(challenge, "REGISTER", "sip:r") is None
    assert "auth-conf" in (creds.failure_reason or "")


# --- server ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_client_and_server_agree(algorithm: str) -> None:
    server = DigestServer("gateway", "alice", "pw", algorithm=algorithm, secret=b"k" * 32)
    challenge = DigestChallenge.parse(server.challenge(now=1000.0))
    assert challenge.algorithm == algorithm and challenge.qop == ("auth",)
    creds = DigestCredentials("alice", "pw")
    value = creds.authorize(challenge, "INVITE", "sip:bot@127.0.0.1")
    assert value is not None
    result = server.verify("INVITE", value, now=1010.0)
    assert result.ok and result.username == "alice", result.reason


def test_server_rejects_wrong_password_user_method_and_realm() -> None:
    server = DigestServer("gateway", "alice", "pw", secret=b"k" * 32)
    challenge = DigestChallenge.parse(server.challenge(now=0.0))
    good = build_authorization(challenge, "alice", "pw", "INVITE", "sip:bot@h")
    assert server.verify("INVITE", good, now=1.0)
    assert not server.verify("BYE", good, now=1.0)  # the method is part of A2
    bad_pw = build_authorization(challenge, "alice", "nope", "INVITE", "sip:bot@h")
    result = server.verify("INVITE", bad_pw, now=1.0)
    assert not result.ok and not result.stale and "password" in result.reason
    bad_user = build_authorization(challenge, "mallory", "pw", "INVITE", "sip:bot@h")
    assert not server.verify("INVITE", bad_user, now=1.0)
    other_realm = DigestChallenge(realm="other", nonce=challenge.nonce, qop=("auth",))
    result = server.verify(
        "INVITE", build_authorization(other_realm, "alice", "pw", "INVITE", "sip:h"), now=1.0
    )
    assert "realm" in result.reason


def test_server_expired_nonce_is_stale_only_when_otherwise_valid() -> None:
    server = DigestServer("gateway", "alice", "pw", nonce_ttl=300, secret=b"k" * 32)
    challenge = DigestChallenge.parse(server.challenge(now=0.0))
    good = build_authorization(challenge, "alice", "pw", "INVITE", "sip:bot@h")
    result = server.verify("INVITE", good, now=301.0)
    assert not result.ok and result.stale and "expired" in result.reason
    bad = build_authorization(challenge, "alice", "nope", "INVITE", "sip:bot@h")
    assert not server.verify("INVITE", bad, now=301.0).stale
    # The client, told stale=true, retries with the fresh nonce and gets in.
    creds = DigestCredentials("alice", "pw")
    assert creds.authorize(challenge, "INVITE", "sip:bot@h") is not None
    fresh = DigestChallenge.parse(server.challenge(now=301.0, stale=True))
    retry = creds.authorize(fresh, "INVITE", "sip:bot@h")
    assert retry is not None and server.verify("INVITE", retry, now=302.0)


def test_server_rejects_nonces_it_did_not_issue() -> None:
    server = DigestServer("gateway", "alice", "pw", secret=b"k" * 32)
    stranger = DigestServer("gateway", "alice", "pw", secret=b"x" * 32)
    forged = DigestChallenge.parse(stranger.challenge(now=0.0))
    value = build_authorization(forged, "alice", "pw", "INVITE", "sip:h")
    result = server.verify("INVITE", value, now=1.0)
    assert not result.ok and "not issued" in result.reason
    made_up = DigestChallenge(realm="gateway", nonce="not-base64!", qop=("auth",))
    assert (
        "not issued"
        in server.verify(
            "INVITE", build_authorization(made_up, "alice", "pw", "INVITE", "sip:h"), now=1.0
        ).reason
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        'Digest username="alice"',
        'Digest username="a", realm="gateway", nonce="n", uri="u", response="r", qop=auth',
    ],
)
def test_server_malformed_authorization_is_a_reason_not_an_exception(header: str) -> None:
    server = DigestServer("gateway", "alice", "pw")
    result = server.verify("INVITE", header, now=0.0)
    assert not result.ok and result.reason


def test_server_accepts_rfc2069_client_and_stored_ha1() -> None:
    ha1 = compute_ha1("MD5", "alice", "gateway", "pw")
    server = DigestServer("gateway", "alice", ha1=ha1, secret=b"k" * 32)
    challenge = DigestChallenge.parse(server.challenge(now=0.0))
    legacy = DigestChallenge(realm=challenge.realm, nonce=challenge.nonce)  # no qop
    assert server.verify(
        "INVITE", build_authorization(legacy, "alice", "pw", "INVITE", "sip:h"), now=1.0
    )


def test_server_needs_exactly_one_secret_form() -> None:
    with pytest.raises(ValueError):
        DigestServer("r", "u")
    with pytest.raises(ValueError):
        DigestServer("r", "u", "pw", ha1="00")
    with pytest.raises(AuthError, match="SHA-1"):
        DigestServer("r", "u", "pw", algorithm="SHA-1")


# --- interop: a real SIPp client answers our server's challenge -------------------------------

_SIPP_REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register against DigestServer">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[call_number]x
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Expires: 30
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]>;tag=[call_number]x
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
[authentication username=alice password={password}]
Expires: 30
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def _sipp_private_ports(port_block: int) -> list[str]:
    # SIPp otherwise binds media 6000/6002 and control 8888 on every run, which collides with
    # other tests and helpers on a shared machine.
    return ["-mi", "127.0.0.1", "-mp", str(port_block + 10), "-cp", str(port_block + 20)]


class _Registrar(asyncio.DatagramProtocol):
    """Just enough of a registrar to challenge with DigestServer and report the verdicts."""

    def __init__(self, server: DigestServer) -> None:
        self.server = server
        self.verdicts: list[tuple[str, bool, str]] = []  # (qop seen, ok, reason)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport is not a DatagramTransport subclass at runtime (CPython 3.11).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
        if not head[0].startswith("REGISTER "):
            return
        headers = [line.split(":", 1) for line in head[1:] if ":" in line]
        copied = [
            f"{name}:{value}"
            for name, value in headers
            if name.strip().lower() in ("via", "from", "call-id", "cseq")
        ]
        to = next(v.strip() for n, v in headers if n.strip().lower() == "to")
        authorization = next(
            (v.strip() for n, v in headers if n.strip().lower() == "authorization"), None
        )
        extra: list[str] = []
        if authorization is None:
            status = "401 Unauthorized"
            extra.append(f"WWW-Authenticate: {self.server.challenge()}")
        else:
            result = self.server.verify("REGISTER", authorization)
            qop = DigestResponse.parse(authorization).qop or ""
            self.verdicts.append((qop, result.ok, result.reason))
            status = "200 OK" if result.ok else "403 Forbidden"
        lines = [f"SIP/2.0 {status}", *copied, f"To: {to};tag=reg1", *extra, "Content-Length: 0"]
        assert self.transport is not None
        self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), addr)


@pytest.mark.interop
@pytest.mark.parametrize(("password", "expect_ok"), [("pw", True), ("wrong", False)])
async def test_sipp_answers_our_challenge(
    tmp_path: Path, port_block: int, password: str, expect_ok: bool
) -> None:
    require_peer("sipp")
    loop = asyncio.get_running_loop()
    server = DigestServer("gateway", "alice", "pw")
    transport, registrar = await loop.create_datagram_endpoint(
        lambda: _Registrar(server), local_addr=("127.0.0.1", port_block)
    )
    scenario = tmp_path / "register.xml"
    scenario.write_text(_SIPP_REGISTER.format(password=password))
    proc = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{port_block}", "-sf", str(scenario), "-i", "127.0.0.1",
        "-p", str(port_block + 1), "-m", "1", "-nostdin", *_sipp_private_ports(port_block),
        "-timeout", "10s", "-timeout_error", "-trace_err",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        transport.close()
    assert registrar.verdicts, "SIPp never sent an authorized REGISTER"
    qop, ok, reason = registrar.verdicts[0]
    assert qop == "auth"
    assert ok is expect_ok, reason
    assert (rc == 0) is expect_ok


# --- interop: SIPp as registrar checks our client's Authorization (SIPp's own digest code) ----

_SIPP_REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar challenging our client">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="sipp.test", nonce="4a5b6c7d8e9f0011", qop="auth", algorithm=MD5, opaque="op1"
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action><verifyauth assign_to="authvalid" username="alice" password="pw"/></action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="end"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="good"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"""


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.responses: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.responses.put_nowait(data.decode("utf-8", "replace"))


async def _wait_until_bound(port: int) -> None:
    """Wait (bounded) until SIPp holds its UDP port, so our first request is not lost."""
    for _ in range(100):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return
        finally:
            probe.close()
        await asyncio.sleep(0.05)
    raise AssertionError(f"SIPp did not bind UDP port {port}")


async def _exchange(
    transport: asyncio.DatagramTransport,
    inbox: _Collector,
    request: bytes,
    dest: tuple[str, int],
    cseq: int,
) -> str:
    # Retransmit like RFC 3261 Timer E (bounded, SIPp re-answers retransmissions) and skip
    # responses to an earlier CSeq, so a slow machine does not make this flaky.
    for _ in range(10):
        transport.sendto(request, dest)
        try:
            while True:
                response = await asyncio.wait_for(inbox.responses.get(), timeout=0.5)
                if f"\r\nCSeq: {cseq} " in response:
                    return response
        except TimeoutError:
            continue
    raise AssertionError("no response from SIPp")


@pytest.mark.interop
@pytest.mark.parametrize(("password", "expected_status"), [("pw", "200"), ("wrong", "403")])
async def test_sipp_registrar_verifies_our_authorization(
    tmp_path: Path, port_block: int, password: str, expected_status: str
) -> None:
    require_peer("sipp")
    scenario = tmp_path / "registrar.xml"
    scenario.write_text(_SIPP_REGISTRAR)
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port_block),
        "-m", "1", "-nostdin", *_sipp_private_ports(port_block), "-timeout", "10s", "-timeout_error",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(
        _Collector, local_addr=("127.0.0.1", port_block + 1)
    )
    dest = ("127.0.0.1", port_block)
    uri = f"sip:127.0.0.1:{port_block}"

    def register(cseq: int, extra: str = "") -> bytes:
        return (
            f"REGISTER {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port_block + 1};branch=z9hG4bKh2t{cseq}\r\n"
            "From: <sip:alice@127.0.0.1>;tag=h2\r\nTo: <sip:alice@127.0.0.1>\r\n"
            f"Call-ID: h2-{port_block}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:alice@127.0.0.1:{port_block + 1}>\r\nMax-Forwards: 70\r\n"
            f"{extra}Content-Length: 0\r\n\r\n"
        ).encode()

    try:
        await _wait_until_bound(port_block)
        first = await _exchange(transport, inbox, register(1), dest, 1)
        assert first.startswith("SIP/2.0 401")
        www = [
            line.split(":", 1)[1].strip()
            for line in first.split("\r\n")
            if line.lower().startswith("www-authenticate:")
        ]
        challenge = choose_challenge(www)
        assert challenge is not None and challenge.opaque == "op1"
        creds = DigestCredentials("alice", password)
        value = creds.authorize(challenge, "REGISTER", uri)
        assert value is not None
        second = await _exchange(
            transport, inbox, register(2, f"Authorization: {value}\r\n"), dest, 2
        )
        assert second.split(" ", 2)[1] == expected_status
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        transport.close()
