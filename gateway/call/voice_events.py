"""The voice backend's reports (gateway/voice.py) as the state machine's events, plus what they
carry for the call record (transcripts, usage, tool calls, backend activity such as MCP calls)
and the conversation kept for replays.

The backend's link turns its server events into those reports (`VoiceLink.translate`; for the
Realtime GA API gateway/realtime/translate.py); this module knows no wire format. A mixin of
`CallSession` (gateway/call/session.py): it reads the session's conversation, statistics and
settings and reports through its observer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway import voice as v
from gateway.call import machine as m
from gateway.call.conversation import Turn
from gateway.call.events import tool_error
from gateway.observe.logs import log_event

if TYPE_CHECKING:
    from gateway.call.conversation import Conversation

log = logging.getLogger("gateway.call")


class VoiceEvents:
    """Turns one voice session's reports into machine events (`_machine_events`, `_on_report`)."""

    call_id: str
    conversation: Conversation
    stats: Any  # session.SessionStats
    settings: Any  # session.SessionSettings
    _speech_stopped_at: float | None
    _replay_only_transcripts: bool
    link: v.VoiceLink

    def _emit(self, kind: str, **fields: Any) -> None:
        raise NotImplementedError

    def _playout_snapshot(self) -> tuple[m.PlayoutItem, ...]:
        raise NotImplementedError

    def _log_note(self, note: v.VoiceNote) -> None:
        """Backend activity (e.g. MCP calls the service makes itself): logged and handed to
        the observer for the call record; nothing for the machine to decide."""
        log_event(
            log,
            note.event,
            note.message,
            level=note.level,
            call_id=self.call_id,
            **note.fields,
        )
        self._emit(note.kind, event=note.event, **note.fields)

    def _machine_events(self, server_event: Any) -> m.Event | list[m.Event] | None:
        """A server event of the voice backend -> the machine's events: one event (every
        Realtime event, each audio delta: no list built per event), None, or a list in order
        when the backend reports several for one event (GPT-Live's first audio of a reply
        starts it); then every report is taken (its snapshot included) before any is
        dispatched. The one translation both `_translate` and the session's event sink
        (`VoiceSessions._on_client_event`) use."""
        return self._report_events(self.link.translate(server_event))

    def _report_events(self, report: Any) -> m.Event | list[m.Event] | None:
        """`_machine_events` of the link's translation (`report`: one report, a list, None)."""
        if report is None:
            return None
        if type(report) is not list:
            return self._on_report(report)
        events = []
        for one in report:
            event = self._on_report(one)
            if event is not None:
                events.append(event)
        return events

    def _translate(self, server_event: Any) -> m.Event | None:
        """A server event of the voice backend -> the machine's event (or None); the last one
        when the backend reports several (see `_machine_events`)."""
        events = self._machine_events(server_event)
        if type(events) is list:
            return events[-1] if events else None
        return events

    def _on_report(self, report: v.VoiceEvent) -> m.Event | None:
        # Most frequent first (a case is an isinstance test): bot audio and transcript pieces.
        match report:
            case v.BotAudio():
                if self._speech_stopped_at is not None:
                    self._response_latency()
                return report
            case v.BotTranscript(item_id=item_id, text=text, final=False):
                self.conversation.bot_delta(item_id, text)
            case v.CallerSpeechStarted(audio_ms=audio_ms):
                # Built, not `dataclasses.replace`d (~2 µs of generic field copying per
                # speech_started, issue 14); tests/call/test_voice_events.py holds every field
                # carried over.
                return v.CallerSpeechStarted(playout=self._playout_snapshot(), audio_ms=audio_ms)
            case v.CallerSpeechStopped():
                self._speech_stopped_at = time.monotonic()
                return report
            case v.BotReplyStarted() | v.BotAudioDone() | v.CallerHeard():
                return report
            case v.BotReplyDone(reply_id=reply_id, status=status, usage=usage):
                if usage is not None:
                    self._add_usage(usage)
                self._emit("response_done", status=status)
                if status in (v.REPLY_FAILED, v.REPLY_INCOMPLETE):
                    log_event(
                        log,
                        "realtime.response_status",
                        f"response.done with status {status}",
                        level=logging.WARNING,
                        call_id=self.call_id,
                        response_id=reply_id,
                        status=status,
                        reason=report.reason,
                        error=report.error,
                    )
                return report
            case v.UsageReported(usage=usage, session_seconds=seconds):
                if usage:
                    self._add_usage(usage)
                if seconds is not None:
                    # A cumulative snapshot (GPT-Live): the latest replaces the previous;
                    # a new session after a rollover or reconnect starts from 0 again.
                    self._session_seconds(seconds)
            case v.CallerSilenceTimeout(item_id=item_id):
                self._emit("idle", source="server")
                self.conversation.place(Turn("user", "", item_id), None)
                return report
            case v.CallerTurn(item_id=item_id, previous_item_id=previous):
                # The caller's turn takes its place in the conversation now; its text (the
                # input transcription) may come before or after the bot's answer to it.
                self.conversation.place(Turn("user", "", item_id), previous)
            case v.BotTurn(item_id=item_id):
                self.conversation.place(Turn("assistant", "", item_id), None)
            case v.ToolCallInvalid(call_id=call_id, name=name, arguments_text=raw, error=error):
                self.stats.tool_calls += 1
                self._emit_tool(name, call_id, raw, "error", None, error)
                return m.ToolResult(call_id, tool_error(error))
            case v.ToolCall(call_id=call_id, name=name, arguments=arguments):
                self.stats.tool_calls += 1
                if name not in self.settings.http_tools:
                    # Built-ins (end_call, transfer_call, send_dtmf) are decided by the machine.
                    self._emit_tool(name, call_id, arguments, "ok", None, None)
                return report
            case v.VoiceError():
                return report
            case v.ConnectionLost():
                self.conversation.keep_partial()
                return report
            case v.BotTranscript(item_id=item_id, text=text, final=True):
                self.conversation.bot_done(item_id, text)
                self._emit("transcript", speaker="bot", text=text)
                log_event(log, "transcript.bot", call_id=self.call_id, item_id=item_id, text=text)
            case v.CallerTranscript(item_id=item_id, text=text):
                self.conversation.fill("user", text, item_id)
                if self._replay_only_transcripts:
                    return None  # kept for replay only: never logged or recorded
                self._emit("transcript", speaker="caller", text=text)
                log_event(
                    log, "transcript.caller", call_id=self.call_id, item_id=item_id, text=text
                )
            case v.VoiceNote():
                self._log_note(report)
        return None

    def _response_latency(self) -> None:
        """The first bot audio after the caller stopped: how long the caller waited."""
        if self._speech_stopped_at is not None:
            latency = time.monotonic() - self._speech_stopped_at
            self._speech_stopped_at = None
            self._emit("response_latency", seconds=latency)

    def _session_seconds(self, seconds: float) -> None:
        raise NotImplementedError

    def _add_usage(self, usage: Mapping[str, int]) -> None:
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            value = usage.get(name)
            if isinstance(value, int):
                self.stats.usage[name] = self.stats.usage.get(name, 0) + value
        self._emit("usage", **usage)

    def _emit_tool(
        self,
        name: str,
        call_id: str,
        arguments: Any,
        result: str,
        duration_ms: int | None,
        output: str | None,
    ) -> None:
        self._emit(
            "tool",
            name=name,
            tool_call_id=call_id,
            arguments=arguments,
            result=result,
            duration_ms=duration_ms,
            output=output,
        )
