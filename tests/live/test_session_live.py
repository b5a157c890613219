"""CallSession with the GPT-Live backend against the in-test Live server (tests/tools/
fake_live.py): setup, greeting, replies cut by silence, tools through delegation, end_call,
DTMF, reconnect and rollover seeded with the conversation, session.closed reasons, usage, the
shallow playout queue. Every client event the session sends is validated against
openai.types.live by the server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.call import machine as m
from gateway.call.causes import EndCause, bye_reason
from gateway.call.session import (
    LIVE_PLAYOUT_SLACK_BYTES,
    LIVE_PLAYOUT_START_DELAY_FRAMES,
    CallSession,
    SessionSettings,
)
from gateway.live import protocol as lp
from gateway.live.backend import LiveBackend
from gateway.live.translate import REPLY_END_SILENCE_MS
from gateway.media.playout import FrameKind, PlayoutQueue
from gateway.wsock import Endpoint
from tests.call.test_session import FakeControl, tick, until
from tests.tools.fake_live import FakeLive, fake_live
from tests.tools.live_call import begin_live_call, live_session, silence, tone

TOOLS = (lp.LiveFunctionTool("end_call"), lp.LiveFunctionTool("lookup"))


Live = tuple[CallSession, FakeControl, PlayoutQueue, FakeLive]


@pytest.fixture
async def live_call() -> AsyncIterator[Callable[..., Any]]:
    sessions: list[CallSession] = []
    servers: list[Any] = []

    async def factory(
        *,
        tools: tuple[lp.LiveFunctionTool, ...] = TOOLS,
        answer: bool = True,
        server_options: dict[str, Any] | None = None,
        **policy: Any,
    ) -> Live:
        manager = fake_live(**(server_options or {}))
        server = await manager.__aenter__()
        servers.append(manager)
        control = FakeControl()
        queue = PlayoutQueue()
        session = live_session(server.url, "call-live", control, queue, tools, policy)
        sessions.append(session)
        await begin_live_call(session, control, answer)
        return session, control, queue, server

    yield factory
    for session in sessions:
        await session.close()
    for manager in servers:
        await manager.__aexit__(None, None, None)


async def test_setup_sends_session_start_and_answers_after_started(live_call: Any) -> None:
    session, control, _, server = await live_call()
    start = server.of_type("session.start")[0]["session"]
    assert start["audio"]["format"] == {"type": "audio/pcmu", "rate": 8000}
    assert start["delegation"]["type"] == "responses"
    assert control.names()[0] == "answer"
    assert session.ctx.state is m.State.LISTENING
    await server.wait(lambda: server.of_type("session.input_audio.append"))


async def test_an_error_before_started_rejects_with_503(live_call: Any) -> None:
    refuse = {"type": "invalid_request_error", "code": "unknown_parameter", "message": "bad"}
    session, control, _, _ = await live_call(server_options={"refuse": refuse}, retry_after_s=7)
    assert control.calls[0] == ("reject", (503, 7))
    assert session.ctx.state is m.State.ENDED


async def test_greeting_is_an_instructions_append_after_the_ack(live_call: Any) -> None:
    _, _, _, server = await live_call(greeting="Greet the caller.")
    await server.wait(lambda: server.of_type("session.instructions.append"))
    append = server.of_type("session.instructions.append")[0]
    assert append == {
        "type": "session.instructions.append",
        "content": "Greet the caller.",
        "delegation_id": None,
    }


async def test_a_reply_plays_byte_for_byte_and_ends_on_silence(live_call: Any) -> None:
    session, _, queue, server = await live_call()
    speech = tone(100)
    await server.audio(silence(100))  # silence outside a reply: dropped
    await server.audio(speech)
    await until(lambda: session.ctx.state is m.State.BOT_SPEAKING)
    assert session.ctx.reply_id is not None
    # The talkspurt starts LIVE_PLAYOUT_START_DELAY_FRAMES ticks after its audio arrived (a
    # jitter margin), then plays every byte.
    for _ in range(LIVE_PLAYOUT_START_DELAY_FRAMES):
        frame = queue.next_frame()
        assert frame is not None and frame.kind is FrameKind.SILENCE
        session.on_output_tick()
    played = b""
    for _ in range(5):
        frame = queue.next_frame()
        assert frame is not None
        played += frame.payload
        session.on_output_tick()
    assert played == speech
    await server.audio(silence(REPLY_END_SILENCE_MS))
    await until(lambda: session.ctx.reply_id is None)
    tick(session, queue, REPLY_END_SILENCE_MS // 20 + 2)
    assert session.ctx.state is m.State.LISTENING


async def test_the_playout_queue_stays_shallow(live_call: Any) -> None:
    session, _, queue, server = await live_call()
    for _ in range(5):  # 500 ms arriving at once: the oldest excess is dropped
        await server.audio(tone(100))
    await until(lambda: session.stats.playout_trimmed_bytes > 0)
    assert queue.queued_bytes <= 800 + LIVE_PLAYOUT_SLACK_BYTES


async def test_tool_call_result_goes_back_then_response_create(
    live_call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _, _, server = await live_call()

    async def fake_tool(*args: Any, **kwargs: Any) -> str:
        return '{"ok": true, "status": "shipped"}'

    monkeypatch.setattr("gateway.call.session.call_http_tool", fake_tool)
    session.settings.http_tools = {"lookup": object()}  # type: ignore[dict-item]
    await server.delegation("item_1")
    await server.function_call("call_1", "lookup", '{"order": "42"}')
    await server.wait(lambda: server.of_type("response.create"))
    output = server.of_type("response.item.create")[0]["item"]
    assert output == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"ok": true, "status": "shipped"}',
    }
    # No reply request of our own after the result: the backend continues by itself.
    assert not server.of_type("session.instructions.append")


async def test_end_call_answers_then_byes_after_the_goodbye(live_call: Any) -> None:
    session, control, queue, server = await live_call()
    await server.function_call("call_end", "end_call", "{}")
    await server.wait(lambda: server.of_type("response.create"))
    assert server.of_type("response.item.create")[0]["item"]["output"] == '{"status": "ending"}'
    assert session.ctx.state is m.State.ENDING
    await server.audio(tone(100))  # the goodbye
    await until(lambda: session.ctx.reply_id is not None)
    tick(session, queue, 8)  # the queue runs empty between deltas: no BYE yet
    assert "hangup" not in control.names()
    await server.audio(silence(REPLY_END_SILENCE_MS))
    await until(lambda: session.ctx.reply_id is None)
    tick(session, queue, REPLY_END_SILENCE_MS // 20 + 2)
    await until(lambda: "hangup" in control.names())
    # session.close went out and was answered before the BYE.
    assert server.types()[-1] == "session.close"
    assert control.calls[-1] == ("hangup", bye_reason(EndCause.END_CALL).text)


async def test_dtmf_reaches_the_model_as_text(live_call: Any) -> None:
    session, _, _, server = await live_call(inter_digit_timeout_s=0.05)
    session.on_dtmf("4", "rfc4733")
    session.on_dtmf("2", "rfc4733")
    session.on_dtmf("#", "rfc4733")
    await server.wait(lambda: server.of_type("session.thinking.append"))
    thinking = server.of_type("session.thinking.append")[0]
    assert thinking["content"] == "The caller pressed 4 2 #"
    # Responses mode: the digits as user data for the backend too, then a reply request.
    await server.wait(lambda: server.of_type("session.instructions.append"))
    assert server.of_type("response.item.create")[0]["item"]["role"] == "user"


async def test_dropped_socket_opens_a_new_session_seeded_with_the_conversation(
    live_call: Any,
) -> None:
    session, _, queue, server = await live_call()
    await server.transcript("input", "What are your hours?")
    await server.audio(tone(60))
    await until(lambda: session.ctx.reply_id is not None)
    await server.transcript("output", "We open at nine.")
    await server.audio(silence(REPLY_END_SILENCE_MS))
    await until(lambda: session.ctx.reply_id is None)
    tick(session, queue, 40)
    assert session.ctx.state is m.State.LISTENING
    server.connections[0].transport.abort()
    await until(lambda: session.stats.reconnects == 1)
    starts = server.of_type("session.start")
    assert len(starts) == 2
    history = starts[1]["session"]["input"]
    assert [(i["role"], i["content"][0]["text"]) for i in history] == [
        ("user", "What are your hours?"),
        ("assistant", "We open at nine."),
    ]
    assert session.ctx.state is m.State.LISTENING
    await server.audio(tone(60), connection=1)  # the next turn works on the new session
    await until(lambda: session.ctx.state is m.State.BOT_SPEAKING)


async def test_content_close_ends_the_call_without_reconnecting(live_call: Any) -> None:
    session, control, _, server = await live_call()
    await server.closed("content")
    await until(lambda: "hangup" in control.names())
    assert session.ctx.hangup_cause == bye_reason(EndCause.VOICE_CONTENT_FILTER).text
    assert len(server.of_type("session.start")) == 1


async def test_expired_close_reconnects(live_call: Any) -> None:
    session, _, _, server = await live_call()
    await server.closed("expired")
    await until(lambda: session.stats.reconnects == 1)
    assert len(server.of_type("session.start")) == 2


async def test_rollover_before_expires_at(live_call: Any) -> None:
    session, _, _, server = await live_call(
        server_options={"expires_in_s": 2}, rollover_margin_s=300.0
    )
    # cap 2 s, margin capped at half of it: the rollover opens a new session after ~1 s.
    await server.wait(lambda: len(server.of_type("session.start")) == 2, within=10)
    await until(lambda: session.stats.rollovers == 1)
    assert server.of_type("session.close")  # the old one closed gracefully


async def test_usage_seconds_keep_the_latest_snapshot(live_call: Any) -> None:
    session, _, _, server = await live_call()
    await server.usage(15.0)
    await server.usage(30.5)
    await until(lambda: session.stats.voice_seconds == 30.5)


async def test_a_late_offer_codec_switch_opens_a_session_in_the_other_law(
    live_call: Any,
) -> None:
    session, _, _, server = await live_call()
    config = lp.LiveSessionConfig(audio_format="audio/pcma", tools=TOOLS)
    session.on_codec_answered("PCMA", config, PlayoutQueue("PCMA"))
    await server.wait(lambda: len(server.of_type("session.start")) == 2)
    second = server.of_type("session.start")[1]["session"]["audio"]["format"]
    assert second == {"type": "audio/pcma", "rate": 8000}


async def test_usage_seconds_reach_the_metrics_and_the_record() -> None:
    """The observer gets the increase of each session's latest snapshot (never the sum of
    snapshots); accounting turns it into srg_voice_session_seconds_total and the record."""
    from gateway.call import accounting
    from gateway.observe.metrics import Metrics
    from gateway.observe.records import CallRecord

    seen: list[tuple[str, dict[str, Any]]] = []
    settings = SessionSettings(
        Endpoint("ws://127.0.0.1:9"),
        lp.LiveSessionConfig(),
        m.CallPolicy(continuous_output=True),
        backend=LiveBackend(),
    )
    session = CallSession(
        "call-usage",
        settings,
        FakeControl(),
        PlayoutQueue(),
        observe=lambda k, f: seen.append((k, f)),
    )
    from gateway import voice as v

    session._on_report(v.UsageReported(session_seconds=15.0))
    session._on_report(v.UsageReported(session_seconds=30.0))
    session._on_report(v.UsageReported(session_seconds=30.0))  # unchanged: nothing new
    increases = [f["seconds"] for k, f in seen if k == "voice_seconds"]
    assert increases == [15.0, 15.0]
    assert session.stats.voice_seconds == 30.0

    class Live:
        pass

    live = Live()
    live.services = Live()  # type: ignore[attr-defined]
    live.services.metrics = Metrics()  # type: ignore[attr-defined]
    live.record = CallRecord("c", started_at=0.0)  # type: ignore[attr-defined]
    for kind, fields in seen:
        accounting.on_session_event(live, kind, fields)
    assert live.record.finish("remote_bye")["usage"]["session_seconds"] == 30.0  # type: ignore[attr-defined]
    body = live.services.metrics.render()[0]  # type: ignore[attr-defined]
    text = body.decode() if isinstance(body, bytes) else body
    assert "srg_voice_session_seconds_total 30.0" in text


async def test_silence_keeps_the_live_input_running_through_a_hold(live_call: Any) -> None:
    """GPT-Live's clock moves only while input arrives (reference section 2): when the caller's
    RTP stops (hold, outage) the session appends silence, so the session does not expire."""
    session, _, _, server = await live_call()
    clock = [0.0]
    session._now = lambda: clock[0]  # a fake loop clock for the hold-fill arithmetic
    session._audio_t0 = 0.0
    session._audio_samples = 0
    before = len(server.of_type("session.input_audio.append"))
    for step in range(1, 31):  # 3 s without a single RTP packet, ticked every 100 ms
        clock[0] = step * 0.1
        session.on_output_tick()
    expected = int((3.0 - 0.25) * 8000) // 160 * 160  # all but HOLD_FILL_AFTER_S, in frames
    await server.wait(
        lambda: (
            sum(
                len(e["audio"]) * 3 // 4
                for e in server.of_type("session.input_audio.append")[before:]
            )
            >= expected
        )
    )
    import base64

    sent = b"".join(
        base64.b64decode(e["audio"]) for e in server.of_type("session.input_audio.append")[before:]
    )
    assert set(sent) == {0xFF}  # u-law silence, the call's law
    assert session.stats.silence_filled_bytes == expected


async def test_a_delta_late_by_a_tick_leaves_no_gap_in_the_speech(live_call: Any) -> None:
    """GPT-Live paces deltas in real time: played at once, the queue would run empty just as
    the next one is due, and a delta late by a tick would put an idle frame inside the speech
    (seen end to end on a loaded machine). The start delay is the margin that absorbs it."""
    session, _, queue, server = await live_call()
    first, second = tone(100), tone(100)
    await server.audio(first)
    await until(lambda: queue.queued_bytes == len(first))
    frames: list[bytes] = []

    def play(ticks: int) -> None:
        for _ in range(ticks):
            frame = queue.next_frame()
            assert frame is not None
            frames.append(frame.payload)
            session.on_output_tick()

    play(6)  # the second 100 ms delta is due after 5 ticks: it comes one tick late
    await server.audio(second)
    await until(lambda: queue.queued_bytes > 160)
    play(6)
    start = next(i for i, payload in enumerate(frames) if payload != silence(20))
    assert b"".join(frames[start : start + 6]) == first + second[:160], "idle frame in speech"
    assert session.stats.playout_trimmed_bytes == 0


XFER_TOOLS = (*TOOLS, lp.LiveFunctionTool("transfer_call"))
OPERATOR = "sip:operator@192.0.2.9"


async def test_transfer_answers_then_refers_after_the_announcement_then_closes_and_byes(
    live_call: Any,
) -> None:
    session, control, queue, server = await live_call(
        tools=XFER_TOOLS, transfer_targets={"operator": OPERATOR}
    )
    await server.function_call("call_x", "transfer_call", '{"target": "operator"}')
    await server.wait(lambda: server.of_type("response.create"))
    output = server.of_type("response.item.create")[0]["item"]
    assert output == {
        "type": "function_call_output",
        "call_id": "call_x",
        "output": '{"status": "transferring", "target": "operator"}',
    }
    assert session.ctx.state is m.State.TRANSFERRING
    await server.audio(tone(100))  # "I'm transferring you now"
    await until(lambda: session.ctx.reply_id is not None)
    tick(session, queue, 8)  # the queue runs empty between deltas: no REFER yet
    assert "refer" not in control.names()
    await server.audio(silence(REPLY_END_SILENCE_MS))
    await until(lambda: session.ctx.reply_id is None)
    assert "refer" not in control.names()  # the announcement's tail is still queued
    tick(session, queue, REPLY_END_SILENCE_MS // 20 + 2)
    await until(lambda: "hangup" in control.names())
    # REFER (NOTIFY 2xx from the fake), then session.close answered, then the BYE.
    assert ("refer", OPERATOR) in control.calls
    assert control.calls[-1] == ("hangup", bye_reason(EndCause.TRANSFERRED).text)
    assert control.names().index("refer") < control.names().index("hangup")
    types = server.types()
    assert types[-1] == "session.close"
    assert types.index("response.item.create") < types.index("session.close")


async def test_a_refused_transfer_tells_the_model_and_keeps_the_call(live_call: Any) -> None:
    session, control, _, server = await live_call(
        tools=XFER_TOOLS, transfer_targets={"operator": OPERATOR}, goodbye_timeout_s=0.05
    )
    control.refer_status = 603
    await server.function_call("call_x", "transfer_call", '{"target": "operator"}')
    # The model stays silent: the goodbye timer caps the wait for its announcement.
    await until(lambda: "refer" in control.names())
    await server.wait(lambda: server.of_type("session.instructions.append"))
    thinking = [e["content"] for e in server.of_type("session.thinking.append")]
    assert "The transfer failed (SIP 603)." in thinking
    assert server.of_type("session.instructions.append")[-1]["content"].startswith(
        "The transfer did not go through."
    )
    assert len(server.of_type("response.item.create")) == 1  # no second output for the call
    assert session.ctx.state is m.State.LISTENING
    assert "hangup" not in control.names() and "session.close" not in server.types()


async def test_silence_keeps_flowing_until_the_close_completes(live_call: Any) -> None:
    """Reference 6: after NOTIFY 200, session.close, and silence until session.closed (the
    session clock moves only with input); the BYE waits for session.closed."""
    _, control, _, server = await live_call(
        tools=XFER_TOOLS,
        transfer_targets={"operator": OPERATOR},
        goodbye_timeout_s=0.05,
        server_options={"answer_close": False},
    )
    await server.function_call("call_x", "transfer_call", '{"target": "operator"}')
    await server.wait(lambda: "session.close" in server.types())

    def appends_after_close() -> list[dict[str, Any]]:
        at = next(i for i, e in enumerate(server.received) if e["type"] == "session.close")
        return [e for e in server.received[at:] if e["type"] == "session.input_audio.append"]

    await server.wait(lambda: len(appends_after_close()) >= 3)
    silent_frame = base64.b64encode(silence(20)).decode()
    assert {e["audio"] for e in appends_after_close()} == {silent_frame}
    assert "hangup" not in control.names()  # session.closed not seen yet
    await server.closed("close_requested")
    await until(lambda: "hangup" in control.names())
    assert control.calls[-1] == ("hangup", bye_reason(EndCause.TRANSFERRED).text)
