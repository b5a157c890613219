"""`make test`'s two passes (tests/tools/two_passes.py): what each pass selects, how their exit
codes combine, and the total closing line."""

from __future__ import annotations

import sys

import pytest

from tests.tools.two_passes import (
    NO_TESTS,
    PassResult,
    combined_code,
    main,
    parse_counts,
    pass_commands,
    problem_lines,
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


def test_the_failing_tests_are_picked_from_the_short_summary_with_colours_removed() -> None:
    lines = [
        "tests/a.py::test_x FAILED in the progress line, not a summary\n",
        "\x1b[31mFAILED\x1b[0m tests/b.py::test_y - assert 1 == 2\n",
        "ERROR tests/c.py::test_z - RuntimeError: teardown\n",
        "SKIPPED [1] tests/d.py:74: root writes anywhere\n",
    ]
    assert problem_lines(lines) == [
        "FAILED tests/b.py::test_y - assert 1 == 2",
        "ERROR tests/c.py::test_z - RuntimeError: teardown",
    ]


def test_the_closing_lines_name_each_pass_s_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CI log keeps only the tail: the overlapped parallel pass's output comes last, so a
    serial test's error must be named again in the closing lines (it was not: a CI run said
    "1 errors" and nothing else)."""
    serial_output = [
        "ERROR tests/e2e/test_x.py::test_call - OSError: port busy",
        "= 169 passed, 1 error in 700.00s =",
    ]
    fake = [sys.executable, "-c", f"print({chr(10).join(serial_output)!r})"]
    monkeypatch.setattr(
        "tests.tools.two_passes.pass_commands", lambda args, workers: [("serial", fake)]
    )
    monkeypatch.delenv("SRG_TEST_OVERLAP", raising=False)
    assert main(["tests/x.py"]) == 0  # python -c exits 0: only the lines matter here
    closing = capsys.readouterr().out.splitlines()[-3:]
    assert closing[0].startswith("== serial pass: exit 0, 169 passed, 1 errors")
    assert closing[1] == "   ERROR tests/e2e/test_x.py::test_call - OSError: port busy"
    assert closing[2] == "total: 169 passed, 0 failed, 1 errors"
