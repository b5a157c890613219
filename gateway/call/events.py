"""The per-call state machine's vocabulary: the events it is fed and the actions it returns.

Plain frozen values, no behaviour: gateway/call/machine.py decides (`step`), the call session
(gateway/call/session.py) feeds the events and executes the actions. Events speak of the call
(caller speech, bot audio, a tool call, a digit, the media timing out); actions of what to do
about it (answer, BYE with an end cause, flush playout, stop the bot audio the caller did not
hear).

What the voice backend reports (caller speech, bot replies and their audio, tool calls, errors,
a lost connection) are the voice link's own values, defined in gateway/voice.py and re-exported
here: every backend reports in those words, so the machine's table is the same for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.call.causes import EndCause
from gateway.voice import (
    BotAudio,
    BotAudioDone,
    BotReplyDone,
    BotReplyStarted,
    CallerHeard,
    CallerSilenceTimeout,
    CallerSpeechStarted,
    CallerSpeechStopped,
    ConnectionLost,
    PlayoutItem,
    ToolCall,
    VoiceError,
    VoiceErrorKind,
)

# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Start:
    """The application decided to take the call: open the voice session."""


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The voice session is open and confirmed the call's G.711 law (Realtime: session.updated;
    GPT-Live: session.started). `cap_s`: seconds until the backend ends the session by itself,
    when it said (GPT-Live's `expires_at`); None: the policy's `session_cap_s`."""

    cap_s: float | None = None


@dataclass(frozen=True, slots=True)
class SessionFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Timer H: the 2xx was never acknowledged."""


@dataclass(frozen=True, slots=True)
class CallerBye:
    pass


@dataclass(frozen=True, slots=True)
class CallerCancel:
    pass


@dataclass(frozen=True, slots=True)
class RtpTimeout:
    seconds: float


@dataclass(frozen=True, slots=True)
class MaxDuration:
    pass


@dataclass(frozen=True, slots=True)
class IdleTimeout:
    """The gateway's inactivity timer (`idle_prompt_s`) fired: nobody spoke for that long."""


@dataclass(frozen=True, slots=True)
class PlayoutDrained:
    """The playout queue ran empty after the bot's last audio (the caller heard it all)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    output: str


def tool_error(message: str) -> str:
    """A failed tool's output for the model, `{"ok": false, "error": message}`, always valid
    JSON: the message often quotes what the model sent (a tool name, a transfer target,
    digits), which a hostile server can fill with quotes and braces."""
    return json.dumps({"ok": False, "error": message})


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    source: str  # rfc4733 | info | inband
    playout: tuple[PlayoutItem, ...] = ()  # snapshot, for a DTMF barge-in


@dataclass(frozen=True, slots=True)
class DigitTimeout:
    pass


@dataclass(frozen=True, slots=True)
class ReferResult:
    status: int  # final sipfrag status (or the REFER's own failure status)


@dataclass(frozen=True, slots=True)
class Reconnected:
    cap_s: float | None = None  # as SessionReady's, for the new session


@dataclass(frozen=True, slots=True)
class ReconnectBudgetSpent:
    """The call used its voice-session reconnect budget (`realtime.reconnect_budget` attempts per
    `realtime.reconnect_window_s`): end it instead of reconnecting while the caller hears
    silence."""

    reason: str


@dataclass(frozen=True, slots=True)
class SessionCapNear:
    """Timer: the voice session approaches its cap; roll over at the next silence."""


@dataclass(frozen=True, slots=True)
class RolledOver:
    cap_s: float | None = None  # as SessionReady's, for the new session


@dataclass(frozen=True, slots=True)
class DrainTimeout:
    pass


@dataclass(frozen=True, slots=True)
class CodecAnswered:
    """Late offer: the answer in the ACK chose this G.711 law (PCMU | PCMA)."""

    codec: str


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """A re-INVITE/UPDATE put the call on hold or resumed it (our negotiated direction)."""

    on_hold: bool
    direction: str  # sendrecv | sendonly | recvonly | inactive


@dataclass(frozen=True, slots=True)
class OperatorHangup:
    """The control API's DELETE /calls/{id} on an answered call."""


@dataclass(frozen=True, slots=True)
class OperatorSay:
    """The control API's POST /calls/{id}/say: a message for the model, maybe a reply."""

    text: str
    role: str = "system"  # "system" (an instruction) | "user" (as if the caller said it)
    respond: bool = True


Event = (
    Start
    | SessionReady
    | SessionFailed
    | Ack
    | AckTimeout
    | CallerBye
    | CallerCancel
    | RtpTimeout
    | MaxDuration
    | CallerSpeechStarted
    | CallerSpeechStopped
    | BotReplyStarted
    | BotAudio
    | BotAudioDone
    | BotReplyDone
    | PlayoutDrained
    | ToolCall
    | ToolResult
    | VoiceError
    | Dtmf
    | DigitTimeout
    | ReferResult
    | ConnectionLost
    | Reconnected
    | ReconnectBudgetSpent
    | SessionCapNear
    | RolledOver
    | DrainTimeout
    | IdleTimeout
    | CallerSilenceTimeout
    | CallerHeard
    | OperatorHangup
    | OperatorSay
    | HoldChanged
    | CodecAnswered
)

# --------------------------------------------------------------------------------------------
# Actions (executed in order by gateway/call/session.py)


@dataclass(frozen=True, slots=True)
class OpenSession:
    pass


@dataclass(frozen=True, slots=True)
class CloseSession:
    pass


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Open a new voice session and replay instructions, tools and the conversation as text."""

    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    """Send 200 OK with our SDP answer."""


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    reason: str
    retry_after_s: int | None = None


@dataclass(frozen=True, slots=True)
class SendBye:
    """End the call with BYE; the Reason header (RFC 3326) is the cause's (causes.BYE_REASONS),
    with `text` instead of its text when given."""

    cause: EndCause
    text: str = ""


@dataclass(frozen=True, slots=True)
class SendRefer:
    target_uri: str


@dataclass(frozen=True, slots=True)
class SwitchCodec:
    """Voice session and playout to this G.711 law (one session.update): never transcoded."""

    codec: str


@dataclass(frozen=True, slots=True)
class StopMedia:
    pass


@dataclass(frozen=True, slots=True)
class EnqueueAudio:
    item_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class EndOfAudio:
    """The item's audio is complete: pad its last frame, mark the talkspurt end."""

    item_id: str


@dataclass(frozen=True, slots=True)
class FlushPlayout:
    pass


@dataclass(frozen=True, slots=True)
class UnheardItem:
    """A bot item the caller did not hear completely, and how much of it was heard."""

    item_id: str
    heard_ms: int  # 0: nothing of it was heard


@dataclass(frozen=True, slots=True)
class StopBotAudio:
    """Barge-in, for the voice link: stop the reply still being generated (`cancel_reply`:
    the service did not stop it itself) and make each bot item match what the caller heard
    (the Realtime link: response.cancel, then truncate or delete per item)."""

    items: tuple[UnheardItem, ...] = ()
    cancel_reply: bool = False


@dataclass(frozen=True, slots=True)
class RequestReply:
    """Ask the voice backend for a reply (Realtime: response.create)."""

    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class AddText:
    """Add a text to the conversation: `role` "user" as if the caller said it (e.g. the digits
    the caller pressed), "system" an instruction (Realtime: conversation.item.create)."""

    text: str
    role: str = "user"


@dataclass(frozen=True, slots=True)
class ReturnToolResult:
    """A tool's result back to the model (Realtime: a function_call_output item)."""

    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run a custom (HTTP) tool; its result comes back as ToolResult."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SendDigits:
    digits: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Rollover:
    """Open the next voice session now (at a silence) and swap to it."""


@dataclass(frozen=True, slots=True)
class Note:
    """A call event worth a log line / call-record entry (never per packet)."""

    event: str
    fields: Mapping[str, Any] = field(default_factory=dict)


Action = (
    OpenSession
    | CloseSession
    | Reconnect
    | Answer
    | Reject
    | SendBye
    | SendRefer
    | SwitchCodec
    | StopMedia
    | EnqueueAudio
    | EndOfAudio
    | FlushPlayout
    | StopBotAudio
    | RequestReply
    | AddText
    | ReturnToolResult
    | RunTool
    | SendDigits
    | StartTimer
    | CancelTimer
    | Rollover
    | Note
)

# Timer names (the session maps them to loop.call_at handles).
T_SETUP = "setup"
T_DIGITS = "digits"
T_DRAIN = "drain"
T_IDLE = "idle"

BUILTIN_TOOLS = frozenset({"end_call", "transfer_call", "send_dtmf"})


__all__ = [
    "BUILTIN_TOOLS",
    "T_DIGITS",
    "T_DRAIN",
    "T_IDLE",
    "T_SETUP",
    "Ack",
    "AckTimeout",
    "Action",
    "AddText",
    "Answer",
    "BotAudio",
    "BotAudioDone",
    "BotReplyDone",
    "BotReplyStarted",
    "CallerBye",
    "CallerCancel",
    "CallerHeard",
    "CallerSilenceTimeout",
    "CallerSpeechStarted",
    "CallerSpeechStopped",
    "CancelTimer",
    "CloseSession",
    "CodecAnswered",
    "ConnectionLost",
    "DigitTimeout",
    "DrainTimeout",
    "Dtmf",
    "EndOfAudio",
    "EnqueueAudio",
    "Event",
    "FlushPlayout",
    "HoldChanged",
    "IdleTimeout",
    "MaxDuration",
    "Note",
    "OpenSession",
    "OperatorHangup",
    "OperatorSay",
    "PlayoutDrained",
    "PlayoutItem",
    "Reconnect",
    "ReconnectBudgetSpent",
    "Reconnected",
    "ReferResult",
    "Reject",
    "RequestReply",
    "ReturnToolResult",
    "RolledOver",
    "Rollover",
    "RtpTimeout",
    "RunTool",
    "SendBye",
    "SendDigits",
    "SendRefer",
    "SessionCapNear",
    "SessionFailed",
    "SessionReady",
    "Start",
    "StartTimer",
    "StopBotAudio",
    "StopMedia",
    "SwitchCodec",
    "ToolCall",
    "ToolResult",
    "UnheardItem",
    "VoiceError",
    "VoiceErrorKind",
    "tool_error",
]
