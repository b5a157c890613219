"""One GPT-Live WebSocket session: start, stream audio both ways, close gracefully.

    wss://api.openai.com/v1/live/sessions                      (no query; Authorization: Bearer)
    wss://<resource>.openai.azure.com/openai/v1/live/sessions  (api-key header)

Reference: ../shared/reference/gpt-live-protocol.md sections 1 (connection, start-up), 4
(audio), 10 (close). The socket machinery (ordered outbound queue with the synchronous fast
path, server events handled in the read callback, the lost-connection event) is
gateway/wsock.py's, shared with the Realtime client.

`open(history, timeout)` sends `session.start` (the model, instructions, the history so far,
the call's G.711 law at 8000 Hz, voice, delegation) and waits, bounded, for `session.started`;
an `error`, a close or the timeout before it fails the setup (`LiveError`: the call gets 503 +
Retry-After), and so does a `session.started` whose echoed `audio.format` is not the one we
asked for (G.711 is passed through, never transcoded: a different format would be noise).
`close()` is graceful: `session.close`, then `session.closed` (bounded, `CLOSE_WAIT_S`; the
service drains for about 10 s, reference 10), then the socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from gateway.live import events as le
from gateway.live import protocol as lp
from gateway.wsock import DEFAULT_QUEUE_FRAMES, Endpoint, WebSocketLink, azure_host

__all__ = [
    "CLOSE_WAIT_S",
    "DEFAULT_LIVE_URL",
    "LiveClient",
    "LiveError",
    "live_endpoint_azure",
    "live_endpoint_openai",
]

log = logging.getLogger(__name__)

DEFAULT_LIVE_URL = "wss://api.openai.com/v1/live/sessions"
# Bigger than any event we read (an 8 s audio delta, a session snapshot with 128 messages);
# the parser bounds each field again.
MAX_FRAME = 4 * 1024 * 1024
# session.close -> session.closed: the service drains for at most about 10 s (reference 10,
# PC); the documentation's example waits 15 s.
CLOSE_WAIT_S = 12.0
# The longest session an `expires_at` may announce and be believed (the maximum duration is
# not documented, reference 2; "2 hours connected" is quoted for SIP): beyond it, the call's
# own session cap applies.
MAX_EXPIRES_IN_S = 24 * 3600.0


def live_endpoint_openai(api_key: str, url: str = DEFAULT_LIVE_URL) -> Endpoint:
    """OpenAI: no query parameters (the model goes in session.start), Bearer key."""
    return Endpoint(url, {"Authorization": f"Bearer {api_key}"})


def live_endpoint_azure(resource_or_host: str, api_key: str) -> Endpoint:
    """Azure: the resource's /openai/v1/live/sessions with an `api-key` header (the key form
    Azure SDK clients send; reference 1 marks the accepted form UNKNOWN)."""
    return Endpoint(
        f"wss://{azure_host(resource_or_host)}/openai/v1/live/sessions", {"api-key": api_key}
    )


class LiveError(Exception):
    """The session could not be started (or was refused); `.error` holds the server's error."""

    def __init__(self, message: str, error: le.ErrorEvent | None = None) -> None:
        if error is not None:
            message = f"{message}: {error.describe()}"
        super().__init__(message)
        self.error = error


class LiveClient(WebSocketLink):
    """Owner: the call session. It must `await close()`."""

    label = "live"
    audio_parts = lp.INPUT_AUDIO_APPEND_PARTS

    def __init__(
        self,
        endpoint: Endpoint,
        config: lp.LiveSessionConfig,
        *,
        send_queue_frames: int = DEFAULT_QUEUE_FRAMES,
        max_size: int = MAX_FRAME,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        write_through: bool = True,
        close_wait_s: float = CLOSE_WAIT_S,
    ) -> None:
        super().__init__(
            send_queue_frames=send_queue_frames,
            max_size=max_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            write_through=write_through,
        )
        self.endpoint = endpoint
        self.config = config
        self.parser = le.LiveEventParser()
        self.started: le.SessionStarted | None = None
        self.closed: le.SessionClosed | None = None  # session.closed, once seen
        self.usage_seconds: float | None = None  # the latest cumulative usage snapshot
        self.frames_after_closed = 0  # dropped: nothing follows session.closed
        self._close_wait_s = close_wait_s
        self._problems_logged: set[str] = set()

    @property
    def session_id(self) -> str | None:
        return self.started.session_id if self.started is not None else None

    @property
    def expires_at(self) -> float | None:
        """Unix seconds at which the service ends the session (`expired`), when it said."""
        return self.started.expires_at if self.started is not None else None

    def _parse(self, data: bytes) -> Any:
        if self.closed is not None:
            # session.closed is the session's last word (reference 10): a function call from
            # a closed session must not end the call, its late audio must not play.
            self.frames_after_closed += 1
            self._log_problem("after session.closed", "event after session.closed: dropped")
            return None
        malformed = self.parser.malformed
        event = self.parser.parse(data)
        if self.parser.malformed != malformed:
            self._log_problem(self.parser.problem, self.parser.problem)
        if isinstance(event, le.UsageUpdated):
            self.usage_seconds = event.seconds
        elif isinstance(event, le.SessionClosed):
            self.closed = event
            if event.seconds is not None:
                self.usage_seconds = event.seconds
        return event

    def _log_problem(self, key: str, problem: str) -> None:
        """One warning per kind of bad server input per session (a flood logs once; the
        counts are in `parser.malformed` and `events_after_close`)."""
        if key in self._problems_logged or len(self._problems_logged) >= 16:
            return
        self._problems_logged.add(key)
        log.warning(
            "live.server_event_malformed: %s (session %s); further ones are counted",
            problem,
            self.session_id,
            extra={
                "event": "live.server_event_malformed",
                "fields": {"problem": problem, "session_id": self.session_id},
            },
        )

    def _error(self, message: str) -> Exception:
        return LiveError(message)

    def _lost_event(self, reason: str, code: int | None) -> le.ConnectionLost:
        return le.ConnectionLost(reason, code)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(
        self,
        history: Sequence[tuple[str, str]] = (),
        timeout: float = 10.0,  # noqa: ASYNC109 (every wait in the API is bounded)
    ) -> le.SessionStarted:
        """Connect, send session.start and wait for session.started (all within `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        where = self.endpoint.redacted()
        await self._open_socket(self.endpoint.url, self.endpoint.headers, timeout, where)
        self._start_writer()
        start_id = self.next_event_id("start")
        try:
            self.send(lp.session_start(self.config, history, start_id))
            started = await self._await_started(deadline, where)
        except BaseException:
            await self._close_socket()
            raise
        self.started = started
        return started

    async def _await_started(self, deadline: float, where: str) -> le.SessionStarted:
        loop = asyncio.get_running_loop()
        while True:
            try:
                event = await asyncio.wait_for(self._inbound.get(), deadline - loop.time())
            except TimeoutError as exc:
                raise LiveError(f"no session.started from {where} in time") from exc
            if isinstance(event, le.SessionStarted):
                break
            if isinstance(event, le.ErrorEvent):
                raise LiveError("server refused the session", event)
            if isinstance(event, le.ConnectionLost):
                raise LiveError(f"no session.started from {where}: {event.reason}")
            if isinstance(event, le.SessionClosed):
                raise LiveError(f"session closed before it started ({event.reason})")
            # Anything else before session.started is not ours to act on yet.
        want = self.config.audio_format
        if event.audio_format != want or event.audio_rate != lp.G711_RATE:
            raise LiveError(
                f"session.started has audio format {event.audio_format}/{event.audio_rate}, "
                f"requested {want}/{lp.G711_RATE}"
            )
        return event

    def seconds_left(self) -> float | None:
        """Seconds until `expires_at` by this host's clock, when the service said something
        usable: an `expires_at` already past or more than MAX_EXPIRES_IN_S away (a hostile
        or broken server, or a clock far off) is ignored with a warning, and the call's own
        session cap applies instead (a timer in the past would roll over at once, one in
        centuries never)."""
        expires_at = self.expires_at
        if expires_at is None:
            return None
        left = expires_at - time.time()
        if 0 < left <= MAX_EXPIRES_IN_S:
            return left
        log.warning(
            "live.expires_at_ignored: session %s expires_at %s is %.0f s from now",
            self.session_id,
            expires_at,
            left,
            extra={
                "event": "live.expires_at_ignored",
                "fields": {"session_id": self.session_id, "seconds_left": round(left)},
            },
        )
        return None

    async def close(self) -> None:
        """session.close -> session.closed (bounded) -> the socket. Safe to call more than once;
        a link already lost is just closed."""
        try:
            if self.connected and self.started is not None and self.closed is None:
                waiter = self._wait_for(lambda event: isinstance(event, le.SessionClosed))
                self.send(lp.session_close(self.next_event_id("close")))
                await asyncio.wait_for(waiter, self._close_wait_s)
        except (TimeoutError, LiveError) as exc:
            log.info("live session %s closed without session.closed: %r", self.session_id, exc)
        finally:  # cancelled while waiting too: the socket and the writer never outlive us
            await self._close_socket()

    # -- outbound ----------------------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        """Queue a control event; never dropped (raises LiveError when the link is gone)."""
        self._enqueue(lp.encode(event))
