"""LiveLink: GPT-Live server events -> the call's reports, and the call's requests -> Live
client events (each validated against openai.types.live)."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import voice as v
from gateway.live import events as le
from gateway.live.link import DEFAULT_REPLY_INSTRUCTIONS, LiveLink
from gateway.live.translate import FRAME, REPLY_END_SILENCE_MS, ReplySegmenter
from gateway.media import g711
from tests.live.validate import check_live_client_event

SILENCE = {"PCMU": b"\xff", "PCMA": b"\xd5"}


def tone(ms: int, law: str = "PCMU", amplitude: int = 8000) -> bytes:
    samples = ms * 8
    pcm = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * 440 * i / 8000)))
        for i in range(samples)
    )
    return g711.encode(law, pcm)


def silence(ms: int, law: str = "PCMU") -> bytes:
    return SILENCE[law] * (ms * 8)


def reports(link: LiveLink, event: object) -> list[v.VoiceEvent]:
    out = link.translate(event)
    if out is None:
        return []
    return out if isinstance(out, list) else [out]


def kinds(items: list[v.VoiceEvent]) -> list[str]:
    return [type(r).__name__ for r in items]


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_segmenter_voiced_and_silent_frames(law: str) -> None:
    seg = ReplySegmenter(law)
    assert seg.voiced(tone(20, law))
    assert not seg.voiced(silence(20, law))
    assert not seg.voiced(tone(20, law, amplitude=200))  # low-level noise is silence


def reference_split(seg: ReplySegmenter, audio: bytes) -> list[tuple[str, bytes]]:
    """The segmenter's reading frame by frame (`voiced` on each slice), as it was before
    issue 14 made `split` mark the delta once and skip deltas no reply end can fall in."""
    steps: list[tuple[str, bytes]] = []
    start = 0
    for pos in range(0, len(audio), FRAME):
        frame = audio[pos : pos + FRAME]
        if seg.voiced(frame):
            if not seg.in_reply:
                seg.in_reply = True
                steps.append(("start", b""))
                start = pos
            seg.silence_run = 0
            continue
        if not seg.in_reply:
            start = pos + len(frame)
            continue
        seg.silence_run += len(frame)
        if seg.silence_run >= seg._end_silence:
            end = pos + len(frame)
            if end > start:
                steps.append(("audio", audio[start:end]))
            steps.append(("end", b""))
            seg.in_reply = False
            seg.silence_run = 0
            start = end
    if seg.in_reply and len(audio) > start:
        steps.append(("audio", audio[start:]))
    return steps


# Samples: u-law/A-law silence and speech levels, so frames land on both sides of the count.
_LEVELS = [0xFF, 0x7F, 0xD5, 0x55, 0x00, 0x80, 0x10, 0x90, 0xA0]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["PCMU", "PCMA"]),
    st.sampled_from([20, 60, 200, REPLY_END_SILENCE_MS]),
    st.lists(
        st.tuples(st.integers(0, 1300), st.floats(0, 1), st.integers(0, 2**32 - 1)),
        max_size=8,
    ),
)
def test_split_reads_as_frame_by_frame(law: str, end_ms: int, deltas: list) -> None:
    fast, slow = ReplySegmenter(law, end_ms), ReplySegmenter(law, end_ms)
    for length, loud, seed in deltas:
        rng = random.Random(seed)
        quiet = _LEVELS[0] if law == "PCMU" else _LEVELS[2]
        audio = bytes(rng.choice(_LEVELS) if rng.random() < loud else quiet for _ in range(length))
        assert fast.split(audio) == reference_split(slow, audio)
        assert (fast.in_reply, fast.silence_run) == (slow.in_reply, slow.silence_run)


def test_silence_outside_a_reply_is_dropped() -> None:
    link = LiveLink()
    assert reports(link, le.OutputAudio(silence(100))) == []


def test_speech_starts_a_reply_and_silence_ends_it() -> None:
    link = LiveLink()
    first = reports(link, le.OutputAudio(silence(40) + tone(60)))
    assert kinds(first) == ["BotReplyStarted", "BotTurn", "BotAudio"]
    reply_id = first[0].reply_id
    item_id = first[1].item_id
    assert first[2] == v.BotAudio(reply_id, item_id, tone(60))  # leading silence dropped
    # A pause inside the reply is kept (played), and does not end it.
    pause = reports(link, le.OutputAudio(silence(300)))
    assert pause == [v.BotAudio(reply_id, item_id, silence(300))]
    more = reports(link, le.OutputAudio(tone(100)))
    assert kinds(more) == ["BotAudio"]
    # REPLY_END_SILENCE_MS of silence in a row ends it; what follows is dropped.
    end = reports(link, le.OutputAudio(silence(REPLY_END_SILENCE_MS + 200)))
    assert kinds(end) == ["BotAudio", "BotAudioDone", "BotReplyDone"]
    assert end[0].audio == silence(REPLY_END_SILENCE_MS)
    assert end[2] == v.BotReplyDone(reply_id, v.REPLY_COMPLETED)
    nxt = reports(link, le.OutputAudio(tone(40)))
    assert kinds(nxt) == ["BotReplyStarted", "BotTurn", "BotAudio"]
    assert nxt[0].reply_id != reply_id and nxt[1].item_id != item_id


def test_a_reply_can_start_and_end_inside_one_delta() -> None:
    link = LiveLink(end_silence_ms=100)
    out = reports(link, le.OutputAudio(tone(40) + silence(100) + silence(60)))
    assert kinds(out) == ["BotReplyStarted", "BotTurn", "BotAudio", "BotAudioDone", "BotReplyDone"]
    assert out[2].audio == tone(40) + silence(100)


def test_transcripts_bot_and_caller() -> None:
    link = LiveLink()
    caller = reports(link, le.InputTranscript("Hello", 0, 200))
    assert kinds(caller) == ["CallerTurn", "CallerHeard"]  # the idle watchdog restarts
    caller_item = caller[0].item_id
    assert reports(link, le.InputTranscript(" there", 200, 400)) == [v.CallerHeard()]
    start = reports(link, le.OutputAudio(tone(40)))
    # The reply starting closes the caller's turn: its text is final now.
    assert kinds(start) == ["CallerTranscript", "BotReplyStarted", "BotTurn", "BotAudio"]
    assert start[0] == v.CallerTranscript(caller_item, "Hello there")
    item_id = start[2].item_id
    assert reports(link, le.OutputTranscript("Hi", 0, 200)) == [
        v.BotTranscript(item_id, "Hi", final=False)
    ]
    end = reports(link, le.OutputAudio(silence(REPLY_END_SILENCE_MS)))
    assert v.BotTranscript(item_id, "Hi", final=True) in end
    # A late fragment of the same reply, then the caller's next turn: the full text is final.
    assert reports(link, le.OutputTranscript("!", 0, 200)) == [
        v.BotTranscript(item_id, "!", final=False)
    ]
    nxt = reports(link, le.InputTranscript("Bye", 0, 200))
    assert nxt[0] == v.BotTranscript(item_id, "Hi!", final=True)
    assert isinstance(nxt[1], v.CallerTurn) and nxt[1].previous_item_id == item_id


def test_function_calls_and_bad_json() -> None:
    link = LiveLink(responses_mode=True)
    assert reports(link, le.DelegationCreated("d1", "responses", None)) == []
    assert reports(link, le.FunctionCall("d1", "c1", "lookup", '{"order": "42"}')) == [
        v.ToolCall("c1", "lookup", {"order": "42"})
    ]
    bad = reports(link, le.FunctionCall("d1", "c2", "lookup", "{nope"))
    assert isinstance(bad[0], v.ToolCallInvalid) and bad[0].call_id == "c2"


def test_tool_results_then_response_create_once_the_batch_is_answered() -> None:
    link = LiveLink(responses_mode=True)
    reports(link, le.DelegationCreated("d1", "responses", None))
    reports(link, le.FunctionCall("d1", "c1", "a", "{}"))
    reports(link, le.FunctionCall("d1", "c2", "b", "{}"))
    first = link.return_tool_result("c1", '{"ok": true}')
    assert [e["type"] for e in first] == ["response.item.create"]
    second = link.return_tool_result("c2", '{"ok": true}')
    assert [e["type"] for e in second] == ["response.item.create", "response.create"]
    assert second[0]["item"] == {
        "type": "function_call_output",
        "call_id": "c2",
        "output": '{"ok": true}',
    }
    for event in first + second:
        check_live_client_event(event)


def test_results_of_a_superseded_delegation_are_discarded() -> None:
    link = LiveLink(responses_mode=True)
    reports(link, le.DelegationCreated("d1", "responses", None))
    reports(link, le.FunctionCall("d1", "old", "slow_lookup", "{}"))
    reports(link, le.DelegationCreated("d2", "responses", None))  # the caller moved on
    reports(link, le.FunctionCall("d2", "new", "lookup", "{}"))
    assert link.return_tool_result("old", "{}") == []
    assert link.stale_results == 1
    events = link.return_tool_result("new", "{}")
    assert [e["type"] for e in events] == ["response.item.create", "response.create"]
    # A result the session never asked for (from the session before a reconnect): discarded.
    assert link.return_tool_result("unknown", "{}") == []


def test_no_cancel_or_truncate_ever_and_no_replay() -> None:
    link = LiveLink()
    assert link.stop_bot_audio(True, [("live_bot_1", 120), ("live_bot_2", 0)]) == []
    assert link.replay([("user", "hi"), ("assistant", "hello")]) == []


def test_request_reply_is_an_instructions_append() -> None:
    link = LiveLink()
    greeting = link.request_reply("Greet the caller.")
    assert greeting == [
        {
            "type": "session.instructions.append",
            "content": "Greet the caller.",
            "delegation_id": None,
        }
    ]
    default = link.request_reply(None)
    assert default[0]["content"] == DEFAULT_REPLY_INSTRUCTIONS
    for event in greeting + default:
        check_live_client_event(event)


def test_add_text_is_thinking_and_in_responses_mode_user_data_too() -> None:
    client_mode = LiveLink().add_text("The caller pressed 4 2 #", "user")
    assert [e["type"] for e in client_mode] == ["session.thinking.append"]
    responses = LiveLink(responses_mode=True)
    events = responses.add_text("The caller pressed 4 2 #", "user")
    assert [e["type"] for e in events] == [
        "session.thinking.append",
        "response.item.create",
        "response.create",
    ]
    # An operator instruction stays context; with a call pending no response.create.
    assert [e["type"] for e in responses.add_text("VIP", "system")] == ["session.thinking.append"]
    reports(responses, le.FunctionCall("d1", "c1", "a", "{}"))
    assert [e["type"] for e in responses.add_text("1", "user")] == ["session.thinking.append"]
    for event in events:
        check_live_client_event(event)


def test_usage_error_and_closed_reasons() -> None:
    link = LiveLink()
    assert reports(link, le.UsageUpdated(15.0)) == [v.UsageReported(session_seconds=15.0)]
    err = reports(link, le.ErrorEvent("invalid_request_error", "unknown_parameter", "bad"))
    assert err == [v.VoiceError("unknown_parameter", "bad", v.VoiceErrorKind.OTHER)]
    expired = reports(LiveLink(), le.SessionClosed("expired", 31.0))
    assert expired[-1] == v.ConnectionLost("session closed: expired", None)
    assert v.UsageReported(session_seconds=31.0) in expired
    assert reports(LiveLink(), le.SessionClosed("connection_lost", None))[-1].final is None
    content = reports(LiveLink(), le.SessionClosed("content", None))[-1]
    assert content.final == v.LOST_CONTENT
    hangup = reports(LiveLink(), le.SessionClosed("remote_hangup", None))[-1]
    assert hangup.final == v.LOST_REMOTE_HANGUP


def test_connection_lost_mid_reply_ends_the_reply_first() -> None:
    link = LiveLink()
    start = reports(link, le.OutputAudio(tone(40)))
    reply_id = start[0].reply_id
    lost = reports(link, le.ConnectionLost("gone", 1006))
    assert kinds(lost) == ["BotAudioDone", "BotReplyDone", "ConnectionLost"]
    assert lost[1] == v.BotReplyDone(reply_id, v.REPLY_COMPLETED)


def test_a_hostile_server_cannot_grow_turn_text_or_pending_calls() -> None:
    from gateway.live.translate import MAX_PENDING_CALLS, MAX_TURN_CHARS

    link = LiveLink(responses_mode=True)
    reports(link, le.OutputAudio(tone(40)))
    for _ in range(2000):
        reports(link, le.OutputTranscript("x" * 100, 0, 0))
        reports(link, le.InputTranscript("y" * 100, 0, 0))
    assert link.translator._bot is not None and link.translator._bot.size <= MAX_TURN_CHARS
    assert link.translator._caller is not None
    assert link.translator._caller.size <= MAX_TURN_CHARS
    for i in range(500):
        reports(link, le.FunctionCall("d1", f"c{i}", "lookup", "{}"))
    assert len(link.translator.pending) == MAX_PENDING_CALLS
    assert link.return_tool_result("c0", "{}") == []  # forgotten: stale
    assert link.return_tool_result("c499", "{}")[0]["type"] == "response.item.create"


def test_a_transcript_ahead_of_the_audio_is_the_same_bot_item() -> None:
    link = LiveLink()
    first = reports(link, le.OutputTranscript("Hello", 0, 200))
    assert kinds(first) == ["BotTurn", "BotTranscript"]
    item_id = first[0].item_id
    start = reports(link, le.OutputAudio(tone(40)))
    assert kinds(start) == ["BotReplyStarted", "BotAudio"]  # no second BotTurn
    assert start[1].item_id == item_id
    end = reports(link, le.OutputAudio(silence(REPLY_END_SILENCE_MS)))
    assert v.BotTranscript(item_id, "Hello", final=True) in end


@pytest.mark.parametrize("size", [1, 7, 161, 333])
def test_odd_sized_silent_deltas_start_no_reply(size: int) -> None:
    link = LiveLink()
    assert reports(link, le.OutputAudio(silence(1)[:1] * size)) == []
    out = reports(link, le.OutputAudio(tone(40)[:size]))
    assert kinds(out)[:2] == ["BotReplyStarted", "BotTurn"] or size < 4
