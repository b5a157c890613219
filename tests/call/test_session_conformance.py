"""CallSession survives what the real service does (issue 10), against the simulator doing it:
transcription after response.created (replay order), a preamble before a tool call, two tool
calls in one response, a gateway barge-in while deltas still arrive (cancel before truncate),
failed responses, idle callers, a setup error that names no parameter.

Same harness as test_session.py: a recording CallControl and a PlayoutQueue drained by hand.
Every client event is validated against openai.types.realtime by the fixture at teardown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.call import machine as m
from gateway.call.session import REPLAY_TRANSCRIPTION_MODEL, CallSession, SessionSettings
from gateway.media.playout import PlayoutQueue
from gateway.realtime import protocol
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint
from gateway.realtime.simulator import Simulator, ToolCallRule
from tests.call.test_session import FakeControl, speak, tick, until
from tests.realtime.conftest import silence, speech_like

Session = tuple[CallSession, FakeControl, PlayoutQueue]
TOOLS = (protocol.FunctionTool("end_call"), protocol.FunctionTool("lookup"))


@pytest.fixture
async def make_call() -> AsyncIterator[Callable[..., Any]]:
    sessions: list[CallSession] = []

    async def factory(
        sim: Simulator,
        *,
        observed: list[tuple[str, dict[str, Any]]] | None = None,
        config: protocol.SessionConfig | None = None,
        answer: bool = True,
        **policy: Any,
    ) -> Session:
        control = FakeControl()
        queue = PlayoutQueue()
        config = config or protocol.SessionConfig(
            turn_detection=protocol.ServerVad(silence_duration_ms=300), tools=TOOLS
        )
        settings = SessionSettings(
            Endpoint.custom(sim.url),
            config,
            m.CallPolicy(**policy),
            input_burst_s=3600.0,
            backend=RealtimeBackend(),
        )

        def observe(kind: str, fields: dict[str, Any]) -> None:
            if observed is not None:
                observed.append((kind, fields))

        session = CallSession("call-10", settings, control, queue, observe=observe)
        sessions.append(session)
        session.start()
        if answer:
            await until(lambda: "answer" in control.names())
            session.on_ack()
        return session, control, queue

    yield factory
    for session in sessions:
        await session.close()


def turn(seed: int = 1) -> bytes:
    return silence(200) + speech_like(600, seed=seed) + silence(600)


async def play_out(session: CallSession, queue: PlayoutQueue) -> None:
    """Wait for the current response to finish, then play everything queued."""
    await until(lambda: session.ctx.reply_id is None and queue.queued_bytes > 0)
    tick(session, queue, queue.queued_bytes // 160 + 3)
    assert queue.queued_bytes == 0


def wire_order(sim_session: Any, *kinds: str) -> list[str]:
    return [r.type for r in sim_session.client_events if r.type in kinds]


# ---- history and replay ----------------------------------------------------------------------


async def test_replay_is_in_item_order_when_transcription_comes_after_the_answer(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    """The caller's text arrives after response.created (and, here, after the bot's own
    transcript): the replay into a new session must still be caller, bot, caller, bot. And no
    transcription model is configured: the gateway turns one on for replay only."""
    sim = await sim_factory(
        transcription_timing="after",
        transcripts=("first question", "second question"),
        reply_text="an answer",
    )
    session, _, queue = await make_call(sim)
    first = await sim.wait_session()
    update = first.client_events_of("session.update")[0]["session"]
    assert update["audio"]["input"]["transcription"]["model"] == REPLAY_TRANSCRIPTION_MODEL
    for seed in (1, 2):
        speak(session, turn(seed))
        await play_out(session, queue)
    order = [r.type for r in first.server_events]
    created = order.index("response.created")
    assert order.index("conversation.item.input_audio_transcription.completed") > created
    sim.drop_session(first.id)
    second = await sim.wait_session(2)
    await until(lambda: session.stats.reconnects == 1)
    await until(lambda: len(second.client_events_of("conversation.item.create")) >= 4)
    replayed = [
        (e["item"]["role"], e["item"]["content"][0]["text"])
        for e in second.client_events_of("conversation.item.create")
    ]
    assert replayed == [
        ("user", "first question"),
        ("assistant", "an answer"),
        ("user", "second question"),
        ("assistant", "an answer"),
    ]


async def test_replay_only_transcripts_are_not_emitted_as_transcripts(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(transcripts=("private words",), reply_text="ok")
    observed: list[tuple[str, dict[str, Any]]] = []
    session, _, queue = await make_call(sim, observed=observed)
    speak(session, turn())
    await play_out(session, queue)
    speakers = [f["speaker"] for kind, f in observed if kind == "transcript"]
    assert speakers == ["bot"]  # the caller's text is kept for replay, never recorded
    assert [t.text for t in session.history] == ["private words", "ok"]


# ---- several output items in one response ------------------------------------------------------


async def test_preamble_then_tool_call_plays_the_preamble_and_creates_one_response(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(tool_calls=(ToolCallRule("lookup", {}, on_turn=1, preamble_ms=600),))
    session, _, _queue = await make_call(sim)
    speak(session, turn())
    simulated = await sim.wait_session()
    await until(lambda: len(simulated.responses) == 2 and simulated.responses[1].done, 10)
    preamble = simulated.responses[0].output[0]
    assert preamble.type == "message" and session.ctx.received_bytes[preamble.id] == 600 * 8
    assert wire_order(simulated, "conversation.item.create", "response.create") == [
        "conversation.item.create",  # the tool's output (no URL here: an error for the model)
        "response.create",
    ]
    assert not simulated.server_events_of("error")


async def test_two_tool_calls_in_one_response_get_one_response_create_after_both(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    rules = (
        ToolCallRule("lookup", {"q": 1}, on_turn=1),
        ToolCallRule("weather", {"city": "x"}, on_turn=1),
    )
    sim = await sim_factory(tool_calls=rules, parallel_tool_calls=True)
    config = protocol.SessionConfig(
        turn_detection=protocol.ServerVad(silence_duration_ms=300),
        tools=(*TOOLS, protocol.FunctionTool("weather")),
    )
    session, _, _ = await make_call(sim, config=config)
    speak(session, turn())
    simulated = await sim.wait_session()
    await until(lambda: len(simulated.responses) == 2 and simulated.responses[1].done, 10)
    assert wire_order(simulated, "conversation.item.create", "response.create") == [
        "conversation.item.create",
        "conversation.item.create",
        "response.create",
    ]
    outputs = [e["item"]["call_id"] for e in simulated.client_events_of("conversation.item.create")]
    calls = [i.call_id for i in simulated.responses[0].output]
    assert sorted(outputs) == sorted(calls) and len(calls) == 2
    assert not simulated.server_events_of("error")
    assert session.ctx.pending_tool_calls == frozenset()


async def test_end_call_after_a_preamble_lets_the_preamble_finish(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(
        tool_calls=(ToolCallRule("end_call", {}, on_turn=1, preamble_ms=800),), realtime_pace=4.0
    )
    session, control, queue = await make_call(sim)
    speak(session, turn())
    simulated = await sim.wait_session()
    await until(lambda: session.ctx.state is m.State.ENDING, 10)
    preamble = simulated.responses[0].output[0].id
    await until(lambda: simulated.responses[0].done)
    assert "hangup" not in control.names()  # the preamble is still to be heard
    while "hangup" not in control.names():
        tick(session, queue, 1)
        await asyncio.sleep(0)
    assert ("hangup", "end_call") in control.calls
    assert queue.played_bytes(preamble) == 800 * 8  # all of it went out before the BYE


# ---- gateway-initiated barge-in ------------------------------------------------------------------


async def test_dtmf_barge_in_cancels_before_truncating_and_drops_late_deltas(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(default_reply_ms=20000, realtime_pace=1.0, late_deltas=2)
    session, _, queue = await make_call(sim)
    session.say("talk for a long time", role="user")
    await until(lambda: queue.queued_bytes >= 1600)
    tick(session, queue, 10)  # the caller hears 200 ms
    session.on_dtmf("5", "rfc4733")
    assert queue.queued_bytes == 0
    simulated = await sim.wait_session()
    await until(lambda: simulated.responses[0].done, 10)
    assert wire_order(
        simulated, "response.cancel", "conversation.item.truncate", "conversation.item.delete"
    )[:2] == ["response.cancel", "conversation.item.truncate"]
    truncate = simulated.client_events_of("conversation.item.truncate")[0]
    assert truncate["audio_end_ms"] == 200
    assert simulated.responses[0].late_deltas_sent >= 1  # deltas after the cancel arrived
    assert queue.queued_bytes == 0  # ... and were dropped by response id
    assert not [e for e in simulated.server_events_of("error")]


# ---- failed and incomplete responses -------------------------------------------------------------


async def test_a_failed_response_is_answered_by_a_retry_and_counted(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(response_outcomes=("failed",), default_reply_ms=300)
    observed: list[tuple[str, dict[str, Any]]] = []
    session, control, queue = await make_call(sim, observed=observed)
    speak(session, turn())
    simulated = await sim.wait_session()
    await until(lambda: len(simulated.responses) == 2 and simulated.responses[1].done, 10)
    retry = simulated.client_events_of("response.create")[0]
    assert retry["response"]["instructions"] == m.CallPolicy().failed_response_instructions
    await until(lambda: queue.queued_bytes > 0)  # the caller hears the retried answer
    # The simulator has sent the retry's response.done, but the call may still be reading it
    # (its deltas come first): wait for the second response_done before reading the statuses.
    await until(lambda: sum(kind == "response_done" for kind, _ in observed) >= 2)
    statuses = [f["status"] for kind, f in observed if kind == "response_done"]
    assert statuses == ["failed", "completed"]
    assert "hangup" not in control.names()


async def test_responses_that_keep_failing_end_the_call_with_503(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(response_outcomes=("failed", "incomplete_silent"))
    session, control, _ = await make_call(sim)
    speak(session, turn())
    await until(lambda: "hangup" in control.names(), 10)
    assert control.bye_status == 503
    assert session.ctx.hangup_cause == m.VOICE_SESSION_UNAVAILABLE


# ---- idle callers -----------------------------------------------------------------------------------


async def test_an_idle_caller_is_prompted_then_hung_up_on_politely_with_semantic_vad(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(default_reply_ms=200)
    config = protocol.SessionConfig(turn_detection=protocol.SemanticVad(), tools=TOOLS)
    observed: list[tuple[str, dict[str, Any]]] = []
    session, control, queue = await make_call(
        sim, config=config, observed=observed, idle_prompt_s=0.2, idle_prompts_max=1
    )
    while "hangup" not in control.names():  # the caller never says a word
        tick(session, queue, 1)
        await asyncio.sleep(0.005)
    assert ("hangup", "idle caller") in control.calls
    simulated = await sim.wait_session()
    instructions = [
        e["response"]["instructions"] for e in simulated.client_events_of("response.create")
    ]
    policy = m.CallPolicy()
    assert instructions == [policy.idle_prompt_instructions, policy.idle_goodbye_instructions]
    assert [f["source"] for kind, f in observed if kind == "idle"] == ["prompt", "hangup"]


async def test_server_idle_timeouts_are_counted(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    sim = await sim_factory(default_reply_ms=200)
    config = protocol.SessionConfig(
        turn_detection=protocol.ServerVad(silence_duration_ms=300, idle_timeout_ms=500)
    )
    observed: list[tuple[str, dict[str, Any]]] = []
    session, control, queue = await make_call(sim, config=config, observed=observed)
    session.say("hello", role="user")  # server_vad's idle timer starts at a response.done
    await play_out(session, queue)
    speak(session, silence(1500))  # then the caller says nothing: only audio time passes
    await until(lambda: ("idle", {"source": "server"}) in observed)
    assert session.ctx.idle_prompts == 1
    assert "hangup" not in control.names()


# ---- setup -------------------------------------------------------------------------------------------


async def test_setup_error_naming_no_parameter_rejects_at_once(
    sim_factory: Callable[..., Any], make_call: Callable[..., Any]
) -> None:
    error = {"type": "server_error", "code": None, "message": "The server had an error."}
    sim = await sim_factory(session_update_error=error)
    _, control, _ = await make_call(sim, answer=False, setup_timeout_s=60.0)
    # Well inside the 60 s setup timeout: the error itself failed the setup.
    await until(lambda: "reject" in control.names(), 5.0)
    assert ("reject", (503, 30)) in control.calls
