"""Typed server events: the fields of each GA Realtime server event the gateway acts on.

`protocol.parse_server_event` turns a WebSocket frame into one of these. They are small frozen
slotted dataclasses: the audio delta is the hot path (about 10 to 50 per second per call), the
rest are control events. Events the gateway does not act on become `IgnoredEvent` (known GA
type) or `UnknownEvent` (a type not in the GA reference; counted by the parser).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """First server event on every connection: the default session (GA defaults are 24 kHz PCM)."""

    session_id: str
    model: str | None
    session: dict[str, Any]
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The full effective session after a `session.update` was accepted."""

    session: dict[str, Any]
    event_id: str = ""

    @property
    def input_format(self) -> str | None:
        return _format_type(self.session, "input")

    @property
    def output_format(self) -> str | None:
        return _format_type(self.session, "output")


def _format_type(session: dict[str, Any], direction: str) -> str | None:
    audio = session.get("audio") or {}
    fmt = (audio.get(direction) or {}).get("format") or {}
    value = fmt.get("type")
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """`error`: `event_id` is the client event that caused it (often null in practice)."""

    type: str
    code: str | None
    message: str
    param: str | None = None
    event_id: str | None = None
    server_event_id: str = ""

    def describe(self) -> str:
        parts = [f"{self.type}/{self.code or '-'}: {self.message}"]
        if self.param:
            parts.append(f"param={self.param}")
        if self.event_id:
            parts.append(f"client_event_id={self.event_id}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Caller speech detected: the barge-in trigger. `audio_start_ms` is on input audio time."""

    audio_start_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class InputCommitted:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class InputCleared:
    pass


@dataclass(frozen=True, slots=True)
class InputTimeoutTriggered:
    """`idle_timeout_ms` fired (server_vad only): silent audio committed, a response follows."""

    audio_start_ms: int
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True)
class Usage:
    total_tokens: int
    input_tokens: int
    output_tokens: int
    input_audio_tokens: int
    input_text_tokens: int
    output_audio_tokens: int
    output_text_tokens: int
    cached_tokens: int


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """Always sent, whatever the outcome. `output` holds every item without audio bytes."""

    response_id: str
    status: str
    reason: str | None
    error: dict[str, Any] | None
    usage: Usage | None
    output: list[dict[str, Any]] = field(default_factory=list)

    @property
    def function_calls(self) -> list[dict[str, Any]]:
        return [item for item in self.output if item.get("type") == "function_call"]


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    response_id: str
    output_index: int
    item_id: str
    item_type: str
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutputItemDone:
    response_id: str
    output_index: int
    item_id: str
    item_type: str
    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """`response.output_audio.delta`, base64 already decoded to raw G.711 (or PCM) bytes."""

    response_id: str
    item_id: str
    output_index: int
    content_index: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """Bot transcript; it runs ahead of playback, so never log it as 'said'."""

    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TranscriptDone:
    response_id: str
    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class InputTranscriptionCompleted:
    """Caller transcript from the separate ASR pass: a hint of what the model heard."""

    item_id: str
    content_index: int
    transcript: str


@dataclass(frozen=True, slots=True)
class FunctionCallArgumentsDone:
    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDeleted:
    item_id: str


@dataclass(frozen=True, slots=True)
class RateLimit:
    name: str
    limit: int | None
    remaining: int | None
    reset_seconds: float | None


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated:
    rate_limits: tuple[RateLimit, ...]


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """A GA server event type the gateway does not act on (content parts, item added/done...)."""

    type: str


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A type not in the GA reference (forward compatibility): ignored and counted."""

    type: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """Client-side event: the WebSocket went away (not sent by the server).

    `code` is the WebSocket close code when known (1001 after session expiry, 1006 when the
    socket was cut, 4000 after a beta-shape rejection). Reconnect policy belongs to the call.
    """

    reason: str
    code: int | None = None


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | ErrorEvent
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | InputCleared
    | InputTimeoutTriggered
    | ResponseCreated
    | ResponseDone
    | OutputItemAdded
    | OutputItemDone
    | AudioDelta
    | AudioDone
    | TranscriptDelta
    | TranscriptDone
    | InputTranscriptionCompleted
    | FunctionCallArgumentsDone
    | ItemTruncated
    | ItemDeleted
    | RateLimitsUpdated
    | IgnoredEvent
    | UnknownEvent
)
