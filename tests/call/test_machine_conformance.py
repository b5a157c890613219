"""The state machine against what the real service does (issue 10): several outputs in one
response, gateway-initiated barge-in order, failed/incomplete responses, idle callers."""

from __future__ import annotations

from dataclasses import replace

from gateway.call import machine as m
from gateway.call.causes import EndCause
from gateway.call.machine import (
    Ack,
    BotAudio,
    BotAudioDone,
    BotReplyDone,
    BotReplyStarted,
    CallContext,
    CallerSpeechStarted,
    CallPolicy,
    Dtmf,
    FlushPlayout,
    PlayoutDrained,
    PlayoutItem,
    RequestReply,
    ReturnToolResult,
    SendBye,
    SendRefer,
    State,
    ToolCall,
    ToolResult,
)
from gateway.realtime.link import RealtimeLink

POLICY = CallPolicy(transfer_targets={"operator": "sip:op@pbx.example"})


def run(ctx: CallContext, *events: object) -> tuple[CallContext, list[object]]:
    actions: list[object] = []
    for ev in events:
        ctx, more = m.step(ctx, ev)
        actions += more
    return ctx, actions


def answered(policy: CallPolicy = POLICY) -> CallContext:
    ctx, _ = run(CallContext(policy), m.Start(), m.SessionReady(), Ack())
    return ctx


def creates(actions: list[object]) -> list[object]:
    return [a for a in actions if isinstance(a, RequestReply)]


# ---- several output items in one response ----------------------------------------------------


def test_two_tool_calls_in_one_response_get_one_response_create_after_both_outputs() -> None:
    ctx, actions = run(
        answered(),
        BotReplyStarted("resp_1"),
        ToolCall("call_a", "lookup", {"q": 1}),
        ToolCall("call_b", "weather", {"city": "x"}),
        BotReplyDone("resp_1", "completed"),
        ToolResult("call_b", '{"b": 1}'),  # the second tool answers first
    )
    assert [type(a) for a in actions if isinstance(a, m.RunTool)] == [m.RunTool, m.RunTool]
    assert creates(actions) == []  # call_a is still owed
    ctx, actions = m.step(ctx, ToolResult("call_a", '{"a": 1}'))
    assert actions == [ReturnToolResult("call_a", '{"a": 1}'), RequestReply(None)]
    assert ctx.pending_tool_calls == frozenset()


def test_tool_outputs_before_response_done_wait_for_it_then_one_create() -> None:
    ctx, actions = run(
        answered(),
        BotReplyStarted("resp_1"),
        ToolCall("call_a", "lookup", {}),
        ToolCall("call_b", "send_dtmf", {"digits": "12"}),  # built-in: output at once
        ToolResult("call_a", "{}"),
    )
    assert creates(actions) == []  # resp_1 still active
    ctx, actions = m.step(ctx, BotReplyDone("resp_1", "completed"))
    assert creates(actions) == [RequestReply(None)]


def test_preamble_then_tool_call_plays_the_preamble_and_answers_after_the_output() -> None:
    ctx, actions = run(
        answered(),
        BotReplyStarted("resp_1"),
        BotAudio("resp_1", "item_pre", b"\x55" * 1600),
        BotAudioDone("resp_1", "item_pre"),
        ToolCall("call_a", "lookup", {}),
        BotReplyDone("resp_1", "completed"),
    )
    assert m.EnqueueAudio("item_pre", b"\x55" * 1600) in actions
    assert ctx.state is State.BOT_SPEAKING and creates(actions) == []
    ctx, actions = run(ctx, ToolResult("call_a", "{}"))
    assert creates(actions) == [RequestReply(None)]
    ctx, _ = run(ctx, BotReplyStarted("resp_2"), PlayoutDrained())
    assert ctx.state is State.BOT_SPEAKING or ctx.state is State.LISTENING


def test_end_call_after_a_preamble_lets_the_preamble_finish() -> None:
    ctx, actions = run(
        answered(),
        BotReplyStarted("resp_1"),
        BotAudio("resp_1", "item_pre", b"\x55" * 1600),
        ToolCall("call_end", "end_call", {}),
        BotAudio("resp_1", "item_pre", b"\x55" * 800),  # the preamble is still arriving
        BotAudioDone("resp_1", "item_pre"),
        BotReplyDone("resp_1", "completed"),
    )
    assert ctx.state is State.ENDING
    assert not any(isinstance(a, SendBye) for a in actions)
    assert m.EnqueueAudio("item_pre", b"\x55" * 800) in actions
    ctx, actions = m.step(ctx, PlayoutDrained())
    assert ctx.state is State.ENDED and SendBye(EndCause.END_CALL) in actions


def realtime_wire(actions: list[object]) -> list[dict[str, object]]:
    """The Realtime events the voice link (gateway/realtime/link.py) sends for a barge-in."""
    events: list[dict[str, object]] = []
    for action in actions:
        if isinstance(action, m.StopBotAudio):
            unheard = [(item.item_id, item.heard_ms) for item in action.items]
            events += RealtimeLink().stop_bot_audio(action.cancel_reply, unheard)
    keep = ("type", "item_id", "audio_end_ms")
    return [{k: v for k, v in event.items() if k in keep} for event in events]


# ---- gateway-initiated barge-in ---------------------------------------------------------------


def test_dtmf_barge_in_cancels_before_it_truncates_or_deletes() -> None:
    ctx, _ = run(
        answered(),
        BotReplyStarted("resp_1"),
        BotAudio("resp_1", "item_1", b"\xff" * 4000),
        BotAudio("resp_1", "item_2", b"\xff" * 800),
    )
    playout = (PlayoutItem("item_1", 1600), PlayoutItem("item_2", 0))
    ctx, actions = m.step(ctx, Dtmf("5", "rfc4733", playout))
    assert realtime_wire(actions) == [
        {"type": "response.cancel"},
        {"type": "conversation.item.truncate", "item_id": "item_1", "audio_end_ms": 200},
        {"type": "conversation.item.delete", "item_id": "item_2"},
    ]
    stop = next(a for a in actions if isinstance(a, m.StopBotAudio))
    assert actions.index(FlushPlayout()) < actions.index(stop)


def test_speech_barge_in_without_interrupt_response_cancels_first() -> None:
    policy = replace(POLICY, server_interrupts=False)
    ctx, _ = run(
        answered(policy), BotReplyStarted("resp_1"), BotAudio("resp_1", "item_1", b"\xff" * 800)
    )
    ctx, actions = m.step(ctx, CallerSpeechStarted((PlayoutItem("item_1", 320),)))
    assert realtime_wire(actions) == [
        {"type": "response.cancel"},
        {"type": "conversation.item.truncate", "item_id": "item_1", "audio_end_ms": 40},
    ]


# ---- failed and incomplete responses ----------------------------------------------------------


def test_failed_response_is_retried_then_the_call_ends_with_503_never_silence() -> None:
    ctx, actions = run(answered(), BotReplyStarted("resp_1"), BotReplyDone("resp_1", "failed"))
    assert creates(actions) == [RequestReply(POLICY.failed_response_instructions)]
    assert any(isinstance(a, m.Note) and a.event == "realtime.response_failed" for a in actions)
    ctx, actions = run(ctx, BotReplyStarted("resp_2"), BotReplyDone("resp_2", "failed"))
    assert ctx.state is State.ENDED
    assert SendBye(EndCause.VOICE_SESSION_UNAVAILABLE) in actions


def test_failed_responses_transfer_when_a_target_is_configured() -> None:
    policy = replace(POLICY, failed_response_retries=0, failed_response_transfer="operator")
    ctx, actions = run(
        answered(policy), BotReplyStarted("resp_1"), BotReplyDone("resp_1", "failed")
    )
    assert ctx.state is State.TRANSFERRING and SendRefer("sip:op@pbx.example") in actions


def test_incomplete_without_audio_is_retried_but_with_audio_only_noted() -> None:
    ctx, actions = run(
        answered(),
        BotReplyStarted("resp_1"),
        BotReplyDone("resp_1", "incomplete", "content_filter"),
    )
    assert len(creates(actions)) == 1
    ctx, _ = run(ctx, BotReplyStarted("resp_2"), BotAudio("resp_2", "i", b"\xff" * 800))
    ctx, actions = m.step(ctx, BotReplyDone("resp_2", "incomplete", "max_output_tokens"))
    assert creates(actions) == [] and ctx.state is State.BOT_SPEAKING
    # A good answer resets the count of failures in a row.
    ctx, _ = run(
        ctx,
        PlayoutDrained(),
        BotReplyStarted("resp_3"),
        BotAudio("resp_3", "j", b"\xff" * 800),
        BotReplyDone("resp_3", "completed"),
    )
    assert ctx.failed_retries == 0


# ---- idle callers ---------------------------------------------------------------------------------


IDLE = replace(POLICY, idle_prompt_s=8.0, idle_prompts_max=2)


def played_turn(ctx: CallContext, response_id: str) -> tuple[CallContext, list[object]]:
    return run(
        ctx,
        BotReplyStarted(response_id),
        BotAudio(response_id, f"item_{response_id}", b"\xff" * 800),
        BotAudioDone(response_id, f"item_{response_id}"),
        BotReplyDone(response_id, "completed"),
        PlayoutDrained(),
    )


def test_idle_caller_is_prompted_then_hung_up_on_politely() -> None:
    ctx, actions = run(CallContext(IDLE), m.Start(), m.SessionReady(), Ack())
    assert m.StartTimer(m.T_IDLE, 8.0) in actions  # no greeting: the caller's turn
    for prompt in (1, 2):
        ctx, actions = m.step(ctx, m.IdleTimeout())
        assert creates(actions) == [RequestReply(IDLE.idle_prompt_instructions)]
        ctx, actions = played_turn(ctx, f"resp_{prompt}")
        assert m.StartTimer(m.T_IDLE, 8.0) in actions
    ctx, actions = m.step(ctx, m.IdleTimeout())
    assert ctx.state is State.ENDING
    assert creates(actions) == [RequestReply(IDLE.idle_goodbye_instructions)]
    ctx, actions = played_turn(ctx, "resp_bye")
    assert ctx.state is State.ENDED and SendBye(EndCause.IDLE_CALLER) in actions


def test_speech_resets_the_idle_count_and_stops_the_timer() -> None:
    ctx, _ = run(CallContext(IDLE), m.Start(), m.SessionReady(), Ack(), m.IdleTimeout())
    ctx, _ = played_turn(ctx, "resp_1")
    assert ctx.idle_prompts == 1
    ctx, actions = m.step(ctx, CallerSpeechStarted(()))
    assert ctx.idle_prompts == 0 and m.CancelTimer(m.T_IDLE) in actions


def test_server_idle_timeouts_count_as_prompts() -> None:
    policy = replace(POLICY, idle_prompts_max=1)
    ctx, actions = run(answered(policy), m.CallerSilenceTimeout())
    assert ctx.state is State.LISTENING and ctx.idle_prompts == 1
    ctx, actions = m.step(ctx, m.CallerSilenceTimeout())
    assert ctx.state is State.ENDING
    ctx, actions = played_turn(ctx, "resp_1")
    assert ctx.state is State.ENDED and SendBye(EndCause.IDLE_CALLER) in actions


def test_idle_timer_firing_while_the_bot_talks_is_ignored() -> None:
    ctx, _ = run(answered(IDLE), BotReplyStarted("resp_1"), BotAudio("resp_1", "i", b"\xff" * 800))
    ctx2, actions = m.step(ctx, m.IdleTimeout())
    assert actions == [] and ctx2 == ctx
