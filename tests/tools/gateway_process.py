"""The gateway under test as a subprocess (`python -m gateway run`): its TOML config, a hermetic
environment, and its JSON log parsed by a background thread so a test can wait for events.

Used by the interop, end-to-end and attack suites (tests/conftest.py builds the fixtures) and by
tests that start several instances themselves (tests/interop/test_dispatcher.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.tools.control import TEST_CONTROL_TOKEN, TEST_CONTROL_TOKEN_ENV
from tests.tools.ports import InteropPorts
from tests.tools.process import LOG_TAIL_LINES, ManagedProcess, attach_log, tail

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
GATEWAY_START_TIMEOUT_S = 20.0


def python_executable() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# ---------------------------------------------------------------------------------------------
# Configuration


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


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, one level deep: a section in both gets its keys merged."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def hermetic_env() -> dict[str, str]:
    """No OpenAI key and no SRG_* overrides from the developer's shell leak into a test."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SRG_") and k != "OPENAI_API_KEY"
    }
    env["PYTHONUNBUFFERED"] = "1"
    # The control API requires a token (issue 9): configs name this variable in token_env.
    env[TEST_CONTROL_TOKEN_ENV] = TEST_CONTROL_TOKEN
    return env


# ---------------------------------------------------------------------------------------------
# The process and its log


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
        return tail(self.log_text(), lines)

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


def launch_gateway(
    name: str,
    config: dict[str, Any],
    work_dir: Path,
    *,
    ports: InteropPorts,
    processes: list[ManagedProcess],
    request: pytest.FixtureRequest | None = None,
    cli_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    process_name: str | None = None,
    wait_started: bool = True,
) -> GatewayProcess:
    """Write `config` to `work_dir/<name>.toml`, start `python -m gateway run --config ...
    <cli_args>` (stopped with `processes` at teardown) and, unless `wait_started` is false, return
    once `gateway.started` was logged (or raise with the log).

    `env`: extra variables over `hermetic_env()`. `cwd`: `python -m gateway` imports the
    package from its working directory first (E2E_GATEWAY_ROOT points it at another build)."""
    config_path = work_dir / f"{name}.toml"
    config_path.write_text(to_toml(config))
    args = [python_executable(), "-m", "gateway", "run", "--config", str(config_path), *cli_args]
    process = ManagedProcess(
        process_name or name,
        args,
        cwd=cwd,
        log_path=work_dir / f"{name}.stdout.log",
        env={**hermetic_env(), **(env or {})},
        capture_stderr=True,
    )
    processes.append(process)
    gw = GatewayProcess(process, config_path, ports)
    if request is not None:
        # Registered once the reader exists so a failing test gets the JSON log attached.
        label = process_name or name
        attach_log(request, f"{label} log ({config_path.name})", gw.log_text)
        attach_log(request, f"{label} config", config_path.read_text)
    if wait_started:
        gw.wait_event("gateway.started", timeout=GATEWAY_START_TIMEOUT_S)
    return gw
