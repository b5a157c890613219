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
