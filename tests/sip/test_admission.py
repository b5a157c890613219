"""sip/admission.py with a fake clock: the token bucket, the bounded per-source table, the
admission rule and the refusal log budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.admission import (
    ADMIT,
    ALLOWLIST,
    CHALLENGE,
    LOCAL,
    OPEN,
    REFUSE,
    REGISTRAR,
    Admission,
    AdmissionPolicy,
    TokenBucket,
    local_addresses,
    parse_address,
)


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(10.4)  # 0.8 token
    assert bucket.take(10.5)  # 1.0 token
    assert not bucket.take(10.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_token_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.take(5.0)
    assert not bucket.take(4.0)
    assert not bucket.take(5.5)
    assert bucket.take(6.0)


def test_rate_limit_is_per_source_and_counted() -> None:
    admission = Admission(AdmissionPolicy(invite_rate=1.0, invite_burst=2))
    now = 0.0
    assert [admission.take_invite_token("192.0.2.1", now) for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert admission.take_invite_token("192.0.2.2", now)
    assert admission.counters.rate_limited == 1
    # ::ffff:192.0.2.1 is the same source as 192.0.2.1.
    assert not admission.take_invite_token("::ffff:192.0.2.1", now)


def test_per_source_table_is_a_bounded_lru() -> None:
    admission = Admission(AdmissionPolicy(invite_rate=0.001, invite_burst=1, max_sources=16))
    assert admission.take_invite_token("198.51.100.1", 0.0)
    for i in range(1000):  # a spoofed flood of distinct sources
        admission.take_invite_token(f"203.0.113.{i % 250}", 0.0)
        admission.take_invite_token(f"2001:db8::{i:x}", 0.0)
    assert admission.tracked_sources == 16
    assert admission.counters.sources_evicted == 2000 + 1 - 16
    # The first source was evicted: it starts again with a full bucket (leniency, not a hole).
    assert admission.take_invite_token("198.51.100.1", 0.0)


def test_recently_seen_sources_survive_eviction() -> None:
    admission = Admission(AdmissionPolicy(invite_rate=0.001, invite_burst=1, max_sources=16))
    assert admission.take_invite_token("198.51.100.1", 0.0)
    for i in range(100):
        admission.take_invite_token(f"203.0.113.{i}", 0.0)
        if i % 10 == 0:  # keeps coming back: stays at the LRU's young end
            assert not admission.take_invite_token("198.51.100.1", 0.0)
    assert not admission.take_invite_token("198.51.100.1", 0.0)


def test_configure_takes_new_rates_and_shrinks_the_table() -> None:
    admission = Admission(AdmissionPolicy(invite_rate=0.001, invite_burst=1, max_sources=64))
    for i in range(40):
        admission.take_invite_token(f"203.0.113.{i}", 0.0)
    assert not admission.take_invite_token("203.0.113.39", 0.0)
    admission.configure(AdmissionPolicy(invite_rate=100.0, invite_burst=5, max_sources=16))
    assert admission.tracked_sources == 16
    assert admission.take_invite_token("203.0.113.39", 0.1)  # refilled at the new rate


def test_closed_by_default_only_local_is_trusted() -> None:
    admission = Admission()
    assert admission.decide("127.0.0.1", digest=False) == (ADMIT, LOCAL)
    assert admission.decide("127.9.9.9", digest=False) == (ADMIT, LOCAL)
    assert admission.decide("::1", digest=False) == (ADMIT, LOCAL)
    assert admission.decide("[::1]", digest=False) == (ADMIT, LOCAL)
    assert admission.decide("192.0.2.7", digest=False) == (REFUSE, None)
    assert admission.decide("2001:db8::7", digest=False) == (REFUSE, None)
    assert admission.decide("not-an-ip", digest=False) == (REFUSE, None)
    assert not admission.is_open


def test_allowlist_registrars_and_host_addresses() -> None:
    admission = Admission(AdmissionPolicy(allow_networks=("10.0.0.0/8",)))
    admission.set_registrars(["192.0.2.10", "[2001:db8::10]"])
    admission.set_local_addresses(["198.51.100.5", "127.0.0.1", "junk"])
    assert admission.decide("10.1.2.3", digest=False) == (ADMIT, ALLOWLIST)
    assert admission.decide("::ffff:10.1.2.3", digest=False) == (ADMIT, ALLOWLIST)
    assert admission.decide("192.0.2.10", digest=False) == (ADMIT, REGISTRAR)
    assert admission.decide("2001:db8::10", digest=False) == (ADMIT, REGISTRAR)
    assert admission.decide("198.51.100.5", digest=False) == (ADMIT, LOCAL)
    assert admission.decide("192.0.2.11", digest=False) == (REFUSE, None)


@pytest.mark.parametrize(
    ("networks", "family_open"),
    [(("0.0.0.0/0",), 4), (("::/0",), 6)],
)
def test_a_slash_zero_opens_its_family(networks: tuple[str, ...], family_open: int) -> None:
    admission = Admission(AdmissionPolicy(allow_networks=networks))
    assert admission.is_open
    v4 = admission.decide("192.0.2.7", digest=False)
    v6 = admission.decide("2001:db8::7", digest=False)
    assert (v4 if family_open == 4 else v6) == (ADMIT, OPEN)
    assert (v6 if family_open == 4 else v4) == (REFUSE, None)


def test_digest_rule() -> None:
    # Digest alone (no allowlist): anyone is challenged.
    alone = Admission()
    assert alone.decide("192.0.2.7", digest=True) == (CHALLENGE, None)
    assert alone.decide("127.0.0.1", digest=True) == (CHALLENGE, LOCAL)
    # Digest and an allowlist: both must hold; others get 403 without a challenge.
    both = Admission(AdmissionPolicy(allow_networks=("10.0.0.0/8",)))
    assert both.decide("10.0.0.1", digest=True) == (CHALLENGE, ALLOWLIST)
    assert both.decide("192.0.2.7", digest=True) == (REFUSE, None)
    assert both.decide("127.0.0.1", digest=True) == (CHALLENGE, LOCAL)


def test_refusal_log_at_most_once_per_source_per_minute() -> None:
    admission = Admission()
    assert admission.refusal_to_log("192.0.2.7", 0.0) == 1
    assert admission.refusal_to_log("192.0.2.7", 1.0) is None
    assert admission.refusal_to_log("192.0.2.7", 59.0) is None
    assert admission.refusal_to_log("192.0.2.8", 59.0) == 1  # another source: its own line
    assert admission.refusal_to_log("192.0.2.7", 60.0) == 3  # reports what it held back


def test_bad_network_names_itself() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        Admission(AdmissionPolicy(allow_networks=("10.0.0.0/33",)))


def test_parse_address() -> None:
    assert str(parse_address("::ffff:10.0.0.1")) == "10.0.0.1"
    assert str(parse_address("[fe80::1%eth0]")) == "fe80::1"
    assert parse_address("pbx.example.org") is None


def test_local_addresses_from_proc(tmp_path: Path) -> None:
    fib = tmp_path / "fib_trie"
    fib.write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n"
        "     |-- 192.0.2.255\n        /32 link BROADCAST\n"
        "     |-- 192.0.2.2\n        /32 host LOCAL\n"
    )
    inet6 = tmp_path / "if_inet6"
    inet6.write_text(
        "fd000000000000000000000000000002 02 40 00 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert local_addresses(fib, inet6) == ["127.0.0.1", "192.0.2.2", "::1", "fd00::2"]
    assert local_addresses(tmp_path / "none", tmp_path / "none") == []


def test_refusal_lines_have_a_global_budget_too() -> None:
    admission = Admission(AdmissionPolicy(refusal_lines_per_interval=5))
    logged = [admission.refusal_to_log(f"203.0.113.{i}", 0.0) for i in range(50)]
    assert logged.count(1) == 5  # 50 spoofed sources, 5 lines
    assert admission.counters.refusal_lines_suppressed == 45
    assert admission.refusal_to_log("203.0.113.40", 60.0) == 2  # its held-back refusals
