"""The machine stays pure with its fast context copy (gateway/call/context.py `replace`, issue
14): every step returns a new context and leaves the one it was given exactly as it was, the
received-bytes mapping included; `replace` refuses a name that is not a field."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.call import machine as m
from gateway.call.context import CallContext, replace, with_bot_audio
from gateway.call.machine import (
    Ack,
    BotAudio,
    BotAudioDone,
    BotReplyDone,
    BotReplyStarted,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallPolicy,
    PlayoutDrained,
    PlayoutItem,
    State,
)


def _snapshot(ctx: CallContext) -> dict[str, object]:
    return {f.name: copy.deepcopy(getattr(ctx, f.name)) for f in dataclasses.fields(ctx)}


def test_replace_copies_and_changes_without_touching_the_old_context() -> None:
    old = CallContext(CallPolicy(), received_bytes={"item_1": 800})
    before = _snapshot(old)
    new = replace(old, state=State.BOT_SPEAKING, received_bytes={"item_1": 1600})
    assert _snapshot(old) == before
    assert new is not old and new.state is State.BOT_SPEAKING
    assert new.received_bytes == {"item_1": 1600} and old.received_bytes == {"item_1": 800}
    assert new == dataclasses.replace(
        old, state=State.BOT_SPEAKING, received_bytes={"item_1": 1600}
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.state = State.LISTENING  # type: ignore[misc]


def test_replace_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="no field 'stat'"):
        replace(CallContext(CallPolicy()), stat=State.ENDED)


@pytest.mark.parametrize("state", [State.BOT_SPEAKING, State.CALLER_SPEAKING, State.ENDING])
@pytest.mark.parametrize("reply_audio", [False, True])
def test_the_audio_deltas_copy_is_replace_written_out(state: State, reply_audio: bool) -> None:
    old = CallContext(
        CallPolicy(), state=State.LISTENING, reply_id="r", received_bytes={"item_1": 800}
    )
    before = _snapshot(old)
    received = {"item_1": 1600, "item_2": 8}
    new = with_bot_audio(old, state, received, reply_audio)
    assert _snapshot(old) == before
    assert new == replace(
        old, state=state, received_bytes=received, playout_busy=True, reply_audio=reply_audio
    )
    assert (
        new.__dict__
        == replace(
            old, state=state, received_bytes=received, playout_busy=True, reply_audio=reply_audio
        ).__dict__
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.state = State.LISTENING  # type: ignore[misc]


def _answered() -> CallContext:
    ctx = CallContext(CallPolicy())
    for event in (m.Start(), m.SessionReady(), Ack()):
        ctx, _ = m.step(ctx, event)
    return ctx


_ITEMS = ("item_a", "item_b")
_REPLIES = ("resp_a", "resp_b")
_events = st.one_of(
    st.builds(BotReplyStarted, st.sampled_from(_REPLIES)),
    st.builds(
        BotAudio,
        st.sampled_from(_REPLIES),
        st.sampled_from(_ITEMS),
        st.binary(min_size=1, max_size=400),
    ),
    st.builds(BotAudioDone, st.sampled_from(_REPLIES), st.sampled_from(_ITEMS)),
    st.builds(BotReplyDone, st.sampled_from(_REPLIES), st.sampled_from(("completed", "cancelled"))),
    st.builds(
        CallerSpeechStarted,
        audio_ms=st.integers(0, 10_000),
        playout=st.lists(
            st.builds(PlayoutItem, st.sampled_from(_ITEMS), st.integers(0, 2000)), max_size=2
        ).map(tuple),
    ),
    st.builds(CallerSpeechStopped, st.integers(0, 10_000)),
    st.just(PlayoutDrained()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_events, max_size=40))
def test_no_step_changes_the_context_it_was_given(events: list[object]) -> None:
    ctx = _answered()
    for event in events:
        before = _snapshot(ctx)
        try:
            new, _ = m.step(ctx, event)  # type: ignore[arg-type]
        except m.IllegalTransition:
            continue
        assert _snapshot(ctx) == before, f"{type(event).__name__} changed the old context"
        ctx = new
