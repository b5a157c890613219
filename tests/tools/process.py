"""Subprocesses a test starts (gateway, SIPp, baresip, Kamailio, tshark): stopped by PID, every
wait bounded, their output attached to a failing test's report."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

STOP_TIMEOUT_S = 12.0  # a test's own stop(): time for the gateway to drain and exit
# A fixture's teardown, once the test is over: how the process exits is not what any test is
# about then (none reads the return code), so a gateway still draining a call the test left up
# (the default drain is 30 s, and a BYE to a caller that is gone waits for Timer F) is killed
# after this instead of holding the suite for STOP_TIMEOUT_S. Tests of the drain itself
# (tests/interop/test_drain.py, test_dispatcher.py) stop and wait for the process in the test.
TEARDOWN_STOP_S = 2.0
LOG_TAIL_LINES = 80


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A subprocess stopped by PID: `stop()` signals, waits (bounded), then kills."""

    def __init__(
        self,
        name: str,
        args: list[str],
        *,
        cwd: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        capture_stderr: bool = False,
    ) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.stop_signal = stop_signal
        self._log_file = open(log_path, "wb")  # closed in stop()
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.PIPE if capture_stderr else subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        """Wait for a normal exit; on timeout stop the process and raise TimeoutError."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(
                f"{self.name} (pid {self.pid}) did not exit within {timeout} s"
            ) from None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, self.stop_signal)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        if not self._log_file.closed:
            self._log_file.close()
        return self.popen.returncode

    def output(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


# A failing test's report gets every source registered here (tests/conftest.py's
# pytest_runtest_makereport reads `item.interop_logs`).


def attach_log(request: pytest.FixtureRequest, title: str, source: Callable[[], str]) -> None:
    logs = getattr(request.node, "interop_logs", None)
    if logs is None:
        logs = request.node.interop_logs = []
    logs.append((title, source))


def attached_logs(item: pytest.Item) -> list[tuple[str, Callable[[], str]]]:
    return getattr(item, "interop_logs", [])
