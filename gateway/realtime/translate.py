"""Realtime GA server events (parsed by gateway/realtime/protocol.py into gateway/realtime/events.py
values) as the voice link's reports (gateway/voice.py): what the call acts on, in call terms.

    input_audio_buffer.speech_started / speech_stopped  -> CallerSpeechStarted / Stopped
    input_audio_buffer.committed                        -> CallerTurn
    input_audio_buffer.timeout_triggered                -> CallerSilenceTimeout
    conversation.item.input_audio_transcription.completed -> CallerTranscript
    response.created / response.done                    -> BotReplyStarted / BotReplyDone
    response.output_item.added (a message)              -> BotTurn
    response.output_audio.delta / done                  -> BotAudio / BotAudioDone
    response.output_audio_transcript.delta / done       -> BotTranscript (final False / True)
    response.function_call_arguments.done               -> ToolCall (ToolCallInvalid: bad JSON)
    error                                               -> VoiceError (kind from the code)
    MCP activity (gateway/realtime/mcp.py)              -> VoiceNote
    the WebSocket closing (client side)                 -> ConnectionLost

Everything else reports nothing.
"""

from __future__ import annotations

from typing import Any

from gateway import voice as v
from gateway.realtime import events as rte
from gateway.realtime.mcp import McpEvent, mcp_record
from gateway.voice import parse_arguments

_AUDIO_DELTA = rte.AudioDelta
_BOT_AUDIO = v.BotAudio

# Error codes with a meaning for the call (docs/realtime-protocol.md): the rest are logged.
_ERROR_KINDS = {
    "response_cancel_not_active": v.VoiceErrorKind.NOTHING_TO_STOP,
    "conversation_already_has_active_response": v.VoiceErrorKind.REPLY_IN_PROGRESS,
    "session_expired": v.VoiceErrorKind.SESSION_EXPIRED,
}


def translate(event: Any) -> v.VoiceEvent | None:
    # The audio delta, most of a session's events, by its exact type (no pattern match:
    # ~0.2 µs a delta, issue 14); then the most frequent first (a case is an isinstance test).
    if type(event) is _AUDIO_DELTA:
        return _BOT_AUDIO(event.response_id, event.item_id, event.audio)
    match event:
        case rte.AudioDelta(response_id=response_id, item_id=item_id, audio=audio):
            return v.BotAudio(response_id, item_id, audio)  # a subclass, if ever
        case rte.TranscriptDelta(item_id=item_id, delta=delta):
            return v.BotTranscript(item_id, delta, final=False)
        case rte.SpeechStarted(audio_start_ms=audio_ms):
            return v.CallerSpeechStarted(audio_ms=audio_ms)
        case rte.SpeechStopped(audio_end_ms=audio_ms):
            return v.CallerSpeechStopped(audio_ms)
        case rte.ResponseCreated(response_id=response_id):
            return v.BotReplyStarted(response_id)
        case rte.AudioDone(response_id=response_id, item_id=item_id):
            return v.BotAudioDone(response_id, item_id)
        case rte.ResponseDone(response_id=response_id, status=status, usage=usage):
            return v.BotReplyDone(
                response_id,
                status,
                event.reason,
                _describe_error(event.error),
                _usage(usage),
            )
        case rte.InputTimeoutTriggered(item_id=item_id):
            return v.CallerSilenceTimeout(item_id)
        case rte.InputCommitted(item_id=item_id, previous_item_id=previous):
            return v.CallerTurn(item_id, previous)
        case rte.OutputItemAdded(item_id=item_id, item_type="message"):
            return v.BotTurn(item_id)
        case rte.FunctionCallArgumentsDone(call_id=call_id, name=name, arguments=raw):
            arguments, error = parse_arguments(raw)
            if error is not None:
                return v.ToolCallInvalid(call_id, name, raw, error)
            return v.ToolCall(call_id, name, arguments)
        case rte.ErrorEvent(code=code, message=message):
            kind = _ERROR_KINDS.get(code or "", v.VoiceErrorKind.OTHER)
            return v.VoiceError(code or "", message, kind)
        case rte.ConnectionLost(reason=reason):
            return v.ConnectionLost(reason)
        case rte.TranscriptDone(item_id=item_id, transcript=transcript):
            return v.BotTranscript(item_id, transcript, final=True)
        case rte.InputTranscriptionCompleted(item_id=item_id, transcript=transcript):
            return v.CallerTranscript(item_id, transcript)
        case McpEvent(raw=raw):
            record = mcp_record(raw)
            if record is None:
                return None
            return v.VoiceNote("mcp", record.event, record.message, record.level, record.fields)
    return None


def _usage(usage: rte.Usage | None) -> dict[str, int] | None:
    """`dataclasses.asdict(usage)`, written out: asdict deep-copies field by field, a third
    of what a response.done cost (bench/event_cost.py)."""
    if not isinstance(usage, rte.Usage):
        return None
    return {
        "total_tokens": usage.total_tokens,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "input_audio_tokens": usage.input_audio_tokens,
        "input_text_tokens": usage.input_text_tokens,
        "output_audio_tokens": usage.output_audio_tokens,
        "output_text_tokens": usage.output_text_tokens,
        "cached_tokens": usage.cached_tokens,
    }


def _describe_error(error: Any) -> str | None:
    """A failed response's status_details.error, short (code, else type, and message)."""
    if not isinstance(error, dict):
        return None
    label = error.get("code") or error.get("type") or "error"
    message = str(error.get("message") or "")[:200]
    return f"{label}: {message}" if message else str(label)


__all__ = ["parse_arguments", "translate"]
