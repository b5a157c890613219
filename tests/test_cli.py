"""The command line: help, version, exit codes, and a real `run` answering OPTIONS then SIGTERM."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import EXIT_CONFIG, main
from gateway.observe.logs import configure_logging, log_event

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _reaped(proc: subprocess.Popen[str]) -> Iterator[None]:
    """Kill `proc` on the way out if the test left it running (a failed assertion)."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_lists_subcommands_and_flags() -> None:
    top = cli("--help")
    assert top.returncode == 0
    assert "run" in top.stdout and "simulator" in top.stdout
    run = cli("run", "--help")
    assert run.returncode == 0
    for flag in (
        "--config",
        "--sip-host",
        "--sip-port",
        "--advertised-host",
        "--rtp-ports",
        "--max-calls",
        "--realtime-url",
        "--log-level",
        "--log-format",
    ):
        assert flag in run.stdout


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("sip-realtime-gateway ")


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[sip]\nport = 70000\n", encoding="utf-8")
    result = cli("run", "--config", str(config))
    assert result.returncode == 2
    assert "sip.port: 70000 is not a valid port" in result.stderr


def test_unknown_key_and_bad_flags_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("[media]\nrtp_port_mn = 10000\n", encoding="utf-8")
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG
    assert "media.rtp_port_mn: unknown key" in capsys.readouterr().err
    assert main(["run", "--rtp-ports", "abc"]) == EXIT_CONFIG
    assert "--rtp-ports: 'abc' is not MIN-MAX" in capsys.readouterr().err
    assert main(["run", "--log-format", "xml"]) == EXIT_CONFIG  # argparse usage error
    assert main([]) == EXIT_CONFIG  # no command: usage on stderr


def test_env_error_exits_2_naming_the_variable() -> None:
    result = cli("run", env={"SRG_SIP_PORT": "abc"})
    assert result.returncode == 2
    assert "SRG_SIP_PORT: 'abc' is not an integer" in result.stderr


class LogReader:
    """Reads a child's stderr JSON lines on a thread so every wait has a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stderr is not None
        self._thread = threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)

    def wait_event(self, event: str, timeout: float = 20.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                return record
        raise AssertionError(f"no {event!r} log line; got:\n{''.join(self.seen)}")


def run_args(port_block: int, *extra: str, control_port: int = 0) -> list[str]:
    """`run` on this test's port block: SIP on its first port, RTP on +2..+37, the control API
    on `control_port` (0: any free port, never the fixed default 8080), JSON logs."""
    return [
        "run",
        *extra,
        "--sip-host",
        "127.0.0.1",
        "--sip-port",
        str(port_block),
        "--rtp-ports",
        f"{port_block + 2}-{port_block + 37}",
        "--control-port",
        str(control_port),
        "--log-format",
        "json",
    ]


def options_request(port: int, local_port: int) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:12]
    return (
        f"OPTIONS sip:gw@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:gw@127.0.0.1:{port}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_run_answers_options_and_stops_on_sigterm(port_block: int) -> None:
    sip_port = port_block
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", *run_args(port_block)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Control API on a free port (never the fixed default 8080 in tests).
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SRG_")},
            "SRG_CONTROL_PORT": "0",
        },
    )
    with _reaped(proc):
        logs = LogReader(proc)
        started = logs.wait_event("gateway.started")
        assert started["port"] == sip_port
        assert started["control"].startswith("http://127.0.0.1:")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5.0)
            request = options_request(sip_port, sock.getsockname()[1])
            reply = b""
            for _ in range(3):  # UDP: retransmit like Timer E would
                sock.sendto(request, ("127.0.0.1", sip_port))
                try:
                    reply = sock.recv(65535)
                    break
                except TimeoutError:
                    continue
        assert reply.startswith(b"SIP/2.0 200"), reply[:200]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        logs.wait_event("gateway.stopped", timeout=5)


def test_run_port_in_use_exits_1_naming_the_address(port_block: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", port_block))
        result = cli(*run_args(port_block))
    assert result.returncode == 1
    assert f"127.0.0.1:{port_block}" in result.stderr


# -- the logging contract ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _restore_root_logger() -> Any:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit(stream: io.StringIO, fmt: str) -> str:
    configure_logging("INFO", fmt, stream)
    log = logging.getLogger("gateway.test")
    log_event(
        log,
        "call.offered",
        "call from alice",
        call_id="abc@host",
        **{"from": "<sip:alice@example.com>"},
        password="hunter2",
    )
    log.debug("not shown at INFO", extra={"event": "test.debug"})
    log.warning("plain line from a library", extra={"call_id": "abc@host"})
    return stream.getvalue()


def test_json_lines_carry_the_contract_fields() -> None:
    lines = _emit(io.StringIO(), "auto").splitlines()  # not a TTY: JSON
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "call.offered"
    assert first["level"] == "info"
    assert first["message"] == "call from alice"
    assert first["call_id"] == "abc@host"
    assert first["from"] == "<sip:alice@example.com>"
    assert first["password"] == "***"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    # Lines without an explicit event still have one, and keep plain `extra` fields.
    assert second["event"] == "log"
    assert second["level"] == "warning"
    assert second["call_id"] == "abc@host"


def test_text_on_a_tty_and_forced_json() -> None:
    text = _emit(_Tty(), "auto")
    assert "call.offered" in text and "call_id=abc@host" in text
    assert "hunter2" not in text
    assert not text.lstrip().startswith("{")
    forced = _emit(_Tty(), "json")
    assert json.loads(forced.splitlines()[0])["event"] == "call.offered"


def test_exceptions_are_one_json_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("gateway.test").exception("it failed", extra={"event": "call.error"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "call.error"
    assert "ValueError: boom" in record["exc"]


def test_simulator_subcommand_delegates(port_block: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "simulator", "--port", str(port_block)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with _reaped(proc):
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(
            target=lambda: [lines.put(line) for line in proc.stdout],  # type: ignore[union-attr]
            daemon=True,
        ).start()
        line = lines.get(timeout=20)
        assert f"127.0.0.1:{port_block}" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_drain_timeout_flag_overrides_the_config(tmp_path: Path) -> None:
    from gateway.cli import build_parser
    from gateway.cli_args import overrides_from_args
    from gateway.config import load_config

    config_path = tmp_path / "gw.toml"
    config_path.write_text("[shutdown]\ndrain_timeout_s = 12\n")
    args = build_parser().parse_args(["run", "--config", str(config_path)])
    assert load_config(args.config, {}, overrides_from_args(args)).shutdown.drain_timeout_s == 12
    args = build_parser().parse_args(["run", "--config", str(config_path), "--drain-timeout", "3"])
    assert load_config(args.config, {}, overrides_from_args(args)).shutdown.drain_timeout_s == 3
    result = cli("run", "--config", str(config_path), "--drain-timeout", "-5")
    assert result.returncode == EXIT_CONFIG
    assert "shutdown.drain_timeout_s: -5.0" in result.stderr


# -- issue 10: the edges a newcomer hits -------------------------------------------------------


def test_busy_sip_port_says_in_use_and_names_the_flag(port_block: int) -> None:
    """Bind the port first, run the gateway on it: stderr says "in use" and "--sip-port"."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", port_block))
        result = cli(*run_args(port_block))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sip-realtime-gateway: error: cannot start: SIP port"), last
    assert f"127.0.0.1:{port_block} is in use" in last
    assert "--sip-port (sip.port)" in last


def test_busy_control_port_says_in_use_and_names_the_flag(port_block: int) -> None:
    control_port = port_block + 38  # inside this test's block (RTP ends at +37)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", control_port))
        busy.listen(1)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *run_args(port_block, control_port=control_port)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "SRG_CONTROL_TOKEN_FILE": ""},
        )
        with _reaped(proc):
            logs = LogReader(proc)
            record = logs.wait_event("control.start_failed", timeout=30)
            message = str(record["message"])
            assert f"127.0.0.1:{control_port} is in use" in message, message
            assert "--control-port (control.port)" in message
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0


def test_control_port_flag_sets_the_key() -> None:
    from gateway.cli import build_parser
    from gateway.cli_args import overrides_from_args

    args = build_parser().parse_args(["run", "--control-port", "9191"])
    assert overrides_from_args(args)["control.port"] == 9191
    from gateway import doctor

    args = build_parser().parse_args(["check", "--control-port", "9192"])
    assert args.control_port == 9192 and "control_port" in doctor._OVERRIDE_FLAGS
    assert "--control-port" in cli("run", "--help").stdout


def _start_simulator(*args: str, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    def ignore() -> None:  # as a non-interactive shell does for `cmd &`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "simulator", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore if ignore_sigint else None,
    )


def _first_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout],  # type: ignore[union-attr]
        daemon=True,
    ).start()
    return lines.get(timeout=timeout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_simulator_exits_on_signal_even_with_sigint_ignored(port_block: int, sig: int) -> None:
    proc = _start_simulator("--port", str(port_block), ignore_sigint=True)
    with _reaped(proc):
        assert f"127.0.0.1:{port_block}" in _first_line(proc)
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0  # bounded wait: it exits, not hangs


def test_simulator_busy_port_names_the_flag(port_block: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", port_block))
        busy.listen(1)
        result = cli("simulator", "--port", str(port_block))
    assert result.returncode == 1
    assert f"127.0.0.1:{port_block} is in use" in result.stderr
    assert "--port" in result.stderr


def test_simulator_flags_reach_its_options(tmp_path: Path) -> None:
    from gateway.cli import build_parser
    from gateway.realtime.simulator import SimulatorOptions, ToolCallRule
    from gateway.realtime.simulator.cli import options_from_args

    reply = tmp_path / "reply.ul"
    reply.write_bytes(b"\xff" * 160)
    script = tmp_path / "script.json"
    script.write_text(
        '{"tool_calls": [{"name": "end_call", "when_text_contains": "bye"}], '
        '"transcripts": ["from script"], "drop_after_s": 9}'
    )
    args = build_parser().parse_args(
        [
            "simulator",
            "--script",
            str(script),
            "--reply-audio",
            str(reply),
            "--reply-format",
            "audio/pcma",
            "--reply-text",
            "hello",
            "--transcript",
            "hi",
            "--transcript",
            "bye",
            "--session-max-s",
            "60",
            "--default-reply-ms",
            "500",
            "--delta-interval-s",
            "0.01",
            "--vad-db-at-half",
            "-35",
        ]
    )
    options = SimulatorOptions.from_mapping(options_from_args(args))
    assert options.reply_audio == b"\xff" * 160 and options.reply_format == "audio/pcma"
    assert options.reply_text == "hello"
    assert options.transcripts == ("hi", "bye")  # the flag wins over the script
    assert options.tool_calls == (ToolCallRule("end_call", when_text_contains="bye"),)
    assert options.session_max_s == 60 and options.default_reply_ms == 500
    assert options.delta_interval_s == 0.01 and options.vad_db_at_half == -35
    assert options.drop_after_s == 9


def test_simulator_bad_options_exit_2(tmp_path: Path) -> None:
    result = cli("simulator", "--reply-audio", str(tmp_path / "missing.ul"))
    assert result.returncode == 2 and "cannot read --reply-audio" in result.stderr
    script = tmp_path / "s.json"
    script.write_text('{"colour": 1}')
    result = cli("simulator", "--script", str(script))
    assert result.returncode == 2 and "unknown simulator option(s): colour" in result.stderr


def test_run_warns_about_a_model_near_its_shutdown(tmp_path: Path, port_block: int) -> None:
    """gpt-realtime shuts down on 2027-01-20: within 60 days of the session's date (2026-12)."""
    from datetime import date

    from gateway.doctor import model_warnings

    config = tmp_path / "gw.toml"
    config.write_text('[realtime]\nmodel = "gpt-realtime"\n')
    from gateway.config import load_config

    warnings = model_warnings(load_config(config, env={}), today=date(2026, 12, 6))
    assert warnings == [
        "realtime.model 'gpt-realtime' shuts down on 2027-01-20 (in 45 days); "
        "switch to 'gpt-realtime-2.1'"
    ]
    # `run` logs what model_warnings says for today's date (checked above for 2026-12-06).
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", *run_args(port_block, "--config", str(config))],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with _reaped(proc):
        logs = LogReader(proc)
        expected = model_warnings(load_config(config, env={}))
        if expected:
            record = logs.wait_event("realtime.model_shutdown")
            assert record["level"] == "warning" and record["message"] == expected[0]
        logs.wait_event("gateway.started", timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_run_exits_on_sigint_even_when_started_with_it_ignored(port_block: int) -> None:
    """`sip-realtime-gateway run &` in a script inherits SIGINT ignored; Ctrl-C semantics hold."""

    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", *run_args(port_block)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore,
    )
    with _reaped(proc):
        logs = LogReader(proc)
        logs.wait_event("gateway.started", timeout=30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
