"""RTP port allocator: even ports, RTCP room, random draws, quarantine before reuse, exhaustion."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from gateway.media.ports import PortAllocator


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ports_are_even_and_leave_room_for_rtcp() -> None:
    alloc = PortAllocator(10001, 10010, clock=FakeClock())
    assert alloc.port_min == 10002
    ports = [alloc.allocate() for _ in range(alloc.capacity)]
    # 10010 has no 10011 within the range. (Drawn at random: compared as a set.)
    assert sorted(ports) == [10002, 10004, 10006, 10008]  # type: ignore[type-var]
    assert all(p is not None and p % 2 == 0 and p + 1 <= 10010 for p in ports)
    assert alloc.allocate() is None
    assert alloc.stats.exhausted == 1


def test_released_port_is_quarantined_then_reused() -> None:
    clock = FakeClock()
    alloc = PortAllocator(20000, 20003, quarantine_s=30.0, clock=clock)
    a = alloc.allocate()
    b = alloc.allocate()
    assert {a, b} == {20000, 20002}
    assert a is not None
    alloc.release(a)
    assert alloc.allocate() is None  # a quarantined, b in use
    clock.now += 29.9
    assert alloc.allocate() is None
    clock.now += 0.2
    assert alloc.allocate() == a
    assert alloc.in_use == 2


def test_quarantine_holds_under_random_draws() -> None:
    """Many allocate/release rounds: a released port never comes back inside its quarantine."""
    clock = FakeClock()
    alloc = PortAllocator(30000, 30039, quarantine_s=5.0, clock=clock)
    released_at: dict[int, float] = {}
    live: list[int] = []
    for _ in range(2000):
        port = alloc.allocate()
        if port is not None:
            assert port not in live
            assert clock.now >= released_at.get(port, -1e9) + 5.0
            live.append(port)
        if len(live) > 5 or port is None:
            freed = live.pop(0)
            alloc.release(freed)
            released_at[freed] = clock.now
        clock.now += 0.37


def test_ports_are_drawn_at_random_not_in_order() -> None:
    # Seeded, so the statistics below cannot flake; the product uses SystemRandom (next test).
    alloc = PortAllocator(10000, 19999, quarantine_s=0.0, clock=FakeClock(), rng=random.Random(1))
    drawn = []
    for _ in range(400):
        port = alloc.allocate()
        assert port is not None and port % 2 == 0
        drawn.append(port)
        alloc.release(port)
    steps = {b - a for a, b in itertools.pairwise(drawn)}
    assert len(steps) > 300  # a cursor (or any fixed stride) would give one step
    ascending = sum(b > a for a, b in itertools.pairwise(drawn))
    assert 100 < ascending < 300  # about half: no trend an attacker can follow
    # Spread over the range: each tenth of it gets its share (expected 40 each).
    tenths = Counter((p - 10000) * 10 // 10000 for p in drawn)
    assert len(tenths) == 10 and min(tenths.values()) >= 15 and max(tenths.values()) <= 75


def test_default_randomness_is_the_system_csprng() -> None:
    alloc = PortAllocator(10000, 10100)
    assert isinstance(alloc._rng, random.SystemRandom)


def test_crowded_range_still_finds_the_last_free_pair() -> None:
    """Random probes miss when nearly everything is taken: the fallback lists the free pairs."""
    alloc = PortAllocator(10000, 10999, quarantine_s=0.0, clock=FakeClock(), rng=random.Random(7))
    taken = [alloc.allocate() for _ in range(alloc.capacity)]
    assert len(set(taken)) == alloc.capacity and None not in taken
    assert alloc.allocate() is None
    victim = taken[123]
    assert victim is not None
    alloc.release(victim)
    assert alloc.allocate() == victim


def test_failed_bind_counts_and_quarantines() -> None:
    alloc = PortAllocator(40000, 40003, clock=FakeClock())
    port = alloc.allocate()
    assert port is not None
    alloc.release(port, failed=True)
    assert alloc.stats.bind_failures == 1
    alloc.release(port)  # double release is ignored
    assert alloc.stats.released == 0
    assert alloc.allocate() == ({40000, 40002} - {port}).pop()  # the failed one is quarantined


@pytest.mark.parametrize(("lo", "hi"), [(10000, 10000), (0, 100), (60000, 70000), (11, 12)])
def test_bad_ranges_are_rejected(lo: int, hi: int) -> None:
    with pytest.raises(ValueError, match="RTP port range"):
        PortAllocator(lo, hi)


def test_negative_quarantine_rejected() -> None:
    with pytest.raises(ValueError, match="quarantine"):
        PortAllocator(10000, 10010, quarantine_s=-1)


# ---- issue 14: configurable quarantine and the range sizing rule ---------------------------


def test_quarantine_zero_reuses_a_released_pair_at_once() -> None:
    alloc = PortAllocator(20000, 20001, quarantine_s=0, clock=FakeClock())
    port = alloc.allocate()
    assert port == 20000 and alloc.allocate() is None
    alloc.release(port)
    assert alloc.allocate() == 20000  # same instant: no quarantine


def test_quarantine_n_holds_the_pair_exactly_n_seconds() -> None:
    clock = FakeClock()
    alloc = PortAllocator(20000, 20001, quarantine_s=5.0, clock=clock)
    port = alloc.allocate()
    assert port is not None
    alloc.release(port)
    clock.now += 4.999
    assert alloc.allocate() is None
    clock.now += 0.001
    assert alloc.allocate() == 20000


def churn_exhaustions(pairs: int, max_calls: int, quarantine_s: float, call_s: float) -> int:
    """`max_calls` slots, each renewing a `call_s` call as soon as it ends (starts staggered
    evenly over one call length), for ten call lengths on a fake clock: allocate() failures."""
    from gateway.media.ports import pair_count

    clock = FakeClock()
    alloc = PortAllocator(
        20000, 20000 + 2 * pairs - 1, quarantine_s, clock=clock, rng=random.Random(7)
    )
    assert alloc.capacity == pair_count(20000, 20000 + 2 * pairs - 1) == pairs
    start = clock.now
    held: list[int | None] = [None] * max_calls
    ends = [start + call_s * i / max_calls for i in range(max_calls)]
    failures = 0
    for step in range(int(10 * call_s) + 1):
        clock.now = start + step
        for slot in range(max_calls):
            if clock.now >= ends[slot]:
                if held[slot] is not None:
                    alloc.release(held[slot])  # type: ignore[arg-type]
                held[slot] = alloc.allocate()
                failures += held[slot] is None
                ends[slot] += call_s
    return failures


def test_sizing_rule_matches_the_allocator_under_churn() -> None:
    from gateway.media.ports import pairs_needed, range_shortfall

    # 10 calls of 60 s with a 30 s quarantine: 10 live pairs + 5 in quarantine.
    assert pairs_needed(10, 30) == 15
    assert churn_exhaustions(15, 10, 30, 60) == 0
    assert churn_exhaustions(14, 10, 30, 60) > 0  # sized for the calls alone: runs dry
    assert churn_exhaustions(10, 10, 0, 60) == 0  # no quarantine: max_calls pairs suffice
    assert pairs_needed(10, 0) == 10
    assert pairs_needed(100, 30) == 150
    assert range_shortfall(20000, 20029, 10, 30) is None  # 15 pairs
    short = range_shortfall(20000, 20027, 10, 30)  # 14 pairs
    assert short is not None and "holds 14 port pairs" in short and "need 15" in short
