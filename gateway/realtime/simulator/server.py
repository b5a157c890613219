"""The simulators' WebSocket server: one process serves both APIs, each at its own path.

- Realtime GA, any path but /v1/live... (as before; `url` gives /v1/realtime?model=...): one
  `SimSession` per connection, model from the URL's query.
- GPT-Live at exactly /v1/live/sessions (`live_url`): one `LiveSession`
  (gateway/live/simulator/) per connection, after the handshake checks of `_check_live`.

For each API: the sessions it keeps for inspection (live ones and the last `keep_sessions`
finished ones, issue 14), waiting for the n-th session, and cutting a connection on purpose.
This module imports both simulators: it is the one place that routes between them
(tests/test_architecture.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response

from gateway.live.simulator.options import LiveSimulatorOptions
from gateway.live.simulator.session import LiveSession
from gateway.realtime.simulator.items import Recorded
from gateway.realtime.simulator.options import SimulatorOptions
from gateway.realtime.simulator.sdk import cached_sdk_validator
from gateway.realtime.simulator.session import SimSession

DEFAULT_MODEL = "gpt-realtime"
LIVE_PATH = "/v1/live/sessions"


class Simulator:
    """`await start()`, use `.url`, `await stop()`. Several sessions may run at once."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        options: SimulatorOptions | None = None,
        live_options: LiveSimulatorOptions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.options = options or SimulatorOptions()
        self.live_options = live_options or LiveSimulatorOptions()
        # GPT-Live sessions: live ones and the last `live_options.keep_sessions` finished ones.
        self.live_sessions: dict[str, LiveSession] = {}
        self.live_opened = 0
        self.live_refused: list[tuple[str, int]] = []  # (path, HTTP status) of refused upgrades
        self._live_finished: deque[str] = deque()
        self._new_live_session = asyncio.Condition()
        self._starts_faulted = 0  # session.start seen so far, for the start faults
        # Live sessions and the last `options.keep_sessions` finished ones, in opening order.
        self.sessions: dict[str, SimSession] = {}
        self.opened = 0  # sessions opened so far, forgotten ones included
        self._finished: deque[str] = deque()
        self._server: Server | None = None
        self._new_session = asyncio.Condition()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/v1/realtime?model={DEFAULT_MODEL}"

    @property
    def live_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{LIVE_PATH}"

    async def start(self) -> None:
        if self.options.schema != "builtin":
            # Importing the SDK's models takes about half a second: done here, off the event
            # loop, so that no session (and no call of a gateway serving this simulator
            # in-process) waits for it.
            await asyncio.to_thread(cached_sdk_validator)
        self._server = await ws_serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            max_size=16 * 1024 * 1024,
            process_request=self._check_live,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self._server = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_live(self, ws: ServerConnection, request: Request) -> Response | None:
        """The GPT-Live handshake: exactly /v1/live/sessions, no query, a Bearer token.

        UNKNOWN (gpt-live-protocol.md section 12): how the real server refuses a query string
        or another path under /v1/live (the status codes here are our choice: 400 and 404),
        and whether it answers a missing or malformed key with 401 as the rest of the OpenAI
        API does (assumed). Realtime paths pass through unchanged."""
        target = urlsplit(request.path)
        if not target.path.startswith("/v1/live"):
            return None
        status, reason = HTTPStatus.OK, ""
        if target.path != LIVE_PATH:
            status, reason = HTTPStatus.NOT_FOUND, f"No GPT-Live endpoint at {target.path}."
        elif target.query or request.path.endswith("?"):
            status = HTTPStatus.BAD_REQUEST
            reason = "GPT-Live takes no query parameters: put the model in session.start."
        else:
            auth = request.headers.get("Authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                status = HTTPStatus.UNAUTHORIZED
                reason = "Missing bearer authentication in header: Authorization: Bearer <key>."
        if status is HTTPStatus.OK:
            return None
        self.live_refused.append((request.path, int(status)))
        return ws.respond(status, reason + "\n")

    def _start_fault(self) -> str | None:
        """Fault injection: the first `reject_starts` session.start of this process fail
        ("reject"), the next `ignore_starts` get no answer ("ignore")."""
        options = self.live_options
        self._starts_faulted += 1
        if self._starts_faulted <= options.reject_starts:
            return "reject"
        if self._starts_faulted <= options.reject_starts + options.ignore_starts:
            return "ignore"
        return None

    async def _handle_live(self, ws: ServerConnection) -> None:
        session = LiveSession(ws, self.live_options, self._start_fault)
        self.live_opened += 1
        session.ordinal = self.live_opened
        self.live_sessions[session.id] = session
        async with self._new_live_session:
            self._new_live_session.notify_all()
        try:
            await session.run()
        finally:
            self._live_finished.append(session.id)
            while len(self._live_finished) > self.live_options.keep_sessions:
                self.live_sessions.pop(self._live_finished.popleft(), None)

    async def wait_live_session(self, count: int = 1, timeout: float = 5.0) -> LiveSession:  # noqa: ASYNC109 (every wait in the API is bounded)
        """The `count`-th GPT-Live session opened (1-based), waiting for it if needed.
        LookupError if it has finished and been forgotten (raise live keep_sessions)."""

        async def ready() -> LiveSession:
            async with self._new_live_session:
                await self._new_live_session.wait_for(lambda: self.live_opened >= count)
            for session in self.live_sessions.values():
                if session.ordinal == count:
                    return session
            raise LookupError(f"live session {count} finished and was forgotten (keep_sessions)")

        return await asyncio.wait_for(ready(), timeout)

    @property
    def live_client_events(self) -> list[Recorded]:
        """Every kept GPT-Live session's client events, in time order."""
        return sorted(
            (r for s in self.live_sessions.values() for r in s.client_events), key=lambda r: r.t
        )

    @property
    def live_server_events(self) -> list[Recorded]:
        return sorted(
            (r for s in self.live_sessions.values() for r in s.server_events), key=lambda r: r.t
        )

    def drop_live_session(self, session_id: str) -> None:
        """Cut a GPT-Live session's TCP connection: no close frame, no session.closed."""
        self.live_sessions[session_id].drop()

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is not None and urlsplit(ws.request.path).path == LIVE_PATH:
            await self._handle_live(ws)
            return
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        model = (query.get("model") or [DEFAULT_MODEL])[0]
        session = SimSession(ws, self.options, model)
        self.opened += 1
        session.ordinal = self.opened
        self.sessions[session.id] = session
        async with self._new_session:
            self._new_session.notify_all()
        drop = None
        if self.options.drop_after_s > 0:
            drop = asyncio.get_running_loop().call_later(
                self.options.drop_after_s, ws.transport.abort
            )
        try:
            await session.run()
        finally:
            if drop is not None:
                drop.cancel()
            self._forget_old(session)

    def _forget_old(self, finished: SimSession) -> None:
        """Keep the last `keep_sessions` finished sessions; forget older ones (issue 14)."""
        finished.buffer = bytearray()  # the input buffer is no use once the session is over
        self._finished.append(finished.id)
        while len(self._finished) > self.options.keep_sessions:
            self.sessions.pop(self._finished.popleft(), None)

    async def wait_session(self, count: int = 1, timeout: float = 5.0) -> SimSession:  # noqa: ASYNC109 (every wait in the API is bounded)
        """The `count`-th session opened (1-based), waiting for it if needed. LookupError if it
        has finished and been forgotten (raise `keep_sessions`)."""

        async def ready() -> SimSession:
            async with self._new_session:
                await self._new_session.wait_for(lambda: self.opened >= count)
            for session in self.sessions.values():
                if session.ordinal == count:
                    return session
            raise LookupError(f"session {count} finished and was forgotten (keep_sessions)")

        return await asyncio.wait_for(ready(), timeout)

    def drop_session(self, session_id: str) -> None:
        """Cut the session's TCP connection without a close frame (the client sees 1006)."""
        self.sessions[session_id].ws.transport.abort()

    @property
    def client_events(self) -> list[Recorded]:
        return sorted(
            (r for s in self.sessions.values() for r in s.client_events), key=lambda r: r.t
        )

    @property
    def server_events(self) -> list[Recorded]:
        return sorted(
            (r for s in self.sessions.values() for r in s.server_events), key=lambda r: r.t
        )
