"""RTP port allocator: even ports, RTCP room, quarantine before reuse, exhaustion."""

from __future__ import annotations

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
    assert ports == [10002, 10004, 10006, 10008]  # 10010 has no 10011 within the range
    assert all(p is not None and p % 2 == 0 and p + 1 <= 10010 for p in ports)
    assert alloc.allocate() is None
    assert alloc.stats.exhausted == 1


def test_released_port_is_quarantined_then_reused() -> None:
    clock = FakeClock()
    alloc = PortAllocator(20000, 20003, quarantine_s=30.0, clock=clock)
    a = alloc.allocate()
    b = alloc.allocate()
    assert (a, b) == (20000, 20002)
    alloc.release(a)
    assert alloc.allocate() is None  # 20000 quarantined, 20002 in use
    clock.now += 29.9
    assert alloc.allocate() is None
    clock.now += 0.2
    assert alloc.allocate() == 20000
    assert alloc.in_use == 2


def test_round_robin_spreads_reuse_without_quarantine() -> None:
    alloc = PortAllocator(30000, 30009, quarantine_s=0.0, clock=FakeClock())
    first = alloc.allocate()
    alloc.release(first)
    assert alloc.allocate() != first  # the next pair, not the one just freed


def test_failed_bind_counts_and_quarantines() -> None:
    alloc = PortAllocator(40000, 40003, clock=FakeClock())
    port = alloc.allocate()
    alloc.release(port, failed=True)
    assert alloc.stats.bind_failures == 1
    alloc.release(port)  # double release is ignored
    assert alloc.stats.released == 0
    assert alloc.allocate() == 40002


@pytest.mark.parametrize(("lo", "hi"), [(10000, 10000), (0, 100), (60000, 70000), (11, 12)])
def test_bad_ranges_are_rejected(lo: int, hi: int) -> None:
    with pytest.raises(ValueError, match="RTP port range"):
        PortAllocator(lo, hi)


def test_negative_quarantine_rejected() -> None:
    with pytest.raises(ValueError, match="quarantine"):
        PortAllocator(10000, 10010, quarantine_s=-1)
