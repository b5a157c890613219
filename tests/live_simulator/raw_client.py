"""A raw GPT-Live client for the simulator's conformance tests: JSON frames over a plain
`websockets` connection, every received event kept in order, and bounded waits on conditions
(tests/tools/wait.py) instead of sleeps. Nothing of the gateway's own live client is used, so
these tests say what the simulator puts on the wire, not what a client makes of it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.tools.wait import async_wait_until

T = 10.0  # bound of every wait, never a timing assertion
FRAME = 160  # 20 ms of G.711
G711 = {"type": "audio/pcmu", "rate": 8000}


class RawLiveClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.closed: ConnectionClosed | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str | None = "sk-test") -> RawLiveClient:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        ws = await connect(url, additional_headers=headers, compression=None, max_size=None)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                self.events.append(orjson.loads(frame))
        except ConnectionClosed as exc:
            self.closed = exc
        else:
            self.closed = self.ws.close_exc  # type: ignore[assignment]

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def start(self, **session: Any) -> dict[str, Any]:
        """session.start with `session` (model and G.711 u-law by default); session.started."""
        config = {"model": "gpt-live-1", "audio": {"format": G711}, **session}
        await self.send({"type": "session.start", "session": config})
        return await self.wait_for(lambda e: e["type"] == "session.started")

    async def append(self, audio: bytes, chunk: int = FRAME) -> None:
        """Input audio in `chunk`-byte appends, as fast as the socket takes them: the session
        clock is input audio time, so a test need not wait for real time to pass."""
        for start in range(0, len(audio), chunk):
            piece = base64.b64encode(audio[start : start + chunk]).decode()
            await self.send({"type": "session.input_audio.append", "audio": piece})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def output_audio(self, since: int = 0) -> bytes:
        return b"".join(
            base64.b64decode(e["delta"])
            for e in self.events[since:]
            if e["type"] == "session.output_audio.delta"
        )

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], since: int = 0, within: float = T
    ) -> dict[str, Any]:
        """The first event from index `since` on that satisfies `predicate`."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[since:] if predicate(e)), None)

        return await async_wait_until(found, within, "a matching server event")

    async def wait_closed(self, within: float = T) -> ConnectionClosed:
        await async_wait_until(lambda: self._reader.done(), within, "the socket to close")
        assert self.closed is not None
        return self.closed

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
