"""The per-call state machine: pure, table-driven, no I/O.

One call couples three things that each move on their own: the SIP dialog, the RTP media and the
voice session (a voice backend behind the voice link, gateway/voice.py). The machine decides what to do; `gateway/call/session.py` and the call object
(`gateway/call/call.py`) do it. It is four modules read in this order: `events.py` (what comes in,
what goes out), `context.py` (states and the immutable context), `handlers.py` (the decisions)
and this one: the transition table and `step`. Names of all four are re-exported here.

    step(ctx, event) -> (ctx, actions)

`ctx` is an immutable `CallContext` (the state plus the few facts the decisions need), `event` is
one of the event dataclasses (events.py; what the voice backend reports is gateway/voice.py's,
in call terms: caller speech, bot replies and their audio, tool calls), and `actions` are plain
values (stop the bot audio the caller did not hear, ask for a reply, flush playout, send BYE...)
executed in order by the session; the voice link turns the voice actions into its backend's
protocol. No name in the table is a wire event of one backend, so a second backend does not
change it. The transition table `TRANSITIONS` maps
(state, event type) to a handler and the set of states it may lead to; `step` checks that every
handler stays inside its declared targets, so the table can be read against the call flow:

    OFFERED --Start--> CONNECTING --SessionReady--> ANSWERING --Ack--> LISTENING
    LISTENING <--> CALLER_SPEAKING (CallerSpeechStarted / CallerSpeechStopped)
    LISTENING/CALLER_SPEAKING --BotAudio--> BOT_SPEAKING --PlayoutDrained--> LISTENING
    any live state --end_call / max duration--> ENDING --PlayoutDrained--> ENDED (BYE)
    any live state --transfer_call--> TRANSFERRING --ReferResult 2xx--> ENDED (BYE)
      (GPT-Live: result "transferring" first; REFER once the announcement played out)
    any live state --RtpTimeout--> ENDING (drain) --PlayoutDrained--> ENDED (BYE, cause=408)
    any state --CallerBye / CallerCancel / SessionFailed--> ENDED
    any live state --ReconnectBudgetSpent--> ENDED (BYE, Reason cause=503)

Events that are not in the table for the current state raise `IllegalTransition` (a bug or a
protocol violation worth a log line; the session logs it and carries on). Events that can
legitimately arrive late (voice backend reports after the call ended, a late ACK) are listed explicitly
with the `_ignore` handler, so "ignored" is a reviewed decision, not an accident.

Why the facts about playout arrive inside events (`CallerSpeechStarted.playout`): the playout
queue lives in the media path and changes every 20 ms; the session snapshots it at the moment the event is
handled, so the machine stays pure and barge-in is decided on the bytes actually sent on the wire
(realtime-protocol.md section 5: byte accounting, never wall-clock estimates).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.call.causes import EndCause as EndCause
from gateway.call.context import ACTIVE as ACTIVE
from gateway.call.context import LIVE as LIVE
from gateway.call.context import SESSION_LIVE as SESSION_LIVE
from gateway.call.context import CallContext as CallContext
from gateway.call.context import Handler as Handler
from gateway.call.context import IllegalTransition as IllegalTransition
from gateway.call.context import Result as Result
from gateway.call.context import State as State
from gateway.call.context import with_bot_audio
from gateway.call.events import (  # noqa: F401  re-exported: m.Start, m.SendBye...
    BUILTIN_TOOLS,
    T_DIGITS,
    T_DRAIN,
    T_IDLE,
    T_SETUP,
    Ack,
    AckTimeout,
    Action,
    AddText,
    Answer,
    BotAudio,
    BotAudioDone,
    BotReplyDone,
    BotReplyStarted,
    CallerBye,
    CallerCancel,
    CallerHeard,
    CallerSilenceTimeout,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CancelTimer,
    CloseSession,
    CodecAnswered,
    ConnectionLost,
    DigitTimeout,
    DrainTimeout,
    Dtmf,
    EndOfAudio,
    EnqueueAudio,
    Event,
    FlushPlayout,
    HoldChanged,
    IdleTimeout,
    MaxDuration,
    Note,
    OpenSession,
    OperatorHangup,
    OperatorSay,
    PlayoutDrained,
    PlayoutItem,
    Reconnect,
    ReconnectBudgetSpent,
    Reconnected,
    ReferResult,
    Reject,
    RequestReply,
    ReturnToolResult,
    RolledOver,
    Rollover,
    RtpTimeout,
    RunTool,
    SendBye,
    SendDigits,
    SendRefer,
    SessionCapNear,
    SessionFailed,
    SessionReady,
    Start,
    StartTimer,
    StopBotAudio,
    StopMedia,
    SwitchCodec,
    ToolCall,
    ToolResult,
    UnheardItem,
    VoiceError,
    VoiceErrorKind,
)
from gateway.call.handlers import (  # noqa: F401  re-exported for tests
    VOICE_SESSION_UNAVAILABLE,
    _after_playout,
    _arm_idle,
    _barge_in,
    _bye,
    _disarm_idle,
    _end,
    _finish_after_playout,
    _forward_digits,
    _idle_state,
    _ignore,
    _recover_failed_reply,
    _request_reply,
    _to,
    on_ack,
    on_ack_timeout,
    on_bot_audio,
    on_bot_audio_done,
    on_bot_reply_done,
    on_bot_reply_started,
    on_bye_while_transferring,
    on_caller_bye,
    on_caller_heard,
    on_caller_silence_timeout,
    on_caller_speech_started,
    on_caller_speech_stopped,
    on_cancel,
    on_codec_answered,
    on_connecting_lost,
    on_connection_lost,
    on_digit_timeout,
    on_drain_timeout,
    on_dtmf,
    on_hold_changed,
    on_idle_timeout,
    on_max_duration,
    on_operator_hangup,
    on_operator_say,
    on_playout_drained,
    on_reconnect_budget_spent,
    on_reconnected,
    on_refer_result,
    on_rolled_over,
    on_rtp_timeout,
    on_session_cap_near,
    on_session_failed,
    on_session_ready,
    on_setup_failed,
    on_start,
    on_tool_call,
    on_tool_call_while_leaving,
    on_tool_result,
    on_transfer_announce_timeout,
    on_voice_error,
)
from gateway.call.policy import CallPolicy as CallPolicy
from gateway.call.policy import DigitAction as DigitAction
from gateway.call.policy import DtmfMode as DtmfMode

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
_row({State.CONNECTING}, VoiceError, on_voice_error, State.CONNECTING)
_row({State.ANSWERING}, Ack, on_ack, *ACTIVE)
_row({State.ANSWERING}, AckTimeout, on_ack_timeout, State.ENDED)
_row({State.ANSWERING}, CallerCancel, on_cancel, State.ENDED)  # CANCEL racing our 200
# Events handled the same in every state where the voice session lives.
_row(SESSION_LIVE - {State.TRANSFERRING}, CallerBye, on_caller_bye, State.ENDED)
_row({State.TRANSFERRING}, CallerBye, on_bye_while_transferring, State.ENDED)
# The media went away: BYE (Reason cause=408) once the queued bot audio has played. In
# CONNECTING only an outbound call (answered by the callee before its session is ready).
_row(SESSION_LIVE | {State.CONNECTING}, RtpTimeout, on_rtp_timeout, State.ENDED, State.ENDING)
_row(SESSION_LIVE, SessionFailed, on_session_failed, State.ENDED)
_row(SESSION_LIVE, VoiceError, on_voice_error)
_row(SESSION_LIVE, BotReplyStarted, on_bot_reply_started)
_row(SESSION_LIVE, BotAudioDone, on_bot_audio_done)
# A lost connection reconnects in place; one the backend ended on purpose ends the call.
_row(SESSION_LIVE, ConnectionLost, on_connection_lost, *SESSION_LIVE, State.ENDED)
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
_row({State.ANSWERING, *ACTIVE}, BotAudio, on_bot_audio, State.ANSWERING, *ACTIVE)
_row({State.ENDING, State.TRANSFERRING}, BotAudio, on_bot_audio)
_row(
    {State.ANSWERING, *ACTIVE}, CallerSpeechStarted, on_caller_speech_started, State.CALLER_SPEAKING
)
_row(
    {State.ANSWERING, *ACTIVE},
    CallerSpeechStopped,
    on_caller_speech_stopped,
    State.ANSWERING,
    *ACTIVE,
)
_row({State.ENDING, State.TRANSFERRING}, CallerSpeechStarted, _ignore)  # nothing to interrupt for
_row({State.ENDING, State.TRANSFERRING}, CallerSpeechStopped, _ignore)
_row(
    {State.ANSWERING, *ACTIVE},
    BotReplyDone,
    on_bot_reply_done,
    State.ANSWERING,
    *ACTIVE,
    State.ENDED,
    State.TRANSFERRING,
)
_row(
    {State.ENDING, State.TRANSFERRING},
    BotReplyDone,
    on_bot_reply_done,
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
_row({State.ENDING}, PlayoutDrained, on_playout_drained, State.ENDED, State.ENDING)
_row({State.TRANSFERRING}, PlayoutDrained, on_playout_drained, State.TRANSFERRING, State.LISTENING)
_row(
    {State.ANSWERING, *ACTIVE},
    ToolCall,
    on_tool_call,
    *ACTIVE,
    State.ANSWERING,
    State.ENDING,
    State.ENDED,
    State.TRANSFERRING,
)
# The call is going away: nothing is run, but the call is answered (a backend that waits for
# every result of its batch, GPT-Live's, would otherwise wait forever if the transfer fails).
_row({State.ENDING, State.TRANSFERRING}, ToolCall, on_tool_call_while_leaving)
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
_row(ACTIVE, CallerSilenceTimeout, on_caller_silence_timeout, *ACTIVE, State.ENDING)
_row(SESSION_LIVE - ACTIVE, CallerSilenceTimeout, _ignore)
_row(ACTIVE, CallerHeard, on_caller_heard)
_row(SESSION_LIVE - ACTIVE, CallerHeard, _ignore)
_row(ACTIVE, DrainTimeout, _ignore)
# GPT-Live's transfer announcement is capped by the goodbye timer: REFER when it fires.
_row({State.TRANSFERRING}, DrainTimeout, on_transfer_announce_timeout)
# The operator (control API): hang up an answered call now; a message for the model while the
# session lives (in CONNECTING only an outbound call is answered before its session is ready).
_row(SESSION_LIVE | {State.CONNECTING}, OperatorHangup, on_operator_hangup, State.ENDED)
_row(ACTIVE | {State.ANSWERING, State.TRANSFERRING}, OperatorSay, on_operator_say)
_row({State.CONNECTING, State.ENDING}, OperatorSay, _ignore)  # no session yet / going away
# Hold and resume (re-INVITE/UPDATE direction): the call stays in its state.
_row(SESSION_LIVE | {State.CONNECTING}, HoldChanged, on_hold_changed)
# Late offer: the ACK's answer chose the G.711 law; the session follows.
_row(SESSION_LIVE | {State.CONNECTING}, CodecAnswered, on_codec_answered)
# After the end, stragglers from every source are expected and dropped.
for _event in Event.__args__:  # type: ignore[attr-defined]
    TRANSITIONS.setdefault((State.ENDED, _event), Transition(_ignore, frozenset({State.ENDED})))


# The bot audio delta that moves no state (issue 14): in these states `on_bot_audio` keeps
# the state (BOT_SPEAKING is its own target; CALLER_SPEAKING, ENDING and TRANSFERRING are
# kept, checked against the table below), so all it decides is the context (the item's bytes,
# playout busy, whether the reply has audio) and the one `EnqueueAudio`.
_STEADY_AUDIO_STATES = frozenset(
    {State.BOT_SPEAKING, State.CALLER_SPEAKING, State.ENDING, State.TRANSFERRING}
)


def steady_bot_audio(ctx: CallContext, event: BotAudio) -> CallContext | None:
    """`step(ctx, event)` for a bot audio delta that moves no state: the new context (the one
    action is `EnqueueAudio(event.item_id, event.audio)`), else None and the caller `step`s:
    in LISTENING or ANSWERING (a reply's first audio moves the call to BOT_SPEAKING) and for
    audio of a discarded reply (dropped by `on_bot_audio`, no action). The session's shortcut
    for the 10-50 deltas a second of a reply (no event dispatch, no table lookup, no action
    value); tests/call/test_bot_audio_shortcut.py holds it equal to `step` on every state and
    flag, and answering exactly where `step` keeps the state and queues the audio."""
    if ctx.state not in _STEADY_AUDIO_STATES or event.reply_id in ctx.discard_reply_ids:
        return None
    received = dict(ctx.received_bytes)
    item_id = event.item_id
    received[item_id] = received.get(item_id, 0) + len(event.audio)
    return with_bot_audio(
        ctx, ctx.state, received, ctx.reply_audio or event.reply_id == ctx.reply_id
    )


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


# `steady_bot_audio` stands for `on_bot_audio` in its states only while the table says so.
for _state in _STEADY_AUDIO_STATES:
    _transition = TRANSITIONS[(_state, BotAudio)]
    if _transition.handler is not on_bot_audio or _state not in _transition.targets:
        raise AssertionError(f"steady_bot_audio does not match the table in {_state.value}")
