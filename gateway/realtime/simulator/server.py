"""The simulator's WebSocket server: one `SimSession` per connection (model from the URL's
query), the sessions it keeps for inspection (live ones and the last `keep_sessions` finished
ones, issue 14), waiting for the n-th session, and cutting a connection on purpose."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve

from gateway.realtime.simulator.items import Recorded
from gateway.realtime.simulator.options import SimulatorOptions
from gateway.realtime.simulator.sdk import cached_sdk_validator
from gateway.realtime.simulator.session import SimSession

DEFAULT_MODEL = "gpt-realtime"


class Simulator:
    """`await start()`, use `.url`, `await stop()`. Several sessions may run at once."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, options: SimulatorOptions | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.options = options or SimulatorOptions()
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

    async def start(self) -> None:
        if self.options.schema != "builtin":
            # Importing the SDK's models takes about half a second: done here, off the event
            # loop, so that no session (and no call of a gateway serving this simulator
            # in-process) waits for it.
            await asyncio.to_thread(cached_sdk_validator)
        self._server = await ws_serve(
            self._handle, self.host, self.port, compression=None, max_size=16 * 1024 * 1024
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

    async def _handle(self, ws: ServerConnection) -> None:
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
