"""GPT-Live end to end: the simulator (one process serves both APIs) in a background thread with
its GPT-Live knobs, and `sip-realtime-gateway run` with `[realtime] api = "live"` pointed at its
`/v1/live/sessions`. Built on tests/tools/realtime_gateway.py (the same thread and gateway
factory); this file adds only what GPT-Live needs.

At teardown every client event every GPT-Live session received from the gateway is validated
against `openai.types.live` with unknown keys rejected (tests/live/validate.py), and counted in
the suite-wide audit (tests/tools/live_audit.py).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.live.simulator.options import LiveSimulatorOptions
from gateway.live.simulator.session import LiveSession
from gateway.realtime.simulator import Recorded, SimulatorOptions
from tests.tools import live_audit
from tests.tools.gateway_process import GatewayProcess
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess
from tests.tools.realtime_gateway import SimulatorThread, realtime_gateways

# The simulator's GPT-Live handshake wants a Bearer token (any); `run` sends the key it reads
# from realtime.api_key_env to any URL other than OpenAI's.
LIVE_KEY_ENV = "E2E_LIVE_API_KEY"
LIVE_KEY = "sk-e2e-live"


class LiveSimulatorThread(SimulatorThread):
    """The simulator thread, read on its loop, with accessors for its GPT-Live sessions
    (index = opening order, 0-based)."""

    def __init__(self, live_options: LiveSimulatorOptions) -> None:
        super().__init__(SimulatorOptions(), live_options)

    @property
    def live_url(self) -> str:
        return self.sim.live_url

    def _live(self, index: int) -> LiveSession:
        return list(self.sim.live_sessions.values())[index]

    def live_count(self) -> int:
        return self.call(lambda: len(self.sim.live_sessions))

    def live(self, index: int, fn: Callable[[LiveSession], Any]) -> Any:
        """`fn(session)` run on the simulator's loop (a consistent snapshot)."""
        return self.call(lambda: fn(self._live(index)))

    def live_client_events(self, index: int) -> list[Recorded]:
        return self.live(index, lambda s: list(s.client_events))

    def live_server_events(self, index: int) -> list[Recorded]:
        return self.live(index, lambda s: list(s.server_events))

    def drop_live(self, index: int) -> str:
        """Cut the session's TCP connection (no close frame, no session.closed)."""

        def drop() -> str:
            session = self._live(index)
            self.sim.drop_live_session(session.id)
            return session.id

        return self.call(drop)

    def wait_live(
        self, what: str, predicate: Callable[[list[LiveSession]], bool], timeout: float = 10.0
    ) -> float:
        """Poll `predicate(sessions)` on the simulator's loop (it must not call back into this
        thread object: that would wait on the loop it runs on) until true."""
        return self.wait_until(
            what, lambda: predicate(list(self.sim.live_sessions.values())), timeout
        )


def output_audio(server_events: list[Recorded]) -> bytes:
    """The session's whole output track as sent (silence included), in order."""
    return b"".join(
        base64.b64decode(r.event["delta"])
        for r in server_events
        if r.type == "session.output_audio.delta"
    )


def client_types(records: list[Recorded], audio: bool = False) -> list[str]:
    """Client event types in order; input audio appends left out unless `audio`."""
    return [r.type for r in records if audio or r.type != "session.input_audio.append"]


@contextlib.contextmanager
def live_simulators() -> Iterator[Callable[..., LiveSimulatorThread]]:
    """Factory of started simulators: `sim = factory(delta_ms=20, tool_calls=(...))`
    (LiveSimulatorOptions). On exit each is stopped and every GPT-Live client event of every
    session must validate against openai.types.live (issue 12, "every client event")."""
    started: list[LiveSimulatorThread] = []

    def factory(**options: Any) -> LiveSimulatorThread:
        thread = LiveSimulatorThread(LiveSimulatorOptions(**options))
        thread.start()
        started.append(thread)
        return thread

    yield factory
    events: list[dict[str, Any]] = []
    for thread in started:
        events += thread.all_live_client_events()
        thread.stop()
    problems = live_audit.check_records("e2e simulator", events)
    assert not problems, (
        f"{len(problems)} of {len(events)} GPT-Live client events fail openai.types.live:\n"
        + "\n".join(problems[:10])
    )


@pytest.fixture
def live_sim_factory() -> Iterator[Callable[..., LiveSimulatorThread]]:
    with live_simulators() as factory:
        yield factory


@pytest.fixture
def live_gateway(
    live_sim_factory: Callable[..., LiveSimulatorThread],  # torn down after the gateway
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., GatewayProcess]]:
    """Factory: `gw = live_gateway(sim, {"calls": {...}})`: `run` with api = "live" against
    `sim.live_url` (a Bearer key from the environment, as with any non-OpenAI URL), echo off,
    JSON logs. Teardown: no gateway logged an error (tests.tools.realtime_gateway)."""
    with realtime_gateways(tmp_path, ports, interop_processes, request) as start:

        def start_live(
            sim: LiveSimulatorThread, config: dict[str, Any] | None = None
        ) -> GatewayProcess:
            extra = dict(config or {})
            extra["realtime"] = {
                "api": "live",
                "api_key_env": LIVE_KEY_ENV,
                **extra.get("realtime", {}),
            }
            return start(sim.live_url, extra, env={LIVE_KEY_ENV: LIVE_KEY})

        yield start_live
