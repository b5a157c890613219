"""Fixtures that drive the real gateway against real third-party SIP peers.

Every process a test starts (gateway, SIPp, baresip, Kamailio, tshark) is registered with
`interop_processes` and stopped by PID at teardown, even when the test fails. Every wait is
bounded. Ports come from the test's `port_block` (40 consecutive free loopback ports), laid out
by `InteropPorts`; nothing here uses 5060 or any fixed port.

On failure the gateway's JSON log (and each peer's output) is attached to the test report.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_peer
from tests.tools.control import TEST_CONTROL_TOKEN, TEST_CONTROL_TOKEN_ENV
from tests.tools.media import MediaFiles, make_test_media
from tests.tools.pcap import read_udp
from tests.tools.rtp import StreamStats, analyse_streams

INTEROP_DIR = Path(__file__).resolve().parent
SIPP_DIR = INTEROP_DIR / "sipp"
BARESIP_DIR = INTEROP_DIR / "baresip"
KAMAILIO_DIR = INTEROP_DIR / "kamailio"
REPO_ROOT = INTEROP_DIR.parents[1]
LOOPBACK = "127.0.0.1"

# Kamailio lives in /usr/sbin, which is not on a non-root PATH.
PEER_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"

GATEWAY_START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 12.0  # the gateway drains calls for up to 10 s (--drain-timeout default)
LOG_TAIL_LINES = 80


def _python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _which(binary: str) -> str:
    found = shutil.which(binary, path=PEER_PATH)
    if found is None:  # require_peer() ran first, so this is a harness bug
        raise RuntimeError(f"{binary} not found on {PEER_PATH}")
    return found


# ---------------------------------------------------------------------------------------------
# Ports


@dataclass(frozen=True)
class InteropPorts:
    """Where each party listens inside one 40-port block (even RTP bases, RFC 3550 11)."""

    base: int

    @property
    def gateway_sip(self) -> int:
        return self.base

    @property
    def gateway_rtp(self) -> tuple[int, int]:
        return self.base + 2, self.base + 13

    @property
    def sipp_sip(self) -> int:
        return self.base + 14

    @property
    def sipp_media(self) -> int:
        return self.base + 16  # SIPp also uses +2 for its echo of video; keep 16-19 free

    @property
    def kamailio_sip(self) -> int:
        return self.base + 20

    @property
    def baresip_sip(self) -> int:
        return self.base + 22

    @property
    def baresip_rtp(self) -> tuple[int, int]:
        return self.base + 24, self.base + 29

    @property
    def baresip_ctrl(self) -> int:
        return self.base + 30

    @property
    def baresip_cons(self) -> int:
        return self.base + 31

    @property
    def all(self) -> tuple[int, int]:
        return self.base, self.base + 39


@pytest.fixture
def ports(port_block: int) -> InteropPorts:
    return InteropPorts(port_block)


# ---------------------------------------------------------------------------------------------
# Processes


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach every registered log (gateway, peers) to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for title, source in getattr(item, "interop_logs", []):
            with contextlib.suppress(Exception):
                report.sections.append((title, _tail(source(), LOG_TAIL_LINES * 2)))


def _tail(text: str, lines: int) -> str:
    kept = text.splitlines()[-lines:]
    return "\n".join(kept)


@pytest.fixture
def interop_processes(request: pytest.FixtureRequest) -> Iterator[list[ManagedProcess]]:
    """Every process a test starts; all are stopped, newest first, at teardown."""
    processes: list[ManagedProcess] = []
    request.node.interop_logs = []
    yield processes
    for process in reversed(processes):
        process.stop()


def _attach_log(request: pytest.FixtureRequest, title: str, source: Callable[[], str]) -> None:
    logs = getattr(request.node, "interop_logs", None)
    if logs is None:
        logs = request.node.interop_logs = []
    logs.append((title, source))


# ---------------------------------------------------------------------------------------------
# Media


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> MediaFiles:
    """Speech (espeak-ng -> 8 kHz s16 WAV, u-law raw, padded WAV) + the SIPp RTP pcap."""
    require_peer("espeak-ng", "sox")
    return make_test_media(tmp_path_factory.mktemp("media"))


# ---------------------------------------------------------------------------------------------
# Gateway


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(config: dict[str, Any]) -> str:
    """Sections of scalars (nested tables inline) and lists of tables ([[registrations]])."""
    lines: list[str] = []
    for section, body in config.items():
        if isinstance(body, list):
            for table in body:
                lines.append(f"[[{section}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
                lines.append("")
            continue
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
        lines.append("")
    return "\n".join(lines)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class GatewayProcess:
    """The gateway under test plus its parsed JSON log (read by a background thread)."""

    def __init__(self, process: ManagedProcess, config_path: Path, ports: InteropPorts) -> None:
        self.process = process
        self.config_path = config_path
        self.ports = ports
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="gateway-log", daemon=True)
        self._reader.start()

    @property
    def sip_uri_host(self) -> str:
        return f"{LOOPBACK}:{self.ports.gateway_sip}"

    def _read(self) -> None:
        stream = self.process.popen.stderr
        assert stream is not None
        with open(self.process.log_path.with_suffix(".stderr.log"), "w") as copy:
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                copy.write(line + "\n")
                copy.flush()
                try:
                    parsed = json.loads(line)
                except ValueError:
                    parsed = None
                with self._changed:
                    self.lines.append(line)
                    if isinstance(parsed, dict) and "event" in parsed:
                        self.events.append(parsed)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def mark(self) -> int:
        """Position in the event list; pass it as `since=` to wait only for later events."""
        with self._changed:
            return len(self.events)

    def find(self, name: str, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.events[since:] if _matches(e, name, match)]

    def wait_events(
        self, name: str, count: int, timeout: float = 10.0, since: int = 0, **match: Any
    ) -> list[dict[str, Any]]:
        """Wait until `count` events `name` (with fields equal to `match`) were logged."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events[since:] if _matches(e, name, match)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                exited = self.process.returncode is not None and not self._reader.is_alive()
                if remaining <= 0 or exited:
                    break
                self._changed.wait(timeout=min(remaining, 0.5))
        state = (
            f"gateway exited with rc {self.process.returncode}"
            if self.process.returncode is not None
            else "gateway still running"
        )
        raise AssertionError(
            f"expected {count} x {name} {match or ''} within {timeout} s, saw {len(found)} "
            f"({state}); last log lines:\n{self.log_tail()}"
        )

    def wait_event(
        self, name: str, timeout: float = 10.0, since: int = 0, **match: Any
    ) -> dict[str, Any]:
        return self.wait_events(name, 1, timeout, since, **match)[0]

    def log_text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_text(), lines)

    def stop(self) -> int:
        rc = self.process.stop()
        self._reader.join(timeout=5)
        return rc


def _matches(event: dict[str, Any], name: str, match: dict[str, Any]) -> bool:
    if event.get("event") != name:
        return False
    for key, expected in match.items():
        value = event.get(key)
        if callable(expected):
            if not expected(value):
                return False
        elif value != expected:
            return False
    return True


def _hermetic_env() -> dict[str, str]:
    """No OpenAI key and no SRG_* overrides from the developer's shell leak into a test."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SRG_") and k != "OPENAI_API_KEY"
    }
    env["PYTHONUNBUFFERED"] = "1"
    # The control API requires a token (issue 9): configs name this variable in token_env.
    env[TEST_CONTROL_TOKEN_ENV] = TEST_CONTROL_TOKEN
    return env


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
        index = next(counter)
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
        merged = _merge(base, config or {})
        config_path = tmp_path / f"gateway{index}.toml"
        config_path.write_text(to_toml(merged))
        args = [
            _python(), "-m", "gateway", "run",
            "--config", str(config_path),
            "--sip-host", LOOPBACK,
            "--sip-port", str(ports.gateway_sip),
            "--rtp-ports", f"{rtp_min}-{rtp_max}",
            "--log-format", "json",
        ]  # fmt: skip
        process = ManagedProcess(
            f"gateway{index}",
            args,
            cwd=REPO_ROOT,
            log_path=tmp_path / f"gateway{index}.stdout.log",
            env=_hermetic_env(),
            capture_stderr=True,
        )
        interop_processes.append(process)
        gw = GatewayProcess(process, config_path, ports)
        # Registered once the reader exists so a failing test gets the JSON log attached.
        _attach_log(request, f"gateway{index} log ({config_path.name})", gw.log_text)
        _attach_log(request, f"gateway{index} config", config_path.read_text)
        if wait_started:
            gw.wait_event("gateway.started", timeout=GATEWAY_START_TIMEOUT_S)
        return gw

    return start


# ---------------------------------------------------------------------------------------------
# SIPp


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
            f"sipp {self.scenario} rc={self.rc}\n--- errors ---\n{_tail(self.errors, 40)}\n"
            f"--- log actions ---\n{_tail(self.logs, 20)}\n"
            f"--- messages ---\n{_tail(self.messages, 120)}\n--- screen ---\n"
            f"{_tail(self.screen, 30)}"
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


class _PeerRunner:
    """What every real-peer runner holds: its work dir, this test's ports, the process list the
    fixture stops at teardown, and the test's request (for attaching logs)."""

    def __init__(
        self,
        work_dir: Path,
        ports: InteropPorts,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest,
    ) -> None:
        self.work_dir = work_dir
        self.ports = ports
        self.processes = processes
        self.request = request


class Sipp(_PeerRunner):
    """Runs project scenarios from tests/interop/sipp/ with this test's ports."""

    def __init__(
        self,
        work_dir: Path,
        ports: InteropPorts,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest,
    ) -> None:
        super().__init__(work_dir, ports, processes, request)
        self._counter = itertools.count(1)

    def _prepare(self, scenario: str, substitutions: dict[str, str]) -> Path:
        """Copy the scenario into the test dir, filling @PLACEHOLDERS@ (e.g. the pcap path)."""
        text = (SIPP_DIR / scenario).read_text()
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
        args = [_which("sipp")]
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
        _attach_log(self.request, f"sipp {path.name}", lambda: run.result(-2).describe())
        return run

    def run(self, scenario: str, target: str | None = None, **kwargs: Any) -> SippResult:
        """Run a UAC scenario to completion (bounded by its -timeout) and return the result."""
        if target is None:
            target = f"{LOOPBACK}:{self.ports.gateway_sip}"
        return self.start(scenario, target, **kwargs).wait()


@pytest.fixture
def sipp(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Sipp:
    require_peer("sipp")
    work = tmp_path / "sipp"
    work.mkdir()
    return Sipp(work, ports, interop_processes, request)


# ---------------------------------------------------------------------------------------------
# baresip


@dataclass
class BaresipResult:
    rc: int
    log: str


class Baresip(_PeerRunner):
    """baresip as a headless caller: config from tests/interop/baresip/ with this test's ports."""

    def _write_config(self, audio_wav: Path) -> Path:
        config_dir = self.work_dir / "config"
        (self.work_dir / "rec").mkdir(parents=True, exist_ok=True)
        config_dir.mkdir(parents=True, exist_ok=True)
        rtp_min, rtp_max = self.ports.baresip_rtp
        values = {
            "HOST": LOOPBACK,
            "SIP_PORT": str(self.ports.baresip_sip),
            "RTP_PORTS": f"{rtp_min}-{rtp_max}",
            "CTRL_PORT": str(self.ports.baresip_ctrl),
            "CONS_PORT": str(self.ports.baresip_cons),
            "AUDIO_WAV": str(audio_wav),
            "REC_DIR": str(self.work_dir / "rec"),
        }
        for name in ("config", "accounts"):
            text = (BARESIP_DIR / f"{name}.template").read_text()
            for key, value in values.items():
                text = text.replace(f"@{key}@", value)
            (config_dir / name).write_text(text)
        return config_dir

    def call(self, uri: str, audio_wav: Path, duration_s: int = 6) -> BaresipResult:
        """Dial `uri`, keep the call up until baresip quits after `duration_s` (-t), hang up."""
        config_dir = self._write_config(audio_wav)
        process = ManagedProcess(
            "baresip",
            [_which("baresip"), "-f", str(config_dir), "-e", f"/dial {uri}", "-t", str(duration_s)],
            cwd=self.work_dir,
            log_path=self.work_dir / "baresip.log",
        )
        self.processes.append(process)
        _attach_log(self.request, "baresip output", process.output)
        try:
            rc = process.wait(timeout=duration_s + 20)
        except TimeoutError:
            rc = -1
        return BaresipResult(rc, process.output())


@pytest.fixture
def baresip(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Baresip:
    require_peer("baresip")
    return Baresip(tmp_path / "baresip", ports, interop_processes, request)


# ---------------------------------------------------------------------------------------------
# Kamailio

KAMAILIO_USER = "gateway"
KAMAILIO_PASSWORD = "secret"


def _subscriber_row(user: str, domain: str, password: str) -> str:
    # auth_db compares against ha1 = MD5(user:realm:password) (RFC 2617 3.2.2.2) and
    # ha1b = MD5(user@domain:realm:password); the realm is the From domain ($fd).
    ha1 = hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()
    ha1b = hashlib.md5(f"{user}@{domain}:{domain}:{password}".encode()).hexdigest()
    return f"1:{user}:{domain}:{password}:{ha1}:{ha1b}\n"


class Kamailio:
    """Kamailio registrar + record-routing proxy; `restart()` drops every binding (usrloc in
    memory only)."""

    def __init__(
        self,
        work_dir: Path,
        port: int,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest,
    ) -> None:
        self.work_dir = work_dir
        self.port = port
        self.processes = processes
        self.request = request
        self.process: ManagedProcess | None = None
        self._starts = 0
        self.db_dir = work_dir / "dbtext"
        self.run_dir = work_dir / "run"
        self.db_dir.mkdir(parents=True)
        self.run_dir.mkdir()
        # db_text wants the table files in one directory; the subscriber row is computed so
        # its digests always match the password the test gives the gateway.
        shutil.copy(KAMAILIO_DIR / "dbtext" / "version", self.db_dir / "version")
        header = (KAMAILIO_DIR / "dbtext" / "subscriber").read_text().splitlines()[0]
        (self.db_dir / "subscriber").write_text(
            header + "\n" + _subscriber_row(KAMAILIO_USER, LOOPBACK, KAMAILIO_PASSWORD)
        )

    @property
    def uri(self) -> str:
        return f"sip:{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self._starts += 1
        args = [
            _which("kamailio"),
            "-f", str(KAMAILIO_DIR / "kamailio.cfg"),
            "-DD", "-E",  # foreground, log to stderr: the PID we hold is the main process
            "-n", "2", "-m", "64", "-M", "8",
            "-Y", str(self.run_dir),
            "-A", f'DBURL="text://{self.db_dir}"',
            "-A", f"SIP_LISTEN=udp:{LOOPBACK}:{self.port}",
        ]  # fmt: skip
        self.process = ManagedProcess(
            f"kamailio#{self._starts}",
            args,
            cwd=self.work_dir,
            log_path=self.work_dir / f"kamailio{self._starts}.log",
        )
        self.processes.append(self.process)
        _attach_log(self.request, f"kamailio run {self._starts}", self.process.output)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Ready when an OPTIONS keepalive to the proxy itself is answered."""
        deadline = time.monotonic() + timeout
        attempt = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            probe.settimeout(0.3)
            local_port = probe.getsockname()[1]
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"kamailio exited with rc {self.process.returncode}:\n"
                        + _tail(self.process.output(), 40)
                    )
                attempt += 1
                probe.sendto(_options_probe(self.port, local_port, attempt), (LOOPBACK, self.port))
                with contextlib.suppress(TimeoutError):
                    data = probe.recv(4096)
                    if data.startswith(b"SIP/2.0 200"):
                        return
        raise RuntimeError(f"kamailio not answering OPTIONS on {LOOPBACK}:{self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        """Output of the current run only (each start writes a new log)."""
        return self.process.output() if self.process is not None else ""

    def wait_log(self, text: str, timeout: float) -> float:
        """Wait until the current run logged `text`; returns the seconds waited."""
        started = time.monotonic()
        while text not in self.log_text():
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"kamailio did not log {text!r} within {timeout} s:\n"
                    + _tail(self.log_text(), 40)
                )
            time.sleep(0.1)
        return time.monotonic() - started


def _options_probe(port: int, local_port: int, attempt: int) -> bytes:
    return (
        f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bK-probe-{attempt}\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag=probe{attempt}\r\n"
        f"To: <sip:{LOOPBACK}:{port}>\r\n"
        f"Call-ID: probe-{attempt}@{LOOPBACK}\r\n"
        f"CSeq: {attempt} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def kamailio(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Kamailio]:
    require_peer("kamailio")
    proxy = Kamailio(tmp_path / "kamailio", ports.kamailio_sip, interop_processes, request)
    proxy.start()
    yield proxy
    proxy.stop()


# ---------------------------------------------------------------------------------------------
# tshark


@dataclass
class Capture:
    """A tshark capture on loopback of a UDP port range; analysed with tests.tools."""

    work_dir: Path
    port_range: tuple[int, int]
    processes: list[ManagedProcess]
    pcap: Path = field(init=False)
    process: ManagedProcess | None = None

    def __post_init__(self) -> None:
        self.pcap = self.work_dir / "capture.pcap"

    def start(self, timeout: float = 15.0, max_duration_s: int = 120) -> None:
        low, high = self.port_range
        self.process = ManagedProcess(
            "tshark",
            [
                _which("tshark"), "-i", "lo",
                "-f", f"udp portrange {low}-{high}",
                "-F", "pcap", "-w", str(self.pcap),
                "-a", f"duration:{max_duration_s}",  # a bound even if nobody stops it
            ],
            cwd=self.work_dir,
            log_path=self.work_dir / "tshark.log",
            stop_signal=signal.SIGINT,  # SIGINT makes tshark flush and close the file
        )  # fmt: skip
        self.processes.append(self.process)
        deadline = time.monotonic() + timeout
        while "Capturing on" not in self.process.output():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tshark did not start capturing:\n{self.process.output()}")
            time.sleep(0.05)
        # "Capturing on" is printed just before the capture loop runs: without a short grace
        # the first packets can be missed.
        time.sleep(0.3)

    def stop(self) -> Path:
        if self.process is not None:
            self.process.stop(timeout=10)
        return self.pcap

    def streams(self, **kwargs: Any) -> list[StreamStats]:
        return analyse_streams(read_udp(self.pcap), **kwargs)


@pytest.fixture
def tshark(tmp_path: Path, ports: InteropPorts, interop_processes: list[ManagedProcess]) -> Capture:
    require_peer("tshark")
    work = tmp_path / "capture"
    work.mkdir()
    return Capture(work, ports.all, interop_processes)
