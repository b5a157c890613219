"""Routes: matching (request-URI user, To user, header, source network, registrar), first match
wins, the default route, per-route settings, instructions files, and SIGHUP reload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.call_settings import session_config_for
from gateway.config import load_config
from gateway.routes import DEFAULT_ROUTE, CallFacts, RouteTable, facts_from_invite

CONFIG = """
[realtime]
instructions = "Global."

[[registrations]]
registrar = "sip:192.0.2.10:5060"
username = "gw"
name = "pbx"
password = "x"

[[tools]]
name = "crm"
description = "CRM"
url = "http://127.0.0.1:9/crm"

[[tools]]
name = "weather"
description = "Weather"
url = "http://127.0.0.1:9/weather"

[records]
dir = "{records}"

[[routes]]
name = "by-header"
match = {{ header = "X-Route", header_value = "vip" }}
realtime = {{ instructions = "VIP treatment.", voice = "cedar" }}
tools = ["crm"]
recording = true

[[routes]]
name = "sales"
match = {{ request_user_regex = "5\\\\d\\\\d" }}
realtime = {{ instructions_file = "{sales_file}", turn_detection = "server_vad", silence_duration_ms = 700 }}
calls = {{ dtmf_mode = "ignore", transfer_targets = [{{ name = "desk", uri = "sip:200@pbx.example" }}] }}
tools = []

[[routes]]
name = "support-to"
match = {{ to_user = "support" }}
realtime = {{ greeting = "Say hello." }}

[[routes]]
name = "trunk"
match = {{ source_network = "198.51.100.0/24" }}

[[routes]]
name = "from-pbx"
match = {{ registration = "pbx", request_user = "gw" }}
"""


def write_config(tmp_path: Path, sales_text: str = "Sales from a file.") -> Path:
    sales = tmp_path / "sales.txt"
    sales.write_text(sales_text + "\n")
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(records=tmp_path / "records", sales_file=sales))
    return path


def facts(
    user: str = "100",
    to: str = "<sip:100@gw>",
    headers: dict[str, str] | None = None,
    source: str = "203.0.113.5",
) -> CallFacts:
    return facts_from_invite(f"sip:{user}@gw.example", to, list((headers or {}).items()), source)


@pytest.fixture
def table(tmp_path: Path) -> RouteTable:
    return RouteTable.load(load_config(write_config(tmp_path), env={}))


def test_first_match_wins_and_default(table: RouteTable) -> None:
    assert table.select(facts()).name == DEFAULT_ROUTE
    assert table.select(facts(headers={"x-route": "vip"})).name == "by-header"
    # Header names are case-insensitive; values exact.
    assert table.select(facts(headers={"X-ROUTE": "vip"})).name == "by-header"
    assert table.select(facts(headers={"X-Route": "VIP"})).name == DEFAULT_ROUTE
    assert table.select(facts(user="555")).name == "sales"
    assert table.select(facts(user="5555")).name == DEFAULT_ROUTE  # regex must match fully
    # Both match: the earlier route wins.
    assert table.select(facts(user="555", headers={"X-Route": "vip"})).name == "by-header"
    assert table.select(facts(to="Support <sip:support@gw>;tag=1")).name == "support-to"
    assert table.select(facts(source="198.51.100.7")).name == "trunk"
    assert table.select(facts(user="gw", source="192.0.2.10")).name == "from-pbx"
    assert table.select(facts(user="gw", source="192.0.2.11")).name == DEFAULT_ROUTE


def test_route_settings(table: RouteTable) -> None:
    vip = table.route("by-header")
    assert vip is not None
    session = session_config_for(vip.config, "PCMA", vip.instructions)
    assert session.instructions == "VIP treatment." and session.voice == "cedar"
    names = {tool.name for tool in session.tools}
    assert "crm" in names and "weather" not in names and "end_call" in names
    assert vip.recording is True

    sales = table.route("sales")
    assert sales is not None
    assert sales.instructions == "Sales from a file."  # read from instructions_file
    session = session_config_for(sales.config, "PCMU", sales.instructions)
    assert session.turn_detection.silence_duration_ms == 700  # type: ignore[union-attr]
    names = {tool.name for tool in session.tools}
    assert "transfer_call" in names and not {"crm", "weather"} & names
    assert sales.config.calls.dtmf_mode == "ignore"
    assert sales.recording is False  # [records] recording is off and the route says nothing

    support = table.route("support-to")
    assert support is not None and support.config.realtime.greeting == "Say hello."
    assert table.default.instructions == "Global."
    assert {t.name for t in table.default.config.tools} == {"crm", "weather"}


def test_missing_instructions_file_names_the_route(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "sales.txt").unlink()
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match=r"routes\[1\]\.realtime\.instructions_file"):
        RouteTable.load(load_config(path, env={}))


def test_reload_swaps_routes_and_keeps_them_on_a_bad_file(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    gateway = Gateway(load_config(path, env={}), config_path=str(path))
    assert gateway.routes.route("sales").instructions == "Sales from a file."  # type: ignore[union-attr]

    (tmp_path / "sales.txt").write_text("New sales pitch.")
    assert gateway.reload(env={}) is True
    assert gateway.routes.route("sales").instructions == "New sales pitch."  # type: ignore[union-attr]

    good = gateway.routes
    path.write_text(path.read_text() + '\n[[routes]]\nname = "x"\nmatch = { header_regex = "(" }\n')
    assert gateway.reload(env={}) is False
    assert gateway.routes is good


def test_sighup_reloads_routes_in_a_running_gateway(tmp_path: Path, port_block: int) -> None:
    """`run` installs the SIGHUP handler: change the file, signal, see routes.reloaded."""
    path = write_config(tmp_path)
    config = (
        f'[sip]\nhost = "127.0.0.1"\nport = {port_block}\ntransports = ["udp"]\n'
        f"[media]\nrtp_port_min = {port_block + 10}\nrtp_port_max = {port_block + 19}\n"
        '[control]\nenabled = false\n[log]\nformat = "json"\n' + path.read_text()
    )
    path.write_text(
        config.replace(
            'registrar = "sip:192.0.2.10:5060"',
            f'registrar = "sip:127.0.0.1:{port_block + 5}"\nexpires = 60',
        )
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SRG_") and k != "OPENAI_API_KEY"
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(path), "--drain-timeout", "0"],
        cwd=Path(__file__).resolve().parent.parent,
        stderr=subprocess.PIPE,
        env=env,
    )
    lines: list[dict[str, object]] = []

    def wait_for(event: str, timeout: float = 15.0) -> dict[str, object]:
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = proc.stderr.readline()
            if not raw:
                break
            try:
                parsed = json.loads(raw)
            except ValueError:
                continue
            lines.append(parsed)
            if parsed.get("event") == event:
                return parsed
        raise AssertionError(f"no {event}: {[e.get('event') for e in lines]}")

    try:
        started = wait_for("gateway.started")
        assert "trunk" in started["routes"]  # type: ignore[operator]
        path.write_text(path.read_text().replace('name = "trunk"', 'name = "trunk2"'))
        proc.send_signal(signal.SIGHUP)
        reloaded = wait_for("routes.reloaded")
        assert "trunk2" in reloaded["routes"]  # type: ignore[operator]
        path.write_text(path.read_text() + "\n[[routes]]\nname = 7\n")
        proc.send_signal(signal.SIGHUP)
        failed = wait_for("routes.reload_failed")
        assert "routes[5].name" in str(failed["error"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_run_exits_2_when_a_route_instructions_file_is_missing(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "sales.txt").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("SRG_")},
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "routes[1].realtime.instructions_file" in result.stderr
