"""The voice session's events as the state machine's: Realtime GA server events (parsed by
gateway/realtime/events.py) become machine events, plus what they carry for the call record
(transcripts, usage, tool calls, MCP activity) and the conversation kept for replays.

A mixin of `CallSession` (gateway/call/session.py): it reads the session's conversation,
statistics and settings and reports through its observer. A second voice backend adds its own
translation beside this one; the machine's table does not change.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.call import machine as m
from gateway.call.conversation import Turn
from gateway.call.tools import parse_arguments
from gateway.observe.logs import log_event
from gateway.realtime import events as rte
from gateway.realtime.mcp import McpEvent, mcp_record

if TYPE_CHECKING:
    from gateway.call.conversation import Conversation

log = logging.getLogger("gateway.call")


class VoiceEvents:
    """Turns one voice session's server events into machine events (`_translate`)."""

    call_id: str
    conversation: Conversation
    stats: Any  # session.SessionStats
    settings: Any  # session.SessionSettings
    _speech_stopped_at: float | None
    _replay_only_transcripts: bool

    def _emit(self, kind: str, **fields: Any) -> None:
        raise NotImplementedError

    def _playout_snapshot(self) -> tuple[m.PlayoutItem, ...]:
        raise NotImplementedError

    def _log_mcp(self, raw: dict[str, Any]) -> None:
        """MCP activity the service reports (it calls the MCP servers itself): logged and
        handed to the observer for the call record; nothing for the machine to decide."""
        record = mcp_record(raw)
        if record is None:
            return
        log_event(
            log,
            record.event,
            record.message,
            level=record.level,
            call_id=self.call_id,
            **record.fields,
        )
        self._emit("mcp", event=record.event, **record.fields)

    def _translate(self, event: Any) -> m.Event | None:
        match event:
            case McpEvent(raw=raw):
                self._log_mcp(raw)
                return None
            case rte.AudioDelta(response_id=response_id, item_id=item_id, audio=audio):
                if self._speech_stopped_at is not None:
                    latency = time.monotonic() - self._speech_stopped_at
                    self._speech_stopped_at = None
                    self._emit("response_latency", seconds=latency)
                return m.AudioDelta(response_id, item_id, audio)
            case rte.SpeechStarted():
                return m.SpeechStarted(self._playout_snapshot())
            case rte.SpeechStopped():
                self._speech_stopped_at = time.monotonic()
                return m.SpeechStopped()
            case rte.ResponseCreated(response_id=response_id):
                return m.ResponseCreated(response_id)
            case rte.AudioDone(response_id=response_id, item_id=item_id):
                return m.AudioDone(response_id, item_id)
            case rte.ResponseDone(response_id=response_id, status=status, usage=usage):
                if usage is not None:
                    self._add_usage(usage)
                self._emit("response_done", status=status)
                error = _describe_error(event.error)
                if status in ("failed", "incomplete"):
                    log_event(
                        log,
                        "realtime.response_status",
                        f"response.done with status {status}",
                        level=logging.WARNING,
                        call_id=self.call_id,
                        response_id=response_id,
                        status=status,
                        reason=event.reason,
                        error=error,
                    )
                return m.ResponseDone(response_id, status, event.reason, error)
            case rte.InputTimeoutTriggered(item_id=item_id):
                self._emit("idle", source="server")
                self.conversation.place(Turn("user", "", item_id), None)
                return m.InputTimeout()
            case rte.InputCommitted(item_id=item_id, previous_item_id=previous):
                # The caller's turn takes its place in the conversation now; its text (the
                # input transcription) may come before or after the bot's answer to it.
                self.conversation.place(Turn("user", "", item_id), previous)
            case rte.OutputItemAdded(item_id=item_id, item_type="message"):
                self.conversation.place(Turn("assistant", "", item_id), None)
            case rte.FunctionCallArgumentsDone(call_id=call_id, name=name, arguments=raw):
                self.stats.tool_calls += 1
                arguments, error = parse_arguments(raw)
                if error is not None:
                    self._emit_tool(name, call_id, raw, "error", None, error)
                    return m.ToolResult(call_id, f'{{"ok": false, "error": "{error}"}}')
                if name not in self.settings.http_tools:
                    # Built-ins (end_call, transfer_call, send_dtmf) are decided by the machine.
                    self._emit_tool(name, call_id, arguments, "ok", None, None)
                return m.FunctionCall(call_id, name, arguments)
            case rte.ErrorEvent(code=code, message=message):
                return m.RealtimeError(code or "", message)
            case rte.ConnectionLost(reason=reason):
                self.conversation.keep_partial()
                return m.ConnectionLost(reason)
            case rte.TranscriptDelta(item_id=item_id, delta=delta):
                self.conversation.bot_delta(item_id, delta)
            case rte.TranscriptDone(item_id=item_id, transcript=transcript):
                self.conversation.bot_done(item_id, transcript)
                self._emit("transcript", speaker="bot", text=transcript)
                log_event(
                    log, "transcript.bot", call_id=self.call_id, item_id=item_id, text=transcript
                )
            case rte.InputTranscriptionCompleted(item_id=item_id, transcript=transcript):
                self.conversation.fill("user", transcript, item_id)
                if self._replay_only_transcripts:
                    return None  # kept for replay only: never logged or recorded
                self._emit("transcript", speaker="caller", text=transcript)
                log_event(
                    log, "transcript.caller", call_id=self.call_id, item_id=item_id, text=transcript
                )
        return None

    def _add_usage(self, usage: rte.Usage) -> None:
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            value = getattr(usage, name, None)
            if isinstance(value, int):
                self.stats.usage[name] = self.stats.usage.get(name, 0) + value
        if dataclasses.is_dataclass(usage):
            self._emit("usage", **dataclasses.asdict(usage))

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


def _describe_error(error: Any) -> str | None:
    """A failed response's status_details.error, short (code, else type, and message)."""
    if not isinstance(error, dict):
        return None
    label = error.get("code") or error.get("type") or "error"
    message = str(error.get("message") or "")[:200]
    return f"{label}: {message}" if message else str(label)
