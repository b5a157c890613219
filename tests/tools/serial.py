"""Which tests `make test` runs in its serial pass, alone on the machine: the `realtime` marker.

`make test` runs the suite in two passes (tests/tools/two_passes.py): every test not marked
`realtime` on two pytest-xdist workers, then the `realtime` ones one at a time. A test is
real-time when it needs the CPU in real time: it starts `python -m gateway run` (or the
simulator, or a call), a real peer (SIPp, baresip, Kamailio, dumpcap/tshark), a network
namespace, a simulator paced in real time, or it measures latency, pacing or jitter. Run beside
a second worker such a test can see late packets, a trimmed playout or a timeout it would not
see alone.

tests/conftest.py marks the items at collection (`mark_realtime`), by three rules:
- the directories in REALTIME_DIRS: every test there drives real peers or whole calls;
- the fixtures in REALTIME_FIXTURES (the fixture functions themselves, not their names: two
  conftests define a `sim_factory`), used directly or through another fixture: each starts real
  processes or a real-time simulator thread;
- the tests in REALTIME_TESTS (file, file::function, or file::Class::function), each with the
  reason: tests that start such a process themselves.

A classification can rot: a new test starts `gateway run` with `subprocess` and lands in the
parallel pass, and nothing says so until it flakes. So `install_guard()` (installed for every
run by tests/conftest.py) watches every subprocess a test starts: a test that is not marked
`realtime` and starts one of the real-time commands (`realtime_command`) fails, naming the
command and this file. tests/test_architecture.py checks that every entry of the tables still
names something that exists.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

MARK = "realtime"

REALTIME_DIRS: dict[str, str] = {
    "tests/e2e": "whole calls: real callers -> `gateway run` -> the simulator",
    "tests/interop": "real third-party peers (SIPp, baresip, Kamailio, tshark)",
    "tests/soak": "long calls under load (`make soak`)",
}

# (module, function) of each fixture that starts processes or a real-time simulator thread.
REALTIME_FIXTURES: dict[tuple[str, str], str] = {
    ("tests.conftest", "interop_processes"): (
        "every gateway/SIPp/baresip/Kamailio/dumpcap process the harnesses start is registered "
        "here (gateway, sipp, baresip, tshark, kamailio, realtime_gateway, live_gateway use it)"
    ),
    ("tests.tools.realtime_fixtures", "sim_factory"): "the Realtime simulator in a thread, paced",
    ("tests.tools.live_gateway", "live_sim_factory"): "the GPT-Live simulator in a thread, paced",
    ("tests.security.admission_tools", "netns"): "a network namespace and a gateway it calls",
    ("tests.test_softphone", "gateway_process"): "`python -m gateway run` for the softphone",
    ("tests.test_softphone", "lab"): "the softphone calling a gateway in real time",
    ("tests.test_deploy", "kamailio_dispatcher"): "Kamailio with the shipped dispatcher config",
}

# Tests that start a real-time process themselves. Key: a path, `path::function` or
# `path::Class::function` (every parametrized case of it).
_RUN = "starts `python -m gateway run`"
_SIM = "starts `python -m gateway simulator`"
REALTIME_TESTS: dict[str, str] = {
    "tests/live_simulator/test_cli.py::test_the_command_prints_both_urls_and_serves_gpt_live": _SIM,
    "tests/realtime/test_simulator_cli.py::test_cli_serves_sessions": _SIM,
    "tests/realtime/test_simulator_load.py::test_a_sipp_load_through_the_load_mode_simulator_answers_every_call": (
        "SIPp calls through `gateway run` and the load-mode simulator, RTP to bench/rtp_sink.py"
    ),
    "tests/security/test_http.py::test_plain_http_to_a_remote_host_is_a_config_error_naming_the_key": _RUN,
    "tests/sip/test_auth.py::test_sipp_answers_our_challenge": "SIPp registers with our digest",
    "tests/sip/test_auth.py::test_sipp_registrar_verifies_our_authorization": "SIPp as registrar",
    "tests/sip/test_sdp.py::test_baresip_offer_and_our_answer": "baresip calls our UAS",
    "tests/test_rtp_sink.py::test_the_sink_counts_what_the_phones_were_sent": (
        "bench/rtp_sink.py as a process, fed on loopback"
    ),
    "tests/test_bench.py::test_flood_bench_short_run_call_completes_and_fds_return": (
        "bench/flood.py: a call through `gateway run` under a flood"
    ),
    "tests/test_bench.py::test_io_floor_runs_and_every_datagram_flows": (
        "bench/io_floor.py: paced RTP calls"
    ),
    "tests/test_bench.py::test_latency_bench_live_short_run_has_every_figure_and_packets_flowed": (
        "bench/latency.py: measures latency"
    ),
    "tests/test_bench.py::test_latency_bench_short_run_keeps_every_append_and_flushes_every_barge_in": (
        "bench/latency.py: measures latency"
    ),
    "tests/test_bench.py::test_sipp_load_small_run_answers_every_call": (
        "bench/sipp_load.py: SIPp calls through `gateway run`"
    ),
    "tests/test_cli.py::test_bad_config_exits_2_naming_the_key": _RUN,
    "tests/test_cli.py::test_busy_control_port_says_in_use_and_names_the_flag": _RUN,
    "tests/test_cli.py::test_busy_sip_port_says_in_use_and_names_the_flag": _RUN,
    "tests/test_cli.py::test_drain_timeout_flag_overrides_the_config": _RUN,
    "tests/test_cli.py::test_env_error_exits_2_naming_the_variable": _RUN,
    "tests/test_cli.py::test_run_answers_options_and_stops_on_sigterm": _RUN,
    "tests/test_cli.py::test_run_exits_on_sigint_even_when_started_with_it_ignored": _RUN,
    "tests/test_cli.py::test_run_port_in_use_exits_1_naming_the_address": _RUN,
    "tests/test_cli.py::test_run_warns_about_a_model_near_its_shutdown": _RUN,
    "tests/test_cli.py::test_simulator_bad_options_exit_2": _SIM,
    "tests/test_cli.py::test_simulator_busy_port_names_the_flag": _SIM,
    "tests/test_cli.py::test_simulator_exits_on_signal_even_with_sigint_ignored": _SIM,
    "tests/test_cli.py::test_simulator_subcommand_delegates": _SIM,
    "tests/test_deploy.py::test_kamailio_dispatcher_answers_503_when_every_instance_fails": (
        "Kamailio with the shipped dispatcher config"
    ),
    "tests/test_deploy.py::test_kamailio_dispatcher_config_is_valid": "`kamailio -c`",
    "tests/test_deploy.py::test_kamailio_dispatcher_fails_over_when_an_instance_dies_while_ringing": (
        "Kamailio with the shipped dispatcher config"
    ),
    "tests/test_deploy.py::test_kamailio_dispatcher_fails_over_when_the_send_itself_fails": (
        "Kamailio with the shipped dispatcher config"
    ),
    "tests/test_routes.py::test_run_exits_2_when_a_route_instructions_file_is_missing": _RUN,
    "tests/test_routes.py::test_sighup_reloads_routes_in_a_running_gateway": _RUN,
}


def _posix(path: str) -> str:
    return path.replace(os.sep, "/")


def _test_key(item: pytest.Item) -> tuple[str, str]:
    """(path relative to the root, `path::function` without parameters)."""
    path = _posix(str(Path(str(item.path)).relative_to(item.config.rootpath)))
    name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else ""
    return path, f"{path}::{name.split('[', 1)[0]}"


def realtime_reason(item: pytest.Item) -> str | None:
    """Why `item` belongs in the serial pass, or None."""
    path, function = _test_key(item)
    for directory, why in REALTIME_DIRS.items():
        if path.startswith(directory + "/"):
            return f"in {directory}: {why}"
    for key in (function, path):
        if key in REALTIME_TESTS:
            return REALTIME_TESTS[key]
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        for fixturedef in defs:
            func = getattr(fixturedef, "func", None)
            key = (getattr(func, "__module__", ""), getattr(func, "__name__", ""))
            if key in REALTIME_FIXTURES:
                return f"uses the fixture {key[1]} ({key[0]}): {REALTIME_FIXTURES[key]}"
    return None


def mark_realtime(items: Iterable[pytest.Item]) -> None:
    """Add the `realtime` marker to every real-time item (called at collection)."""
    for item in items:
        if item.get_closest_marker(MARK) is None and realtime_reason(item) is not None:
            item.add_marker(MARK)


# ---------------------------------------------------------------------------------------------
# The guard: a test outside the serial pass must not start a real-time process.

PEER_BINARIES = frozenset({"sipp", "baresip", "kamailio", "tshark", "dumpcap", "ip", "unshare"})
# `python -m gateway COMMAND`: every command is real-time but --help, --version and these,
# which only read files.
GATEWAY_OFFLINE = frozenset({"check"})
# bench/*.py run as a script: real-time (they start gateways, peers, paced streams) but these
# A/B comparisons, which feed both revisions the same packets in one process as fast as they go,
# tick_cost.py and append_cost.py, which drive calls on a virtual clock in one process
# (append_cost.py binds its legs' RTP sockets inside the kernel's ephemeral range, where no
# port block is drawn, and sends nothing on them), and wsread_cost.py, which feeds frames to
# connections in one process with no socket.
BENCH_OFFLINE = frozenset(
    {
        "ab.py",
        "append_cost.py",
        "clock_ab.py",
        "event_cost.py",
        "jitter_ab.py",
        "playout_ab.py",
        "stream_ab.py",
        "tick_cost.py",
        "wsock_ab.py",
        "wsread_cost.py",
    }
)
# Modules run with `python -m` that start a real-time process.
REALTIME_MODULES = frozenset({"tests.tools.netns"})


def _argv(args: Any) -> list[str]:
    if isinstance(args, str | bytes | os.PathLike):
        text = os.fsdecode(args)
        return shlex.split(text) if " " in text else [text]
    return [os.fsdecode(a) for a in args]


def _gateway_realtime(args: list[str]) -> bool:
    """`gateway ARGS`: real-time unless it only prints its help or version, or checks a config
    (anything unrecognised counts as real-time: the safe side)."""
    if any(a in ("--help", "-h", "--version") for a in args):
        return False
    words = [a for a in args if not a.startswith("-")]
    return not words or words[0] not in GATEWAY_OFFLINE


def realtime_command(args: Any) -> bool:
    """Whether a subprocess started with `args` (as given to subprocess.Popen) is real-time."""
    try:
        argv = _argv(args)
    except (TypeError, ValueError):
        return False
    if not argv:
        return False
    program = os.path.basename(argv[0])
    if program in PEER_BINARIES:
        return True
    if program == "sip-realtime-gateway":
        return _gateway_realtime(argv[1:])
    if not program.startswith("python"):
        return False
    rest = argv[1:]
    if "-m" in rest:
        after = rest[rest.index("-m") + 1 :]
        module = after[0] if after else ""
        if module == "gateway":
            return _gateway_realtime(after[1:])
        return module in REALTIME_MODULES
    scripts = [a for a in rest if a.endswith(".py")]
    if scripts:
        script = Path(scripts[0])
        return script.parent.name == "bench" and script.name not in BENCH_OFFLINE
    return False


class _Guard:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.item: pytest.Item | None = None
        self.violations: list[str] = []

    def check(self, args: Any) -> None:
        item = self.item
        if item is None or item.get_closest_marker(MARK) is not None:
            return
        if not realtime_command(args):
            return
        problem = (
            f"{item.nodeid} is not marked `{MARK}` but starts a real-time process: "
            f"{' '.join(_argv(args))[:200]}. It belongs in `make test`'s serial pass: add it "
            "to REALTIME_TESTS or REALTIME_FIXTURES in tests/tools/serial.py"
        )
        with self.lock:
            self.violations.append(problem)
        raise RealtimeMisclassified(problem)


class RealtimeMisclassified(RuntimeError):
    """A test outside the serial pass started a real-time process."""


guard = _Guard()
_installed = False


def install_guard() -> None:
    """Check every subprocess.Popen (asyncio's subprocesses are Popen too) from now on."""
    global _installed
    if _installed:
        return
    original = subprocess.Popen.__init__

    def checked_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        guard.check(args)
        original(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = checked_init  # type: ignore[method-assign]
    _installed = True


def violations_since(count: int) -> Sequence[str]:
    with guard.lock:
        return list(guard.violations[count:])


def violation_count() -> int:
    with guard.lock:
        return len(guard.violations)
