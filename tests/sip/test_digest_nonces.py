"""DigestServer nonce tracking (sip/auth.py) with time as an argument: replay refused, nc must
grow, qop-less nonces are single-use, the table is bounded in size and lifetime, and eviction
turns older nonces stale instead of re-opening a replay."""

from __future__ import annotations

from sip.auth import (
    REPLAYED,
    DigestChallenge,
    DigestServer,
    build_authorization,
    compute_ha1,
    compute_response,
)

URI = "sip:bot@gw"


def _server(**kwargs: object) -> DigestServer:
    return DigestServer("gw", "alice", "pw", secret=b"k" * 32, **kwargs)  # type: ignore[arg-type]


def _auth(challenge: DigestChallenge, nc: int = 1, cnonce: str = "c1") -> str:
    return build_authorization(challenge, "alice", "pw", "INVITE", URI, cnonce=cnonce, nc=nc)


def test_replayed_authorization_is_refused_not_stale() -> None:
    server = _server()
    challenge = DigestChallenge.parse(server.challenge(now=0.0))
    value = _auth(challenge)
    assert server.verify("INVITE", value, now=1.0).ok
    replay = server.verify("INVITE", value, now=2.0)
    assert not replay.ok and not replay.stale and replay.reason == REPLAYED
    assert server.replays == 1


def test_nonce_count_must_grow() -> None:
    server = _server()
    challenge = DigestChallenge.parse(server.challenge(now=0.0))
    assert server.verify("INVITE", _auth(challenge, nc=1), now=1.0).ok
    assert server.verify("INVITE", _auth(challenge, nc=2, cnonce="c2"), now=2.0).ok
    assert server.verify("INVITE", _auth(challenge, nc=5, cnonce="c3"), now=3.0).ok
    assert not server.verify("INVITE", _auth(challenge, nc=4, cnonce="c4"), now=4.0).ok
    assert not server.verify("INVITE", _auth(challenge, nc=5, cnonce="c5"), now=4.0).ok
    assert server.verify("INVITE", _auth(challenge, nc=6, cnonce="c6"), now=5.0).ok


def test_malformed_nonce_count_is_refused() -> None:
    server = _server()
    challenge = DigestChallenge.parse(server.challenge(now=0.0))
    # A response computed over nc "1" (not 8 hex digits): right hash, malformed count.
    ha1 = compute_ha1("MD5", "alice", "gw", "pw")
    response = compute_response(
        algorithm="MD5", ha1=ha1, nonce=challenge.nonce, method="INVITE", uri=URI,
        qop="auth", cnonce="c1", nc="1",
    )  # fmt: skip
    value = (
        f'Digest username="alice", realm="gw", nonce="{challenge.nonce}", uri="{URI}", '
        f'response="{response}", algorithm=MD5, cnonce="c1", qop=auth, nc=1'
    )
    result = server.verify("INVITE", value, now=1.0)
    assert not result.ok and "nonce count" in result.reason


def test_qopless_nonce_is_single_use() -> None:
    server = _server()
    issued = DigestChallenge.parse(server.challenge(now=0.0))
    rfc2069 = DigestChallenge(realm="gw", nonce=issued.nonce)  # no qop: no nc to grow
    value = build_authorization(rfc2069, "alice", "pw", "INVITE", URI)
    assert server.verify("INVITE", value, now=1.0).ok
    assert server.verify("INVITE", value, now=1.5).reason == REPLAYED


def test_two_challenges_in_one_millisecond_get_different_nonces() -> None:
    server = _server()
    a = DigestChallenge.parse(server.challenge(now=10.0))
    b = DigestChallenge.parse(server.challenge(now=10.0))
    assert a.nonce != b.nonce
    assert server.verify("INVITE", _auth(a), now=10.5).ok
    assert server.verify("INVITE", _auth(b), now=10.5).ok  # not a replay of a


def test_tracked_nonces_expire_with_their_lifetime() -> None:
    server = _server(nonce_ttl=30.0)
    for i in range(10):
        challenge = DigestChallenge.parse(server.challenge(now=float(i)))
        assert server.verify("INVITE", _auth(challenge), now=float(i)).ok
    assert server.tracked_nonces == 10
    late = DigestChallenge.parse(server.challenge(now=100.0))
    assert server.verify("INVITE", _auth(late), now=100.0).ok
    assert server.tracked_nonces == 1


def test_full_table_evicts_and_older_nonces_turn_stale() -> None:
    server = _server(max_tracked_nonces=4)
    challenges = [DigestChallenge.parse(server.challenge(now=float(i))) for i in range(6)]
    for i, challenge in enumerate(challenges[:5]):
        assert server.verify("INVITE", _auth(challenge), now=10.0 + i).ok
    assert server.tracked_nonces == 4
    # The evicted nonce (issued at t=0) cannot be replayed: it is stale, so an honest client
    # fetches a fresh nonce and an attacker's copy is useless.
    evicted = server.verify("INVITE", _auth(challenges[0], nc=2, cnonce="x"), now=20.0)
    assert not evicted.ok and evicted.stale
    assert server.verify("INVITE", _auth(challenges[0]), now=20.0).stale
    # A nonce issued after the evicted one and never used still works.
    assert server.verify("INVITE", _auth(challenges[5]), now=20.0).ok
    # The tracked ones still refuse replays.
    assert server.verify("INVITE", _auth(challenges[4]), now=20.0).reason == REPLAYED
