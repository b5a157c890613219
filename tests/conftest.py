"""Shared fixtures: free port blocks on loopback, and the real-peer harness (the gateway
subprocess, SIPp, baresip, tshark, test media) used by tests/interop, tests/e2e and
tests/security. The harnesses themselves live in tests/tools/; these functions only build
them for one test and clean up after it.

Every process a test starts is registered with `interop_processes` and stopped by PID at
teardown, newest first, even when the test fails. On failure every log a harness attached
(the gateway's JSON log, each peer's output) is added to the test report.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools import live_audit, serial
from tests.tools.baresip import Baresip
from tests.tools.capture import Capture
from tests.tools.control import TEST_CONTROL_TOKEN_ENV
from tests.tools.gateway_process import LOOPBACK, GatewayProcess, launch_gateway, merge_config
from tests.tools.media import MediaFiles, make_test_media
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts, free_port_block, release_port_block
from tests.tools.process import (
    LOG_TAIL_LINES,
    TEARDOWN_STOP_S,
    ManagedProcess,
    attached_logs,
    tail,
)
from tests.tools.sipp import Sipp

# Still imported from here by suites outside tests/tools' owners (tests/sip, tests/realtime,
# tests/test_softphone.py); new code imports tests.tools.peers.
__all__ = ["require_peer"]


# ---------------------------------------------------------------------------------------------
# GPT-Live: every client event the gateway builds in this process, and every one a `run`
# subprocess sent to a simulator fixture, validates against openai.types.live (issue 12).


def pytest_configure(config: pytest.Config) -> None:
    live_audit.install()
    serial.install_guard()


@pytest.fixture(autouse=True)
def _live_client_events_valid() -> Iterator[None]:
    """Fail the test (at teardown) whose code built a GPT-Live client event the SDK rejects."""
    before = live_audit.problem_count()
    yield
    new = live_audit.problems[before:]
    assert not new, "GPT-Live client events fail openai.types.live:\n" + "\n".join(new[:10])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(live_audit.summary())


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its audit to the controller, which prints the totals."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        with live_audit._lock:
            workeroutput["live_audit"] = {
                "counts": dict(live_audit.counts),
                "problems": list(live_audit.problems),
            }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist (controller): add a finished worker's audit to this process's totals."""
    audit = getattr(node, "workeroutput", {}).get("live_audit")
    if audit:
        with live_audit._lock:
            live_audit.counts.update(audit["counts"])
            live_audit.problems.extend(audit["problems"])


# ---------------------------------------------------------------------------------------------
# `make test`'s two passes: the `realtime` tests run serially (tests/tools/serial.py)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    serial.mark_realtime(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    serial.guard.item = item  # whose subprocesses the guard is checking
    try:
        yield
    finally:
        serial.guard.item = None


@pytest.fixture(autouse=True)
def _realtime_classified() -> Iterator[None]:
    """Fail the test (at teardown) that started a real-time process outside the serial pass
    (the guard also raises in the thread that started it)."""
    before = serial.violation_count()
    yield
    new = serial.violations_since(before)
    assert not new, "\n".join(new)


@pytest.fixture
def port_block() -> Iterator[int]:
    """First port of a block of 40 free consecutive loopback ports for this test, drawn again
    only after it (the run's ranges then never run dry)."""
    base = free_port_block()
    yield base
    release_port_block(base)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach every registered log (gateway, peers) to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for title, source in attached_logs(item):
            with contextlib.suppress(Exception):
                report.sections.append((title, tail(source(), LOG_TAIL_LINES * 2)))


# ---------------------------------------------------------------------------------------------
# Real peers: ports, processes, media


@pytest.fixture
def ports(port_block: int) -> InteropPorts:
    return InteropPorts(port_block)


@pytest.fixture
def interop_processes(request: pytest.FixtureRequest) -> Iterator[list[ManagedProcess]]:
    """Every process a test starts; all are stopped, newest first, at teardown (SIGTERM, then
    SIGKILL after TEARDOWN_STOP_S)."""
    processes: list[ManagedProcess] = []
    request.node.interop_logs = []
    yield processes
    for process in reversed(processes):
        process.stop(timeout=TEARDOWN_STOP_S)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> MediaFiles:
    """Speech (espeak-ng -> 8 kHz s16 WAV, u-law raw, padded WAV) + the SIPp RTP pcap."""
    require_peer("espeak-ng", "sox")
    return make_test_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def gateway(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Callable[..., GatewayProcess]:
    """Factory: `gw = gateway({"calls": {"max_duration_s": 2}}, echo=True)`.

    Writes the TOML config, starts `python -m gateway run` on this test's ports and returns
    once `gateway.started` was logged (or raises with the log).
    """
    counter = itertools.count(1)

    def start(
        config: dict[str, Any] | None = None, *, echo: bool = True, wait_started: bool = True
    ) -> GatewayProcess:
        rtp_min, rtp_max = ports.gateway_rtp
        base: dict[str, Any] = {
            "sip": {"host": LOOPBACK, "port": ports.gateway_sip},
            # Echo by default: the SIP tests must not depend on a Realtime connection.
            "media": {"rtp_port_min": rtp_min, "rtp_port_max": rtp_max, "echo": echo},
            "log": {"level": "INFO", "format": "json"},
            # The control API defaults to 127.0.0.1:8080; tests never take a fixed port. Its
            # token: tests.tools.control (requests send TEST_CONTROL_TOKEN).
            "control": {"port": 0, "token_env": TEST_CONTROL_TOKEN_ENV},
        }
        cli_args = [
            "--sip-host", LOOPBACK,
            "--sip-port", str(ports.gateway_sip),
            "--rtp-ports", f"{rtp_min}-{rtp_max}",
            "--log-format", "json",
        ]  # fmt: skip
        return launch_gateway(
            f"gateway{next(counter)}",
            merge_config(base, config or {}),
            tmp_path,
            ports=ports,
            processes=interop_processes,
            request=request,
            cli_args=cli_args,
            wait_started=wait_started,
        )

    return start


@pytest.fixture
def sipp(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Sipp:
    """Scenarios from tests/e2e/sipp/, then tests/interop/sipp/."""
    require_peer("sipp")
    work = tmp_path / "sipp"
    work.mkdir()
    return Sipp(work, ports, interop_processes, request)


@pytest.fixture
def baresip(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Baresip:
    require_peer("baresip")
    return Baresip(tmp_path / "baresip", ports, interop_processes, request)


@pytest.fixture
def tshark(tmp_path: Path, ports: InteropPorts, interop_processes: list[ManagedProcess]) -> Capture:
    require_peer("tshark", "dumpcap")  # dumpcap captures, tshark dissects (both wireshark's)
    work = tmp_path / "capture"
    work.mkdir()
    return Capture(work, ports.all, interop_processes)
