"""The machine with a continuous-output backend (GPT-Live, `CallPolicy.continuous_output`):
one-line cases for what differs from Realtime, and that Realtime's behaviour did not change."""

from __future__ import annotations

from dataclasses import replace

from gateway.call import machine as m
from gateway.call.causes import EndCause, bye_reason
from gateway.voice import LOST_CONTENT, LOST_REMOTE_HANGUP

LIVE = m.CallPolicy(continuous_output=True, rollover_margin_s=300.0)


def listening(policy: m.CallPolicy = LIVE) -> m.CallContext:
    ctx = m.CallContext(policy)
    for event in (m.Start(), m.SessionReady(), m.Ack()):
        ctx, _ = m.step(ctx, event)
    assert ctx.state is m.State.LISTENING
    return ctx


def speaking(policy: m.CallPolicy = LIVE) -> m.CallContext:
    ctx = listening(policy)
    ctx, _ = m.step(ctx, m.BotReplyStarted("live_reply_1"))
    ctx, _ = m.step(ctx, m.BotAudio("live_reply_1", "live_bot_2", b"\x01" * 800))
    return ctx


def test_end_call_answers_ending_and_waits_for_the_goodbye() -> None:
    ctx, actions = m.step(listening(), m.ToolCall("c1", "end_call", {}))
    assert ctx.state is m.State.ENDING
    assert m.ReturnToolResult("c1", '{"status": "ending"}') in actions
    assert m.StartTimer(m.T_DRAIN, LIVE.goodbye_timeout_s) in actions
    assert not any(isinstance(a, m.SendBye) for a in actions)


def test_realtime_end_call_is_unchanged() -> None:
    ctx, actions = m.step(listening(m.CallPolicy()), m.ToolCall("c1", "end_call", {}))
    assert ctx.state is m.State.ENDED
    assert m.SendBye(EndCause.END_CALL) in actions
    assert not any(isinstance(a, m.ReturnToolResult) for a in actions)


def test_an_empty_queue_between_deltas_does_not_end_the_goodbye() -> None:
    ctx, _ = m.step(listening(), m.ToolCall("c1", "end_call", {}))
    ctx, _ = m.step(ctx, m.BotReplyStarted("r"))
    ctx, _ = m.step(ctx, m.BotAudio("r", "b", b"\x01" * 800))
    ctx, actions = m.step(ctx, m.PlayoutDrained())
    assert ctx.state is m.State.ENDING and actions == []
    ctx, _ = m.step(ctx, m.BotAudio("r", "b", b"\x01" * 800))
    ctx, _ = m.step(ctx, m.BotReplyDone("r", "completed"))
    ctx, actions = m.step(ctx, m.PlayoutDrained())
    assert ctx.state is m.State.ENDED
    assert m.SendBye(EndCause.END_CALL) in actions


def test_the_goodbye_timer_ends_a_silent_model() -> None:
    ctx, _ = m.step(listening(), m.ToolCall("c1", "end_call", {}))
    ctx, actions = m.step(ctx, m.DrainTimeout())
    assert ctx.state is m.State.ENDED and m.SendBye(EndCause.END_CALL) in actions


def test_no_reply_request_after_a_tool_result() -> None:
    ctx, _ = m.step(listening(), m.ToolCall("c1", "lookup", {}))
    ctx, actions = m.step(ctx, m.ToolResult("c1", "{}"))
    assert actions == [m.ReturnToolResult("c1", "{}")]
    ctx, actions = m.step(listening(), m.ToolCall("c2", "send_dtmf", {"digits": "12"}))
    assert not any(isinstance(a, m.RequestReply) for a in actions)
    assert m.SendDigits("12") in actions


def test_realtime_still_requests_a_reply_after_a_tool_result() -> None:
    ctx, _ = m.step(listening(m.CallPolicy()), m.ToolCall("c1", "lookup", {}))
    _, actions = m.step(ctx, m.ToolResult("c1", "{}"))
    assert m.RequestReply() in actions


def test_a_final_connection_loss_ends_the_call_with_its_cause() -> None:
    for final, cause in (
        (LOST_CONTENT, EndCause.VOICE_CONTENT_FILTER),
        (LOST_REMOTE_HANGUP, EndCause.VOICE_ENDED),
    ):
        ctx, actions = m.step(speaking(), m.ConnectionLost("session closed", final))
        assert ctx.state is m.State.ENDED
        assert m.SendBye(cause) in actions
        assert ctx.hangup_cause == bye_reason(cause).text
        assert not any(isinstance(a, m.Reconnect) for a in actions)


def test_an_ordinary_loss_reconnects() -> None:
    ctx, actions = m.step(speaking(), m.ConnectionLost("session closed: expired"))
    assert m.Reconnect("session closed: expired") in actions
    assert ctx.state is m.State.BOT_SPEAKING


def test_the_backends_expiry_sets_the_rollover_timer() -> None:
    ctx = m.CallContext(LIVE)
    ctx, _ = m.step(ctx, m.Start())
    _, actions = m.step(ctx, m.SessionReady(cap_s=1800.0))
    assert m.StartTimer("session_cap", 1500.0) in actions
    _, actions = m.step(ctx, m.SessionReady(cap_s=20.0))  # short: half of it, not 300 s
    assert m.StartTimer("session_cap", 10.0) in actions
    _, actions = m.step(ctx, m.SessionReady())
    assert m.StartTimer("session_cap", LIVE.session_cap_s - 300.0) in actions
    _, actions = m.step(listening(), m.Reconnected(cap_s=20.0))
    assert m.StartTimer("session_cap", 10.0) in actions
    _, actions = m.step(listening(), m.Reconnected())
    assert not any(isinstance(a, m.StartTimer) for a in actions)
    ctx = replace(listening(), rollover_pending=True)
    _, actions = m.step(ctx, m.RolledOver(cap_s=60.0))
    assert m.StartTimer("session_cap", 30.0) in actions


def test_caller_heard_restarts_the_idle_watchdog_without_barge_in() -> None:
    policy = replace(LIVE, idle_prompt_s=10.0)
    ctx = replace(listening(policy), idle_prompts=1)
    ctx, actions = m.step(ctx, m.CallerHeard())
    assert actions == [m.StartTimer(m.T_IDLE, 10.0)] and ctx.idle_prompts == 0
    ctx, actions = m.step(speaking(policy), m.CallerHeard())
    assert actions == []  # the bot is speaking: no flush, no stop, nothing sent
    assert ctx.state is m.State.BOT_SPEAKING


def test_later_digits_do_not_barge_in_again_on_the_same_silenced_reply() -> None:
    ctx = speaking()
    playing = (m.PlayoutItem("live_bot_2", 400),)
    ctx, actions = m.step(ctx, m.Dtmf("1", "rfc4733", playing))
    assert m.FlushPlayout() in actions  # the first digit interrupts the bot locally
    ctx, actions = m.step(ctx, m.Dtmf("2", "rfc4733", playing))
    assert m.FlushPlayout() not in actions  # nothing queued any more: nothing to interrupt


def test_a_flood_of_tool_calls_runs_at_most_a_few_and_each_once() -> None:
    from gateway.call.handlers import MAX_RUNNING_TOOLS

    for policy in (LIVE, m.CallPolicy()):
        ctx = listening(policy)
        runs = refused = 0
        for i in range(50):
            ctx, actions = m.step(ctx, m.ToolCall(f"c{i}", "lookup", {}))
            runs += sum(isinstance(a, m.RunTool) for a in actions)
            refused += sum(isinstance(a, m.ReturnToolResult) for a in actions)
        assert runs == MAX_RUNNING_TOOLS and refused == 50 - MAX_RUNNING_TOOLS
        _, actions = m.step(ctx, m.ToolCall("c0", "lookup", {}))  # the same call id again
        assert not any(isinstance(a, (m.RunTool, m.ReturnToolResult)) for a in actions)


# -- transfer_call (reference 6: result, announcement, REFER, NOTIFY 200, session.close, BYE)

XFER = replace(LIVE, transfer_targets={"operator": "sip:op@192.0.2.9"})
TRANSFERRING_RESULT = '{"status": "transferring", "target": "operator"}'


def announcing(ctx: m.CallContext | None = None) -> m.CallContext:
    ctx, _ = m.step(
        ctx or listening(XFER), m.ToolCall("x1", "transfer_call", {"target": "operator"})
    )
    return ctx


def test_transfer_call_answers_transferring_at_once_and_defers_the_refer() -> None:
    ctx, actions = m.step(
        listening(XFER), m.ToolCall("x1", "transfer_call", {"target": "operator"})
    )
    assert ctx.state is m.State.TRANSFERRING
    assert m.ReturnToolResult("x1", TRANSFERRING_RESULT) in actions
    assert m.StartTimer(m.T_DRAIN, XFER.goodbye_timeout_s) in actions
    assert not any(isinstance(a, m.SendRefer) for a in actions)


def test_the_refer_waits_for_the_announcement_to_end_and_play_out() -> None:
    ctx = announcing()
    ctx, _ = m.step(ctx, m.BotReplyStarted("r"))
    ctx, _ = m.step(ctx, m.BotAudio("r", "b", b"\x01" * 800))
    ctx, actions = m.step(ctx, m.PlayoutDrained())  # between two deltas
    assert actions == [] and ctx.transfer_after_playout is not None
    ctx, _ = m.step(ctx, m.BotAudio("r", "b", b"\x01" * 800))
    ctx, actions = m.step(ctx, m.BotReplyDone("r", "completed"))  # ended by silence
    assert not any(isinstance(a, m.SendRefer) for a in actions)  # still queued
    ctx, actions = m.step(ctx, m.PlayoutDrained())
    assert ctx.state is m.State.TRANSFERRING
    assert actions[:2] == [m.CancelTimer(m.T_DRAIN), m.SendRefer("sip:op@192.0.2.9")]


def test_an_announcement_already_played_refers_at_its_reply_end() -> None:
    ctx = announcing()
    ctx, _ = m.step(ctx, m.BotReplyStarted("r"))
    ctx, actions = m.step(ctx, m.BotReplyDone("r", "completed"))
    assert m.SendRefer("sip:op@192.0.2.9") in actions


def test_the_goodbye_timer_caps_the_announcement() -> None:
    ctx = announcing()
    ctx, _ = m.step(ctx, m.BotReplyStarted("r"))
    ctx, actions = m.step(ctx, m.DrainTimeout())
    assert ctx.state is m.State.TRANSFERRING
    assert m.SendRefer("sip:op@192.0.2.9") in actions
    ctx, actions = m.step(ctx, m.DrainTimeout())  # a late second firing: nothing twice
    assert actions == []


def test_a_successful_transfer_closes_the_session_then_byes() -> None:
    ctx, _ = m.step(announcing(), m.DrainTimeout())
    ctx, actions = m.step(ctx, m.ReferResult(200))
    assert ctx.state is m.State.ENDED
    assert m.SendBye(EndCause.TRANSFERRED) in actions
    assert not any(isinstance(a, m.ReturnToolResult) for a in actions)  # answered already


def test_a_failed_transfer_tells_the_model_and_keeps_the_call() -> None:
    ctx, _ = m.step(announcing(), m.DrainTimeout())
    ctx, actions = m.step(ctx, m.ReferResult(603))
    assert ctx.state is m.State.LISTENING
    assert not any(isinstance(a, (m.ReturnToolResult, m.SendBye)) for a in actions)
    assert m.AddText("The transfer failed (SIP 603).", "system") in actions
    assert any(isinstance(a, m.RequestReply) and a.instructions for a in actions)


def test_a_tool_call_during_the_transfer_gets_an_output() -> None:
    ctx, actions = m.step(announcing(), m.ToolCall("x2", "lookup", {}))
    assert ctx.state is m.State.TRANSFERRING
    assert [a for a in actions if isinstance(a, m.ReturnToolResult)] == [
        m.ReturnToolResult("x2", '{"ok": false, "error": "the call is being transferred"}')
    ]


def test_realtime_transfer_is_unchanged() -> None:
    policy = replace(m.CallPolicy(), transfer_targets=XFER.transfer_targets)
    ctx, actions = m.step(
        listening(policy), m.ToolCall("x1", "transfer_call", {"target": "operator"})
    )
    assert ctx.state is m.State.TRANSFERRING
    assert actions == [
        m.SendRefer("sip:op@192.0.2.9"),
        m.Note("transfer.started", {"target": "sip:op@192.0.2.9"}),
    ]
    ctx, actions = m.step(ctx, m.ReferResult(603))
    assert m.ReturnToolResult("x1", '{"ok": false, "error": "transfer failed: SIP 603"}') in actions


def test_after_a_failed_transfer_the_model_may_transfer_again() -> None:
    ctx, _ = m.step(announcing(), m.DrainTimeout())
    ctx, _ = m.step(ctx, m.ReferResult(503))
    ctx, actions = m.step(ctx, m.ToolCall("x3", "transfer_call", {"target": "operator"}))
    assert ctx.state is m.State.TRANSFERRING
    assert m.ReturnToolResult("x3", TRANSFERRING_RESULT) in actions


def test_a_model_repeating_transfer_call_gets_one_refer() -> None:
    """A looping or hostile backend: every repeat is answered with an error, the REFER goes
    out once, and the goodbye timer is not restarted by the repeats."""
    ctx = announcing()
    refers = 0
    for n in range(20):
        ctx, actions = m.step(ctx, m.ToolCall(f"r{n}", "transfer_call", {"target": "operator"}))
        assert not any(isinstance(a, (m.SendRefer, m.StartTimer)) for a in actions)
    ctx, actions = m.step(ctx, m.DrainTimeout())
    refers += sum(isinstance(a, m.SendRefer) for a in actions)
    for n in range(5):
        ctx, actions = m.step(ctx, m.ToolCall(f"s{n}", "transfer_call", {"target": "operator"}))
        refers += sum(isinstance(a, m.SendRefer) for a in actions)
    ctx, actions = m.step(ctx, m.DrainTimeout())
    assert refers == 1 and actions == []
