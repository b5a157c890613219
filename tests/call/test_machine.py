"""The per-call state machine: every table row, the documented call flows and the hard cases."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.call import machine as m
from gateway.call.causes import EndCause, bye_reason
from gateway.call.machine import (
    Ack,
    AddText,
    Answer,
    BotAudio,
    BotAudioDone,
    BotReplyDone,
    BotReplyStarted,
    CallContext,
    CallerBye,
    CallerSpeechStarted,
    CallPolicy,
    DigitAction,
    Dtmf,
    EnqueueAudio,
    FlushPlayout,
    PlayoutDrained,
    PlayoutItem,
    ReferResult,
    Reject,
    RequestReply,
    ReturnToolResult,
    SendBye,
    SendDigits,
    SendRefer,
    State,
    ToolCall,
    ToolResult,
)

SAMPLE_EVENTS: dict[type, object] = {
    m.Start: m.Start(),
    m.SessionReady: m.SessionReady(),
    m.SessionFailed: m.SessionFailed("boom"),
    m.Ack: m.Ack(),
    m.AckTimeout: m.AckTimeout(),
    m.CallerBye: m.CallerBye(),
    m.CallerCancel: m.CallerCancel(),
    m.RtpTimeout: m.RtpTimeout(30),
    m.MaxDuration: m.MaxDuration(),
    m.CallerSpeechStarted: m.CallerSpeechStarted((PlayoutItem("item_1", 800),)),
    m.CallerSpeechStopped: m.CallerSpeechStopped(),
    m.BotReplyStarted: m.BotReplyStarted("resp_1"),
    m.BotAudio: m.BotAudio("resp_1", "item_1", b"\xff" * 1600),
    m.BotAudioDone: m.BotAudioDone("resp_1", "item_1"),
    m.BotReplyDone: m.BotReplyDone("resp_1", "completed"),
    m.PlayoutDrained: m.PlayoutDrained(),
    m.ToolCall: m.ToolCall("call_1", "lookup", {"q": 1}),
    m.ToolResult: m.ToolResult("call_1", "{}"),
    m.VoiceError: m.VoiceError(
        "response_cancel_not_active", "no active response", m.VoiceErrorKind.NOTHING_TO_STOP
    ),
    m.Dtmf: m.Dtmf("5", "rfc4733"),
    m.DigitTimeout: m.DigitTimeout(),
    m.ReferResult: m.ReferResult(200),
    m.ConnectionLost: m.ConnectionLost("socket closed"),
    m.Reconnected: m.Reconnected(),
    m.ReconnectBudgetSpent: m.ReconnectBudgetSpent("1006"),
    m.SessionCapNear: m.SessionCapNear(),
    m.RolledOver: m.RolledOver(),
    m.DrainTimeout: m.DrainTimeout(),
    m.IdleTimeout: m.IdleTimeout(),
    m.CallerSilenceTimeout: m.CallerSilenceTimeout(),
    m.CallerHeard: m.CallerHeard(),
    m.OperatorHangup: m.OperatorHangup(),
    m.OperatorSay: m.OperatorSay("The taxi is here."),
    m.HoldChanged: m.HoldChanged(True, "sendonly"),
    m.CodecAnswered: m.CodecAnswered("PCMA"),
}

POLICY = CallPolicy(
    greeting="Greet the caller.",
    transfer_targets={"operator": "sip:op@pbx.example"},
    digit_actions={"0": DigitAction("transfer", "operator")},
)


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLE_EVENTS) == set(m.Event.__args__)


@pytest.mark.parametrize(
    ("state", "event_type"),
    sorted(m.TRANSITIONS, key=lambda k: (k[0].value, k[1].__name__)),
    ids=lambda v: v.value if isinstance(v, State) else v.__name__,
)
@pytest.mark.parametrize("busy", [False, True])
def test_every_table_row_lands_in_its_declared_targets(
    state: State, event_type: type, busy: bool
) -> None:
    ctx = CallContext(
        POLICY,
        state=state,
        reply_id="resp_1" if busy else None,
        playout_busy=busy,
        received_bytes={"item_1": 1600} if busy else {},
        session_connected=True,
    )
    new_ctx, actions = m.step(ctx, SAMPLE_EVENTS[event_type])  # step() checks the targets
    assert isinstance(actions, list)
    if state is State.ENDED:
        assert new_ctx.state is State.ENDED and actions == []


def test_an_event_outside_the_table_raises_a_named_error() -> None:
    with pytest.raises(m.IllegalTransition, match="Ack is not allowed in state offered"):
        m.step(CallContext(POLICY), Ack())


def run(ctx: CallContext, *events: object) -> tuple[CallContext, list[object]]:
    actions: list[object] = []
    for ev in events:
        ctx, more = m.step(ctx, ev)
        actions += more
    return ctx, actions


def answered(policy: CallPolicy = POLICY) -> CallContext:
    ctx, _ = run(CallContext(policy), m.Start(), m.SessionReady(), Ack())
    return ctx


def bot_speaking(nbytes: int = 1600) -> CallContext:
    ctx, _ = run(
        answered(),
        BotReplyStarted("resp_1"),
        BotAudio("resp_1", "item_1", b"\xff" * nbytes),
    )
    assert ctx.state is State.BOT_SPEAKING
    return ctx


def kinds(actions: list[object]) -> list[type]:
    return [type(a) for a in actions if not isinstance(a, m.Note)]


# Barge-in speaks of what the caller heard (StopBotAudio); the Realtime link turns an item heard
# in part into a truncate at that position and an item not heard at all into a delete.
def _stop(actions: list[object]) -> m.StopBotAudio:
    stops = [a for a in actions if isinstance(a, m.StopBotAudio)]
    return stops[0] if stops else m.StopBotAudio()


def truncated(actions: list[object]) -> dict[str, int]:
    return {i.item_id: i.heard_ms for i in _stop(actions).items if i.heard_ms > 0}


def deleted(actions: list[object]) -> set[str]:
    return {i.item_id for i in _stop(actions).items if i.heard_ms == 0}


def cancels(actions: list[object]) -> bool:
    return _stop(actions).cancel_reply


def test_setup_answers_only_after_session_updated_then_greets() -> None:
    ctx, actions = m.step(CallContext(POLICY), m.Start())
    assert ctx.state is State.CONNECTING
    assert m.OpenSession() in actions and m.StartTimer(m.T_SETUP, 5.0) in actions
    ctx, actions = m.step(ctx, m.SessionReady())
    assert ctx.state is State.ANSWERING and Answer() in actions
    ctx, actions = m.step(ctx, Ack())
    assert ctx.state is State.LISTENING
    assert RequestReply("Greet the caller.") in actions


def test_session_setup_failure_rejects_with_503_and_retry_after() -> None:
    ctx, actions = run(CallContext(POLICY), m.Start(), m.SessionFailed("timeout"))
    assert ctx.state is State.ENDED
    assert Reject(503, "Service Unavailable", 30) in actions
    assert not any(isinstance(a, SendBye) for a in actions)


def test_cancel_while_connecting_closes_the_session_without_bye() -> None:
    ctx, actions = run(CallContext(POLICY), m.Start(), m.CallerCancel())
    assert ctx.state is State.ENDED and m.CloseSession() in actions
    assert not any(isinstance(a, SendBye) for a in actions)


def test_ack_timeout_ends_with_bye() -> None:
    ctx, actions = run(CallContext(POLICY), m.Start(), m.SessionReady(), m.AckTimeout())
    assert ctx.state is State.ENDED and SendBye(EndCause.ACK_TIMEOUT) in actions


def test_audio_deltas_are_enqueued_and_counted_per_item() -> None:
    ctx = bot_speaking(800)
    ctx, actions = m.step(ctx, BotAudio("resp_1", "item_1", b"\x7f" * 400))
    assert actions == [EnqueueAudio("item_1", b"\x7f" * 400)]
    assert ctx.received_bytes["item_1"] == 1200


def test_turn_completes_when_playout_drains_after_response_done() -> None:
    ctx = bot_speaking()
    ctx, actions = run(ctx, BotAudioDone("resp_1", "item_1"), BotReplyDone("resp_1", "completed"))
    assert m.EndOfAudio("item_1") in actions
    assert ctx.state is State.BOT_SPEAKING  # generation done, playout not
    ctx, _ = m.step(ctx, PlayoutDrained())
    assert ctx.state is State.LISTENING


def test_drained_items_are_forgotten_and_a_long_call_keeps_its_bookkeeping_bounded() -> None:
    """Issue 14: received_bytes is copied on every audio delta; items complete and played out
    are dropped from it (and from audio_done_items) when playout drains, so a long call's
    deltas do not cost more as its turns pile up. An item still streaming is kept."""
    ctx = answered()
    for turn in range(200):
        reply, item = f"resp_{turn}", f"item_{turn}"
        ctx, _ = run(
            ctx,
            BotReplyStarted(reply),
            BotAudio(reply, item, b"\xff" * 800),
            BotAudioDone(reply, item),
            BotReplyDone(reply, "completed"),
            PlayoutDrained(),
        )
        assert ctx.state is State.LISTENING
        assert not ctx.received_bytes and not ctx.audio_done_items
    # Drained between two deltas of a reply still streaming: its count survives.
    ctx, _ = run(ctx, BotReplyStarted("resp_x"), BotAudio("resp_x", "item_x", b"\xff" * 800))
    ctx, _ = m.step(ctx, PlayoutDrained())
    ctx, _ = m.step(ctx, BotAudio("resp_x", "item_x", b"\xff" * 400))
    assert ctx.received_bytes == {"item_x": 1200}
    # ... and a barge-in still truncates it at what was received.
    ctx, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_x", 1600),)))
    assert truncated(actions) == {"item_x": 150}  # 1200 bytes received / 8


# ---- barge-in ---------------------------------------------------------------------------


def test_barge_in_truncates_at_bytes_played_and_lets_the_server_cancel() -> None:
    ctx, actions = m.step(bot_speaking(4000), CallerSpeechStarted((PlayoutItem("item_1", 1600),)))
    assert ctx.state is State.CALLER_SPEAKING
    assert kinds(actions) == [FlushPlayout, m.StopBotAudio]
    assert truncated(actions) == {"item_1": 200}  # 1600 bytes on the wire / 8
    assert not cancels(actions)  # interrupt_response: the server cancels itself
    # Late deltas of the interrupted response are dropped.
    ctx, actions = m.step(ctx, BotAudio("resp_1", "item_1", b"\xff" * 160))
    assert actions == []


def test_barge_in_sends_cancel_when_the_server_does_not_interrupt() -> None:
    policy = replace(POLICY, server_interrupts=False)
    ctx, _ = run(
        answered(policy), BotReplyStarted("resp_1"), BotAudio("resp_1", "item_1", b"\xff" * 800)
    )
    ctx, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 320),)))
    assert cancels(actions)
    # A second speech_started while the cancel is under way does not cancel again.
    ctx, _ = m.step(ctx, m.CallerSpeechStopped())
    ctx, actions = m.step(ctx, CallerSpeechStarted(()))
    assert not cancels(actions)


def test_barge_in_with_nothing_played_deletes_the_item() -> None:
    _ctx, actions = m.step(bot_speaking(), CallerSpeechStarted((PlayoutItem("item_1", 0),)))
    assert deleted(actions) == {"item_1"}
    assert truncated(actions) == {}


def test_barge_in_allowance_is_subtracted_and_clamped_to_received_audio() -> None:
    policy = replace(POLICY, truncate_allowance_ms=60)
    ctx, _ = run(answered(policy), BotReplyStarted("r"), BotAudio("r", "item_1", b"\xff" * 2400))
    _, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 1600),)))
    assert truncated(actions) == {"item_1": 140}  # 200 ms played - 60 ms in the phone
    # played_bytes beyond what was received is impossible on the wire, but clamp anyway.
    _, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 99999),)))
    assert truncated(actions) == {"item_1": 240}


def test_barge_in_in_the_tail_after_response_done() -> None:
    ctx, _ = run(
        bot_speaking(8000), BotAudioDone("resp_1", "item_1"), BotReplyDone("resp_1", "completed")
    )
    assert ctx.reply_id is None and ctx.state is State.BOT_SPEAKING
    ctx, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 4000),)))
    assert kinds(actions) == [FlushPlayout, m.StopBotAudio]
    assert not cancels(actions)  # nothing to cancel server-side
    assert truncated(actions) == {"item_1": 500}
    assert ctx.state is State.CALLER_SPEAKING


def test_item_played_completely_gets_no_truncate() -> None:
    ctx, _ = run(
        bot_speaking(1600), BotAudioDone("resp_1", "item_1"), BotReplyDone("resp_1", "completed")
    )
    _, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 1600),)))
    assert kinds(actions) == [FlushPlayout]


def test_benign_races_are_logged_and_do_not_stall() -> None:
    ctx = bot_speaking()
    ctx, actions = m.step(
        ctx,
        m.VoiceError("response_cancel_not_active", "no active", m.VoiceErrorKind.NOTHING_TO_STOP),
    )
    assert kinds(actions) == [] and not ctx.cancelling
    ctx, actions = m.step(
        ctx,
        m.VoiceError(
            "conversation_already_has_active_response", "x", m.VoiceErrorKind.REPLY_IN_PROGRESS
        ),
    )
    assert ctx.reply_wanted
    ctx, actions = m.step(ctx, BotReplyDone("resp_1", "completed"))
    assert RequestReply() in actions  # the owed response is retried
    ctx, actions = m.step(ctx, m.VoiceError("invalid_value", "Audio content of 9800ms is shorter"))
    assert ctx.state is State.BOT_SPEAKING


# ---- the hard cases named in the issue ----------------------------------------------------


def test_barge_in_during_a_tool_call() -> None:
    ctx = bot_speaking()
    ctx, actions = m.step(ctx, ToolCall("call_9", "lookup_order", {"id": "42"}))
    assert m.RunTool("call_9", "lookup_order", {"id": "42"}) in actions
    ctx, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 800),)))
    assert truncated(actions) == {"item_1": 100}
    # The result comes back while the caller is still talking: hand it over, no response.create
    # (the server's VAD response will see it).
    ctx, actions = m.step(ctx, ToolResult("call_9", '{"status": "shipped"}'))
    assert actions == [ReturnToolResult("call_9", '{"status": "shipped"}')]


def test_tool_result_waits_for_the_active_response() -> None:
    ctx = bot_speaking()
    ctx, _ = m.step(ctx, ToolCall("call_9", "lookup_order", {}))
    ctx, actions = m.step(ctx, ToolResult("call_9", "{}"))
    assert ReturnToolResult("call_9", "{}") in actions and RequestReply() not in actions
    ctx, actions = m.step(ctx, BotReplyDone("resp_1", "completed"))
    assert RequestReply() in actions


def test_bye_during_a_transfer() -> None:
    ctx, _ = run(answered(), ToolCall("call_t", "transfer_call", {"target": "operator"}))
    assert ctx.state is State.TRANSFERRING
    ctx, actions = m.step(ctx, CallerBye())
    assert ctx.state is State.ENDED
    assert not any(isinstance(a, SendBye) for a in actions)
    assert m.CloseSession() in actions and m.StopMedia() in actions


def test_transfer_waits_for_playout_then_refers_and_reports_failure_to_the_model() -> None:
    ctx = bot_speaking()
    ctx, actions = m.step(ctx, ToolCall("call_t", "transfer_call", {"target": "operator"}))
    assert not any(isinstance(a, SendRefer) for a in actions)
    ctx, _ = m.step(ctx, BotReplyDone("resp_1", "completed"))
    ctx, actions = m.step(ctx, PlayoutDrained())
    assert SendRefer("sip:op@pbx.example") in actions and ctx.state is State.TRANSFERRING
    ctx, actions = m.step(ctx, ReferResult(486))
    assert ctx.state is State.LISTENING
    assert any(isinstance(a, ReturnToolResult) and "486" in a.output for a in actions)
    assert RequestReply() in actions


def test_transfer_success_ends_the_call() -> None:
    ctx, _ = run(answered(), ToolCall("call_t", "transfer_call", {"target": "operator"}))
    ctx, actions = m.step(ctx, ReferResult(200))
    assert ctx.state is State.ENDED and SendBye(EndCause.TRANSFERRED) in actions


def test_transfer_to_a_target_outside_the_allowlist_is_refused() -> None:
    ctx, actions = m.step(answered(), ToolCall("c", "transfer_call", {"target": "sip:x@evil"}))
    assert ctx.state is State.LISTENING
    out = [a for a in actions if isinstance(a, ReturnToolResult)]
    assert out and "unknown transfer target" in out[0].output and "operator" in out[0].output


def test_websocket_drop_while_the_bot_speaks() -> None:
    ctx = bot_speaking()
    ctx, actions = m.step(ctx, m.ConnectionLost("1006"))
    assert m.Reconnect("1006") in actions
    assert FlushPlayout() not in actions  # what was received still plays out
    assert ctx.reply_id is None and not ctx.session_connected
    ctx, _ = m.step(ctx, m.Reconnected())
    ctx, _ = m.step(ctx, PlayoutDrained())
    assert ctx.state is State.LISTENING
    # The next turn works on the new session.
    ctx, actions = run(ctx, BotReplyStarted("resp_2"), BotAudio("resp_2", "item_2", b"\xff" * 160))
    assert EnqueueAudio("item_2", b"\xff" * 160) in actions


def test_dtmf_during_barge_in() -> None:
    ctx, _ = m.step(bot_speaking(), CallerSpeechStarted((PlayoutItem("item_1", 800),)))
    ctx, actions = run(ctx, Dtmf("1", "rfc4733"), Dtmf("2", "rfc4733"), Dtmf("#", "rfc4733"))
    assert AddText("The caller pressed 1 2 #") in actions
    assert ctx.state is State.CALLER_SPEAKING and ctx.digits == ""


def test_dtmf_barge_in_truncates_like_speech_and_cancels() -> None:
    ctx, actions = m.step(bot_speaking(), Dtmf("5", "info", (PlayoutItem("item_1", 480),)))
    assert truncated(actions) == {"item_1": 60}
    assert cancels(actions)  # the server did not see this interruption
    assert ctx.state is State.LISTENING


def test_digits_collected_until_timeout_then_forwarded_with_response() -> None:
    ctx, actions = run(answered(), Dtmf("4", "rfc4733"), Dtmf("2", "rfc4733"))
    assert m.StartTimer(m.T_DIGITS, 2.0) in actions
    ctx, actions = m.step(ctx, m.DigitTimeout())
    assert AddText("The caller pressed 4 2") in actions and RequestReply() in actions


def test_digit_action_transfers_to_the_operator() -> None:
    ctx, actions = m.step(answered(), Dtmf("0", "rfc4733"))
    assert ctx.state is State.TRANSFERRING and SendRefer("sip:op@pbx.example") in actions


def test_dtmf_ignored_by_policy() -> None:
    ctx, actions = m.step(answered(replace(POLICY, dtmf_mode=m.DtmfMode.IGNORE)), Dtmf("1", "info"))
    assert kinds(actions) == [] and ctx.digits == ""


def test_end_call_finishes_playing_then_byes() -> None:
    ctx = bot_speaking()
    ctx, actions = m.step(ctx, ToolCall("c", "end_call", {}))
    assert ctx.state is State.ENDING and not any(isinstance(a, SendBye) for a in actions)
    ctx, actions = m.step(ctx, BotReplyDone("resp_1", "completed"))
    assert ctx.state is State.ENDING
    ctx, actions = m.step(ctx, PlayoutDrained())
    assert ctx.state is State.ENDED and SendBye(EndCause.END_CALL) in actions


def test_send_dtmf_tool() -> None:
    ctx, actions = m.step(bot_speaking(), ToolCall("c", "send_dtmf", {"digits": "12#"}))
    assert SendDigits("12#") in actions and ReturnToolResult("c", '{"ok": true}') in actions
    _, actions = m.step(ctx, ToolCall("d", "send_dtmf", {"digits": "1x"}))
    assert not any(isinstance(a, SendDigits) for a in actions)


def test_rollover_waits_for_a_silence() -> None:
    ctx, actions = m.step(bot_speaking(), m.SessionCapNear())
    assert m.Rollover() not in actions and ctx.rollover_pending
    ctx, _ = m.step(ctx, BotReplyDone("resp_1", "completed"))
    ctx, actions = m.step(ctx, PlayoutDrained())
    assert m.Rollover() in actions
    ctx, actions = m.step(ctx, m.RolledOver())
    assert m.StartTimer("session_cap", 3300.0) in actions


def test_rtp_timeout_ends_with_bye_and_reason() -> None:
    ctx, actions = m.step(answered(), m.RtpTimeout(30))
    assert ctx.state is State.ENDED and SendBye(EndCause.RTP_TIMEOUT) in actions


def test_rtp_timeout_drains_the_bots_words_then_byes_with_408() -> None:
    ctx, actions = m.step(bot_speaking(), m.RtpTimeout(30))
    assert ctx.state is State.ENDING and not any(isinstance(a, SendBye) for a in actions)
    assert m.StartTimer(m.T_DRAIN, POLICY.drain_timeout_s) in actions
    ctx, actions = m.step(ctx, PlayoutDrained())
    assert ctx.state is State.ENDED and SendBye(EndCause.RTP_TIMEOUT) in actions
    assert bye_reason(EndCause.RTP_TIMEOUT).header() == 'SIP;cause=408;text="RTP timeout"'


def test_rtp_timeout_while_ending_byes_at_once() -> None:
    ctx, _ = m.step(bot_speaking(), m.MaxDuration())
    assert ctx.state is State.ENDING
    ctx, actions = m.step(ctx, m.RtpTimeout(30))
    assert ctx.state is State.ENDED and SendBye(EndCause.RTP_TIMEOUT) in actions


def test_outbound_call_up_before_its_session_ends_on_max_duration_or_rtp_timeout() -> None:
    connecting, _ = m.step(CallContext(POLICY), m.Start())
    for event in (m.MaxDuration(), m.RtpTimeout(30)):
        ctx, actions = m.step(connecting, event)
        assert ctx.state is State.ENDED and any(isinstance(a, SendBye) for a in actions)


def test_every_bye_carries_an_end_cause_with_its_reason() -> None:
    """One vocabulary: each cause the machine ends a call with has a Reason header."""
    for cause in EndCause:
        reason = bye_reason(cause)
        assert 200 <= reason.status < 700 and reason.text
    assert bye_reason(EndCause.MAX_DURATION).header() == 'SIP;cause=200;text="max duration"'
    assert bye_reason(EndCause.VOICE_SESSION_UNAVAILABLE).status == 503


# ---- properties -----------------------------------------------------------------------------

EVENTS = st.sampled_from(list(SAMPLE_EVENTS.values()))


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_random_event_sequences_only_raise_illegal_transition(events: list[object]) -> None:
    ctx = CallContext(POLICY)
    for ev in events:
        try:
            ctx, _actions = m.step(ctx, ev)
        except m.IllegalTransition:
            continue
        if ctx.state is State.ENDED:
            assert ctx.hangup_cause is not None
    if ctx.state is State.ENDED:
        assert m.step(ctx, CallerBye()) == (ctx, [])


def test_reconnect_budget_spent_ends_the_call_with_a_503_reason() -> None:
    ctx, actions = m.step(bot_speaking(), m.ReconnectBudgetSpent("1006"))
    assert ctx.state is State.ENDED
    assert ctx.hangup_cause == "voice session unavailable"
    assert SendBye(EndCause.VOICE_SESSION_UNAVAILABLE) in actions


def test_session_expiry_reconnects_once() -> None:
    """The service sends error session_expired and then closes the socket: one new session."""
    _ctx, actions = run(
        bot_speaking(),
        m.VoiceError(
            "session_expired",
            "Your session hit the maximum duration of 60 minutes.",
            m.VoiceErrorKind.SESSION_EXPIRED,
        ),
        m.ConnectionLost("1001"),
    )
    assert [a for a in actions if isinstance(a, m.Reconnect)] == [m.Reconnect("1001")]


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, max_size=30))
def test_notes_never_carry_a_call_id_field(events: list[object]) -> None:
    """The session logs every Note with the call's own call_id; a Note field of that name
    would collide (function-call ids are `tool_call_id`)."""
    ctx = answered()
    for ev in events:
        try:
            ctx, actions = m.step(ctx, ev)
        except m.IllegalTransition:
            continue
        for action in actions:
            if isinstance(action, m.Note):
                assert "call_id" not in action.fields, action


def test_operator_say_adds_the_text_and_asks_for_a_reply() -> None:
    ctx, actions = m.step(answered(), m.OperatorSay("The taxi is here."))
    assert actions == [m.AddText("The taxi is here.", "system"), m.RequestReply(None)]
    _, actions = m.step(ctx, m.OperatorSay("I am back.", role="user", respond=False))
    assert actions == [m.AddText("I am back.", "user")]


def test_operator_say_while_the_bot_speaks_waits_for_its_response() -> None:
    ctx, actions = m.step(bot_speaking(), m.OperatorSay("The taxi is here."))
    assert m.AddText("The taxi is here.", "system") in actions
    assert not any(isinstance(a, m.RequestReply) for a in actions) and ctx.reply_wanted
    _, actions = m.step(ctx, BotReplyDone("resp_1", "completed"))
    assert m.RequestReply(None) in actions


def test_operator_hangup_byes_at_once_even_while_the_bot_speaks() -> None:
    ctx, actions = m.step(bot_speaking(), m.OperatorHangup())
    assert ctx.state is State.ENDED
    assert SendBye(EndCause.LOCAL_BYE, "operator hangup") in actions


def test_operator_say_is_ignored_once_the_call_is_ending() -> None:
    ctx, _ = m.step(bot_speaking(), m.MaxDuration())
    _, actions = m.step(ctx, m.OperatorSay("too late"))
    assert actions == []


def test_hold_stops_the_idle_watchdog_and_resume_restarts_it() -> None:
    policy = dataclasses.replace(POLICY, idle_prompt_s=8.0)
    ctx, actions = m.step(answered(policy), m.HoldChanged(True, "sendonly"))
    assert ctx.on_hold and ctx.state is State.LISTENING
    assert m.Note("call.hold", {"direction": "sendonly"}) in actions
    assert m.CancelTimer(m.T_IDLE) in actions
    # While on hold the caller's silence is no reason to prompt: the watchdog stays off.
    ctx, actions = m.step(ctx, BotReplyStarted("resp_1"))
    ctx, actions = m.step(ctx, BotReplyDone("resp_1", "completed"))
    assert not any(isinstance(a, m.StartTimer) and a.name == m.T_IDLE for a in actions)
    ctx, actions = m.step(ctx, m.HoldChanged(False, "sendrecv"))
    assert not ctx.on_hold
    assert m.Note("call.resumed", {"direction": "sendrecv"}) in actions
    assert m.StartTimer(m.T_IDLE, 8.0) in actions


def test_a_late_offers_answer_switches_the_sessions_codec() -> None:
    connecting, _ = m.step(CallContext(POLICY), m.Start())
    answering, _ = m.step(connecting, m.SessionReady())
    for ctx in (answering, answered()):
        new_ctx, actions = m.step(ctx, m.CodecAnswered("PCMA"))
        assert actions == [m.SwitchCodec("PCMA")] and new_ctx.state is ctx.state
