"""The GPT-Live simulator's timeline and audio, with a raw WebSocket client: one continuous
output track at real-time pace (silence included), the caller's utterance echoed byte for byte
with transcript fragments, the model falling silent under barge-in with no event, a session
clock that moves only with input audio, expiry when input stops, usage, mute and fixtures."""

from __future__ import annotations

import base64

import numpy as np

from gateway.media import g711
from tests.live_simulator.raw_client import RawLiveClient
from tests.realtime.conftest import silence, speech_like

AUDIO_ONLY = {"session.output_audio.delta"}
TRANSCRIPTS = {"session.input_transcript.delta", "session.output_transcript.delta"}


def deltas(ws: RawLiveClient, since: int = 0) -> list[bytes]:
    return [
        base64.b64decode(e["delta"])
        for e in ws.events[since:]
        if e["type"] == "session.output_audio.delta"
    ]


async def test_output_is_one_continuous_track_of_silence_without_ids(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.start()
    await ws.wait_for(lambda e: len(deltas(ws)) >= 25, within=10)
    audio_events = ws.of("session.output_audio.delta")
    assert all(set(e) == {"type", "delta"} for e in audio_events)  # no event_id, no timing
    assert all(chunk == b"\xff" * 160 for chunk in deltas(ws))  # u-law silence, 20 ms each
    alaw = await client(sim)
    await alaw.start(audio={"format": {"type": "audio/pcma", "rate": 8000}})
    await alaw.wait_for(lambda e: len(deltas(alaw)) >= 5)
    assert all(chunk == b"\xd5" * 160 for chunk in deltas(alaw))


async def test_default_delta_is_100_ms_of_the_session_format(live_sim, client) -> None:
    sim = await live_sim()
    ws = await client(sim)
    await ws.start()
    await ws.wait_for(lambda e: len(deltas(ws)) >= 3)
    assert {len(chunk) for chunk in deltas(ws)} == {800}
    pcm = await client(sim)
    await pcm.start(audio={"format": {"type": "audio/pcm", "rate": 24000}})
    await pcm.wait_for(lambda e: len(deltas(pcm)) >= 2)
    assert {len(chunk) for chunk in deltas(pcm)} == {4800}


async def test_the_caller_utterance_comes_back_byte_for_byte_with_transcripts(
    live_sim, client
) -> None:
    sim = await live_sim(delta_ms=20, transcripts=("I need a taxi to the station",))
    ws = await client(sim)
    await ws.start()
    spoken = speech_like(900, seed=3)
    await ws.append(silence(400) + spoken + silence(700))
    session = await sim.wait_live_session()
    await ws.wait_for(lambda e: bool(session.utterances))
    utterance = session.utterances[0].audio
    assert spoken in utterance
    await ws.wait_for(lambda e: utterance in ws.output_audio(), within=15)
    heard = "".join(e["delta"] for e in ws.of("session.input_transcript.delta"))
    assert heard == "I need a taxi to the station"
    for fragment in ws.of("session.input_transcript.delta"):
        assert fragment["end_ms"] - fragment["start_ms"] == 200
        assert fragment["start_ms"] % 200 == 0
    await ws.wait_for(
        lambda e: (
            "".join(d["delta"] for d in ws.of("session.output_transcript.delta"))
            == "I need a taxi to the station"
        )
    )
    for fragment in ws.of("session.output_transcript.delta"):
        assert fragment["start_ms"] % 200 == 0 and fragment["end_ms"] % 200 == 0
        assert fragment["end_ms"] > fragment["start_ms"]
    # The track went back to silence after the reply, and no turn/done events exist.
    assert {e["type"] for e in ws.events} <= {"session.started", *AUDIO_ONLY, *TRANSCRIPTS}
    assert session.last_speech is not None


async def test_barge_in_turns_the_output_silent_with_no_event_and_keeps_transcribing(
    live_sim, client
) -> None:
    sim = await live_sim(delta_ms=20, barge_in_latency_ms=60, transcripts=("one", "two"))
    ws = await client(sim)
    await ws.start()
    first = speech_like(3000, seed=5)
    await ws.append(first + silence(600))
    session = await sim.wait_live_session()
    await ws.wait_for(lambda e: bool(session.utterances))
    reply = session.utterances[0].audio
    # The reply is playing (non-silent output on the wire) ...
    await ws.wait_for(
        lambda e: (
            e["type"] == "session.output_audio.delta"
            and e["delta"] != (base64.b64encode(b"\xff" * 160).decode())
        )
    )
    mark = len(ws.events)
    # ... when the caller talks over it.
    second = speech_like(600, seed=9)
    await ws.append(second + silence(600))
    await ws.wait_for(lambda e: len(session.barge_ins) == 1 and len(session.utterances) == 2)
    barge = session.barge_ins[0]
    await ws.wait_for(lambda e: session.utterances[1].audio in ws.output_audio(), within=15)
    played = ws.output_audio()
    # Only a prefix of the first reply was played: the rest was dropped, then silence, then
    # the answer to the barge-in.
    first_reply_start = played.index(reply[:160])
    second_reply_start = played.index(session.utterances[1].audio)
    between = played[first_reply_start:second_reply_start]
    assert between.rstrip(b"\xff") == reply[: len(between.rstrip(b"\xff"))]
    assert len(between.rstrip(b"\xff")) < len(reply) - 160
    assert session.track is not None and session.track.cut_speech_bytes > 0
    # No event marked the barge-in: only audio and transcripts since the caller spoke.
    assert {e["type"] for e in ws.events[mark:]} <= AUDIO_ONLY | TRANSCRIPTS
    assert "two" in "".join(e["delta"] for e in ws.of("session.input_transcript.delta"))
    assert barge.cut_at > barge.at
    # The cut's last non-silent byte is the end of the played prefix of the first reply.
    assert barge.cut and barge.last_speech is not None
    voiced_prefix = len(between.rstrip(b"\xff"))
    assert barge.last_speech.output_ms == (first_reply_start + voiced_prefix) / 8
    assert barge.last_speech.sent_at <= barge.cut_at + 0.1


async def test_pcm16_sessions_echo_too(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.start(audio={"format": {"type": "audio/pcm", "rate": 16000}})
    t = np.arange(16000 * 600 // 1000) / 16000
    speech = (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes()
    quiet = b"\x00" * (32 * 700)
    await ws.append(quiet[:6400] + speech + quiet, chunk=640)
    session = await sim.wait_live_session()
    await ws.wait_for(lambda e: bool(session.utterances))
    assert speech in session.utterances[0].audio
    await ws.wait_for(lambda e: session.utterances[0].audio in ws.output_audio(), within=15)
    await ws.send(
        {
            "type": "session.input_audio.append",
            "audio": base64.b64encode(b"\x00").decode(),
            "event_id": "odd",
        }
    )
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert error["error"]["code"] == "invalid_audio"


async def test_hostile_frames_get_errors_and_the_session_goes_on(
    live_sim, client, expect_invalid
) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.start()
    await ws.ws.send("{not json")
    await ws.ws.send(b"\x00\x01binary")
    await ws.ws.send("[" * 5000 + "]" * 5000)
    for bad in (
        [1, 2],
        "text",
        None,
        {"type": ["session.close"]},
        {"type": "session.input_audio.append", "audio": "%%%"},
    ):
        if isinstance(bad, dict):
            expect_invalid.append(bad)
        await ws.send(bad)  # type: ignore[arg-type]
    await ws.send({"type": "session.input_audio.append", "audio": ""})
    await ws.wait_for(lambda e: len(ws.of("error")) == 9)
    await ws.append(speech_like(300) + silence(600))
    session = await sim.wait_live_session()
    await ws.wait_for(
        lambda e: bool(session.utterances) and session.utterances[0].audio in ws.output_audio()
    )


async def test_the_last_non_silent_output_is_recorded(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.start()
    await ws.append(speech_like(500) + silence(600))
    session = await sim.wait_live_session()
    await ws.wait_for(lambda e: bool(session.utterances))
    # The whole echo (which ends in the caller's trailing silence) has reached the client.
    await ws.wait_for(lambda e: session.utterances[0].audio in ws.output_audio())
    mark = session.last_speech
    assert mark is not None
    assert 0 < mark.offset_ms <= 20
    # Its position on the track is where the echo's last non-silent byte went out.
    played = ws.output_audio()
    assert len(played.rstrip(b"\xff")) / 8 == mark.output_ms
    assert mark.sent_at <= mark.monotonic <= mark.sent_at + 0.02


async def test_the_session_expires_when_input_stops(live_sim, client) -> None:
    sim = await live_sim(idle_expire_s=0.3)
    ws = await client(sim)
    await ws.start()
    await ws.send(
        {"type": "session.thinking.append", "content": "x", "delegation_id": None, "event_id": "t1"}
    )
    await ws.append(silence(200))  # the clock stops at 200 ms: the append stays pending
    closed = await ws.wait_for(lambda e: e["type"] == "session.closed")
    assert closed["reason"] == "expired"
    assert closed["usage"] == {"seconds": 0.2}
    error = ws.of("error")[0]
    assert error["error"]["code"] == "context_injection_incomplete"
    assert error["error"]["client_event_id"] == "t1"
    assert ws.events.index(error) < ws.events.index(closed)
    assert (await ws.wait_closed()).rcvd is not None


async def test_the_session_expires_at_expires_at(live_sim, client) -> None:
    sim = await live_sim(session_max_s=0.5, idle_expire_s=30)
    ws = await client(sim)
    started = await ws.start()
    closed = await ws.wait_for(lambda e: e["type"] == "session.closed")
    assert closed["reason"] == "expired"
    assert closed["session"]["id"] == started["session"]["id"]
    assert closed["session"]["status"] == "active"


async def test_appends_are_placed_only_as_input_audio_moves_the_clock(live_sim, client) -> None:
    sim = await live_sim(append_ack_ms=(600, 1000))
    ws = await client(sim)
    await ws.start()
    await ws.append(silence(300))
    await ws.send(
        {
            "type": "session.thinking.append",
            "content": "Keypad: 4 2 #",
            "delegation_id": None,
            "event_id": "k",
        }
    )
    await ws.append(silence(500))  # 800 ms: at most 500 ms past the append
    await ws.send({"type": "session.input_audio.mute", "event_id": "m"})
    await ws.wait_for(lambda e: e["type"] == "session.input_audio.muted")
    assert ws.of("session.thinking.appended") == []  # events are handled in order
    await ws.append(silence(600))
    appended = await ws.wait_for(lambda e: e["type"] == "session.thinking.appended")
    assert appended["client_event_id"] == "k"
    assert appended["start_ms"] == 300
    assert 600 <= appended["end_ms"] - appended["start_ms"] <= 1000
    session = await sim.wait_live_session()
    assert session.model_texts("thinking") == ["Keypad: 4 2 #"]
    assert ws.of("session.input_audio.muted")[0]["client_event_id"] == "m"


async def test_greeting_and_commentary_are_spoken(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20, append_ack_ms=(600, 600), greeting_text="Hi there")
    ws = await client(sim)
    await ws.start()
    await ws.send(
        {
            "type": "session.instructions.append",
            "content": "Greet the caller.",
            "delegation_id": None,
        }
    )
    await ws.append(silence(700))
    await ws.wait_for(
        lambda e: e["type"] == "session.output_transcript.delta" and "there" in e["delta"]
    )
    assert ws.output_audio().strip(b"\xff")  # the greeting tone was on the track
    mark = len(ws.events)
    await ws.send(
        {
            "type": "session.commentary.append",
            "content": "Your order shipped",
            "delegation_id": None,
        }
    )
    await ws.append(silence(700))
    await ws.wait_for(lambda e: e["type"] == "session.commentary.appended", since=mark)
    await ws.wait_for(
        lambda e: (
            "".join(
                d["delta"]
                for d in ws.events[mark:]
                if d["type"] == "session.output_transcript.delta"
            )
            == "Your order shipped"
        )
    )
    assert ws.output_audio(mark).strip(b"\xff")


async def test_append_limits_and_delegation_ids(live_sim, client, expect_invalid) -> None:
    sim = await live_sim()
    ws = await client(sim)
    await ws.start()
    await ws.send(
        {
            "type": "session.instructions.append",
            "content": "x" * 2001,
            "delegation_id": None,
            "event_id": "big",
        }
    )
    await ws.send(
        {
            "type": "session.commentary.append",
            "content": "ok",
            "delegation_id": "item_nope",
            "event_id": "id",
        }
    )
    await ws.send({"type": "session.thinking.append", "content": "x" * 2000, "delegation_id": None})
    await ws.wait_for(lambda e: len(ws.of("error")) == 2)
    big, unknown = ws.of("error")
    assert (big["error"]["code"], big["error"]["param"]) == ("string_above_max_length", "content")
    assert big["error"]["client_event_id"] == "big"
    assert unknown["error"]["param"] == "delegation_id"
    session = await sim.wait_live_session()
    assert [a.kind for a in session.appends] == ["thinking"]


async def test_usage_is_cumulative_on_the_session_clock(live_sim, client) -> None:
    sim = await live_sim(usage_every_s=0.5)
    ws = await client(sim)
    await ws.start()
    await ws.append(silence(1200))
    await ws.wait_for(lambda e: len(ws.of("session.usage.updated")) == 2)
    seconds = [e["usage"]["seconds"] for e in ws.of("session.usage.updated")]
    assert seconds[0] < seconds[1] <= 1.2


async def test_mute_sends_silence_to_the_model(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.start()
    await ws.send({"type": "session.input_audio.mute"})
    await ws.append(speech_like(600) + silence(600))
    await ws.send({"type": "session.input_audio.unmute", "event_id": "u"})
    await ws.wait_for(lambda e: e["type"] == "session.input_audio.unmuted")
    session = await sim.wait_live_session()
    assert session.utterances == [] and session.now_ms == 1200
    await ws.append(speech_like(600) + silence(600))
    await ws.wait_for(lambda e: len(session.utterances) == 1)


async def test_fixture_plays_then_played_and_blocks_appends(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    await ws.start()
    t = np.arange(24000 * 300 // 1000) / 24000
    clip = (np.sin(2 * np.pi * 500 * t) * 8000).astype("<i2").tobytes()  # 300 ms at 24 kHz
    await ws.send(
        {
            "type": "session.output_audio.fixture.play",
            "audio": base64.b64encode(clip).decode(),
            "event_id": "f",
        }
    )
    playing = await ws.wait_for(lambda e: e["type"] == "session.output_audio.fixture.playing")
    assert playing["client_event_id"] == "f"
    await ws.send(
        {
            "type": "session.thinking.append",
            "content": "x",
            "delegation_id": None,
            "event_id": "blocked",
        }
    )
    blocked = await ws.wait_for(lambda e: e["type"] == "error")
    assert blocked["error"]["client_event_id"] == "blocked"
    await ws.wait_for(lambda e: e["type"] == "session.output_audio.fixture.played")
    played = ws.output_audio().strip(b"\xff")
    assert 2000 <= len(played) <= 2400  # 300 ms at 8 kHz, in the session's law
    decoded = g711.decode_samples(g711.PCMU, played)
    assert np.abs(decoded).max() > 4000
    await ws.send(
        {
            "type": "session.output_audio.fixture.play",
            "audio": base64.b64encode(b"\x00" * 3).decode(),
            "event_id": "odd",
        }
    )
    odd = await ws.wait_for(
        lambda e: e["type"] == "error" and e["error"].get("client_event_id") == "odd"
    )
    assert odd["error"]["code"] == "invalid_audio"


async def test_load_mode_keeps_the_protocol_and_records_no_audio(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20, load_mode=True)
    ws = await client(sim)
    await ws.start()
    await ws.append(silence(300) + speech_like(600, seed=2) + silence(600))
    session = await sim.wait_live_session()
    await ws.wait_for(lambda e: bool(session.utterances))
    await ws.wait_for(lambda e: session.utterances[0].audio in ws.output_audio())
    assert session.client_events_of("session.input_audio.append") == []
    assert session.server_events_of("session.output_audio.delta") == []
    assert session.server_events_of("session.started")
