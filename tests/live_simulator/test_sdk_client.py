"""The official `openai` SDK's own GPT-Live client (`AsyncOpenAI().live.connect()`, openai
3.63.0) against the simulator: its handshake (URL, no query, headers) is accepted, its typed
commands validate, and every server event it receives parses into `openai.types.live` models."""

from __future__ import annotations

import asyncio
import base64

import pytest
from openai import AsyncOpenAI

from tests.realtime.conftest import silence, speech_like


async def test_the_openai_sdk_client_holds_a_whole_session(live_sim) -> None:
    sim = await live_sim(delta_ms=20)
    client = AsyncOpenAI(api_key="sk-test", base_url=f"http://127.0.0.1:{sim.port}/v1")
    async with client.live.connect(max_retries=0) as conn:
        await conn.session.start(
            session={
                "model": "gpt-live-1",
                "audio": {"format": {"type": "audio/pcmu", "rate": 8000}},
            },
            event_id="start",
        )
        started = await asyncio.wait_for(conn.recv(), 10)
        assert started.type == "session.started"
        assert started.session.audio.format.type == "audio/pcmu"
        assert started.client_event_id == "start"
        audio = speech_like(400) + silence(600)
        for start in range(0, len(audio), 160):
            await conn.session.input_audio.append(
                audio=base64.b64encode(audio[start : start + 160]).decode()
            )
        heard = b""
        session = await sim.wait_live_session()
        while not (session.utterances and session.utterances[0].audio in heard):
            event = await asyncio.wait_for(conn.recv(), 10)
            if event.type == "session.output_audio.delta":
                heard += base64.b64decode(event.delta)
        await conn.session.close(event_id="bye")
        while (event := await asyncio.wait_for(conn.recv(), 10)).type != "session.closed":
            pass
        assert event.reason == "close_requested"
        assert event.usage.seconds == pytest.approx(1.0)
    request = session.request_headers
    assert request["authorization"] == "Bearer sk-test"
    assert sim.live_refused == []
