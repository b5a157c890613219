"""The Realtime simulator served from a background thread, and the gateway bridged to it
(`run --realtime-url`, echo off, no API key): the harness of the end-to-end and attack suites.

The simulator runs in the test process, on its own event loop in a background thread (the
real-peer harness is synchronous). Everything it records is read through its own loop
(`SimulatorThread.call`) so the test thread never sees a list while the loop mutates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.realtime.simulator import Recorded, SimSession, Simulator, SimulatorOptions
from tests.realtime.validate import check_client_event
from tests.tools import live_audit
from tests.tools.control import TEST_CONTROL_TOKEN_ENV
from tests.tools.gateway_process import (
    GATEWAY_START_TIMEOUT_S,
    LOOPBACK,
    REPO_ROOT,
    GatewayProcess,
    launch_gateway,
    merge_config,
)
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess
from tests.tools.wait import wait_until

# The gateway's source tree (default: this checkout). Point it elsewhere (e.g. a `git archive`
# of a commit) to run the suite against another build of the product.
GATEWAY_ROOT = Path(os.environ.get("E2E_GATEWAY_ROOT") or REPO_ROOT)
SIM_START_TIMEOUT_S = 10.0
SIM_CALL_TIMEOUT_S = 10.0

T = TypeVar("T")


class SimulatorThread:
    """A `Simulator` served from a background thread; all access goes through its loop."""

    def __init__(self, options: SimulatorOptions, live_options: Any = None) -> None:
        """`live_options`: a LiveSimulatorOptions for the GPT-Live side (tests/tools/live_gateway.py)."""
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.sim = Simulator("127.0.0.1", 0, options, live_options)  # port 0: the OS picks
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._stopped = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(SIM_START_TIMEOUT_S)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(SIM_START_TIMEOUT_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return self.sim.url

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the simulator's loop and return its result (a consistent snapshot)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(SIM_CALL_TIMEOUT_S)

    def sessions(self) -> list[SimSession]:
        return self.call(lambda: list(self.sim.sessions.values()))

    def client_events(self, session: int) -> list[Recorded]:
        """Client events of the `session`-th session (0-based), in arrival order."""
        return self.call(lambda: list(list(self.sim.sessions.values())[session].client_events))

    def all_live_client_events(self) -> list[dict[str, Any]]:
        """Every client event of every GPT-Live session (the same server's /v1/live/sessions)."""
        return self.call(
            lambda: [
                r.event for s in self.sim.live_sessions.values() for r in list(s.client_events)
            ]
        )

    def server_events(self, session: int) -> list[Recorded]:
        return self.call(lambda: list(list(self.sim.sessions.values())[session].server_events))

    def all_client_events(self) -> list[Recorded]:
        return self.call(
            lambda: [r for s in self.sim.sessions.values() for r in list(s.client_events)]
        )

    def drop_session(self, session: int) -> str:
        """Cut the `session`-th session's TCP connection (no close frame); returns its id."""

        def drop() -> str:
            target = list(self.sim.sessions.values())[session]
            self.sim.drop_session(target.id)
            return target.id

        return self.call(drop)

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> float:
        """Poll `predicate` (run on the simulator loop) until true; returns time.time() then."""
        wait_until(lambda: self.call(predicate), timeout, f"simulator: {what}", interval=0.02)
        return time.time()

    def session_config(self, session: int) -> dict[str, Any]:
        """The session's configuration as the simulator applied it (after session.update)."""
        return self.call(lambda: copy.deepcopy(list(self.sim.sessions.values())[session].config))

    def session_count(self) -> int:
        return self.call(lambda: len(self.sim.sessions))


def invalid_client_events(records: list[Recorded]) -> list[str]:
    """Why each recorded client event fails openai.types.realtime (unknown keys rejected)."""
    problems: list[str] = []
    for record in records:
        try:
            check_client_event(record.event)
        except AssertionError as exc:
            problems.append(str(exc)[:500])
    return problems


@contextlib.contextmanager
def simulators() -> Iterator[Callable[..., SimulatorThread]]:
    """Factory of started simulators: `sim = factory(reply_audio=..., tool_calls=(...))`
    (SimulatorOptions). On exit each is stopped, and every client event of every session must
    validate against openai.types.realtime (issue 4, "every client event validates")."""
    started: list[SimulatorThread] = []

    def factory(**options: Any) -> SimulatorThread:
        thread = SimulatorThread(SimulatorOptions(**options))
        thread.start()
        started.append(thread)
        return thread

    yield factory
    records: list[Recorded] = []
    live_events: list[dict[str, Any]] = []
    for thread in started:
        records += thread.all_client_events()
        # The same process serves GPT-Live: a gateway routed there (api = "live") is checked
        # against openai.types.live (tests/tools/live_audit.py, issue 12).
        live_events += thread.all_live_client_events()
        thread.stop()
    problems = invalid_client_events(records)
    assert not problems, (
        f"{len(problems)} of {len(records)} client events fail the GA schema:\n"
        + "\n".join(problems[:10])
    )
    live_problems = live_audit.check_records("e2e simulator", live_events)
    assert not live_problems, (
        f"{len(live_problems)} of {len(live_events)} GPT-Live client events fail "
        "openai.types.live:\n" + "\n".join(live_problems[:10])
    )


@contextlib.contextmanager
def realtime_gateways(
    work_dir: Path,
    ports: InteropPorts,
    processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., GatewayProcess]]:
    """Factory: `gw = start(sim.url, {"calls": {...}})`: `run --realtime-url URL`, echo off,
    no API key, JSON logs; returns once `gateway.started` was logged.

    On exit: no gateway logged an error-level line (a failed action, a crashed task) or an
    illegal state-machine event; neither fails a call outright, so only this check catches
    them."""
    counter = itertools.count(1)
    started: list[GatewayProcess] = []

    def start(
        realtime_url: str,
        config: dict[str, Any] | None = None,
        *,
        sip_host: str = LOOPBACK,
        env: dict[str, str] | None = None,
    ) -> GatewayProcess:
        """`sip_host`: bind SIP elsewhere than loopback (a veth address, tests/tools/netns.py).
        `env`: extra environment variables (e.g. the API key a GPT-Live endpoint needs)."""
        index = next(counter)
        rtp_min, rtp_max = ports.gateway_rtp
        base: dict[str, Any] = {
            "sip": {"host": sip_host, "port": ports.gateway_sip},
            "media": {"rtp_port_min": rtp_min, "rtp_port_max": rtp_max, "echo": False},
            "log": {"level": "INFO", "format": "json"},
            # The control API's token (issue 9): hermetic_env sets the variable.
            "control": {"token_env": TEST_CONTROL_TOKEN_ENV},
        }
        cli_args = [
            "--sip-host", sip_host,
            "--sip-port", str(ports.gateway_sip),
            "--rtp-ports", f"{rtp_min}-{rtp_max}",
            "--realtime-url", realtime_url,
            "--log-format", "json",
        ]  # fmt: skip
        gw = launch_gateway(
            f"e2e_gateway{index}",
            merge_config(base, config or {}),
            work_dir,
            ports=ports,
            processes=processes,
            request=request,
            cli_args=cli_args,
            # The control API's fixed default port (8080) would collide between gateways of
            # parallel test runs; 0 = any free port. Builds without a control API ignore it.
            env={"SRG_CONTROL_PORT": "0", **(env or {})},
            cwd=GATEWAY_ROOT,
            process_name=f"gateway{index}",
            wait_started=False,
        )
        started.append(gw)
        gw.wait_event("gateway.started", timeout=GATEWAY_START_TIMEOUT_S)
        return gw

    yield start
    errors = [
        json.dumps(event)[:1500]
        for gw in started
        for event in list(gw.events)
        if str(event.get("level", "")).lower() in ("error", "critical")
        # An event the state machine has no row for: a protocol race nobody reviewed.
        or event.get("event") == "call.illegal_event"
    ]
    assert not errors, "the gateway logged errors:\n" + "\n".join(errors)
