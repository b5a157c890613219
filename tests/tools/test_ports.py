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


def test_the_overlapped_passes_ranges_do_not_meet() -> None:
    from tests.tools.two_passes import _HIGH, _LOW, _SPLIT

    assert ports._PORT_RANGE[0] <= _LOW < _SPLIT < _HIGH <= ports._PORT_RANGE[1]


def test_a_block_comes_from_this_workers_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = _range(monkeypatch, "40000-44000", "gw1", "2")
    base = ports.free_port_block(10)
    assert low <= base and base + 10 <= high


@pytest.mark.parametrize("value", ["abc", "30000", "5000-4000", "30000-30010", "1-70000"])
def test_a_bad_range_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ports.PORT_RANGE_ENV, value)
    with pytest.raises(ValueError, match=ports.PORT_RANGE_ENV):
        ports._worker_range()
