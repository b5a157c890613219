"""SIPp runs with the project's scenarios (tests/e2e/sipp/, tests/interop/sipp/), filled with
one test's ports; each run's messages, errors and log actions are kept for the report."""

from __future__ import annotations

import contextlib
import itertools
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tools.caller_audio import PAYLOAD_TYPE
from tests.tools.gateway_process import LOOPBACK, REPO_ROOT
from tests.tools.peers import require_peer, which_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log, tail

INTEROP_SIPP_DIR = REPO_ROOT / "tests" / "interop" / "sipp"
E2E_SIPP_DIR = REPO_ROOT / "tests" / "e2e" / "sipp"


@dataclass
class SippResult:
    rc: int
    scenario: str
    messages: str
    errors: str
    logs: str
    screen: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def describe(self) -> str:
        # rc: 0 all calls OK, 1 a call failed, 255 fatal / -timeout_error, 254 cannot bind.
        return (
            f"sipp {self.scenario} rc={self.rc}\n--- errors ---\n{tail(self.errors, 40)}\n"
            f"--- log actions ---\n{tail(self.logs, 20)}\n"
            f"--- messages ---\n{tail(self.messages, 120)}\n--- screen ---\n"
            f"{tail(self.screen, 30)}"
        )


@dataclass
class SippRun:
    """A SIPp instance running in the background (UAS, or a UAC started before other work)."""

    process: ManagedProcess
    scenario: str
    files: dict[str, Path]
    timeout_s: float

    def wait(self) -> SippResult:
        try:
            rc = self.process.wait(timeout=self.timeout_s + 15)
        except TimeoutError:
            rc = -1
        return self.result(rc)

    def result(self, rc: int) -> SippResult:
        def read(path: Path) -> str:
            with contextlib.suppress(OSError):
                return path.read_text(errors="replace")
            return ""

        return SippResult(
            rc=rc,
            scenario=self.scenario,
            messages=read(self.files["messages"]),
            errors=read(self.files["errors"]),
            logs=read(self.files["logs"]),
            screen=self.process.output(),
        )


class Sipp:
    """Runs project scenarios with this test's ports. A scenario is looked up in
    `scenario_dirs` in order (a test may put a derived scenario first)."""

    def __init__(
        self,
        work_dir: Path,
        ports: InteropPorts,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest | None = None,
        scenario_dirs: Sequence[Path] = (E2E_SIPP_DIR, INTEROP_SIPP_DIR),
    ) -> None:
        self.work_dir = work_dir
        self.ports = ports
        self.processes = processes
        self.request = request
        self.scenario_dirs = tuple(scenario_dirs)
        self._counter = itertools.count(1)

    def scenario_path(self, scenario: str) -> Path:
        for directory in self.scenario_dirs:
            if (directory / scenario).exists():
                return directory / scenario
        raise FileNotFoundError(f"{scenario} not in {', '.join(map(str, self.scenario_dirs))}")

    def _prepare(self, scenario: str, substitutions: dict[str, str]) -> Path:
        """Copy the scenario into the test dir, filling @PLACEHOLDERS@ (e.g. the pcap path)."""
        text = self.scenario_path(scenario).read_text()
        for key, value in substitutions.items():
            text = text.replace(f"@{key}@", value)
        left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
        if left:
            raise ValueError(f"{scenario}: placeholders not filled: {', '.join(left)}")
        target = self.work_dir / f"{next(self._counter):02d}_{scenario}"
        target.write_text(text)
        return target

    def start(
        self,
        scenario: str,
        target: str | None = None,
        *,
        service: str = "gateway",
        timeout_s: float = 30.0,
        hold_ms: int = 1000,
        calls: int = 1,
        extra_args: tuple[str, ...] = (),
        substitutions: dict[str, str] | None = None,
        local_port: int | None = None,
        media_port: int | None = None,
        transport: str = "udp",
    ) -> SippRun:
        """`transport`: "udp" (SIPp `-t u1`) or "tcp" (`-t t1`, one connection for the call)."""
        require_peer("sipp")
        mode = {"udp": "u1", "tcp": "t1"}[transport]
        path = self._prepare(scenario, substitutions or {})
        stem = path.with_suffix("")
        files = {
            "messages": Path(f"{stem}_messages.log"),
            "errors": Path(f"{stem}_errors.log"),
            "logs": Path(f"{stem}_logs.log"),
        }
        args = [which_peer("sipp")]
        if target is not None:
            args.append(target)
        args += [
            "-sf", str(path),
            "-s", service,
            "-i", LOOPBACK,
            "-p", str(local_port or self.ports.sipp_sip),
            "-mi", LOOPBACK,
            "-mp", str(media_port or self.ports.sipp_media),
            "-m", str(calls),
            "-d", str(hold_ms),
            "-t", mode,
            "-nostdin",
            "-timeout", f"{int(timeout_s)}s",
            "-timeout_error",
            "-trace_msg", "-message_file", str(files["messages"]),
            "-trace_err", "-error_file", str(files["errors"]),
            "-trace_logs", "-log_file", str(files["logs"]),
            *extra_args,
        ]  # fmt: skip
        process = ManagedProcess(
            f"sipp {scenario}",
            args,
            cwd=self.work_dir,
            log_path=Path(f"{stem}_screen.log"),
            stop_signal=signal.SIGTERM,
        )
        self.processes.append(process)
        run = SippRun(process, scenario, files, timeout_s)
        if self.request is not None:
            attach_log(self.request, f"sipp {path.name}", lambda: run.result(-2).describe())
        return run

    def run(self, scenario: str, target: str | None = None, **kwargs: Any) -> SippResult:
        """Run a UAC scenario to completion (bounded by its -timeout) and return the result."""
        if target is None:
            target = f"{LOOPBACK}:{self.ports.gateway_sip}"
        return self.start(scenario, target, **kwargs).wait()


def captured_run(
    sipp: Sipp,
    tshark: Any,
    scenario: str,
    timeout_s: float,
    substitutions: dict[str, str],
    **run_kwargs: Any,
) -> SippResult:
    """One SIPp UAC run of `scenario` captured by `tshark` (tests.tools.capture.Capture) from
    start to end. Asserts SIPp succeeded; returns its result (`run_kwargs` go to Sipp.run)."""
    tshark.start()
    result = sipp.run(scenario, timeout_s=timeout_s, substitutions=substitutions, **run_kwargs)
    tshark.stop()
    assert result.rc == 0, result.describe()
    return result


def captured_media_call(
    sipp: Sipp,
    tshark: Any,
    gateway: Any,
    pcap: Path,
    play_ms: int,
    timeout_s: float,
) -> str:
    """One SIPp call (uac_media_dtmf.xml) that plays `pcap` and keeps the call up `play_ms`,
    captured by `tshark` (tests.tools.capture.Capture) from start to end. Asserts SIPp
    succeeded and waits for the gateway's `call.ended`; returns the call's Call-ID."""
    captured_run(
        sipp, tshark, "uac_media_dtmf.xml", timeout_s, {"PCAP": str(pcap), "PLAY_MS": str(play_ms)}
    )
    call_id: str = gateway.wait_event("call.offered")["call_id"]
    gateway.wait_event("call.ended", call_id=call_id)
    return call_id


def codec_play_call(
    sipp: Sipp,
    tshark: Any,
    pcap: Path,
    play_ms: int,
    codec: str = "PCMU",
    timeout_s: float = 30,
    **run_kwargs: Any,
) -> SippResult:
    """One SIPp call (uac_codec_play_bye.xml) that offers `codec` only, plays `pcap` and hangs
    up after `play_ms`, captured by `tshark` from start to end. Asserts SIPp succeeded; returns
    its result (`run_kwargs` go to Sipp.run, e.g. transport)."""
    substitutions = {
        "PCAP": str(pcap),
        "PLAY_MS": str(play_ms),
        "PT": str(PAYLOAD_TYPE[codec]),
        "CODEC": codec,
    }
    return captured_run(
        sipp, tshark, "uac_codec_play_bye.xml", timeout_s, substitutions, **run_kwargs
    )


def digits_call(
    sipp: Sipp,
    gateway: Any,
    scenario: str,
    substitutions: dict[str, str],
    digits: str,
    source: str,
) -> str:
    """One SIPp call that sends `digits` (uac_media_dtmf.xml: RFC 4733 events in its pcap;
    uac_info_dtmf.xml: SIP INFO). Asserts SIPp succeeded and the gateway logged each digit, in
    order, as from `source` ("rfc4733" or "info"); returns the Call-ID (the call may still be
    ending)."""
    result = sipp.run(scenario, timeout_s=30, substitutions=substitutions)
    assert result.rc == 0, result.describe()
    call_id: str = gateway.wait_event("call.offered")["call_id"]
    received = gateway.wait_events("dtmf.received", len(digits), call_id=call_id)
    assert "".join(d["digit"] for d in received) == digits
    assert {d["source"] for d in received} == {source}
    return call_id
