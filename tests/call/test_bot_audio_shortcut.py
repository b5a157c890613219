"""The bot audio delta's shortcut (issue 14): `m.steady_bot_audio` and `CallSession._bot_audio`.

A delta that moves no state (the call already speaking, or the caller, or ending, or
transferring) goes to the playout queue with the context `step` would give, without an event
dispatch or action values; every other delta (a reply's first audio in LISTENING, a discarded
reply's) is `step`ped. What
a shortcut could break is pinned here: it is `step` wherever it applies (every state and flag),
the first audio of a reply still moves the machine, audio after a barge-in and late audio of a
cancelled reply are dropped, and the ids (reply, item) and byte counts the barge-in's truncate
is computed from are carried. The session cases run the product's path from the voice
connection's event sink (`_on_client_event` -> the Realtime link's `translate` -> the shortcut)
with a stand-in connection that records what the call sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import voice as v
from gateway.call import machine as m
from gateway.call.causes import EndCause
from gateway.call.context import CallContext, replace
from gateway.call.session import CallSession, SessionSettings
from gateway.media.playout import PlayoutQueue
from gateway.realtime import events as rte
from gateway.realtime import protocol
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint
from tests.call.test_session import FakeControl, tick, until

# -- the pure function: `step` wherever it applies ----------------------------------------------

AUDIO = bytes(range(160)) * 5  # 100 ms


def contexts() -> list[CallContext]:
    policy = m.CallPolicy()
    out = []
    states = [s for s in m.State if (s, v.BotAudio) in m.TRANSITIONS]
    for state, busy, reply_audio, reply_id, discard, received in itertools.product(
        states,
        (False, True),
        (False, True),
        (None, "r1"),
        (frozenset(), frozenset({"r1"}), frozenset({"r2"})),
        ({}, {"i1": 800}, {"i1": 800, "i0": 160}),
    ):
        out.append(
            CallContext(
                policy,
                state=state,
                playout_busy=busy,
                reply_audio=reply_audio,
                reply_id=reply_id,
                discard_reply_ids=discard,
                received_bytes=dict(received),
            )
        )
    return out


@pytest.mark.parametrize("reply_id", ["r1", "r2"])
@pytest.mark.parametrize("item_id", ["i1", "i2"])
def test_the_shortcut_is_step_and_applies_exactly_where_step_keeps_the_state(
    reply_id: str, item_id: str
) -> None:
    event = v.BotAudio(reply_id, item_id, AUDIO)
    taken = 0
    for ctx in contexts():
        before = dict(ctx.__dict__)
        received_before = dict(ctx.received_bytes)
        stepped, actions = m.step(ctx, event)
        steady = stepped.state is ctx.state and actions == [m.EnqueueAudio(item_id, AUDIO)]
        short = m.steady_bot_audio(ctx, event)
        if short is None:
            assert not steady, (ctx.state, ctx, event)  # a state move, or a dropped delta
            continue
        taken += 1
        assert steady, (ctx, event)
        assert short.__dict__ == stepped.__dict__
        assert short.received_bytes[item_id] == received_before.get(item_id, 0) + len(AUDIO)
        # Pure: the old context and its byte counts are untouched.
        assert ctx.__dict__ == before and dict(ctx.received_bytes) == received_before
        assert short.received_bytes is not ctx.received_bytes
    assert taken > 0


def _bool_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(CallContext) if f.type in ("bool", bool)]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_shortcut_is_step_whatever_the_other_fields_hold(data: st.DataObject) -> None:
    """`contexts()` varies what `on_bot_audio` reads today; this varies every flag and the
    fields a later handler might read too (cancelling, on_hold, end/transfer after playout,
    audio_done_items...), so the shortcut cannot fall out of step with `step` unseen."""
    states = [s for s in m.State if (s, v.BotAudio) in m.TRANSITIONS]
    flags = {name: data.draw(st.booleans(), label=name) for name in _bool_fields()}
    ctx = CallContext(
        m.CallPolicy(),
        state=data.draw(st.sampled_from(states), label="state"),
        reply_id=data.draw(st.sampled_from([None, "r1", "r2"]), label="reply_id"),
        discard_reply_ids=frozenset(data.draw(st.sets(st.sampled_from(["r1", "r2"])))),
        received_bytes=data.draw(st.sampled_from([{}, {"i1": 800}]), label="received"),
        audio_done_items=frozenset(data.draw(st.sets(st.sampled_from(["i1", "i2"])))),
        end_after_playout=data.draw(st.sampled_from([None, *EndCause]), label="end_after"),
        transfer_after_playout=data.draw(st.sampled_from([None, "sip:x@y"]), label="xfer"),
        pending_tool_calls=frozenset(data.draw(st.sets(st.sampled_from(["t1"])))),
        **flags,
    )
    event = v.BotAudio(
        data.draw(st.sampled_from(["r1", "r2"])), data.draw(st.sampled_from(["i1", "i2"])), AUDIO
    )
    stepped, actions = m.step(ctx, event)
    steady = stepped.state is ctx.state and actions == [m.EnqueueAudio(event.item_id, AUDIO)]
    short = m.steady_bot_audio(ctx, event)
    if short is None:
        assert not steady
    else:
        assert steady and short.__dict__ == stepped.__dict__


def test_the_first_audio_of_a_reply_and_audio_of_a_discarded_one_are_not_short() -> None:
    policy = m.CallPolicy()
    listening = CallContext(policy, state=m.State.LISTENING, reply_id="r1")
    assert m.steady_bot_audio(listening, v.BotAudio("r1", "i1", AUDIO)) is None
    playing = CallContext(
        policy, state=m.State.BOT_SPEAKING, reply_id="r1", playout_busy=True, reply_audio=True
    )
    assert m.steady_bot_audio(playing, v.BotAudio("r1", "i1", AUDIO)) is not None
    drained = replace(playing, playout_busy=False)
    after_drain = m.steady_bot_audio(drained, v.BotAudio("r1", "i1", AUDIO))
    assert after_drain is not None and after_drain.playout_busy
    answering = replace(playing, state=m.State.ANSWERING, playout_busy=False, reply_audio=False)
    assert m.steady_bot_audio(answering, v.BotAudio("r1", "i1", AUDIO)) is None
    cut = replace(playing, state=m.State.CALLER_SPEAKING, discard_reply_ids=frozenset({"r0"}))
    assert m.steady_bot_audio(cut, v.BotAudio("r0", "i0", AUDIO)) is None
    assert m.step(cut, v.BotAudio("r0", "i0", AUDIO)) == (cut, [])


# -- the session: from the voice connection's event sink ---------------------------------------


class StandInConnection:
    """What the session needs of a voice connection; records the client events sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.sink: Any = None
        self.connected = True

    def append_audio(self, audio: bytes) -> bool:
        return True

    def audio_appender(self) -> Any:
        return lambda audio: True

    def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    def set_event_sink(self, sink: Any) -> None:
        self.sink = sink

    async def close(self) -> None:
        self.connected = False

    def seconds_left(self) -> float | None:
        return None

    async def switch_codec(self, config: Any, timeout: float) -> bool:  # noqa: ASYNC109
        return True

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.sent if event.get("type") == kind]


class StandInBackend(RealtimeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.connections: list[StandInConnection] = []

    async def open(self, endpoint: Any, config: Any, history: Any, timeout: float) -> Any:  # noqa: ASYNC109
        connection = StandInConnection()
        self.connections.append(connection)
        return connection


class Call:
    def __init__(self, session: CallSession, queue: PlayoutQueue, link: StandInConnection):
        self.session, self.queue, self.link = session, queue, link
        self.dispatched: list[m.Event] = []
        dispatch = session.dispatch

        def counted(event: m.Event) -> None:
            self.dispatched.append(event)
            dispatch(event)

        session.dispatch = counted  # type: ignore[method-assign]

    def server(self, *events: Any) -> None:
        for event in events:
            self.link.sink(event)

    def delta(self, reply_id: str, item_id: str, audio: bytes = AUDIO) -> None:
        self.server(rte.AudioDelta(reply_id, item_id, 0, 0, audio))

    def reply(self, reply_id: str, item_id: str) -> None:
        self.server(
            rte.ResponseCreated(reply_id),
            rte.OutputItemAdded(reply_id, 0, item_id, "message", {"id": item_id}),
        )


@pytest.fixture
async def call() -> Any:
    backend = StandInBackend()
    settings = SessionSettings(
        Endpoint.custom("ws://127.0.0.1:9/v1/realtime"),
        protocol.SessionConfig(turn_detection=protocol.ServerVad()),
        m.CallPolicy(),
        backend=backend,
    )
    control = FakeControl()
    queue = PlayoutQueue()
    session = CallSession("call-short", settings, control, queue)  # type: ignore[arg-type]
    session.start()
    await until(lambda: "answer" in control.names())
    session.on_ack()
    assert session.ctx.state is m.State.LISTENING
    yield Call(session, queue, backend.connections[0])
    await session.close()
    await asyncio.sleep(0)


async def test_the_first_delta_of_a_reply_moves_the_machine_the_next_go_short(call: Call) -> None:
    session, queue = call.session, call.queue
    call.reply("resp_1", "item_1")
    call.dispatched.clear()
    call.delta("resp_1", "item_1")
    assert session.ctx.state is m.State.BOT_SPEAKING
    assert session.transitions[-1][1] == "bot_speaking"
    assert session.ctx.playout_busy and session.ctx.reply_audio
    assert [type(e) for e in call.dispatched] == [v.BotAudio]  # stepped
    call.delta("resp_1", "item_1")
    call.delta("resp_1", "item_1")
    assert call.dispatched == call.dispatched[:1]  # the next two took the shortcut
    assert session.ctx.received_bytes == {"item_1": 3 * len(AUDIO)}
    assert queue.queued_bytes == 3 * len(AUDIO)
    assert session.ctx.state is m.State.BOT_SPEAKING


async def test_the_first_delta_after_a_drain_marks_playout_busy_again(call: Call) -> None:
    """Paced in real time the queue drains between two deltas: the next one keeps the state
    (short) but playout is busy again, so the next drain is seen and the reply's end waits
    for it."""
    session, queue = call.session, call.queue
    call.reply("resp_1", "item_1")
    call.delta("resp_1", "item_1")
    tick(session, queue, len(AUDIO) // 160 + 1)  # played out: PlayoutDrained
    assert not session.ctx.playout_busy and session.ctx.state is m.State.BOT_SPEAKING
    call.dispatched.clear()
    call.delta("resp_1", "item_1")
    assert call.dispatched == []  # short
    assert session.ctx.playout_busy
    call.server(rte.ResponseDone("resp_1", "completed", None, None, None))
    assert session.ctx.state is m.State.BOT_SPEAKING  # the audio still plays
    tick(session, queue, len(AUDIO) // 160 + 1)
    assert session.ctx.state is m.State.LISTENING and not session.ctx.playout_busy


async def test_a_delta_after_a_barge_in_is_dropped_and_the_truncate_is_at_the_heard_bytes(
    call: Call,
) -> None:
    session, queue, link = call.session, call.queue, call.link
    call.reply("resp_1", "item_1")
    for _ in range(5):
        call.delta("resp_1", "item_1")  # 500 ms queued, four of them short
    assert tick(session, queue, 10) == 10  # the caller hears 200 ms
    call.server(rte.SpeechStarted(1000, "item_user"))
    assert session.ctx.state is m.State.CALLER_SPEAKING
    assert queue.queued_bytes == 0
    [truncate] = link.of("conversation.item.truncate")
    assert truncate["item_id"] == "item_1" and truncate["audio_end_ms"] == 200
    received = dict(session.ctx.received_bytes)
    call.delta("resp_1", "item_1")  # the interrupted reply's late delta
    call.delta("resp_1", "item_1")
    assert queue.queued_bytes == 0
    assert dict(session.ctx.received_bytes) == received
    assert len(link.of("conversation.item.truncate")) == 1


async def test_late_deltas_of_a_cancelled_reply_are_dropped_while_the_next_reply_plays(
    call: Call,
) -> None:
    """The shortcut's other conditions hold (the next reply is playing, playout busy, its
    audio flowing): the cancelled reply's late delta is still dropped."""
    session, queue = call.session, call.queue
    call.reply("resp_1", "item_1")
    call.delta("resp_1", "item_1")
    call.delta("resp_1", "item_1")
    tick(session, queue, 3)
    call.server(rte.SpeechStarted(1000, "item_user"))  # barge-in: resp_1 discarded
    call.server(rte.SpeechStopped(1600, "item_user"), rte.InputCommitted("item_user", "item_1"))
    call.server(rte.ResponseDone("resp_1", "cancelled", "turn_detected", None, None))
    call.reply("resp_2", "item_2")
    call.delta("resp_2", "item_2")
    call.delta("resp_2", "item_2")
    ctx = session.ctx
    assert ctx.state is m.State.BOT_SPEAKING and ctx.playout_busy and ctx.reply_audio
    assert "resp_1" in ctx.discard_reply_ids
    queued = queue.queued_bytes
    call.dispatched.clear()
    call.delta("resp_1", "item_1", bytes(800))
    assert queue.queued_bytes == queued
    assert queue.pending_items() == ["item_2"]
    assert session.ctx.received_bytes.get("item_1", 0) == ctx.received_bytes.get("item_1", 0)
    assert [type(e) for e in call.dispatched] == [v.BotAudio]  # stepped, and dropped there


async def test_ids_and_byte_counts_are_carried_per_item(call: Call) -> None:
    """Two items of one reply: each delta counts for its own item and is queued under it; the
    barge-in truncates the item being heard at its own bytes and deletes the unheard one."""
    session, queue, link = call.session, call.queue, call.link
    call.reply("resp_1", "item_a")
    call.delta("resp_1", "item_a")
    call.delta("resp_1", "item_a", AUDIO[:480])
    call.server(rte.OutputItemAdded("resp_1", 1, "item_b", "message", {"id": "item_b"}))
    call.delta("resp_1", "item_b", AUDIO[:320])
    call.delta("resp_1", "item_b")
    assert session.ctx.received_bytes == {
        "item_a": len(AUDIO) + 480,
        "item_b": 320 + len(AUDIO),
    }
    assert queue.pending_items() == ["item_a", "item_b"]
    assert queue.queued_bytes == 2 * len(AUDIO) + 480 + 320
    assert tick(session, queue, 4) == 4  # 80 ms of item_a
    call.server(rte.SpeechStarted(1000, "item_user"))
    assert [(e["item_id"], e["audio_end_ms"]) for e in link.of("conversation.item.truncate")] == [
        ("item_a", 80)
    ]
    assert [e["item_id"] for e in link.of("conversation.item.delete")] == ["item_b"]
