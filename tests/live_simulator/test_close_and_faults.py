"""Ending a simulated GPT-Live session: session.close drains the speech in progress, fails the
appends still pending, sends session.closed{close_requested, usage, session} and closes the
socket; the faults a client must survive (an abrupt drop, a refused session.start, moderation,
a content close); and the bound on finished sessions kept for inspection."""

from __future__ import annotations

from tests.live_simulator.raw_client import RawLiveClient
from tests.realtime.conftest import silence, speech_like
from tests.tools.wait import async_wait_until


async def test_close_drains_speech_fails_pending_appends_then_closes(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20)
    ws = await client(sim)
    started = await ws.start()
    await ws.append(speech_like(800) + silence(600))
    session = await sim.wait_live_session()
    await ws.wait_for(lambda e: bool(session.utterances) and session.track.speaking)
    await ws.send(
        {
            "type": "session.instructions.append",
            "content": "Wrap up.",
            "delegation_id": None,
            "event_id": "late",
        }
    )
    await ws.send({"type": "session.close", "event_id": "bye"})
    await ws.send({"type": "session.input_audio.mute", "event_id": "after"})
    closed = await ws.wait_for(lambda e: e["type"] == "session.closed")
    assert closed["reason"] == "close_requested"
    assert closed["client_event_id"] == "bye"
    assert closed["usage"] == {"seconds": 1.4}
    assert closed["session"]["id"] == started["session"]["id"]
    # The reply was played out before the close (drained), not cut.
    assert session.utterances[0].audio in ws.output_audio()
    errors = {e["error"]["client_event_id"]: e["error"]["code"] for e in ws.of("error")}
    assert errors == {"late": "context_injection_incomplete", "after": "session_closing"}
    ended = await ws.wait_closed()
    assert ended.rcvd is not None and ended.rcvd.code == 1000
    assert session.close_reason == "close_requested"


async def test_an_abrupt_drop_sends_no_session_closed(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20, drop_after_s=0.2)
    ws = await client(sim)
    await ws.start()
    ended = await ws.wait_closed()
    assert ended.rcvd is None  # no close frame: the client sees 1006
    assert ws.of("session.closed") == []
    session = await sim.wait_live_session()
    assert session.dropped


async def test_drop_on_command(live_sim, client) -> None:
    sim = await live_sim()
    ws = await client(sim)
    started = await ws.start()
    sim.drop_live_session(started["session"]["id"])
    assert (await ws.wait_closed()).rcvd is None
    assert ws.of("session.closed") == []


async def test_a_refused_session_start_then_a_good_one(live_sim, client) -> None:
    sim = await live_sim(reject_starts=1)
    ws = await client(sim)
    await ws.send({"type": "session.start", "session": {"model": "gpt-live-1"}, "event_id": "s"})
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert error["error"]["type"] == "server_error"
    assert error["error"]["client_event_id"] == "s"
    assert (await ws.wait_closed()).rcvd.code == 1011
    assert ws.of("session.started") == []
    retry = await client(sim)
    await retry.start()


async def test_an_unanswered_session_start_then_a_good_one(live_sim, client) -> None:
    sim = await live_sim(reject_starts=1, ignore_starts=1)
    rejected, ignored = await client(sim), await client(sim)
    await rejected.send({"type": "session.start", "session": {"model": "gpt-live-1"}})
    await rejected.wait_closed()
    await ignored.send({"type": "session.start", "session": {"model": "gpt-live-1"}})
    session = await sim.wait_live_session(2)
    await async_wait_until(lambda: session.start_ignored, 10)
    await ignored.send({"type": "session.input_audio.append", "audio": "//8=", "event_id": "a"})
    error = await ignored.wait_for(lambda e: e["type"] == "error")  # still not started
    assert error["error"]["code"] == "session_not_started"
    assert ignored.of("session.started") == [] and ignored.closed is None
    good = await client(sim)
    await good.start()


async def test_moderation_cuts_the_reply_and_the_session_goes_on(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20, moderation_on_utterance=1)
    ws = await client(sim)
    await ws.start()
    await ws.append(speech_like(2000, seed=4) + silence(600))
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert error["error"]["code"] == "content_filter"
    session = await sim.wait_live_session()
    reply = session.utterances[0].audio
    mark = len(ws.events)
    await ws.wait_for(lambda e: len(ws.output_audio(mark)) >= 1600)
    voiced = ws.output_audio().strip(b"\xff")
    assert 0 < len(voiced) < len(reply.rstrip(b"\xff"))
    assert ws.output_audio(mark + 1).strip(b"\xff") == b""  # silent after the cut
    await ws.append(speech_like(400, seed=8) + silence(600))  # the session goes on
    await ws.wait_for(
        lambda e: len(session.utterances) == 2 and session.utterances[1].audio in ws.output_audio()
    )


async def test_content_close(live_sim, client) -> None:
    sim = await live_sim(content_close_on_utterance=1)
    ws = await client(sim)
    await ws.start()
    await ws.append(speech_like(400) + silence(600))
    closed = await ws.wait_for(lambda e: e["type"] == "session.closed")
    assert closed["reason"] == "content"
    on_command = await client(sim)
    await on_command.start()
    session = await sim.wait_live_session(2)
    await session.close_for_content()
    closed = await on_command.wait_for(lambda e: e["type"] == "session.closed")
    assert closed["reason"] == "content"


async def test_finished_sessions_are_kept_within_keep_sessions(live_sim, client) -> None:
    sim = await live_sim(keep_sessions=2)
    for _ in range(4):
        ws: RawLiveClient = await client(sim)
        await ws.start()
        await ws.append(silence(100))
        await ws.send({"type": "session.close"})
        await ws.wait_closed()
    await async_wait_until(lambda: sim.live_opened == 4 and len(sim.live_sessions) == 2, 10)
    assert sorted(s.ordinal for s in sim.live_sessions.values()) == [3, 4]
    kept = {s.id for s in sim.live_sessions.values()}
    started = [r.event for r in sim.live_server_events if r.type == "session.started"]
    assert {e["session"]["id"] for e in started} == kept
    assert len([r for r in sim.live_client_events if r.type == "session.close"]) == 2
    live = await client(sim)
    await live.start()
    await async_wait_until(lambda: len(sim.live_sessions) == 3, 10)  # live ones always kept


async def test_recorded_audio_is_bounded(live_sim, client) -> None:
    sim = await live_sim(delta_ms=20, keep_audio_chars=2000)
    ws = await client(sim)
    await ws.start()
    await ws.append(silence(2000))
    session = await sim.wait_live_session()
    await ws.wait_for(
        lambda e: session.audio_chars_dropped > 0 and len(ws.of("session.output_audio.delta")) > 20
    )
    kept = sum(
        len(r.event.get("audio") or r.event.get("delta") or "")
        for r in session.client_events + session.server_events
    )
    assert kept <= 2000
