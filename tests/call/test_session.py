"""CallSession against the real simulator: setup, turns, barge-in bytes, DTMF, tools, reconnect.

SIP and RTP are replaced by a recording CallControl and a real PlayoutQueue that the test drains
by hand (one `next_frame()` + `on_output_tick()` per simulated 20 ms tick), so every byte
counted as played is one the test "sent". The simulator's recorded client events are validated
against openai.types.realtime by the fixture at teardown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.call import machine as m
from gateway.call.causes import EndCause, bye_reason
from gateway.call.session import CallSession, SessionSettings
from gateway.media.jitter import Frame
from gateway.media.playout import FrameKind, PlayoutQueue
from gateway.observe.logs import record_fields
from gateway.realtime import protocol
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint
from gateway.realtime.simulator import Simulator, ToolCallRule
from tests.realtime.conftest import silence, speech_like


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.digits: list[str] = []
        self.refer_status = 202

    def answer(self) -> None:
        self.calls.append(("answer", None))

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        self.calls.append(("reject", (status, retry_after_s)))

    def hangup(self, cause: EndCause, text: str = "") -> None:
        reason = bye_reason(cause)
        self.calls.append(("hangup", text or reason.text))
        self.bye_status = reason.status

    async def refer(self, target_uri: str) -> int:
        self.calls.append(("refer", target_uri))
        return self.refer_status

    def send_digits(self, digits: str) -> None:
        self.digits.append(digits)

    def stop_media(self) -> None:
        self.calls.append(("stop_media", None))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


Session = tuple[CallSession, FakeControl, PlayoutQueue]


@pytest.fixture
async def make_session() -> AsyncIterator[Callable[..., Any]]:
    sessions: list[CallSession] = []

    async def factory(
        simulator: Simulator | None,
        url: str | None = None,
        input_burst_s: float = 3600.0,
        **policy: Any,
    ) -> Session:
        control = FakeControl()
        queue = PlayoutQueue()
        config = protocol.SessionConfig(
            turn_detection=protocol.ServerVad(silence_duration_ms=300),
            tools=(protocol.FunctionTool("end_call"), protocol.FunctionTool("lookup")),
        )
        endpoint = Endpoint.custom(url or (simulator.url if simulator else ""))
        budget = {
            k: policy.pop(k)
            for k in ("reconnect_budget", "reconnect_window_s", "append_s")
            if k in policy
        }
        # `speak` hands whole utterances over at once, far faster than real time (no clock
        # here); the real-time bound on caller audio is tested on its own below.
        settings = SessionSettings(
            endpoint,
            config,
            m.CallPolicy(**policy),
            input_burst_s=input_burst_s,
            backend=RealtimeBackend(),
            **budget,
        )
        session = CallSession("call-1", settings, control, queue)
        sessions.append(session)
        session.start()
        return session, control, queue

    yield factory
    for session in sessions:
        await session.close()


async def answered(sim: Simulator, make_session: Callable[..., Any], **policy: Any) -> Session:
    session, control, queue = await make_session(sim, **policy)
    await until(lambda: "answer" in control.names())
    session.on_ack()
    assert session.ctx.state is m.State.LISTENING
    return session, control, queue


def speak(session: CallSession, audio: bytes) -> None:
    for i in range(0, len(audio), 160):
        session.on_audio([Frame(audio[i : i + 160], i)])


def tick(session: CallSession, queue: PlayoutQueue, frames: int) -> int:
    """Play `frames` ticks; return how many carried bot audio."""
    played = 0
    for _ in range(frames):
        frame = queue.next_frame()
        if frame is not None and frame.kind is FrameKind.AUDIO:
            played += 1
        session.on_output_tick()
    return played


async def test_answers_only_after_session_updated_with_the_g711_format(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, control, _ = await make_session(sim)
    await until(lambda: "answer" in control.names())
    simulated = await sim.wait_session()
    update = simulated.client_events_of("session.update")[0]
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session.ctx.state is m.State.ANSWERING


async def test_unreachable_realtime_rejects_with_503_retry_after(
    make_session: Callable[..., Any],
) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    _, control, _ = await make_session(None, url="ws://127.0.0.1:9/v1/realtime")
    await until(lambda: "reject" in control.names())
    assert ("reject", (503, 30)) in control.calls
    assert "answer" not in control.names()


async def test_caller_turn_gets_the_bot_reply_and_playout_drains(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, _, queue = await answered(sim, make_session)
    utterance = speech_like(800)
    speak(session, silence(200) + utterance + silence(600))
    await until(lambda: queue.queued_bytes > 0)
    await until(lambda: session.ctx.reply_id is None)  # response.done: all deltas in
    received = sum(session.ctx.received_bytes.values())
    assert received > 0
    assert session.ctx.state is m.State.BOT_SPEAKING
    tick(session, queue, received // 160 + 3)
    assert session.ctx.state is m.State.LISTENING


async def test_turn_taking_states_are_debug_lines_setup_and_end_info(
    sim: Simulator, make_session: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14: `call.state` between listening, caller_speaking and bot_speaking (three or
    four a turn) is DEBUG; the setup states and the end are INFO; the call record's timeline
    (`transitions`) keeps every state either way."""
    with caplog.at_level(logging.DEBUG, logger="gateway.call"):
        session, _, queue = await answered(sim, make_session)
        speak(session, silence(200) + speech_like(800) + silence(600))
        await until(lambda: session.ctx.reply_id is None and queue.queued_bytes > 0)
        tick(session, queue, sum(session.ctx.received_bytes.values()) // 160 + 3)
        assert session.ctx.state is m.State.LISTENING
        session.on_sip_ended("bye")
    lines = [
        (r.levelno, record_fields(r)["previous"], record_fields(r)["state"])
        for r in caplog.records
        if getattr(r, "event", "") == "call.state" and "previous" in record_fields(r)
    ]
    turn = {"listening", "caller_speaking", "bot_speaking"}
    assert {state for _, _, state in lines} >= turn | {"connecting", "answering", "ended"}
    for level, previous, state in lines:
        expected = logging.DEBUG if previous in turn and state in turn else logging.INFO
        assert level == expected, (previous, state, logging.getLevelName(level))
    timeline = [state for _, state in session.transitions]
    assert timeline == ["offered"] + [state for _, _, state in lines]


async def test_barge_in_truncates_at_the_bytes_played(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, _, queue = await answered(sim, make_session)
    speak(session, silence(200) + speech_like(2000) + silence(600))
    await until(lambda: session.ctx.reply_id is None and queue.queued_bytes > 0)
    item_id = next(iter(session.ctx.received_bytes))
    played_frames = tick(session, queue, 25)  # the caller hears 500 ms
    assert played_frames == 25
    played = queue.played_bytes(item_id)
    speak(session, speech_like(600, seed=2))  # the caller talks over the bot
    await until(lambda: session.ctx.state is m.State.CALLER_SPEAKING)
    assert queue.queued_bytes == 0  # flushed within the same event
    simulated = await sim.wait_session()
    await until(lambda: bool(simulated.client_events_of("conversation.item.truncate")))
    truncate = simulated.client_events_of("conversation.item.truncate")[0]
    assert truncate["item_id"] == item_id
    assert truncate["audio_end_ms"] == played // 8 == 500
    assert not simulated.client_events_of("response.cancel")  # tail: nothing to cancel


async def test_a_later_turn_does_not_barge_in_on_an_item_already_cut(
    sim_factory: Callable[..., Any], make_session: Callable[..., Any]
) -> None:
    """The item a barge-in cut is forgotten by the playout queue: the caller's next turn must
    not truncate it a second time (nor count a second barge-in for it). Before, the cut item
    stayed the queue's playing item, never complete (its reply was discarded), so every later
    speech_started sent the same conversation.item.truncate again."""
    # Deltas paced in real time: the reply is still streaming when the caller talks over it,
    # so its audio.done comes after the barge-in, for a discarded reply.
    sim = await sim_factory(realtime_pace=1.0, default_reply_ms=3000)
    session, _, queue = await answered(sim, make_session)
    speak(session, silence(200) + speech_like(800) + silence(600))
    await until(lambda: session.ctx.reply_id is not None and queue.queued_bytes >= 4000)
    first = next(iter(session.ctx.received_bytes))
    tick(session, queue, 10)
    speak(session, speech_like(600, seed=2) + silence(800))  # barge-in, then the turn ends
    simulated = await sim.wait_session()
    await until(lambda: len(simulated.client_events_of("conversation.item.truncate")) == 1)
    assert first not in queue.pending_items()
    await until(lambda: session.ctx.state is not m.State.CALLER_SPEAKING)
    speak(session, speech_like(600, seed=3))  # the caller's next turn
    await until(lambda: session.ctx.state is m.State.CALLER_SPEAKING)
    # Whatever the session sent on that speech_started precedes these appends on the socket.
    sent = len(simulated.client_events_of("input_audio_buffer.append"))
    speak(session, silence(200))
    await until(lambda: len(simulated.client_events_of("input_audio_buffer.append")) > sent)
    cut = [
        e["item_id"]
        for kind in ("conversation.item.truncate", "conversation.item.delete")
        for e in simulated.client_events_of(kind)
    ]
    assert cut.count(first) == 1, cut
    assert session.stats.truncates + session.stats.deletes == len(cut)


async def test_dtmf_digits_reach_the_model_as_text(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, _, _ = await answered(sim, make_session)
    for digit in "12#":
        session.on_dtmf(digit, "rfc4733")
    simulated = await sim.wait_session()
    await until(lambda: bool(simulated.client_events_of("response.create")))
    items = simulated.client_events_of("conversation.item.create")
    assert items[0]["item"]["content"][0]["text"] == "The caller pressed 1 2 #"


async def test_scripted_end_call_hangs_up_after_playout(
    sim_factory: Callable[..., Any], make_session: Callable[..., Any]
) -> None:
    sim = await sim_factory(tool_calls=(ToolCallRule("end_call", {}, on_turn=1),))
    session, control, queue = await answered(sim, make_session)
    speak(session, silence(200) + speech_like(600) + silence(600))
    await until(lambda: session.ctx.state in (m.State.ENDING, m.State.ENDED))
    tick(session, queue, 200)
    await until(lambda: "hangup" in control.names())
    assert ("hangup", "end_call") in control.calls


async def test_custom_tool_failure_goes_back_to_the_model(
    sim_factory: Callable[..., Any], make_session: Callable[..., Any]
) -> None:
    sim = await sim_factory(tool_calls=(ToolCallRule("lookup", {"id": 7}, on_turn=1),))
    session, _, _queue = await answered(sim, make_session)
    speak(session, silence(200) + speech_like(600) + silence(600))
    simulated = await sim.wait_session()
    await until(lambda: bool(simulated.client_events_of("conversation.item.create")), 10)
    output = simulated.client_events_of("conversation.item.create")[0]["item"]
    assert output["type"] == "function_call_output"
    assert "unknown tool lookup" in output["output"]  # no URL configured for it here


async def test_websocket_drop_reconnects_and_the_next_turn_works(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, control, queue = await answered(sim, make_session)
    first = await sim.wait_session()
    sim.drop_session(first.id)
    second = await sim.wait_session(2)
    await until(lambda: session.stats.reconnects == 1)
    assert second.client_events_of("session.update")
    speak(session, silence(200) + speech_like(600) + silence(600))
    await until(lambda: queue.queued_bytes > 0)
    assert "hangup" not in control.names()


async def test_a_service_dropping_every_session_ends_the_call_past_the_budget(
    sim_factory: Callable[..., Any], make_session: Callable[..., Any]
) -> None:
    sim = await sim_factory(drop_after_s=0.5)
    session, control, _ = await answered(sim, make_session, reconnect_budget=2)
    await until(lambda: "hangup" in control.names(), 10)
    # Two reconnects (the budget), then the third loss ends the call: 1 + 2 sessions.
    assert session.stats.reconnects == 2
    assert len(sim.sessions) == 3
    assert ("hangup", "voice session unavailable") in control.calls
    assert control.bye_status == 503
    assert session.ctx.state is m.State.ENDED
    assert session.ctx.hangup_cause == "voice session unavailable"


async def test_reconnect_attempts_back_off_and_stop_at_the_budget(
    make_session: Callable[..., Any], sim: Simulator
) -> None:
    session, control, _ = await answered(sim, make_session, reconnect_budget=3)
    session.settings.endpoint = Endpoint.custom("ws://127.0.0.1:9/v1/realtime")  # refused
    attempts = 0
    real_connect = session._connect

    async def counting_connect() -> Any:
        nonlocal attempts
        attempts += 1
        return await real_connect()

    waits: list[float] = []

    async def no_wait(seconds: float) -> None:  # the backoff asked for, without waiting it
        waits.append(seconds)

    session._connect = counting_connect  # type: ignore[method-assign]
    session._backoff_sleep = no_wait
    first = await sim.wait_session()
    sim.drop_session(first.id)
    await until(lambda: "hangup" in control.names(), 10)
    assert attempts == 3  # the budget, then BYE: no fourth attempt
    assert waits == [0.2, 1.0]  # the first attempt at once, then backing off
    assert control.bye_status == 503


async def test_hold_keeps_audio_time_running_without_counting_a_gap_twice(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, _, queue = await answered(sim, make_session)
    speak(session, silence(100))  # RTP flows...
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 0.8:  # ...then stops (hold): 0.8 s of ticks, no audio
        tick(session, queue, 1)
        await asyncio.sleep(0.02)
    filled = session.stats.silence_filled_bytes
    # Audio time trails real time by the fill threshold (0.3 s) plus at most a frame: the
    # 100 ms spoken before the hold went in at once, so 0.8 - 0.3 - 0.1 s were filled.
    assert filled >= (0.8 - 0.3 - 0.1 - 0.04) * 8000, filled
    # RTP resumes and the jitter buffer releases concealment for the whole 0.8 s gap: what
    # the fill already covered is dropped (no stretch of time reaches the model twice), real
    # audio always goes through.
    gap = [Frame(b"\xff" * 160, i * 160, concealed=True) for i in range(40)]
    before = session._audio_samples
    session.on_audio([*gap, Frame(b"\x00" * 160, 6400)])
    dropped = session.stats.fill_overlap_dropped_bytes
    assert dropped >= filled - 2 * 160, (dropped, filled)
    assert session._audio_samples - before == 41 * 160 - dropped
    simulated = await sim.wait_session()
    await until(lambda: bool(simulated.client_events_of("input_audio_buffer.append")))


async def test_drop_mid_answer_replays_what_the_bot_had_said(
    sim_factory: Callable[..., Any], make_session: Callable[..., Any]
) -> None:
    sim = await sim_factory(
        reply_text="alpha bravo charlie delta echo foxtrot golf hotel india juliet",
        delta_interval_s=0.05,  # a slow answer, so the socket can die in the middle of it
    )
    session, _, _ = await answered(sim, make_session)
    speak(session, silence(200) + speech_like(600) + silence(600))
    await until(lambda: bool(session._partial_transcripts))
    first = await sim.wait_session()
    sim.drop_session(first.id)
    second = await sim.wait_session(2)
    await until(lambda: session.stats.reconnects == 1)
    replayed = [
        e["item"]
        for e in second.client_events_of("conversation.item.create")
        if e["item"].get("role") == "assistant"
    ]
    assert replayed, second.client_events_of("conversation.item.create")
    text = replayed[-1]["content"][0]["text"]
    assert text.startswith("alpha") and text.endswith("[cut off]"), text


# -- billing safety (issue 9) -------------------------------------------------------------------


class FakeTime:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_nothing_is_appended_before_the_callers_first_audio(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    """An answered call whose caller sends no RTP: seconds of output ticks append nothing,
    not even hold-fill silence; the first caller frame starts audio time."""
    session, _, queue = await answered(sim, make_session)
    clock = session._now = FakeTime()
    for _ in range(250):  # 5 s of ticks
        clock.now += 0.02
        tick(session, queue, 1)
    assert session.stats.audio_appended_bytes == 0
    assert session.stats.silence_filled_bytes == 0
    session.on_audio([Frame(b"\x00" * 160, 0)])
    assert session.stats.audio_appended_bytes == 160
    clock.now += 1.0  # then RTP stops: hold-filling runs from the first frame's time on
    tick(session, queue, 1)
    assert session.stats.silence_filled_bytes > 0
    simulated = await sim.wait_session()
    await until(lambda: bool(simulated.client_events_of("input_audio_buffer.append")))


async def test_ack_starts_audio_time_when_the_caller_will_never_send(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, control, queue = await make_session(sim)
    await until(lambda: "answer" in control.names())
    clock = session._now = FakeTime()
    clock.now += 2.0
    tick(session, queue, 1)
    assert session.stats.silence_filled_bytes == 0  # answered, no ACK yet: nothing
    session.on_ack(caller_sends=False)  # we are sendonly/inactive: no RTP will come
    clock.now += 1.0
    tick(session, queue, 1)
    assert session.stats.silence_filled_bytes == int((1.0 - 0.25) * 8000) // 160 * 160


async def test_caller_audio_never_runs_ahead_of_real_time_by_more_than_the_burst(
    sim: Simulator, make_session: Callable[..., Any]
) -> None:
    session, _, _ = await answered(sim, make_session, input_burst_s=0.2)
    clock = session._now = FakeTime()
    # 10x real time for 2 s: 1000 frames of 20 ms, 5 per 10 ms of fake time.
    for i in range(1000):
        if i % 5 == 0:
            clock.now += 0.01
        session.on_audio([Frame(b"\x00" * 160, i * 160)])
    appended = session.stats.audio_appended_bytes
    assert appended <= (2.0 + 0.2) * 8000
    assert appended >= (2.0 + 0.2) * 8000 - 2 * 160
    assert session.stats.input_rate_dropped_bytes == 1000 * 160 - appended
    # Concealment in one release (a timestamp-jump trick) is bounded the same way.
    clock.now += 1.0
    before = session.stats.audio_appended_bytes
    session.on_audio([Frame(b"\xff" * 160, 0, concealed=True)] * 500)
    assert session.stats.audio_appended_bytes - before <= 1.0 * 8000 + 160


async def test_playout_overflow_is_counted_and_logged_once_per_item(
    sim: Simulator, make_session: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    session, _, _ = await answered(sim, make_session)
    session.queue = PlayoutQueue(max_queued_bytes=1600)
    for _ in range(5):
        session._execute(m.EnqueueAudio("item-x", b"\x01" * 800))
    assert session.stats.playout_overflow_bytes == 3 * 800
    warnings = [r for r in caplog.records if "playout bound" in r.getMessage()]
    assert len(warnings) == 1


def test_mcp_events_are_logged_and_observed(caplog: pytest.LogCaptureFixture) -> None:
    """MCP activity (the service calls the MCP server itself) reaches the log and the observer
    (the call record), summarised; the machine sees nothing of it."""
    from gateway.realtime.mcp import McpEvent

    seen: list[tuple[str, dict[str, Any]]] = []
    settings = SessionSettings(
        Endpoint.custom("ws://127.0.0.1:9"),
        protocol.SessionConfig(),
        m.CallPolicy(),
        backend=RealtimeBackend(),
    )
    session = CallSession(
        "call-mcp",
        settings,
        FakeControl(),
        PlayoutQueue("PCMU"),
        observe=lambda kind, fields: seen.append((kind, fields)),
    )
    failed = {"type": "response.mcp_call.failed", "event_id": "e1", "item_id": "mc_1"}
    with caplog.at_level("INFO"):
        assert session._translate(McpEvent(failed["type"], failed)) is None
    assert seen and seen[0][0] == "mcp" and seen[0][1]["event"] == "mcp.call"
    assert seen[0][1]["item_id"] == "mc_1"
    lines = [r for r in caplog.records if getattr(r, "event", "") == "mcp.call"]
    assert lines and lines[0].levelname == "WARNING"
    assert record_fields(lines[0])["call_id"] == "call-mcp"


def test_usage_reported_with_a_reply_or_on_its_own_is_counted_once_each() -> None:
    """Realtime reports token usage with the reply's end; a backend may report it on its own
    (gateway/voice.py UsageReported): both reach the statistics and the observer."""
    from gateway import voice as v

    seen: list[tuple[str, dict[str, Any]]] = []
    settings = SessionSettings(
        Endpoint.custom("ws://127.0.0.1:9"),
        protocol.SessionConfig(),
        m.CallPolicy(),
        backend=RealtimeBackend(),
    )
    session = CallSession(
        "call-usage",
        settings,
        FakeControl(),
        PlayoutQueue("PCMU"),
        observe=lambda kind, fields: seen.append((kind, fields)),
    )
    tokens = {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    done = v.BotReplyDone("resp_1", v.REPLY_COMPLETED, usage=tokens)
    assert session._on_report(done) is done
    assert session._on_report(v.UsageReported(tokens)) is None
    assert session.stats.usage == {"input_tokens": 6, "output_tokens": 8, "total_tokens": 14}
    assert [fields for kind, fields in seen if kind == "usage"] == [tokens, tokens]
