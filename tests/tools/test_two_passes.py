"""`make test`'s two passes (tests/tools/two_passes.py): what each pass selects, how their exit
codes combine, and the total closing line."""

from __future__ import annotations

import sys

import pytest

from tests.tools.two_passes import (
    NO_TESTS,
    PassResult,
    combined_code,
    parse_counts,
    pass_commands,
    total_line,
)


def test_the_parallel_pass_takes_what_is_not_realtime_on_workers_and_the_serial_pass_the_rest() -> (
    None
):
    (first, parallel), (second, serial) = pass_commands(["tests/live", "-k", "barge"], workers=2)
    assert (first, second) == ("parallel", "serial")
    for command in (parallel, serial):
        assert command[:3] == [sys.executable, "-m", "pytest"]
        assert command[-3:] == ["tests/live", "-k", "barge"]  # the caller's selection, to both
    parallel, serial = parallel[3:], serial[3:]
    assert parallel[parallel.index("-m") + 1] == "not soak and not realtime"
    assert parallel[parallel.index("-n") + 1] == "2"
    assert serial[serial.index("-m") + 1] == "not soak and realtime"
    assert "-n" not in serial and "no:xdist" in serial


def test_no_workers_runs_the_parallel_pass_in_one_process() -> None:
    (_, parallel), _ = pass_commands([], workers=0)
    assert "-n" not in parallel and "xdist" not in parallel


def _results(*codes: int) -> list[PassResult]:
    return [PassResult(f"pass{i}", code, 1.0) for i, code in enumerate(codes)]


@pytest.mark.parametrize(
    ("codes", "selection", "expected"),
    [
        ((0, 0), False, 0),
        ((1, 0), False, 1),  # either pass failing fails the run
        ((0, 1), False, 1),
        ((2, 1), False, 2),  # the first failing pass's code
        ((0, NO_TESTS), False, NO_TESTS),  # the whole suite: each pass must have tests
        ((NO_TESTS, 0), False, NO_TESTS),
        ((0, NO_TESTS), True, 0),  # a selection may fall in one pass only
        ((NO_TESTS, 0), True, 0),
        ((NO_TESTS, 1), True, 1),
        ((NO_TESTS, NO_TESTS), True, NO_TESTS),  # nothing selected at all: as pytest says
        ((0,), True, 0),  # -x stopped after the first pass
        ((1,), True, 1),
    ],
)
def test_exit_codes_combine(codes: tuple[int, ...], selection: bool, expected: int) -> None:
    assert combined_code(_results(*codes), selection_given=selection) == expected


def test_counts_are_read_from_the_closing_line_only() -> None:
    lines = [
        "tests/a.py::test_x 3 passed earlier, not a summary\n",
        "FAILED tests/b.py::test_y - assert 1 == 2\n",
        "= 1 failed, 3126 passed, 1 skipped, 37 warnings, 1 error in 137.44s (0:02:17) =\n",
        "GPT-Live client events validated against openai.types.live: 12; invalid: 0\n",
    ]
    assert parse_counts(lines) == {"failed": 1, "passed": 3126, "skipped": 1, "errors": 1}
    assert parse_counts(["no tests ran in 0.01s\n"]) == {}


def test_the_total_line_adds_both_passes_in_the_plain_format() -> None:
    parallel = PassResult("parallel", 0, 1.0, {"passed": 3126, "skipped": 1})
    serial = PassResult("serial", 1, 1.0, {"passed": 160, "failed": 2, "deselected": 3000})
    assert total_line([parallel, serial]) == "total: 3286 passed, 2 failed, 1 skipped"
    assert total_line([]) == "total: 0 passed, 0 failed"


def test_a_marker_expression_of_the_caller_replaces_not_soak_in_both_passes() -> None:
    (_, parallel), (_, serial) = pass_commands(["-m", "interop or soak", "tests/x.py"], workers=2)
    assert parallel[parallel.index("-m", 3) + 1] == "(interop or soak) and not realtime"
    assert serial[serial.index("-m", 3) + 1] == "(interop or soak) and realtime"
    assert parallel[-1] == serial[-1] == "tests/x.py"
    assert parallel.count("-m") == serial.count("-m") == 2  # `python -m pytest` and one -m
