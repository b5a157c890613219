"""Port blocks (tests/tools/ports.py) when several processes draw at once: pytest-xdist workers
and `make test`'s two passes overlapped each draw from their own slice, never the same ports."""

from __future__ import annotations

import pytest

from tests.tools import ports


def _range(monkeypatch: pytest.MonkeyPatch, run: str, worker: str, count: str) -> tuple[int, int]:
    for name, value in (
        (ports.PORT_RANGE_ENV, run),
        ("PYTEST_XDIST_WORKER", worker),
        ("PYTEST_XDIST_WORKER_COUNT", count),
    ):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    return ports._worker_range()


def test_without_workers_the_whole_range(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _range(monkeypatch, "", "", "") == ports._PORT_RANGE
    assert _range(monkeypatch, "30000-31000", "", "") == (30000, 31000)


@pytest.mark.parametrize("run", ["", "20000-46000", "46000-60000"])
def test_workers_and_passes_get_disjoint_slices(monkeypatch: pytest.MonkeyPatch, run: str) -> None:
    low, high = _range(monkeypatch, run, "", "")
    slices = [_range(monkeypatch, run, f"gw{i}", "2") for i in range(2)]
    assert slices[0][0] == low and slices[0][1] == slices[1][0] and slices[1][1] == high


@pytest.mark.parametrize(
    ("ephemeral", "parallel", "serial"),
    [
        ((32768, 60999), "20000-32768", "61000-65536"),  # Linux's default
        ((32768, 65535), "20000-28512", "28512-32768"),  # nothing above it
        ((49152, 65535), "20000-39435", "39435-49152"),  # the IANA range
        ((10000, 30000), "30001-53691", "53691-65536"),
    ],
)
def test_the_overlapped_passes_ranges_do_not_meet_nor_touch_the_ephemeral_ports(
    ephemeral: tuple[int, int], parallel: str, serial: str
) -> None:
    """A port bound to 0 or a connect() anywhere on the machine takes an ephemeral port: a
    test's block must never contain one, or its gateway may fail to bind (make test's serial
    pass errored once at setup, with the parallel pass binding ports beside it)."""
    from tests.tools.two_passes import overlapped_ranges

    ranges = overlapped_ranges(ports.quiet_ranges(ephemeral))
    assert ranges == (parallel, serial)
    spans = [tuple(int(x) for x in r.split("-")) for r in ranges]
    (a_low, a_high), (b_low, b_high) = spans
    assert a_high <= b_low or b_high <= a_low
    for low, high in spans:
        assert high <= ephemeral[0] or low > ephemeral[1]
        assert ports.PORT_RANGE_ENV and high - low >= 40 * 4


def test_the_default_range_is_the_largest_quiet_one() -> None:
    low, high = ports._PORT_RANGE
    e_low, e_high = ports.ephemeral_range()
    assert high <= e_low or low > e_high
    assert ports.quiet_ranges((20000, 65535)) == []  # all ephemeral: the default is the span


def the_os_says_every_port_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the handing out (release, even bases), not the OS: a small fixed
    range inside the ephemeral range is often partly taken by other processes' sockets (the
    other pass of `make test` connects thousands), which failed them in CI."""
    monkeypatch.setattr(ports, "_port_free", lambda port: True)


def test_a_released_block_can_be_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    _range(monkeypatch, "40000-40200", "", "")
    the_os_says_every_port_is_free(monkeypatch)
    drawn = {ports.free_port_block(40) for _ in range(3)}
    with pytest.raises(RuntimeError, match="no free block of 40 ports"):
        for _ in range(3):  # at most four blocks of 40 fit in 200 ports
            drawn.add(ports.free_port_block(40))
    for base in drawn:
        ports.release_port_block(base, 40)
    again = ports.free_port_block(40)
    ports.release_port_block(again, 40)
    assert 40000 <= again <= 40160


def test_a_block_comes_from_this_workers_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = _range(monkeypatch, "40000-44000", "gw1", "2")
    the_os_says_every_port_is_free(monkeypatch)
    base = ports.free_port_block(10)
    assert low <= base and base + 10 <= high


@pytest.mark.parametrize("value", ["abc", "30000", "5000-4000", "30000-30010", "1-70000"])
def test_a_bad_range_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ports.PORT_RANGE_ENV, value)
    with pytest.raises(ValueError, match=ports.PORT_RANGE_ENV):
        ports._worker_range()


def test_blocks_start_on_even_ports_whatever_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """InteropPorts puts RTP at even offsets of the block (RFC 3550 11): an odd LOW (a quiet
    range after an ephemeral range ending on an even port) must not make odd bases."""
    _range(monkeypatch, "40001-40401", "", "")
    the_os_says_every_port_is_free(monkeypatch)
    bases = [ports.free_port_block(40) for _ in range(5)]
    for base in bases:
        ports.release_port_block(base, 40)
    assert all(base % 2 == 0 and 40001 <= base for base in bases), bases
