"""One Realtime WebSocket session (GA): connect, configure, stream audio, receive typed events.

The socket machinery (the ordered outbound queue with its synchronous fast path, server
messages handled in the read callback, the lost-connection event) is gateway/wsock.py's
`WebSocketLink`, shared with the GPT-Live client; this module adds what is Realtime's: the
endpoint, `session.created`, `session.update` and its confirmation, the append frame.

Reconnect/replay policy is not here: the call session decides. It gets `ConnectionLost` from
`events()` and can build a fresh `RealtimeClient` from the same `Endpoint` and `SessionConfig`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from gateway.realtime import events as ev
from gateway.realtime import protocol
from gateway.wsock import _CLOSE_SENTINEL as _CLOSE_SENTINEL
from gateway.wsock import DEFAULT_QUEUE_FRAMES, WebSocketLink, azure_host
from gateway.wsock import ClientStats as ClientStats
from gateway.wsock import Endpoint as WsEndpoint
from gateway.wsock import _MaskKeys as _MaskKeys
from gateway.wsock import masked_text_frame as masked_text_frame
from sip.admission import TokenBucket

__all__ = ["ClientStats", "Endpoint", "RealtimeClient", "RealtimeError", "open_session"]

log = logging.getLogger(__name__)

_REJECTED_LOG_BURST = 20  # realtime.server_event_rejected lines a minute, all sessions together


class _LogBudget:
    """A process-wide token bucket for one kind of warning; what it holds back is counted."""

    def __init__(self, per_minute: int) -> None:
        self.bucket = TokenBucket(per_minute / 60.0, per_minute)
        self.suppressed = 0

    def take(self) -> bool:
        if self.bucket.take(time.monotonic()):
            return True
        self.suppressed += 1
        return False


_rejected_log_budget = _LogBudget(_REJECTED_LOG_BURST)


def _problem_logger(client: weakref.ref[RealtimeClient]) -> Callable[[str], None]:
    def log_problem(problem: str) -> None:
        alive = client()
        if alive is not None:
            alive._log_problem(problem)

    return log_problem


MAX_FRAME = 16 * 1024 * 1024  # conversation.item.retrieved carries whole audio items


class RealtimeError(Exception):
    """The session could not be opened or configured; `.error` holds the server's error event."""

    def __init__(self, message: str, error: ev.ErrorEvent | None = None) -> None:
        if error is not None:
            message = f"{message}: {error.describe()}"
        super().__init__(message)
        self.error = error


class Endpoint(WsEndpoint):
    """Where to connect and which headers to send. Never an `OpenAI-Beta` header (GA only)."""

    __slots__ = ()

    @classmethod
    def openai(
        cls, api_key: str, model: str, base_url: str = "wss://api.openai.com/v1/realtime"
    ) -> Endpoint:
        return cls(
            f"{base_url}?model={quote(model, safe='')}", {"Authorization": f"Bearer {api_key}"}
        )

    @classmethod
    def azure(cls, resource_or_host: str, deployment: str, api_key: str) -> Endpoint:
        """Azure OpenAI GA (v1) endpoint: `api-key` header, no `api-version` query."""
        url = f"wss://{azure_host(resource_or_host)}/openai/v1/realtime?model={quote(deployment, safe='')}"
        return cls(url, {"api-key": api_key})


class RealtimeClient(WebSocketLink):
    """Owner: the call session. It must `await close()`; that closes the socket and cancels the
    writer."""

    label = "realtime"
    audio_parts = protocol.INPUT_AUDIO_APPEND_PARTS

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        send_queue_frames: int = DEFAULT_QUEUE_FRAMES,
        max_size: int = MAX_FRAME,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        write_through: bool = True,
    ) -> None:
        """`write_through=False` sends every frame through the writer task and `ws.send`
        (no fast path): the plain documented API, should a websockets release change the
        connection attributes the fast path uses; also lets tests fill the queue."""
        super().__init__(
            send_queue_frames=send_queue_frames,
            max_size=max_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
            write_through=write_through,
        )
        self.endpoint = endpoint
        # The parser reports problems through a weak reference: a bound method would make
        # client <-> parser a reference cycle, and an ended call would wait for a full
        # collection to be freed (tests/test_call_freed.py).
        self.parser = protocol.ServerEventParser(_problem_logger(weakref.ref(self)))
        self._problems_logged: set[str] = set()
        # The read callback calls `_parse` per message: the parser's own bound method, not
        # a method that calls it.
        self._parse = self.parser.parse  # type: ignore[method-assign]
        self.session: ev.SessionCreated | None = None
        self.effective_session: dict[str, Any] | None = None

    def _parse(self, data: bytes) -> Any:
        return self.parser.parse(data)

    def _log_problem(self, problem: str) -> None:
        """One warning per kind of bad server frame per session, naming it (a malformed
        frame, an unknown type); a flood logs at most 16 kinds, the rest is counted in
        `parser.malformed` and `parser.unknown_types`. Good frames never come here. Across
        the process, at most `_REJECTED_LOG_BURST` such lines a minute (a hostile service
        reached by every call must not flood the log either); the rest are counted."""
        if problem in self._problems_logged or len(self._problems_logged) >= 16:
            return
        self._problems_logged.add(problem)
        if not _rejected_log_budget.take():
            return
        session_id = self.session.session_id if self.session is not None else None
        log.warning(
            "realtime.server_event_rejected: %s (session %s); further ones are counted",
            problem,
            session_id,
            extra={
                "event": "realtime.server_event_rejected",
                "fields": {"problem": problem, "session_id": session_id},
            },
        )

    def _error(self, message: str) -> Exception:
        return RealtimeError(message)

    def _lost_event(self, reason: str, code: int | None) -> ev.ConnectionLost:
        return ev.ConnectionLost(reason, code)

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> ev.SessionCreated:  # noqa: ASYNC109 (every wait in the API is bounded)
        """Open the socket and wait for `session.created` (always the server's first event)."""
        ws = await self._open_socket(
            self.endpoint.url, self.endpoint.headers, timeout, self.endpoint.redacted()
        )
        try:
            event = await asyncio.wait_for(self._inbound.get(), timeout)
        except TimeoutError as exc:
            await ws.close()
            raise RealtimeError(
                f"no session.created from {self.endpoint.redacted()}: {exc!r}"
            ) from exc
        if isinstance(event, ev.ConnectionLost):
            await ws.close()
            raise RealtimeError(
                f"no session.created from {self.endpoint.redacted()}: {event.reason}"
            )
        if isinstance(event, ev.ErrorEvent):
            await ws.close()
            raise RealtimeError("server refused the session", event)
        if not isinstance(event, ev.SessionCreated):
            await ws.close()
            raise RealtimeError(f"expected session.created first, got {event!r}")
        self.session = event
        self._start_writer()
        return event

    async def close(self) -> None:
        """Close the socket and cancel the writer. Safe to call more than once."""
        await self._close_socket()

    # -- outbound ----------------------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        """Queue a control event; never dropped (raises RealtimeError when the link is gone)."""
        self._enqueue(protocol.encode(event))

    async def configure(
        self,
        config: protocol.SessionConfig | dict[str, Any],
        timeout: float = 5.0,  # noqa: ASYNC109 (every wait in the API is bounded)
        *,
        any_error: bool = False,
    ) -> ev.SessionUpdated:
        """Send session.update and wait for session.updated with the requested G.711 formats.

        An `error` fails the update when it echoes our event_id or (event_id null, as the
        service often sends) names a `session` parameter. `any_error`: every error does, for
        the first configuration of a session, when nothing else has been sent that could have
        caused it; an error that names no parameter (a server_error, a quota) then fails the
        call's setup at once instead of after the timeout."""
        event_id = self.next_event_id("cfg")
        if isinstance(config, protocol.SessionConfig):
            update = protocol.session_update(config, event_id)
            want_in, want_out = config.input_format, config.output_format
        else:
            update = {"type": "session.update", "session": config, "event_id": event_id}
            fmt = config.get("audio") or {}
            want_in = ((fmt.get("input") or {}).get("format") or {}).get("type")
            want_out = ((fmt.get("output") or {}).get("format") or {}).get("type")

        def matches(event: Any) -> bool:
            if isinstance(event, ev.SessionUpdated):
                return True
            # error.event_id echoes our event_id; some errors come with it null.
            return isinstance(event, ev.ErrorEvent) and (
                event.event_id == event_id
                or (event.event_id is None and (event.param or "").startswith("session"))
                or (any_error and event.event_id is None)
            )

        future = self._wait_for(matches)
        self.send(update)
        try:
            result = await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise RealtimeError(f"no session.updated within {timeout:.1f} s") from exc
        if isinstance(result, ev.ErrorEvent):
            raise RealtimeError("session.update refused", result)
        assert isinstance(result, ev.SessionUpdated)
        if (want_in and result.input_format != want_in) or (
            want_out and result.output_format != want_out
        ):
            raise RealtimeError(
                f"session.updated has audio formats in={result.input_format} out={result.output_format},"
                f" requested in={want_in} out={want_out}"
            )
        self.effective_session = result.session
        return result


async def open_session(
    endpoint: Endpoint,
    config: protocol.SessionConfig,
    *,
    connect_timeout: float = 10.0,
    configure_timeout: float = 5.0,
    **client_options: Any,
) -> RealtimeClient:
    """Connect and configure in one step; closes the client when either step fails.

    This is also the reconnect primitive: after `ConnectionLost` (or before the 60-min session
    cap) the call session calls it again with the same endpoint and config.
    """
    client = RealtimeClient(endpoint, **client_options)
    try:
        await client.connect(connect_timeout)
        await client.configure(config, configure_timeout, any_error=True)
    except BaseException:
        await client.close()
        raise
    return client
