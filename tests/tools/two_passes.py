"""`make test`: the suite in two passes, then one total.

1. parallel: every test not marked `realtime` (tests/tools/serial.py), on pytest-xdist workers
   (`-n 2`, work stealing: the machine has two cores);
2. serial: the `realtime` tests (the gateway, the simulator, real peers, network namespaces,
   timing), one at a time, alone on the machine.

    python -m tests.tools.two_passes [PYTEST ARGS...]    # e.g. tests/live -k barge

The arguments go to both passes (paths, -k, -x, ...); a `-m EXPR` among them replaces
`not soak` (so `-m soak` runs the soak tests, split the same way). The exit code is the first failing pass's
(pytest's codes); both passes always run, unless -x/--exitfirst was given and the first failed.
Exit code 5 (no test selected) of one pass is expected when arguments were given (a selection
can fall in one pass only); without arguments (the whole suite, as CI runs it) both passes must
run tests. When neither pass selected a test the exit code is 5, as pytest's would be.

SRG_TEST_WORKERS sets the number of workers of the parallel pass (default 2; 0 runs it without
xdist, in one process). SRG_TEST_OVERLAP=1 runs the parallel pass at idle CPU priority beside the
serial pass instead of before it (`run_overlapped`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.tools.ports import PORT_RANGE_ENV, default_range, quiet_ranges

NOT_SOAK = "not soak"
NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED
MAX_PROBLEMS = 30  # failures repeated in the closing lines, per pass
OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
SUMMARY = re.compile(r"\bin \d+(\.\d+)?s\b")
# pytest's short summary lines of a test that did not pass (-ra in pyproject.toml's addopts).
PROBLEM = re.compile(r"^(FAILED|ERROR|XPASS) ")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# SRG_TEST_OVERLAP=1: the serial pass's share of the ports when both passes draw from one
# quiet range (tests/tools/ports.py).
_SERIAL_SHARE = 1 / 3
_SERIAL_MIN_PORTS = 1000


def overlapped_ranges(quiet: Sequence[tuple[int, int]]) -> tuple[str, str]:
    """SRG_TEST_PORT_RANGE of the parallel and the serial pass overlapped: disjoint, and outside
    the kernel's ephemeral ports (`quiet`: ports.quiet_ranges()). The parallel pass takes the
    largest quiet range; the serial pass, one test at a time, the second when it is big enough
    (61000-65535 beside 20000-32767 with Linux's default), else a third of the first."""
    (low, high), *rest = quiet
    if rest and rest[0][1] - rest[0][0] >= _SERIAL_MIN_PORTS:
        (s_low, s_high) = rest[0]
        return f"{low}-{high}", f"{s_low}-{s_high}"
    split = high - int((high - low) * _SERIAL_SHARE)
    return f"{low}-{split}", f"{split}-{high}"


@dataclass
class PassResult:
    name: str
    code: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def problem_lines(lines: Sequence[str]) -> list[str]:
    """pytest's short summary lines of the tests that failed or errored, colours removed, so
    that the closing lines of `make test` name them whichever pass printed them (the overlapped
    parallel pass's output comes last, and a CI log's tail would show only that)."""
    found = []
    for line in lines:
        plain = ANSI.sub("", line).rstrip()
        if PROBLEM.match(plain):
            found.append(plain[:400])
    return found


def split_marker(args: Sequence[str]) -> tuple[str, list[str]]:
    """The caller's own `-m EXPR` (pytest keeps only the last -m), and the other arguments."""
    rest = list(args)
    expression = NOT_SOAK
    while "-m" in rest[:-1]:
        at = rest.index("-m")
        expression = f"({rest[at + 1]})"
        del rest[at : at + 2]
    return expression, rest


def pass_commands(args: Sequence[str], workers: int) -> list[tuple[str, list[str]]]:
    """(name, pytest command line) of each pass."""
    selected, rest = split_marker(args)
    pytest = [sys.executable, "-m", "pytest"]
    parallel = [*pytest, "-m", f"{selected} and not realtime"]
    if workers > 0:
        parallel += ["-p", "xdist", "-n", str(workers), "--dist", "worksteal"]
    serial = [*pytest, "-m", f"{selected} and realtime", "-p", "no:xdist"]
    return [("parallel", [*parallel, *rest]), ("serial", [*serial, *rest])]


def parse_counts(lines: Sequence[str]) -> dict[str, int]:
    """Outcome counts from pytest's closing line ("3 failed, 10 passed, 1 skipped in 2.1s")."""
    for line in reversed(lines):
        if SUMMARY.search(line) and OUTCOME.search(line):
            counts: dict[str, int] = {}
            for number, word in OUTCOME.findall(line):
                word = "errors" if word.startswith("error") else word
                counts[word] = counts.get(word, 0) + int(number)
            return counts
    return {}


def combined_code(results: Sequence[PassResult], selection_given: bool) -> int:
    """The exit code of `make test` from its passes' (see the module docstring)."""
    codes = [r.code for r in results]
    if all(code == NO_TESTS for code in codes):
        return NO_TESTS
    for code in codes:
        if code == 0 or (code == NO_TESTS and selection_given):
            continue
        return code
    return 0


def total_line(results: Sequence[PassResult]) -> str:
    """One plain closing line: 'total: N passed, N failed, ...'."""
    total: dict[str, int] = {}
    for result in results:
        for word, number in result.counts.items():
            total[word] = total.get(word, 0) + number
    parts = [f"{total.get('passed', 0)} passed", f"{total.get('failed', 0)} failed"]
    parts += [
        f"{total[w]} {w}" for w in ("skipped", "errors", "xfailed", "xpassed") if total.get(w)
    ]
    return "total: " + ", ".join(parts)


def run_pass(name: str, command: list[str], env: dict[str, str] | None = None) -> PassResult:
    """Run one pass in the foreground, its output streamed."""
    print(f"== make test, {name} pass: {shlex.join(command[1:])}", flush=True)
    started = time.monotonic()
    tail: list[str] = []
    problems: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            tail = [*tail[-19:], line]
            problems += problem_lines([line])
        code = proc.wait()
    sys.stdout.flush()
    return PassResult(name, code, time.monotonic() - started, parse_counts(tail), problems)


def _idle_priority() -> None:
    """In the child: run only on CPU time nothing else wants (SCHED_IDLE: a waking task of any
    normal priority preempts it at once), else at the lowest nice."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def run_overlapped(commands: list[tuple[str, list[str]]]) -> list[PassResult]:
    """SRG_TEST_OVERLAP=1: the parallel pass runs under SCHED_IDLE in the background while the
    serial pass runs in the foreground (the real-time tests wait on the network and on timers
    most of the time; the idle pass takes only the CPU they leave). Disjoint port ranges."""
    (bg_name, bg_command), (fg_name, fg_command) = commands
    bg_ports, fg_ports = overlapped_ranges(quiet_ranges() or [default_range()])
    with tempfile.TemporaryFile("w+") as log:
        print(f"== make test, {bg_name} pass at idle priority (output at the end): "
              f"{shlex.join(bg_command[1:])}", flush=True)  # fmt: skip
        started = time.monotonic()
        background = subprocess.Popen(
            bg_command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, PORT_RANGE_ENV: bg_ports},
            preexec_fn=_idle_priority,
        )
        try:
            foreground = run_pass(fg_name, fg_command, env={**os.environ, PORT_RANGE_ENV: fg_ports})
            code = background.wait()
        finally:
            if background.poll() is None:
                background.kill()
                background.wait()
        # Its own duration is in its closing line; this is until the slower pass ended.
        seconds = time.monotonic() - started
        log.seek(0)
        lines = log.readlines()
    print(f"== make test, {bg_name} pass output:", flush=True)
    sys.stdout.writelines(lines)
    background_result = PassResult(
        bg_name, code, seconds, parse_counts(lines[-20:]), problem_lines(lines)
    )
    return [background_result, foreground]


def main(argv: Sequence[str]) -> int:
    workers = int(os.environ.get("SRG_TEST_WORKERS") or 2)
    if workers > 0 and importlib.util.find_spec("xdist") is None:
        print("== make test: pytest-xdist is not installed (the `test` extra): one process")
        workers = 0
    if sys.stdout.isatty() and not any(a.startswith("--color") for a in argv):
        argv = ["--color=yes", *argv]  # the passes write into a pipe: keep the colours
    exitfirst = any(a in ("-x", "--exitfirst") for a in argv)
    commands = pass_commands(argv, workers)
    results: list[PassResult] = []
    if os.environ.get("SRG_TEST_OVERLAP") == "1":
        results = run_overlapped(commands)
    else:
        for name, command in commands:
            if exitfirst and results and results[-1].code not in (0, NO_TESTS):
                print(f"== make test: {name} pass not run (-x, the {results[-1].name} pass failed)")
                break
            results.append(run_pass(name, command))
    code = combined_code(results, selection_given=any(a != "--color=yes" for a in argv))
    for result in results:
        counts = ", ".join(f"{n} {w}" for w, n in result.counts.items()) or "no summary"
        print(f"== {result.name} pass: exit {result.code}, {counts}, {result.seconds:.0f} s")
        for problem in result.problems[:MAX_PROBLEMS]:
            print(f"   {problem}")
        if len(result.problems) > MAX_PROBLEMS:
            print(f"   ... and {len(result.problems) - MAX_PROBLEMS} more (above)")
    print(total_line(results), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
