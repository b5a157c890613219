"""The per-call state machine: pure, table-driven, no I/O.

One call couples three things that each move on their own: the SIP dialog, the RTP media and the
Realtime session. This module decides what to do; `gateway/call/session.py` does it.

    step(ctx, event) -> (ctx, actions)

`ctx` is an immutable `CallContext` (the state plus the few facts the decisions need), `event` is
one of the event dataclasses below, and `actions` are plain values (send this Realtime event, flush
playout, send BYE...) executed in order by the session. The transition table `TRANSITIONS` maps
(state, event type) to a handler and the set of states it may lead to; `step` checks that every
handler stays inside its declared targets, so the table can be read against the call flow:

    OFFERED --Start--> CONNECTING --SessionReady--> ANSWERING --Ack--> LISTENING
    LISTENING <--> CALLER_SPEAKING (speech_started / speech_stopped)
    LISTENING/CALLER_SPEAKING --AudioDelta--> BOT_SPEAKING --PlayoutDrained--> LISTENING
    any live state --end_call / max duration--> ENDING --PlayoutDrained--> ENDED (BYE)
    any live state --transfer_call--> TRANSFERRING --ReferResult 2xx--> ENDED (BYE)
    any live state --RtpTimeout--> ENDING (drain) --PlayoutDrained--> ENDED (BYE, cause=408)
    any state --CallerBye / CallerCancel / SessionFailed--> ENDED
    any live state --ReconnectBudgetSpent--> ENDED (BYE, Reason cause=503)

Events that are not in the table for the current state raise `IllegalTransition` (a bug or a
protocol violation worth a log line; the session logs it and carries on). Events that can
legitimately arrive late (Realtime events after the call ended, a late ACK) are listed explicitly
with the `_ignore` handler, so "ignored" is a reviewed decision, not an accident.

Why the facts about playout arrive inside events (`SpeechStarted.playout`): the playout queue lives
in the media path and changes every 20 ms; the session snapshots it at the moment the event is
handled, so the machine stays pure and barge-in is decided on the bytes actually sent on the wire
(realtime-protocol.md section 5: byte accounting, never wall-clock estimates).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.call.causes import EndCause, bye_reason

# --------------------------------------------------------------------------------------------
# States


class State(enum.Enum):
    OFFERED = "offered"  # INVITE received, 100/180 sent, nothing decided yet
    CONNECTING = "connecting"  # Realtime session opening, waiting for session.updated
    ANSWERING = "answering"  # 200 OK sent, waiting for the ACK
    LISTENING = "listening"  # active: nobody speaking, bot audio fully played
    CALLER_SPEAKING = "caller_speaking"  # active: server VAD says the caller talks
    BOT_SPEAKING = "bot_speaking"  # active: bot audio queued or being played
    TRANSFERRING = "transferring"  # REFER sent, following the NOTIFYs
    ENDING = "ending"  # draining the last bot audio before BYE
    ENDED = "ended"


ACTIVE = frozenset({State.LISTENING, State.CALLER_SPEAKING, State.BOT_SPEAKING})
# States where the Realtime session exists and its events must be handled.
SESSION_LIVE = ACTIVE | {State.ANSWERING, State.TRANSFERRING, State.ENDING}
LIVE = SESSION_LIVE | {State.OFFERED, State.CONNECTING}

# --------------------------------------------------------------------------------------------
# Per-call policy (from the route configuration; fixed for the call)


class DtmfMode(enum.Enum):
    FORWARD = "forward"  # collect digits and tell the model
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class DigitAction:
    """What a single digit does instead of being forwarded (e.g. '0' -> transfer to operator)."""

    kind: str  # "transfer" | "hangup"
    target: str = ""  # transfer target name (key of CallPolicy.transfer_targets)


@dataclass(frozen=True, slots=True)
class CallPolicy:
    greeting: str | None = None  # instructions for a first response after the ACK
    server_interrupts: bool = True  # turn_detection.interrupt_response: the server cancels itself
    truncate_allowance_ms: int = 0  # audio assumed still in the phone's own buffer on barge-in
    dtmf_mode: DtmfMode = DtmfMode.FORWARD
    digit_actions: Mapping[str, DigitAction] = field(default_factory=dict)
    digit_terminator: str = "#"
    max_digits: int = 16
    inter_digit_timeout_s: float = 2.0
    dtmf_barge_in: bool = True  # a digit while the bot speaks interrupts it
    transfer_targets: Mapping[str, str] = field(default_factory=dict)  # name -> SIP URI
    setup_timeout_s: float = 5.0  # session.updated must arrive within this (else 503)
    drain_timeout_s: float = 30.0  # longest we wait for playout before BYE
    session_cap_s: float = 3600.0  # Realtime session limit (60 min)
    rollover_margin_s: float = 300.0  # start looking for a silence this long before the cap
    retry_after_s: int = 30  # Retry-After on 503 when the session cannot be set up
    # A response.done with status failed (or incomplete with no audio): ask again this many
    # times in a row (with `failed_response_instructions`), then transfer to
    # `failed_response_transfer` (a transfer target name) or end the call (BYE, cause 503).
    # Never: the caller left in silence waiting for an answer that will not come.
    failed_response_retries: int = 1
    failed_response_instructions: str = (
        "Your previous answer was lost. Apologise in a few words and answer the caller again."
    )
    failed_response_transfer: str = ""
    # The gateway's own inactivity watchdog (works with semantic_vad too, unlike the server's
    # idle_timeout_ms): after `idle_prompt_s` of nobody speaking the bot prompts the caller;
    # after `idle_prompts_max` unanswered prompts (the server's timeout_triggered re-prompts
    # count too) it says goodbye and hangs up. 0 = off.
    idle_prompt_s: float = 0.0
    idle_prompts_max: int = 2
    idle_prompt_instructions: str = (
        "The caller has been silent for a while. Briefly ask whether they are still there."
    )
    idle_goodbye_instructions: str = (
        "The caller is not answering. Say a short, polite goodbye; the call will end."
    )


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Start:
    """The application decided to take the call: open the Realtime session."""


@dataclass(frozen=True, slots=True)
class SessionReady:
    """session.updated confirmed the G.711 formats."""


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
class PlayoutItem:
    """A snapshot of one bot item in the playout queue at barge-in time."""

    item_id: str
    played_bytes: int  # bytes of this item sent on the wire


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """input_audio_buffer.speech_started, with the playout queue snapshot taken when handled."""

    playout: tuple[PlayoutItem, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    pass


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    response_id: str
    item_id: str
    audio: bytes  # G.711, already base64-decoded


@dataclass(frozen=True, slots=True)
class AudioDone:
    """response.output_audio.done: the item's audio is complete (also sent on cancel)."""

    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: str  # completed | cancelled | failed | incomplete
    reason: str | None = None  # status_details.reason (turn_detected, max_output_tokens...)
    error: str | None = None  # status_details.error code/message of a failed response


@dataclass(frozen=True, slots=True)
class IdleTimeout:
    """The gateway's inactivity timer (`idle_prompt_s`) fired: nobody spoke for that long."""


@dataclass(frozen=True, slots=True)
class InputTimeout:
    """input_audio_buffer.timeout_triggered: server_vad's idle_timeout_ms fired (the server
    commits the silence and answers it itself: a re-prompt)."""


@dataclass(frozen=True, slots=True)
class PlayoutDrained:
    """The playout queue ran empty after the bot's last audio (the caller heard it all)."""


@dataclass(frozen=True, slots=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class RealtimeError:
    code: str
    message: str


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
class ConnectionLost:
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected:
    pass


@dataclass(frozen=True, slots=True)
class ReconnectBudgetSpent:
    """The call used its Realtime reconnect budget (`realtime.reconnect_budget` attempts per
    `realtime.reconnect_window_s`): end it instead of reconnecting while the caller hears
    silence."""

    reason: str


@dataclass(frozen=True, slots=True)
class SessionCapNear:
    """Timer: the Realtime session approaches its cap; roll over at the next silence."""


@dataclass(frozen=True, slots=True)
class RolledOver:
    pass


@dataclass(frozen=True, slots=True)
class DrainTimeout:
    pass


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
    | SpeechStarted
    | SpeechStopped
    | ResponseCreated
    | AudioDelta
    | AudioDone
    | ResponseDone
    | PlayoutDrained
    | FunctionCall
    | ToolResult
    | RealtimeError
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
    | InputTimeout
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
    """Open a new Realtime session and replay instructions, tools and the conversation as text."""

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
    """End the call with BYE; the Reason header (RFC 3326) is the cause's (causes.BYE_REASONS)."""

    cause: EndCause


@dataclass(frozen=True, slots=True)
class SendRefer:
    target_uri: str


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
class Truncate:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class DeleteItem:
    item_id: str


@dataclass(frozen=True, slots=True)
class CancelResponse:
    pass


@dataclass(frozen=True, slots=True)
class CreateResponse:
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class AddText:
    """conversation.item.create with a text message (e.g. the digits the caller pressed)."""

    text: str
    role: str = "user"


@dataclass(frozen=True, slots=True)
class FunctionOutput:
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
    """Open the next Realtime session now (at a silence) and swap to it."""


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
    | StopMedia
    | EnqueueAudio
    | EndOfAudio
    | FlushPlayout
    | Truncate
    | DeleteItem
    | CancelResponse
    | CreateResponse
    | AddText
    | FunctionOutput
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

# --------------------------------------------------------------------------------------------
# Context


@dataclass(frozen=True, slots=True)
class CallContext:
    policy: CallPolicy
    state: State = State.OFFERED
    response_id: str | None = None  # the response currently generating (None when none)
    cancelling: bool = False  # a cancel is under way (ours or the server's interrupt_response)
    discard_response_ids: frozenset[str] = frozenset()  # interrupted: drop their late deltas
    received_bytes: Mapping[str, int] = field(default_factory=dict)  # audio received per item
    audio_done_items: frozenset[str] = frozenset()  # items whose audio is complete
    playout_busy: bool = False  # bot audio queued or playing
    response_wanted: bool = False  # a response.create is owed once no response is active
    digits: str = ""  # collected DTMF digits not yet forwarded
    end_after_playout: EndCause | None = None  # BYE once playout drains (end_call, max duration)
    transfer_after_playout: str | None = None  # REFER target once playout drains
    transfer_call_id: str | None = None  # the transfer_call function call awaiting its result
    session_connected: bool = False
    acked: bool = False  # the ACK for our 2xx arrived (speech may start before it does)
    rollover_pending: bool = False
    hangup_cause: str | None = None
    pending_tool_calls: frozenset[str] = frozenset()  # custom tools running: outputs owed
    response_audio: bool = False  # the active response produced audio
    failed_retries: int = 0  # failed responses in a row we asked again for
    idle_prompts: int = 0  # idle prompts in a row the caller did not answer


class IllegalTransition(Exception):
    def __init__(self, state: State, event: object) -> None:
        super().__init__(f"event {type(event).__name__} is not allowed in state {state.value}")
        self.state = state
        self.event = event


Result = tuple[CallContext, list[Action]]
Handler = Callable[[CallContext, Any], Result]

# --------------------------------------------------------------------------------------------
# Helpers shared by handlers


def _to(ctx: CallContext, state: State, **changes: Any) -> CallContext:
    return replace(ctx, state=state, **changes)


def _end(ctx: CallContext, cause: str, actions: list[Action]) -> Result:
    """Every way into ENDED goes through here: media stopped, session closed, timers cancelled."""
    out = [*actions, StopMedia(), CloseSession(), CancelTimer(T_SETUP), CancelTimer(T_DIGITS)]
    out += [CancelTimer(T_DRAIN), CancelTimer(T_IDLE)]
    out += [Note("call.state", {"state": "ended", "cause": cause})]
    return _to(ctx, State.ENDED, hangup_cause=cause, session_connected=False), out


def _idle_state(ctx: CallContext) -> State:
    return State.BOT_SPEAKING if ctx.playout_busy else State.LISTENING


def _request_response(ctx: CallContext, instructions: str | None = None) -> Result:
    """Ask for a response now if none is active; otherwise owe one until response.done.

    Only one response may write to the conversation at a time (a second gets
    conversation_already_has_active_response), so a tool result or digits arriving mid-response
    wait for that response's response.done.
    """
    if ctx.response_id is None and ctx.session_connected and not ctx.pending_tool_calls:
        return replace(ctx, response_wanted=False), [CreateResponse(instructions)]
    # Tool outputs still owed (several calls in one response): one response.create once the
    # last output is in, never one per output.
    return replace(ctx, response_wanted=True), []


def _barge_in(ctx: CallContext, playout: tuple[PlayoutItem, ...], trigger: str) -> Result:
    """Stop the bot: flush playout, make the conversation match what the caller heard.

    Per item still in the playout queue: nothing played -> delete it (the caller heard none of it);
    partly played -> truncate at the bytes sent on the wire / 8, minus the configured allowance,
    clamped to the audio received; played completely (all received audio sent and the item's audio
    is done) -> nothing, a needless truncate makes the model repeat itself. This applies equally in
    the tail after response.done, when the server has nothing left to cancel.
    """
    actions: list[Action] = [FlushPlayout()]
    discard = ctx.discard_response_ids
    cancelling = ctx.cancelling
    if ctx.response_id is not None and not ctx.cancelling:
        discard = discard | {ctx.response_id}
        cancelling = True
        # With interrupt_response the server cancels on speech_started itself; a cancel from us
        # would only earn response_cancel_not_active. A DTMF barge-in is not seen by the server.
        # The cancel goes first: a truncate or delete of an item the response is still
        # writing would race its next deltas (realtime-protocol.md section 5).
        if trigger != "speech" or not ctx.policy.server_interrupts:
            actions.append(CancelResponse())
    elif ctx.response_id is not None:
        discard = discard | {ctx.response_id}
    for item in playout:
        received = ctx.received_bytes.get(item.item_id, 0)
        played = min(item.played_bytes, received)
        complete = item.item_id in ctx.audio_done_items and played >= received
        if complete:
            continue
        audio_end_ms = played // 8 - ctx.policy.truncate_allowance_ms
        if audio_end_ms <= 0:
            actions.append(DeleteItem(item.item_id))
        else:
            actions.append(Truncate(item.item_id, min(audio_end_ms, received // 8)))
    actions.append(Note("barge_in", {"trigger": trigger, "items": len(playout)}))
    ctx = replace(ctx, discard_response_ids=discard, cancelling=cancelling, playout_busy=False)
    return ctx, actions


def _after_playout(ctx: CallContext) -> Result:
    """Playout is empty: carry out what waited for it (BYE, REFER, rollover), else listen."""
    if ctx.end_after_playout is not None:
        return _bye(ctx, ctx.end_after_playout)
    if ctx.transfer_after_playout is not None:
        target = ctx.transfer_after_playout
        ctx = _to(ctx, State.TRANSFERRING, transfer_after_playout=None)
        return ctx, [SendRefer(target), Note("transfer.started", {"target": target})]
    if ctx.rollover_pending and ctx.response_id is None:
        return _to(ctx, State.LISTENING, rollover_pending=False), [Rollover()]
    return _to(ctx, State.LISTENING), _arm_idle(ctx)


def _arm_idle(ctx: CallContext) -> list[Action]:
    """The caller's turn: (re)start the inactivity watchdog, when it is on."""
    if ctx.policy.idle_prompt_s <= 0 or ctx.response_id is not None or ctx.response_wanted:
        return []
    return [StartTimer(T_IDLE, ctx.policy.idle_prompt_s)]


def _disarm_idle(ctx: CallContext) -> list[Action]:
    return [CancelTimer(T_IDLE)] if ctx.policy.idle_prompt_s > 0 else []


def _forward_digits(ctx: CallContext) -> Result:
    if not ctx.digits:
        return ctx, [CancelTimer(T_DIGITS)]
    text = "The caller pressed " + " ".join(ctx.digits)
    ctx2, actions = _request_response(replace(ctx, digits=""))
    return ctx2, [CancelTimer(T_DIGITS), AddText(text), *actions]


# --------------------------------------------------------------------------------------------
# Handlers: one per (state group, event). Each returns (ctx, actions).


def _ignore(ctx: CallContext, ev: Any) -> Result:
    return ctx, []


def on_start(ctx: CallContext, ev: Start) -> Result:
    return _to(ctx, State.CONNECTING), [
        OpenSession(),
        StartTimer(T_SETUP, ctx.policy.setup_timeout_s),
    ]


def on_session_ready(ctx: CallContext, ev: SessionReady) -> Result:
    ctx = _to(ctx, State.ANSWERING, session_connected=True)
    actions: list[Action] = [CancelTimer(T_SETUP), Answer()]
    cap = ctx.policy.session_cap_s - ctx.policy.rollover_margin_s
    if cap > 0:
        actions.append(StartTimer("session_cap", cap))
    return ctx, actions


def on_setup_failed(ctx: CallContext, ev: SessionFailed) -> Result:
    # The caller never got a 200: 503 + Retry-After tells a trunk to try another gateway.
    reject = Reject(503, "Service Unavailable", ctx.policy.retry_after_s)
    return _end(ctx, f"setup failed: {ev.reason}", [CancelTimer(T_SETUP), reject])


def on_cancel(ctx: CallContext, ev: CallerCancel) -> Result:
    # The UA already answered CANCEL with 200 and the INVITE with 487.
    return _end(ctx, "caller cancelled", [])


def on_ack(ctx: CallContext, ev: Ack) -> Result:
    if ctx.acked:
        return ctx, []  # a retransmitted ACK
    state = _idle_state(ctx) if ctx.state is State.ANSWERING else ctx.state
    ctx = _to(ctx, state, acked=True)
    actions: list[Action] = [Note("call.state", {"state": "active"})]
    # No greeting over a caller who already started talking before the ACK came.
    if ctx.policy.greeting is not None and ctx.state is State.LISTENING:
        ctx, more = _request_response(ctx, ctx.policy.greeting or None)
        actions += more
    elif ctx.state is State.LISTENING:
        actions += _arm_idle(ctx)  # no greeting: the caller's turn starts now
    return ctx, actions


def on_ack_timeout(ctx: CallContext, ev: AckTimeout) -> Result:
    if ctx.acked:
        return ctx, []
    return _end(ctx, "ack timeout", [SendBye(EndCause.ACK_TIMEOUT)])


def on_caller_bye(ctx: CallContext, ev: CallerBye) -> Result:
    return _end(ctx, "caller hangup", [])


def on_rtp_timeout(ctx: CallContext, ev: RtpTimeout) -> Result:
    # The bot's words already queued still go out (the caller may only have stopped sending,
    # e.g. a one-way NAT), then BYE with Reason cause=408. While ending or transferring the
    # call is on its way out already: BYE now.
    if ctx.state in (State.ENDING, State.TRANSFERRING, State.CONNECTING):
        return _bye(ctx, EndCause.RTP_TIMEOUT)
    return _finish_after_playout(ctx, EndCause.RTP_TIMEOUT)


def on_session_failed(ctx: CallContext, ev: SessionFailed) -> Result:
    return _end(ctx, f"realtime failed: {ev.reason}", [SendBye(EndCause.REALTIME_FAILED)])


def on_max_duration(ctx: CallContext, ev: MaxDuration) -> Result:
    return _finish_after_playout(ctx, EndCause.MAX_DURATION)


def _bye(ctx: CallContext, cause: EndCause, actions: tuple[Action, ...] = ()) -> Result:
    """End the call with our BYE; the hang-up detail is the BYE's Reason text."""
    return _end(ctx, bye_reason(cause).text, [*actions, SendBye(cause)])


def _finish_after_playout(ctx: CallContext, cause: EndCause) -> Result:
    if not ctx.playout_busy:
        return _bye(ctx, cause)
    ctx = _to(ctx, State.ENDING, end_after_playout=cause)
    return ctx, [StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]


def on_speech_started(ctx: CallContext, ev: SpeechStarted) -> Result:
    actions: list[Action] = _disarm_idle(ctx)
    if ctx.playout_busy or ev.playout or ctx.response_id is not None:
        ctx, more = _barge_in(ctx, ev.playout, "speech")
        actions += more
    return _to(ctx, State.CALLER_SPEAKING, idle_prompts=0), actions


def on_speech_stopped(ctx: CallContext, ev: SpeechStopped) -> Result:
    return _to(ctx, _idle_state(ctx)), []


def on_response_created(ctx: CallContext, ev: ResponseCreated) -> Result:
    ctx = replace(ctx, response_id=ev.response_id, cancelling=False, response_audio=False)
    return ctx, _disarm_idle(ctx)


def on_idle_timeout(ctx: CallContext, ev: IdleTimeout) -> Result:
    if ctx.state is not State.LISTENING or ctx.response_id is not None or ctx.playout_busy:
        return ctx, []  # someone is talking after all; the next quiet turn re-arms
    if ctx.idle_prompts >= ctx.policy.idle_prompts_max:
        note = Note("call.idle_hangup", {"prompts": ctx.idle_prompts})
        ctx = _to(ctx, State.ENDING, end_after_playout=EndCause.IDLE_CALLER)
        ctx, more = _request_response(ctx, ctx.policy.idle_goodbye_instructions or None)
        return ctx, [note, *more, StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]
    ctx = replace(ctx, idle_prompts=ctx.idle_prompts + 1)
    note = Note("call.idle_prompt", {"prompt": ctx.idle_prompts})
    ctx, more = _request_response(ctx, ctx.policy.idle_prompt_instructions or None)
    return ctx, [note, *more]


def on_input_timeout(ctx: CallContext, ev: InputTimeout) -> Result:
    # The server re-prompts by itself (it commits the silence and answers it): one more
    # unanswered prompt. Past the limit, the call ends once that answer has played.
    prompts = ctx.idle_prompts + 1
    note = Note("realtime.idle_timeout", {"prompt": prompts})
    ctx = replace(ctx, idle_prompts=prompts)
    if prompts > ctx.policy.idle_prompts_max and ctx.state in ACTIVE:
        ctx = _to(ctx, State.ENDING, end_after_playout=EndCause.IDLE_CALLER)
        hangup = Note("call.idle_hangup", {"prompts": prompts})
        return ctx, [note, hangup, StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]
    return ctx, [note]


def on_audio_delta(ctx: CallContext, ev: AudioDelta) -> Result:
    if ev.response_id in ctx.discard_response_ids:
        return ctx, []  # late deltas of an interrupted response (realtime-protocol.md 5, step 1)
    received = dict(ctx.received_bytes)
    received[ev.item_id] = received.get(ev.item_id, 0) + len(ev.audio)
    state = State.BOT_SPEAKING if ctx.state is not State.CALLER_SPEAKING else ctx.state
    if ctx.state in (State.ENDING, State.TRANSFERRING):
        state = ctx.state
    ctx = replace(
        ctx,
        state=state,
        received_bytes=received,
        playout_busy=True,
        response_audio=ctx.response_audio or ev.response_id == ctx.response_id,
    )
    return ctx, [EnqueueAudio(ev.item_id, ev.audio)]


def on_audio_done(ctx: CallContext, ev: AudioDone) -> Result:
    ctx = replace(ctx, audio_done_items=ctx.audio_done_items | {ev.item_id})
    if ev.response_id in ctx.discard_response_ids:
        return ctx, []
    return ctx, [EndOfAudio(ev.item_id)]


def on_response_done(ctx: CallContext, ev: ResponseDone) -> Result:
    if ev.response_id != ctx.response_id:
        return ctx, []  # a response we already forgot (e.g. from before a reconnect)
    silent = not ctx.response_audio
    ctx = replace(ctx, response_id=None, cancelling=False, response_audio=False)
    actions: list[Action] = []
    if ev.status in ("failed", "incomplete"):
        note = Note(
            "realtime.response_failed",
            {"status": ev.status, "reason": ev.reason, "error": ev.error, "silent": silent},
        )
        actions.append(note)
        if (ev.status == "failed" or silent) and ctx.state not in (
            State.ENDING,
            State.TRANSFERRING,
        ):
            recovered = _recover_failed_response(ctx)
            if recovered is not None:
                ctx, more = recovered
                if ctx.state is State.ENDED or ctx.state is State.TRANSFERRING:
                    return ctx, actions + more
                actions += more
    elif ev.status == "completed" and not silent:
        ctx = replace(ctx, failed_retries=0)
    if ctx.response_wanted:
        ctx, actions = _request_response(ctx)
    if ctx.playout_busy or ctx.state is State.TRANSFERRING:
        return ctx, actions  # PlayoutDrained finishes the turn
    waiting = ctx.end_after_playout is not None or ctx.transfer_after_playout is not None
    if waiting or ctx.state in (State.ENDING, State.BOT_SPEAKING) or ctx.rollover_pending:
        if ctx.state is not State.CALLER_SPEAKING or waiting:
            more_ctx, more = _after_playout(ctx)
            return more_ctx, actions + more
    return ctx, actions


def _recover_failed_response(ctx: CallContext) -> Result | None:
    """A response failed and the caller heard nothing: ask again, then transfer or end."""
    policy = ctx.policy
    if ctx.failed_retries < policy.failed_response_retries:
        ctx = replace(ctx, failed_retries=ctx.failed_retries + 1)
        return _request_response(ctx, policy.failed_response_instructions or None)
    uri = policy.transfer_targets.get(policy.failed_response_transfer)
    if uri is not None:
        ctx = _to(ctx, State.TRANSFERRING, failed_retries=0)
        return ctx, [SendRefer(uri), Note("transfer.started", {"target": uri})]
    note = Note("realtime.responses_failing", {"retries": ctx.failed_retries})
    return _bye(ctx, EndCause.VOICE_SESSION_UNAVAILABLE, (note,))


def on_playout_drained(ctx: CallContext, ev: PlayoutDrained) -> Result:
    ctx = replace(ctx, playout_busy=False)
    if ctx.state in (State.CALLER_SPEAKING, State.TRANSFERRING):
        return ctx, []
    if ctx.state is State.ENDING:
        return _bye(ctx, ctx.end_after_playout or EndCause.LOCAL_BYE)
    if ctx.response_id is None:
        return _after_playout(ctx)
    # More audio of the current response may still come: keep speaking state.
    return ctx, []


def on_function_call(ctx: CallContext, ev: FunctionCall) -> Result:
    note = Note("tool.called", {"name": ev.name, "tool_call_id": ev.call_id})
    if ev.name == "end_call":
        # Say goodbye first: the BYE waits for the current response and its playout.
        ctx = replace(ctx, end_after_playout=EndCause.END_CALL)
        if ctx.state is State.CALLER_SPEAKING or (not ctx.playout_busy and ctx.response_id is None):
            return _bye(ctx, EndCause.END_CALL, (note,))
        return _to(ctx, State.ENDING), [note, StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]
    if ev.name == "transfer_call":
        target_name = str(ev.arguments.get("target", ""))
        uri = ctx.policy.transfer_targets.get(target_name)
        if uri is None:
            allowed = ", ".join(sorted(ctx.policy.transfer_targets)) or "none configured"
            output = f'{{"ok": false, "error": "unknown transfer target {target_name!r}; allowed: {allowed}"}}'
            ctx, more = _request_response(ctx)
            return ctx, [note, FunctionOutput(ev.call_id, output), *more]
        ctx = replace(ctx, transfer_after_playout=uri, transfer_call_id=ev.call_id)
        if not ctx.playout_busy and ctx.response_id is None:
            return _after_playout(ctx)
        return ctx, [note]
    if ev.name == "send_dtmf":
        digits = str(ev.arguments.get("digits", ""))
        bad = [d for d in digits if d not in "0123456789*#ABCD"]
        if not digits or bad:
            output = f'{{"ok": false, "error": "invalid digits {digits!r}"}}'
            ctx, more = _request_response(ctx)
            return ctx, [note, FunctionOutput(ev.call_id, output), *more]
        ctx, more = _request_response(ctx)
        return ctx, [note, SendDigits(digits), FunctionOutput(ev.call_id, '{"ok": true}'), *more]
    ctx = replace(ctx, pending_tool_calls=ctx.pending_tool_calls | {ev.call_id})
    return ctx, [note, RunTool(ev.call_id, ev.name, ev.arguments)]


def on_tool_result(ctx: CallContext, ev: ToolResult) -> Result:
    ctx = replace(ctx, pending_tool_calls=ctx.pending_tool_calls - {ev.call_id})
    actions: list[Action] = [FunctionOutput(ev.call_id, ev.output)]
    if ctx.state is State.CALLER_SPEAKING:
        # The server's VAD will answer the caller's turn with the result in context; a
        # response.create now would collide with that auto-response.
        return ctx, actions
    ctx, more = _request_response(ctx)
    return ctx, actions + more


def on_realtime_error(ctx: CallContext, ev: RealtimeError) -> Result:
    note = Note("realtime.error", {"code": ev.code, "message": ev.message})
    if ev.code == "response_cancel_not_active":
        return replace(ctx, cancelling=False), [note]  # benign race with VAD auto-cancel
    if ev.code == "conversation_already_has_active_response":
        return replace(ctx, response_wanted=True), [note]  # retried at response.done
    if ev.code == "session_expired":
        # The service closes the socket right after this error (WS 1001): the ConnectionLost
        # that follows reconnects, once. Reconnecting here too would open two new sessions.
        return replace(ctx, response_id=None, cancelling=False), [note]
    return ctx, [note]  # truncate length errors and the like: logged, never fatal


def on_dtmf(ctx: CallContext, ev: Dtmf) -> Result:
    note = Note("call.dtmf", {"digit": ev.digit, "source": ev.source})
    ctx = replace(ctx, idle_prompts=0)  # the caller is there
    if ctx.policy.dtmf_mode is DtmfMode.IGNORE:
        return ctx, [note]
    action = ctx.policy.digit_actions.get(ev.digit)
    if action is not None:
        if action.kind == "hangup":
            return _end(ctx, "dtmf hangup", [note, SendBye(EndCause.DTMF_HANGUP)])
        if action.kind == "transfer":
            uri = ctx.policy.transfer_targets.get(action.target, action.target)
            barge: list[Action] = []
            if ctx.playout_busy or ev.playout or ctx.response_id is not None:
                ctx, barge = _barge_in(ctx, ev.playout, "dtmf")
            ctx = _to(ctx, State.TRANSFERRING)
            return ctx, [note, *barge, SendRefer(uri), Note("transfer.started", {"target": uri})]
    actions: list[Action] = [note]
    if ctx.policy.dtmf_barge_in and (ctx.playout_busy or ev.playout):
        ctx, more = _barge_in(ctx, ev.playout, "dtmf")
        ctx = _to(ctx, State.LISTENING if ctx.state is State.BOT_SPEAKING else ctx.state)
        actions += more
    digits = ctx.digits + ev.digit
    ctx = replace(ctx, digits=digits)
    if ev.digit == ctx.policy.digit_terminator or len(digits) >= ctx.policy.max_digits:
        ctx, more = _forward_digits(ctx)
        return ctx, actions + more
    return ctx, [*actions, StartTimer(T_DIGITS, ctx.policy.inter_digit_timeout_s)]


def on_digit_timeout(ctx: CallContext, ev: DigitTimeout) -> Result:
    return _forward_digits(ctx)


def on_refer_result(ctx: CallContext, ev: ReferResult) -> Result:
    if 200 <= ev.status < 300:
        ctx = replace(ctx, transfer_call_id=None)
        return _bye(ctx, EndCause.TRANSFERRED)
    note = Note("transfer.failed", {"status": ev.status})
    actions: list[Action] = [note]
    call_id = ctx.transfer_call_id
    ctx = _to(ctx, _idle_state(ctx), transfer_call_id=None)
    if call_id is not None:
        actions.append(
            FunctionOutput(call_id, f'{{"ok": false, "error": "transfer failed: SIP {ev.status}"}}')
        )
        ctx, more = _request_response(ctx)
        actions += more
    return ctx, actions


def on_bye_while_transferring(ctx: CallContext, ev: CallerBye) -> Result:
    # The transferee left (often because the transfer succeeded before the NOTIFY arrived).
    return _end(ctx, "caller hangup during transfer", [])


def on_connection_lost(ctx: CallContext, ev: ConnectionLost) -> Result:
    # Audio already received keeps playing (the caller hears the end of the sentence); the
    # interrupted response is forgotten and the conversation is replayed as text in a new session.
    ctx = replace(
        ctx,
        session_connected=False,
        response_id=None,
        cancelling=False,
        discard_response_ids=ctx.discard_response_ids | ({ctx.response_id} - {None}),
    )
    return ctx, [Note("realtime.lost", {"reason": ev.reason}), Reconnect(ev.reason)]


def on_reconnected(ctx: CallContext, ev: Reconnected) -> Result:
    ctx = replace(ctx, session_connected=True)
    if ctx.response_wanted:
        return _request_response(ctx)
    return ctx, []  # the session logs realtime.reconnected with the attempt and reason


# The end cause (and Reason text) when the voice session cannot be kept up: 503 tells the PBX's
# CDR that the service behind the gateway was unavailable, as a 503 to an INVITE would.
VOICE_SESSION_UNAVAILABLE = "voice session unavailable"


def on_reconnect_budget_spent(ctx: CallContext, ev: ReconnectBudgetSpent) -> Result:
    note = Note("realtime.reconnect_budget_spent", {"reason": ev.reason})
    return _bye(ctx, EndCause.VOICE_SESSION_UNAVAILABLE, (note,))


def on_session_cap_near(ctx: CallContext, ev: SessionCapNear) -> Result:
    if ctx.state is State.LISTENING and ctx.response_id is None and not ctx.playout_busy:
        return ctx, [Rollover()]
    return replace(ctx, rollover_pending=True), []


def on_rolled_over(ctx: CallContext, ev: RolledOver) -> Result:
    # The new session gets a fresh cap; the old one's responses are gone.
    ctx = replace(ctx, rollover_pending=False, response_id=None, session_connected=True)
    cap = ctx.policy.session_cap_s - ctx.policy.rollover_margin_s
    return ctx, [StartTimer("session_cap", cap), Note("realtime.rolled_over")]


def on_connecting_lost(ctx: CallContext, ev: ConnectionLost) -> Result:
    return on_setup_failed(ctx, SessionFailed(ev.reason))


def on_drain_timeout(ctx: CallContext, ev: DrainTimeout) -> Result:
    return _bye(ctx, ctx.end_after_playout or EndCause.DRAIN_TIMEOUT)


# --------------------------------------------------------------------------------------------
# The transition table: (state, event type) -> (handler, states it may lead to)


@dataclass(frozen=True, slots=True)
class Transition:
    handler: Handler
    targets: frozenset[State]


TRANSITIONS: dict[tuple[State, type], Transition] = {}


def _row(
    states: frozenset[State] | set[State], event: type, handler: Handler, *targets: State
) -> None:
    for state in states:
        allowed = frozenset(targets) if targets else frozenset({state})
        if (state, event) in TRANSITIONS:  # one row per (state, event): the table stays readable
            raise ValueError(f"duplicate transition ({state.value}, {event.__name__})")
        TRANSITIONS[(state, event)] = Transition(handler, allowed)


_row({State.OFFERED}, Start, on_start, State.CONNECTING)
_row({State.OFFERED}, CallerCancel, on_cancel, State.ENDED)
_row({State.OFFERED}, CallerBye, on_caller_bye, State.ENDED)
_row({State.CONNECTING}, SessionReady, on_session_ready, State.ANSWERING)
_row({State.CONNECTING}, SessionFailed, on_setup_failed, State.ENDED)
_row({State.CONNECTING}, CallerCancel, on_cancel, State.ENDED)
_row({State.CONNECTING}, ConnectionLost, on_connecting_lost, State.ENDED)
_row({State.CONNECTING}, RealtimeError, on_realtime_error, State.CONNECTING)
_row({State.ANSWERING}, Ack, on_ack, *ACTIVE)
_row({State.ANSWERING}, AckTimeout, on_ack_timeout, State.ENDED)
_row({State.ANSWERING}, CallerCancel, on_cancel, State.ENDED)  # CANCEL racing our 200
# Events handled the same in every state where the Realtime session lives.
_row(SESSION_LIVE - {State.TRANSFERRING}, CallerBye, on_caller_bye, State.ENDED)
_row({State.TRANSFERRING}, CallerBye, on_bye_while_transferring, State.ENDED)
# The media went away: BYE (Reason cause=408) once the queued bot audio has played. In
# CONNECTING only an outbound call (answered by the callee before its session is ready).
_row(SESSION_LIVE | {State.CONNECTING}, RtpTimeout, on_rtp_timeout, State.ENDED, State.ENDING)
_row(SESSION_LIVE, SessionFailed, on_session_failed, State.ENDED)
_row(SESSION_LIVE, RealtimeError, on_realtime_error)
_row(SESSION_LIVE, ResponseCreated, on_response_created)
_row(SESSION_LIVE, AudioDone, on_audio_done)
_row(SESSION_LIVE, ConnectionLost, on_connection_lost)
_row(SESSION_LIVE, Reconnected, on_reconnected)
_row(SESSION_LIVE, ReconnectBudgetSpent, on_reconnect_budget_spent, State.ENDED)
_row(SESSION_LIVE, RolledOver, on_rolled_over)
_row(
    SESSION_LIVE,
    SessionCapNear,
    on_session_cap_near,
    *ACTIVE,
    State.ANSWERING,
    State.TRANSFERRING,
    State.ENDING,
)
_row(SESSION_LIVE, ToolResult, on_tool_result)
_row(SESSION_LIVE - {State.ANSWERING}, Ack, on_ack)  # late first ACK, or a retransmission
_row(SESSION_LIVE - {State.ANSWERING}, AckTimeout, on_ack_timeout, State.ENDED, *SESSION_LIVE)
_row(SESSION_LIVE, DigitTimeout, on_digit_timeout)
_row({State.ANSWERING, *ACTIVE}, AudioDelta, on_audio_delta, State.ANSWERING, *ACTIVE)
_row({State.ENDING, State.TRANSFERRING}, AudioDelta, on_audio_delta)
_row({State.ANSWERING, *ACTIVE}, SpeechStarted, on_speech_started, State.CALLER_SPEAKING)
_row({State.ANSWERING, *ACTIVE}, SpeechStopped, on_speech_stopped, State.ANSWERING, *ACTIVE)
_row({State.ENDING, State.TRANSFERRING}, SpeechStarted, _ignore)  # nothing to interrupt for
_row({State.ENDING, State.TRANSFERRING}, SpeechStopped, _ignore)
_row(
    {State.ANSWERING, *ACTIVE},
    ResponseDone,
    on_response_done,
    State.ANSWERING,
    *ACTIVE,
    State.ENDED,
    State.TRANSFERRING,
)
_row(
    {State.ENDING, State.TRANSFERRING},
    ResponseDone,
    on_response_done,
    State.ENDING,
    State.TRANSFERRING,
    State.ENDED,
)
_row(
    {State.ANSWERING, *ACTIVE},
    PlayoutDrained,
    on_playout_drained,
    State.ANSWERING,
    *ACTIVE,
    State.ENDED,
    State.TRANSFERRING,
)
_row({State.ENDING}, PlayoutDrained, on_playout_drained, State.ENDED)
_row({State.TRANSFERRING}, PlayoutDrained, on_playout_drained, State.TRANSFERRING, State.LISTENING)
_row(
    {State.ANSWERING, *ACTIVE},
    FunctionCall,
    on_function_call,
    *ACTIVE,
    State.ANSWERING,
    State.ENDING,
    State.ENDED,
    State.TRANSFERRING,
)
_row({State.ENDING, State.TRANSFERRING}, FunctionCall, _ignore)  # the call is going away
_row(ACTIVE, Dtmf, on_dtmf, *ACTIVE, State.ENDED, State.TRANSFERRING)
_row({State.ANSWERING, State.ENDING, State.TRANSFERRING}, Dtmf, _ignore)
_row(
    ACTIVE | {State.ANSWERING, State.CONNECTING},
    MaxDuration,
    on_max_duration,
    State.ENDING,
    State.ENDED,
)
_row({State.ENDING, State.TRANSFERRING}, MaxDuration, _ignore)
_row({State.TRANSFERRING}, ReferResult, on_refer_result, State.ENDED, *ACTIVE)
_row({State.ENDING}, DrainTimeout, on_drain_timeout, State.ENDED)
_row(ACTIVE, IdleTimeout, on_idle_timeout, *ACTIVE, State.ENDING)
_row(SESSION_LIVE - ACTIVE, IdleTimeout, _ignore)
_row(ACTIVE, InputTimeout, on_input_timeout, *ACTIVE, State.ENDING)
_row(SESSION_LIVE - ACTIVE, InputTimeout, _ignore)
_row(ACTIVE | {State.TRANSFERRING}, DrainTimeout, _ignore)
# After the end, stragglers from every source are expected and dropped.
for _event in Event.__args__:  # type: ignore[attr-defined]
    TRANSITIONS.setdefault((State.ENDED, _event), Transition(_ignore, frozenset({State.ENDED})))


def step(ctx: CallContext, event: Event) -> Result:
    """Apply one event. Raises IllegalTransition for a (state, event) the table does not allow."""
    transition = TRANSITIONS.get((ctx.state, type(event)))
    if transition is None:
        raise IllegalTransition(ctx.state, event)
    new_ctx, actions = transition.handler(ctx, event)
    if new_ctx.state not in transition.targets:
        raise AssertionError(
            f"{transition.handler.__name__} moved {ctx.state.value} -> {new_ctx.state.value}, "
            f"not in the table's targets {sorted(s.value for s in transition.targets)}"
        )
    return new_ctx, actions
