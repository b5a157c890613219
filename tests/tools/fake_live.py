"""A small in-test GPT-Live server (not the simulator): enough of the protocol to drive
gateway/live/client.py and a live CallSession, scripted by the test.

Every frame it receives is checked with tests/live/validate.py (a failure is kept in
`invalid` and the test fixture asserts it is empty); every server event it sends is checked
against openai.types.live too, so the tests speak the real protocol. The test decides what
the "model" says by calling `send(...)` / the helpers.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.live.validate import check_live_client_event, check_live_server_event


class FakeLive:
    def __init__(
        self,
        *,
        echo_format: dict[str, Any] | None = None,
        refuse: dict[str, Any] | None = None,
        silent: bool = False,
        answer_close: bool = True,
        expires_in_s: float = 3600.0,
    ) -> None:
        self.echo_format = echo_format  # None: echo what the client asked for
        self.refuse = refuse  # an `error` body instead of session.started
        self.silent = silent  # never answer session.start
        self.answer_close = answer_close
        self.expires_in_s = expires_in_s
        self.received: list[dict[str, Any]] = []  # every client event, in order, per server
        self.invalid: list[str] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) per connection
        self.connections: list[ServerConnection] = []
        self.sessions = 0
        self.changed = asyncio.Event()
        self._seq = 0
        self.url = ""

    # -- what the test uses ------------------------------------------------------------------

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e.get("type") == kind]

    def types(self) -> list[str]:
        return [e["type"] for e in self.received if e.get("type") != "session.input_audio.append"]

    async def send(self, event: dict[str, Any], connection: int = -1) -> None:
        check_live_server_event(event)
        await self.connections[connection].send(orjson.dumps(event).decode())

    async def send_raw(self, frame: str | bytes, connection: int = -1) -> None:
        """Anything at all (hostile input, event types the SDK does not know)."""
        await self.connections[connection].send(frame)

    def event_id(self) -> str:
        self._seq += 1
        return f"srv_{self._seq}"

    async def audio(self, g711: bytes, connection: int = -1) -> None:
        delta = base64.b64encode(g711).decode()
        await self.send({"type": "session.output_audio.delta", "delta": delta}, connection)

    async def transcript(self, kind: str, text: str, connection: int = -1) -> None:
        event = {
            "type": f"session.{kind}_transcript.delta",
            "event_id": self.event_id(),
            "delta": text,
            "start_ms": 0,
            "end_ms": 200,
        }
        await self.send(event, connection)

    async def function_call(
        self, call_id: str, name: str, arguments: str, delegation_id: str = "item_1"
    ) -> None:
        item = {
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
        nested = {"type": "response.output_item.done", "item": item, "output_index": 0}
        event = {
            "type": "response.event",
            "event_id": self.event_id(),
            "delegation_id": delegation_id,
            "event": nested,
        }
        await self.send(event)

    async def delegation(self, delegation_id: str = "item_1") -> None:
        event = {
            "type": "session.delegation.created",
            "event_id": self.event_id(),
            "offset_ms": 0,
            "delegation": {"id": delegation_id, "type": "delegation", "target": "responses"},
        }
        await self.send(event)

    async def usage(self, seconds: float) -> None:
        event = {
            "type": "session.usage.updated",
            "event_id": self.event_id(),
            "usage": {"seconds": seconds},
        }
        await self.send(event)

    async def closed(self, reason: str, connection: int = -1) -> None:
        await self.send(self._closed_event(reason), connection)

    async def wait(self, predicate: Any, within: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError("fake live server: condition not met in time")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass

    # -- the server --------------------------------------------------------------------------

    def _session(self, start: dict[str, Any]) -> dict[str, Any]:
        session = start["session"]
        fmt = self.echo_format or session.get("audio", {}).get("format")
        return {
            "id": f"live_{self.sessions}",
            "expires_at": int(time.time() + self.expires_in_s),
            "model": session["model"],
            "status": "active",
            "audio": {"format": fmt, "output": {"voice": "marin"}},
            "input": session.get("input", []),
        }

    def _closed_event(self, reason: str) -> dict[str, Any]:
        return {
            "type": "session.closed",
            "event_id": self.event_id(),
            "reason": reason,
            "session": {"id": "live_x", "expires_at": 0, "model": "gpt-live-1", "status": "active"},
            "usage": {"seconds": 1.0},
        }

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.requests.append((ws.request.path, dict(ws.request.headers.raw_items())))
        self.connections.append(ws)
        self.changed.set()
        try:
            await self._serve(ws)
        except ConnectionClosed:
            pass  # a test dropping the socket, or the client going away
        finally:
            self.changed.set()

    async def _serve(self, ws: ServerConnection) -> None:
        async for message in ws:
            try:
                check_live_client_event(message)
            except AssertionError as exc:
                self.invalid.append(str(exc))
            event = orjson.loads(message)
            self.received.append(event)
            self.changed.set()
            kind = event.get("type")
            if kind == "session.start" and not self.silent:
                if self.refuse is not None:
                    error = {"type": "error", "event_id": self.event_id(), "error": self.refuse}
                    await ws.send(orjson.dumps(error).decode())
                    continue
                self.sessions += 1
                started = {
                    "type": "session.started",
                    "event_id": self.event_id(),
                    "session": self._session(event),
                }
                if "event_id" in event:
                    started["client_event_id"] = event["event_id"]
                check_live_server_event(started)
                await ws.send(orjson.dumps(started).decode())
            elif kind == "session.close" and self.answer_close:
                await ws.send(orjson.dumps(self._closed_event("close_requested")).decode())
                await ws.close()


@asynccontextmanager
async def fake_live(**options: Any) -> AsyncIterator[FakeLive]:
    server = FakeLive(**options)
    async with serve(server._handler, "127.0.0.1", 0, compression=None) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        server.url = f"ws://127.0.0.1:{port}/v1/live/sessions"
        yield server
    assert not server.invalid, server.invalid
