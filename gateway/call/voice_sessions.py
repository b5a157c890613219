"""The voice sessions of one call: open, attach, reconnect (with its budget), roll over.

A mixin of `CallSession` (gateway/call/session.py), which runs the machine; this part owns the
connections to the voice backend (`gateway.voice.VoiceBackend` from the session settings: the
call imports no backend). One connection is attached at a time: its events reach the machine,
a replaced connection's events are ignored from the moment the new one is attached.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.call import machine as m
from gateway.call.conversation import Conversation
from gateway.observe.logs import log_event
from gateway.voice import BotAudio, VoiceBackend, VoiceConnection, VoiceLink, VoiceSetupError

log = logging.getLogger("gateway.call")

# Reconnects per call: at most `reconnect_budget` attempts in any `reconnect_window_s` (the
# realtime config keys); the n-th attempt within the window waits RECONNECT_BACKOFF_S[n-2] (the
# last value from then on), so a service that drops every session is not hammered.
RECONNECT_BUDGET = 3
RECONNECT_WINDOW_S = 60.0
RECONNECT_BACKOFF_S = (0.2, 1.0, 3.0)


class VoiceSessions:
    """Connections of one call (`_client`, the attached one) and their replacement."""

    call_id: str
    backend: VoiceBackend
    settings: Any  # session.SessionSettings
    stats: Any  # session.SessionStats
    ctx: m.CallContext
    conversation: Conversation
    link: VoiceLink
    _client: VoiceConnection | None
    # The attached client's per-frame appender (`VoiceConnection.audio_appender`), or None:
    # no client, or caller audio is gathered first (session._append's slow path).
    _appender: Callable[[bytes], bool | None] | None
    _gather: Any  # gather.AudioGather | None
    _closing: set[asyncio.Task[Any]]  # connections being closed (CallSession.close awaits them)
    _closed: bool
    _reconnecting: bool
    _reconnect_times: deque[float]
    _backoff_sleep: Callable[[float], Awaitable[None]]
    _machine_events: Callable[[Any], m.Event | list[m.Event] | None]  # VoiceEvents'
    _report_events: Callable[[Any], m.Event | list[m.Event] | None]  # VoiceEvents'
    _speech_stopped_at: float | None  # VoiceEvents'
    _response_latency: Callable[[], None]  # VoiceEvents'
    _bot_audio: Callable[[BotAudio], None]  # CallSession's (dispatch's shortcut)

    def dispatch(self, event: m.Event) -> None:
        raise NotImplementedError

    def _emit(self, kind: str, **fields: Any) -> None:
        raise NotImplementedError

    def _loop_time(self) -> float:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        raise NotImplementedError

    async def _connect(self) -> VoiceConnection:
        """A new session of the backend, configured for the call's law, seeded with the
        conversation so far where the backend takes it at start (GPT-Live's `input`); the
        others get it replayed as events (`_swap_to_new_session`)."""
        return await self.backend.open(
            self.settings.endpoint,
            self.settings.config,
            self.conversation.replay_turns(),
            self.settings.policy.setup_timeout_s,
        )

    def _set_client(self, client: VoiceConnection | None) -> None:
        """The one place the attached client changes (attach, CloseSession, a GPT-Live BYE,
        close), so the appender caller audio goes to changes with it: per frame the session
        neither asks `connected` (the link's appender answers None when it is not) nor reads
        the state (every way into ENDED closes the session: CloseSession clears it here)."""
        self._client = client
        gathering = self._gather is not None
        self._appender = None if client is None or gathering else client.audio_appender

    def _attach(self, client: VoiceConnection, link: VoiceLink | None = None) -> None:
        self._set_client(client)
        self.link = link or self.backend.new_link(self.settings.config)
        # Events are handled where the client reads the socket (no task hop per event:
        # delta -> playout and speech_started -> flush are latency paths, docs/benchmarks.md).
        # A partial, not a lambda: one Python frame less per event.
        client.set_event_sink(functools.partial(self._on_client_event, client))

    async def _open_session(self) -> None:
        started = time.monotonic()
        try:
            client = await self._connect()
        except (VoiceSetupError, OSError) as exc:
            log_event(
                log,
                "realtime.setup_failed",
                str(exc),
                level=logging.WARNING,
                call_id=self.call_id,
                url=self.backend.describe(self.settings.endpoint),
                api=self.backend.name,
            )
            self.dispatch(m.SessionFailed(str(exc)))
            return
        if self._closed or self.ctx.state is m.State.ENDED:
            await client.close()
            return
        self._attach(client)
        connect_s = time.monotonic() - started
        self._emit("connected", connect_s=connect_s)
        log_event(
            log,
            "realtime.connected",
            call_id=self.call_id,
            connect_ms=round(connect_s * 1000, 1),
            input_format=self.backend.audio_format(self.settings.config),
            api=self.backend.name,
        )
        self.dispatch(m.SessionReady(client.seconds_left()))

    async def _swap_to_new_session(self) -> bool:
        try:
            client = await self._connect()
        except (VoiceSetupError, OSError) as exc:
            log_event(
                log,
                "realtime.connect_failed",
                str(exc),
                level=logging.WARNING,
                call_id=self.call_id,
            )
            return False
        if self._closed or self.ctx.state is m.State.ENDED:
            await client.close()
            return True
        link = self.backend.new_link(self.settings.config)
        for event in link.replay(self.conversation.replay_turns()):
            client.send(event)
        old = self._client
        self._attach(client, link)  # from here on the old client's events are ignored
        if old is not None:
            # Closed in a task of its own (a graceful GPT-Live close waits up to 12 s for
            # session.closed): awaited here, a loss of the new session reported meanwhile
            # found the reconnect still running and was dropped, leaving the call on a dead
            # session.
            self._closing.add(self._spawn(old.close()))
        return True

    async def _reconnect(self, reason: str) -> None:
        if self._reconnecting:
            return  # one replacement session at a time, however many losses are reported
        self._reconnecting = True
        try:
            await self._reconnect_attempts(reason)
        finally:
            self._reconnecting = False

    async def _reconnect_attempts(self, reason: str) -> None:
        attempt = 0
        while not self._closed:
            delay = self._next_reconnect_delay()
            if delay is None:
                budget = self.settings.reconnect_budget
                window = self.settings.reconnect_window_s
                log_event(
                    log,
                    "realtime.reconnect_budget_spent",
                    f"{budget} reconnects in {window:g} s used up; ending the call",
                    level=logging.WARNING,
                    call_id=self.call_id,
                    reason=reason,
                    budget=budget,
                    window_s=window,
                )
                self.dispatch(m.ReconnectBudgetSpent(reason))
                return
            if delay > 0:
                await self._backoff_sleep(delay)
                if self._closed or self.ctx.state is m.State.ENDED:
                    return
            attempt += 1
            self._reconnect_times.append(self._loop_time())
            if await self._swap_to_new_session():
                self.stats.reconnects += 1
                self._emit("reconnect", attempt=attempt)
                log_event(
                    log,
                    "realtime.reconnected",
                    call_id=self.call_id,
                    attempt=attempt,
                    reason=reason,
                )
                self.dispatch(m.Reconnected(self._seconds_left()))
                return

    def _next_reconnect_delay(self) -> float | None:
        """Seconds to wait before the next reconnect attempt, or None when the budget of
        attempts within the window is spent."""
        now = self._loop_time()
        times = self._reconnect_times
        while times and now - times[0] >= self.settings.reconnect_window_s:
            times.popleft()
        used = len(times)
        if used >= self.settings.reconnect_budget:
            return None
        if used == 0:
            return 0.0
        return RECONNECT_BACKOFF_S[min(used - 1, len(RECONNECT_BACKOFF_S) - 1)]

    async def _rollover(self) -> None:
        # Rollovers spend the reconnect budget too: a service announcing an expiry seconds
        # away in every session (a hostile or broken expires_at) must not make the call open
        # sessions in a loop. Past the budget the session runs until the service ends it.
        if self._next_reconnect_delay() is None:
            log_event(
                log,
                "realtime.rollover_skipped",
                "reconnect budget spent: no new session before the expiry",
                level=logging.WARNING,
                call_id=self.call_id,
                budget=self.settings.reconnect_budget,
                window_s=self.settings.reconnect_window_s,
            )
            return
        self._reconnect_times.append(self._loop_time())
        if await self._swap_to_new_session():
            self.stats.rollovers += 1
            self.dispatch(m.RolledOver(self._seconds_left()))
        else:
            # The old session still works until its cap; the expiry error then reconnects.
            log_event(log, "realtime.rollover_failed", level=logging.WARNING, call_id=self.call_id)

    def _seconds_left(self) -> float | None:
        client = self._client
        return None if client is None else client.seconds_left()

    def _on_client_event(self, client: VoiceConnection, event: Any) -> None:
        if self._client is not client:
            return  # replaced by a newer session: its events are not ours anymore
        report = self.link.translate(event)
        if type(report) is BotAudio:
            # Most of a session's events: no report dispatch, and when the delta moves no
            # state, no event dispatch either (`_bot_audio`, issue 14).
            if self._speech_stopped_at is not None:
                self._response_latency()
            self._bot_audio(report)
            return
        events = self._report_events(report)
        if events is None:
            return
        if type(events) is list:
            for one in events:
                self.dispatch(one)
            return
        self.dispatch(events)
