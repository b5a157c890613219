"""The voice link's vocabulary: what a voice backend reports and what a call asks of it, in the
call's own terms, whatever the backend's wire protocol.

A backend (gateway/realtime/ for the Realtime GA API) turns its server events into the reports
below (`VoiceLink.translate`) and the call's requests into its own client events; the per-call
state machine (gateway/call/machine.py) decides on these reports only, so a second backend adds
a link and a translation and leaves the machine's table as it is.

The words: the caller speaks (speech started / stopped, a committed turn, a transcript); the bot
replies (a reply starts, carries bot items of audio and transcript, and is done with a status);
the bot may call a tool; the backend may report an error or lose its connection. A bot item is
one piece of bot speech with an id the backend knows; the call tracks how much of each was played
to the caller (`PlayoutItem`), which is what a barge-in needs to tell the backend what was heard.

Plain frozen values, no behaviour and no imports from the rest of the gateway: both the call
layer and every backend import this module, it imports neither.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# --------------------------------------------------------------------------------------------
# The call's side of a bot item


@dataclass(frozen=True, slots=True)
class PlayoutItem:
    """A snapshot of one bot item in the playout queue at barge-in time."""

    item_id: str
    played_bytes: int  # bytes of this item sent on the wire


# --------------------------------------------------------------------------------------------
# The caller


@dataclass(frozen=True, slots=True)
class CallerSpeechStarted:
    """The backend heard the caller start speaking: the barge-in trigger. The backend gives
    `audio_ms` (the position in the caller audio it was sent); the call session adds the
    playout snapshot taken when it handles the report (`playout`)."""

    playout: tuple[PlayoutItem, ...] = ()
    audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class CallerSpeechStopped:
    audio_ms: int = 0


@dataclass(frozen=True, slots=True)
class CallerHeard:
    """The backend heard the caller speak, and that is all it says (GPT-Live: a fragment of
    the input transcript; the model yields by itself, so this is no barge-in). The caller is
    there: the call's inactivity watchdog counts from here."""


@dataclass(frozen=True, slots=True)
class CallerSilenceTimeout:
    """The backend's own inactivity timer fired; it answers the silence itself (a re-prompt).
    `item_id` is the (silent) caller turn it committed for it."""

    item_id: str = ""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """The caller's turn takes its place in the conversation, after `previous_item_id`. Its
    text (`CallerTranscript`) may come before or after the bot's answer to it."""

    item_id: str
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallerTranscript:
    """What the backend transcribed of a caller turn: a hint of what the model heard."""

    item_id: str
    text: str


# --------------------------------------------------------------------------------------------
# The bot


@dataclass(frozen=True, slots=True)
class BotReplyStarted:
    reply_id: str


@dataclass(frozen=True, slots=True)
class BotTurn:
    """A bot item of speech takes its place in the conversation (its transcript follows)."""

    item_id: str


@dataclass(frozen=True, slots=True)
class BotAudio:
    """Bot speech, in the call's G.711 law (never resampled), for one bot item of a reply."""

    reply_id: str
    item_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class BotAudioDone:
    """The bot item's audio is complete (also reported when its reply was stopped)."""

    reply_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class BotTranscript:
    """Text of a bot item: a piece (`final` False) or the whole of it (`final` True). It runs
    ahead of playback, so it is never what the caller heard."""

    item_id: str
    text: str
    final: bool


# A reply's end: completed (all of it generated), cancelled (stopped: a barge-in), failed (the
# backend could not produce it), incomplete (cut short, e.g. by a token limit).
REPLY_COMPLETED = "completed"
REPLY_CANCELLED = "cancelled"
REPLY_FAILED = "failed"
REPLY_INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class BotReplyDone:
    """A reply is over, whatever the outcome; always reported once per `BotReplyStarted`."""

    reply_id: str
    status: str  # REPLY_COMPLETED | REPLY_CANCELLED | REPLY_FAILED | REPLY_INCOMPLETE
    reason: str | None = None  # why it ended early, in the backend's words (turn_detected...)
    error: str | None = None  # a failed reply's error, short
    usage: Mapping[str, int] | None = None  # token counts (<kind>_tokens), when reported


@dataclass(frozen=True, slots=True)
class UsageReported:
    """Usage a backend reports on its own, not with a reply: token counts (<kind>_tokens), or
    GPT-Live's session seconds (`session_seconds`: a cumulative snapshot, the latest replaces
    the previous, never summed). Realtime reports tokens with the reply (`BotReplyDone.usage`)."""

    usage: Mapping[str, int] = field(default_factory=dict)
    session_seconds: float | None = None


# --------------------------------------------------------------------------------------------
# Tools


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model calls a tool: a built-in the machine decides (end_call, transfer_call,
    send_dtmf) or a custom one the call runs; its result goes back with `return_tool_result`."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallInvalid:
    """A tool call whose arguments could not be read: `error` goes back to the model as the
    tool's result, the tool does not run."""

    call_id: str
    name: str
    arguments_text: str
    error: str


def parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    """A tool call's `arguments` JSON string (both backends send one) -> (dict, error). Bad JSON
    is an error for the model: it becomes a ToolCallInvalid."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return {}, f"arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, "arguments must be a JSON object"
    return value, None


# --------------------------------------------------------------------------------------------
# The link itself


class VoiceErrorKind(enum.Enum):
    """What an error means for the call (the backend maps its own codes onto these)."""

    NOTHING_TO_STOP = "nothing_to_stop"  # stop asked for a reply already over: a benign race
    REPLY_IN_PROGRESS = "reply_in_progress"  # a reply was asked while one is being generated
    SESSION_EXPIRED = "session_expired"  # the session hit its cap; a ConnectionLost follows
    OTHER = "other"  # logged, never fatal by itself


@dataclass(frozen=True, slots=True)
class VoiceError:
    code: str  # the backend's own code, for logs
    message: str
    kind: VoiceErrorKind = VoiceErrorKind.OTHER


# The backend ended the session on purpose and a new one must not be opened
# (`ConnectionLost.final`): its safety filter (GPT-Live `session.closed{reason: content}`), or
# a graceful remote end (`remote_hangup`). The call maps these onto its end causes.
LOST_CONTENT = "content"
LOST_REMOTE_HANGUP = "remote_hangup"


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The connection to the backend went away; the call decides whether to reconnect.
    `final` (LOST_CONTENT, LOST_REMOTE_HANGUP): the backend ended the conversation itself,
    reconnecting would only start it again: the call ends."""

    reason: str
    final: str | None = None


@dataclass(frozen=True, slots=True)
class VoiceNote:
    """Backend activity worth a log line and a call-record entry, nothing to decide (e.g. the
    service calling MCP servers itself). `kind` is the call record's entry kind ("mcp"),
    `event` the log event name, `level` a `logging` level number."""

    kind: str
    event: str
    message: str
    level: int
    fields: Mapping[str, Any]


VoiceEvent = (
    CallerHeard
    | CallerSpeechStarted
    | CallerSpeechStopped
    | CallerSilenceTimeout
    | CallerTurn
    | CallerTranscript
    | BotReplyStarted
    | BotTurn
    | BotAudio
    | BotAudioDone
    | BotTranscript
    | BotReplyDone
    | UsageReported
    | ToolCall
    | ToolCallInvalid
    | VoiceError
    | ConnectionLost
    | VoiceNote
)


class VoiceLink(Protocol):
    """One voice backend's wire form of the call's requests, and of its reports.

    The requests return the client events to send, in order (none, one or several). A backend
    without some of the operations (no cancel or truncate: its output is continuous) returns
    fewer events; the machine's decisions do not change.
    """

    def stop_bot_audio(
        self, cancel_reply: bool, unheard: Sequence[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        """Events that stop the reply being generated (when `cancel_reply`) and make each bot
        item (item id, ms the caller heard; 0: none of it) match what was heard."""
        ...

    def request_reply(self, instructions: str | None) -> list[dict[str, Any]]: ...

    def add_text(self, text: str, role: str) -> list[dict[str, Any]]: ...

    def return_tool_result(self, call_id: str, output: str) -> list[dict[str, Any]]:
        """The result's events; none when the call is stale (the conversation moved on and
        the backend no longer waits for it)."""
        ...

    def replay(self, turns: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """Events that give a fresh session the conversation so far, (role, text) per turn
        (role "user", "assistant" or "system"), after a reconnect or a rollover."""
        ...

    def translate(self, server_event: Any) -> VoiceEvent | list[VoiceEvent] | None:
        """A backend server event as the call's report (several, in order, when one event
        means more than one thing: GPT-Live's first audio of a reply starts it), or None when
        it reports nothing the call acts on."""
        ...


# --------------------------------------------------------------------------------------------
# The connection to a backend, as the call session uses it


class VoiceSetupError(Exception):
    """A voice session could not be opened or configured (the call answers 503)."""


class VoiceConnection(Protocol):
    """One open session of a voice backend (Realtime: a RealtimeClient behind an adapter;
    GPT-Live: a LiveClient). Owner: the call session, which must `await close()`."""

    @property
    def connected(self) -> bool: ...

    def append_audio(self, audio: bytes) -> bool: ...  # False: dropped (queue full), counted

    @property
    def audio_appender(self) -> Callable[[bytes], bool | None]:
        """The per-frame form of append_audio (the call session's hot path, issue 14): True
        sent or queued, False dropped (queue full, counted), None not connected (nothing sent,
        no exception): the link's own check, so the session need not ask `connected` per
        frame. The session reads it once per attached connection."""
        ...

    def send(self, event: dict[str, Any]) -> None: ...  # raises when the link is gone

    def set_event_sink(self, sink: Callable[[Any], None]) -> None: ...

    async def close(self) -> None: ...

    def seconds_left(self) -> float | None:
        """Seconds until the backend ends this session by itself, when it said (GPT-Live's
        `expires_at`); None: the call's configured cap applies."""
        ...

    async def switch_codec(self, config: Any, timeout: float) -> bool:  # noqa: ASYNC109
        """Change the G.711 law in place (`config`: the backend's session configuration for
        the new law); False when the backend cannot (GPT-Live: the format is immutable, the
        call opens a new session instead). Raises VoiceSetupError when refused."""
        ...


class VoiceBackend(Protocol):
    """A voice backend as the call session needs it: how to open a session, its link, and
    what the call must know of its behaviour. Built above the call (gateway/call_settings.py)
    and handed down in the session settings, so the call imports no backend."""

    name: str  # "realtime" | "live"

    async def open(
        self,
        endpoint: Any,
        config: Any,
        history: Sequence[tuple[str, str]],
        timeout: float,  # noqa: ASYNC109
    ) -> VoiceConnection:
        """Connect and configure (GPT-Live: start, seeded with `history`); raises
        VoiceSetupError. A backend that replays history with events instead (Realtime) gets
        them from its link's `replay`."""
        ...

    def new_link(self, config: Any) -> VoiceLink:
        """The link for one session (a stateful backend gets a fresh one per session)."""
        ...

    def describe(self, endpoint: Any) -> str:
        """The endpoint for logs (never a secret)."""
        ...

    def audio_format(self, config: Any) -> str:
        """The configured G.711 format, for the connected log line."""
        ...

    def with_replay_transcription(self, config: Any, model: str) -> tuple[Any, bool]:
        """`config` with caller transcription turned on for replay when it is off (Realtime);
        (config, True) when the caller's transcripts are then for replay only."""
        ...


__all__ = [
    "LOST_CONTENT",
    "LOST_REMOTE_HANGUP",
    "REPLY_CANCELLED",
    "REPLY_COMPLETED",
    "REPLY_FAILED",
    "REPLY_INCOMPLETE",
    "BotAudio",
    "BotAudioDone",
    "BotReplyDone",
    "BotReplyStarted",
    "BotTranscript",
    "BotTurn",
    "CallerHeard",
    "CallerSilenceTimeout",
    "CallerSpeechStarted",
    "CallerSpeechStopped",
    "CallerTranscript",
    "CallerTurn",
    "ConnectionLost",
    "PlayoutItem",
    "ToolCall",
    "ToolCallInvalid",
    "UsageReported",
    "VoiceBackend",
    "VoiceConnection",
    "VoiceError",
    "VoiceErrorKind",
    "VoiceEvent",
    "VoiceLink",
    "VoiceNote",
    "VoiceSetupError",
]
