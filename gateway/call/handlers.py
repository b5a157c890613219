"""The decisions of the per-call state machine: one handler per (state group, event).

Each handler takes the immutable context and an event and returns the new context and the
actions to execute, in order. Which handler runs for which (state, event), and which states it
may lead to, is the transition table in gateway/call/machine.py.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.call.causes import EndCause, bye_reason
from gateway.call.context import (
    ACTIVE,
    CallContext,
    Result,
    State,
    replace,
    with_bot_audio,
)
from gateway.call.events import (
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
    tool_error,
)
from gateway.call.policy import DtmfMode
from gateway.voice import LOST_CONTENT, LOST_REMOTE_HANGUP

# --------------------------------------------------------------------------------------------
# Helpers shared by handlers


# Custom (HTTP) tools running at once in one call; further calls get an error result.
MAX_RUNNING_TOOLS = 8

# What GPT-Live is asked to say when the REFER was refused or its NOTIFY reported a failure.
TRANSFER_FAILED_INSTRUCTIONS = (
    "The transfer did not go through. Tell the caller briefly and offer to help another way."
)


def _json_str(text: str) -> str:
    return json.dumps(text)


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


def _request_reply(ctx: CallContext, instructions: str | None = None) -> Result:
    """Ask for a reply now if none is being generated; otherwise owe one until BotReplyDone.

    Only one reply may write to the conversation at a time (the Realtime API refuses a second
    with conversation_already_has_active_response: VoiceError REPLY_IN_PROGRESS), so a tool
    result or digits arriving mid-reply wait for that reply's end.
    """
    if ctx.reply_id is None and ctx.session_connected and not ctx.pending_tool_calls:
        return replace(ctx, reply_wanted=False), [RequestReply(instructions)]
    # Tool outputs still owed (several calls in one reply): one reply request once the last
    # output is in, never one per output.
    return replace(ctx, reply_wanted=True), []


def _reply_after_result(ctx: CallContext) -> Result:
    """After a tool result: ask for the reply that uses it. A continuous-output backend
    (GPT-Live) continues by itself once its results are in: nothing to ask."""
    if ctx.policy.continuous_output:
        return ctx, []
    return _request_reply(ctx)


def _barge_in(ctx: CallContext, playout: tuple[PlayoutItem, ...], trigger: str) -> Result:
    """Stop the bot: flush playout, make the conversation match what the caller heard.

    Per item still in the playout queue: nothing played -> heard 0 ms (the voice link deletes it);
    partly played -> heard the bytes sent on the wire / 8, minus the configured allowance,
    clamped to the audio received (the link truncates it there); played completely (all received audio sent and the item's audio
    is done) -> nothing, a needless truncate makes the model repeat itself. This applies equally in
    the tail after the reply's end, when the backend has nothing left to cancel.
    """
    actions: list[Action] = [FlushPlayout()]
    discard = ctx.discard_reply_ids
    cancelling = ctx.cancelling
    cancel_reply = False
    if ctx.reply_id is not None and not ctx.cancelling:
        discard = discard | {ctx.reply_id}
        cancelling = True
        # When the backend stops its reply on caller speech itself (Realtime: interrupt_response),
        # a stop from us would only earn VoiceError NOTHING_TO_STOP. A DTMF barge-in is not seen
        # by the backend.
        cancel_reply = trigger != "speech" or not ctx.policy.server_interrupts
    elif ctx.reply_id is not None:
        discard = discard | {ctx.reply_id}
    unheard: list[UnheardItem] = []
    for item in playout:
        received = ctx.received_bytes.get(item.item_id, 0)
        played = min(item.played_bytes, received)
        complete = item.item_id in ctx.audio_done_items and played >= received
        if complete:
            continue
        heard_ms = played // 8 - ctx.policy.truncate_allowance_ms
        unheard.append(UnheardItem(item.item_id, max(0, min(heard_ms, received // 8))))
    if unheard or cancel_reply:
        actions.append(StopBotAudio(tuple(unheard), cancel_reply))
    actions.append(Note("barge_in", {"trigger": trigger, "items": len(playout)}))
    ctx = replace(ctx, discard_reply_ids=discard, cancelling=cancelling, playout_busy=False)
    return ctx, actions


def _after_playout(ctx: CallContext) -> Result:
    """Playout is empty: carry out what waited for it (BYE, REFER, rollover), else listen."""
    if ctx.end_after_playout is not None:
        return _bye(ctx, ctx.end_after_playout)
    if ctx.transfer_after_playout is not None:
        target = ctx.transfer_after_playout
        # A live announcement ran under the goodbye timer (on_tool_call): it is over.
        announced = [CancelTimer(T_DRAIN)] if ctx.state is State.TRANSFERRING else []
        ctx = _to(ctx, State.TRANSFERRING, transfer_after_playout=None)
        return ctx, [*announced, SendRefer(target), Note("transfer.started", {"target": target})]
    if ctx.rollover_pending and ctx.reply_id is None:
        return _to(ctx, State.LISTENING, rollover_pending=False), [Rollover()]
    return _to(ctx, State.LISTENING), _arm_idle(ctx)


def _arm_idle(ctx: CallContext) -> list[Action]:
    """The caller's turn: (re)start the inactivity watchdog, when it is on."""
    if ctx.policy.idle_prompt_s <= 0 or ctx.reply_id is not None or ctx.reply_wanted:
        return []
    if ctx.on_hold:
        return []  # a caller who put us on hold is not silent, just away
    return [StartTimer(T_IDLE, ctx.policy.idle_prompt_s)]


def _disarm_idle(ctx: CallContext) -> list[Action]:
    return [CancelTimer(T_IDLE)] if ctx.policy.idle_prompt_s > 0 else []


def _forward_digits(ctx: CallContext) -> Result:
    if not ctx.digits:
        return ctx, [CancelTimer(T_DIGITS)]
    text = "The caller pressed " + " ".join(ctx.digits)
    ctx2, actions = _request_reply(replace(ctx, digits=""))
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


def _cap_timer(ctx: CallContext, cap_s: float | None) -> list[Action]:
    """The rollover timer of a new session: the policy's cap, or the backend's own expiry
    (GPT-Live's expires_at) when it said. The margin never takes more than half of a short
    session (a simulated expiry of seconds still rolls over before it, not at once)."""
    if cap_s is None:
        cap = ctx.policy.session_cap_s - ctx.policy.rollover_margin_s
    else:
        cap = cap_s - min(ctx.policy.rollover_margin_s, cap_s / 2)
    return [StartTimer("session_cap", cap)] if cap > 0 else []


def on_session_ready(ctx: CallContext, ev: SessionReady) -> Result:
    ctx = _to(ctx, State.ANSWERING, session_connected=True)
    actions: list[Action] = [CancelTimer(T_SETUP), Answer(), *_cap_timer(ctx, ev.cap_s)]
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
        ctx, more = _request_reply(ctx, ctx.policy.greeting or None)
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


def on_caller_speech_started(ctx: CallContext, ev: CallerSpeechStarted) -> Result:
    actions: list[Action] = _disarm_idle(ctx)
    if ctx.playout_busy or ev.playout or ctx.reply_id is not None:
        ctx, more = _barge_in(ctx, ev.playout, "speech")
        actions += more
    return _to(ctx, State.CALLER_SPEAKING, idle_prompts=0), actions


def on_caller_speech_stopped(ctx: CallContext, ev: CallerSpeechStopped) -> Result:
    return _to(ctx, _idle_state(ctx)), []


def on_bot_reply_started(ctx: CallContext, ev: BotReplyStarted) -> Result:
    ctx = replace(ctx, reply_id=ev.reply_id, cancelling=False, reply_audio=False)
    return ctx, _disarm_idle(ctx)


def on_idle_timeout(ctx: CallContext, ev: IdleTimeout) -> Result:
    if ctx.state is not State.LISTENING or ctx.reply_id is not None or ctx.playout_busy:
        return ctx, []  # someone is talking after all; the next quiet turn re-arms
    if ctx.idle_prompts >= ctx.policy.idle_prompts_max:
        note = Note("call.idle_hangup", {"prompts": ctx.idle_prompts})
        ctx = _to(ctx, State.ENDING, end_after_playout=EndCause.IDLE_CALLER)
        ctx, more = _request_reply(ctx, ctx.policy.idle_goodbye_instructions or None)
        return ctx, [note, *more, StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]
    ctx = replace(ctx, idle_prompts=ctx.idle_prompts + 1)
    note = Note("call.idle_prompt", {"prompt": ctx.idle_prompts})
    ctx, more = _request_reply(ctx, ctx.policy.idle_prompt_instructions or None)
    return ctx, [note, *more]


def on_caller_heard(ctx: CallContext, ev: CallerHeard) -> Result:
    """The caller speaks (a backend that reports only that, GPT-Live): not idle. The watchdog
    restarts while nobody else speaks; the bot's reply disarms it as usual."""
    ctx = replace(ctx, idle_prompts=0)
    if ctx.state is State.LISTENING:
        return ctx, _arm_idle(ctx)
    return ctx, []


def on_caller_silence_timeout(ctx: CallContext, ev: CallerSilenceTimeout) -> Result:
    # The backend re-prompts by itself (it commits the silence and answers it): one more
    # unanswered prompt. Past the limit, the call ends once that answer has played.
    prompts = ctx.idle_prompts + 1
    note = Note("realtime.idle_timeout", {"prompt": prompts})
    ctx = replace(ctx, idle_prompts=prompts)
    if prompts > ctx.policy.idle_prompts_max and ctx.state in ACTIVE:
        ctx = _to(ctx, State.ENDING, end_after_playout=EndCause.IDLE_CALLER)
        hangup = Note("call.idle_hangup", {"prompts": prompts})
        return ctx, [note, hangup, StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]
    return ctx, [note]


def on_bot_audio(ctx: CallContext, ev: BotAudio) -> Result:
    if ev.reply_id in ctx.discard_reply_ids:
        return ctx, []  # late audio of an interrupted reply (realtime-protocol.md 5, step 1)
    received = dict(ctx.received_bytes)
    received[ev.item_id] = received.get(ev.item_id, 0) + len(ev.audio)
    state = State.BOT_SPEAKING if ctx.state is not State.CALLER_SPEAKING else ctx.state
    if ctx.state in (State.ENDING, State.TRANSFERRING):
        state = ctx.state
    ctx = with_bot_audio(ctx, state, received, ctx.reply_audio or ev.reply_id == ctx.reply_id)
    return ctx, [EnqueueAudio(ev.item_id, ev.audio)]


def on_bot_audio_done(ctx: CallContext, ev: BotAudioDone) -> Result:
    ctx = replace(ctx, audio_done_items=ctx.audio_done_items | {ev.item_id})
    if ev.reply_id in ctx.discard_reply_ids:
        return ctx, []
    return ctx, [EndOfAudio(ev.item_id)]


def on_bot_reply_done(ctx: CallContext, ev: BotReplyDone) -> Result:
    if ev.reply_id != ctx.reply_id:
        return ctx, []  # a reply we already forgot (e.g. from before a reconnect)
    silent = not ctx.reply_audio
    ctx = replace(ctx, reply_id=None, cancelling=False, reply_audio=False)
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
            recovered = _recover_failed_reply(ctx)
            if recovered is not None:
                ctx, more = recovered
                if ctx.state is State.ENDED or ctx.state is State.TRANSFERRING:
                    return ctx, actions + more
                actions += more
    elif ev.status == "completed" and not silent:
        ctx = replace(ctx, failed_retries=0)
    if ctx.reply_wanted:
        ctx, actions = _request_reply(ctx)
    announcing = ctx.state is State.TRANSFERRING and ctx.transfer_after_playout is not None
    if ctx.playout_busy or (ctx.state is State.TRANSFERRING and not announcing):
        return ctx, actions  # PlayoutDrained finishes the turn
    waiting = ctx.end_after_playout is not None or ctx.transfer_after_playout is not None
    if waiting or ctx.state in (State.ENDING, State.BOT_SPEAKING) or ctx.rollover_pending:
        if ctx.state is not State.CALLER_SPEAKING or waiting:
            more_ctx, more = _after_playout(ctx)
            return more_ctx, actions + more
    return ctx, actions


def _recover_failed_reply(ctx: CallContext) -> Result | None:
    """A reply failed and the caller heard nothing: ask again, then transfer or end."""
    policy = ctx.policy
    if ctx.failed_retries < policy.failed_response_retries:
        ctx = replace(ctx, failed_retries=ctx.failed_retries + 1)
        return _request_reply(ctx, policy.failed_response_instructions or None)
    uri = policy.transfer_targets.get(policy.failed_response_transfer)
    if uri is not None:
        ctx = _to(ctx, State.TRANSFERRING, failed_retries=0)
        return ctx, [SendRefer(uri), Note("transfer.started", {"target": uri})]
    note = Note("realtime.responses_failing", {"retries": ctx.failed_retries})
    return _bye(ctx, EndCause.VOICE_SESSION_UNAVAILABLE, (note,))


def on_playout_drained(ctx: CallContext, ev: PlayoutDrained) -> Result:
    # Items whose audio is complete and now played out: no barge-in can cut them any more, so
    # their bookkeeping goes (received_bytes is copied on every audio delta: kept for the whole
    # call it made each delta cost more the longer the call, issue 14). Once per drain.
    done = ctx.audio_done_items
    received = {k: v for k, v in ctx.received_bytes.items() if k not in done}
    ctx = replace(ctx, playout_busy=False, received_bytes=received, audio_done_items=frozenset())
    if ctx.state is State.TRANSFERRING and ctx.transfer_after_playout is not None:
        # GPT-Live announcing the transfer: as the goodbye of end_call, an empty queue between
        # two deltas is not the end of the announcement; its reply's end (or none) is.
        if ctx.reply_id is not None:
            return ctx, []
        return _after_playout(ctx)
    if ctx.state in (State.CALLER_SPEAKING, State.TRANSFERRING):
        return ctx, []
    if ctx.state is State.ENDING:
        if ctx.policy.continuous_output and ctx.reply_id is not None:
            return ctx, []  # between two deltas of the last words: their reply's end decides
        return _bye(ctx, ctx.end_after_playout or EndCause.LOCAL_BYE)
    if ctx.reply_id is None:
        return _after_playout(ctx)
    # More audio of the current reply may still come: keep speaking state.
    return ctx, []


def on_tool_call(ctx: CallContext, ev: ToolCall) -> Result:
    note = Note("tool.called", {"name": ev.name, "tool_call_id": ev.call_id})
    if ev.name == "end_call":
        if ctx.policy.continuous_output:
            # GPT-Live speaks its goodbye after the result (reference 6): answer the call,
            # then BYE once that reply has played out, at most goodbye_timeout_s from now.
            ctx = _to(ctx, State.ENDING, end_after_playout=EndCause.END_CALL)
            result = ReturnToolResult(ev.call_id, '{"status": "ending"}')
            return ctx, [note, result, StartTimer(T_DRAIN, ctx.policy.goodbye_timeout_s)]
        # Say goodbye first: the BYE waits for the current reply and its playout.
        ctx = replace(ctx, end_after_playout=EndCause.END_CALL)
        if ctx.state is State.CALLER_SPEAKING or (not ctx.playout_busy and ctx.reply_id is None):
            return _bye(ctx, EndCause.END_CALL, (note,))
        return _to(ctx, State.ENDING), [note, StartTimer(T_DRAIN, ctx.policy.drain_timeout_s)]
    if ev.name == "transfer_call":
        target_name = str(ev.arguments.get("target", ""))
        uri = ctx.policy.transfer_targets.get(target_name)
        if uri is None:
            allowed = ", ".join(sorted(ctx.policy.transfer_targets)) or "none configured"
            output = tool_error(f"unknown transfer target {target_name!r}; allowed: {allowed}")
            ctx, more = _reply_after_result(ctx)
            return ctx, [note, ReturnToolResult(ev.call_id, output), *more]
        if ctx.policy.continuous_output:
            # GPT-Live (reference 6): answer the call at once (a call left without output
            # blocks the model's later calls) so the model announces the transfer; REFER once
            # that announcement has played out, at most goodbye_timeout_s from now.
            output = f'{{"status": "transferring", "target": {_json_str(target_name)}}}'
            ctx = _to(
                ctx, State.TRANSFERRING, transfer_after_playout=uri, transfer_call_id=ev.call_id
            )
            timer = StartTimer(T_DRAIN, ctx.policy.goodbye_timeout_s)
            announcing = Note("transfer.announcing", {"target": uri})
            return ctx, [note, ReturnToolResult(ev.call_id, output), announcing, timer]
        ctx = replace(ctx, transfer_after_playout=uri, transfer_call_id=ev.call_id)
        if not ctx.playout_busy and ctx.reply_id is None:
            return _after_playout(ctx)
        return ctx, [note]
    if ev.name == "send_dtmf":
        digits = str(ev.arguments.get("digits", ""))
        bad = [d for d in digits if d not in "0123456789*#ABCD"]
        if not digits or bad:
            output = tool_error(f"invalid digits {digits!r}")
            ctx, more = _reply_after_result(ctx)
            return ctx, [note, ReturnToolResult(ev.call_id, output), *more]
        ctx, more = _reply_after_result(ctx)
        return ctx, [note, SendDigits(digits), ReturnToolResult(ev.call_id, '{"ok": true}'), *more]
    if ev.call_id in ctx.pending_tool_calls:
        return ctx, [note]  # the same call again (a repeated event): it runs once
    if len(ctx.pending_tool_calls) >= MAX_RUNNING_TOOLS:
        # A flood of calls (a hostile or looping backend) does not become a flood of HTTP
        # requests: the excess is refused, the model is told why.
        output = '{"ok": false, "error": "too many tool calls at once"}'
        return ctx, [note, ReturnToolResult(ev.call_id, output)]
    ctx = replace(ctx, pending_tool_calls=ctx.pending_tool_calls | {ev.call_id})
    return ctx, [note, RunTool(ev.call_id, ev.name, ev.arguments)]


def on_tool_call_while_leaving(ctx: CallContext, ev: ToolCall) -> Result:
    """A tool call while the call ends or is being transferred: not run (no second BYE or
    REFER, no HTTP call for a call that is going away), answered with an error so that the
    backend is not left waiting for it (a failed transfer returns the call to the model)."""
    note = Note("tool.refused", {"name": ev.name, "tool_call_id": ev.call_id})
    doing = "ending" if ctx.state is State.ENDING else "being transferred"
    return ctx, [note, ReturnToolResult(ev.call_id, tool_error(f"the call is {doing}"))]


def on_tool_result(ctx: CallContext, ev: ToolResult) -> Result:
    ctx = replace(ctx, pending_tool_calls=ctx.pending_tool_calls - {ev.call_id})
    actions: list[Action] = [ReturnToolResult(ev.call_id, ev.output)]
    if ctx.state is State.CALLER_SPEAKING:
        # The backend's VAD will answer the caller's turn with the result in context; a reply
        # requested now would collide with that automatic one.
        return ctx, actions
    ctx, more = _reply_after_result(ctx)
    return ctx, actions + more


def on_voice_error(ctx: CallContext, ev: VoiceError) -> Result:
    note = Note("realtime.error", {"code": ev.code, "message": ev.message})
    if ev.kind is VoiceErrorKind.NOTHING_TO_STOP:
        return replace(ctx, cancelling=False), [note]  # benign race with VAD auto-cancel
    if ev.kind is VoiceErrorKind.REPLY_IN_PROGRESS:
        return replace(ctx, reply_wanted=True), [note]  # retried at the reply's end
    if ev.kind is VoiceErrorKind.SESSION_EXPIRED:
        # The service closes the connection right after this error: the ConnectionLost that
        # follows reconnects, once. Reconnecting here too would open two new sessions.
        return replace(ctx, reply_id=None, cancelling=False), [note]
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
            if ctx.playout_busy or ev.playout or ctx.reply_id is not None:
                ctx, barge = _barge_in(ctx, ev.playout, "dtmf")
            ctx = _to(ctx, State.TRANSFERRING)
            return ctx, [note, *barge, SendRefer(uri), Note("transfer.started", {"target": uri})]
    actions: list[Action] = [note]
    # A continuous-output backend's reply keeps its (discarded) item pending after a first
    # barge-in until the reply's silence ends it: only audio still queued is interrupted again.
    heard_items = ev.playout if not ctx.policy.continuous_output else ()
    if ctx.policy.dtmf_barge_in and (ctx.playout_busy or heard_items):
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
    if call_id is not None and ctx.policy.continuous_output:
        # GPT-Live: the call already has its output ("transferring"); a second one would be
        # refused. The model learns of the failure as context, then is asked to say so.
        actions.append(AddText(f"The transfer failed (SIP {ev.status}).", "system"))
        ctx, more = _request_reply(ctx, TRANSFER_FAILED_INSTRUCTIONS)
        actions += more
    elif call_id is not None:
        actions.append(ReturnToolResult(call_id, tool_error(f"transfer failed: SIP {ev.status}")))
        ctx, more = _reply_after_result(ctx)
        actions += more
    return ctx, actions


def on_transfer_announce_timeout(ctx: CallContext, ev: DrainTimeout) -> Result:
    """The live announcement did not end in time (goodbye_timeout_s): REFER now."""
    if ctx.transfer_after_playout is None:
        return ctx, []  # REFER already sent: the NOTIFYs decide
    return _after_playout(ctx)


def on_bye_while_transferring(ctx: CallContext, ev: CallerBye) -> Result:
    # The transferee left (often because the transfer succeeded before the NOTIFY arrived).
    return _end(ctx, "caller hangup during transfer", [])


# A backend's deliberate end of its session (gateway/voice.py ConnectionLost.final).
_FINAL_CAUSES = {
    LOST_CONTENT: EndCause.VOICE_CONTENT_FILTER,
    LOST_REMOTE_HANGUP: EndCause.VOICE_ENDED,
}


def on_connection_lost(ctx: CallContext, ev: ConnectionLost) -> Result:
    if ev.final is not None:
        # The backend ended the conversation (its content filter, a remote hang-up): a new
        # session would only start it again. BYE with the matching cause.
        note = Note("realtime.lost", {"reason": ev.reason})
        cause = _FINAL_CAUSES.get(ev.final, EndCause.VOICE_ENDED)
        return _bye(replace(ctx, session_connected=False), cause, (note,))
    # Audio already received keeps playing (the caller hears the end of the sentence); the
    # interrupted reply is forgotten and the conversation is replayed as text in a new session.
    ctx = replace(
        ctx,
        session_connected=False,
        reply_id=None,
        cancelling=False,
        discard_reply_ids=ctx.discard_reply_ids | ({ctx.reply_id} - {None}),
    )
    return ctx, [Note("realtime.lost", {"reason": ev.reason}), Reconnect(ev.reason)]


def on_reconnected(ctx: CallContext, ev: Reconnected) -> Result:
    ctx = replace(ctx, session_connected=True)
    # A backend that says when the new session expires gets its rollover timer re-armed.
    actions = _cap_timer(ctx, ev.cap_s) if ev.cap_s is not None else []
    if ctx.reply_wanted:
        ctx, more = _request_reply(ctx)
        return ctx, actions + more
    return ctx, actions  # the session logs realtime.reconnected with the attempt and reason


# The end cause (and Reason text) when the voice session cannot be kept up: 503 tells the PBX's
# CDR that the service behind the gateway was unavailable, as a 503 to an INVITE would.
VOICE_SESSION_UNAVAILABLE = "voice session unavailable"


def on_reconnect_budget_spent(ctx: CallContext, ev: ReconnectBudgetSpent) -> Result:
    note = Note("realtime.reconnect_budget_spent", {"reason": ev.reason})
    return _bye(ctx, EndCause.VOICE_SESSION_UNAVAILABLE, (note,))


def on_session_cap_near(ctx: CallContext, ev: SessionCapNear) -> Result:
    if ctx.state is State.LISTENING and ctx.reply_id is None and not ctx.playout_busy:
        return ctx, [Rollover()]
    return replace(ctx, rollover_pending=True), []


def on_rolled_over(ctx: CallContext, ev: RolledOver) -> Result:
    # The new session gets a fresh cap; the old one's replies are gone.
    ctx = replace(ctx, rollover_pending=False, reply_id=None, session_connected=True)
    return ctx, [*_cap_timer(ctx, ev.cap_s), Note("realtime.rolled_over")]


def on_connecting_lost(ctx: CallContext, ev: ConnectionLost) -> Result:
    return on_setup_failed(ctx, SessionFailed(ev.reason))


def on_drain_timeout(ctx: CallContext, ev: DrainTimeout) -> Result:
    return _bye(ctx, ctx.end_after_playout or EndCause.DRAIN_TIMEOUT)


def on_operator_hangup(ctx: CallContext, ev: OperatorHangup) -> Result:
    # The operator wants the call gone now: no waiting for the bot's last words.
    return _end(ctx, "operator hangup", [SendBye(EndCause.LOCAL_BYE, "operator hangup")])


def on_operator_say(ctx: CallContext, ev: OperatorSay) -> Result:
    actions: list[Action] = [AddText(ev.text, "user" if ev.role == "user" else "system")]
    if not ev.respond:
        return ctx, actions
    # One reply at a time: while one is being generated the next is owed until it is done.
    ctx, more = _request_reply(replace(ctx, idle_prompts=0))
    return ctx, actions + more


def on_hold_changed(ctx: CallContext, ev: HoldChanged) -> Result:
    """Hold: no inactivity prompts while the caller is away (the session keeps the audio time
    running with silence); resume: the caller's turn starts again."""
    note = Note("call.hold" if ev.on_hold else "call.resumed", {"direction": ev.direction})
    if ev.on_hold == ctx.on_hold:
        return ctx, [note]
    ctx = replace(ctx, on_hold=ev.on_hold)
    if ev.on_hold:
        return ctx, [note, *_disarm_idle(ctx)]
    more = _arm_idle(ctx) if ctx.state is State.LISTENING else []
    return ctx, [note, *more]


def on_codec_answered(ctx: CallContext, ev: CodecAnswered) -> Result:
    """A late offer's answer picked the law: the session follows it (G.711 passes through,
    so the voice session's format must be the call's)."""
    return ctx, [SwitchCodec(ev.codec)]
